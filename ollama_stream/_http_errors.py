"""The one place where aiohttp, OS and watchdog failures and HTTP statuses become this SDK's errors
(`map_error`, `status_error`), each raised `from` the foreign exception it stands for, which is
first stripped of the request's credentials. What a failure is, is decided here (for instance
that a TLS failure cannot be fixed by retrying); whether it is retried, `RetryPolicy.retries`.
"""

from __future__ import annotations

import contextlib
import errno
from typing import Any

import aiohttp
import orjson

from ._exchange import Exchange
from ._server_errors import error_for_status
from ._watchdog import Expired
from .config import parse_retry_after
from .errors import (
    OllamaConnectionError,
    OllamaError,
    OllamaTimeoutError,
    ProtocolError,
    ResponseError,
    StreamInterrupted,
)
from .protocol import error_text

__all__ = ["TRANSPORT_ERRORS", "EarlyEOF", "Response", "invalid_url", "map_error",
           "status_error"]

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


class EarlyEOF(Exception):
    """Raised by an attempt's reader when the body ends before what it needs (its first line)."""


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
    output already reached the caller, so a dropped connection is a StreamInterrupted. The foreign
    exception, which the caller gets as `__cause__`, is first stripped of the request's headers."""
    _redact(exc)
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
        within = f"{limit:.4g}" if isinstance(limit, (int, float)) else str(limit)
        return OllamaTimeoutError(
            f"{what} {exchange.what} within {within}s ({phase} timeout). {hint}".rstrip(),
            phase=phase, timeout=limit, **kw)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return OllamaConnectionError(
            f"cannot resolve the host of {host}: {exc.os_error}. Check host= or OLLAMA_HOST.",
            url=url, reason="DNS failure", **kw)
    if isinstance(exc, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError)):
        return OllamaConnectionError(
            f"TLS failed with {host}: {exc}. Check the certificate, or pass ssl= to AsyncOllama.",
            url=url, retryable=False, reason="TLS failure", **kw)
    if isinstance(exc, aiohttp.ClientConnectorError) and _out_of_descriptors(exc.os_error):
        return OllamaConnectionError(
            f"this process has no file descriptor left to connect to {host} ({exc.os_error}): "
            "close the streams and clients it no longer uses, or raise its limit (ulimit -n). "
            "Not retried.", url=url, retryable=False, reason="out of file descriptors", **kw)
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
        return invalid_url(exchange, exc)
    # Dropped connections: ServerDisconnectedError, ClientPayloadError, resets, an early EOF.
    detail = str(exc) or type(exc).__name__
    if started:
        why = ("" if exchange.retry.resume else "; nothing was retried because output had "
               "already reached you (RetryPolicy(resume=True) continues such a stream)")
        return StreamInterrupted(
            f"the connection to {exchange.what} dropped after {exchange.acc.chunks} chunks, "
            f"before the final chunk ({detail}). The partial reply is in .partial{why}.", **kw)
    return OllamaConnectionError(
        f"the connection to {exchange.what} closed before the first chunk ({detail}). "
        "Check the server log; a proxy may be cutting the connection.",
        url=url, reason="connection reset", **kw)


def _context(exchange: Exchange) -> dict[str, Any]:
    """What every mapped error carries about the exchange so far."""
    return {"partial": exchange.partial(), "attempts": max(exchange.attempts, 1),
            "failures": tuple(exchange.failures)}


def invalid_url(exchange: Exchange, exc: Exception) -> OllamaConnectionError:
    return OllamaConnectionError(
        f"invalid URL {exchange.url}: {exc}. Check host= or OLLAMA_HOST.", url=exchange.url,
        retryable=False, reason="invalid URL", **_context(exchange))


def _out_of_descriptors(exc: OSError | None) -> bool:
    return exc is not None and exc.errno in (errno.EMFILE, errno.ENFILE)


# Request headers that may be kept in an exception's RequestInfo: none of them carries a secret.
_PLAIN_HEADERS = frozenset({"user-agent", "content-type", "accept", "accept-encoding", "host",
                            "content-length", "transfer-encoding", "connection"})


def _redact(exc: BaseException) -> None:
    """Replace the request headers that aiohttp keeps in its exceptions (RequestInfo, also in
    `args` and `history`) by a copy that holds no credential, along the whole chain of causes."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        info = getattr(current, "request_info", None)
        if isinstance(info, aiohttp.RequestInfo):
            safe = _redacted_info(info)
            with contextlib.suppress(AttributeError):
                current.request_info = safe  # type: ignore[attr-defined]
            current.args = tuple(safe if arg is info else arg for arg in current.args)
            if getattr(current, "history", None):
                with contextlib.suppress(AttributeError):
                    current.history = ()  # type: ignore[attr-defined]
                current.args = tuple(() if isinstance(arg, tuple) else arg
                                     for arg in current.args)
        current = current.__cause__ or current.__context__


def _redacted_info(info: aiohttp.RequestInfo) -> aiohttp.RequestInfo:
    headers = info.headers.copy()  # a CIMultiDict, aiohttp's own type (no import of multidict)
    for name in {name for name in headers if name.lower() not in _PLAIN_HEADERS}:
        headers[name] = "<redacted>"
    return aiohttp.RequestInfo(info.url, info.method, type(info.headers)(headers), info.real_url)


def _os_reason(exc: OSError | None) -> str:
    if exc is None:
        return "connection failed"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return exc.strerror or str(exc) or type(exc).__name__
