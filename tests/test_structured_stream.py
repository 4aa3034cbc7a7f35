"""Partial objects while a structured reply streams: `PartialJSON` fed the content split at every
byte (each value it shows is a prefix of the final one), the linear bound on its parsing, the
parser chosen at run time and the ImportError without one, and `stream.objects()` end to end
(partials then the final object, repairs, leaving early)."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import importlib.util
import itertools
import json
import sys
import types
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ollama_stream import AsyncOllama, ChatChunk, ChatRequest, StructuredOutputError
from ollama_stream.structured import NOTHING, PartialJSON, partial_parser
from ollama_stream.testing import FakeOllama

USER = [{"role": "user", "content": "Describe Ada."}]
CONTENT = json.dumps({
    "name": "Ada Lovelace", "age": 36, "height": -1.65e0, "alive": False, "nick": None,
    "quote": 'She said "hi"\n\tthen \u00e9 \U0001F600', "tags": ["math", "poetry", ""],
    "address": {"city": "London", "geo": [51.5, -0.12]}, "empty": {}, "none": [],
}, ensure_ascii=False)[:-1] + ', "escaped": "caf\\u00e9 \\ud83d\\ude00"}'  # JSON escapes too
FINAL = json.loads(CONTENT)
HAS_JITER = importlib.util.find_spec("jiter") is not None
HAS_CORE = importlib.util.find_spec("pydantic_core") is not None
PARSERS = [pytest.param("jiter", marks=pytest.mark.skipif(not HAS_JITER, reason="no jiter")),
           pytest.param("pydantic_core",
                        marks=pytest.mark.skipif(not HAS_CORE, reason="no pydantic_core"))]


def is_prefix(partial: Any, final: Any) -> bool:
    """`partial` is what a prefix of `final`'s JSON can show: its keys and items a prefix of
    final's, strings cut short, every other value whole."""
    if isinstance(final, dict):
        return (isinstance(partial, dict) and list(partial) == list(final)[:len(partial)]
                and all(is_prefix(value, final[key]) for key, value in partial.items()))
    if isinstance(final, list):
        return (isinstance(partial, list) and len(partial) <= len(final)
                and all(is_prefix(p, f) for p, f in zip(partial, final, strict=False)))
    if isinstance(final, str):
        return isinstance(partial, str) and final.startswith(partial)
    return type(partial) is type(final) and partial == final


def shown(partial: PartialJSON, pieces: list[str]) -> list[Any]:
    values = []
    for piece in pieces:
        value = partial.feed(piece)
        if value is not NOTHING:
            values.append(value)
    return values


def parser_for(name: str) -> Any:
    real = sys.modules.get("jiter")
    if name == "pydantic_core":
        sys.modules["jiter"] = None  # type: ignore[assignment]
    try:
        return partial_parser()
    finally:
        if name == "pydantic_core":
            if real is None:
                del sys.modules["jiter"]
            else:
                sys.modules["jiter"] = real


def test_the_content_is_what_the_test_thinks() -> None:
    assert "\\ud83d\\ude00" in CONTENT and "😀" in CONTENT and '\\"hi\\"' in CONTENT
    assert FINAL["escaped"] == "café 😀"


@pytest.mark.parametrize("name", PARSERS)
def test_split_at_every_byte_each_value_shown_is_a_prefix_of_the_final(name: str) -> None:
    parse = parser_for(name)
    data = CONTENT.encode()
    # every split into two pieces at a character boundary (chunks are str: a character is whole)
    for cut in range(1, len(data)):
        try:
            head, tail = data[:cut].decode(), data[cut:].decode()
        except UnicodeDecodeError:
            continue
        values = shown(PartialJSON(parse), [head, tail])
        assert all(is_prefix(value, FINAL) for value in values), (cut, values)
        assert values[-1] == FINAL or tail[-1].isdigit()
    # one character at a time: every value a prefix of the next, the last one the whole value
    values = shown(PartialJSON(parse), list(CONTENT))
    assert values[-1] == FINAL
    for before, after in itertools.pairwise(values):
        assert is_prefix(before, after) and before != after, (before, after)
    assert {"name": "Ada"} in values  # strings grow
    assert not any(value.get("age") == 3 for value in values)  # a number is shown once whole


def test_blank_chunks_and_unfinished_numbers_are_not_parsed() -> None:
    calls: list[str] = []
    real = partial_parser()

    def parse(text: str) -> Any:
        calls.append(text)
        return real(text)

    partial = PartialJSON(parse)
    assert partial.feed('{"n": ') == {}
    assert partial.feed("12") is NOTHING and partial.feed("3") is NOTHING  # 123 may go on
    assert partial.feed(" ") is NOTHING  # blank: never parsed
    assert partial.feed(", ") == {"n": 123}
    assert partial.feed('"x": 1}') == {"n": 123, "x": 1}
    assert calls == ['{"n": ', '{"n": 123 , ', '{"n": 123 , "x": 1}']
    partial.reset()
    assert partial.feed("{}") == {}


def test_parsing_stays_linear_in_the_content() -> None:
    parsed = [0]

    def parse(text: str) -> Any:
        parsed[0] += len(text)
        return None

    for size in (20_000, 200_000):
        parsed[0] = 0
        partial = PartialJSON(parse)
        token = '"ab", '
        for _ in range(size // len(token)):
            partial.feed(token)
        # at most ~65 characters parsed per character of content, plus the first KiB's share
        assert parsed[0] <= 65 * size + 1024 * 1024 // len(token), (size, parsed[0])
        assert parsed[0] > 20 * size  # and not much less: the values keep coming


def test_jiter_is_preferred_and_pydantic_core_stands_in(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    def from_json(data: bytes, **options: Any) -> Any:
        seen.append((data, options))
        return ["a"]

    monkeypatch.setitem(sys.modules, "jiter", types.SimpleNamespace(from_json=from_json))
    assert partial_parser()('{"a": 1') == ["a"]
    assert seen == [(b'["a', {"partial_mode": "trailing-strings", "cache_mode": "keys"}),
                    (b'{"a": 1', {"partial_mode": "trailing-strings", "cache_mode": "keys"})]
    if HAS_CORE:  # without jiter, pydantic_core's parser (pydantic's users have it)
        monkeypatch.setitem(sys.modules, "jiter", None)
        assert partial_parser()('{"a": "b') == {"a": "b"}


def test_without_a_parser_objects_raises_import_error_with_the_command(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jiter", None)
    monkeypatch.setitem(sys.modules, "pydantic_core", None)
    with pytest.raises(ImportError, match=r"pip install 'ollama-stream\[structured\]'"):
        partial_parser()

    async def main() -> None:
        async with FakeOllama() as fake, AsyncOllama(fake.url) as client:
            stream = client.chat("qwen3", USER, format="json")
            with pytest.raises(ImportError, match="jiter"):
                stream.objects()  # at the call, before anything is sent
            assert fake.received == []
            await stream.aclose()

    asyncio.run(main())


# -- objects() end to end --------------------------------------------------------------------------

@dataclasses.dataclass
class Address:
    city: str
    geo: list[float]


class OneCharBackend:
    """A ChatBackend that streams each queued content one character per chunk."""

    def __init__(self, *contents: list[str]) -> None:
        self.contents = list(contents)
        self.requests: list[ChatRequest] = []

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        self.requests.append(request)
        for piece in self.contents.pop(0):
            yield ChatChunk("m", "t", piece, "", (), False, None, None, None, {})
        yield ChatChunk("m", "t", "", "", (), True, "stop", None, None, {})

    async def aclose(self) -> None:
        pass


async def test_objects_on_content_split_at_every_byte() -> None:
    content = '{"city": "Zürich", "geo": [47.37, 8.54]}'
    data = content.encode()
    cuts = [cut for cut in range(1, len(data)) if (data[:cut].decode("utf-8", "ignore")
                                                    .encode() == data[:cut])]
    backend = OneCharBackend(*([data[:c].decode(), data[c:].decode()] for c in cuts),
                             list(content))
    async with AsyncOllama(backend=backend) as client:
        for _ in range(len(cuts) + 1):
            values = [v async for v in client.chat("m", USER, format=Address).objects()]
            assert values[-1] == Address("Zürich", [47.37, 8.54])
            assert all(is_prefix(v, json.loads(content)) for v in values[:-1]), values
    assert backend.requests[0].body["format"]["required"] == ["city", "geo"]


async def test_objects_yields_partials_then_the_final_object(fake: FakeOllama,
                                                            client: AsyncOllama) -> None:
    fake.queue_reply(content='{"city": "New York City", "geo": [40.7, -74.0]}',
                     thinking="Thinking is not parsed.")
    stream = client.chat("qwen3", USER, format=Address, think=True)
    values = [value async for value in stream.objects()]
    assert values[0] == {} and {"city": "New York "} in values  # strings grow
    assert values[-2] == {"city": "New York City", "geo": [40.7, -74.0]}
    assert values[-1] == Address("New York City", [40.7, -74.0])
    result = await stream.result()  # after objects(): the same reply, nothing sent again
    assert result.parsed == values[-1] and result.message.thinking == "Thinking is not parsed."
    assert len(fake.requests) == 1


async def test_objects_starts_over_after_a_repair(fake: FakeOllama, client: AsyncOllama) -> None:
    fake.queue_reply(content='{"city": "Rome", "geo": "north"}')
    fake.queue_reply(content='{"city": "Rome", "geo": [41.9, 12.5]}')
    stream = client.chat("qwen3", USER, format=Address, repair=1)
    values = [value async for value in stream.objects()]
    assert {"city": "Rome", "geo": "north"} in values
    assert values[-1] == Address("Rome", [41.9, 12.5]) and values[-2] == {"city": "Rome",
                                                                          "geo": [41.9, 12.5]}
    assert (await stream.result()).repairs == 1 and len(fake.requests) == 2
    assert "$.geo should be array" in fake.requests[1]["messages"][-1]["content"]


async def test_objects_raises_when_the_reply_does_not_fit(fake: FakeOllama,
                                                         client: AsyncOllama) -> None:
    fake.queue_reply(content='{"city": 7}')
    seen = []
    with pytest.raises(StructuredOutputError, match=r"\$.city should be string"):
        async for value in client.chat("qwen3", USER, format=Address).objects():
            seen.append(value)
    assert seen[-1] == {"city": 7}


async def test_objects_needs_a_format(fake: FakeOllama, client: AsyncOllama) -> None:
    stream = client.chat("qwen3", USER)
    with pytest.raises(ValueError, match="objects\\(\\) needs a request made with format="):
        stream.objects()
    await stream.aclose()


async def test_leaving_objects_early_closes_the_response(fake: FakeOllama,
                                                        client: AsyncOllama) -> None:
    fake.queue_reply(content=json.dumps({"city": "x " * 300, "geo": []}), chunk_delay=0.01)
    async for _ in client.chat("qwen3", USER, format=Address).objects():
        break
    gc.collect()
    await fake.wait_disconnect()
    assert fake.disconnects == 1


async def test_objects_after_some_chunks_or_after_the_end(fake: FakeOllama,
                                                         client: AsyncOllama) -> None:
    fake.queue_reply(content='{"city": "Lima", "geo": [1.5, 2.5]}')
    stream = client.chat("qwen3", USER, format=Address)
    first = await stream.__anext__()  # the caller read a chunk itself first
    values = [value async for value in stream.objects()]
    assert first.content == '{"city": ' and values[:2] == [{}, {"city": "Lima"}]
    assert all(is_prefix(v, {"city": "Lima", "geo": [1.5, 2.5]}) for v in values[:-1])
    assert values[-1] == Address("Lima", [1.5, 2.5])
    assert [value async for value in stream.objects()] == [values[-1]]  # finished: the final one
