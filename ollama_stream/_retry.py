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
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ._exchange import Exchange
from ._watchdog import Watchdog
from .errors import (
    OllamaConnectionError,
    OllamaError,
    OllamaTimeoutError,
    ResponseError,
    StreamInterrupted,
)

__all__ = ["failure_reason", "first_success"]

T = TypeVar("T")


async def first_success(exchange: Exchange, attempt: Callable[[], Awaitable[T]]) -> T:
    """Run `attempt` until it succeeds, or raise its last error once the policy, the attempt count
    or the total deadline says stop. Arms `exchange.watchdog` for the whole request."""
    loop = asyncio.get_running_loop()
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
