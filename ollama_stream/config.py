"""Configuration: the host (OLLAMA_HOST rules), Timeouts by phase, and the RetryPolicy with the one
retry rule (`RetryPolicy.retries`: which failure may be sent again).

Pure values and functions: no I/O beyond reading the environment.
"""

from __future__ import annotations

import math
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._server_errors import is_permanent_500, is_quota_exhausted
from .errors import (
    CapabilityError,
    ContextLengthError,
    OllamaConnectionError,
    OllamaError,
    OllamaTimeoutError,
    ResponseError,
    StreamInterrupted,
    UnauthorizedError,
)

if TYPE_CHECKING:
    import ipaddress

__all__ = [
    "DEFAULT_HOST",
    "HOSTED_SERVICE",
    "RETRYABLE_STATUSES",
    "RetryPolicy",
    "Timeouts",
    "parse_retry_after",
    "resolve_endpoint",
    "resolve_host",
]

DEFAULT_HOST = "http://127.0.0.1:11434"
# Ollama's hosted API: a host naming it without a scheme means https on 443, not http on 11434
HOSTED_SERVICE = "ollama.com"
_DEFAULT_PORT = "11434"
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")
_SECONDS = re.compile(r"\d{1,9}(\.\d*)?")


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    import ipaddress  # here, not at import: most programs resolve one host once

    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def resolve_host(host: str | None = None) -> str:
    """The base URL to talk to: `host`, else `OLLAMA_HOST`, else http://127.0.0.1:11434.

    Follows Ollama's own rules (envconfig.Host): whitespace and quotes stripped; no scheme -> http
    on port 11434, except for the hosted service: `ollama.com` (in any case, with or without a
    trailing dot, a `/` or a path) -> https on 443, as Ollama does since v0.12.6; `http://` without
    a port -> 80, `https://` -> 443; an explicit port wins; `:1234` -> 127.0.0.1:1234; bare IPv6
    literals are bracketed; a path prefix is kept (trailing `/` dropped); the listen addresses
    0.0.0.0 and :: become 127.0.0.1 and ::1. Any scheme other than http or https is a ValueError,
    and so are credentials (`user:password@`), which only `resolve_endpoint` hands back.
    """
    url, credentials = resolve_endpoint(host)
    if credentials is not None:
        source = "host" if host is not None else "OLLAMA_HOST"
        raise ValueError(f"{source} holds credentials (user:password@), which resolve_host does "
                         "not return: use resolve_endpoint, or AsyncOllama, which sends them as "
                         "basic auth")
    return url


def resolve_endpoint(host: str | None = None) -> tuple[str, tuple[str, str] | None]:
    """`resolve_host`'s URL, and the `(user, password)` written into the host as `user:password@`
    (percent-decoded), or None. No error message ever shows the password."""
    source = "host"
    if host is None:
        host = os.environ.get("OLLAMA_HOST")
        source = "OLLAMA_HOST"
    if host is None:
        return DEFAULT_HOST, None
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, not {type(host).__name__}")
    text = host.strip().strip("\"'").strip()
    if not text:
        return DEFAULT_HOST, None
    text, credentials = _take_credentials(text)
    host = text if credentials is None else _without_credentials(text)

    scheme, sep, hostport = text.partition("://")
    default_port = _DEFAULT_PORT
    if not sep:
        scheme, hostport = "http", text
    else:
        scheme = scheme.lower()
        if scheme == "http":
            default_port = "80"
        elif scheme == "https":
            default_port = "443"
        else:
            raise ValueError(f"{source}={host!r}: the scheme must be http or https, not {scheme!r}")

    hostport, slash, path = hostport.partition("/")
    path = (slash + path).rstrip("/")
    name, port = _split_host_port(hostport)
    if not sep and _names_hosted_service(name):
        # Ollama sends only the exact text `ollama.com` there; any form of the name is taken here,
        # since http to it would put the API key on the wire in clear text
        scheme, default_port = "https", "443"
    if port is None:
        port = default_port
    if not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(f"{source}={host!r}: the port must be a number from 1 to 65535, "
                         f"not {port!r}")

    ip = _parse_ip(name)
    if ip is None and (name or hostport.startswith("[")):
        problem = _bad_host_name(name, bracketed=hostport.startswith("["))
        if problem:
            raise ValueError(f"{source}={host!r}: {problem}")
    problem = _bad_path(path)
    if problem:
        raise ValueError(f"{source}={host!r}: {problem}")
    if not name or (ip is not None and ip.is_unspecified and ip.version == 4):
        name = "127.0.0.1"
    elif ip is not None and ip.version == 6:
        name = "[::1]" if ip.is_unspecified else f"[{ip.compressed}]"
    return f"{scheme}://{name}:{int(port)}{path}", credentials


def _take_credentials(text: str) -> tuple[str, tuple[str, str] | None]:
    """`text` without a `user:password@` before its host, and that user and password."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    authority, slash, path = rest.partition("/")
    userinfo, at, hostport = authority.rpartition("@")
    if not at:
        return text, None
    user, _, password = userinfo.partition(":")
    clean = f"{scheme}{sep}{hostport}{slash}{path}"
    return clean, (_unquote(user), _unquote(password))


def _unquote(text: str) -> str:
    """Percent-decoding (as in `p%40ss`), without importing urllib on this floor."""
    raw = _PERCENT.sub(lambda match: bytes([int(match.group(1), 16)]), text.encode())
    return raw.decode("utf-8", "replace")


def hide_credentials(text: str) -> str:
    """`text` as it may be shown: a `user:password@` in it becomes `***@`."""
    clean, credentials = _take_credentials(text)
    return text if credentials is None else _without_credentials(clean)


def _without_credentials(text: str) -> str:
    """The host as error messages show it when it held credentials: `***@` in their place (a user
    name can be a token too)."""
    scheme, sep, rest = text.partition("://")
    return f"{scheme}{sep}***@{rest}" if sep else f"***@{text}"


def _names_hosted_service(name: str) -> bool:
    return name.lower().rstrip(".") == HOSTED_SERVICE


def is_hosted_service(base_url: str) -> bool:
    """Whether a base URL from `resolve_host` is Ollama's hosted API (ollama.com), whose endpoints
    need an API key and differ from a local server's for web search and fetch."""
    _, _, rest = base_url.partition("://")
    hostport = rest.partition("/")[0]
    return _names_hosted_service(_split_host_port(hostport)[0])


_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


def _bad_host_name(name: str, *, bracketed: bool) -> str | None:
    """Why `name` cannot be sent as a host (None when it can): checked here so that a bad host is a
    ValueError from the constructor, not an encoding error from the first request."""
    if bracketed:
        return f"[{name}] is not an IPv6 address"
    try:
        ascii_name = name.encode("idna").decode("ascii")  # non-ASCII names, as IDNA does
    except UnicodeError as exc:
        return f"{name!r} is not a valid host name ({exc})"
    labels = ascii_name[:-1].split(".") if ascii_name.endswith(".") else ascii_name.split(".")
    if len(ascii_name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return (f"{name!r} is not a valid host name (letters, digits, '-' and '_' in dot-separated "
                "labels of 1 to 63 characters)")
    return None


def _bad_path(path: str) -> str | None:
    """Why `path` cannot prefix every request's path (None when it can)."""
    if any(c in path for c in "?#\\") or any(c.isspace() or not c.isprintable() for c in path):
        return (f"the path prefix {path!r} may not hold '?', '#', '\\', spaces or control "
                "characters")
    return None


def _split_host_port(hostport: str) -> tuple[str, str | None]:
    """Split `host:port`, `[v6]:port`, `[v6]`, a bare v6 literal or a bare host."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError(f"unclosed '[' in host {hostport!r}")
        name, rest = hostport[1:end], hostport[end + 1:]
        if not rest:
            return name, None
        if not rest.startswith(":"):
            raise ValueError(f"unexpected {rest!r} after ']' in host {hostport!r}")
        return name, rest[1:]
    if hostport.count(":") > 1:  # a bare IPv6 literal such as ::1 has no port
        return hostport, None
    name, colon, port = hostport.partition(":")
    return name, (port if colon else None)


def _check_limit(name: str, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Timeouts.{name} must be a number of seconds or None, "
                        f"not {type(value).__name__}")
    if not 0 < value < math.inf:  # NaN fails both
        raise ValueError(f"Timeouts.{name} must be a finite number of seconds > 0 (or None for "
                         f"no limit), got {value!r}")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Limits in seconds for each phase of a request; None means no limit.

    connect: opening the TCP (and TLS) connection. first_chunk: request sent -> first streamed line
    (this covers loading the model, which can take minutes). idle: the gap between two complete
    lines. total: the whole call, retries included. pool: waiting for a free connection when
    `pool_limit` connections are all busy (not counted as first_chunk time; total bounds it too).
    """

    connect: float | None = 10.0
    first_chunk: float | None = 300.0
    idle: float | None = 120.0
    total: float | None = None
    pool: float | None = None

    def __post_init__(self) -> None:
        for name in ("connect", "first_chunk", "idle", "total", "pool"):
            _check_limit(name, getattr(self, name))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Which failures are retried, how often, and how long to wait between attempts.

    Only failures before the first chunk reaches the caller are retried, and only those that a
    second try can fix (`retries` has the rule; docs/errors.md the table). The wait before retry n
    (n = 1, 2, ...) is min(max_delay, base_delay * 2**(n-1)) scaled by a uniform factor in
    [1 - jitter, 1 + jitter]; a Retry-After header is honoured, capped by max_delay.
    `max_attempts=1` turns retries off. `retry_if(error)` is asked first: True or False decides,
    None leaves it to the rule (for a proxy or provider with semantics of its own).

    `resume=True` also mends a chat stream (or a raw generate) that fails after output started:
    the request is sent again with the partial reply as the message to continue, and the stream
    goes on where it stopped, each piece of text yielded once (`resumes` has the rule;
    docs/errors.md the limits). Resumes count against `max_attempts` like any other attempt.
    """

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 10.0
    jitter: float = 0.25
    retry_if: Callable[[OllamaError], bool | None] | None = None
    resume: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise TypeError("RetryPolicy.max_attempts must be an int")
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be >= 1 (1 = no retry), "
                             f"got {self.max_attempts}")
        for name in ("base_delay", "max_delay", "jitter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"RetryPolicy.{name} must be a number, not {type(value).__name__}")
            if not math.isfinite(value):
                raise ValueError(f"RetryPolicy.{name} must be a finite number, got {value!r}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy.base_delay and max_delay must be >= 0")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"RetryPolicy.jitter must be within 0..1, got {self.jitter}")
        if self.retry_if is not None and not callable(self.retry_if):
            raise TypeError("RetryPolicy.retry_if must be a function (error) -> bool | None")
        if not isinstance(self.resume, bool):
            raise TypeError(f"RetryPolicy.resume must be True or False, not {self.resume!r}")

    def retries(self, error: OllamaError) -> bool:
        """The one retry rule: may a request that failed with `error`, before its first chunk
        reached the caller, be sent again? (How many times, and within which deadline, is the
        attempt loop's part.) `retry_if`, when given, is asked first.

        Yes: HTTP 408, 502, 503, 504; a 500 unless its text says the failure is permanent (wrong
        option types, a template or format error, a model that cannot fit in memory, a context
        window exceeded); a 429 unless its text says a usage limit or quota is used up; connect
        timeouts; connection failures a retry can fix (refused, reset, DNS, a body that ended
        before its first line: the error's `retryable`, False for TLS or an invalid URL); a
        backend's stream that ended before its first chunk. No: a first_chunk timeout (the model
        is probably still loading, and Ollama aborts a load when its client leaves, so a retry
        starts the load again from zero), every other status, protocol errors, error lines.
        """
        if self.retry_if is not None:
            decided = self.retry_if(error)
            if decided is not None:
                return bool(decided)
        return self._passes(error)

    def resumes(self, error: OllamaError) -> bool:
        """The one resume rule: may a stream that failed with `error` after output reached the
        caller be continued from its partial reply? Only with `resume=True`, and only for what a
        second try can fix: the failures `retries` accepts (a dropped or refused connection, a
        stream that ended without its final chunk, ...) and an idle timeout (the server went
        silent mid-reply). Never an error line, a total timeout or a refused request.
        `retry_if`, when given, is asked first."""
        if not self.resume:
            return False
        if self.retry_if is not None:
            decided = self.retry_if(error)
            if decided is not None:
                return bool(decided)
        if isinstance(error, OllamaTimeoutError) and error.phase == "idle":
            return True
        return self._passes(error)

    def _passes(self, error: OllamaError) -> bool:
        """The rule of `retries`, without `retry_if`."""
        if isinstance(error, (ContextLengthError, CapabilityError, UnauthorizedError)):
            return False
        if isinstance(error, ResponseError):
            status = error.status_code
            if status == 500:
                return not is_permanent_500(error.error)
            if status == 429:
                return not is_quota_exhausted(error.error)
            return status in RETRYABLE_STATUSES
        if isinstance(error, OllamaTimeoutError):
            return error.phase == "connect"
        if isinstance(error, OllamaConnectionError):
            return error.retryable
        return isinstance(error, StreamInterrupted)

    def delay(self, retry: int, retry_after: float | None = None, rng: Any = random) -> float:
        """Seconds to wait before retry number `retry` (1 for the first retry)."""
        if retry_after is not None:
            return float(max(0.0, min(self.max_delay, retry_after)))
        base = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        if self.jitter:
            base *= rng.uniform(1 - self.jitter, 1 + self.jitter)
        return float(base)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date. None if absent or
    bad."""
    if not value:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    reference = time.time() if now is None else now
    return max(0.0, when.timestamp() - reference)

