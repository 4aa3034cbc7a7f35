"""Hostile servers and real deployments (issue 14): the event loop is never frozen, every timeout can
fire, leaving a stream stops the generation, the pool is never fooled, and secrets stay secret."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from typing import Any

import orjson
import pytest

from ollama_stream import (
    AsyncOllama,
    OllamaTimeoutError,
    ProtocolError,
    RetryPolicy,
    Timeouts,
)
from ollama_stream.testing import FakeOllama

from .conftest import NO_WAIT
from .servers import LAST_CHUNK, http_chunk, raw_server, read_request, response_head

USER = [{"role": "user", "content": "hi"}]
ONE_ATTEMPT = RetryPolicy(max_attempts=1)


def line(content: str = "x", done: bool = False) -> bytes:
    obj: dict[str, Any] = {"model": "qwen3", "created_at": "2026-08-21T10:00:00Z",
                           "message": {"role": "assistant", "content": content}, "done": done}
    if done:
        obj["done_reason"] = "stop"
    return orjson.dumps(obj) + b"\n"


# -- the event loop is never frozen, and every timeout can fire ----------------------------------

async def test_one_huge_read_is_handed_over_with_turns_for_the_loop() -> None:
    count = 20_000
    body = b"".join(line("x") for _ in range(count)) + line("", done=True)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response_head(chunked=False) + body)
        await writer.drain()
        writer.close()

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    seen: list[int] = []
    async with raw_server(handler) as url, AsyncOllama(url, retry=ONE_ATTEMPT) as client:
        beat = asyncio.create_task(ticker())
        try:
            async for _ in client.chat("qwen3", USER):
                seen.append(ticks)
        finally:
            beat.cancel()
    assert len(seen) == count + 1
    runs: dict[int, int] = {}
    for tick in seen:
        runs[tick] = runs.get(tick, 0) + 1
    assert max(runs.values()) <= 1024  # never more chunks than that without the loop turning


async def test_a_line_trickled_byte_by_byte_is_an_idle_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response_head() + http_chunk(line("first")))
        for byte in line("never ends " * 100):
            writer.write(http_chunk(bytes([byte])))
            await writer.drain()
            await asyncio.sleep(0.02)

    async with raw_server(handler) as url, AsyncOllama(
            url, retry=ONE_ATTEMPT, timeouts=Timeouts(idle=0.3)) as client:
        stream = client.chat("qwen3", USER)
        with pytest.raises(OllamaTimeoutError) as info:
            async for _ in stream:
                pass
    assert info.value.phase == "idle" and info.value.partial is not None
    assert info.value.partial.content == "first"


async def test_a_flood_of_blank_lines_is_an_idle_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response_head() + http_chunk(line("first")))
        while True:
            writer.write(http_chunk(b"\n" * 4096))
            await writer.drain()

    async with raw_server(handler) as url, AsyncOllama(
            url, retry=ONE_ATTEMPT, timeouts=Timeouts(idle=0.3, total=5)) as client:
        with pytest.raises(OllamaTimeoutError) as info:
            await client.chat("qwen3", USER).result()
    assert info.value.phase == "idle"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_a_compressed_body_is_refused_naming_the_encoding(encoding: str) -> None:
    requests: list[dict[str, str]] = []
    packed = (gzip.compress(b"\n" * 10_000_000) if encoding == "gzip"
              else zlib.compress(b"\n" * 10_000_000) if encoding == "deflate" else b"\x00corrupt")

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, headers, _ = await read_request(reader)
        requests.append(headers)
        writer.write(response_head(extra=f"Content-Encoding: {encoding}\r\n") + http_chunk(packed)
                     + LAST_CHUNK)
        await writer.drain()

    async with raw_server(handler) as url, AsyncOllama(url, retry=NO_WAIT) as client:
        with pytest.raises(ProtocolError) as info:
            await client.chat("qwen3", USER).result()
    assert encoding in str(info.value) and "Accept-Encoding: identity" in str(info.value)
    assert len(requests) == 1 and requests[0]["accept-encoding"] == "identity"  # not retried


async def test_an_html_page_is_recognised_whatever_the_case() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response_head(content_type="Text/HTML; charset=UTF-8", chunked=False)
                     + b"<html>a login page</html>")
        await writer.drain()
        writer.close()

    async with raw_server(handler) as url, AsyncOllama(url, retry=NO_WAIT) as client:
        with pytest.raises(ProtocolError, match="HTML page"):
            await client.chat("qwen3", USER).result()


# -- the pool --------------------------------------------------------------------------------

async def test_waiting_for_a_free_connection_is_not_first_chunk_time(fake: FakeOllama) -> None:
    fake.queue_reply(content="one two three", stall_after=1)  # holds the only connection
    fake.queue_reply(content="second")
    async with AsyncOllama(fake.url, pool_limit=1, retry=ONE_ATTEMPT,
                           timeouts=Timeouts(first_chunk=0.2)) as client:
        first = client.chat("qwen3", USER)
        await first.__anext__()
        second = asyncio.create_task(client.chat("qwen3", USER).result())
        await asyncio.sleep(0.5)  # queued far longer than first_chunk
        assert not second.done()
        await first.aclose()
        result = await second
    assert result.message.content == "second"


async def test_a_pool_timeout_says_the_pool_is_full(fake: FakeOllama) -> None:
    fake.queue_reply(content="one two three", stall_after=1)
    async with AsyncOllama(fake.url, pool_limit=1, retry=NO_WAIT,
                           timeouts=Timeouts(first_chunk=5, pool=0.2)) as client:
        first = client.chat("qwen3", USER)
        await first.__anext__()
        with pytest.raises(OllamaTimeoutError) as info:
            await client.chat("qwen3", USER).result()
        await first.aclose()
    error = info.value
    assert error.phase == "pool" and error.timeout == 0.2 and error.attempts == 1
    assert "pool_limit=1" in str(error) and "free connection" in str(error)


async def test_a_total_timeout_while_queued_says_so(fake: FakeOllama) -> None:
    fake.queue_reply(content="one two three", stall_after=1)
    async with AsyncOllama(fake.url, pool_limit=1, retry=NO_WAIT,
                           timeouts=Timeouts(first_chunk=5, total=0.3)) as client:
        first = client.chat("qwen3", USER)
        await first.__anext__()
        with pytest.raises(OllamaTimeoutError) as info:
            await client.chat("qwen3", USER).result()
        await first.aclose()
    assert info.value.phase == "total" and "free connection" in str(info.value)


async def test_a_body_that_does_not_end_after_done_costs_little() -> None:
    peers: list[Any] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer.get_extra_info("peername"))
        while True:
            await read_request(reader)
            writer.write(response_head() + http_chunk(line("hi")) + http_chunk(line("", True)))
            await writer.drain()  # and never the last chunk

    loop = asyncio.get_running_loop()
    async with raw_server(handler) as url, AsyncOllama(url, retry=ONE_ATTEMPT) as client:
        started = loop.time()
        for _ in range(3):
            assert (await client.chat("qwen3", USER).result()).message.content == "hi"
        spent = loop.time() - started
    assert spent < 1.5  # three calls, each waiting at most 0.1 s for the end of the body
    assert len(peers) == 3  # an unfinished connection is closed, never reused


# -- leaving a stream early always stops the generation --------------------------------------

async def test_break_closes_the_response_while_the_stream_is_still_held(
        fake: FakeOllama) -> None:
    fake.queue_reply(content="word " * 300, chunk_delay=0.01)
    async with AsyncOllama(fake.url) as client:
        stream = client.chat("qwen3", USER)
        async for chunk in stream:
            assert chunk.content == "word "
            break
        await fake.wait_disconnect(timeout=2)  # the caller still holds `stream`
        assert stream.message.content == "word "
        with pytest.raises(RuntimeError, match="before its final chunk, after 1 chunks"):
            await stream.result()
        with pytest.raises(RuntimeError, match="finished"):
            async for _ in stream:
                pass
        assert (await client.chat("qwen3", USER).result()).done_reason == "stop"


async def test_an_exception_in_the_loop_closes_the_response(fake: FakeOllama) -> None:
    fake.queue_reply(content="word " * 300, chunk_delay=0.01)
    async with AsyncOllama(fake.url) as client:
        stream = client.chat("qwen3", USER)
        with pytest.raises(KeyError):
            async for _ in stream:
                raise KeyError("the caller's own bug")
        await fake.wait_disconnect(timeout=2)


async def test_break_out_of_text_closes_the_response(fake: FakeOllama) -> None:
    fake.queue_reply(content="word " * 300, chunk_delay=0.01)
    fake.queue_reply(content="word " * 300, chunk_delay=0.01)
    async with AsyncOllama(fake.url) as client:
        stream = client.chat("qwen3", USER)
        async for piece in stream.text():
            assert piece == "word "
            break
        await fake.wait_disconnect(timeout=2)
        generated = client.generate("qwen3", "Hi")
        async for piece in generated.text():
            break
        await fake.wait_disconnect(timeout=2)
    assert fake.disconnects == 2
