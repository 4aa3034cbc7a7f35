"""One benchmark client run, in a process of its own: stream `streams` replies of `chunks` lines
with at most `concurrency` at once, check every accumulated reply, and print the figures as one
JSON line.

    python -m benchmarks.client CLIENT URL STREAMS CONCURRENCY CHUNKS [--idle]

CPU is the process's user+sys time over the streaming phase only (imports, setup and a warm-up
stream excluded). Under valgrind's callgrind (`--instr-atstart=no`), instrumentation is switched on
for that phase only, by the client request callgrind.h's CALLGRIND_START_INSTRUMENTATION makes;
see `Callgrind`. With `--idle`, the client instead opens all its streams at once, reads the first
chunk of each, and reports the memory they hold at rest.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import mmap
import os
import platform
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from benchmarks.server import expected_content, expected_thinking

MESSAGES = [{"role": "user", "content": "Tell me about the weather."}]


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


class Callgrind:
    """Valgrind client requests from Python, without a C compiler: the amd64 sequence that
    valgrind.h's VALGRIND_DO_CLIENT_REQUEST expands to (rdi rotated by 3, 13, 61 and 51 bits, a
    full turn twice, then `xchg rbx, rbx`; rax points at the request, the answer comes in rdx),
    in an executable page. Run natively the sequence does nothing and answers 0."""

    _CODE = bytes.fromhex("4889f8" "31d2" "48c1c703" "48c1c70d" "48c1c73d" "48c1c733" "4887db"
                          "4889d0" "c3")  # mov rax,rdi; xor edx,edx; rol x4; xchg rbx,rbx; ret
    RUNNING_ON_VALGRIND = 0x1001
    # VG_USERREQ_TOOL_BASE('C', 'T') + 4 and + 5 (callgrind.h)
    START, STOP = 0x43540000 + 4, 0x43540000 + 5

    def __init__(self) -> None:
        self._call: Callable[[int], int] | None = None
        if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
            return
        try:
            self._page = mmap.mmap(-1, mmap.PAGESIZE,
                                   prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        except (OSError, AttributeError):  # W^X enforced, or no PROT_EXEC here
            return
        self._page.write(self._CODE)
        address = ctypes.addressof(ctypes.c_char.from_buffer(self._page))
        function = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p)(address)

        def call(code: int) -> int:
            request = (ctypes.c_uint64 * 6)(code, 0, 0, 0, 0, 0)
            return int(function(ctypes.addressof(request)))

        self._call = call

    @property
    def usable(self) -> bool:
        """Whether client requests can be made on this machine (on valgrind or not)."""
        return self._call is not None

    def on_valgrind(self) -> bool:
        return self._call is not None and self._call(self.RUNNING_ON_VALGRIND) > 0

    def instrument(self, on: bool) -> None:
        if self._call is not None:
            self._call(self.START if on else self.STOP)


CALLGRIND = Callgrind()


def body() -> bytes:
    return orjson.dumps({"model": "qwen3", "messages": MESSAGES})


# -- the clients: each streams one reply, checks it, and returns the number of chunks it saw -------

async def floor_setup(url: str, concurrency: int) -> Any:
    import aiohttp

    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))


async def floor_one(session: Any, url: str, chunks: int) -> int:
    """The floor: raw aiohttp + orjson through the public API, doing the work a chat client must:
    split lines, decode each, accumulate content, thinking and tool calls, and find `done`."""
    loads = orjson.loads
    content: list[str] = []
    thinking: list[str] = []
    tool_calls: list[Any] = []
    final = None
    count = 0
    tail = b""
    async with session.post(url + "/api/chat", data=body()) as resp:
        async for data in resp.content.iter_any():
            *lines, tail = (tail + data).split(b"\n")
            for line in lines:
                if line:
                    obj = loads(line)
                    message = obj["message"]
                    if text := message.get("content"):
                        content.append(text)
                    if text := message.get("thinking"):
                        thinking.append(text)
                    if calls := message.get("tool_calls"):
                        tool_calls.extend(calls)
                    if obj["done"]:
                        final = obj
                    count += 1
    assert final is not None and "".join(content) == expected_content(chunks)
    assert "".join(thinking) == expected_thinking(chunks)
    assert tool_calls[0]["function"]["name"] == "get_weather"
    return count


async def floor_idle(session: Any, url: str) -> tuple[Any, Any]:
    """An open floor stream, its first line read and kept as the floor keeps state."""
    resp = await session.post(url + "/api/chat", data=body())
    lines = (await resp.content.readany()).split(b"\n")
    state = ([orjson.loads(line)["message"].get("content") for line in lines[:-1]], lines[-1])
    return resp, state


async def floor_close(session: Any, opened: tuple[Any, Any]) -> None:
    opened[0].close()


async def sdk_setup(url: str, concurrency: int) -> Any:
    from ollama_stream import AsyncOllama

    return AsyncOllama(url, pool_limit=concurrency)


async def sdk_resume_setup(url: str, concurrency: int) -> Any:
    """The SDK with RetryPolicy(resume=True): what resuming costs when nothing fails."""
    from ollama_stream import AsyncOllama, RetryPolicy

    return AsyncOllama(url, pool_limit=concurrency, retry=RetryPolicy(resume=True))


async def sdk_one(client: Any, url: str, chunks: int) -> int:
    count = 0
    stream = client.chat("qwen3", MESSAGES)
    async for chunk in stream:
        if chunk.content is not None:  # read a field, as a caller would
            count += 1
    result = await stream.result()
    assert result.message.content == expected_content(chunks)
    assert result.message.thinking == expected_thinking(chunks)
    assert result.message.tool_calls[0].name == "get_weather"
    return count


async def sdk_idle(client: Any, url: str) -> Any:
    stream = client.chat("qwen3", MESSAGES)
    iterator = aiter(stream)
    await anext(iterator)
    return stream, iterator


async def sdk_close(client: Any, opened: Any) -> None:
    await opened[0].aclose()


async def ollama_python_setup(url: str, concurrency: int) -> Any:
    import httpx
    from ollama import AsyncClient

    return AsyncClient(host=url, limits=httpx.Limits(max_connections=concurrency))


async def ollama_python_one(client: Any, url: str, chunks: int) -> int:
    count = 0
    content: list[str] = []
    thinking: list[str] = []
    tool_calls = []
    async for part in await client.chat(model="qwen3", messages=MESSAGES, stream=True):
        content.append(part.message.content or "")
        thinking.append(part.message.thinking or "")
        tool_calls += part.message.tool_calls or []
        count += 1
    assert "".join(content) == expected_content(chunks)
    assert "".join(thinking) == expected_thinking(chunks)
    assert tool_calls[0].function.name == "get_weather"
    return count


async def ollama_python_idle(client: Any, url: str) -> Any:
    parts = await client.chat(model="qwen3", messages=MESSAGES, stream=True)
    await anext(parts)
    return parts


async def ollama_python_close(client: Any, opened: Any) -> None:
    await opened.aclose()


async def litellm_setup(url: str, concurrency: int) -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


async def litellm_one(litellm: Any, url: str, chunks: int) -> int:
    count = 0
    content: list[str] = []
    response = await litellm.acompletion(model="ollama_chat/qwen3", messages=MESSAGES, api_base=url,
                                         stream=True, num_retries=0)
    async for part in response:
        if part.choices:
            content.append(part.choices[0].delta.content or "")
        count += 1
    assert "".join(content) == expected_content(chunks)
    return count


async def litellm_idle(litellm: Any, url: str) -> Any:
    response = await litellm.acompletion(model="ollama_chat/qwen3", messages=MESSAGES, api_base=url,
                                         stream=True, num_retries=0)
    await anext(aiter(response))
    return response


async def litellm_close(litellm: Any, opened: Any) -> None:
    close = getattr(opened, "aclose", None)
    if close is not None:
        await close()


Setup = Callable[[str, int], Awaitable[Any]]
ASYNC_CLIENTS: dict[str, tuple[Setup, Callable[..., Awaitable[int]], Callable[..., Awaitable[Any]],
                               Callable[..., Awaitable[None]]]] = {
    "floor": (floor_setup, floor_one, floor_idle, floor_close),
    "ollama_stream": (sdk_setup, sdk_one, sdk_idle, sdk_close),
    "ollama_stream resume=True": (sdk_resume_setup, sdk_one, sdk_idle, sdk_close),
    "ollama-python": (ollama_python_setup, ollama_python_one, ollama_python_idle,
                      ollama_python_close),
    "litellm": (litellm_setup, litellm_one, litellm_idle, litellm_close),
}


async def close_client(client: Any) -> None:
    close = getattr(client, "aclose", None) or getattr(client, "close", None)
    if close is not None and client.__class__.__name__ != "module":  # litellm is a module
        result = close()
        if asyncio.iscoroutine(result):
            await result


async def run_async(name: str, url: str, streams: int, concurrency: int,
                    chunks: int) -> tuple[int, float, float]:
    setup, one, _, _ = ASYNC_CLIENTS[name]
    client = await setup(url, concurrency)
    await one(client, url, chunks)  # warm up: connections, caches, lazy imports
    gate = asyncio.Semaphore(concurrency)

    async def guarded() -> int:
        async with gate:
            return await one(client, url, chunks)

    CALLGRIND.instrument(True)
    started_cpu, started = cpu(), time.perf_counter()
    counts = await asyncio.gather(*(guarded() for _ in range(streams)))
    spent_cpu, wall = cpu() - started_cpu, time.perf_counter() - started
    CALLGRIND.instrument(False)
    await close_client(client)
    return sum(counts), spent_cpu, wall


async def idle_async(name: str, url: str, streams: int) -> float:
    """KiB of RSS each open stream holds at rest, its first chunk read."""
    setup, _, idle, close = ASYNC_CLIENTS[name]
    client = await setup(url, streams)
    await close(client, await idle(client, url))  # warm up: imports, caches
    gc.collect()
    before = rss_kib()
    opened = await asyncio.gather(*(idle(client, url) for _ in range(streams)))
    gc.collect()
    held = (rss_kib() - before) / streams
    for one in opened:
        await close(client, one)
    await close_client(client)
    return held


def blocking_client(url: str, concurrency: int) -> Any:
    from ollama_stream import Ollama

    return Ollama(url, pool_limit=concurrency)


def run_blocking(url: str, streams: int, concurrency: int, chunks: int) -> tuple[int, float, float]:
    """The blocking `Ollama`, one thread per concurrent stream."""
    with blocking_client(url, concurrency) as client:
        def one(_: int) -> int:
            count = 0
            stream = client.chat("qwen3", MESSAGES)
            for chunk in stream:
                if chunk.content is not None:  # read a field, as a caller would
                    count += 1
            message = stream.result().message
            assert message.content == expected_content(chunks)
            assert message.thinking == expected_thinking(chunks)
            assert message.tool_calls[0].name == "get_weather"
            return count

        one(0)
        with ThreadPoolExecutor(concurrency) as pool:
            CALLGRIND.instrument(True)
            started_cpu, started = cpu(), time.perf_counter()
            total = sum(pool.map(one, range(streams)))
            spent_cpu, wall = cpu() - started_cpu, time.perf_counter() - started
            CALLGRIND.instrument(False)
            return total, spent_cpu, wall


def idle_blocking(url: str, streams: int) -> float:
    """The blocking client's open streams at rest, opened one after another from one thread."""
    with blocking_client(url, streams) as client:
        def opened() -> tuple[Any, Any]:
            stream = client.chat("qwen3", MESSAGES)
            iterator = iter(stream)
            next(iterator)
            return stream, iterator

        opened()[0].close()
        gc.collect()
        before = rss_kib()
        held = [opened() for _ in range(streams)]
        gc.collect()
        per_stream = (rss_kib() - before) / streams
        for stream, _ in held:
            stream.close()
        return per_stream


def main() -> None:
    name, url, streams, concurrency, chunks = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    if "--idle" in sys.argv[6:]:
        held = (idle_blocking(url, streams) if name == "Ollama (blocking)"
                else asyncio.run(idle_async(name, url, streams)))
        print(orjson.dumps({"client": name, "kib_per_idle_stream": held}).decode(), flush=True)
        return
    baseline = rss_kib()
    if name == "Ollama (blocking)":
        total, spent, wall = run_blocking(url, streams, concurrency, chunks)
    else:
        total, spent, wall = asyncio.run(run_async(name, url, streams, concurrency, chunks))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert total == streams * chunks or name == "litellm", (total, streams * chunks)
    lines = streams * chunks  # the lines the server sent: the same unit for every client
    print(orjson.dumps({"client": name, "chunks": total, "cpu_us_per_chunk": spent / lines * 1e6,
                        "wall_s": wall, "peak_rss_kib": peak, "baseline_rss_kib": baseline,
                        "callgrind_toggled": CALLGRIND.on_valgrind()}).decode(), flush=True)


if __name__ == "__main__":
    main()
