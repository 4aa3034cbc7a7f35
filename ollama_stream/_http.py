"""One exchange with the server: its state (`Exchange`), the aiohttp session per event loop and the
headers (`Transport`), one attempt at sending (`send`), and the one place where aiohttp, OS and
watchdog failures and HTTP statuses become this SDK's errors (`map_error`, `status_error`).

Rules of this room:
1. Within the package only this module imports aiohttp (besides backends/ and testing/): every other
   module sees our errors only, each raised `from` the foreign exception it stands for.
2. An attempt either returns an open response with what its reader needed, or raises an OllamaError
   having closed the response: a failed attempt leaves nothing open.
3. Whether a failure is retried is not decided here (`RetryPolicy.retries` does that); what a
   failure is, is: `map_error` says, for instance, that a TLS failure cannot be fixed by retrying.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

import aiohttp
import orjson

from ._server_errors import error_for_status
from ._version import __version__
from ._watchdog import Expired, Watchdog
from .config import RetryPolicy, Timeouts, parse_retry_after
from .errors import (
    OllamaConnectionError,
    OllamaError,
    OllamaTimeoutError,
    ProtocolError,
    ResponseError,
    StreamError,
    StreamInterrupted,
)
from .protocol import ChatAccumulator, NDJSONDecoder, error_text, parse_chat_chunk
from .types import Message

__all__ = ["TRANSPORT_ERRORS", "EarlyEOF", "Exchange", "Response", "Transport", "build_headers",
           "map_error", "read_body", "send"]

T = TypeVar("T")
Response = aiohttp.ClientResponse
# What a read from a response can raise besides our own errors: mapped by `map_error`.
TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, Expired)

_ERROR_BODY_LIMIT = 64 * 1024
_TIMEOUT_WHAT = {
    "connect": "could not connect to",
    "first_chunk": "got no first chunk from",
    "idle": "got no new line from",
    "total": "did not finish the call to",
    "pool": "found no free connection for",
    "drain": "did not see the end of",
}
_TIMEOUT_HINTS = {
    "connect": "Is the server reachable? Raise Timeouts(connect=...) for slow networks.",
    "first_chunk": "The model may still be loading: raise Timeouts(first_chunk=...), or load it "
                   "first with client.load(model). Not retried: Ollama stops a load when its "
                   "client leaves, so a retry would start the load again.",
    "idle": "The server stalled mid-reply; raise Timeouts(idle=...) if this model is slow.",
    "total": "Raise Timeouts(total=...) or set it to None for no overall limit.",
}


class _Accumulator(Protocol):
    """What an exchange needs of the accumulator of its kind of stream."""

    chunks: int
    done: bool

    def add(self, chunk: Any) -> None: ...

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
    """

    __slots__ = ("acc", "attempts", "backend", "body", "decoder", "error", "failures", "finished",
                 "method", "model", "num_ctx", "parse", "path", "request", "response", "retry",
                 "rng", "sleep", "timeouts", "transport", "url", "watchdog")

    def __init__(self, transport: Transport, path: str, body: Any, model: str | None, *,
                 timeouts: Timeouts, retry: RetryPolicy, max_line_bytes: int,
                 sleep: Callable[[float], Awaitable[Any]], rng: random.Random,
                 method: str = "POST", parse: Callable[[dict[str, Any]], Any] = parse_chat_chunk,
                 acc: _Accumulator | None = None, backend: Any = None, request: Any = None,
                 num_ctx: int | None = None) -> None:
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
        self.parse = parse
        self.num_ctx = num_ctx  # the context window the request asked for (options.num_ctx)
        self.acc: _Accumulator = acc if acc is not None else ChatAccumulator(num_ctx)
        self.decoder = NDJSONDecoder(max_line_bytes)
        self.backend = backend
        self.request = request
        self.watchdog: Watchdog | None = None
        self.response: Response | None = None
        self.attempts = 0
        self.failures: list[str] = []
        self.finished = False
        self.error: BaseException | None = None

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

    def close_response(self) -> None:
        response = self.response
        if response is not None:
            self.response = None
            response.close()


class Transport:
    """The client's side of the wire: its host, headers and connection pool, with one aiohttp
    ClientSession per event loop, made lazily inside the running loop."""

    __slots__ = ("_guard", "_loop", "_session", "closed", "headers", "host", "pool_limit", "ssl")

    def __init__(self, host: str, headers: dict[str, str], *, pool_limit: int, ssl: Any) -> None:
        self.host = host
        self.headers = headers
        self.pool_limit = pool_limit
        self.ssl = ssl
        self.closed = False
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._guard: AsyncGenerator[None, None] | None = None

    async def session(self) -> aiohttp.ClientSession:
        """The session of the running loop, made on first use."""
        if self.closed:
            raise RuntimeError("this AsyncOllama is closed; create a new client")
        loop = asyncio.get_running_loop()
        session = self._session
        if session is not None and self._loop is loop and not session.closed:
            return session
        old = self._loop
        if session is not None and old is not loop:
            if old is not None and not old.is_closed() and old.is_running():
                raise RuntimeError(
                    "this AsyncOllama is in use by another running event loop; create one client "
                    "per loop (or use the blocking Ollama client across threads)"
                )
            # The old loop has ended: its session was closed by the loop guard (below).
            self._session = self._guard = None
        connector = aiohttp.TCPConnector(limit=self.pool_limit,
                                         **({"ssl": self.ssl} if self.ssl is not None else {}))
        # A wait for a free connection is the watchdog's `pool` phase, not first_chunk time.
        pool_wait = aiohttp.TraceConfig()
        pool_wait.on_connection_queued_start.append(_queued)
        pool_wait.on_connection_queued_end.append(_dequeued)
        session = aiohttp.ClientSession(connector=connector, headers=self.headers,
                                        timeout=aiohttp.ClientTimeout(total=None),
                                        auto_decompress=False, trace_configs=[pool_wait])
        self._session, self._loop = session, loop
        # asyncio.run() finalizes live async generators before closing its loop: this one closes the
        # session then, so a client used across several asyncio.run() calls leaves no socket behind.
        guard = _close_with_loop(session)
        await guard.__anext__()
        self._guard = guard
        return session

    async def close(self) -> None:
        """Close the session; the transport cannot be used afterwards."""
        self.closed = True
        session, guard = self._session, self._guard
        self._session = self._guard = None
        self._loop = None
        if session is not None and not session.closed:
            await session.close()
        if guard is not None:
            await guard.aclose()


async def _queued(session: Any, context: Any, params: Any) -> None:
    watchdog = context.trace_request_ctx
    if isinstance(watchdog, Watchdog):
        watchdog.waiting_for_connection()


async def _dequeued(session: Any, context: Any, params: Any) -> None:
    watchdog = context.trace_request_ctx
    if isinstance(watchdog, Watchdog):
        watchdog.connection_free()


async def _close_with_loop(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        if not session.closed:
            await session.close()


def build_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Our headers, OLLAMA_API_KEY as a bearer token when set, then the caller's (checked).

    Names match without regard to case, so a caller's `user-agent` replaces ours instead of going
    out beside it (an explicit User-Agent, Accept or Authorization wins); Content-Type stays
    application/json, the only type Ollama's API reads, and Accept-Encoding identity: another
    value of either is a ValueError.
    """
    out = {
        "User-Agent": f"ollama-stream/{__version__}",
        "Content-Type": "application/json",
        "Accept": "application/x-ndjson, application/json",
        "Accept-Encoding": "identity",  # see _send: compressed bodies are refused, never inflated
    }
    key = os.environ.get("OLLAMA_API_KEY", "").strip()
    if key:
        out["Authorization"] = f"Bearer {key}"
    spelled = {name.lower(): name for name in out}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("headers must map str names to str values")
        if any(c in name for c in "\r\n:\0") or not name.strip():
            raise ValueError(f"invalid header name {name!r}")
        if any(c in value for c in "\r\n\0"):
            raise ValueError(f"the value of header {name!r} contains a line break or NUL")
        lowered = name.lower()
        if lowered == "content-type" and value.split(";")[0].strip().lower() != "application/json":
            raise ValueError(f"the {name} header cannot be {value!r}: Ollama's API takes "
                             "application/json bodies, which this client sends")
        if lowered == "accept-encoding" and value.strip().lower() != "identity":
            raise ValueError(f"the {name} header cannot be {value!r}: this client reads "
                             "uncompressed bodies only (Ollama does not compress its answers)")
        out[spelled.setdefault(lowered, name)] = value
    return out


class EarlyEOF(Exception):
    """Raised by an attempt's reader when the body ends before what it needs (its first line)."""


First = Callable[[Response, Exchange], Awaitable[T]]


async def send(exchange: Exchange, first: First[T]) -> tuple[Response, T]:
    """One attempt: send the request, check the status and content type, and let `first` read what
    it needs (the first lines of a stream, or the whole body). Raises only OllamaErrors (rule 2).
    It waits with the watchdog armed (`reading`), so a phase limit may cancel it: that cancel comes
    out as the timeout it stands for. (One coroutine, not a wrapper around one: each suspension of
    an attempt resumes every frame of it.)"""
    watchdog = exchange.watchdog
    assert watchdog is not None
    watchdog.reading = True
    try:
        session = await exchange.transport.session()
        body = exchange.body() if callable(exchange.body) else exchange.body
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=exchange.timeouts.connect)
        try:
            resp = await session.request(exchange.method, exchange.url, data=body,
                                         timeout=timeout, trace_request_ctx=watchdog)
        except aiohttp.ClientError:
            raise  # aiohttp's own (its InvalidURL is also a ValueError): mapped below
        except ValueError as exc:  # yarl cannot encode the URL (a UnicodeError: a bad host name)
            raise _invalid_url(exchange, exc) from exc
        exchange.response = resp
        watchdog.reader = resp.content
        _check_answer(resp, exchange)
        if not 200 <= resp.status < 300:
            raise await status_error(resp, exchange)
        return resp, await first(resp, exchange)
    except BaseException as exc:
        exchange.close_response()
        if isinstance(exc, asyncio.CancelledError):
            expired = watchdog.timeout_behind_cancel()
            if expired is None:
                raise
            raise map_error(expired, exchange, started=False) from None
        # Ours already are raised as they are (an OllamaConnectionError is an OSError too).
        if isinstance(exc, OllamaError) or not isinstance(exc, (*TRANSPORT_ERRORS, EarlyEOF)):
            raise
        raise map_error(exc, exchange, started=False) from exc
    finally:
        watchdog.reading = False


def _check_answer(resp: Response, exchange: Exchange) -> None:
    """Refuse what is not Ollama's answer: a compressed body, an HTML page."""
    encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        # Asked for none (Accept-Encoding: identity) and never inflated here: a small compressed
        # body can inflate to gigabytes, and Ollama itself does not compress.
        raise ProtocolError(
            f"{exchange.url} answered with a {encoding}-compressed body although this client asks "
            "for none (Accept-Encoding: identity); Ollama does not compress, so a proxy in "
            "between did: turn its compression off for Ollama's API")
    if 200 <= resp.status < 300 and resp.headers.get("Content-Type", "").lower().startswith(
            "text/html"):
        raise ProtocolError(
            f"{exchange.url} answered {resp.status} with an HTML page, not Ollama's JSON; is "
            "host / OLLAMA_HOST pointing at Ollama (and not at a web server or a proxy's page)?"
        )


async def read_body(resp: Response, exchange: Exchange) -> bytes:
    """The reader of a plain (not streamed) reply: the whole body."""
    return await resp.read()


async def status_error(resp: Response, exchange: Exchange) -> ResponseError:
    """The error for a non-2xx answer, with the server's own text (from `{"error": ...}` or the
    body)."""
    try:
        body = await resp.content.read(_ERROR_BODY_LIMIT)
    except TRANSPORT_ERRORS:
        body = b""
    text, signin_url = "", None
    try:
        decoded = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        decoded = None
    if isinstance(decoded, dict):
        nested = decoded.get("error")
        if isinstance(nested, dict) and isinstance(nested.get("message"), str):
            text = nested["message"]  # llama-server's {"error": {"code", "message", "type"}}
        else:
            text = error_text(decoded) or ""
        if isinstance(decoded.get("signin_url"), str):
            signin_url = decoded["signin_url"]
    if not text:
        text = body[:2000].decode("utf-8", "replace").strip()[:500] or (resp.reason or "no body")
    return error_for_status(resp.status, text, what=exchange.what, url=exchange.url,
                            host=exchange.transport.host, model=exchange.model,
                            signin_url=signin_url, num_ctx=exchange.num_ctx,
                            retry_after=parse_retry_after(resp.headers.get("Retry-After")))


def map_error(exc: BaseException, exchange: Exchange, *, started: bool) -> OllamaError:
    """Our error for a failure of the transport (aiohttp, the OS) or of a phase limit. `started`:
    output already reached the caller, so a dropped connection is a StreamInterrupted."""
    kw = _context(exchange)
    url, host = exchange.url, exchange.transport.host
    if isinstance(exc, (Expired, aiohttp.ConnectionTimeoutError)):
        if isinstance(exc, Expired):
            phase, limit = exc.phase, exc.limit
        else:
            phase, limit = "connect", exchange.timeouts.connect
        what = _TIMEOUT_WHAT.get(phase, "timed out on")
        hint = _TIMEOUT_HINTS.get(phase, "")
        if isinstance(exc, Expired) and "pool" in (phase, exc.during):
            hint = (f"It was still waiting for a free connection: all pool_limit="
                    f"{exchange.transport.pool_limit} connections were busy with other calls. "
                    "Raise pool_limit or Timeouts(pool=...), or close streams sooner.")
        return OllamaTimeoutError(
            f"{what} {exchange.what} within {limit}s ({phase} timeout). {hint}".rstrip(),
            phase=phase, timeout=limit, **kw)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return OllamaConnectionError(
            f"cannot resolve the host of {host}: {exc.os_error}. Check host= or OLLAMA_HOST.",
            url=url, reason="DNS failure", **kw)
    if isinstance(exc, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError)):
        return OllamaConnectionError(
            f"TLS failed with {host}: {exc}. Check the certificate, or pass ssl= to AsyncOllama.",
            url=url, retryable=False, reason="TLS failure", **kw)
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = _os_reason(exc.os_error)
        return OllamaConnectionError(
            f"cannot connect to Ollama at {host}: {reason}. Is it running? Start it with "
            "`ollama serve`, or point host= / OLLAMA_HOST at the right address.",
            url=url, reason=reason, **kw)
    if isinstance(exc, aiohttp.ClientResponseError):  # aiohttp could not parse the HTTP response
        return ProtocolError(f"{url} did not answer with valid HTTP ({exc.message}); is host / "
                             "OLLAMA_HOST pointing at Ollama?", **kw)
    if isinstance(exc, aiohttp.InvalidURL):
        return _invalid_url(exchange, exc)
    # Dropped connections: ServerDisconnectedError, ClientPayloadError, resets, an early EOF.
    detail = str(exc) or type(exc).__name__
    if started:
        return StreamInterrupted(
            f"the connection to {exchange.what} dropped after {exchange.acc.chunks} chunks, "
            f"before the final chunk ({detail}). The partial reply is in .partial; nothing was "
            "retried because output had already reached you.", **kw)
    return OllamaConnectionError(
        f"the connection to {exchange.what} closed before the first chunk ({detail}). "
        "Check the server log; a proxy may be cutting the connection.",
        url=url, reason="connection reset", **kw)


def _context(exchange: Exchange) -> dict[str, Any]:
    """What every mapped error carries about the exchange so far."""
    return {"partial": exchange.partial(), "attempts": max(exchange.attempts, 1),
            "failures": tuple(exchange.failures)}


def _invalid_url(exchange: Exchange, exc: Exception) -> OllamaConnectionError:
    return OllamaConnectionError(
        f"invalid URL {exchange.url}: {exc}. Check host= or OLLAMA_HOST.", url=exchange.url,
        retryable=False, reason="invalid URL", **_context(exchange))


def _os_reason(exc: OSError | None) -> str:
    if exc is None:
        return "connection failed"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return exc.strerror or str(exc) or type(exc).__name__
