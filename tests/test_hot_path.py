"""The per-chunk path, guarded by counts rather than time: Python-level calls and allocated memory
blocks per chunk. A validation layer, a nested generator or a helper added to the hot path shows up
here as a failure (the figures themselves come from benchmarks/, never from a timed test). Per
chunk the read loop makes one Python call, `take`; per read, one `split` (and a `drain` or two
where aiohttp's buffer is drained directly)."""

from __future__ import annotations

import ast
import asyncio
import collections
import functools
import gc
import logging
import os
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import aiohttp
import orjson
import pytest

import ollama_stream
from ollama_stream import AsyncOllama, Message, _http
from ollama_stream.protocol import ChatAccumulator, NDJSONDecoder
from ollama_stream.testing import FakeOllama

PACKAGE = os.path.dirname(ollama_stream.__file__)
TRANSCRIPT = ((Path(__file__).parent / "fixtures" / "thinking_content.ndjson").read_bytes()
              .splitlines(keepends=True))
# 2,001 lines: thinking, content, ..., final
LINES = [TRANSCRIPT[0], TRANSCRIPT[2]] * 1000 + [TRANSCRIPT[-1]]


def core_pass(batched: bool = False) -> list[Any]:
    """What the read loop does: split each read into lines (one line per read, as a live stream
    arrives, or the whole reply at once), decode each line and `take` it; keep every chunk."""
    decoder, acc, kept = NDJSONDecoder(), ChatAccumulator(), []
    split, take, loads = decoder.split, acc.take, orjson.loads
    for data in [b"".join(LINES)] if batched else LINES:
        for line in split(data):
            kept.append(take(loads(line)))
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


@pytest.mark.parametrize("batched", [False, True], ids=["a line per read", "one read"])
def test_core_makes_one_python_call_per_chunk(batched: bool) -> None:
    core_pass(batched)
    with CallCounter(in_package) as calls:
        core_pass(batched)
    n = len(LINES)
    # One `take` per chunk, and one `split` per read. Every chunk but the final one is built on the
    # fast path, without the class call; the final one goes the careful way (parse_and_add):
    # parse_chat_chunk, add, and the generated __init__ of its ChatChunk and of its Metrics.
    assert calls == {"NDJSONDecoder.split": 1 if batched else n, "ChatAccumulator.take": n,
                     "parse_and_add": 1, "parse_chat_chunk": 1, "_parse_chat_chunk": 1,
                     "parse_metrics": 1, "ChatAccumulator.add": 1,
                     "__create_fn__.<locals>.__init__": 2,
                     "NDJSONDecoder.__init__": 1, "ChatAccumulator.__init__": 1}, calls


@pytest.mark.parametrize("batched", [False, True], ids=["a line per read", "one read"])
def test_core_allocates_only_what_a_chunk_keeps(batched: bool) -> None:
    core_pass(batched)
    gc.collect()
    gc.disable()
    try:
        before = sys.getallocatedblocks()
        kept = core_pass(batched)  # kept alive: the chunks themselves are counted
        per_chunk = (sys.getallocatedblocks() - before) / len(LINES)
    finally:
        gc.enable()
    # What each chunk keeps: its two decoded dicts (an object and a key table each), their four
    # new strings (model, created_at, role, and the thinking or content), and the ChatChunk: 9.
    # Nothing of the path's own (a list per read, a tuple per chunk, ...) may be added.
    assert kept and per_chunk < 9.1, per_chunk


def test_the_decoder_is_one_call_per_read_and_nothing_per_line() -> None:
    with CallCounter(in_package) as calls:
        decoder = NDJSONDecoder()
        for line in LINES:
            decoder.split(line)
        decoder.split(b"".join(LINES))
    assert calls == {"NDJSONDecoder.__init__": 1, "NDJSONDecoder.split": len(LINES) + 1}


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
    reads = calls.pop("NDJSONDecoder.split")
    resumes = calls.pop("_stream_chunks")
    # aiohttp's buffer drained directly (one look, and one more after a wait, per read), where
    # that path is on; else the public readany(), which is not ours to count
    drains = calls.pop("DirectReads.drain", 0)
    assert (drains > 0) is direct_reads_expected(), drains
    assert drains <= 2 * reads + 4, (drains, reads)
    # coroutines are counted at every resumption: the attempt's wait for its first line resumes
    # these once per read it takes (how many depends on how the server's writes fall into reads)
    waits = sum(calls.pop(name, 0) for name in ("first_success", "send", "_first_lines"))
    assert waits <= 3 * (reads + 2), (waits, reads)
    per_chunk = {name: count for name, count in calls.items() if count > 10}
    assert per_chunk == {"ChatAccumulator.take": chunks}, per_chunk
    # the chunks are built without a class call: dataclass __init__s are the final chunk's and its
    # Metrics'; when watched, each Event (and the reply's metrics) is one more, a few per request
    inits = calls["__create_fn__.<locals>.__init__"]
    assert 2 <= inits <= 2 + (8 if events else 0), inits
    # one resume per chunk handed over and one per network read
    assert resumes <= chunks + reads + 5
    if watched == "off" or watched.startswith("opentelemetry"):
        # everything else happens once per request; a Watch exists only when someone listens
        assert sum(calls.values()) - chunks <= 40, calls
        assert not any(name.startswith("Watch.") for name in calls), calls
    else:  # watched: once per request, never per chunk
        assert calls["Watch.request"] == calls["Watch.first_chunk"] == calls["Watch.finished"] == 1


def direct_reads_expected() -> bool:
    """Whether the read loop should drain aiohttp's buffer directly in this run: on the aiohttp
    releases it was verified against, unless OLLAMA_STREAM_PUBLIC_READS is set (CI runs the whole
    suite both ways)."""
    public = os.environ.get("OLLAMA_STREAM_PUBLIC_READS", "").strip() not in ("", "0")
    return not public and aiohttp.__version__ in _http._VERIFIED


def test_fixture_lines_are_what_the_test_thinks() -> None:
    assert (orjson.loads(LINES[0])["message"]["thinking"]
            and orjson.loads(LINES[1])["message"]["content"])
    assert orjson.loads(LINES[-1])["done"] is True


def test_a_request_body_is_held_at_its_own_size() -> None:
    # orjson's bytes keep the block it wrote into (4 KiB for a small body); a stream holds its body
    # for its whole life (to retry, to resume), so what it keeps must be the body's own size
    from ollama_stream._arguments import wire_json

    request = {"model": "qwen3", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        body = wire_json(request)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert orjson.loads(body) == request
    assert held < len(body) + 128, (held, len(body))
