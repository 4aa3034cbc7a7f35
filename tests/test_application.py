"""Into an application's stack: its aiohttp session and connector, its proxy, its redirects policy,
its logs, its traces and its own hooks. Every case runs against real loopback servers: FakeOllama,
a recording proxy, a redirecting server."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
import subprocess
import sys
import types
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
import trustme

from ollama_stream import (
    AsyncOllama,
    ModelNotFoundError,
    Ollama,
    OllamaError,
    RetryPolicy,
    StreamInterrupted,
    Timeouts,
)
from ollama_stream.events import EVENT_KINDS, Event
from ollama_stream.testing import FakeOllama

from .conftest import NO_WAIT
from .servers import raw_server, read_request

USER = [{"role": "user", "content": "hi"}]
KEY = "sk-app-secret-4242"


# -- the caller's session and connector ------------------------------------------------------------

async def test_the_callers_session_is_used_never_closed_and_gets_our_headers(
        fake: FakeOllama) -> None:
    async with aiohttp.ClientSession(headers={"X-App": "mine"}) as session:
        client = AsyncOllama(fake.url, session=session, headers={"X-Request-Tag": "t1"})
        result = await client.chat("qwen3", USER).result()
        await client.aclose()
        assert result.message.content and not session.closed
        sent = {name.lower(): value for name, value in fake.received[-1].headers.items()}
        assert sent["x-app"] == "mine" and sent["x-request-tag"] == "t1"
        assert sent["user-agent"].startswith("ollama-stream/")
        assert sent["accept-encoding"] == "identity"
        async with session.get(f"{fake.url}/api/version") as resp:  # still the caller's to use
            assert resp.status == 200


async def test_a_closed_session_is_a_clear_error(fake: FakeOllama) -> None:
    session = aiohttp.ClientSession()
    await session.close()
    async with AsyncOllama(fake.url, session=session) as client:
        with pytest.raises(RuntimeError, match="session= is closed"):
            await client.version()


async def test_a_callers_connector_is_shared_its_limit_applies_and_it_stays_open(
        fake: FakeOllama) -> None:
    connector = aiohttp.TCPConnector(limit=1)
    try:
        first = AsyncOllama(fake.url, connector=connector)
        second = AsyncOllama(fake.url, connector=connector)
        assert first.pool_limit == 1
        fake.queue_reply(content="one two three", chunk_delay=0.01)
        fake.queue_reply(content="four five six", chunk_delay=0.01)
        replies = await asyncio.gather(first.chat("qwen3", USER).result(),
                                       second.chat("qwen3", USER).result())
        assert sorted(r.message.content for r in replies) == ["four five six", "one two three"]
        peers = {r.peer for r in fake.received if r.path == "/api/chat"}
        assert len(peers) == 1  # one connection, used in turn: the connector's limit held
        await first.aclose()
        await second.aclose()
        assert not connector.closed
    finally:
        await connector.close()


def test_the_blocking_client_refuses_a_session_or_a_connector_and_says_why() -> None:
    for name in ("session", "connector"):
        with pytest.raises(TypeError, match="event loop of its own") as info:
            Ollama(**{name: object()})
        assert f"AsyncOllama({name}=" in str(info.value)


def test_session_and_connector_together_are_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        AsyncOllama(session=object(), connector=object())


# -- proxies ---------------------------------------------------------------------------------------

class RecordingProxy:
    """A plain-http forward proxy on loopback that records each request line and its headers,
    then forwards the request (one per connection) and pipes the answer back."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line, headers, body = await read_request(reader)
        method, target, _ = line.decode().split(" ", 2)
        self.seen.append((f"{method} {target}", headers))
        url = aiohttp.helpers.URL(target)  # yarl, as aiohttp re-exports it
        up_reader, up_writer = await asyncio.open_connection(url.host, url.port)
        forwarded = {k: v for k, v in headers.items()
                     if k not in ("proxy-authorization", "connection", "host")}
        head = [f"{method} {url.raw_path_qs} HTTP/1.1", f"Host: {url.host}:{url.port}",
                "Connection: close", *(f"{k}: {v}" for k, v in forwarded.items())]
        up_writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await up_writer.drain()
        while data := await up_reader.read(65536):
            writer.write(data)
            await writer.drain()
        up_writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[tuple[str, RecordingProxy]]:
    recorder = RecordingProxy()
    async with raw_server(recorder) as url:
        yield url, recorder


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


async def test_an_environment_proxy_never_captures_local_traffic_by_default(
        fake: FakeOllama, proxy: tuple[str, RecordingProxy],
        no_proxy_env: pytest.MonkeyPatch) -> None:
    url, recorder = proxy
    no_proxy_env.setenv("HTTP_PROXY", url)
    async with AsyncOllama(fake.url, retry=NO_WAIT) as client:
        await client.chat("qwen3", USER).result()
    assert recorder.seen == [] and [r.path for r in fake.received] == ["/api/chat"]


async def test_trust_env_honours_http_proxy_and_no_proxy(
        fake: FakeOllama, proxy: tuple[str, RecordingProxy],
        no_proxy_env: pytest.MonkeyPatch) -> None:
    url, recorder = proxy
    no_proxy_env.setenv("HTTP_PROXY", url)
    async with AsyncOllama(fake.url, retry=NO_WAIT, trust_env=True) as client:
        result = await client.chat("qwen3", USER).result()
    assert result.message.content and recorder.seen[0][0] == f"POST {fake.url}/api/chat"
    recorder.seen.clear()
    no_proxy_env.setenv("NO_PROXY", "127.0.0.1")
    async with AsyncOllama(fake.url, retry=NO_WAIT, trust_env=True) as client:
        await client.chat("qwen3", USER).result()
    assert recorder.seen == []


async def test_an_explicit_proxy_gets_its_credentials_and_the_server_does_not(
        fake: FakeOllama, proxy: tuple[str, RecordingProxy],
        no_proxy_env: pytest.MonkeyPatch) -> None:
    url, recorder = proxy
    expected = "Basic " + base64.b64encode(b"squid:pw").decode()
    in_url = url.replace("http://", "http://squid:pw@")
    for options in ({"proxy": url, "proxy_auth": ("squid", "pw")}, {"proxy": in_url}):
        async with AsyncOllama(fake.url, retry=NO_WAIT, **options) as client:
            for _ in range(2):
                assert (await client.chat("qwen3", USER).result()).message.content
    assert [line for line, _ in recorder.seen] == [f"POST {fake.url}/api/chat"] * 4
    assert [headers["proxy-authorization"] for _, headers in recorder.seen] == [expected] * 4


class ConnectProxy:
    """A CONNECT proxy on loopback: records each CONNECT's head, then pipes the tunnel."""

    def __init__(self) -> None:
        self.heads: list[dict[str, str]] = []

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line, headers, _ = await read_request(reader)
        self.heads.append({"line": line.decode(), **headers})
        host, port = line.decode().split(" ")[1].rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_to_an_https_server_the_proxy_credentials_go_in_the_connect_only(
        no_proxy_env: pytest.MonkeyPatch) -> None:
    ca = trustme.CA()
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_side)
    client_side = ssl.create_default_context()
    ca.configure_trust(client_side)
    tunnel = ConnectProxy()
    async with FakeOllama(ssl=server_side) as fake, raw_server(tunnel) as url:
        for options in ({"proxy": url, "proxy_auth": ("squid", "pw")},
                        {"proxy": url.replace("http://", "http://squid:pw@")}):
            async with AsyncOllama(fake.url, ssl=client_side, **options) as client:
                assert (await client.chat("qwen3", USER).result()).message.content
    expected = "Basic " + base64.b64encode(b"squid:pw").decode()
    assert [head["proxy-authorization"] for head in tunnel.heads] == [expected] * 2
    assert all(head["line"].startswith("CONNECT 127.0.0.1:") for head in tunnel.heads)
    inside = [{k.lower() for k in r.headers} for r in fake.received]
    assert len(inside) == 2 and not any("proxy-authorization" in names for names in inside)


def test_a_proxy_that_is_not_an_http_url_is_refused() -> None:
    with pytest.raises(ValueError, match="proxy must be an http"):
        AsyncOllama(proxy="socks5://127.0.0.1:1080")


# -- redirects -------------------------------------------------------------------------------------

def redirect_to(location: str, status: int = 307) -> Any:
    seen: list[dict[str, str]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, headers, _ = await read_request(reader)
        seen.append(headers)
        writer.write(f"HTTP/1.1 {status} Moved\r\nLocation: {location}\r\n"
                     "Content-Length: 0\r\n\r\n".encode())
        await writer.drain()

    return handler, seen


async def test_redirects_any_follows_another_origin_without_the_authorization_header(
        fake: FakeOllama, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", KEY)
    handler, seen = redirect_to(f"{fake.url}/api/chat")
    async with raw_server(handler) as url, AsyncOllama(url, redirects="any") as client:
        result = await client.chat("qwen3", USER).result()
    assert result.message.content
    assert seen[0]["authorization"] == f"Bearer {KEY}"  # the origin it was given for had it
    arrived = {k.lower(): v for k, v in fake.received[-1].headers.items()}
    assert "authorization" not in arrived and arrived["user-agent"].startswith("ollama-stream/")


async def test_redirects_none_follows_not_even_the_same_origin() -> None:
    handler, seen = redirect_to("/elsewhere/api/chat")
    async with raw_server(handler) as url, AsyncOllama(url, redirects="none") as client:
        with pytest.raises(OllamaError, match="redirect") as info:
            await client.chat("qwen3", USER).result()
    assert "redirects='none'" in str(info.value) and len(seen) == 1


async def test_a_callers_session_with_credentials_is_not_followed_to_another_origin(
        fake: FakeOllama) -> None:
    handler, seen = redirect_to(f"{fake.url}/api/chat")
    async with raw_server(handler) as url:
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer SESSION-KEY"}) as own:
            client = AsyncOllama(url, session=own, redirects="any")
            with pytest.raises(OllamaError, match="your session= adds an Authorization"):
                await client.chat("qwen3", USER).result()
            await client.aclose()
        async with AsyncOllama(url.replace("http://", "http://me:pw@"),
                               redirects="any") as client:  # our own basic auth stays home
            assert (await client.chat("qwen3", USER).result()).message.content
    assert fake.received and all("authorization" not in {k.lower() for k in r.headers}
                                 for r in fake.received)
    assert seen[-1]["authorization"] == "Basic " + base64.b64encode(b"me:pw").decode()


async def test_credentials_in_a_location_are_never_shown() -> None:
    handler, _ = redirect_to("http://user:hunter2@127.0.0.2:1/api/chat")
    async with raw_server(handler) as url, AsyncOllama(url) as client:
        with pytest.raises(OllamaError, match="another origin") as info:
            await client.chat("qwen3", USER).result()
    assert "hunter2" not in str(info.value) and "***@127.0.0.2" in str(info.value)


async def test_a_session_that_raises_for_status_still_gets_our_errors(fake: FakeOllama) -> None:
    async with aiohttp.ClientSession(raise_for_status=True) as own:
        client = AsyncOllama(fake.url, session=own, retry=NO_WAIT)
        fake.queue_error(503, "server busy, please try again.  maximum pending requests exceeded")
        assert (await client.chat("qwen3", USER).result()).message.content  # retried
        with pytest.raises(ModelNotFoundError):
            await client.chat("not-pulled", USER).result()
        await client.aclose()


def test_the_settings_a_callers_connector_owns_are_its_own() -> None:
    unlimited = types.SimpleNamespace(limit=0)
    assert AsyncOllama(connector=unlimited, pool_limit=7).pool_limit == 0
    with pytest.raises(ValueError, match="give yours the ssl"):
        AsyncOllama(connector=unlimited, ssl=False)


def test_an_unknown_redirects_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="same-origin"):
        AsyncOllama(redirects="all")


# -- logging ---------------------------------------------------------------------------------------

def records_text(records: list[logging.LogRecord]) -> str:
    """Everything the records say, tracebacks included."""
    out = []
    for record in records:
        out.append(record.getMessage())
        if record.exc_info:
            out.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(out)


async def test_debug_logs_one_line_per_request_retry_and_end_and_nothing_above_debug(
        fake: FakeOllama, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ollama_stream")
    fake.queue_error(503, "server busy, please try again.  maximum pending requests exceeded")
    fake.queue_reply(content="the answer")
    async with AsyncOllama(fake.url, retry=NO_WAIT) as client:
        await client.chat("qwen3", [{"role": "user", "content": "my private question"}]).result()
    ours = [r for r in caplog.records if r.name.startswith("ollama_stream")]
    lines = [r.getMessage() for r in ours]
    url = f"{fake.url}/api/chat"
    assert lines[0] == f"POST {url} model=qwen3 attempt=1"
    assert lines[1].startswith(f"retrying POST {url} in 0.00s: attempt 1 failed (")
    assert lines[2] == f"POST {url} model=qwen3 attempt=2"
    assert lines[3].startswith(f"POST {url} ended: 3 chunks, done_reason=stop, ")
    assert "tokens/s, first chunk after 0." in lines[3] and len(lines) == 4
    assert all(r.levelno == logging.DEBUG for r in ours)
    assert "my private question" not in records_text(ours)  # bodies only with log_content


async def test_log_content_lets_the_debug_lines_carry_the_body_and_the_reply(
        fake: FakeOllama, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ollama_stream")
    fake.queue_reply(content="the answer")
    async with AsyncOllama(fake.url, log_content=True) as client:
        await client.chat("qwen3", [{"role": "user", "content": "my own question"}]).result()
    said = records_text(caplog.records)
    assert "my own question" in said and "content='the answer'" in said


async def test_nothing_is_logged_at_info_or_above_on_the_happy_path(
        fake: FakeOllama, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with AsyncOllama(fake.url) as client:
        await client.chat("qwen3", USER).result()
        await client.generate("qwen3", "hi").result()
        await client.embed("qwen3", "hi")
        await client.list()
    assert [r for r in caplog.records if r.name.startswith("ollama_stream")] == []


async def closed_port() -> str:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return f"http://127.0.0.1:{port}"


async def test_the_api_key_is_in_no_record_along_any_error_path(
        fake: FakeOllama, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", KEY)
    caplog.set_level(logging.DEBUG)
    fake.queue_error(401, "unauthorized")
    fake.queue_error(503, "server busy, please try again.  maximum pending requests exceeded")
    fake.queue_error(503, "server busy, please try again.  maximum pending requests exceeded")
    fake.queue_error(503, "server busy, please try again.  maximum pending requests exceeded")
    fake.queue_reply(content="cut short here", drop_after=2)
    fake.queue_reply(content="a b", error="an error after output")
    fake.queue_reply(content="never", stall_after=0)
    quick = Timeouts(first_chunk=0.2)

    def hook(event: Event) -> None:
        raise RuntimeError(f"a broken hook ({event.kind})")

    failures: list[BaseException] = []
    async with AsyncOllama(fake.url, retry=NO_WAIT, on_event=hook, log_content=True) as client:
        for call in (lambda: client.chat("qwen3", USER).result(),      # 401
                     lambda: client.chat("qwen3", USER).result(),      # 503 x3, retried
                     lambda: client.chat("qwen3", USER).result(),      # dropped mid-stream
                     lambda: client.chat("qwen3", USER).result(),      # error line after output
                     lambda: client.chat("qwen3", USER, timeouts=quick,
                                         retry=RetryPolicy(max_attempts=1)).result(),
                     lambda: client.show("not-pulled")):
            with pytest.raises(OllamaError) as info:
                await call()
            failures.append(info.value)
    async with AsyncOllama(await closed_port(), retry=NO_WAIT, on_event=hook) as client:
        with pytest.raises(OllamaError) as info:
            await client.chat("qwen3", USER).result()
        failures.append(info.value)
    assert isinstance(failures[2], StreamInterrupted)
    assert isinstance(failures[5], ModelNotFoundError)
    said = records_text(caplog.records)
    assert "a broken hook" in said and "retrying" in said and "failed" in said
    assert KEY not in said and KEY not in repr([r.__dict__ for r in caplog.records])


# -- event hooks -----------------------------------------------------------------------------------

class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.ended = asyncio.Event()  # set at each finished or failed event

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if event.kind in ("finished", "failed"):
            self.ended.set()

    @property
    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


async def test_events_for_a_retried_stream_that_finishes(fake: FakeOllama) -> None:
    hook = Recorder()
    fake.queue_error(503, "server busy, please try again.  maximum pending requests exceeded")
    fake.queue_reply(content="one two")
    async with AsyncOllama(fake.url, retry=NO_WAIT, on_event=hook) as client:
        await client.chat("qwen3", USER).result()
    assert hook.kinds == ["request", "retry", "request", "first_chunk", "finished"]
    assert set(hook.kinds) <= set(EVENT_KINDS)
    request, retry, again, first, end = hook.events
    assert (request.operation, request.method, request.model, request.attempt) == (
        "chat", "POST", "qwen3", 1)
    assert request.url == f"{fake.url}/api/chat" and request.request is None
    assert retry.delay == 0.0 and retry.reason and "503" in retry.reason
    assert again.attempt == 2 and first.time_to_first_chunk is not None
    assert end.done_reason == "stop" and end.metrics is not None and end.chunks == 3
    assert end.metrics.eval_count and end.content is None and end.error is None
    assert [e.elapsed for e in hook.events] == sorted(e.elapsed for e in hook.events)


async def test_a_stream_failing_mid_way_and_one_abandoned_end_in_failed(fake: FakeOllama) -> None:
    hook = Recorder()
    fake.queue_reply(content="a b c d", drop_after=2)
    fake.queue_reply(content="e f g h")
    async with AsyncOllama(fake.url, retry=NO_WAIT, on_event=hook) as client:
        with pytest.raises(StreamInterrupted):
            await client.chat("qwen3", USER).result()
        assert hook.kinds == ["request", "first_chunk", "failed"]
        failed = hook.events[-1]
        assert isinstance(failed.error, StreamInterrupted) and not failed.abandoned
        assert failed.chunks == 2
        hook.events.clear()
        hook.ended.clear()
        async for _ in client.chat("qwen3", USER):
            break  # the stream is closed as it is dropped, in a task of its own
        await asyncio.wait_for(hook.ended.wait(), 10)
        assert hook.kinds == ["request", "first_chunk", "failed"]
        left = hook.events[-1]
        assert left.abandoned and left.error is None and left.chunks == 1


async def test_a_hook_that_raises_is_logged_and_never_breaks_the_stream(
        fake: FakeOllama, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    def hook(event: Event) -> None:
        calls.append(event.kind)
        raise ValueError("the dashboard is down")

    fake.queue_reply(content="still here")
    async with AsyncOllama(fake.url, on_event=hook) as client:
        result = await client.chat("qwen3", USER).result()
    assert result.message.content == "still here"
    assert calls == ["request", "first_chunk", "finished"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3 and "on_event hook raised" in warnings[0].getMessage()
    assert warnings[0].exc_info is not None


async def test_unary_calls_have_events_too_and_log_content_shows_the_request(
        fake: FakeOllama) -> None:
    hook = Recorder()
    async with AsyncOllama(fake.url, on_event=hook, log_content=True) as client:
        await client.embed("qwen3", "hello")
        with pytest.raises(ModelNotFoundError):
            await client.show("not-pulled")
    assert hook.kinds == ["request", "finished", "request", "failed"]
    embed_start, embed_end, _, show_failed = hook.events
    assert embed_start.operation == "embed" and embed_start.request["input"] == "hello"
    assert embed_end.metrics is not None and embed_end.metrics.prompt_eval_count
    assert isinstance(show_failed.error, ModelNotFoundError) and show_failed.operation == "show"


def test_the_blocking_client_takes_on_event_too() -> None:
    hook = Recorder()
    with FakeOllama() as fake, Ollama(fake.url, on_event=hook) as client:
        fake.queue_reply(content="blocking")
        assert client.chat("qwen3", USER).result().message.content == "blocking"
    assert hook.kinds == ["request", "first_chunk", "finished"]


def test_on_event_must_be_a_plain_function() -> None:
    with pytest.raises(TypeError, match="on_event"):
        AsyncOllama(on_event="print")  # type: ignore[arg-type]

    async def coroutine_hook(event: Event) -> None: ...

    with pytest.raises(TypeError, match="never awaited"):
        AsyncOllama(on_event=coroutine_hook)


def test_a_no_op_tracer_provider_is_nobody_listening(monkeypatch: pytest.MonkeyPatch) -> None:
    trace = pytest.importorskip("opentelemetry.trace")
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", trace.NoOpTracerProvider())
    client = AsyncOllama()
    assert client._exchange("/api/chat", b"{}", "qwen3").watch is None


# -- tracing ---------------------------------------------------------------------------------------

@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An in-memory exporter behind a provider set only for this test (opentelemetry's global
    provider can be set once per process, so it is swapped in and out underneath)."""
    trace = pytest.importorskip("opentelemetry.trace")
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    export = pytest.importorskip("opentelemetry.sdk.trace.export")
    memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    exporter = memory.InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    yield exporter
    provider.shutdown()


async def test_a_chat_is_a_genai_span_with_usage_timing_and_a_retry_event(
        fake: FakeOllama, spans: Any) -> None:
    fake.queue_error(503, "server busy, please try again.  maximum pending requests exceeded")
    fake.queue_reply(content="one two three")
    async with AsyncOllama(fake.url, retry=NO_WAIT) as client:
        await client.chat("qwen3", [{"role": "user", "content": "private"}]).result()
    (span,) = spans.get_finished_spans()
    port = int(fake.url.rpartition(":")[2])
    attributes = dict(span.attributes)
    assert span.name == "chat qwen3" and span.kind.name == "CLIENT"
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "qwen3"
    assert attributes["gen_ai.response.model"] == "qwen3"
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] > 0
    assert attributes["server.address"] == "127.0.0.1" and attributes["server.port"] == port
    assert attributes["ollama_stream.time_to_first_chunk"] > 0
    assert "ollama_stream.tokens_per_second" in attributes
    assert "gen_ai.input.messages" not in attributes and "private" not in repr(attributes)
    (retry,) = span.events
    assert retry.name == "retry" and retry.attributes["attempt"] == 1
    assert span.status.status_code.name == "UNSET"


async def test_a_span_ends_in_error_when_the_stream_fails_mid_way(
        fake: FakeOllama, spans: Any) -> None:
    fake.queue_reply(content="a b c d", drop_after=2)
    async with AsyncOllama(fake.url, retry=NO_WAIT) as client:
        with pytest.raises(StreamInterrupted):
            await client.chat("qwen3", USER).result()
    (span,) = spans.get_finished_spans()
    assert span.status.status_code.name == "ERROR"
    assert span.attributes["error.type"] == "StreamInterrupted"
    assert span.attributes["ollama_stream.chunks"] == 2


async def test_an_abandoned_stream_ends_its_span_and_says_so(fake: FakeOllama, spans: Any) -> None:
    fake.queue_reply(content="a b c d e f")
    hook = Recorder()
    async with AsyncOllama(fake.url, on_event=hook) as client:
        async for _ in client.generate("qwen3", "hi"):
            break
        await asyncio.wait_for(hook.ended.wait(), 10)
    (span,) = spans.get_finished_spans()
    assert span.name == "text_completion qwen3"
    assert span.attributes["ollama_stream.abandoned"] is True
    assert span.status.status_code.name == "UNSET"


async def test_content_is_traced_only_with_log_content_and_embed_is_a_span(
        fake: FakeOllama, spans: Any) -> None:
    fake.queue_reply(content="traced words")
    async with AsyncOllama(fake.url, log_content=True) as client:
        await client.chat("qwen3", [{"role": "user", "content": "asked"}]).result()
        await client.embed("qwen3", "hi")
        await client.list()  # not a generation: no span
    chat, embed = spans.get_finished_spans()
    assert "asked" in chat.attributes["gen_ai.input.messages"]
    assert "traced words" in chat.attributes["gen_ai.output.messages"]
    assert embed.attributes["gen_ai.operation.name"] == "embeddings"


def test_importing_the_package_does_not_import_opentelemetry() -> None:
    code = ("import sys, ollama_stream\n"
            "ollama_stream.AsyncOllama(on_event=print)\n"
            "assert not any(m.startswith('opentelemetry') for m in sys.modules), 'imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
