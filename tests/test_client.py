"""AsyncOllama and ChatStream against real loopback servers: FakeOllama and byte-level raw
servers."""

from __future__ import annotations

import asyncio
import gc
import socket
from typing import Any

import pytest

from ollama_stream import (
    AsyncOllama,
    ChatChunk,
    ChatResult,
    Message,
    ModelNotFoundError,
    OllamaConnectionError,
    OllamaError,
    OllamaTimeoutError,
    ProtocolError,
    ResponseError,
    RetryPolicy,
    StreamError,
    StreamInterrupted,
    Timeouts,
    ToolCall,
    __version__,
)
from ollama_stream.testing import FakeOllama

from .conftest import NO_WAIT
from .servers import LAST_CHUNK, http_chunk, raw_server, read_request, response_head

USER = [{"role": "user", "content": "Why is the sky blue?"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- streaming and accumulation --------------------------------------------------------------------

async def test_streams_typed_chunks_thinking_then_content(fake: FakeOllama,
                                                          client: AsyncOllama) -> None:
    fake.queue_reply(content="Rayleigh scattering.", thinking="Short answer.")
    stream = client.chat("qwen3", USER, think=True)
    chunks = [chunk async for chunk in stream]
    assert all(isinstance(chunk, ChatChunk) for chunk in chunks)
    assert [c.thinking for c in chunks if c.thinking] == ["Short ", "answer."]
    assert [c.content for c in chunks if c.content] == ["Rayleigh ", "scattering."]
    first_content = next(i for i, c in enumerate(chunks) if c.content)
    assert (all(not c.content for c in chunks[:first_content])
            and all(not c.thinking for c in chunks[first_content:]))
    final = chunks[-1]
    assert final.done and final.done_reason == "stop" and final.metrics is not None
    assert final.metrics.eval_count == 4 and final.metrics.tokens_per_second is not None
    assert [c.done for c in chunks[:-1]] == [False] * (len(chunks) - 1)
    assert stream.message == Message("assistant", "Rayleigh scattering.", "Short answer.")
    assert stream.done


async def test_result_drains_and_returns_the_reply(fake: FakeOllama, client: AsyncOllama) -> None:
    fake.queue_reply(content="One two three.", thinking="Count.")
    stream = client.chat("qwen3", USER)
    first = await stream.__anext__()
    assert first.thinking == "Count."
    result = await stream.result()
    assert isinstance(result, ChatResult)
    assert result.message == Message("assistant", "One two three.", "Count.")
    assert result.model == "qwen3" and result.done_reason == "stop"
    assert result.metrics is not None and result.metrics.total_duration
    assert await stream.result() == result  # idempotent once finished


async def test_text_yields_content_deltas_only(fake: FakeOllama, client: AsyncOllama) -> None:
    fake.queue_reply(content="Hello there!", thinking="Hidden thoughts.",
                     tool_calls=[ToolCall("f", {"x": 1})])
    stream = client.chat("qwen3", USER)
    assert [text async for text in stream.text()] == ["Hello ", "there!"]
    assert stream.message.thinking == "Hidden thoughts."  # still accumulated
    assert stream.message.tool_calls[0].name == "f"


@pytest.mark.parametrize("on_done", [False, True])
async def test_tool_calls_are_collected_wherever_they_arrive(fake: FakeOllama, client: AsyncOllama,
                                                             on_done: bool) -> None:
    fake.queue_reply(content="Checking.",
                     tool_calls=[{"name": "get_weather", "arguments": {"city": "Tokyo"}},
                                 {"name": "get_time", "arguments": {}}],
                     tool_calls_on_done=on_done)
    tools = [{"type": "function", "function": {"name": "get_weather"}}]
    result = await client.chat("qwen3", USER, tools=tools).result()
    calls = result.message.tool_calls
    assert [(c.name, c.arguments, c.index) for c in calls] == [
        ("get_weather", {"city": "Tokyo"}, 0), ("get_time", {}, 1)]
    assert all(c.id and c.id.startswith("call_") for c in calls)


async def test_multi_turn_history_carries_thinking_and_tool_calls(fake: FakeOllama,
                                                                  client: AsyncOllama) -> None:
    messages: list[Any] = [Message("system", "Be brief."),
                           {"role": "user", "content": "Weather in Tokyo?"}]
    fake.queue_reply(thinking="Call the tool.",
                     tool_calls=[ToolCall("get_weather", {"city": "Tokyo"})])
    first = await client.chat("qwen3", messages, think=True).result()
    messages.append(first.message)
    call = first.message.tool_calls[0]
    messages.append(Message("tool", "22C, sunny", tool_name=call.name, tool_call_id=call.id))
    second = await client.chat("qwen3", messages, think=True).result()
    assert second.message.content == "The tool get_weather returned: 22C, sunny"
    sent = fake.requests[-1]["messages"]
    assert sent == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Tokyo?"},
        {"role": "assistant", "thinking": "Call the tool.", "tool_calls": [
            {"id": call.id, "function": {"index": 0, "name": "get_weather",
                                         "arguments": {"city": "Tokyo"}}}]},
        {"role": "tool", "content": "22C, sunny", "tool_name": "get_weather",
         "tool_call_id": call.id},
    ]


async def test_only_the_arguments_set_are_sent(fake: FakeOllama, client: AsyncOllama) -> None:
    await client.chat("qwen3", USER).result()
    assert fake.requests[-1] == {"model": "qwen3", "messages": USER, "stream": True}
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    await client.chat("qwen3", USER, think="high", format=schema,
                      options={"temperature": 0, "seed": 7},
                      keep_alive="5m", logprobs=True, top_logprobs=3).result()
    assert fake.requests[-1] == {"model": "qwen3", "messages": USER, "stream": True,
                                 "think": "high", "format": schema,
                                 "options": {"temperature": 0, "seed": 7}, "keep_alive": "5m",
                                 "logprobs": True, "top_logprobs": 3}


async def test_empty_messages_load_the_model(fake: FakeOllama, client: AsyncOllama) -> None:
    fake.queue_reply(content="not for a load")
    result = await client.chat("qwen3", []).result()
    assert fake.requests[-1]["messages"] == []
    # Ollama answers one object: the model is loaded, nothing is generated
    assert result.done_reason == "load" and result.message.content == ""
    assert fake.loaded == ["qwen3:latest"] and fake.pending == 1


async def test_bad_arguments_fail_before_any_io(fake: FakeOllama, client: AsyncOllama) -> None:
    with pytest.raises(ValueError, match="model"):
        client.chat("", USER)
    with pytest.raises(ValueError, match=r"messages\[0\]: role"):
        client.chat("qwen3", [{"role": "", "content": "x"}])
    with pytest.raises(ValueError, match="think"):
        client.chat("qwen3", USER, think="extreme")
    with pytest.raises(ValueError, match="top_logprobs"):
        client.chat("qwen3", USER, top_logprobs=21)
    assert fake.received == []


def test_client_and_stream_are_built_without_a_loop() -> None:
    client = AsyncOllama("http://127.0.0.1:1")
    stream = client.chat("qwen3", USER)
    assert repr(stream) == "<ChatStream model='qwen3' not started>"
    assert repr(client) == "AsyncOllama(host='http://127.0.0.1:1')"


async def test_connection_is_reused_across_requests(fake: FakeOllama, client: AsyncOllama) -> None:
    for _ in range(3):
        await client.chat("qwen3", USER).result()
    peers = {request.peer for request in fake.received}
    assert len(peers) == 1


# -- errors ----------------------------------------------------------------------------------------

async def test_unknown_model_is_model_not_found(fake: FakeOllama, client: AsyncOllama) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        await client.chat("qwen9", USER).result()
    err = info.value
    assert err.status_code == 404 and err.model == "qwen9"
    assert "ollama pull qwen9" in str(err) and fake.url in str(err)
    assert isinstance(err, ResponseError) and err.attempts == 1
    assert len(fake.requests) == 1  # never retried


@pytest.mark.parametrize("status", [400, 401, 403])
async def test_client_errors_are_not_retried(fake: FakeOllama, client: AsyncOllama,
                                             status: int) -> None:
    fake.queue_error(status, "nope")
    with pytest.raises(ResponseError) as info:
        await client.chat("qwen3", USER).result()
    assert info.value.status_code == status and info.value.error == "nope"
    assert f"HTTP {status}" in str(info.value) and "'qwen3'" in str(info.value)
    assert len(fake.requests) == 1


async def test_server_error_text_is_kept(fake: FakeOllama) -> None:
    fake.queue_error(500, "model runner has unexpectedly stopped")
    async with AsyncOllama(fake.url, retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(ResponseError) as info:
            await client.chat("qwen3", USER).result()
    assert info.value.error == "model runner has unexpectedly stopped"
    assert "server log" in str(info.value)


async def test_proxy_html_page_and_empty_body(fake: FakeOllama) -> None:
    page = b"<html><body>" + b"Bad Gateway " * 100 + b"</body></html>"
    fake.queue_error(502, body=page, content_type="text/html")
    fake.queue_error(500, body=b"", content_type="text/plain")
    async with AsyncOllama(fake.url, retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(ResponseError) as info:
            await client.chat("qwen3", USER).result()
        assert info.value.status_code == 502
        assert info.value.error == page.decode()[:500]
        with pytest.raises(ResponseError) as info:
            await client.chat("qwen3", USER).result()
        assert info.value.status_code == 500 and info.value.error  # the reason phrase, never empty


async def test_retryable_statuses_are_retried_then_succeed(fake: FakeOllama,
                                                           client: AsyncOllama) -> None:
    fake.queue_error(503, "server busy, please try again.  maximum pending requests exceeded")
    fake.queue_error(429, "slow down")
    fake.queue_reply(content="Finally.")
    result = await client.chat("qwen3", USER).result()
    assert result.message.content == "Finally."
    assert len(fake.requests) == 3


async def test_retries_exhausted_says_why_each_attempt_failed(fake: FakeOllama,
                                                              client: AsyncOllama) -> None:
    for _ in range(3):
        fake.queue_error(503, "busy")
    with pytest.raises(ResponseError) as info:
        await client.chat("qwen3", USER).result()
    err = info.value
    assert err.attempts == 3 and err.failures == ("503", "503", "503")
    assert "gave up after 3 attempts: 503, 503, 503" in str(err)


async def test_mid_stream_error_line_is_stream_error_with_partial(fake: FakeOllama,
                                                                  client: AsyncOllama) -> None:
    fake.queue_reply(content="The answer is", error="model runner has unexpectedly stopped")
    seen = []
    with pytest.raises(StreamError) as info:
        async for chunk in client.chat("qwen3", USER):
            seen.append(chunk.content)
    err = info.value
    assert err.error == "model runner has unexpectedly stopped"
    assert err.partial == Message("assistant", "The answer is")
    assert "".join(seen) == "The answer is"
    assert fake.url in str(err) and len(fake.requests) == 1


async def test_dropped_connection_is_stream_interrupted_with_exact_partial(
        fake: FakeOllama, client: AsyncOllama) -> None:
    fake.queue_reply(content="a b c d e f", drop_after=3)
    seen = []
    with pytest.raises(StreamInterrupted) as info:
        async for chunk in client.chat("qwen3", USER):
            seen.append(chunk.content)
    assert info.value.partial is not None
    assert info.value.partial.content == "".join(seen) == "a b c "
    assert "partial" in str(info.value) and len(fake.requests) == 1


async def test_clean_eof_without_done_is_stream_interrupted() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response_head()
                     + http_chunk(b'{"message":{"role":"assistant","content":"Hi"},"done":false}\n')
                     + LAST_CHUNK)
        await writer.drain()
        await reader.read()

    async with raw_server(handler) as url, AsyncOllama(url, retry=NO_WAIT) as client:
        with pytest.raises(StreamInterrupted,
                           match=r"ended after 1 chunks without its final chunk") as info:
            await client.chat("qwen3", USER).result()
        assert info.value.partial == Message("assistant", "Hi")


async def test_html_200_is_a_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response_head(content_type="text/html; charset=utf-8")
                     + http_chunk(b"<html></html>") + LAST_CHUNK)
        await writer.drain()
        await reader.read()

    async with raw_server(handler) as url, AsyncOllama(url, retry=NO_WAIT) as client:
        with pytest.raises(ProtocolError, match="HTML page"):
            await client.chat("qwen3", USER).result()


async def test_garbage_line_mid_stream_is_protocol_error_with_partial() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response_head()
                     + http_chunk(b'{"message":{"role":"assistant","content":"ok"},"done":false}\n')
                     + http_chunk(b"Traceback (most recent call last):\n") + LAST_CHUNK)
        await writer.drain()
        await reader.read()

    async with raw_server(handler) as url, AsyncOllama(url, retry=NO_WAIT) as client:
        with pytest.raises(ProtocolError,
                           match=r"line 2 of the stream is not valid JSON: b'Traceback") as info:
            await client.chat("qwen3", USER).result()
        assert info.value.partial == Message("assistant", "ok")
        assert url in str(info.value)


async def test_line_over_max_line_bytes_is_protocol_error(fake: FakeOllama) -> None:
    fake.queue_reply(tool_calls=[ToolCall("save", {"blob": "x" * 5000})])
    async with AsyncOllama(fake.url, max_line_bytes=4096) as client:
        with pytest.raises(ProtocolError, match="max_line_bytes=4096"):
            await client.chat("qwen3", USER).result()


async def test_connection_refused_is_connection_error(loop_errors: list[Any]) -> None:
    port = free_port()
    async with AsyncOllama(f"http://127.0.0.1:{port}", retry=NO_WAIT) as client:
        with pytest.raises(OllamaConnectionError) as info:
            await client.chat("qwen3", USER).result()
    err = info.value
    assert isinstance(err, ConnectionError) and isinstance(err, OllamaError)
    assert (f"http://127.0.0.1:{port}" in str(err) and "ollama serve" in str(err)
            and "OLLAMA_HOST" in str(err))
    assert err.attempts == 3 and err.failures == ("connection refused",) * 3
    assert err.partial is None


async def test_first_chunk_timeout(loop_errors: list[Any]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()  # never answers

    async with raw_server(handler) as url, AsyncOllama(
            url, retry=RetryPolicy(max_attempts=2, base_delay=0),
            timeouts=Timeouts(first_chunk=0.2)) as client:
        with pytest.raises(OllamaTimeoutError) as info:
            await client.chat("qwen3", USER).result()
    err = info.value
    assert isinstance(err, TimeoutError)
    assert err.phase == "first_chunk" and err.timeout == 0.2 and "0.2s" in str(err)
    # Not retried: the model may still be loading, and Ollama aborts a load its client leaves.
    assert err.attempts == 1 and err.failures == ("first_chunk timeout",)
    assert "Not retried" in str(err) and "Timeouts(first_chunk=...)" in str(err)


async def test_idle_timeout_after_output_is_not_retried(fake: FakeOllama) -> None:
    fake.queue_reply(content="one two three four", stall_after=2)
    async with AsyncOllama(fake.url, retry=NO_WAIT, timeouts=Timeouts(idle=0.2)) as client:
        with pytest.raises(OllamaTimeoutError) as info:
            await client.chat("qwen3", USER).result()
    assert info.value.phase == "idle" and info.value.partial == Message("assistant", "one two ")
    assert len(fake.requests) == 1
    await fake.wait_disconnect()


async def test_slow_consumer_is_not_an_idle_timeout(fake: FakeOllama) -> None:
    fake.queue_reply(content="a b c")
    async with AsyncOllama(fake.url, timeouts=Timeouts(idle=0.05)) as client:
        out = []
        async for chunk in client.chat("qwen3", USER):
            out.append(chunk.content)
            await asyncio.sleep(0.1)  # the caller is slow, not the server
    assert "".join(out) == "a b c"


# -- headers and secrets ---------------------------------------------------------------------------

async def test_headers_user_agent_and_api_key(fake: FakeOllama,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", "sk-secret-123")
    async with AsyncOllama(fake.url, headers={"X-Trace": "t1"}) as client:
        await client.chat("qwen3", USER).result()
        assert "sk-secret" not in repr(client)
        fake.queue_error(400, "bad")
        with pytest.raises(ResponseError) as info:
            await client.chat("qwen3", USER).result()
        assert "sk-secret" not in str(info.value) and "sk-secret" not in repr(info.value)
    headers = fake.received[0].headers
    assert headers["User-Agent"] == f"ollama-stream/{__version__}"
    assert headers["Authorization"] == "Bearer sk-secret-123"
    assert headers["X-Trace"] == "t1"


@pytest.mark.parametrize("headers", [{"X-A": "v\r\nInjected: 1"}, {"X-A\n": "v"}, {"X:A": "v"}])
def test_header_injection_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="header"):
        AsyncOllama("http://127.0.0.1:1", headers=headers)


def test_only_http_and_https_hosts() -> None:
    with pytest.raises(ValueError, match="scheme must be http or https"):
        AsyncOllama("ftp://127.0.0.1")


# -- lifecycle: closing, cancelling, abandoning ----------------------------------------------------

async def test_break_then_gc_closes_the_response(fake: FakeOllama, client: AsyncOllama) -> None:
    fake.queue_reply(content="word " * 200, chunk_delay=0.01)
    async for chunk in client.chat("qwen3", USER):
        assert chunk.content == "word "
        break
    gc.collect()
    await fake.wait_disconnect()
    assert fake.disconnects == 1


async def test_async_with_closes_deterministically(fake: FakeOllama, client: AsyncOllama) -> None:
    fake.queue_reply(content="word " * 200, chunk_delay=0.01)
    async with client.chat("qwen3", USER) as stream:
        await stream.__anext__()
    await fake.wait_disconnect()
    with pytest.raises(RuntimeError, match="finished"):
        async for _ in stream:
            pass
    with pytest.raises(RuntimeError, match="closed before its final chunk"):
        await stream.result()
    await stream.aclose()  # idempotent


async def test_exception_in_the_callers_loop_closes_the_response(fake: FakeOllama,
                                                                 client: AsyncOllama) -> None:
    fake.queue_reply(content="word " * 200, chunk_delay=0.01)
    with pytest.raises(KeyError):
        async with client.chat("qwen3", USER) as stream:
            async for _ in stream:
                raise KeyError("caller bug")
    await fake.wait_disconnect()


async def test_abandoned_stream_is_closed_when_collected(fake: FakeOllama,
                                                         client: AsyncOllama) -> None:
    fake.queue_reply(content="word " * 200, chunk_delay=0.01)
    stream = client.chat("qwen3", USER)
    await stream.__anext__()
    del stream
    gc.collect()
    await fake.wait_disconnect()


async def test_iterating_a_finished_stream_again_is_an_error(fake: FakeOllama,
                                                             client: AsyncOllama) -> None:
    stream = client.chat("qwen3", USER)
    async for _ in stream:
        pass
    with pytest.raises(RuntimeError, match="cannot be iterated again"):
        async for _ in stream:
            pass
    assert (await stream.result()).message.content == "You said: Why is the sky blue?"


async def test_result_after_an_error_raises_it_again(fake: FakeOllama, client: AsyncOllama) -> None:
    fake.queue_reply(content="x", error="boom")
    stream = client.chat("qwen3", USER)
    with pytest.raises(StreamError):
        await stream.result()
    with pytest.raises(StreamError):
        await stream.result()


async def test_closed_client_refuses_new_requests(fake: FakeOllama) -> None:
    client = AsyncOllama(fake.url)
    await client.chat("qwen3", USER).result()
    await client.aclose()
    await client.aclose()
    assert client.closed
    with pytest.raises(RuntimeError, match="closed"):
        await client.chat("qwen3", USER).result()


def test_one_client_across_separate_asyncio_runs() -> None:
    with FakeOllama() as fake:
        client = AsyncOllama(fake.url)

        async def ask(text: str) -> str:
            return (await client.chat(
                "qwen3", [{"role": "user", "content": text}]).result()).message.content

        assert asyncio.run(ask("first")) == "You said: first"
        assert asyncio.run(ask("second")) == "You said: second"
        asyncio.run(client.aclose())
    gc.collect()


async def test_backoff_longer_than_first_chunk_limit_does_not_cancel_the_caller(
        loop_errors: list[Any]) -> None:
    # A refused connection fails at once; the wait before the retry outlasts the first_chunk limit,
    # which must not fire during the wait (it used to cancel the caller's task: a bare
    # CancelledError).
    policy = RetryPolicy(max_attempts=2, base_delay=0.3, max_delay=0.3, jitter=0)
    async with AsyncOllama(f"http://127.0.0.1:{free_port()}", retry=policy,
                           timeouts=Timeouts(first_chunk=0.1)) as client:
        with pytest.raises(OllamaConnectionError) as info:
            await client.chat("qwen3", USER).result()
    assert info.value.attempts == 2 and info.value.failures == ("connection refused",) * 2


async def test_total_limit_bounds_the_retries(fake: FakeOllama) -> None:
    for _ in range(3):
        fake.queue_error(503, "busy")
    policy = RetryPolicy(max_attempts=3, base_delay=5.0, max_delay=5.0, jitter=0)
    async with AsyncOllama(fake.url, retry=policy, timeouts=Timeouts(total=1.0)) as client:
        with pytest.raises(ResponseError) as info:
            await client.chat("qwen3", USER).result()
    # a 5 s wait would pass the 1 s total
    assert info.value.status_code == 503 and info.value.attempts == 1
    assert len(fake.requests) == 1


async def test_total_timeout_mid_stream(fake: FakeOllama) -> None:
    fake.queue_reply(content="a b c d e f g h", chunk_delay=0.1)
    async with AsyncOllama(fake.url, timeouts=Timeouts(total=0.25)) as client:
        with pytest.raises(OllamaTimeoutError) as info:
            await client.chat("qwen3", USER).result()
    assert info.value.phase == "total" and info.value.partial is not None
    assert "a b c d e f g h".startswith(info.value.partial.content) and info.value.partial.content
    await fake.wait_disconnect()
