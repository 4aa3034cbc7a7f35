"""Where a chunk's CPU goes in ollama_stream's own code, in-process: each step of the hot path timed
alone over the benchmark's 2,000-line reply (best of 25 interleaved rounds), next to the floor's
whole per-line loop.

    python -m benchmarks.profile_hot_path
"""

from __future__ import annotations

import asyncio
import timeit
from collections.abc import AsyncIterator, Callable

import orjson

from benchmarks.server import reply_lines
from ollama_stream.protocol import ChatAccumulator, NDJSONDecoder, parse_chat_chunk
from ollama_stream.types import ChatChunk


def main() -> None:
    lines = reply_lines(2000)
    data = b"".join(lines)
    objs = NDJSONDecoder().feed(data)
    chunks = [parse_chat_chunk(obj) for obj in objs]
    loads = orjson.loads

    # what the floor client does per line: split, loads, three fields, keep the content
    def floor() -> None:
        content = []
        for line in data.split(b"\n"):
            if line:
                obj = loads(line)
                message = obj["message"]
                content.append(message["content"])
                message.get("thinking")
                obj["done"]

    def decode() -> None:
        NDJSONDecoder().feed(data)

    def parse() -> None:
        for obj in objs:
            parse_chat_chunk(obj)

    def construct() -> None:
        for obj in objs:
            ChatChunk("m", "t", "c", "", (), False, None, None, None, obj)

    def accumulate() -> None:
        add = ChatAccumulator().add
        for chunk in chunks:
            add(chunk)

    async def generator() -> AsyncIterator[ChatChunk]:
        for chunk in chunks:
            yield chunk

    def hand_over() -> None:
        async def consume() -> None:
            async for _ in generator():
                pass
        asyncio.run(consume())

    steps: dict[str, Callable[[], None]] = {
        "floor: split + loads + 3 fields, per line": floor, "decode (split + loads)": decode,
        "parse_chat_chunk (incl. the ChatChunk)": parse, "  of which ChatChunk(...)": construct,
        "ChatAccumulator.add": accumulate, "async generator hand-over": hand_over,
    }
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(25):
        for name, step in steps.items():
            best[name] = min(best[name], timeit.timeit(step, number=3))
    print("| step | µs / chunk |\n|---|---|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds / 3 / len(objs) * 1e6:.2f} |")


if __name__ == "__main__":
    main()
