"""The cost of `stream.objects()`, in-process: a structured reply of N tokens (a JSON list of
records, about four characters per token) streamed from an in-memory backend, read once with
`async for` and once through `objects()`; the difference per chunk is what objects() adds (best of
the repeats, interleaved). Measured at two sizes ten times apart: a cost per chunk that stays flat
says the parsing is linear in the content. Beside it, re-parsing the whole text at every chunk (what
a naive partial parser does) at the smaller size.

    python -m benchmarks.structured
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from ollama_stream import AsyncOllama, ChatChunk, ChatRequest
from ollama_stream.structured import partial_parser

SIZES = (2_000, 20_000)  # chunks (tokens) per reply
_TOKEN = re.compile(r"\s*(?:\w{1,4}|[^\w\s]{1,2})|\s+")


def reply_tokens(chunks: int) -> list[str]:
    """A JSON list of records cut into model-sized tokens, at least `chunks` of them."""
    records, tokens = [], []
    while len(tokens) < chunks:
        i = len(records)
        records.append({"id": i, "name": f"item number {i}", "price": i * 1.25,
                        "tags": ["alpha", "beta"], "note": "a short description of it"})
        tokens = _TOKEN.findall(json.dumps(records))
    return tokens


class _Replay:
    """A ChatBackend replaying the same tokens, one ChatChunk each, then a final chunk."""

    def __init__(self, tokens: list[str]) -> None:
        self.chunks = [ChatChunk("m", "t", token, "", (), False, None, None, None, {})
                       for token in tokens]
        self.chunks.append(ChatChunk("m", "t", "", "", (), True, "stop", None, None, {}))

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        for chunk in self.chunks:
            yield chunk

    async def aclose(self) -> None:
        pass


async def _timed(chunks: int, repeats: int) -> dict[str, float]:
    tokens = reply_tokens(chunks)
    messages = [{"role": "user", "content": "list them"}]
    best = {"plain": float("inf"), "objects": float("inf")}
    values = 0
    async with AsyncOllama(backend=_Replay(tokens)) as client:
        for _ in range(repeats):
            started = time.perf_counter()
            async for _chunk in client.chat("m", messages, format="json"):
                pass
            best["plain"] = min(best["plain"], time.perf_counter() - started)
            started = time.perf_counter()
            values = 0
            async for _value in client.chat("m", messages, format="json").objects():
                values += 1
            best["objects"] = min(best["objects"], time.perf_counter() - started)
    n = len(tokens) + 1
    return {"chunks": n, "kib": sum(map(len, tokens)) / 1024, "values": values,
            "plain_us": best["plain"] / n * 1e6,
            "added_us": (best["objects"] - best["plain"]) / n * 1e6}


def _naive(chunks: int, repeats: int) -> float:
    """µs per chunk of re-parsing the whole text at every chunk with the same parser."""
    tokens = reply_tokens(chunks)
    parse = partial_parser()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        text = ""
        for token in tokens:
            text += token
            with contextlib.suppress(ValueError):  # not JSON yet
                parse(text)
        best = min(best, time.perf_counter() - started)
    return best / len(tokens) * 1e6


def objects_cost(repeats: int = 5) -> dict[str, Any]:
    rows = [asyncio.run(_timed(size, repeats)) for size in SIZES]
    return {"rows": rows, "naive_us": _naive(SIZES[0], max(1, repeats // 2)),
            "parser": partial_parser().__qualname__}


def report_lines(cost: dict[str, Any]) -> list[str]:
    rows = cost["rows"]
    lines = ["## Structured output: objects()", "",
             "`stream.objects()` over a structured reply (a JSON list of records, about four "
             "characters per chunk) replayed in-process from a backend, so no network is in the "
             "figure: reading it with `async for`, and what `objects()` adds on top (partial "
             "values parsed by jiter when a chunk may show something new, at most once per 1/64 "
             "of growth past 1 KiB). The naive way re-parses the whole text at every chunk.", "",
             "| reply | partial values | `async for` µs / chunk | objects() adds µs / chunk |",
             "|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['chunks']:,} chunks, {row['kib']:.0f} KiB | {row['values']:,} "
                     f"| {row['plain_us']:.2f} | {row['added_us']:.2f} |")
    lines += ["", f"Re-parsing the whole text at every chunk costs {cost['naive_us']:.2f} µs per "
                  f"chunk at {rows[0]['chunks']:,} chunks already, and grows with the reply.", ""]
    return lines


def target_row(cost: dict[str, Any]) -> str:
    small, large = cost["rows"][0]["added_us"], cost["rows"][-1]["added_us"]
    ratio = large / small if small > 0 else float("inf")
    mark = "met" if ratio <= 2 else "**not met**"
    return (f"| objects() per chunk stays flat from {cost['rows'][0]['chunks']:,} to "
            f"{cost['rows'][-1]['chunks']:,} chunks (linear in the content) | {ratio:.2f}x "
            f"| {mark} |")


if __name__ == "__main__":
    measured = objects_cost()
    print("\n".join(report_lines(measured)))
    print(target_row(measured))
