"""The fast paths of the hot path, held to the careful ones they stand in for: `take` is exactly
`parse_*` then `add` (chunks, accumulated state, errors), the line-at-a-time decoding gives what
`feed` gives, `direct_reads` leaves aiohttp's reader as `readany()` would (and falls back to it
wherever it was not verified), and the blocking hand-off wakes the reader once per wait, not once
per chunk, without holding the first chunk back."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import queue
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ollama_stream import Ollama, ProtocolError, StreamError, _http, _sync_streams
from ollama_stream.endpoints import (
    GenerateAccumulator,
    GenerateChunk,
    ProgressAccumulator,
    parse_generate_chunk,
    parse_progress,
)
from ollama_stream.protocol import (
    UNDECODABLE,
    ChatAccumulator,
    NDJSONDecoder,
    NotAnObject,
    parse_chat_chunk,
)
from ollama_stream.testing import FakeOllama
from ollama_stream.types import ChatChunk

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_LINES = [orjson.loads(line) for path in sorted(FIXTURES.glob("*.ndjson"))
                 for line in path.read_bytes().splitlines() if line.strip()]
DELTA = {"model": "qwen3", "created_at": "2026-01-01T00:00:00Z",
         "message": {"role": "assistant", "content": "hi"}, "done": False}


def variants() -> list[Any]:
    """Lines near the fast path's shape, each a step off it: what it must hand to the careful
    parser (or refuse, as that would)."""
    out: list[Any] = [DELTA, [1, 2], "text", 7, None, True, 1.5]
    for key, value in [("done", True), ("done", None), ("done", "no"), ("model", 3),
                       ("created_at", None), ("message", None), ("message", "hi"),
                       ("message", [1]), ("message", {"content": "x", "thinking": "y"}),
                       ("extra", 1), ("error", "boom"), ("error", None), ("logprobs", []),
                       ("remote_model", "big"), ("remote_host", "https://ollama.com")]:
        out.append({**DELTA, key: value})
    for message in [{"role": "assistant"}, {"role": "assistant", "content": None},
                    {"role": "assistant", "content": 5}, {"role": "user", "content": "a"},
                    {"role": "assistant", "content": "a", "thinking": "t"},
                    {"role": "assistant", "content": "a", "thinking": None},
                    {"role": "assistant", "content": "a", "thinking": 3},
                    {"role": "assistant", "content": "a", "tool_name": "x"},
                    {"role": "assistant", "content": "a", "images": []},
                    {"role": "assistant", "content": "a", "tool_calls": None},
                    {"role": "assistant", "content": "", "tool_calls": [
                        {"function": {"name": "f", "arguments": {"x": 1}}}]},
                    {"role": "assistant", "content": "", "tool_calls": [{"function": {}}]},
                    {"role": "assistant", "content": "a", "thinking": "t", "extra": 1},
                    {"content": "a", "other": 1}, {"content": "a", "role": "assistant"}]:
        out.append({**DELTA, "message": message})
    return out


def outcome(step: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", step()
    except (ProtocolError, StreamError, NotAnObject) as exc:
        return type(exc).__name__, str(exc)


def state(acc: Any) -> dict[str, Any]:
    """Everything an accumulator holds, by its slots and its properties."""
    names = [n for cls in type(acc).__mro__ for n in getattr(cls, "__slots__", ())]
    seen = {name: getattr(acc, name) for name in names}
    seen["chunks"] = acc.chunks
    seen["message"] = acc.message
    return seen


def by_parser(parse: Callable[[dict[str, Any]], Any], acc: Any, obj: Any) -> Any:
    """What every `take` must equal: the careful parser, then `add` (anything else refused)."""
    if type(obj) is not dict:
        raise NotAnObject
    chunk = parse(obj)
    acc.add(chunk)
    return chunk

@pytest.mark.parametrize("seq", [FIXTURE_LINES, variants(), [DELTA, *variants(), DELTA]],
                         ids=["fixtures", "variants", "after a first chunk"])
def test_take_is_parse_chat_chunk_then_add(seq: list[Any]) -> None:
    fast, careful = ChatAccumulator(num_ctx=100_000), ChatAccumulator(num_ctx=100_000)
    for obj in seq:
        a = outcome(lambda: fast.take(obj))  # noqa: B023 - called at once
        b = outcome(lambda: by_parser(parse_chat_chunk, careful, obj))  # noqa: B023
        assert a == b, obj  # the same chunk (every field), or the same error
        assert state(fast) == state(careful), obj


def test_the_fast_chunk_sets_every_field() -> None:
    """A field added to ChatChunk (or GenerateChunk) must be set by `take`'s fast path too, which
    builds the chunk without its __init__; this names the one it leaves out."""
    chunk = ChatAccumulator().take(dict(DELTA))
    for field in dataclasses.fields(ChatChunk):
        assert hasattr(chunk, field.name), f"ChatAccumulator.take leaves {field.name} unset"
    assert chunk == parse_chat_chunk(DELTA)
    line = {"model": "m", "created_at": "t", "response": "r", "done": False}
    chunk_g = GenerateAccumulator().take(line)
    for field in dataclasses.fields(GenerateChunk):
        assert hasattr(chunk_g, field.name), f"GenerateAccumulator.take leaves {field.name} unset"
    assert chunk_g == parse_generate_chunk(line)


JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from(["", "a"]),
                        st.just([]), st.just({}))
MESSAGES = st.dictionaries(st.sampled_from(["role", "content", "thinking", "tool_calls", "images",
                                            "tool_name"]), JSON_VALUES, max_size=4)
LINES = st.one_of(
    st.dictionaries(st.sampled_from(["model", "created_at", "message", "done", "done_reason",
                                     "error", "logprobs", "remote_model", "remote_host",
                                     "response", "thinking", "context"]),
                    st.one_of(JSON_VALUES, MESSAGES), max_size=6),
    st.fixed_dictionaries({"model": st.sampled_from(["m", 1]), "created_at": JSON_VALUES,
                           "message": MESSAGES, "done": st.sampled_from([False, True, None])}),
    JSON_VALUES)


@settings(max_examples=400, deadline=None)
@given(st.lists(LINES, max_size=4))
def test_take_agrees_with_the_careful_path_on_any_line(seq: list[Any]) -> None:
    fast, careful = ChatAccumulator(), ChatAccumulator()
    gen_fast, gen_careful = GenerateAccumulator(), GenerateAccumulator()
    for obj in seq:
        assert outcome(lambda: fast.take(obj)) == outcome(  # noqa: B023
            lambda: by_parser(parse_chat_chunk, careful, obj))  # noqa: B023
        assert state(fast) == state(careful)
        assert outcome(lambda: gen_fast.take(obj)) == outcome(  # noqa: B023
            lambda: by_parser(parse_generate_chunk, gen_careful, obj))  # noqa: B023
        assert state(gen_fast) == state(gen_careful)


def test_generate_and_progress_take_match_their_parsers() -> None:
    lines = [{"model": "m", "created_at": "t", "response": "He", "done": False},
             {"model": "m", "created_at": "t", "response": "", "thinking": "h", "done": False},
             {"model": "m", "created_at": "t", "response": 5, "done": False},
             {"model": "m", "created_at": "t", "response": "x", "done": False, "context": [1]},
             {"model": "m", "created_at": "t", "response": "", "done": True, "context": [1, 2],
              "done_reason": "stop", "eval_count": 2}]
    fast, careful = GenerateAccumulator(), GenerateAccumulator()
    for obj in lines:
        assert outcome(lambda: fast.take(obj)) == outcome(  # noqa: B023
            lambda: by_parser(parse_generate_chunk, careful, obj))  # noqa: B023
        assert state(fast) == state(careful)
    assert fast.result() == careful.result()
    progress = ProgressAccumulator()
    assert progress.take({"status": "success"}) == parse_progress({"status": "success"})
    assert progress.done and progress.chunks == 1
    with pytest.raises(NotAnObject):
        progress.take([1])  # type: ignore[arg-type]


# -- the decoder, a line at a time -----------------------------------------------------------------

def read_loop_objects(pieces: Iterator[bytes], decoder: NDJSONDecoder) -> list[dict[str, Any]]:
    """What the client's read loop does with the bytes: split, decode each line, skip blanks."""
    out = []
    for piece in [*pieces, None]:
        if piece is None:  # the end of the body
            lines = decoder.split(b"\n") if decoder.pending_bytes else []
        else:
            lines = decoder.split(piece)
        for line in lines:
            try:
                obj = orjson.loads(line)
                if type(obj) is not dict:
                    raise NotAnObject
            except UNDECODABLE:
                decoder.skip_blank(line)
                continue
            out.append(obj)
        if decoder.error is not None:
            raise decoder.error
    return out


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.ndjson")), ids=lambda p: p.stem)
def test_a_line_at_a_time_gives_what_feed_gives_split_at_every_byte(path: Path) -> None:
    data = path.read_bytes()
    want = [orjson.loads(line) for line in data.splitlines() if line.strip()]
    for cut in range(len(data) + 1):
        assert read_loop_objects(iter([data[:cut], data[cut:]]), NDJSONDecoder()) == want, cut
    assert read_loop_objects(iter(data[i:i + 1] for i in range(len(data))),
                             NDJSONDecoder()) == want


def test_blank_lines_are_skipped_however_many() -> None:
    good = b'{"a":1}\n'
    for data in [b"\n" * 5000 + good, good + b"\n" * 5000 + good, b"\r\n \n\t\n" + good * 3,
                 (b"\n" * 20 + good) * 50]:
        assert read_loop_objects(iter([data]), NDJSONDecoder()) == [{"a": 1}] * data.count(good)


@pytest.mark.parametrize("before", [b"", b"\n\n", b'{"a":1}\n', b'{"a":1}\n\n\n{"b":2}\r\n'])
@pytest.mark.parametrize("bad,what", [(b"nope", "is not valid JSON"),
                                      (b"[1]", "is a JSON list, not an object"),
                                      (b"null", "is a JSON NoneType, not an object")])
def test_a_bad_line_is_named_by_its_number(before: bytes, bad: bytes, what: str) -> None:
    number = before.count(b"\n") + 1
    for pieces in ([before + bad + b"\n"], [before, bad + b"\n"], [before, bad, b"\n"]):
        with pytest.raises(ProtocolError, match=rf"^line {number} of the stream {what}: "):
            read_loop_objects(iter(pieces), NDJSONDecoder())


# -- direct reads: aiohttp's buffer drained as readany() would -------------------------------------

class Protocol:
    """Enough of aiohttp's ResponseHandler for a StreamReader: pause and resume, as BaseProtocol
    flips them."""

    def __init__(self) -> None:
        self._reading_paused = False
        self.connected = True
        self.resumes = 0

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self, resume_parser: bool = True) -> None:
        self._reading_paused = False
        self.resumes += 1


def reader_state(reader: aiohttp.StreamReader) -> tuple[Any, ...]:
    return (reader._size, reader._cursor, list(reader._http_chunk_splits or ()),
            list(reader._buffer), reader._buffer_offset, reader.total_bytes,
            reader._protocol._reading_paused, reader.at_eof())


@pytest.fixture
def fresh_rule(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The rule is decided at first use: forget it around a test that changes what decides it."""
    monkeypatch.setattr(_http, "_RULE", [])
    yield


@pytest.mark.parametrize("limit", [2**16, 64, 8])
async def test_drain_leaves_the_reader_as_readany_would(limit: int, fresh_rule: None,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_STREAM_PUBLIC_READS", raising=False)
    if aiohttp.__version__ not in _http._VERIFIED:
        pytest.skip(f"direct reads are not verified for aiohttp {aiohttp.__version__}")
    loop = asyncio.get_running_loop()
    public = aiohttp.StreamReader(Protocol(), limit, loop=loop)  # type: ignore[arg-type]
    direct = aiohttp.StreamReader(Protocol(), limit, loop=loop)  # type: ignore[arg-type]
    reads = _http.direct_reads(direct)
    assert reads is not None
    drain = reads.drain
    for reader in (public, direct):
        reader.begin_http_chunk_receiving()
    pieces = [b"x" * n for n in (1, 5, 30, 100, 3, 7, 64, 1, 1, 1, 200, 9)]
    for round_ in range(4):
        for piece in pieces[round_:]:
            for reader in (public, direct):
                reader.feed_data(piece)
                reader.end_http_chunk_receiving()
        assert drain() == await public.readany()
        assert reader_state(direct) == reader_state(public), round_
        assert drain() == b""  # nothing buffered: the loop waits, then drains again
    for reader in (public, direct):
        reader.feed_eof()
    assert drain() is None and await public.readany() == b""  # the end: readany() says it


async def test_drain_leaves_errors_and_offsets_to_readany(fresh_rule: None) -> None:
    if aiohttp.__version__ not in _http._VERIFIED:
        pytest.skip(f"direct reads are not verified for aiohttp {aiohttp.__version__}")
    reader = aiohttp.StreamReader(Protocol(), 2**16,  # type: ignore[arg-type]
                                  loop=asyncio.get_running_loop())
    reads = _http.direct_reads(reader)
    if reads is None:
        assert _http._rule_for(reader) is None  # OLLAMA_STREAM_PUBLIC_READS is set
        return
    drain = reads.drain
    reader.feed_data(b"abcdef")
    assert await reader.read(2) == b"ab"  # a partial read leaves an offset into the first piece
    assert drain() is None and await reader.readany() == b"cdef"
    reader.feed_data(b"more")
    reader.set_exception(ValueError("broken"))
    assert drain() is None  # readany() raises it
    with pytest.raises(ValueError, match="broken"):
        await reader.readany()


@pytest.mark.parametrize("why", ["OLLAMA_STREAM_PUBLIC_READS=1", "an unverified aiohttp",
                                 "a missing attribute", "a subclass of StreamReader"])
async def test_direct_reads_fall_back_to_readany(why: str, fresh_rule: None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    reader_class: type[aiohttp.StreamReader] = aiohttp.StreamReader
    if why.startswith("OLLAMA"):
        monkeypatch.setenv("OLLAMA_STREAM_PUBLIC_READS", "1")
    elif why == "an unverified aiohttp":
        monkeypatch.setattr(aiohttp, "__version__", "3.99.0")
    elif why == "a subclass of StreamReader":
        reader_class = type("Reader", (aiohttp.StreamReader,), {})
    reader = reader_class(Protocol(), 2**16, loop=loop)  # type: ignore[arg-type]
    if why == "a missing attribute":
        monkeypatch.delattr(aiohttp.StreamReader, "_wait")
    assert _http.direct_reads(reader) is None


@pytest.mark.parametrize("public", [False, True], ids=["direct reads", "readany"])
def test_a_stream_reads_the_same_either_way(public: bool, fresh_rule: None,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    if public:
        monkeypatch.setenv("OLLAMA_STREAM_PUBLIC_READS", "1")
    else:
        monkeypatch.delenv("OLLAMA_STREAM_PUBLIC_READS", raising=False)
    used: list[Any] = []
    original = _http.direct_reads

    def seen(reader: Any) -> Any:
        used.append(original(reader))
        return used[-1]

    monkeypatch.setattr("ollama_stream.streams.direct_reads", seen)
    with FakeOllama() as fake, Ollama(fake.url) as client:
        fake.queue_reply(content="w " * 300, thinking="t " * 30)
        result = client.chat("qwen3", [{"role": "user", "content": "hi"}]).result()
    assert result.message.content == "w " * 300 and result.message.thinking == "t " * 30
    verified = aiohttp.__version__ in _http._VERIFIED
    assert used and all((reads is None) is (public or not verified) for reads in used)


# -- the blocking hand-off -------------------------------------------------------------------------

def serve_once(body: bytes) -> tuple[str, threading.Thread]:
    """A one-request HTTP server in a thread that writes `body` (chunked) in a single write."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        with listener, listener.accept()[0] as conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, rest = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(rest) < length:
                rest += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n"
                         + b"".join(b"%x\r\n%s\r\n" % (len(line), line)
                                    for line in body.splitlines(keepends=True)) + b"0\r\n\r\n")
            conn.recv(1)  # until the client closes

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", thread


def test_the_chunks_of_one_read_cross_threads_in_one_step(monkeypatch: pytest.MonkeyPatch) -> None:
    count = 2000
    lines = [orjson.dumps({**DELTA, "message": {"role": "assistant", "content": f" {i}"}})
             for i in range(count)]
    lines.append(orjson.dumps({**DELTA, "done": True, "done_reason": "stop"}))
    url, _ = serve_once(b"\n".join(lines) + b"\n")
    wakes = collections.Counter[str]()
    reads = collections.Counter[str]()

    class Wake(queue.SimpleQueue[None]):
        def put(self, item: None, block: bool = True, timeout: float | None = None) -> None:
            wakes["put"] += 1
            super().put(item, block, timeout)

    class Hand(_sync_streams._Hand):
        def __init__(self) -> None:
            super().__init__()
            self.wake = Wake()

    split = NDJSONDecoder.split

    def counted_split(self: NDJSONDecoder, data: bytes) -> list[bytes]:
        reads["split"] += 1
        return split(self, data)

    monkeypatch.setattr(_sync_streams, "_Hand", Hand)
    monkeypatch.setattr(NDJSONDecoder, "split", counted_split)
    with Ollama(url) as client:
        chunks = list(client.chat("qwen3", [{"role": "user", "content": "hi"}]))
    assert len(chunks) == count + 1
    assert reads["split"] < count // 4  # most reads brought many lines: a fair test
    # a wake-up when the reader waited, at most one per read (and one at the end), never per chunk
    assert wakes["put"] <= reads["split"] + 2, (wakes, reads)


def test_the_first_chunk_of_a_read_is_not_held_back(fake: FakeOllama) -> None:
    fake.queue_reply(content="only this arrives, then the server stalls", stall_after=1)
    got: list[ChatChunk] = []
    with Ollama(fake.url) as client:
        stream = client.chat("qwen3", [{"role": "user", "content": "hi"}])
        reader = threading.Thread(target=lambda: got.append(next(iter(stream))), daemon=True)
        reader.start()
        reader.join(timeout=20)
        assert got and got[0].content, "the first chunk waited for more of its read"
        stream.close()


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server
