"""One benchmark client run, in a process of its own: stream `streams` replies of `chunks` lines
with at most `concurrency` at once, check every accumulated reply, and print the figures as one
JSON line.

    python -m benchmarks.client CLIENT URL STREAMS CONCURRENCY CHUNKS

CPU is the process's user+sys time over the streaming phase only (imports and setup excluded).
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from benchmarks.server import expected_content

MESSAGES = [{"role": "user", "content": "Tell me about the weather."}]


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


# -- the clients: each streams one reply, checks it, and returns the number of chunks it saw -------

async def floor_setup(url: str, concurrency: int) -> Any:
    import aiohttp

    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))


async def floor_one(session: Any, url: str, expected: str) -> int:
    """The floor: raw aiohttp + orjson, splitting lines and reading three fields."""
    loads = orjson.loads
    content: list[str] = []
    count = 0
    tail = b""
    async with session.post(url + "/api/chat", data=b'{"model":"qwen3","messages":[]}') as resp:
        async for data in resp.content.iter_any():
            *lines, tail = (tail + data).split(b"\n")
            for line in lines:
                if line:
                    obj = loads(line)
                    message = obj["message"]
                    content.append(message["content"])
                    message.get("thinking")
                    obj["done"]
                    count += 1
    assert "".join(content) == expected
    return count


async def sdk_setup(url: str, concurrency: int) -> Any:
    from ollama_stream import AsyncOllama

    return AsyncOllama(url, pool_limit=concurrency)


async def sdk_resume_setup(url: str, concurrency: int) -> Any:
    """The SDK with RetryPolicy(resume=True): what resuming costs when nothing fails."""
    from ollama_stream import AsyncOllama, RetryPolicy

    return AsyncOllama(url, pool_limit=concurrency, retry=RetryPolicy(resume=True))


async def sdk_one(client: Any, url: str, expected: str) -> int:
    count = 0
    stream = client.chat("qwen3", MESSAGES)
    async for chunk in stream:
        count += bool(chunk.content) or 1  # read a field, as a caller would
    result = await stream.result()
    assert result.message.content == expected and result.message.tool_calls[0].name == "get_weather"
    return count


async def ollama_python_setup(url: str, concurrency: int) -> Any:
    import httpx
    from ollama import AsyncClient

    return AsyncClient(host=url, limits=httpx.Limits(max_connections=concurrency))


async def ollama_python_one(client: Any, url: str, expected: str) -> int:
    count = 0
    content: list[str] = []
    tool_calls = []
    async for part in await client.chat(model="qwen3", messages=MESSAGES, stream=True):
        content.append(part.message.content or "")
        tool_calls += part.message.tool_calls or []
        count += 1
    assert "".join(content) == expected and tool_calls[0].function.name == "get_weather"
    return count


async def litellm_setup(url: str, concurrency: int) -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


async def litellm_one(litellm: Any, url: str, expected: str) -> int:
    count = 0
    content: list[str] = []
    response = await litellm.acompletion(model="ollama_chat/qwen3", messages=MESSAGES, api_base=url,
                                         stream=True, num_retries=0)
    async for part in response:
        if part.choices:
            content.append(part.choices[0].delta.content or "")
        count += 1
    assert "".join(content) == expected
    return count


ASYNC_CLIENTS: dict[str, tuple[Callable[[str, int], Awaitable[Any]],
                               Callable[..., Awaitable[int]]]] = {
    "floor": (floor_setup, floor_one),
    "ollama_stream": (sdk_setup, sdk_one),
    "ollama_stream resume=True": (sdk_resume_setup, sdk_one),
    "ollama-python": (ollama_python_setup, ollama_python_one),
    "litellm": (litellm_setup, litellm_one),
}


async def run_async(name: str, url: str, streams: int, concurrency: int,
                    chunks: int) -> tuple[int, float, float]:
    setup, one = ASYNC_CLIENTS[name]
    client = await setup(url, concurrency)
    expected = expected_content(chunks)
    await one(client, url, expected)  # warm up: connections, caches, lazy imports
    gate = asyncio.Semaphore(concurrency)

    async def guarded() -> int:
        async with gate:
            return await one(client, url, expected)

    started_cpu, started = cpu(), time.perf_counter()
    counts = await asyncio.gather(*(guarded() for _ in range(streams)))
    spent_cpu, wall = cpu() - started_cpu, time.perf_counter() - started
    close = getattr(client, "aclose", None) or getattr(client, "close", None)
    if close is not None and name != "litellm":
        result = close()
        if asyncio.iscoroutine(result):
            await result
    return sum(counts), spent_cpu, wall


def run_blocking(url: str, streams: int, concurrency: int, chunks: int) -> tuple[int, float, float]:
    """The blocking `Ollama`, one thread per concurrent stream."""
    from ollama_stream import Ollama

    expected = expected_content(chunks)
    with Ollama(url, pool_limit=concurrency) as client:
        def one(_: int) -> int:
            count = 0
            stream = client.chat("qwen3", MESSAGES)
            for chunk in stream:
                count += bool(chunk.content) or 1  # read a field, as a caller would
            assert stream.result().message.content == expected
            return count

        one(0)
        with ThreadPoolExecutor(concurrency) as pool:
            started_cpu, started = cpu(), time.perf_counter()
            total = sum(pool.map(one, range(streams)))
            return total, cpu() - started_cpu, time.perf_counter() - started


def main() -> None:
    name, url, streams, concurrency, chunks = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    baseline = rss_kib()
    if name == "Ollama (blocking)":
        total, spent, wall = run_blocking(url, streams, concurrency, chunks)
    else:
        total, spent, wall = asyncio.run(run_async(name, url, streams, concurrency, chunks))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert total == streams * chunks or name == "litellm", (total, streams * chunks)
    lines = streams * chunks  # the lines the server sent: the same unit for every client
    print(orjson.dumps({"client": name, "chunks": total, "cpu_us_per_chunk": spent / lines * 1e6,
                        "wall_s": wall, "peak_rss_kib": peak,
                        "baseline_rss_kib": baseline}).decode(), flush=True)


if __name__ == "__main__":
    main()
