"""The state of one request (`Exchange`): shared by its stream, its read loop, the attempt loop and
the error mapping, and never pointing back at the stream (so an abandoned stream is freed, and
closed, by reference counting). No I/O here; the response and the transport are duck-typed.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ._observe import Watch
from ._watchdog import Watchdog
from .config import RetryPolicy, Timeouts
from .errors import OllamaError, ProtocolError, StreamError
from .protocol import ChatAccumulator, NDJSONDecoder, parse_chat_chunk
from .types import Message

__all__ = ["Exchange"]


class _Wire(Protocol):
    """What an exchange needs of its transport (`_http.Transport`)."""

    host: str
    pool_limit: int
    headers: dict[str, str]
    options: dict[str, Any]  # what every request adds to its arguments
    redirects: str
    own_session: Any  # the caller's session, when it gave one

    async def session(self) -> Any: ...

    def options_for(self, url: str, *, with_authorization: bool) -> dict[str, Any]: ...


class _Response(Protocol):
    """What an exchange does with its response (aiohttp's ClientResponse)."""

    def close(self) -> None: ...

    def release(self) -> Any: ...


class _Accumulator(Protocol):
    """What an exchange needs of the accumulator of its kind of stream."""

    done: bool
    resumes: int  # times the stream was resumed (counted by the read loop)

    @property
    def chunks(self) -> int: ...

    def add(self, chunk: Any) -> None: ...

    def take(self, obj: dict[str, Any]) -> Any: ...  # parse one decoded line, add it, return it

    @property
    def message(self) -> Message | None: ...

    def result(self) -> Any: ...


class Exchange:
    """The state of one request: shared by its stream, its read loop and the attempt loop, and never
    pointing back at the stream (so an abandoned stream is freed, and closed, by reference
    counting).

    `body` is bytes, or a zero-argument callable giving a fresh body for each attempt. With
    `backend` set, the chunks come from that ChatBackend (given `request`) instead of the server.
    `num_ctx`, the window the request asked for, sizes errors and the prompt-truncation check.
    `output` is set by the client on a request with `format=`.
    """

    __slots__ = ("acc", "attempts", "backend", "body", "decoder", "error", "failures", "finished",
                 "method", "model", "num_ctx", "output", "parse", "path", "request", "response",
                 "resume", "retry", "rng", "sleep", "timeouts", "transport", "url", "watch",
                 "watchdog")

    def __init__(self, transport: _Wire, path: str, body: Any, model: str | None, *,
                 timeouts: Timeouts, retry: RetryPolicy, max_line_bytes: int,
                 sleep: Callable[[float], Awaitable[Any]], rng: random.Random,
                 method: str = "POST", parse: Callable[[dict[str, Any]], Any] = parse_chat_chunk,
                 acc: _Accumulator | None = None, backend: Any = None, request: Any = None,
                 num_ctx: int | None = None, watch: Watch | None = None,
                 resume: Callable[[Exchange], Awaitable[Any]] | None = None) -> None:
        self.transport = transport
        self.path = path
        self.url = transport.host + path
        self.method = method
        self.body = body
        self.model = model
        self.timeouts = timeouts
        self.retry = retry
        self.sleep = sleep  # injectable, as `rng` is, so that retry tests do not wait
        self.rng = rng
        self.parse = parse  # what `take` does, as a parser alone (a resume wraps it)
        self.num_ctx = num_ctx  # the context window the request asked for (options.num_ctx)
        self.watch = watch  # set when someone listens (a hook, DEBUG logging, tracing)
        # how the stream goes on after a failure (RetryPolicy.resume): a coroutine function that
        # gives the continuation (a `_prefill.Continuation`) or why there is none
        self.resume = resume
        self.acc: _Accumulator = acc if acc is not None else ChatAccumulator(num_ctx)
        self.decoder = NDJSONDecoder(max_line_bytes)
        self.backend = backend
        self.request = request
        self.watchdog: Watchdog | None = None
        self.response: _Response | None = None
        self.attempts = 0
        self.failures: list[str] = []
        self.finished = False
        self.error: BaseException | None = None
        # a chat or generate with `format=`: its `_outputs.Structured` (parsed, objects, repair)
        self.output: Any = None

    @property
    def what(self) -> str:
        """For messages: the URL and, when there is one, the model."""
        return f"{self.url} (model {self.model!r})" if self.model else self.url

    def partial(self) -> Message | None:
        """The reply accumulated from what reached the caller; None before the first chunk."""
        return self.acc.message if self.acc.chunks else None

    def annotate(self, error: OllamaError) -> OllamaError:
        """Fill in what the raiser could not know: the partial reply, the attempts, and where the
        bytes came from. Idempotent."""
        if error.partial is None:
            error.partial = self.partial()
        error.attempts = max(self.attempts, 1)
        error.failures = tuple(self.failures)
        if isinstance(error, (ProtocolError, StreamError)) and self.url not in error.message:
            error.args = (f"{error.message} (from {self.what})",)
        return error

    def give_up(self, error: OllamaError) -> OllamaError:
        """`annotate`, and name every failed attempt when there were several."""
        self.annotate(error)
        if self.attempts > 1:
            error.args = (f"{error.message} (gave up after {self.attempts} attempts: "
                          f"{', '.join(self.failures)})",)
        return error

    def end(self) -> None:
        """A read loop is over, however it ended (both loops call this in their `finally`): the
        phase timers stop, and a watch, if there is one, is told how (`report_end`)."""
        self.finished = True
        if self.watchdog is not None:
            self.watchdog.cancel()
        if self.watch is not None:
            self.report_end()

    def report_end(self) -> None:
        """Tell the watch how the stream ended: finished, failed, or left by the caller."""
        watch, acc = self.watch, self.acc
        assert watch is not None
        if acc.done:
            message = acc.message
            watch.finished(self.attempts, acc.chunks, getattr(acc, "done_reason", None),
                           getattr(acc, "metrics", None), getattr(acc, "model", None) or None,
                           message.content if message is not None else None)
        else:
            watch.failed(self.attempts, self.error, acc.chunks,
                         abandoned=self.error is None)

    def fresh_decoder(self) -> None:
        """A new decoder for the next attempt: the bytes of a line cut short by a failed one must
        never be joined to the first line of the next."""
        self.decoder = NDJSONDecoder(self.decoder.max_line_bytes)

    def close_response(self) -> None:
        response = self.response
        if response is not None:
            self.response = None
            response.close()
