"""Hostile servers and real deployments: the event loop is never frozen, every timeout can fire,
leaving a stream stops the generation, the pool is never fooled, and secrets stay secret."""

from __future__ import annotations

import asyncio
import gzip
import os
import time
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
        async for _ in generated.text():
            break
        await fake.wait_disconnect(timeout=2)
    assert fake.disconnects == 2


# -- secrets ----------------------------------------------------------------------------------

def everything_said(error: BaseException) -> str:
    """The text of an error and of every exception chained to it: str, repr, vars, args."""
    parts: list[str] = []
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        parts += [str(current), repr(current), repr(current.args),
                  repr(getattr(current, "__dict__", ""))]
        info = getattr(current, "request_info", None)
        if info is not None:
            parts.append(repr(info))
        todo += [current.__cause__, current.__context__]
    return "\n".join(parts)


async def invalid_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: nonsense\r\n\r\n")
    await writer.drain()
    writer.close()


async def cut_mid_chunk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(response_head() + http_chunk(line("one")) + b"ff\r\n{\"half")
    await writer.drain()
    writer.close()


@pytest.mark.parametrize("handler", [invalid_http, cut_mid_chunk], ids=["bad-http", "cut"])
@pytest.mark.parametrize("where", ["environment", "headers"])
async def test_the_key_is_in_no_exception_along_the_chain(monkeypatch: pytest.MonkeyPatch,
                                                         handler: Any, where: str) -> None:
    secret = "sk-chained-secret-1234"
    headers = {"Authorization": f"Bearer {secret}", "X-Api-Key": secret}
    if where == "environment":
        monkeypatch.setenv("OLLAMA_API_KEY", secret)
        headers = {}
    async with raw_server(handler) as url, AsyncOllama(url, retry=ONE_ATTEMPT,
                                                       headers=headers) as client:
        with pytest.raises(Exception) as info:
            await client.chat("qwen3", USER).result()
    said = everything_said(info.value)
    assert info.value.__cause__ is not None or info.value.__context__ is not None
    assert secret not in said, said


def test_running_out_of_file_descriptors_is_said_and_not_retried() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parent / "emfile_probe.py"
    env = {**os.environ, "PYTHONPATH": str(script.parent.parent)}  # this checkout's package
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=60, check=True, env=env).stdout
    kind, retryable, attempts, reason = out.split("|")[:4]
    assert (kind, retryable, attempts) == ("OllamaConnectionError", "False", "1")
    assert reason == "out of file descriptors" and "ulimit -n" in out


# -- redirects and odd answers --------------------------------------------------------------

def redirecting(status: int, location: str, then: bytes | None = None) -> Any:
    """A server that answers the first request with `status` to `location`, then `then`."""
    seen: list[tuple[bytes, dict[str, str], bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await read_request(reader)
            seen.append(request)
            if len(seen) == 1 or then is None:
                writer.write(f"HTTP/1.1 {status} Moved\r\nLocation: {location}\r\n"
                             "Content-Length: 0\r\n\r\n".encode())
            else:
                writer.write(response_head() + http_chunk(then) + LAST_CHUNK)
            await writer.drain()

    return handler, seen


@pytest.mark.parametrize("status", [301, 302, 303])
async def test_a_redirect_that_would_turn_a_post_into_a_get_is_refused(status: int) -> None:
    handler, seen = redirecting(status, "/ollama/api/chat", line("", done=True))
    async with raw_server(handler) as url, AsyncOllama(url, retry=NO_WAIT) as client:
        with pytest.raises(Exception) as info:
            await client.chat("qwen3", USER).result()
    error = info.value
    assert "redirect" in str(error) and "/ollama/api/chat" in str(error)
    assert "path prefix" in str(error) and len(seen) == 1  # not followed, not retried


@pytest.mark.parametrize("status", [307, 308])
async def test_a_same_origin_307_or_308_is_followed_with_the_same_body(status: int) -> None:
    handler, seen = redirecting(status, "/moved/api/chat", line("here", done=True))
    async with raw_server(handler) as url, AsyncOllama(url, retry=NO_WAIT) as client:
        result = await client.chat("qwen3", USER).result()
    assert result.message.content == "here" and len(seen) == 2
    first, second = seen
    assert second[0].startswith(b"POST /moved/api/chat") and second[2] == first[2]


async def test_a_redirect_to_another_origin_is_not_followed(monkeypatch: pytest.MonkeyPatch,
                                                           fake: FakeOllama) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", "sk-must-stay-home")
    handler, seen = redirecting(307, f"{fake.url}/api/chat")
    async with raw_server(handler) as url, AsyncOllama(url, retry=NO_WAIT) as client:
        with pytest.raises(Exception, match="another origin") as info:
            await client.chat("qwen3", USER).result()
    assert len(seen) == 1 and fake.received == [] and "redirect" in str(info.value)


@pytest.mark.parametrize(("location", "words"), [
    ("/api/chat", "loop"), ("ftp://127.0.0.1/x", "not an http"), ("", "not an http")])
async def test_loops_and_odd_locations_are_clear_errors(location: str, words: str) -> None:
    handler, seen = redirecting(307, location)
    async with raw_server(handler) as url, AsyncOllama(url, retry=NO_WAIT) as client:
        with pytest.raises(Exception) as info:
            await client.chat("qwen3", USER).result()
    assert words in str(info.value) and "redirect" in str(info.value)
    assert len(seen) <= 6


async def test_an_answer_nobody_asked_for_never_becomes_the_next_reply() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        first = connections == 1
        while True:
            await read_request(reader)
            word = "first" if first else "fresh"
            writer.write(response_head() + http_chunk(line(word)) + http_chunk(line("", True))
                         + LAST_CHUNK)
            await writer.drain()
            if first:  # then a second answer to the same request, while the client is idle
                await asyncio.sleep(0.05)
                writer.write(response_head() + http_chunk(line("STALE")) +
                             http_chunk(line("", True)) + LAST_CHUNK)
                await writer.drain()
                first = False

    async with raw_server(handler) as url, AsyncOllama(url, retry=ONE_ATTEMPT) as client:
        assert (await client.chat("qwen3", USER).result()).message.content == "first"
        await asyncio.sleep(0.2)  # the unasked answer lands on the pooled connection
        second = await client.chat("qwen3", USER).result()
    assert second.message.content == "fresh" and connections == 2


async def test_a_round_runs_at_most_max_calls_per_round(fake: FakeOllama) -> None:
    running = peak = runs = 0

    async def ping(n: int) -> str:
        """Ping once."""
        nonlocal running, peak, runs
        running += 1
        runs += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        running -= 1
        return "pong"

    fake.queue_reply(tool_calls=[{"name": "ping", "arguments": {"n": i}} for i in range(1000)])
    fake.queue_reply(content="done")
    async with AsyncOllama(fake.url) as client:
        loop = client.chat_with_tools("qwen3", USER, [ping], think=False)
        events = [event async for event in loop]
    results = [event for event in events if hasattr(event, "ok")]
    assert runs == 32 and peak <= 32 and len(results) == 1000
    assert all(r.ok for r in results[:32]) and not any(r.ok for r in results[32:])
    assert "max_calls_per_round=32" in (results[-1].error or "")
    sent_back = [m for m in loop.messages if m.role == "tool"]
    assert len(sent_back) == 1000 and "not run" in sent_back[-1].content
    with pytest.raises(ValueError, match="max_calls_per_round"):
        AsyncOllama(fake.url).chat_with_tools("qwen3", USER, [ping], max_calls_per_round=0)


@pytest.mark.parametrize("kwargs", [
    {"keep_alive": float("inf")}, {"keep_alive": float("nan")},
    {"options": {"temperature": float("nan")}}, {"options": {"stop": [float("inf")]}},
])
def test_nan_and_infinity_are_refused_before_any_io(kwargs: dict[str, Any]) -> None:
    client = AsyncOllama("http://127.0.0.1:9")
    with pytest.raises(ValueError, match=r"finite|cannot be sent"):
        client.chat("qwen3", USER, **kwargs)
    with pytest.raises(ValueError, match=r"finite|cannot be sent"):
        client.generate("qwen3", "Hi", **kwargs)


async def test_nan_and_infinity_are_refused_by_embed_too() -> None:
    async with AsyncOllama("http://127.0.0.1:9") as client:
        with pytest.raises(ValueError, match="cannot be sent"):
            await client.embed("nomic-embed-text", "hi", keep_alive=float("inf"))


@pytest.mark.parametrize("model", ["qwen3\r\nX-Injected: 1", "qwen3\n", "qw\x00en3"])
def test_a_model_name_with_a_line_break_or_nul_is_refused(model: str) -> None:
    client = AsyncOllama("http://127.0.0.1:9")
    with pytest.raises(ValueError, match="line break or NUL"):
        client.chat(model, USER)
    with pytest.raises(ValueError, match="line break or NUL"):
        client.pull(model)


@pytest.mark.parametrize("error", [b"null", b'""'])
async def test_an_empty_error_field_on_a_chunk_is_no_error(error: bytes) -> None:
    first = line("hi")[:-2] + b',"error":' + error + b"}\n"

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response_head() + http_chunk(first) + http_chunk(line("", True))
                     + LAST_CHUNK)
        await writer.drain()

    async with raw_server(handler) as url, AsyncOllama(url, retry=ONE_ATTEMPT) as client:
        result = await client.chat("qwen3", USER).result()
    assert result.message.content == "hi"


# -- credentials in the host URL ----------------------------------------------------------------

async def test_credentials_in_the_host_are_basic_auth_and_never_shown(
        fake: FakeOllama, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    host = fake.url.replace("http://", "http://alice:p%40ss-w0rd-42@")
    async with AsyncOllama(host, retry=ONE_ATTEMPT) as client:
        assert await client.version()
        assert "p@ss-w0rd-42" not in repr(client) and "alice" not in client.host
        with pytest.raises(Exception) as info:
            await client.chat("not-pulled", USER).result()
    sent = fake.received[0].headers["Authorization"]
    assert sent == "Basic " + base64.b64encode(b"alice:p@ss-w0rd-42").decode()
    assert "p@ss-w0rd-42" not in everything_said(info.value)


@pytest.mark.parametrize("where", ["environment", "headers"])
def test_credentials_and_an_api_key_together_are_refused(monkeypatch: pytest.MonkeyPatch,
                                                         where: str) -> None:
    headers = {}
    if where == "environment":
        monkeypatch.setenv("OLLAMA_API_KEY", "sk-key")
    else:
        monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
        headers = {"authorization": "Bearer sk-key"}
    with pytest.raises(ValueError, match="keep one of them") as info:
        AsyncOllama("http://bob:hunter2@127.0.0.1:9", headers=headers)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("host", ["http://bob:hunter2@127.0.0.1:notaport",
                                  "bob:hunter2@bad host", "ftp://bob:hunter2@127.0.0.1"])
def test_a_bad_host_with_credentials_never_echoes_the_password(host: str,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    from ollama_stream import Settings
    from ollama_stream.config import resolve_host

    for attempt in (lambda: AsyncOllama(host), lambda: resolve_host(host),
                    lambda: Settings.from_env({"OLLAMA_HOST": host})):
        with pytest.raises(ValueError) as info:
            attempt()
        assert "hunter2" not in str(info.value) and "***@" in str(info.value)


def test_settings_keep_host_credentials_for_the_client_but_never_show_them() -> None:
    from ollama_stream import Settings

    settings = Settings.from_env({"OLLAMA_HOST": "http://bob:hunter2@127.0.0.1:9",
                                  "OLLAMA_API_KEY": "", "MODEL": "qwen3"})
    assert "hunter2" not in repr(settings)
    client, _ = settings.client()
    assert client._headers["Authorization"].startswith("Basic ")
    assert "sk-secret" not in repr(Settings(api_key="sk-secret"))


# -- deployments ------------------------------------------------------------------------------

def test_both_clients_work_in_a_forked_child_and_in_the_parent_after() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parent / "fork_probe.py"
    env = {**os.environ, "PYTHONPATH": str(script.parent.parent)}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=60, check=True, env=env).stdout.splitlines()
    assert out[0].startswith("parent ") and out[1].count("You said: hi") == 2, out
    assert out[1].startswith("child ") and out[3] == "child-exit 0", out
    assert float(out[2].split()[1]) < 2  # the child's exit waits for no thread of the parent
    assert out[4].startswith("parent-again ") and out[4].endswith("You said: hi"), out


def test_break_out_of_a_blocking_stream_closes_it_while_it_is_still_held() -> None:
    from ollama_stream import Ollama

    with FakeOllama() as fake:
        fake.queue_reply(content="word " * 300, chunk_delay=0.01)
        with Ollama(fake.url) as client:
            stream = client.chat("qwen3", USER, think=False)
            for chunk in stream:
                assert chunk.content == "word "
                break
            for _ in range(200):  # the server sees the disconnect while `stream` is still held
                if fake.disconnects:
                    break
                time.sleep(0.01)
            assert fake.disconnects == 1
            assert stream.message.content.startswith("word ")
            with pytest.raises(RuntimeError, match="before its final chunk"):
                stream.result()
            assert client.chat("qwen3", USER, think=False).result().done_reason == "stop"
