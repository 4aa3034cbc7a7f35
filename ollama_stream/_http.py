"""One exchange with the server: the aiohttp session per event loop and the headers (`Transport`),
and one attempt at sending a request (`send`), redirects and odd answers included.

Rules of this room:
1. Within the package only the wire modules import aiohttp (this one and `_http_errors`, besides
   backends/ and testing/): every other module sees our errors only, which `_http_errors` makes,
   each raised `from` the foreign exception it stands for.
2. An attempt either returns an open response with what its reader needed, or raises an OllamaError
   having closed the response: a failed attempt leaves nothing open.
3. Whether a failure is retried is not decided here (`RetryPolicy.retries` does that).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp

from ._exchange import Exchange
from ._http_errors import (
    TRANSPORT_ERRORS,
    EarlyEOF,
    Response,
    invalid_url,
    map_error,
    status_error,
)
from ._version import __version__
from ._watchdog import Watchdog
from .errors import OllamaError, ProtocolError, ResponseError

__all__ = ["Transport", "build_headers", "read_body", "send"]

T = TypeVar("T")


class Transport:
    """The client's side of the wire: its host, headers and connection pool, with one aiohttp
    ClientSession per event loop, made lazily inside the running loop."""

    __slots__ = ("_guard", "_loop", "_pid", "_session", "closed", "headers", "host", "pool_limit",
                 "ssl")

    def __init__(self, host: str, headers: dict[str, str], *, pool_limit: int, ssl: Any) -> None:
        self.host = host
        self.headers = headers
        self.pool_limit = pool_limit
        self.ssl = ssl
        self.closed = False
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._guard: AsyncGenerator[None, None] | None = None
        self._pid = os.getpid()

    async def session(self) -> aiohttp.ClientSession:
        """The session of the running loop, made on first use."""
        if self.closed:
            raise RuntimeError("this AsyncOllama is closed; create a new client")
        if self._session is not None and self._pid != os.getpid():
            # Forked: the session, its loop and its sockets are the parent's. Closing them here
            # could end the parent's connections (a TLS close_notify), so they are left alone,
            # and kept referenced so that no finalizer closes them either.
            _FORKED_AWAY.append((self._session, self._guard))
            self._session = self._guard = self._loop = None
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
        connector = _Connector(limit=self.pool_limit,
                               **({"ssl": self.ssl} if self.ssl is not None else {}))
        # A wait for a free connection is the watchdog's `pool` phase, not first_chunk time.
        pool_wait = aiohttp.TraceConfig()
        pool_wait.on_connection_queued_start.append(_queued)
        pool_wait.on_connection_queued_end.append(_dequeued)
        session = aiohttp.ClientSession(connector=connector, headers=self.headers,
                                        timeout=aiohttp.ClientTimeout(total=None),
                                        auto_decompress=False, trace_configs=[pool_wait])
        self._session, self._loop, self._pid = session, loop, os.getpid()
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
        if session is not None and self._pid != os.getpid():
            _FORKED_AWAY.append((session, guard))  # the parent's (see session()): left alone
            return
        if session is not None and not session.closed:
            await session.close()
        if guard is not None:
            await guard.aclose()


_FORKED_AWAY: list[Any] = []  # the parent's sessions, in a forked child: never used or closed


class _Connector(aiohttp.TCPConnector):
    """A TCPConnector that never lends out a pooled connection on which bytes arrived while it
    sat idle (a server or proxy that wrote an answer nobody asked for): aiohttp would parse those
    bytes as the next request's reply. Such a connection is closed and a fresh one is opened."""

    async def _get(self, key: Any, traces: Any) -> Any:
        pooled = getattr(self, "_conns", {}).get(key)  # aiohttp's pool: (protocol, since) pairs
        if pooled:
            for entry in list(pooled):
                protocol = entry[0]
                if getattr(protocol, "should_close", False):  # unread bytes, or broken
                    pooled.remove(entry)
                    protocol.close()
        return await super()._get(key, traces)


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


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 section 5.6.2
_FIELD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # control characters but HTAB


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
    if headers is not None and not isinstance(headers, Mapping):
        raise TypeError(f"headers must be a mapping of names to values, not "
                        f"{type(headers).__name__}")
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("headers must map str names to str values")
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}: a name is letters, digits and "
                             "!#$%&'*+-.^_`|~ only (RFC 9110)")
        if _FIELD_VALUE.search(value):
            raise ValueError(f"the value of header {name!r} holds a control character (a line "
                             "break, NUL, ...), which no header value may (RFC 9110)")
        lowered = name.lower()
        if lowered == "content-type" and value.split(";")[0].strip().lower() != "application/json":
            raise ValueError(f"the {name} header cannot be {value!r}: Ollama's API takes "
                             "application/json bodies, which this client sends")
        if lowered == "accept-encoding" and value.strip().lower() != "identity":
            raise ValueError(f"the {name} header cannot be {value!r}: this client reads "
                             "uncompressed bodies only (Ollama does not compress its answers)")
        out[spelled.setdefault(lowered, name)] = value
    return out


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
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=exchange.timeouts.connect)
        url, visited = exchange.url, [exchange.url]
        while True:  # a same-origin 307/308 (or a redirected GET) is followed; see _redirect
            body = exchange.body() if callable(exchange.body) else exchange.body
            try:
                resp = await session.request(exchange.method, url, data=body, timeout=timeout,
                                             trace_request_ctx=watchdog, allow_redirects=False)
            except aiohttp.ClientError:
                raise  # aiohttp's own (its InvalidURL is also a ValueError): mapped below
            except ValueError as exc:  # yarl cannot encode the URL (a bad host name)
                raise invalid_url(exchange, exc) from exc
            exchange.response = resp
            if resp.status not in _REDIRECTS:
                break
            url = _redirect(exchange, resp, visited)
            exchange.close_response()
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


_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5


def _redirect(exchange: Exchange, resp: Response, visited: list[str]) -> str:
    """Where a redirect may be followed to, or the error that says why it is not: a POST is never
    turned into a GET (301/302/303), and nothing leaves the origin the client was given, so the
    Authorization header never travels to another host."""
    status, location = resp.status, resp.headers.get("Location", "")
    said = f"HTTP {status} from {exchange.what} redirects to {location or '(no Location)'}"

    def refused(why: str) -> ResponseError:
        return ResponseError(f"{said}: {why}", status_code=status, error=f"redirect to {location}",
                             url=exchange.url, model=exchange.model)

    # resp.url is a yarl URL, aiohttp's own type (so no import of yarl here)
    target = resp.url.join(type(resp.url)(location)) if location else None
    if target is None or target.scheme not in ("http", "https"):
        raise refused("not followed, since it is not an http(s) URL; a redirect like this means "
                      "host= / OLLAMA_HOST does not point at Ollama")
    if status in (301, 302, 303) and exchange.method not in ("GET", "HEAD"):
        raise refused(f"not followed, since it would turn the {exchange.method} into a GET; the "
                      "usual cause is a wrong host or a missing path prefix: point host= / "
                      "OLLAMA_HOST at the URL Ollama answers on")
    if target.origin() != resp.url.origin():
        raise refused("not followed to another origin (it would carry the request, and its "
                      "credentials, elsewhere): point host= / OLLAMA_HOST there yourself")
    if str(target) in visited:
        raise refused("a redirect loop: the server sends the request back where it was")
    if len(visited) > _MAX_REDIRECTS:
        raise refused(f"more than {_MAX_REDIRECTS} redirects in a row")
    visited.append(str(target))
    return str(target)


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
