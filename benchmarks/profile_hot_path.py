"""Where a chunk's CPU goes in ollama_stream's own code, in-process: each step of the hot path timed
alone over the benchmark's 2,000-line reply (best of interleaved rounds), next to the floor's whole
per-line loop.

    python -m benchmarks.profile_hot_path [ROUNDS]
"""

from __future__ import annotations

import asyncio
import sys
import timeit
from collections.abc import AsyncIterator, Callable

import orjson

from benchmarks.server import reply_lines
from ollama_stream.protocol import ChatAccumulator, NDJSONDecoder
from ollama_stream.types import ChatChunk


def main() -> None:
    rounds = int(sys.argv[1]) if sys.argv[1:] else 25
    lines = reply_lines(2000)
    data = b"".join(lines)
    split_lines = NDJSONDecoder().split(data)
    objs = [orjson.loads(line) for line in split_lines]
    acc = ChatAccumulator()
    chunks = [acc.take(obj) for obj in objs]
    loads = orjson.loads

    # what the floor client does per line: split, loads, accumulate three fields, find done
    def floor() -> None:
        content, thinking, calls = [], [], []
        for line in data.split(b"\n"):
            if line:
                obj = loads(line)
                message = obj["message"]
                if text := message.get("content"):
                    content.append(text)
                if text := message.get("thinking"):
                    thinking.append(text)
                if more := message.get("tool_calls"):
                    calls.extend(more)
                obj["done"]

    def decode() -> None:
        for line in NDJSONDecoder().split(data):
            loads(line)

    def take() -> None:
        take = ChatAccumulator().take
        for obj in objs:
            take(obj)

    new = object.__new__

    def construct() -> None:
        for obj in objs:
            chunk = new(ChatChunk)
            chunk.model, chunk.created_at, chunk.content, chunk.thinking = "m", "t", "c", ""
            chunk.tool_calls = chunk.images = ()
            chunk.done = False
            chunk.done_reason = chunk.metrics = chunk.logprobs = None
            chunk.raw = obj
            chunk.remote_model = chunk.remote_host = None

    async def generator() -> AsyncIterator[ChatChunk]:
        for chunk in chunks:
            yield chunk

    def hand_over() -> None:
        async def consume() -> None:
            async for _ in generator():
                pass
        asyncio.run(consume())

    steps: dict[str, Callable[[], None]] = {
        "floor: split + loads + accumulate, per line": floor,
        "decode (NDJSONDecoder.split + loads)": decode,
        "ChatAccumulator.take (parse + add)": take,
        "  of which building the ChatChunk": construct,
        "async generator hand-over": hand_over,
    }
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(rounds):
        for name, step in steps.items():
            best[name] = min(best[name], timeit.timeit(step, number=3))
    print("| step | µs / chunk |\n|---|---|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds / 3 / len(objs) * 1e6:.2f} |")


if __name__ == "__main__":
    main()
