"""One exchange with the server: the aiohttp session per event loop and the headers (`Transport`),
and one attempt at sending a request (`send`), redirects and odd answers included.

Rules of this room:
1. Within the package only the wire modules import aiohttp (this one and `_http_errors`, besides
   backends/ and testing/): every other module sees our errors only, which `_http_errors` makes,
   each raised `from` the foreign exception it stands for.
2. An attempt either returns an open response with what its reader needed, or raises an OllamaError
   having closed the response: a failed attempt leaves nothing open.
3. Whether a failure is retried is not decided here (`RetryPolicy.retries` does that).
4. aiohttp's private attributes are touched in one place only, `direct_reads`, and only where they
   were verified (see there); the public path is always the fallback.

It is longer than 450 lines because the guarded read of a body belongs with the rest of the wire.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import os
import re
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

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
from .config import hide_credentials
from .errors import OllamaError, ProtocolError, ResponseError

__all__ = ["Transport", "build_headers", "direct_reads", "read_body", "send"]

T = TypeVar("T")


class Transport:
    """The client's side of the wire: its host, headers and connection pool, with one aiohttp
    ClientSession per event loop, made lazily inside the running loop; or the caller's own session
    (`own_session`, never closed here), or a session over the caller's connector.

    Our headers go with every request (not as a session's defaults), so that they reach a caller's
    session too, and a redirect to another origin can go without the Authorization header."""

    __slots__ = ("_guard", "_loop", "_pid", "_session", "closed", "connector", "headers", "host",
                 "options", "own_session", "pool_limit", "proxy", "proxy_credential", "redirects",
                 "ssl", "trust_env")

    def __init__(self, host: str, headers: dict[str, str], *, pool_limit: int, ssl: Any,
                 session: Any = None, connector: Any = None, trust_env: bool = False,
                 proxy: str | None = None, proxy_auth: Any = None,
                 redirects: str = "same-origin") -> None:
        self.host = host
        self.headers = headers
        self.ssl = ssl
        self.own_session = session  # the caller's: used as it is, never closed here
        self.connector = connector  # the caller's: shared, never closed here
        # the connector's own limit when it is the caller's (0: aiohttp's "no limit")
        shared = connector if connector is not None else getattr(session, "connector", None)
        self.pool_limit = shared.limit if shared is not None else pool_limit
        self.trust_env = trust_env
        self.redirects = redirects
        self.proxy: str | None = None
        self.proxy_credential: str | None = None
        if proxy is not None:
            self.proxy, in_url = _split_credentials(proxy)
            login = proxy_auth if proxy_auth is not None else in_url
            if login is not None:
                self.proxy_credential = basic_credential(*login[:2])
        self.options = self.options_for(host, with_authorization=True)
        self.closed = False
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._guard: AsyncGenerator[None, None] | None = None
        self._pid = os.getpid()

    async def session(self) -> aiohttp.ClientSession:
        """The session of the running loop, made on first use."""
        if self.closed:
            raise RuntimeError("this AsyncOllama is closed; create a new client")
        if self.own_session is not None:
            return self._callers_session()
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
        connector = self.connector or _Connector(
            limit=self.pool_limit, **({"ssl": self.ssl} if self.ssl is not None else {}))
        # A wait for a free connection is the watchdog's `pool` phase, not first_chunk time.
        pool_wait = aiohttp.TraceConfig()
        pool_wait.on_connection_queued_start.append(_queued)
        pool_wait.on_connection_queued_end.append(_dequeued)
        session = aiohttp.ClientSession(connector=connector,
                                        connector_owner=self.connector is None,
                                        timeout=aiohttp.ClientTimeout(total=None),
                                        auto_decompress=False, trust_env=self.trust_env,
                                        trace_configs=[pool_wait])
        self._session, self._loop, self._pid = session, loop, os.getpid()
        # asyncio.run() finalizes live async generators before closing its loop: this one closes the
        # session then, so a client used across several asyncio.run() calls leaves no socket behind.
        guard = _close_with_loop(session)
        await guard.__anext__()
        self._guard = guard
        return session

    def options_for(self, url: str, *, with_authorization: bool) -> dict[str, Any]:
        """What each request to `url` adds to its arguments: our headers (the Authorization header
        only `with_authorization`), the proxy and its credentials. We build the credential header
        ourselves: aiohttp 3.14 deprecates its BasicAuth, and its versions differ in when they
        add one. A plain-http request carries it (the proxy reads the request itself); an https
        one gives it to the proxy's CONNECT only, never into the tunnel."""
        headers = self.headers
        if not with_authorization:
            headers = {name: value for name, value in headers.items()
                       if name.lower() != "authorization"}
        options: dict[str, Any] = {"headers": headers}
        if self.own_session is not None:  # its raise_for_status would hide our error mapping
            options["raise_for_status"] = False
        if self.proxy is not None:
            options["proxy"] = self.proxy
            if self.proxy_credential is not None:
                if url.startswith("https://"):
                    options["proxy_headers"] = {"Proxy-Authorization": self.proxy_credential}
                else:
                    options["headers"] = {**headers, "Proxy-Authorization": self.proxy_credential}
        return options

    def _callers_session(self) -> aiohttp.ClientSession:
        session: aiohttp.ClientSession = self.own_session
        if session.closed:
            raise RuntimeError("the aiohttp session given as session= is closed; give an open one")
        bound = getattr(session, "_loop", None)
        if bound is not None and bound is not asyncio.get_running_loop():
            raise RuntimeError(
                "the aiohttp session given as session= belongs to another event loop: use the "
                "client in the loop that made the session (the blocking Ollama client runs a loop "
                "of its own, so it cannot use a caller's session)")
        return session

    async def close(self) -> None:
        """Close the session (never the caller's); the transport cannot be used afterwards."""
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


def _split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """A proxy URL without its user:password@ part, and that part."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    netloc = parts.netloc.rpartition("@")[2]
    return (urlunsplit(parts._replace(netloc=netloc)),
            (unquote(parts.username), unquote(parts.password or "")))


def basic_credential(login: str, password: str) -> str:
    """An RFC 7617 Basic credential, in UTF-8 (as curl sends what a user typed)."""
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


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
    made: list[Any] = []  # bodies made for this attempt (files): closed at its end, ours to close
    try:
        transport = exchange.transport
        session = await transport.session()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=exchange.timeouts.connect)
        url, visited, options = exchange.url, [exchange.url], transport.options
        while True:  # a same-origin 307/308 (or a redirected GET) is followed; see _redirect
            if callable(exchange.body):
                body = exchange.body()
                made.append(body)
            else:
                body = exchange.body
            try:
                resp = await session.request(exchange.method, url, data=body, timeout=timeout,
                                             trace_request_ctx=watchdog, allow_redirects=False,
                                             **options)
            except aiohttp.ClientError:
                raise  # aiohttp's own (its InvalidURL is also a ValueError): mapped below
            except ValueError as exc:  # yarl cannot encode the URL (a bad host name)
                raise invalid_url(exchange, exc) from exc
            exchange.response = resp
            if resp.status not in _REDIRECTS:
                break
            url, elsewhere = _redirect(exchange, resp, visited)
            if elsewhere:  # the credentials stay with the origin they were given for
                options = transport.options_for(url, with_authorization=False)
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
        for body in made:  # aiohttp 3.11 leaves a file payload open after sending it
            close = getattr(body, "close", None)
            if close is not None:
                close()


_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5


def _redirect(exchange: Exchange, resp: Response, visited: list[str]) -> tuple[str, bool]:
    """Where a redirect may be followed to, and whether that leaves the origin the client was given;
    or the error that says why it is not followed: a POST is never turned into a GET (301/302/303),
    and another origin is left for only with `redirects="any"` (then without the Authorization
    header); `redirects="none"` follows nothing."""
    status, location = resp.status, resp.headers.get("Location", "")
    shown = hide_credentials(location)  # a Location may carry user:password@ (never shown)
    said = f"HTTP {status} from {exchange.what} redirects to {shown or '(no Location)'}"

    def refused(why: str) -> ResponseError:
        return ResponseError(f"{said}: {why}", status_code=status, error=f"redirect to {shown}",
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
    policy = exchange.transport.redirects
    if policy == "none":
        raise refused("not followed (redirects='none'): point host= / OLLAMA_HOST there yourself")
    elsewhere = target.origin() != type(resp.url)(exchange.url).origin()
    if elsewhere and policy != "any":
        raise refused("not followed to another origin (it would carry the request elsewhere): "
                      "point host= / OLLAMA_HOST there yourself, or pass redirects='any'")
    if elsewhere and _sends_credentials(exchange.transport.own_session):
        raise refused("not followed to another origin: your session= adds an Authorization header "
                      "(or auth=) to every request, so it would go there too; point host= / "
                      "OLLAMA_HOST there yourself")
    if str(target) in visited:
        raise refused("a redirect loop: the server sends the request back where it was")
    if len(visited) > _MAX_REDIRECTS:
        raise refused(f"more than {_MAX_REDIRECTS} redirects in a row")
    visited.append(str(target))
    return str(target), elsewhere


def _sends_credentials(session: Any) -> bool:
    """Whether a caller's session adds credentials of its own to every request."""
    if session is None:
        return False
    return "Authorization" in session.headers or getattr(session, "auth", None) is not None


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


# -- reading a streamed body: aiohttp's buffer drained directly (a guarded fast path) -------------
#
# `StreamReader.readany()` hands back every piece its buffer holds (aiohttp buffers each HTTP chunk
# as a piece, and Ollama sends a chunk per line), doing its bookkeeping once per piece; on 3.14 that
# re-enters the protocol (`resume_reading`) for every one. `direct_reads` does what readany() does
# once per read instead: the same bytes, the same counters, the same resume rule. It rests on
# private attributes, so it is used only on the releases whose StreamReader (`_wait`, `readany`,
# `_read_nowait`, `_read_nowait_chunk`) was read for it and the suite run against, only on a reader
# of exactly aiohttp's class, and only when the attributes it needs are there at first use; else,
# or with OLLAMA_STREAM_PUBLIC_READS=1 set, the read loop calls the public readany(). Each release
# is listed with the resume rule of its `_read_nowait_chunk`: (resumes below the low water mark
# even when not paused, counts buffered HTTP chunks against `_low_water_chunks`).
_VERIFIED: dict[str, tuple[bool, bool]] = {
    "3.10.11": (False, False), "3.11.18": (False, False), "3.12.15": (False, False),
    "3.13.5": (False, True),
    **dict.fromkeys(("3.14.0", "3.14.1", "3.14.2", "3.14.3", "3.14.4", "3.14.5"), (True, True)),
}
_RULE: list[tuple[bool, bool] | None] = []  # the rule in force, decided at first use


class DirectReads:
    """For one response body: `drain()`, which takes everything the reader holds now, as readany()
    would, but with its bookkeeping done once; and `wait(name)`, readany()'s own wait for data. A
    read loop calls drain(): bytes, or b"" when nothing is buffered yet (then wait() and drain()
    again), or None when readany() must decide (the end of the body, or an error set on the
    reader). Made by `direct_reads` only."""

    __slots__ = ("_buffer", "_low_water_chunks", "_protocol", "_reader", "_resume_always", "wait")

    def __init__(self, reader: Any, rule: tuple[bool, bool]) -> None:
        self._reader = reader
        self._buffer = reader._buffer
        self._protocol = reader._protocol
        self._resume_always, chunk_water = rule
        self._low_water_chunks = reader._low_water_chunks if chunk_water else sys.maxsize
        self.wait: Callable[[str], Awaitable[None]] = reader._wait

    def drain(self) -> bytes | None:
        reader, buffer = self._reader, self._buffer
        if reader._exception is not None or reader._buffer_offset:
            return None
        if not buffer:
            return None if reader._eof else b""
        reader._timer.assert_timeout()
        data: bytes = buffer.popleft() if len(buffer) == 1 else b"".join(buffer)
        buffer.clear()
        size = reader._size = reader._size - len(data)
        cursor = reader._cursor = reader._cursor + len(data)
        splits = reader._http_chunk_splits
        if splits:  # readany() drops the chunk ends below the cursor: every one but the last
            last = splits[-1]
            splits.clear()
            if last >= cursor:
                splits.append(last)
        if (size < reader._low_water
                and (splits is None or len(splits) < self._low_water_chunks)
                and (self._resume_always or self._protocol._reading_paused)):
            self._protocol.resume_reading()
        return data


def direct_reads(reader: Any) -> DirectReads | None:
    """The direct reads of this body, or None when this path is not to be taken (see above)."""
    if type(reader) is not aiohttp.StreamReader:  # a test double, or EmptyStreamReader
        return None
    if not _RULE:
        _RULE.append(_rule_for(reader))
    rule = _RULE[0]
    return None if rule is None else DirectReads(reader, rule)


def _rule_for(reader: Any) -> tuple[bool, bool] | None:
    """The resume rule of this aiohttp release when direct reads may be used here, else None."""
    if os.environ.get("OLLAMA_STREAM_PUBLIC_READS", "").strip() not in ("", "0"):
        return None
    rule = _VERIFIED.get(aiohttp.__version__)
    if rule is None:
        return None
    try:
        protocol = reader._protocol
        fine = (isinstance(reader._buffer, collections.deque)
                and all(type(getattr(reader, name)) is int
                        for name in ("_buffer_offset", "_size", "_cursor", "_low_water"))
                and (not rule[1] or type(reader._low_water_chunks) is int)
                and isinstance(reader._http_chunk_splits, (type(None), list, collections.deque))
                and type(reader._eof) is bool and callable(reader._timer.assert_timeout)
                and asyncio.iscoroutinefunction(reader._wait)
                and callable(protocol.resume_reading) and type(protocol._reading_paused) is bool)
    except AttributeError:
        return None
    return rule if fine else None
