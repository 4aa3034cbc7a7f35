"""Fault injection against real loopback servers: the client never loses or duplicates output, and
every failure is a typed error. Retries, phase timeouts, cancellation, load, hostile servers and
TLS."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
import trustme

from ollama_stream import (
    AsyncOllama,
    Message,
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
)
from ollama_stream.testing import FakeOllama

from .conftest import NO_WAIT
from .servers import LAST_CHUNK, http_chunk, raw_server, read_request, response_head

USER = [{"role": "user", "content": "hi"}]
TRANSCRIPT = (Path(__file__).parent / "fixtures" / "unicode.ndjson").read_bytes()
TRANSCRIPT_LINES = [line + b"\n" for line in TRANSCRIPT.splitlines()]
EXPECTED_CONTENT = "こんにちは, Zoë! 👋🏽 €é😀"
EXPECTED_THINKING = "用户问候 🤔"
ONE_ATTEMPT = RetryPolicy(max_attempts=1)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def chunked_body(lines: list[bytes]) -> bytes:
    return b"".join(http_chunk(line) for line in lines) + LAST_CHUNK


class Recorder:
    """Stands in for asyncio.sleep in the client: records the waits, does not wait."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def recorder(client: AsyncOllama) -> Recorder:
    sleep = Recorder()
    client._sleep = sleep
    return sleep


async def consume(client: AsyncOllama,
                  **kw: Any) -> tuple[list[str], OllamaError | None, str | None]:
    """Stream one reply; return the content deltas yielded, the error (if any) and the final
    content."""
    seen: list[str] = []
    stream = client.chat("qwen3", USER, **kw)
    try:
        async for chunk in stream:
            seen.append(chunk.content)
    except OllamaError as exc:
        return seen, exc, None
    return seen, None, (await stream.result()).message.content


# -- retries ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_each_retryable_status_is_retried(fake: FakeOllama, client: AsyncOllama,
                                                recorder: Recorder, status: int) -> None:
    fake.queue_error(status, "transient")
    fake.queue_reply(content="ok")
    seen, error, content = await consume(client)
    assert error is None and content == "ok" and "".join(seen) == "ok"
    assert len(fake.requests) == 2 and len(recorder.delays) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 422])
async def test_client_statuses_are_never_retried(fake: FakeOllama, client: AsyncOllama,
                                                 recorder: Recorder, status: int) -> None:
    fake.queue_error(status, "no")
    fake.queue_reply(content="must not be reached")
    _, error, _ = await consume(client)
    assert isinstance(error, ResponseError) and error.status_code == status
    assert len(fake.requests) == 1 and recorder.delays == [] and error.attempts == 1


async def test_backoff_is_exponential_with_seeded_jitter(fake: FakeOllama,
                                                         recorder: Recorder) -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=3.0, jitter=0.25)
    async with AsyncOllama(fake.url, retry=policy) as client:
        client._sleep = recorder
        client._rng = random.Random(42)
        for _ in range(4):
            fake.queue_error(503, "busy")
        _, error, content = await consume(client)
    assert error is None and content
    rng = random.Random(42)
    assert recorder.delays == [policy.delay(n, None, rng) for n in (1, 2, 3, 4)]
    for n, delay in enumerate(recorder.delays, start=1):
        base = min(3.0, 0.5 * 2 ** (n - 1))
        assert base * 0.75 <= delay <= base * 1.25


@pytest.mark.parametrize("header,expected", [("2", 2.0), ("0", 0.0), ("100", 10.0)])
async def test_retry_after_seconds_is_honoured_and_capped(fake: FakeOllama, client: AsyncOllama,
                                                          recorder: Recorder, header: str,
                                                          expected: float) -> None:
    fake.queue_error(429, "slow down", headers={"Retry-After": header})
    _, error, _ = await consume(client)
    assert error is None
    assert recorder.delays == [min(expected, client.retry.max_delay)]


async def test_retry_after_http_date(fake: FakeOllama, recorder: Recorder) -> None:
    async with AsyncOllama(fake.url, retry=RetryPolicy(max_delay=60)) as client:
        client._sleep = recorder
        fake.queue_error(503, "busy",
                         headers={"Retry-After": formatdate(time.time() + 30, usegmt=True)})
        _, error, _ = await consume(client)
    assert error is None
    [delay] = recorder.delays
    assert 28 <= delay <= 30  # the date has whole seconds


async def test_final_error_lists_every_attempt(fake: FakeOllama, client: AsyncOllama) -> None:
    fake.queue_error(503, "busy")
    fake.queue_error(500, "oops")
    fake.queue_error(502, body=b"<html>bad gateway</html>", content_type="text/html")
    _, error, _ = await consume(client)
    assert isinstance(error, ResponseError) and error.status_code == 502
    assert error.attempts == 3 and error.failures == ("503", "500", "502")
    assert str(error).endswith("(gave up after 3 attempts: 503, 500, 502)")


async def test_connection_reset_before_first_line_is_retried_without_duplicates(
        loop_errors: list[Any]) -> None:
    attempts = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal attempts
        await read_request(reader)
        attempts += 1
        if attempts == 1:
            writer.write(response_head())  # status 200, then the connection dies before any line
            await writer.drain()
            writer.transport.abort()
            return
        writer.write(response_head() + chunked_body(TRANSCRIPT_LINES))
        await writer.drain()
        await reader.read()

    async with raw_server(handler) as url, AsyncOllama(url, retry=NO_WAIT) as client:
        seen, error, content = await consume(client)
    assert error is None and attempts == 2
    assert "".join(seen) == content == EXPECTED_CONTENT


async def test_nothing_is_retried_once_output_started(fake: FakeOllama,
                                                      client: AsyncOllama) -> None:
    fake.queue_error(503, "busy")
    fake.queue_reply(content="one two three four", drop_after=2)
    fake.queue_reply(content="a retry would have used this")
    seen, error, _ = await consume(client)
    assert isinstance(error, StreamInterrupted)
    assert error.partial is not None and error.partial.content == "".join(seen) == "one two "
    assert error.attempts == 2 and error.failures == ("503",)
    assert len(fake.requests) == 2 and fake.pending == 1


async def test_error_line_is_never_retried(fake: FakeOllama, client: AsyncOllama) -> None:
    # an error line before any output, under 200: what servers before streamResponse set the
    # status sent (and what proxies may still send); Ollama v0.33 answers a status instead
    fake.queue_error(200, body=b'{"error":"model runner has unexpectedly stopped"}\n',
                     content_type="application/x-ndjson")
    fake.queue_reply(content="must not be reached")
    _, error, _ = await consume(client)
    assert isinstance(error, StreamError) and error.partial is None
    assert len(fake.requests) == 1


# -- timeouts by phase -----------------------------------------------------------------------------

@pytest.fixture
def unaccepting_port() -> Iterator[int]:
    """A port whose listen backlog is full: connecting to it hangs (SYNs are dropped), on loopback
    only."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # the connect completes in the background
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for sock in [*fillers, server]:
        sock.close()


async def test_connect_timeout_is_retried_then_raised(unaccepting_port: int,
                                                      loop_errors: list[Any]) -> None:
    policy = RetryPolicy(max_attempts=2, base_delay=0, jitter=0)
    async with AsyncOllama(f"http://127.0.0.1:{unaccepting_port}", retry=policy,
                           timeouts=Timeouts(connect=0.2)) as client:
        started = time.monotonic()
        _, error, _ = await consume(client)
    assert isinstance(error, OllamaTimeoutError) and isinstance(error, TimeoutError)
    assert (error.phase == "connect" and error.timeout == 0.2
            and "0.2s (connect timeout)" in str(error))
    assert error.failures == ("connect timeout", "connect timeout")
    assert time.monotonic() - started < 5


async def test_stall_mid_first_line_is_a_first_chunk_timeout(loop_errors: list[Any]) -> None:
    requests = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        await read_request(reader)
        requests += 1
        writer.write(response_head() + http_chunk(TRANSCRIPT_LINES[0][:30]))
        await writer.drain()
        await reader.read()

    policy = RetryPolicy(max_attempts=2, base_delay=0)
    async with raw_server(handler) as url, AsyncOllama(
            url, retry=policy, timeouts=Timeouts(first_chunk=0.2)) as client:
        _, error, _ = await consume(client)
    assert isinstance(error, OllamaTimeoutError) and error.phase == "first_chunk"
    assert error.attempts == 1 and requests == 1 and error.partial is None  # a load, not retried

    # A caller whose server does not load models (a proxy, a provider) can retry it anyway.
    requests = 0
    retry_timeouts = RetryPolicy(max_attempts=2, base_delay=0, retry_if=lambda e: (
        True if isinstance(e, OllamaTimeoutError) else None))
    async with raw_server(handler) as url, AsyncOllama(
            url, retry=retry_timeouts, timeouts=Timeouts(first_chunk=0.2)) as client:
        _, error, _ = await consume(client)
    assert isinstance(error, OllamaTimeoutError) and error.attempts == 2 and requests == 2


async def test_stall_mid_line_after_output_is_an_idle_timeout_with_partial(
        loop_errors: list[Any]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response_head() + chunked_body(TRANSCRIPT_LINES[:3])[:-len(LAST_CHUNK)]
                     + http_chunk(TRANSCRIPT_LINES[3][:25]))
        await writer.drain()
        await reader.read()

    async with raw_server(handler) as url, AsyncOllama(url, retry=NO_WAIT,
                                                       timeouts=Timeouts(idle=0.2)) as client:
        seen, error, _ = await consume(client)
    assert isinstance(error, OllamaTimeoutError) and error.phase == "idle"
    assert error.partial == Message("assistant", "こんにちは, Zoë! 👋🏽 €", EXPECTED_THINKING)
    assert "".join(seen) == error.partial.content and error.attempts == 1


# -- hostile servers: drops, fragments, big lines, garbage -----------------------------------------

async def test_dropped_at_any_byte_offset_never_gives_a_short_result(
        loop_errors: list[Any]) -> None:
    response = response_head() + chunked_body(TRANSCRIPT_LINES)
    rng = random.Random(20261121)
    offsets = sorted({0, len(response) - 1, len(response), *rng.sample(range(len(response)), 80)})
    cut = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response[:cut])
        await writer.drain()
        if cut < len(response):
            writer.transport.abort()
        else:
            await reader.read()

    outcomes = {"complete": 0, "error": 0}
    async with raw_server(handler) as url:
        for cut in offsets:
            async with AsyncOllama(url, retry=ONE_ATTEMPT) as client:
                seen, error, content = await consume(client)
            if error is None:
                assert content == "".join(seen) == EXPECTED_CONTENT, f"cut at {cut}"
                outcomes["complete"] += 1
                continue
            outcomes["error"] += 1
            assert isinstance(error, (StreamInterrupted, OllamaConnectionError,
                                      ProtocolError)), (cut, error)
            partial = error.partial.content if error.partial else ""
            assert partial == "".join(seen), f"cut at {cut}: partial differs from what was yielded"
            assert EXPECTED_CONTENT.startswith(partial), f"cut at {cut}"
    assert outcomes["complete"] >= 1 and outcomes["error"] >= 60


@pytest.mark.parametrize("http_chunk_per_byte", [False, True],
                         ids=["tcp-bytes", "http-chunk-bytes"])
async def test_writes_fragmented_byte_by_byte_with_pauses(http_chunk_per_byte: bool,
                                                          loop_errors: list[Any]) -> None:
    body = (b"".join(http_chunk(TRANSCRIPT[i:i + 1]) for i in range(len(TRANSCRIPT))) + LAST_CHUNK
            if http_chunk_per_byte else chunked_body(TRANSCRIPT_LINES))

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response_head())
        for i in range(len(body)):
            writer.write(body[i:i + 1])  # multi-byte characters end up split across writes
            await writer.drain()
            await asyncio.sleep(0.001 if i % 97 == 0 else 0)
        await reader.read()

    async with raw_server(handler) as url, AsyncOllama(url, retry=NO_WAIT) as client:
        seen, error, content = await consume(client, think=True)
    assert error is None and content == "".join(seen) == EXPECTED_CONTENT


async def test_one_mebibyte_tool_call_line_streams(fake: FakeOllama, client: AsyncOllama) -> None:
    blob = "é" * 600_000  # 1.2 MB once UTF-8 encoded
    fake.queue_reply(content="Saving.", tool_calls=[ToolCall("save", {"blob": blob, "n": 1})])
    result = await client.chat("qwen3", USER).result()
    assert result.message.tool_calls[0].arguments == {"blob": blob, "n": 1}
    assert result.message.content == "Saving."


@pytest.mark.parametrize("line,match", [
    (b"[1, 2, 3]", "is a JSON list, not an object"),
    (b'{"message": "hi", "done": false}', "field 'message'"),
    (b'{"message": {"role": "assistant", "content": 7}, "done": false}', "field 'message.content'"),
    (b'{"done": "yes"}', "field 'done'"),
    (b"\xff\xfe garbage", "not valid JSON"),
])
async def test_garbage_and_wrong_types_after_a_good_line(line: bytes, match: str,
                                                         loop_errors: list[Any]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response_head() + chunked_body([TRANSCRIPT_LINES[1], line + b"\n",
                                                     TRANSCRIPT_LINES[-1]]))
        await writer.drain()
        await reader.read()

    async with raw_server(handler) as url, AsyncOllama(url, retry=NO_WAIT) as client:
        seen, error, _ = await consume(client)
    assert isinstance(error, ProtocolError), error
    assert match in str(error) and url in str(error)
    assert error.partial == Message("assistant", "こんにちは") and seen == ["こんにちは"]


async def test_invalid_http_is_a_protocol_error(loop_errors: list[Any]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()

    async with raw_server(handler) as url, AsyncOllama(url, retry=NO_WAIT) as client:
        _, error, _ = await consume(client)
    assert isinstance(error, ProtocolError) and "valid HTTP" in str(error)


# -- cancellation and resources --------------------------------------------------------------------

async def test_cancel_closes_the_response_promptly(fake: FakeOllama, client: AsyncOllama) -> None:
    fake.queue_reply(content="word " * 500, chunk_delay=0.005)
    first = asyncio.Event()

    async def consume_forever() -> None:
        async for _ in client.chat("qwen3", USER):
            first.set()

    task = asyncio.create_task(consume_forever())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await fake.wait_disconnect(timeout=1.0)


async def test_abandoned_stream_leaks_no_socket(loop_errors: list[Any]) -> None:
    before = open_fds()
    async with FakeOllama() as fake, AsyncOllama(fake.url) as client:
        fake.queue_reply(content="word " * 300, chunk_delay=0.005)
        stream = client.chat("qwen3", USER)
        await stream.__anext__()
        del stream
        gc.collect()
        await fake.wait_disconnect(timeout=1.0)
    gc.collect()
    assert open_fds() == before


async def test_a_thousand_concurrent_streams_through_one_client(loop_errors: list[Any]) -> None:
    before = open_fds()
    async with FakeOllama() as fake, AsyncOllama(fake.url) as client:
        assert client.pool_limit == 100

        async def one(i: int) -> str:
            result = await client.chat("qwen3",
                                       [{"role": "user", "content": f"stream {i} ok"}]).result()
            return result.message.content

        results = await asyncio.gather(*(one(i) for i in range(1000)))
        assert results == [f"You said: stream {i} ok" for i in range(1000)]
        assert len({r.peer for r in fake.received}) <= 100  # the pool limit held
    gc.collect()
    assert open_fds() == before


async def test_pool_limit_is_a_constructor_option(fake: FakeOllama) -> None:
    async with AsyncOllama(fake.url, pool_limit=3) as client:
        await asyncio.gather(*(client.chat("qwen3", USER).result() for _ in range(20)))
    assert len({r.peer for r in fake.received}) <= 3


def test_a_client_used_by_two_running_loops_says_so() -> None:
    with FakeOllama() as fake:
        client = AsyncOllama(fake.url)
        ready, release = threading.Event(), threading.Event()

        async def hold() -> None:  # uses the client in one loop and keeps that loop running
            await client.chat("qwen3", USER).result()
            ready.set()
            await asyncio.to_thread(release.wait)

        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_until_complete, args=(hold(),))
        thread.start()
        ready.wait()

        async def second() -> None:
            with pytest.raises(RuntimeError, match="another running event loop"):
                await client.chat("qwen3", USER).result()

        asyncio.run(second())
        release.set()
        thread.join()
        loop.run_until_complete(client.aclose())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


# -- security --------------------------------------------------------------------------------------

@pytest.fixture
def tls() -> tuple[trustme.CA, ssl.SSLContext]:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    return ca, server_context


@pytest.fixture
async def tls_fake(tls: tuple[trustme.CA, ssl.SSLContext],
                   loop_errors: list[Any]) -> AsyncIterator[FakeOllama]:
    async with FakeOllama(ssl=tls[1]) as server:
        yield server


async def test_tls_is_verified_by_default(tls_fake: FakeOllama) -> None:
    assert tls_fake.url.startswith("https://")
    async with AsyncOllama(tls_fake.url, retry=NO_WAIT) as client:
        _, error, _ = await consume(client)
    assert isinstance(error, OllamaConnectionError) and "TLS failed" in str(error)
    # a bad certificate is not retried
    assert error.attempts == 1 and error.failures == ("TLS failure",)


async def test_tls_with_the_callers_ca_or_explicitly_unverified(
        tls: tuple[trustme.CA, ssl.SSLContext], tls_fake: FakeOllama) -> None:
    context = ssl.create_default_context()
    tls[0].configure_trust(context)
    async with AsyncOllama(tls_fake.url, ssl=context) as client:
        assert (await client.chat("qwen3", USER).result()).message.content == "You said: hi"
    async with AsyncOllama(tls_fake.url, ssl=False) as client:
        assert (await client.chat("qwen3", USER).result()).message.content == "You said: hi"


async def test_api_key_never_appears_in_errors_or_reprs(monkeypatch: pytest.MonkeyPatch,
                                                        loop_errors: list[Any]) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", "sk-very-secret")
    async with FakeOllama() as fake:
        fake.queue_error(401, "unauthorized")
        fake.queue_reply(content="x", error="boom")
        fake.queue_reply(content="a b c", drop_after=1)
        errors = []
        async with AsyncOllama(fake.url, retry=NO_WAIT) as client:
            for _ in range(3):
                errors.append((await consume(client))[1])
            errors.append((await consume(client, think="low"))[1])
        async with AsyncOllama("http://127.0.0.1:1", retry=NO_WAIT,
                               headers={"Authorization": "Bearer sk-very-secret"}) as other:
            errors.append((await consume(other))[1])
            text = repr(other)
    assert [type(e).__name__ for e in errors] == [
        "UnauthorizedError", "StreamError", "StreamInterrupted", "NoneType",
        "OllamaConnectionError"]
    for error in errors:
        assert "sk-very-secret" not in f"{error}{error!r}{getattr(error, '__dict__', '')}"
    assert "sk-very-secret" not in text
    assert fake.received[0].headers["Authorization"] == "Bearer sk-very-secret"
