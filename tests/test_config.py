"""Unit tests for ollama_stream.config: resolve_host, Timeouts, RetryPolicy and
parse_retry_after."""

from __future__ import annotations

import dataclasses
import random
from email.utils import formatdate

import pytest

from ollama_stream.config import (
    DEFAULT_HOST,
    RetryPolicy,
    Timeouts,
    is_hosted_service,
    parse_retry_after,
    resolve_host,
)

# --------------------------------------------------------------------------------------------------
# resolve_host
# --------------------------------------------------------------------------------------------------

HOST_CASES = [
    # default
    ("", "http://127.0.0.1:11434"),
    ("   ", "http://127.0.0.1:11434"),
    ('""', "http://127.0.0.1:11434"),
    # whitespace and surrounding quotes stripped
    ("  example.com  ", "http://example.com:11434"),
    ("\texample.com\n", "http://example.com:11434"),
    ('"example.com"', "http://example.com:11434"),
    ("'example.com'", "http://example.com:11434"),
    ('  "http://example.com:8080"  ', "http://example.com:8080"),
    # bare host -> http on 11434; bare host:port
    ("example.com", "http://example.com:11434"),
    ("localhost", "http://localhost:11434"),
    ("10.0.0.5", "http://10.0.0.5:11434"),
    ("example.com:8080", "http://example.com:8080"),
    ("10.0.0.5:1", "http://10.0.0.5:1"),
    ("example.com:65535", "http://example.com:65535"),
    # scheme without port -> 80 / 443
    ("http://example.com", "http://example.com:80"),
    ("https://example.com", "https://example.com:443"),
    # explicit port wins for both schemes
    ("http://example.com:11434", "http://example.com:11434"),
    ("https://example.com:8443", "https://example.com:8443"),
    ("http://example.com:443", "http://example.com:443"),
    ("https://example.com:80", "https://example.com:80"),
    # :port only
    (":1234", "http://127.0.0.1:1234"),
    # IPv6
    ("::1", "http://[::1]:11434"),
    ("[::1]", "http://[::1]:11434"),
    ("[::1]:8080", "http://[::1]:8080"),
    ("http://[::1]", "http://[::1]:80"),
    ("https://[::1]:8443", "https://[::1]:8443"),
    ("fe80::1", "http://[fe80::1]:11434"),
    ("[0:0:0:0:0:0:0:1]:8080", "http://[::1]:8080"),
    # path prefix kept, trailing slash dropped
    ("http://h:8080/ollama/", "http://h:8080/ollama"),
    ("http://h:8080/ollama", "http://h:8080/ollama"),
    ("h/ollama/", "http://h:11434/ollama"),
    ("https://h/a/b/", "https://h:443/a/b"),
    ("http://h:8080/", "http://h:8080"),
    # listen addresses
    ("0.0.0.0", "http://127.0.0.1:11434"),
    ("0.0.0.0:8080", "http://127.0.0.1:8080"),
    ("http://0.0.0.0", "http://127.0.0.1:80"),
    ("https://0.0.0.0:8443", "https://127.0.0.1:8443"),
    ("::", "http://[::1]:11434"),
    ("[::]", "http://[::1]:11434"),
    ("[::]:8080", "http://[::1]:8080"),
    ("http://[::]", "http://[::1]:80"),
    ("https://[::]:8443", "https://[::1]:8443"),
    # the hosted service without a scheme -> https on 443 (envconfig.Host, v0.12.6), in any form
    ("ollama.com", "https://ollama.com:443"),
    ('"ollama.com"', "https://ollama.com:443"),
    ("OLLAMA.COM", "https://OLLAMA.COM:443"),
    ("ollama.com/", "https://ollama.com:443"),
    ("ollama.com.", "https://ollama.com.:443"),
    ("ollama.com:443", "https://ollama.com:443"),
    ("ollama.com:8443", "https://ollama.com:8443"),
    ("ollama.com/prefix/", "https://ollama.com:443/prefix"),
    # ... but an explicit scheme wins, and only that name is the hosted service
    ("http://ollama.com", "http://ollama.com:80"),
    ("https://ollama.com", "https://ollama.com:443"),
    ("www.ollama.com", "http://www.ollama.com:11434"),
    ("myollama.com", "http://myollama.com:11434"),
    ("ollama.com.example", "http://ollama.com.example:11434"),
    ("ollama.co", "http://ollama.co:11434"),
    # scheme is case-insensitive
    ("HTTP://example.com", "http://example.com:80"),
    ("HTTPS://example.com:8443", "https://example.com:8443"),
    ("Http://example.com:8080/x/", "http://example.com:8080/x"),
]


@pytest.mark.parametrize(("host", "expected"), HOST_CASES)
def test_resolve_host_table(host: str, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if host.strip().strip("\"'").strip():
        # an explicit host must win over it
        monkeypatch.setenv("OLLAMA_HOST", "envhost.invalid:9999")
    else:
        monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert resolve_host(host) == expected


def test_resolve_host_none_without_env_is_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert resolve_host(None) == "http://127.0.0.1:11434"
    assert resolve_host() == "http://127.0.0.1:11434"
    assert DEFAULT_HOST == "http://127.0.0.1:11434"


def test_resolve_host_empty_env_is_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "")
    assert resolve_host() == "http://127.0.0.1:11434"
    monkeypatch.setenv("OLLAMA_HOST", "  ' '  ")
    assert resolve_host() == "http://127.0.0.1:11434"


@pytest.mark.parametrize(("env", "expected"), [
    ("example.com", "http://example.com:11434"),
    ("ollama.com", "https://ollama.com:443"),
    ("  'ollama.com'  ", "https://ollama.com:443"),
    ("https://example.com", "https://example.com:443"),
    ('"0.0.0.0:8080"', "http://127.0.0.1:8080"),
    ("::1", "http://[::1]:11434"),
    ("http://h:8080/ollama/", "http://h:8080/ollama"),
])
def test_resolve_host_reads_env(env: str, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", env)
    assert resolve_host(None) == expected
    assert resolve_host() == expected


@pytest.mark.parametrize(("host", "hosted"), [
    ("ollama.com", True), ("https://ollama.com", True), ("http://OLLAMA.com:8080/x", True),
    ("ollama.com.", True), ("www.ollama.com", False), ("localhost", False), ("::1", False),
    ("http://127.0.0.1:11434", False), ("ollama.com.example", False),
])
def test_is_hosted_service(host: str, hosted: bool) -> None:
    assert is_hosted_service(resolve_host(host)) is hosted


def test_the_client_takes_ollama_host_ollama_com_as_https(monkeypatch: pytest.MonkeyPatch) -> None:
    from ollama_stream import AsyncOllama, Ollama

    monkeypatch.setenv("OLLAMA_HOST", "ollama.com")
    assert AsyncOllama().host == "https://ollama.com:443"
    client = Ollama()
    try:
        assert client.host == "https://ollama.com:443"
    finally:
        client.close()


def test_resolve_host_explicit_wins_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "https://remote.example:8443")
    assert resolve_host("localhost:1111") == "http://localhost:1111"
    # even an invalid env var is not consulted when host is given
    monkeypatch.setenv("OLLAMA_HOST", "ftp://bad")
    assert resolve_host("localhost:1111") == "http://localhost:1111"


@pytest.mark.parametrize("scheme", ["ftp", "ws", "wss", "file", "unix"])
def test_resolve_host_bad_scheme(scheme: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    with pytest.raises(ValueError, match=rf"\b{scheme}\b") as info:
        resolve_host(f"{scheme}://example.com")
    assert "http" in str(info.value)


def test_resolve_host_bad_scheme_is_case_insensitive_in_check() -> None:
    with pytest.raises(ValueError, match="ftp"):
        resolve_host("FTP://example.com")


@pytest.mark.parametrize("host", [
    "host:abc",
    "host:0",
    "host:70000",
    "host:65536",
    "host:-1",
    "host:",
    "http://host:abc",
    "https://host:0/path",
    "[::1]:99999",
    ":0",
])
def test_resolve_host_bad_port(host: str) -> None:
    with pytest.raises(ValueError, match="port"):
        resolve_host(host)


@pytest.mark.parametrize("host", [123, 1.5, b"localhost", ["localhost"]])
def test_resolve_host_non_str(host: object) -> None:
    with pytest.raises(TypeError):
        resolve_host(host)  # type: ignore[arg-type]


@pytest.mark.parametrize("env", ["ftp://example.com", "ws://example.com", "example.com:abc",
                                 "example.com:0"])
def test_resolve_host_env_error_names_env_var(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", env)
    with pytest.raises(ValueError, match="OLLAMA_HOST"):
        resolve_host()


def test_resolve_host_explicit_error_does_not_blame_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "example.com")
    with pytest.raises(ValueError) as info:
        resolve_host("ftp://example.com")
    assert "OLLAMA_HOST" not in str(info.value)


# --------------------------------------------------------------------------------------------------
# Timeouts
# --------------------------------------------------------------------------------------------------

TIMEOUT_FIELDS = ("connect", "first_chunk", "idle", "total")


def test_timeouts_defaults() -> None:
    t = Timeouts()
    assert (t.connect, t.first_chunk, t.idle, t.total) == (10.0, 300.0, 120.0, None)


@pytest.mark.parametrize("name", TIMEOUT_FIELDS)
def test_timeouts_none_allowed(name: str) -> None:
    t = Timeouts(**{name: None})
    assert getattr(t, name) is None


def test_timeouts_all_none_and_values_kept() -> None:
    assert Timeouts(None, None, None, None) == Timeouts(connect=None, first_chunk=None, idle=None,
                                                        total=None)
    t = Timeouts(connect=1, first_chunk=2.5, idle=0.001, total=600)
    assert (t.connect, t.first_chunk, t.idle, t.total) == (1, 2.5, 0.001, 600)


@pytest.mark.parametrize("name", TIMEOUT_FIELDS)
@pytest.mark.parametrize("value", [0, 0.0, -1, -0.5, float("nan")])
def test_timeouts_non_positive_is_value_error(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=rf"Timeouts\.{name}\b"):
        Timeouts(**{name: value})


@pytest.mark.parametrize("name", TIMEOUT_FIELDS)
@pytest.mark.parametrize("value", ["10", True, False, [1]])
def test_timeouts_wrong_type_is_type_error(name: str, value: object) -> None:
    with pytest.raises(TypeError, match=rf"Timeouts\.{name}\b"):
        Timeouts(**{name: value})  # type: ignore[arg-type]


def test_timeouts_frozen() -> None:
    t = Timeouts()
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.connect = 5.0  # type: ignore[misc]
    assert t.connect == 10.0


# --------------------------------------------------------------------------------------------------
# RetryPolicy
# --------------------------------------------------------------------------------------------------


def test_retry_policy_defaults() -> None:
    p = RetryPolicy()
    assert (p.max_attempts, p.base_delay, p.max_delay, p.jitter) == (3, 0.5, 10.0, 0.25)


def test_retry_policy_one_attempt_allowed() -> None:
    assert RetryPolicy(max_attempts=1).max_attempts == 1


@pytest.mark.parametrize("attempts", [0, -1])
def test_retry_policy_max_attempts_below_one(attempts: int) -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=attempts)


@pytest.mark.parametrize("attempts", [3.0, "3", True, None])
def test_retry_policy_max_attempts_not_int(attempts: object) -> None:
    with pytest.raises(TypeError, match="max_attempts"):
        RetryPolicy(max_attempts=attempts)  # type: ignore[arg-type]


@pytest.mark.parametrize("jitter", [-0.01, -1, 1.01, 2])
def test_retry_policy_jitter_out_of_range(jitter: float) -> None:
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=jitter)


@pytest.mark.parametrize("jitter", [0, 0.0, 0.5, 1, 1.0])
def test_retry_policy_jitter_bounds_allowed(jitter: float) -> None:
    assert RetryPolicy(jitter=jitter).jitter == jitter


@pytest.mark.parametrize("kwargs", [{"base_delay": -0.1}, {"max_delay": -1}])
def test_retry_policy_negative_delays(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_retry_policy_frozen() -> None:
    p = RetryPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.max_attempts = 10  # type: ignore[misc]


def test_delay_without_jitter_is_exact() -> None:
    p = RetryPolicy(jitter=0)
    got = [p.delay(n) for n in range(1, 9)]
    expected = [min(10.0, 0.5 * 2 ** (n - 1)) for n in range(1, 9)]
    assert got == expected
    assert got == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert all(isinstance(d, float) for d in got)


def test_delay_without_jitter_custom_policy() -> None:
    p = RetryPolicy(base_delay=0.1, max_delay=1.0, jitter=0)
    assert [p.delay(n) for n in range(1, 7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_delay_without_jitter_ignores_rng() -> None:
    class Boom:
        def uniform(self, a: float, b: float) -> float:
            raise AssertionError("rng must not be used when jitter is 0")

    assert RetryPolicy(jitter=0).delay(2, rng=Boom()) == 1.0


@pytest.mark.parametrize("jitter", [0.1, 0.25, 0.5, 1.0])
def test_delay_with_jitter_within_bounds(jitter: float) -> None:
    p = RetryPolicy(base_delay=0.5, max_delay=10.0, jitter=jitter)
    rng = random.Random(1234)
    seen = set()
    for _ in range(20):
        for n in range(1, 11):
            d = min(10.0, 0.5 * 2 ** (n - 1))
            value = p.delay(n, rng=rng)
            assert d * (1 - jitter) - 1e-12 <= value <= d * (1 + jitter) + 1e-12, (n, value)
            seen.add(round(value / d, 9))
    # the jitter actually varies the delay
    assert len(seen) > 50


def test_delay_with_jitter_is_reproducible_with_seeded_rng() -> None:
    p = RetryPolicy(jitter=0.25)
    a = [p.delay(n, rng=random.Random(42)) for n in range(1, 9)]
    b = [p.delay(n, rng=random.Random(42)) for n in range(1, 9)]
    assert a == b
    rng1, rng2 = random.Random(7), random.Random(7)
    seq1 = [p.delay(n, rng=rng1) for n in range(1, 30)]
    seq2 = [p.delay(n, rng=rng2) for n in range(1, 30)]
    assert seq1 == seq2
    rng3 = random.Random(8)
    assert seq1 != [p.delay(n, rng=rng3) for n in range(1, 30)]


def test_delay_uses_given_rng_uniform() -> None:
    class Fixed:
        def __init__(self) -> None:
            self.calls: list[tuple[float, float]] = []

        def uniform(self, a: float, b: float) -> float:
            self.calls.append((a, b))
            return b

    rng = Fixed()
    assert RetryPolicy(jitter=0.25).delay(3, rng=rng) == pytest.approx(2.0 * 1.25)
    assert rng.calls == [(0.75, 1.25)]


@pytest.mark.parametrize(("retry_after", "max_delay", "expected"), [
    (3, 10.0, 3.0),
    (3.5, 10.0, 3.5),
    (0, 10.0, 0.0),
    (100, 10.0, 10.0),
    (10.5, 10.0, 10.0),
    (-5, 10.0, 0.0),
    (-0.1, 10.0, 0.0),
    (30, 60.0, 30.0),
])
def test_delay_honours_retry_after(retry_after: float, max_delay: float, expected: float) -> None:
    p = RetryPolicy(max_delay=max_delay, jitter=0.5)
    assert p.delay(1, retry_after=retry_after, rng=random.Random(0)) == expected
    # retry_after is not jittered nor scaled by the retry number
    assert p.delay(5, retry_after=retry_after, rng=random.Random(1)) == expected


def test_delay_with_int_retry_after_returns_float() -> None:
    assert isinstance(RetryPolicy().delay(1, retry_after=3), float)


# --------------------------------------------------------------------------------------------------
# parse_retry_after
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("5", 5.0),
    ("1.5", 1.5),
    ("0", 0.0),
    ("120", 120.0),
    (" 7 ", 7.0),
])
def test_parse_retry_after_seconds(value: str, expected: float) -> None:
    result = parse_retry_after(value)
    assert result == expected
    assert isinstance(result, float)


@pytest.mark.parametrize("value", [None, "", "garbage", "soon", "nan", "inf", "-inf", "-3", "1e3",
                                   "5 s", "Mon, 99 Foo"])
def test_parse_retry_after_absent_or_bad(value: str | None) -> None:
    assert parse_retry_after(value) is None


def test_parse_retry_after_http_date_in_future() -> None:
    now = 1_700_000_000.0
    header = formatdate(now + 30, usegmt=True)
    assert header.endswith("GMT")
    assert parse_retry_after(header, now=now) == pytest.approx(30.0, abs=1.0)


def test_parse_retry_after_http_date_uses_now() -> None:
    now = 1_700_000_000.0
    header = formatdate(now + 90, usegmt=True)
    assert parse_retry_after(header, now=now) == pytest.approx(90.0, abs=1.0)
    assert parse_retry_after(header, now=now + 60) == pytest.approx(30.0, abs=1.0)


def test_parse_retry_after_http_date_in_past() -> None:
    now = 1_700_000_000.0
    header = formatdate(now - 3600, usegmt=True)
    assert parse_retry_after(header, now=now) == 0.0
