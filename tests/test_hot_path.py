"""The per-chunk path, guarded by counts rather than time: Python-level calls and allocated memory
blocks per chunk. A validation layer, a nested generator or a helper added to the hot path shows up
here as a failure (the figures themselves come from benchmarks/, never from a timed test)."""

from __future__ import annotations

import ast
import asyncio
import collections
import functools
import gc
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import orjson
import pytest

import ollama_stream
from ollama_stream import AsyncOllama, Message
from ollama_stream.protocol import ChatAccumulator, NDJSONDecoder, parse_chat_chunk
from ollama_stream.testing import FakeOllama

PACKAGE = os.path.dirname(ollama_stream.__file__)
TRANSCRIPT = ((Path(__file__).parent / "fixtures" / "thinking_content.ndjson").read_bytes()
              .splitlines(keepends=True))
# 2,001 lines: thinking, content, ..., final
LINES = [TRANSCRIPT[0], TRANSCRIPT[2]] * 1000 + [TRANSCRIPT[-1]]


def core_pass() -> list[Any]:
    """Decode one line per feed (as a live stream arrives), parse, accumulate; keep every chunk."""
    feed, acc, kept = NDJSONDecoder().feed, ChatAccumulator(), []
    for line in LINES:
        for obj in feed(line):
            chunk = parse_chat_chunk(obj)
            acc.add(chunk)
            kept.append(chunk)
    assert acc.done and len(kept) == len(LINES)
    return kept


def in_package(filename: str) -> bool:
    """Our modules, and the `<string>` code dataclasses generate for their __init__."""
    return ((filename.startswith(PACKAGE) and f"{os.sep}testing{os.sep}" not in filename)
            or filename == "<string>")


def qualname(code: CodeType) -> str:
    """A code object's qualified name: `co_qualname` on 3.11+, rebuilt from the source on 3.10."""
    name: str | None = getattr(code, "co_qualname", None)
    if name is not None:
        return name
    if code.co_filename == "<string>":  # the methods dataclasses generate
        return f"__create_fn__.<locals>.{code.co_name}"
    return _qualnames(code.co_filename).get((code.co_firstlineno, code.co_name), code.co_name)


@functools.cache
def _qualnames(filename: str) -> dict[tuple[int, str], str]:
    """(first line, name) -> qualified name of every def and class in a file (3.10 has no
    co_qualname)."""
    found: dict[tuple[int, str], str] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                found[(first, child.name)] = prefix + child.name
                inner = "." if isinstance(child, ast.ClassDef) else ".<locals>."
                visit(child, prefix + child.name + inner)
            else:
                visit(child, prefix)

    visit(ast.parse(Path(filename).read_text()), "")
    return found


class CallCounter:
    def __init__(self, wanted: Any) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.wanted = wanted

    def __call__(self, frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and self.wanted(frame.f_code.co_filename):
            self.calls[qualname(frame.f_code)] += 1

    def __enter__(self) -> collections.Counter[str]:
        sys.setprofile(self)
        return self.calls

    def __exit__(self, *exc_info: object) -> None:
        sys.setprofile(None)


def test_core_makes_four_python_calls_per_chunk() -> None:
    core_pass()
    with CallCounter(in_package) as calls:
        core_pass()
    n = len(LINES)
    # ChatChunk's generated __init__ once per chunk, plus Metrics' on the final chunk.
    assert calls == {"NDJSONDecoder.feed": n, "parse_chat_chunk": n, "ChatAccumulator.add": n,
                     "__create_fn__.<locals>.__init__": n + 1, "parse_metrics": 1,
                     "NDJSONDecoder.__init__": 1, "ChatAccumulator.__init__": 1,
                     "_parse_chat_chunk": 1}, calls  # only the final chunk leaves the fast path


def test_core_allocates_at_most_ten_blocks_per_chunk() -> None:
    core_pass()
    gc.collect()
    gc.disable()
    try:
        before = sys.getallocatedblocks()
        kept = core_pass()  # kept alive: the chunks themselves are counted
        per_chunk = (sys.getallocatedblocks() - before) / len(LINES)
    finally:
        gc.enable()
    # decoded dicts and strings, the ChatChunk, the one-item list
    assert kept and per_chunk <= 10, per_chunk


def test_the_decoder_fast_path_is_one_orjson_call_per_line() -> None:
    with CallCounter(in_package) as calls:
        decoder = NDJSONDecoder()
        for line in LINES:
            decoder.feed(line)
    # no helper per line
    assert calls == {"NDJSONDecoder.__init__": 1, "NDJSONDecoder.feed": len(LINES)}


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


@pytest.mark.parametrize("watched", ["off", "opentelemetry imported, no provider",
                                     "a hook and DEBUG logs"])
def test_client_read_loop_adds_nothing_per_chunk(fake: FakeOllama, watched: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    content = "w " * 1000
    fake.queue_reply(content=content)
    fake.queue_reply(content=content)
    options: dict[str, Any] = {}
    events: list[Any] = []  # each Event is one more dataclass __init__, once per request
    if watched.startswith("opentelemetry"):
        trace = pytest.importorskip("opentelemetry.trace")
        assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
    elif watched.startswith("a hook"):
        options["on_event"] = events.append
        caplog.set_level(logging.DEBUG, logger="ollama_stream")

    async def main() -> tuple[int, collections.Counter[str]]:
        async with AsyncOllama(fake.url, **options) as client:
            # one user message (an empty list only loads the model), built before counting
            hello = [Message("user", "hi")]
            await client.chat("qwen3", hello).result()  # warm: the pooled connection, lazy imports
            chunks = 0
            with CallCounter(in_package) as calls:
                async for _ in client.chat("qwen3", hello):
                    chunks += 1
            return chunks, calls

    chunks, calls = asyncio.run(main())
    reads = calls.pop("NDJSONDecoder.feed")
    resumes = calls.pop("_stream_chunks")
    per_chunk = {name: count for name, count in calls.items() if count > 10}
    # + Metrics on the final chunk; when watched, each Event (and the reply's metrics) is one more
    # dataclass __init__, a few per request
    inits = per_chunk.pop("__create_fn__.<locals>.__init__")
    assert chunks + 1 <= inits <= chunks + 1 + (8 if events else 0), inits
    assert per_chunk == {"parse_chat_chunk": chunks, "ChatAccumulator.add": chunks}, per_chunk
    # one resume per chunk handed over and one per network read
    assert resumes <= chunks + reads + 5
    if watched == "off" or watched.startswith("opentelemetry"):
        # everything else happens once per request; a Watch exists only when someone listens
        assert sum(calls.values()) - 3 * chunks <= 40
        assert not any(name.startswith("Watch.") for name in calls), calls
    else:  # watched: once per request, never per chunk
        assert calls["Watch.request"] == calls["Watch.first_chunk"] == calls["Watch.finished"] == 1


def test_fixture_lines_are_what_the_test_thinks() -> None:
    assert (orjson.loads(LINES[0])["message"]["thinking"]
            and orjson.loads(LINES[1])["message"]["content"])
    assert orjson.loads(LINES[-1])["done"] is True
