"""AsyncOllama and ChatStream: the aiohttp front end that drives the sans-I/O core.

One ClientSession per client, made lazily inside the running loop and closed with it. A stream's request
opens on first iteration; failures before the first chunk reaches the caller are retried by the
RetryPolicy; after that nothing is retried and each failure is a typed error carrying `.partial`.
Timeouts use one lazily re-armed timer per stream (`_Watchdog`), never a new `asyncio.timeout` per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import aiohttp
import orjson

from ._version import __version__
from .config import RETRYABLE_STATUSES, RetryPolicy, Timeouts, parse_retry_after, resolve_host
from .errors import (
    ModelNotFoundError,
    OllamaConnectionError,
    OllamaError,
    OllamaTimeoutError,
    ProtocolError,
    ResponseError,
    StreamError,
    StreamInterrupted,
)
from .protocol import (
    DEFAULT_MAX_LINE_BYTES,
    ChatAccumulator,
    NDJSONDecoder,
    build_chat_request,
    check_model,
    error_text,
    parse_chat_chunk,
)
from .types import ChatChunk, ChatResult, Message

if TYPE_CHECKING:
    from .agent import ToolLoop
    from .backends import ChatBackend, ChatRequest
    from .endpoints import (  # noqa: F401 - GenerateChunk, GenerateResult and Progress are named in the stream bases
        EmbedResult,
        GenerateChunk,
        GenerateResult,
        ListResult,
        Progress,
        PsResult,
        ShowResult,
    )

__all__ = ["AsyncOllama", "ChatStream", "GenerateStream", "ProgressStream"]

_INF = float("inf")
_NO_RETRY = RetryPolicy(max_attempts=1)
_ERROR_BODY_LIMIT = 64 * 1024
_DRAIN_SECONDS = 2.0  # after `done`, how long to wait for the end of the body so the connection can be reused
_STATUS_HINTS = {
    400: "The server rejected the request: check the arguments (does the model support think/tools?).",
    401: "The server wants credentials: set OLLAMA_API_KEY or pass an Authorization header.",
    403: "The server refused the request: check OLLAMA_ORIGINS on the server or the proxy's access rules.",
    408: "The server timed out reading the request; try again.",
    429: "The server is rate-limiting; wait and try again.",
    500: "The server failed: see the Ollama server log for the cause.",
    502: "A proxy in front of Ollama could not reach it: check that Ollama is running behind it.",
    503: "The server is busy (queue full); try again later, or raise OLLAMA_MAX_QUEUE on the server.",
    504: "A proxy in front of Ollama timed out waiting for it: check the server, or raise the proxy's timeout.",
}


class _Expired(Exception):
    """Set on a response's reader by the watchdog when a phase's deadline passes."""

    def __init__(self, phase: str, limit: float | None) -> None:
        super().__init__(phase)
        self.phase = phase
        self.limit = limit


class _Watchdog:
    """One timer per request for the first_chunk, idle and total limits.

    Reads only store a timestamp; the timer checks it when it fires and re-arms itself if the deadline
    moved, so a stream of thousands of lines costs a handful of timer events, not one per line. On expiry
    it fails the pending read (`StreamReader.set_exception`) or, before any response exists, cancels the
    waiting task, which `_open` turns into OllamaTimeoutError.
    """

    __slots__ = ("_handle", "cancelled_task", "fired", "idle", "last", "loop", "phase", "phase_deadline",
                 "reader", "reading", "task", "timeouts", "total_deadline")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeouts: Timeouts) -> None:
        self.loop = loop
        self.timeouts = timeouts
        self.idle = timeouts.idle
        self.total_deadline = loop.time() + timeouts.total if timeouts.total else _INF
        self.phase = "first_chunk"
        self.phase_deadline = _INF
        self.reader: aiohttp.StreamReader | None = None
        self.task: asyncio.Task[Any] | None = None
        self.fired: str | None = None
        self.cancelled_task = False
        self.reading = False
        self.last = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start_attempt(self) -> None:
        self.reader = None
        self.fired = None
        self.cancelled_task = False
        self.task = asyncio.current_task()
        limit = self.timeouts.first_chunk
        self.set_phase("first_chunk", self.loop.time() + limit if limit else _INF)

    def set_phase(self, phase: str, deadline: float = _INF) -> None:
        self.phase = phase
        self.phase_deadline = deadline
        self._arm(self.loop.time())

    def _next(self, now: float) -> tuple[float, str]:
        if self.phase == "idle":
            when = (self.last if self.reading else now) + self.idle if self.idle else _INF
        else:
            when = self.phase_deadline
        if self.total_deadline <= when:
            return self.total_deadline, "total"
        return when, self.phase

    def _arm(self, now: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        when, _ = self._next(now)
        if when != _INF:
            self._handle = self.loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        now = self.loop.time()
        when, phase = self._next(now)
        if now < when:
            self._handle = self.loop.call_at(when, self._fire)
            return
        self.fired = phase
        if self.reader is not None:
            self.reader.set_exception(_Expired(phase, self.limit()))
        elif self.task is not None and self.reading:
            self.cancelled_task = True
            self.task.cancel()
        # Otherwise the caller's own code is running (between chunks of a backend): the next read raises.

    async def waiting(self, awaitable: Awaitable[T]) -> T:
        """Await the server (or a backend) with the limits armed: while it waits, the watchdog may cancel the
        task, and that cancel comes out as the timeout it was, never as a CancelledError."""
        self.reading = True
        try:
            return await awaitable
        except asyncio.CancelledError:
            if self.fired and self.cancelled_task and _only_our_cancel(self.task):
                raise _Expired(self.fired, self.limit()) from None
            raise
        finally:
            self.reading = False

    def limit(self) -> float | None:
        phase = self.fired or self.phase
        return self.timeouts.total if phase == "total" else getattr(self.timeouts, phase, None)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.task = None
        self.reader = None


def _only_our_cancel(task: asyncio.Task[Any] | None) -> bool:
    """After the watchdog cancelled `task`: was that the only cancel request (so it is a timeout)?"""
    if task is None:
        return False
    if sys.version_info >= (3, 11):
        return task.uncancel() == 0
    return True  # pragma: no cover - 3.10 cannot tell a concurrent outside cancel apart


class _Accumulator(Protocol):
    chunks: int
    done: bool

    def add(self, chunk: Any) -> None: ...

    @property
    def message(self) -> Message | None: ...

    def result(self) -> Any: ...


class _Call:
    """The state of one request, shared by a stream and its generator (never each other, so no cycle)."""

    __slots__ = ("acc", "attempts", "backend", "body", "client", "decoder", "error", "failures", "finished",
                 "method", "model", "parse", "path", "request", "response", "retry", "watchdog")

    def __init__(self, client: AsyncOllama, path: str, body: Any, model: str | None, *,
                 parse: Callable[[dict[str, Any]], Any] = parse_chat_chunk, acc: _Accumulator | None = None,
                 method: str = "POST", retry: RetryPolicy | None = None,
                 backend: ChatBackend | None = None, request: ChatRequest | None = None) -> None:
        self.client = client
        self.backend = backend  # set: chunks come from this backend instead of the native read loop
        self.request = request
        self.retry = retry if retry is not None else client.retry
        self.path = path
        self.method = method
        self.body = body  # bytes, or a zero-argument callable giving a fresh body for each attempt
        self.model = model
        self.parse = parse
        self.acc: _Accumulator = acc if acc is not None else ChatAccumulator()
        self.decoder = NDJSONDecoder(client.max_line_bytes)
        self.watchdog: _Watchdog | None = None
        self.response: aiohttp.ClientResponse | None = None
        self.attempts = 0
        self.failures: list[str] = []
        self.finished = False
        self.error: BaseException | None = None

    @property
    def url(self) -> str:
        return self.client.host + self.path

    @property
    def what(self) -> str:
        """For messages: the URL and, when there is one, the model."""
        return f"{self.url} (model {self.model!r})" if self.model else self.url

    def partial(self) -> Message | None:
        return self.acc.message if self.acc.chunks else None


C = TypeVar("C")
R = TypeVar("R")
S = TypeVar("S", bound="_Stream[Any, Any]")
T = TypeVar("T")


class _Stream(Generic[C, R]):
    """A streamed reply. Nothing is sent until it is first iterated (or `result()` is awaited).

    `async for chunk in stream` yields each typed chunk as its line arrives; `await stream.result()` drains the
    rest and returns the finished value. Leaving early closes the HTTP response so the server stops working:
    `async with ... as stream:` makes that deterministic; an abandoned stream is closed when collected.
    """

    __slots__ = ("_call", "_gen")

    def __init__(self, call: _Call) -> None:
        self._call = call
        self._gen: AsyncGenerator[C, None] | None = None

    def __aiter__(self) -> AsyncIterator[C]:
        if self._call.finished:
            raise RuntimeError(
                f"this {type(self).__name__} is finished and cannot be iterated again; await stream.result() "
                "for what it returned, or make the request again"
            )
        # `async for` then drives the read loop's generator directly: no extra call per chunk.
        return self._generator()

    def __anext__(self) -> Awaitable[C]:
        return self._generator().__anext__()

    def _generator(self) -> AsyncGenerator[C, None]:
        gen = self._gen
        if gen is None:
            call = self._call
            gen = self._gen = _stream_chunks(call) if call.backend is None else _backend_chunks(call)
        return gen

    @property
    def done(self) -> bool:
        """True once the final chunk has been received."""
        return self._call.acc.done

    async def result(self) -> R:
        """Read what is left of the stream and return the finished value."""
        call = self._call
        if not call.finished:
            async for _ in self:
                pass
        if call.acc.done:
            result: R = call.acc.result()
            return result
        if call.error is not None:
            raise call.error
        raise RuntimeError(f"this {type(self).__name__} was closed before its final chunk")

    async def aclose(self) -> None:
        """Stop the stream and close its HTTP response (the server stops generating). Idempotent."""
        if self._gen is not None:
            await self._gen.aclose()
        self._call.finished = True
        _close_response(self._call)

    async def __aenter__(self: S) -> S:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # Abandoned mid-stream: close the socket now rather than when the generator is finalized.
        call = self._call
        if call.response is not None and not call.finished:
            with contextlib.suppress(Exception):  # the loop may be gone already; nothing left to close then
                _close_response(call)

    def __repr__(self) -> str:
        call = self._call
        state = "done" if call.acc.done else ("closed" if call.finished else
                                              f"{call.acc.chunks} chunks" if call.acc.chunks else "not started")
        about = f"model={call.model!r}" if call.model else f"path={call.path!r}"
        return f"<{type(self).__name__} {about} {state}>"


class ChatStream(_Stream[ChatChunk, ChatResult]):
    """A streamed `/api/chat` reply: ChatChunks; `.message` is the assistant message accumulated so far,
    `await .result()` gives the ChatResult, `.text()` yields only content deltas."""

    __slots__ = ()

    @property
    def message(self) -> Message:
        """The assistant message accumulated from the chunks yielded so far."""
        acc = self._call.acc
        assert isinstance(acc, ChatAccumulator)
        return acc.message

    async def text(self) -> AsyncIterator[str]:
        """Yield only the content deltas (thinking and tool calls are still accumulated)."""
        async for chunk in self:
            if chunk.content:
                yield chunk.content


class GenerateStream(_Stream["GenerateChunk", "GenerateResult"]):
    """A streamed `/api/generate` reply: GenerateChunks; `await .result()` gives the GenerateResult (with the
    `context` of the final chunk), `.text()` yields only response deltas."""

    __slots__ = ()

    async def text(self) -> AsyncIterator[str]:
        """Yield only the response deltas."""
        async for chunk in self:
            if chunk.response:
                yield chunk.response


class ProgressStream(_Stream["Progress", str]):
    """The progress of a pull, push or create: Progress lines; `await .result()` gives the final status."""

    __slots__ = ()


def _close_response(call: _Call) -> None:
    resp = call.response
    if resp is not None:
        call.response = None
        resp.close()


async def _stream_chunks(call: _Call) -> AsyncGenerator[Any, None]:
    """The read loop: one async generator from bytes to typed chunks, no nested generators per line."""
    acc = call.acc
    clean = False
    try:
        resp, objs = await call.client._open(call, _first_objects)
        watchdog = call.watchdog
        assert watchdog is not None
        reader = resp.content
        readany = reader.readany
        decoder = call.decoder
        feed = decoder.feed
        parse = call.parse
        add = acc.add
        now = watchdog.loop.time
        watchdog.set_phase("idle")
        while True:
            for obj in objs:
                chunk = parse(obj)
                add(chunk)
                yield chunk
                if chunk.done:
                    clean = await _drain(reader, watchdog)
                    return
            if decoder.error is not None:
                raise decoder.error
            watchdog.last = now()
            watchdog.reading = True
            data = await readany()
            watchdog.reading = False
            if data:
                objs = feed(data)
            else:
                objs = decoder.close()
                if not objs:
                    raise StreamInterrupted(
                        f"the stream from {call.what} ended after {acc.chunks} chunks without its final chunk; "
                        "the server or a proxy closed it early. The partial reply is in .partial"
                    )
    except OllamaError as exc:
        call.error = _with_context(exc, call)
        raise call.error from exc.__cause__
    except (aiohttp.ClientError, OSError, _Expired) as exc:
        call.error = call.client._translate(exc, call, started=True)[0]
        raise call.error from exc
    finally:
        call.finished = True
        if call.watchdog is not None:
            call.watchdog.cancel()
        resp_ = call.response
        call.response = None
        if resp_ is not None:
            if clean:
                resp_.release()
            else:
                resp_.close()


async def _backend_chunks(call: _Call) -> AsyncGenerator[Any, None]:
    """The same contract as `_stream_chunks` over any ChatBackend: retries before the first chunk, the phase
    limits, accumulation and typed errors with `.partial`, written once for every backend."""
    backend, request, client, acc = call.backend, call.request, call.client, call.acc
    assert backend is not None and request is not None
    loop = asyncio.get_running_loop()
    watchdog = call.watchdog = _Watchdog(loop, client.timeouts)
    source: AsyncIterator[ChatChunk] | None = None

    async def next_chunk() -> ChatChunk:
        assert source is not None
        if watchdog.fired:  # a limit passed while the caller's code ran
            raise _Expired(watchdog.fired, watchdog.limit())
        watchdog.last = loop.time()
        return await watchdog.waiting(source.__anext__())

    try:
        while True:  # attempts, until the first chunk
            call.attempts += 1
            watchdog.start_attempt()
            source = backend.stream_chat(request)
            try:
                chunk = await next_chunk()
                break
            except (OllamaError, _Expired, StopAsyncIteration) as exc:
                error = _backend_error(exc, call, started=False)
                await _aclose(source)
                call.failures.append(_reason(error))
                retryable = _retryable(error) and call.attempts < call.retry.max_attempts
                delay = call.retry.delay(call.attempts, getattr(error, "retry_after", None), client._rng) \
                    if retryable else None
                watchdog.cancel()
                if delay is None or loop.time() + delay >= watchdog.total_deadline:
                    raise _final(error, call) from exc
                await client._sleep(delay)
        watchdog.set_phase("idle")
        while True:
            acc.add(chunk)
            yield chunk
            if chunk.done:
                return
            try:
                chunk = await next_chunk()
            except StopAsyncIteration:
                raise StreamInterrupted(f"the backend {type(backend).__name__} ended the reply to "
                                        f"{request.model!r} after {acc.chunks} chunks without a final chunk") from None
    except OllamaError as exc:
        call.error = _with_context(exc, call)
        raise call.error from exc.__cause__
    except _Expired as exc:
        call.error = _backend_error(exc, call, started=True)
        raise call.error from None
    except Exception as exc:  # a backend that broke its contract: still a typed error
        call.error = _with_context(OllamaError(f"the backend {type(backend).__name__} failed: "
                                               f"{type(exc).__name__}: {exc}"), call)
        raise call.error from exc
    finally:
        call.finished = True
        watchdog.cancel()
        if source is not None:
            await _aclose(source)


def _backend_error(exc: BaseException, call: _Call, *, started: bool) -> OllamaError:
    if isinstance(exc, _Expired):
        return call.client._translate(exc, call, started=started)[0]
    if isinstance(exc, StopAsyncIteration):
        return StreamInterrupted(f"the backend gave no chunk for {call.model!r}", partial=call.partial())
    assert isinstance(exc, OllamaError)
    return exc


def _retryable(error: OllamaError) -> bool:
    """The retry rule of RetryPolicy, read off a typed error (what backends raise)."""
    if isinstance(error, ResponseError):
        return error.status_code in RETRYABLE_STATUSES
    if isinstance(error, OllamaTimeoutError):
        return error.phase in ("connect", "first_chunk")
    if isinstance(error, OllamaConnectionError):
        return bool(getattr(error, "retryable", True))
    return isinstance(error, StreamInterrupted)


def _reason(error: OllamaError) -> str:
    if isinstance(error, ResponseError):
        return str(error.status_code)
    if isinstance(error, OllamaTimeoutError):
        return f"{error.phase} timeout"
    if isinstance(error, OllamaConnectionError):
        return "connection failed"
    return "connection dropped" if isinstance(error, StreamInterrupted) else type(error).__name__


async def _aclose(source: AsyncIterator[Any]) -> None:
    close = getattr(source, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()


async def _drain(reader: aiohttp.StreamReader, watchdog: _Watchdog) -> bool:
    """After the final chunk: read to the end of the body so the connection can go back to the pool."""
    if reader.at_eof():
        return True
    watchdog.set_phase("drain", watchdog.loop.time() + _DRAIN_SECONDS)
    watchdog.reading = True
    try:
        while await reader.readany():
            pass
    except (aiohttp.ClientError, OSError, _Expired):
        return False
    return True


def _with_context(exc: OllamaError, call: _Call) -> OllamaError:
    """Fill in what the core cannot know: the partial reply, the attempts, and where the bytes came from."""
    if exc.partial is None:
        exc.partial = call.partial()
    exc.attempts = max(call.attempts, 1)
    exc.failures = tuple(call.failures)
    if isinstance(exc, (ProtocolError, StreamError)) and call.url not in exc.message:
        exc.args = (f"{exc.message} (from {call.what})",)
    return exc


class AsyncOllama:
    """An asyncio client for Ollama's native API.

    `host` (or OLLAMA_HOST, else http://127.0.0.1:11434) follows Ollama's own rules. `headers` are added to
    every request; OLLAMA_API_KEY, when set, is sent as a bearer token. `timeouts` and `retry` set the
    phase limits and the retry policy; `max_line_bytes` bounds one NDJSON line; `pool_limit` caps open
    connections; `ssl` is passed to aiohttp (TLS verification stays on unless you pass something here).
    Use it as `async with AsyncOllama() as client:` or call `await client.aclose()`.
    """

    def __init__(
        self,
        host: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        pool_limit: int = 100,
        ssl: Any = None,
        backend: ChatBackend | None = None,
    ) -> None:
        if backend is not None:
            from .backends import ChatBackend

            if not isinstance(backend, ChatBackend):
                raise TypeError(f"backend must have stream_chat(request) and aclose(); got {type(backend).__name__}")
        self.backend = backend
        self.host = resolve_host(host)
        self.timeouts = timeouts if timeouts is not None else Timeouts()
        self.retry = retry if retry is not None else RetryPolicy()
        if not isinstance(self.timeouts, Timeouts):
            raise TypeError(f"timeouts must be a Timeouts, not {type(self.timeouts).__name__}")
        if not isinstance(self.retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, not {type(self.retry).__name__}")
        if isinstance(max_line_bytes, bool) or not isinstance(max_line_bytes, int) or max_line_bytes < 1:
            raise ValueError(f"max_line_bytes must be a positive int, got {max_line_bytes!r}")
        if isinstance(pool_limit, bool) or not isinstance(pool_limit, int) or pool_limit < 1:
            raise ValueError(f"pool_limit must be a positive int, got {pool_limit!r}")
        self.max_line_bytes = max_line_bytes
        self.pool_limit = pool_limit
        self._ssl = ssl
        self._headers = _build_headers(headers)
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._loop_guard: AsyncGenerator[None, None] | None = None
        self._closed = False
        self._sleep = asyncio.sleep
        self._rng = random.Random()

    def __repr__(self) -> str:
        return f"AsyncOllama(host={self.host!r})"

    async def __aenter__(self) -> AsyncOllama:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool. The client cannot be used afterwards."""
        self._closed = True
        await self._drop_session()
        if self.backend is not None:
            await self.backend.aclose()

    @property
    def closed(self) -> bool:
        return self._closed

    async def _drop_session(self) -> None:
        session, guard = self._session, self._loop_guard
        self._session = self._loop_guard = None
        self._session_loop = None
        if session is not None and not session.closed:
            await session.close()
        if guard is not None:
            await guard.aclose()

    async def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("this AsyncOllama is closed; create a new client")
        loop = asyncio.get_running_loop()
        session = self._session
        if session is not None and self._session_loop is loop and not session.closed:
            return session
        if session is not None and self._session_loop is not loop:
            if self._session_loop is not None and not self._session_loop.is_closed() \
                    and self._session_loop.is_running():
                raise RuntimeError(
                    "this AsyncOllama is in use by another running event loop; create one client per loop "
                    "(or use the blocking Ollama client across threads)"
                )
            # The old loop has ended: its session was closed by the loop guard (see below); start afresh.
            self._session = self._loop_guard = None
        timeouts = self.timeouts
        connector = aiohttp.TCPConnector(limit=self.pool_limit, **({"ssl": self._ssl}
                                                                   if self._ssl is not None else {}))
        session = aiohttp.ClientSession(
            connector=connector,
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect),
            auto_decompress=True,
        )
        self._session, self._session_loop = session, loop
        # asyncio.run() finalizes live async generators before closing its loop: this one closes the
        # session then, so a client used across several asyncio.run() calls leaves no socket behind.
        guard = _close_with_loop(session)
        await guard.__anext__()
        self._loop_guard = guard
        return session

    def chat(
        self,
        model: str,
        messages: list[Message] | list[dict[str, Any]] | list[Message | dict[str, Any]],
        *,
        think: bool | str | None = None,
        tools: Sequence[Any] | None = None,
        format: str | dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        keep_alive: float | str | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
    ) -> ChatStream:
        """Stream a chat reply from `POST /api/chat`. Arguments are checked now; nothing is sent until the
        returned ChatStream is iterated. An argument left as None is not sent (the server's default holds).
        `tools` takes Python functions, `Tool`s, or schema dicts (sent unchanged).
        """
        if tools is not None and not isinstance(tools, (str, bytes, dict)) and isinstance(tools, Sequence) \
                and not all(type(tool) is dict for tool in tools):
            from .tools import tool_schemas  # functions and Tools: imported only when used

            tools = tool_schemas(tools)
        body = build_chat_request(model, messages, think=think, tools=tools, format=format, options=options,
                                  keep_alive=keep_alive, logprobs=logprobs, top_logprobs=top_logprobs)
        if self.backend is not None:
            from .backends import ChatRequest

            return ChatStream(_Call(self, "/api/chat", b"", model, backend=self.backend,
                                    request=ChatRequest(model, body)))
        return ChatStream(_Call(self, "/api/chat", orjson.dumps(body), model))

    def chat_with_tools(
        self,
        /,
        model: str,
        messages: Sequence[Message | dict[str, Any]],
        tools: Sequence[Any],
        *,
        max_rounds: int = 8,
        think: bool | str | None = None,
        on_error: str = "return",
        tool_timeout: float | None = None,
        **chat_options: Any,
    ) -> ToolLoop:
        """Run an agent loop: stream a reply, run the tool calls it makes (concurrently, in the model's order),
        send the results back, and stream again until a reply makes no calls. Iterate the returned ToolLoop for
        ChatChunks and ToolResults; `.messages` then holds the whole history. A failing tool's error is sent to
        the model as its result (`on_error="raise"` raises ToolError instead); more than `max_rounds` model
        calls raises MaxRoundsError. `tool_timeout` bounds each call (a Tool's own timeout wins).
        """
        from .agent import ToolLoop

        return ToolLoop(self, model, messages, tools, max_rounds=max_rounds, on_error=on_error,
                        tool_timeout=tool_timeout, chat_options={"think": think, **chat_options})

    def generate(
        self,
        model: str,
        prompt: str | None = None,
        *,
        suffix: str | None = None,
        system: str | None = None,
        template: str | None = None,
        context: Sequence[int] | None = None,
        raw: bool | None = None,
        images: Sequence[Any] | None = None,
        format: str | dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        keep_alive: float | str | None = None,
        think: bool | str | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
    ) -> GenerateStream:
        """Stream a completion from `POST /api/generate`. Arguments are checked now; nothing is sent until the
        stream is iterated. Images may be bytes, paths, or base64 strs. None = not sent."""
        from .endpoints import GenerateAccumulator, build_generate_request, parse_generate_chunk

        body = build_generate_request(model, prompt, suffix=suffix, system=system, template=template,
                                      context=context, raw=raw, images=images, format=format, options=options,
                                      keep_alive=keep_alive, think=think, logprobs=logprobs,
                                      top_logprobs=top_logprobs)
        return GenerateStream(_Call(self, "/api/generate", orjson.dumps(body), model, parse=parse_generate_chunk,
                                    acc=GenerateAccumulator()))

    def _progress(self, path: str, model: str, body: dict[str, Any]) -> ProgressStream:
        from .endpoints import ProgressAccumulator, parse_progress

        return ProgressStream(_Call(self, path, orjson.dumps({**body, "stream": True}), model,
                                    parse=parse_progress, acc=ProgressAccumulator()))

    def pull(self, model: str, *, insecure: bool = False) -> ProgressStream:
        """Download a model: a stream of Progress lines (per layer: digest, total, completed), ending in
        `success`. An `{"error"}` line (e.g. an unknown model) raises StreamError."""
        body: dict[str, Any] = {"model": check_model(model)}
        if insecure:
            body["insecure"] = True
        return self._progress("/api/pull", model, body)

    def push(self, model: str, *, insecure: bool = False) -> ProgressStream:
        """Upload a model to its registry: a stream of Progress lines ending in `success`."""
        body: dict[str, Any] = {"model": check_model(model)}
        if insecure:
            body["insecure"] = True
        return self._progress("/api/push", model, body)

    def create(
        self,
        model: str,
        *,
        from_: str | None = None,
        files: Mapping[str, str] | None = None,
        adapters: Mapping[str, str] | None = None,
        template: str | None = None,
        license: str | Sequence[str] | None = None,
        system: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        messages: Sequence[Message | dict[str, Any]] | None = None,
        quantize: str | None = None,
    ) -> ProgressStream:
        """Create a model from another (`from_`) or from uploaded blobs (`files`: name -> digest, see
        `create_blob`): a stream of Progress lines ending in `success`."""
        body: dict[str, Any] = {"model": check_model(model)}
        for name, value in (("from", from_), ("template", template), ("system", system), ("quantize", quantize)):
            if value is not None:
                if not isinstance(value, str):
                    raise TypeError(f"{'from_' if name == 'from' else name} must be a str, not {type(value).__name__}")
                body[name] = value
        for name, mapping in (("files", files), ("adapters", adapters), ("parameters", parameters)):
            if mapping is not None:
                if not isinstance(mapping, Mapping):
                    raise TypeError(f"{name} must be a dict, not {type(mapping).__name__}")
                body[name] = dict(mapping)
        if license is not None:
            body["license"] = license if isinstance(license, str) else list(license)
        if messages is not None:
            body["messages"] = build_chat_request(model, messages)["messages"]
        if from_ is None and not files:
            raise ValueError("create needs from_ (an existing model) or files (blobs uploaded with create_blob)")
        return self._progress("/api/create", model, body)

    async def embed(
        self,
        model: str,
        input: str | Sequence[str],
        *,
        truncate: bool | None = None,
        dimensions: int | None = None,
        keep_alive: float | str | None = None,
        options: dict[str, Any] | None = None,
    ) -> EmbedResult:
        """Embed one text or several: `POST /api/embed`. One vector (list of floats) per input, in order."""
        body: dict[str, Any] = {"model": check_model(model)}
        if isinstance(input, str):
            body["input"] = input
        elif isinstance(input, Sequence) and all(isinstance(text, str) for text in input):
            body["input"] = list(input)
        else:
            raise TypeError("input must be a str or a list of str")
        if truncate is not None:
            body["truncate"] = bool(truncate)
        if dimensions is not None:
            if isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1:
                raise ValueError(f"dimensions must be a positive int, got {dimensions!r}")
            body["dimensions"] = dimensions
        if keep_alive is not None:
            body["keep_alive"] = keep_alive
        if options is not None:
            body["options"] = options
        from .endpoints import parse_embed

        return parse_embed(await self._json("POST", "/api/embed", body, model))

    async def list(self) -> ListResult:
        """The models on the server (`GET /api/tags`)."""
        from .endpoints import parse_list

        return parse_list(await self._json("GET", "/api/tags"))

    async def show(self, model: str, *, verbose: bool = False) -> ShowResult:
        """A model's details, template, parameters and capabilities (`POST /api/show`)."""
        body: dict[str, Any] = {"model": check_model(model)}
        if verbose:
            body["verbose"] = True
        from .endpoints import parse_show

        return parse_show(await self._json("POST", "/api/show", body, model))

    async def ps(self) -> PsResult:
        """The models loaded in memory now (`GET /api/ps`)."""
        from .endpoints import parse_ps

        return parse_ps(await self._json("GET", "/api/ps"))

    async def version(self) -> str:
        """The server's version (`GET /api/version`)."""
        version = (await self._json("GET", "/api/version")).get("version")
        if not isinstance(version, str):
            raise ProtocolError(f"{self.host}/api/version did not give a version string: {version!r}")
        return version

    async def delete(self, model: str) -> None:
        """Delete a model from the server (`DELETE /api/delete`); ModelNotFoundError when it is not there."""
        await self._unary("DELETE", "/api/delete", {"model": check_model(model)}, model)

    async def copy(self, source: str, destination: str) -> None:
        """Copy a model under a new name (`POST /api/copy`); ModelNotFoundError when the source is missing."""
        await self._unary("POST", "/api/copy", {"source": check_model(source),
                                                 "destination": check_model(destination)}, source)

    async def create_blob(self, path: str | os.PathLike[str]) -> str:
        """Upload a file as a blob (`POST /api/blobs/sha256:...`) unless the server has it; return its digest,
        for `create(files={name: digest})`."""
        file = os.fspath(path)
        digest = "sha256:" + await asyncio.to_thread(_sha256_of, file)
        if not await self.has_blob(digest):
            await self._unary("POST", f"/api/blobs/{digest}", lambda: open(file, "rb"))  # noqa: SIM115 - aiohttp closes it
        return digest

    async def has_blob(self, digest: str) -> bool:
        """Whether the server has a blob (`HEAD /api/blobs/<digest>`)."""
        if not isinstance(digest, str) or not digest.startswith("sha256:"):
            raise ValueError(f"a blob digest looks like 'sha256:<64 hex digits>', got {digest!r}")
        try:
            await self._unary("HEAD", f"/api/blobs/{digest}")
        except ResponseError as exc:
            if exc.status_code == 404:
                return False
            raise
        return True

    async def is_running(self) -> bool:
        """True when an Ollama server answers at `host` (`GET /`); False when nothing is listening there."""
        try:
            await self._unary("GET", "/", retry=_NO_RETRY)
        except (OllamaConnectionError, OllamaTimeoutError):
            return False
        return True

    async def _json(self, method: str, path: str, body: Any = None, model: str | None = None) -> dict[str, Any]:
        data = await self._unary(method, path, body, model)
        try:
            decoded = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise ProtocolError(f"{self.host}{path} did not answer with JSON: {data[:200]!r}") from None
        if not isinstance(decoded, dict):
            raise ProtocolError(f"{self.host}{path} answered a JSON {type(decoded).__name__}, not an object")
        return decoded

    # -- the request machinery shared by every streamed endpoint --------------------------------------

    async def _open(self, call: _Call, first: Callable[[aiohttp.ClientResponse, _Call], Awaitable[T]]
                    ) -> tuple[aiohttp.ClientResponse, T]:
        """Send the request, retrying what is safe, until `first` has what it needs from the response (the
        first decoded line of a stream, or the whole body of a plain reply)."""
        session = await self._get_session()
        loop = asyncio.get_running_loop()
        watchdog = call.watchdog = _Watchdog(loop, self.timeouts)
        policy = call.retry
        while True:
            call.attempts += 1
            watchdog.start_attempt()
            try:
                return await watchdog.waiting(self._attempt(session, call, first))
            except (aiohttp.ClientError, OSError, _Expired, ResponseError, _EarlyEOF) as exc:
                _close_response(call)
                error: OllamaError
                if isinstance(exc, ResponseError):
                    error, reason = exc, str(exc.status_code)
                    retryable = exc.status_code in RETRYABLE_STATUSES
                else:
                    error, reason, retryable = self._translate(exc, call, started=False)
                call.failures.append(reason)
                delay = policy.delay(call.attempts, getattr(error, "retry_after", None), self._rng) \
                    if retryable and call.attempts < policy.max_attempts else None
                watchdog.cancel()  # no phase runs during the wait; the total deadline is checked here
                if delay is None or loop.time() + delay >= watchdog.total_deadline:
                    raise _final(error, call) from (exc if error is not exc else exc.__cause__)
                await self._sleep(delay)
            except OllamaError as exc:
                _close_response(call)
                watchdog.cancel()
                raise _with_context(exc, call) from exc.__cause__

    async def _attempt(self, session: aiohttp.ClientSession, call: _Call,
                       first: Callable[[aiohttp.ClientResponse, _Call], Awaitable[T]]
                       ) -> tuple[aiohttp.ClientResponse, T]:
        """One try of the request: send it, check the status and the content type, let `first` read."""
        body = call.body() if callable(call.body) else call.body
        resp = call.response = await session.request(call.method, call.url, data=body)
        assert call.watchdog is not None
        call.watchdog.reader = resp.content
        if not 200 <= resp.status < 300:
            raise await self._status_error(resp, call)
        if resp.headers.get("Content-Type", "").startswith("text/html"):
            raise ProtocolError(
                f"{call.url} answered {resp.status} with an HTML page, not Ollama's JSON; is host / "
                "OLLAMA_HOST pointing at Ollama (and not at a web server or a proxy's page)?"
            )
        return resp, await first(resp, call)

    async def _unary(self, method: str, path: str, body: Any = None, model: str | None = None, *,
                     retry: RetryPolicy | None = None) -> bytes:
        """A plain request/response exchange with the same retries, timeouts and error mapping as streams."""
        call = _Call(self, path, orjson.dumps(body) if body is not None and not callable(body) else body, model,
                     method=method, retry=retry)
        try:
            resp, data = await self._open(call, _read_body)
            resp.release()
            return data
        finally:
            if call.watchdog is not None:
                call.watchdog.cancel()
            _close_response(call)

    async def _status_error(self, resp: aiohttp.ClientResponse, call: _Call) -> ResponseError:
        try:
            body = await resp.content.read(_ERROR_BODY_LIMIT)
        except (aiohttp.ClientError, OSError, _Expired):
            body = b""
        text = ""
        try:
            decoded = orjson.loads(body) if body else None
            if isinstance(decoded, dict):
                text = error_text(decoded) or ""
        except orjson.JSONDecodeError:
            pass
        if not text:
            text = body[:2000].decode("utf-8", "replace").strip()[:500] or (resp.reason or "no body")
        status = resp.status
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        common = {"status_code": status, "error": text, "url": call.url, "model": call.model,
                  "retry_after": retry_after}
        if status == 404 and call.model:
            return ModelNotFoundError(
                f"model {call.model!r} not found on {self.host} (HTTP 404: {text}). "
                f"Pull it first: ollama pull {call.model}",
                **common,  # type: ignore[arg-type]
            )
        hint = _STATUS_HINTS.get(status, "")
        return ResponseError(f"HTTP {status} from {call.what}: {text}. {hint}".rstrip(),
                             **common)  # type: ignore[arg-type]

    def _translate(self, exc: BaseException, call: _Call, *, started: bool) -> tuple[OllamaError, str, bool]:
        """Map a transport failure to (our error, a short reason for the attempt log, is it retryable)."""
        partial = call.partial()
        kw: dict[str, Any] = {"partial": partial, "attempts": max(call.attempts, 1),
                              "failures": tuple(call.failures)}
        url = call.url
        if isinstance(exc, (_Expired, aiohttp.ConnectionTimeoutError)):
            phase, limit = (exc.phase, exc.limit) if isinstance(exc, _Expired) else ("connect",
                                                                                    self.timeouts.connect)
            what = {
                "connect": "could not connect to",
                "first_chunk": "got no first chunk from",
                "idle": "got no new line from",
                "total": "did not finish the call to",
                "drain": "did not see the end of",
            }.get(phase, "timed out on")
            err: OllamaError = OllamaTimeoutError(
                f"{what} {call.what} within {limit}s ({phase} timeout). "
                f"{_TIMEOUT_HINTS.get(phase, '')}".rstrip(),
                phase=phase, timeout=limit, **kw,
            )
            return err, f"{phase} timeout", (phase in ("connect", "first_chunk") and not started)
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            return OllamaConnectionError(
                f"cannot resolve the host of {self.host}: {exc.os_error}. Check host= or OLLAMA_HOST.",
                url=url, **kw), "DNS failure", True
        if isinstance(exc, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError)):
            tls = OllamaConnectionError(
                f"TLS failed with {self.host}: {exc}. Check the certificate, or pass ssl= to AsyncOllama.",
                url=url, **kw)
            tls.retryable = False
            return tls, "TLS failure", False
        if isinstance(exc, aiohttp.ClientConnectorError):
            reason = _os_reason(exc.os_error)
            return OllamaConnectionError(
                f"cannot connect to Ollama at {self.host}: {reason}. Is it running? Start it with "
                "`ollama serve`, or point host= / OLLAMA_HOST at the right address.",
                url=url, **kw), reason, True
        if isinstance(exc, aiohttp.ClientResponseError):  # aiohttp could not parse the HTTP response
            return ProtocolError(f"{url} did not answer with valid HTTP ({exc.message}); is host / OLLAMA_HOST "
                                 "pointing at Ollama?", **kw), "invalid HTTP", False
        if isinstance(exc, aiohttp.InvalidURL):
            return OllamaConnectionError(f"invalid URL {url}: {exc}", url=url, **kw), "invalid URL", False
        # Dropped connections: ServerDisconnectedError, ClientPayloadError, resets, early EOF.
        detail = str(exc) or type(exc).__name__
        if started:
            return StreamInterrupted(
                f"the connection to {call.what} dropped after {call.acc.chunks} chunks, "
                f"before the final chunk ({detail}). The partial reply is in .partial; nothing was retried "
                "because output had already reached you.", **kw), "connection dropped", False
        return OllamaConnectionError(
            f"the connection to {call.what} closed before the first chunk ({detail}). "
            "Check the server log; a proxy may be cutting the connection.",
            url=url, **kw), "connection reset", True


_TIMEOUT_HINTS = {
    "connect": "Is the server reachable? Raise Timeouts(connect=...) for slow networks.",
    "first_chunk": "The model may still be loading: raise Timeouts(first_chunk=...) or preload it with "
                   "keep_alive.",
    "idle": "The server stalled mid-reply; raise Timeouts(idle=...) if this model is slow.",
    "total": "Raise Timeouts(total=...) or set it to None for no overall limit.",
}


class _EarlyEOF(Exception):
    """The body ended before its first line."""


async def _read_body(resp: aiohttp.ClientResponse, call: _Call) -> bytes:
    return await resp.read()


async def _first_objects(resp: aiohttp.ClientResponse, call: _Call) -> list[dict[str, Any]]:
    reader, decoder = resp.content, call.decoder
    while True:
        data = await reader.readany()
        if not data:
            objs = decoder.close()
            if objs:
                return objs
            raise _EarlyEOF("the response body ended before its first line")
        objs = decoder.feed(data)
        if objs:
            return objs


def _final(error: OllamaError, call: _Call) -> OllamaError:
    """The error that ends a call, with the attempt log in its message when there were retries."""
    error.attempts = call.attempts
    error.failures = tuple(call.failures)
    if call.attempts > 1:
        error.args = (f"{error.message} (gave up after {call.attempts} attempts: {', '.join(call.failures)})",)
    return error


def _sha256_of(path: str) -> str:
    import hashlib

    if not os.path.isfile(path):
        raise ValueError(f"create_blob: {path!r} is not a file")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _os_reason(exc: OSError | None) -> str:
    if exc is None:
        return "connection failed"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return exc.strerror or str(exc) or type(exc).__name__


async def _close_with_loop(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        if not session.closed:
            await session.close()


def _build_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    out = {
        "User-Agent": f"ollama-stream/{__version__}",
        "Content-Type": "application/json",
        "Accept": "application/x-ndjson, application/json",
    }
    key = os.environ.get("OLLAMA_API_KEY", "").strip()
    if key:
        out["Authorization"] = f"Bearer {key}"
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("headers must map str names to str values")
        if any(c in name for c in "\r\n:\0") or not name.strip():
            raise ValueError(f"invalid header name {name!r}")
        if any(c in value for c in "\r\n\0"):
            raise ValueError(f"the value of header {name!r} contains a line break or NUL")
        out[name] = value
    return out
