"""The one attempt loop, for native requests and for backends alike: try, and on a failure that may
be retried, wait and try again, until the first chunk (or the whole reply) is in hand.

Rules of this room, and why:
1. An attempt is a coroutine function that returns what the caller needs to go on (an open response
   and its first lines, a whole body, a backend's first chunk), or raises an OllamaError having
   closed whatever it opened. Nothing it returns has reached the caller yet, so a retry never
   repeats text.
2. `RetryPolicy.retries(error)` alone decides whether a failure may be retried; this loop adds only
   the count (`max_attempts`) and the clock (the `total` deadline).
3. No phase timer runs during the wait (the watchdog is disarmed), and a wait that would pass the
   `total` deadline ends the request at once with the last error.
4. Every failed attempt is logged in `exchange.failures`, so the final error can say why each
   failed; each attempt and each retry is told to the exchange's watch, when it has one.
5. A stream that fails after output started is resumed (`resume`) only when the policy says so
   (`RetryPolicy.resumes`), within the same attempts and `total` deadline, by the request that
   continues its partial reply (`_prefill`); a continuation that fails or cannot be made raises
   the original error. Never a fresh answer, which would repeat what the caller saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ._exchange import Exchange
from ._http_errors import map_error
from ._prefill import ResumedParse
from ._watchdog import Watchdog
from .errors import (
    OllamaConnectionError,
    OllamaError,
    OllamaTimeoutError,
    ResponseError,
    StreamInterrupted,
)

__all__ = ["failure_reason", "first_success", "resume"]

T = TypeVar("T")


async def first_success(exchange: Exchange, attempt: Callable[[], Awaitable[T]]) -> T:
    """Run `attempt` until it succeeds, or raise its last error once the policy, the attempt count
    or the total deadline says stop. Arms `exchange.watchdog` for the whole request (a stream's
    resume goes on with the watchdog it has, so `total` spans every request of the call)."""
    loop = asyncio.get_running_loop()
    watchdog = exchange.watchdog
    if watchdog is None:
        watchdog = exchange.watchdog = Watchdog(loop, exchange.timeouts)
    policy, watch = exchange.retry, exchange.watch
    while True:
        exchange.attempts += 1
        watchdog.start_attempt()
        if watch is not None:
            watch.request(exchange.attempts)
        try:
            return await attempt()
        except OllamaError as error:
            reason = failure_reason(error)
            exchange.failures.append(reason)
            watchdog.cancel()
            exchange.fresh_decoder()
            delay = None
            if exchange.attempts < policy.max_attempts and policy.retries(error):
                retry_after = error.retry_after if isinstance(error, ResponseError) else None
                delay = policy.delay(exchange.attempts, retry_after, exchange.rng)
            if delay is None or loop.time() + delay >= watchdog.total_deadline:
                exchange.give_up(error)
                raise
            if watch is not None:
                watch.retry(exchange.attempts, reason, delay)
        await exchange.sleep(delay)


def failure_reason(error: OllamaError) -> str:
    """A few words for the attempt log: "503", "first_chunk timeout", "connection refused"."""
    if isinstance(error, ResponseError):
        return str(error.status_code)
    if isinstance(error, OllamaTimeoutError):
        return f"{error.phase} timeout"
    if isinstance(error, OllamaConnectionError):
        return error.reason
    if isinstance(error, StreamInterrupted):
        return "connection dropped"
    return type(error).__name__


async def resume(exchange: Exchange, failure: BaseException | None,
                 attempt: Callable[[], Awaitable[T]]) -> T:
    """After a stream failed mid-reply (`failure`, or None when its body ended without the final
    chunk): what `attempt` gives for the continuing request (rule 5), or the failure as our
    error. A continuation that fails or cannot be made raises that original error, with every
    failed attempt in its log."""
    acc = exchange.acc
    if failure is None:
        hint = "" if exchange.retry.resume else " (RetryPolicy(resume=True) continues it)"
        error: OllamaError = StreamInterrupted(
            f"the stream from {exchange.what} ended after {acc.chunks} chunks without its final "
            "chunk: a proxy may have closed it, or Ollama stopped the model because it repeated "
            "one token over and over (its repetition guard; try a higher repeat_penalty or "
            f"another prompt). The partial reply is in .partial{hint}")
    else:
        error = map_error(failure, exchange, started=True)
        error.__cause__ = failure
    policy, resume, watchdog = exchange.retry, exchange.resume, exchange.watchdog
    if resume is None or not policy.resumes(error):
        raise error
    assert watchdog is not None
    reason = failure_reason(error)
    exchange.failures.append(reason)
    watchdog.cancel()
    exchange.close_response()
    delay = policy.delay(exchange.attempts, None, exchange.rng)
    if (exchange.attempts >= policy.max_attempts
            or watchdog.loop.time() + delay >= watchdog.total_deadline):
        raise exchange.give_up(error)
    plan = await resume(exchange)
    if isinstance(plan, str):  # the server cannot continue this reply: never a fresh answer
        exchange.failures.append(f"not resumed: {plan}")
        raise exchange.give_up(error)
    if watchdog.loop.time() + delay >= watchdog.total_deadline:  # asking how took the time
        exchange.failures.append("total timeout")
        raise exchange.give_up(error)
    if exchange.watch is not None:
        exchange.watch.resume(exchange.attempts, reason, delay, acc.chunks)
    await exchange.sleep(delay)
    exchange.body = plan.body
    exchange.fresh_decoder()
    parse = exchange.parse
    base = parse.base if isinstance(parse, ResumedParse) else parse  # an earlier resume's seam ends
    exchange.parse = ResumedParse(base, plan.seam, plan.field)
    try:
        opened = await first_success(exchange, attempt)
    except OllamaError:
        raise exchange.give_up(error) from error.__cause__  # the original error, as it was
    acc.resumes += 1
    watchdog.set_phase("idle")
    return opened
