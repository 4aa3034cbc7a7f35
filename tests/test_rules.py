"""The rules that decide what a failure is and whether it is retried: host names checked before any
I/O, every foreign failure mapped to our errors in one place, and one retry rule that the errors'
`retryable` and the attempt loop agree on."""

from __future__ import annotations

import asyncio
import inspect
import ssl
from typing import Any

import aiohttp
import pytest

from ollama_stream import (
    AsyncOllama,
    ModelNotFoundError,
    Ollama,
    OllamaConnectionError,
    OllamaError,
    OllamaTimeoutError,
    ProtocolError,
    ResponseError,
    RetryPolicy,
    StreamError,
    StreamInterrupted,
)
from ollama_stream._exchange import Exchange
from ollama_stream._http_errors import EarlyEOF, map_error
from ollama_stream._retry import failure_reason
from ollama_stream._watchdog import Expired
from ollama_stream.config import RETRYABLE_STATUSES, resolve_host

# -- hosts are checked before any I/O -------------------------------------------------------------

BAD_HOSTS = [
    "http://a..b:1",  # an empty label: yarl's IDNA encoding used to fail on the first request
    ".leading.dot", "a b", "tab\there", "host?query", "host#fragment", "back\\slash",
    "a" * 64, "-dash", "dash-", "[not-v6]:1", "http://h:1/x?y", "http://h:1/a b",
    "http://h:1/\udc80",
]


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_a_host_that_cannot_be_sent_is_a_value_error_from_the_constructor(host: str) -> None:
    with pytest.raises(ValueError, match="host="):
        resolve_host(host)
    with pytest.raises(ValueError, match="host="):
        AsyncOllama(host)


@pytest.mark.parametrize(("host", "expected"), [
    ("ünïcode.example", "http://ünïcode.example:11434"),
    ("under_score", "http://under_score:11434"),
    ("trailing.dot.", "http://trailing.dot.:11434"),
    ("host.docker.internal:8080", "http://host.docker.internal:8080"),
    ("fe80::1%eth0", "http://[fe80::1%eth0]:11434"),
    ("https://proxy.example/ollama/", "https://proxy.example:443/ollama"),
])
def test_valid_hosts_are_kept(host: str, expected: str) -> None:
    assert resolve_host(host) == expected


def test_a_bad_ollama_host_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "http://a..b:1")
    with pytest.raises(ValueError, match="OLLAMA_HOST="):
        AsyncOllama()


# -- one mapping, one rule -----------------------------------------------------------------------

def exchange(client: AsyncOllama, model: str | None = "qwen3") -> Exchange:
    return client._exchange("/api/chat", b"{}", model)


def certificate_error() -> aiohttp.ClientConnectorCertificateError:
    key = aiohttp.client_reqrep.ConnectionKey("h", 1, True, None, None, None, None)
    return aiohttp.ClientConnectorCertificateError(key, ssl.SSLCertVerificationError("bad cert"))


def connector_error(os_error: OSError) -> aiohttp.ClientConnectorError:
    key = aiohttp.client_reqrep.ConnectionKey("h", 1, False, None, None, None, None)
    return aiohttp.ClientConnectorError(key, os_error)


FOREIGN: list[tuple[str, Any, type[OllamaError], bool]] = [
    # (id, the foreign failure, our error, retried before the first chunk)
    ("refused", lambda: connector_error(ConnectionRefusedError(111, "refused")),
     OllamaConnectionError, True),
    ("dns", lambda: aiohttp.ClientConnectorDNSError(
        aiohttp.client_reqrep.ConnectionKey("h", 1, False, None, None, None, None),
        OSError(-2, "Name or service not known")), OllamaConnectionError, True),
    ("tls", certificate_error, OllamaConnectionError, False),
    ("invalid-url", lambda: aiohttp.InvalidURL("http://a\\b:1"), OllamaConnectionError, False),
    ("disconnected", lambda: aiohttp.ServerDisconnectedError(), OllamaConnectionError, True),
    ("payload", lambda: aiohttp.ClientPayloadError("cut"), OllamaConnectionError, True),
    ("reset", lambda: ConnectionResetError(104, "reset"), OllamaConnectionError, True),
    ("early-eof", lambda: EarlyEOF("ended"), OllamaConnectionError, True),
    ("bad-http",
     lambda: aiohttp.ClientResponseError(None, (), message="bad status"),  # type: ignore[arg-type]
     ProtocolError, False),
    ("connect-timeout", lambda: aiohttp.ConnectionTimeoutError(), OllamaTimeoutError, True),
    ("first-chunk", lambda: Expired("first_chunk", 300.0), OllamaTimeoutError, False),
    ("idle", lambda: Expired("idle", 120.0), OllamaTimeoutError, False),
    ("total", lambda: Expired("total", 5.0), OllamaTimeoutError, False),
]


@pytest.mark.parametrize(("failure", "kind", "retried"), [f[1:] for f in FOREIGN],
                         ids=[f[0] for f in FOREIGN])
async def test_each_foreign_failure_maps_to_one_error_and_one_decision(
        failure: Any, kind: type[OllamaError], retried: bool) -> None:
    async with AsyncOllama("http://127.0.0.1:9") as client:
        error = map_error(failure(), exchange(client), started=False)
    assert type(error) is kind
    assert RetryPolicy().retries(error) is retried
    if isinstance(error, OllamaConnectionError):
        assert error.retryable is retried  # what the error says is what the loop does
        assert error.url == "http://127.0.0.1:9/api/chat"
    assert "127.0.0.1:9" in str(error) and failure_reason(error)


async def test_after_output_started_a_drop_is_a_stream_interruption() -> None:
    async with AsyncOllama("http://127.0.0.1:9") as client:
        error = map_error(aiohttp.ServerDisconnectedError(), exchange(client), started=True)
    assert type(error) is StreamInterrupted and "nothing was retried" in str(error)


@pytest.mark.parametrize("status", sorted({*RETRYABLE_STATUSES, 400, 401, 403, 404, 405, 422}))
def test_the_retry_rule_on_statuses(status: int) -> None:
    error = ResponseError("x", status_code=status)
    assert RetryPolicy().retries(error) is (status in RETRYABLE_STATUSES)
    assert failure_reason(error) == str(status)


@pytest.mark.parametrize(("error", "retried"), [
    (ModelNotFoundError("x", status_code=404), False),
    (StreamError("x"), False),
    (ProtocolError("x"), False),
    (OllamaError("x"), False),
    (StreamInterrupted("a backend ended before its first chunk"), True),
    (OllamaConnectionError("x", retryable=False), False),
    (OllamaConnectionError("x"), True),
])
def test_the_retry_rule_on_our_own_errors(error: OllamaError, retried: bool) -> None:
    assert RetryPolicy().retries(error) is retried


async def test_an_invalid_url_is_tried_once_and_says_it_is_not_retryable() -> None:
    async with AsyncOllama("http://127.0.0.1:9", retry=RetryPolicy(base_delay=0)) as client:
        client._transport.host = "http://a\\b:9"  # past the constructor's checks, as a proxy might
        with pytest.raises(OllamaConnectionError) as info:
            await client.chat("qwen3", []).result()
    assert info.value.retryable is False and info.value.attempts == 1
    assert info.value.failures == ("invalid URL",) and "invalid URL" in str(info.value)


async def test_a_url_yarl_cannot_encode_is_mapped_too() -> None:
    async with AsyncOllama("http://127.0.0.1:9") as client:
        client._transport.host = "http://a..b:9"  # what the constructor now refuses
        with pytest.raises(OllamaConnectionError) as info:
            await client.chat("qwen3", []).result()
    assert info.value.retryable is False and isinstance(info.value.__cause__, ValueError)


# -- the blocking client is derived, not copied ---------------------------------------------------

def test_the_blocking_constructor_has_exactly_the_async_parameters() -> None:
    assert inspect.signature(Ollama.__init__) == inspect.signature(AsyncOllama.__init__)
    assert Ollama.__init__.__doc__ == AsyncOllama.__init__.__doc__
    client = Ollama("http://127.0.0.1:9", pool_limit=3, headers={"X-A": "b"})
    try:
        assert client.host == "http://127.0.0.1:9" and client._async.pool_limit == 3
    finally:
        client.close()
    with pytest.raises(TypeError):
        Ollama(bogus=1)  # type: ignore[call-arg]


def test_sleep_and_rng_are_read_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    client = AsyncOllama("http://127.0.0.1:9")

    async def no_wait(_: float) -> None:
        await asyncio.sleep(0)

    client._sleep = no_wait
    assert client._exchange("/", None, None).sleep is no_wait


# -- the caller's headers join ours, one of each ----------------------------------------------

async def test_a_callers_headers_replace_ours_without_regard_to_case(
        fake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", "from-the-environment")
    headers = {"user-agent": "my-app/2.0", "AUTHORIZATION": "Bearer mine", "X-Trace": "t1",
               "content-type": "application/json; charset=utf-8"}
    async with AsyncOllama(fake.url, headers=headers) as client:
        await client.version()
    sent = fake.received[-1].headers
    raw = [name.lower() for name in sent]  # aiohttp's request headers keep every copy sent
    assert raw.count("user-agent") == 1 and sent["User-Agent"] == "my-app/2.0"
    assert raw.count("authorization") == 1 and sent["Authorization"] == "Bearer mine"
    assert raw.count("content-type") <= 1 and sent["X-Trace"] == "t1"
    assert sent["Accept"] == "application/x-ndjson, application/json"


async def test_our_user_agent_is_sent_when_the_caller_sets_none(fake: Any) -> None:
    async with AsyncOllama(fake.url, headers={"X-Trace": "t1"}) as client:
        await client.version()
    assert fake.received[-1].headers["User-Agent"].startswith("ollama-stream/")


@pytest.mark.parametrize("name", ["Content-Type", "content-type"])
def test_content_type_is_never_replaced_silently(name: str) -> None:
    with pytest.raises(ValueError, match="application/json"):
        AsyncOllama("http://127.0.0.1:9", headers={name: "text/plain"})


@pytest.mark.parametrize("headers", [
    {"X A": "v"}, {"X(A)": "v"}, {"": "v"}, {"Ünïcode": "v"}, {"X-A": "v\x00"},
    {"X-A": "v\x1bescape"}, {"X-A": "v\x7f"}, {"X-A": "a\rb"},
])
def test_header_names_and_values_follow_rfc_9110(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="RFC 9110"):
        AsyncOllama("http://127.0.0.1:9", headers=headers)


def test_a_tab_and_non_ascii_text_are_fine_in_a_value() -> None:
    AsyncOllama("http://127.0.0.1:9", headers={"X-A": "a\tb", "X-B": "naïve"})


@pytest.mark.parametrize("headers", [[("X-A", "v")], "X-A: v", 42])
def test_headers_that_are_not_a_mapping_are_a_type_error(headers: Any) -> None:
    with pytest.raises(TypeError, match="mapping"):
        AsyncOllama("http://127.0.0.1:9", headers=headers)
