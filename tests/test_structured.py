"""Structured output end to end against FakeOllama: `format=` a type (dataclass, TypedDict, Enum,
nested, list, Literal, pydantic) or "json" or a schema dict, sent as its schema; `.parsed`,
`await stream.parsed()` and the blocking twins; StructuredOutputError; `repair=N`; bad formats
refused before any I/O."""

from __future__ import annotations

import dataclasses
import enum
import importlib.util
from typing import Any, Literal, TypedDict

import jsonschema
import pytest

from ollama_stream import (
    AsyncOllama,
    ChatResult,
    GenerateResult,
    Ollama,
    OllamaError,
    StructuredOutputError,
)
from ollama_stream.testing import FakeOllama

HAS_PYDANTIC = importlib.util.find_spec("pydantic") is not None
USER = [{"role": "user", "content": "Tell me about Ada."}]


class Mood(enum.Enum):
    HAPPY = "happy"
    SAD = "sad"


@dataclasses.dataclass
class Address:
    city: str
    country: str = "UK"


@dataclasses.dataclass
class Person:
    """A person.

    Args:
        name: Their full name.
    """

    name: str
    age: int
    mood: Mood
    address: Address
    languages: list[str]


class Book(TypedDict):
    title: str
    year: int
    mood: Mood


ADA = {"name": "Ada", "age": 36, "mood": "happy", "address": {"city": "London"},
       "languages": ["en", "fr"]}
ADA_PERSON = Person("Ada", 36, Mood.HAPPY, Address("London"), ["en", "fr"])

# format -> (content the model writes, what .parsed is)
ROUND_TRIPS: list[Any] = [
    pytest.param(Person, ADA, ADA_PERSON, id="dataclass-nested"),
    pytest.param(Book, {"title": "Notes", "year": 1843, "mood": "sad"},
                 {"title": "Notes", "year": 1843, "mood": Mood.SAD}, id="typeddict"),
    pytest.param(Mood, "sad", Mood.SAD, id="enum"),
    pytest.param(list[Address], [{"city": "Paris", "country": "FR"}, {"city": "Leeds"}],
                 [Address("Paris", "FR"), Address("Leeds")], id="list-of-dataclasses"),
    pytest.param(dict[str, int], {"a": 1, "b": 2.0}, {"a": 1, "b": 2}, id="dict"),
    pytest.param(Literal["yes", "no"], "no", "no", id="literal"),
    pytest.param(float, 3, 3.0, id="float"),
    pytest.param("json", {"any": ["thing", 1]}, {"any": ["thing", 1]}, id="json"),
    pytest.param({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
                 {"n": 1}, {"n": 1}, id="schema-dict"),
]


def dumps(value: Any) -> str:
    import json

    return json.dumps(value)


@pytest.mark.parametrize(("format", "content", "expected"), ROUND_TRIPS)
async def test_round_trip(fake: FakeOllama, client: AsyncOllama, format: Any, content: Any,
                          expected: Any) -> None:
    fake.queue_reply(content=dumps(content), thinking="Let me see.")
    result = await client.chat("qwen3", USER, format=format, think=True).result()
    assert isinstance(result, ChatResult) and result.repairs == 0
    assert result.parsed == expected and type(result.parsed) is type(expected)
    assert result.parsed is result.parsed  # kept once computed
    assert result.message.thinking == "Let me see."  # thinking stays apart: only content parses
    sent = fake.requests[-1]["format"]
    if isinstance(format, (str, dict)):
        assert sent == format  # "json" and schema dicts are sent unchanged
    else:
        jsonschema.Draft202012Validator.check_schema(sent)
        jsonschema.validate(content, sent)
    fake.queue_reply(content=dumps(content))
    assert await client.generate("qwen3", "Ada?", format=format).parsed() == expected


async def test_the_schema_sent_is_the_tool_schema_generators(fake: FakeOllama,
                                                             client: AsyncOllama) -> None:
    from ollama_stream.schema import schema_for_annotation

    await client.chat("qwen3", USER, format=Person).result()
    sent = fake.requests[-1]["format"]
    assert sent == schema_for_annotation(Person, "Person")
    assert sent["properties"]["name"]["description"] == "Their full name."
    assert sent["properties"]["mood"] == {"type": "string", "enum": ["happy", "sad"]}


@pytest.mark.skipif(not HAS_PYDANTIC, reason="pydantic is not installed")
async def test_pydantic_round_trip_and_its_own_validation(fake: FakeOllama,
                                                          client: AsyncOllama) -> None:
    import datetime

    import pydantic

    class Pet(pydantic.BaseModel):
        name: str
        born: datetime.date

    class Owner(pydantic.BaseModel):
        name: str
        pets: list[Pet]

    await client.chat("qwen3", USER, format=Owner).result()
    assert fake.requests[-1]["format"] == Owner.model_json_schema()  # $defs and $refs as they are
    fake.queue_reply(content='{"name": "Ada", "pets": [{"name": "Tom", "born": "2020-02-03"}]}')
    owner = await client.chat("qwen3", USER, format=Owner).parsed()
    assert owner == Owner(name="Ada", pets=[Pet(name="Tom", born=datetime.date(2020, 2, 3))])
    fake.queue_reply(content='{"name": "Ada", "pets": [{"name": "Tom", "born": "soon"}]}')
    with pytest.raises(StructuredOutputError) as caught:
        await client.chat("qwen3", USER, format=Owner).parsed()
    [(path, message)] = caught.value.errors
    assert path == "$.pets[0].born" and "date" in message and "got 'soon'" in message
    with pytest.raises(TypeError, match=r"format=Owner\(\.\.\.\) is a pydantic model instance"):
        client.chat("qwen3", USER, format=owner)
    # partial values are dicts (a model cannot hold missing required fields), the last a model
    values = [value async for value in client.chat("qwen3", USER, format=Owner).objects()]
    assert all(type(value) is dict for value in values[:-1]) and isinstance(values[-1], Owner)


def test_types_are_named_as_they_are_written() -> None:
    from typing import Annotated, Optional

    from ollama_stream.structured import type_name

    assert type_name(Person) == "Person"
    assert type_name(list[Address] | None) == "list[Address] | None"
    assert type_name(Optional[int]) == "int | None"  # noqa: UP045 - the old spelling, on purpose
    assert type_name(dict[str, list[int]]) == "dict[str, list[int]]"
    assert type_name(tuple[int, ...]) == "tuple[int, ...]"
    assert type_name(Annotated[Mood, "how"]) == "Mood"
    assert type_name(Literal[1, "a"]) == "Literal[1, 'a']"


# -- what does not fit -----------------------------------------------------------------------------

@pytest.mark.parametrize(("content", "path", "problem"), [
    ("Ada is 36.", "$", "is not JSON (unexpected character"),
    ('{"name": "Ada", "age": "old", "mood": "happy", "address": {}, "languages": []}', "$.age",
     "should be integer, got str 'old'"),
    ('{"name": "Ada", "age": 1, "mood": "calm", "address": {"city": "x"}, "languages": []}',
     "$.mood", "must be one of ['happy', 'sad'], got 'calm'"),
    ('{"name": "Ada"}', "$", "is missing the required 'age'"),
    ("  ", "$", "is empty: the reply has no content"),
])
async def test_invalid_output_raises_structured_output_error(
        fake: FakeOllama, client: AsyncOllama, content: str, path: str, problem: str) -> None:
    fake.queue_reply(content=content)
    result = await client.chat("qwen3", USER, format=Person).result()  # result() does not raise
    with pytest.raises(StructuredOutputError) as caught:
        _ = result.parsed
    error = caught.value
    assert isinstance(error, OllamaError) and error.result is result and error.content == content
    assert any(p == path and m.startswith(problem) for p, m in error.errors), error.errors
    assert str(error).startswith("the reply of 'qwen3' does not fit Person: ")
    assert error.partial == result.message
    assert len(fake.requests) == 1  # repair is off by default


async def test_not_json_names_the_known_server_bug(fake: FakeOllama, client: AsyncOllama) -> None:
    fake.queue_reply(content="Sure! Ada Lovelace was a mathematician.")
    with pytest.raises(StructuredOutputError, match=r"may have ignored `format`.*#14645"):
        await client.chat("qwen3", USER, format=Person, think=False).parsed()


async def test_a_reply_cut_at_the_length_limit_says_so(fake: FakeOllama,
                                                       client: AsyncOllama) -> None:
    fake.queue_reply(content='{"name": "Ada", "age": 3', done_reason="length")
    with pytest.raises(StructuredOutputError, match="num_predict") as caught:
        await client.chat("qwen3", USER, format=Person).parsed()
    assert caught.value.errors[0][1].startswith("was cut off at the length limit")


async def test_a_value_the_type_refuses_is_an_error_with_its_reason(fake: FakeOllama,
                                                                    client: AsyncOllama) -> None:
    @dataclasses.dataclass
    class Positive:
        n: int

        def __post_init__(self) -> None:
            if self.n <= 0:
                raise ValueError("n must be positive")

    fake.queue_reply(content='{"n": -1}')
    with pytest.raises(StructuredOutputError) as caught:
        await client.chat("qwen3", USER, format=Positive).parsed()
    assert caught.value.errors == [("$", "cannot be made a Positive: n must be positive")]


async def test_parsed_without_a_format_is_a_value_error(fake: FakeOllama,
                                                       client: AsyncOllama) -> None:
    result = await client.chat("qwen3", USER).result()
    with pytest.raises(ValueError, match="not asked for structured output"):
        _ = result.parsed
    with pytest.raises(ValueError, match="format="):
        await client.generate("qwen3", "hi").parsed()


class Plain:
    pass


@pytest.mark.parametrize(("format", "error", "match"), [
    ("xml", ValueError, "format must be 'json', a JSON Schema dict, or a type"),
    ("JSON", ValueError, "got 'JSON'"),
    (set[int], TypeError, r"format=set\[int\]: sets are not JSON; use list"),
    (Plain, TypeError, "format=Plain: unsupported annotation .*pydantic model class"),
    (1, TypeError, "format=1: unsupported annotation 1"),
    (dict[int, str], TypeError, r"format=dict\[int, str\]: object keys must be str"),
])
async def test_bad_formats_fail_before_any_io(fake: FakeOllama, client: AsyncOllama,
                                              format: Any, error: type[Exception],
                                              match: str) -> None:
    with pytest.raises(error, match=match):
        client.chat("qwen3", USER, format=format)
    with pytest.raises(error, match=match):
        client.generate("qwen3", "hi", format=format)
    assert fake.received == []


@pytest.mark.parametrize("repair", [-1, True, 1.5, "2"])
async def test_repair_must_be_a_count(fake: FakeOllama, client: AsyncOllama, repair: Any) -> None:
    with pytest.raises(ValueError, match="repair must be the number of re-asks"):
        client.chat("qwen3", USER, format=Person, repair=repair)
    with pytest.raises(ValueError, match="needs format="):
        client.chat("qwen3", USER, repair=2)
    assert fake.received == []


# -- repair -------------------------------------------------------------------------------------

async def test_repair_re_asks_with_the_answer_and_the_errors(fake: FakeOllama,
                                                             client: AsyncOllama) -> None:
    fake.queue_reply(content='{"name": "Ada", "age": "36"}', thinking="Quick.")
    fake.queue_reply(content=dumps(ADA))
    result = await client.chat("qwen3", USER, format=Person, repair=2, think=True).result()
    assert result.parsed == ADA_PERSON and result.repairs == 1
    assert len(fake.requests) == 2
    first, again = fake.requests
    assert again["format"] == first["format"] and again["think"] is True
    assert again["messages"][:-2] == USER
    assistant, user = again["messages"][-2:]
    assert assistant == {"role": "assistant", "content": '{"name": "Ada", "age": "36"}',
                         "thinking": "Quick."}
    assert user["role"] == "user" and user["content"].startswith(
        "Your reply did not fit the required JSON format:\n- $ is missing the required 'mood'")
    assert "- $.age should be integer, got str '36'" in user["content"]


async def test_repair_gives_up_after_n_re_asks(fake: FakeOllama, client: AsyncOllama) -> None:
    for _ in range(3):
        fake.queue_reply(content="not JSON")
    stream = client.chat("qwen3", USER, format=Person, repair=2)
    result = await stream.result()
    assert result.repairs == 2 and len(fake.requests) == 3
    # the history grows by two messages per re-ask
    assert len(fake.requests[-1]["messages"]) == len(USER) + 4
    with pytest.raises(StructuredOutputError, match="does not fit Person after 2 repairs"):
        _ = result.parsed
    with pytest.raises(StructuredOutputError):
        await stream.parsed()  # the same answer again: no further request
    assert len(fake.requests) == 3


async def test_a_reply_that_only_calls_tools_is_not_repaired(fake: FakeOllama,
                                                             client: AsyncOllama) -> None:
    fake.queue_reply(tool_calls=[{"name": "lookup", "arguments": {"who": "Ada"}}])
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    result = await client.chat("qwen3", USER, format=Person, repair=3, tools=tools).result()
    assert result.message.tool_calls and result.repairs == 0 and len(fake.requests) == 1


async def test_generate_repair_appends_the_answer_and_errors_to_the_prompt(
        fake: FakeOllama, client: AsyncOllama) -> None:
    fake.queue_reply(content='["x"]')
    fake.queue_reply(content='["Paris"]')
    stream = client.generate("qwen3", "Capitals?", system="Be brief.", format=list[int],
                             repair=1)
    with pytest.raises(StructuredOutputError) as caught:
        await stream.parsed()
    assert caught.value.errors == [("$[0]", "should be integer, got str 'Paris'")]
    result = caught.value.result
    assert isinstance(result, GenerateResult) and result.repairs == 1
    again = fake.requests[-1]
    assert again["system"] == "Be brief." and again["format"] == {"type": "array",
                                                                   "items": {"type": "integer"}}
    assert again["prompt"].startswith('Capitals?\n\nYour previous answer was:\n["x"]\n\n'
                                      "Your reply did not fit")


async def test_repair_on_a_backend_sends_the_next_request_to_it(fake: FakeOllama) -> None:
    from ollama_stream import NativeBackend

    fake.queue_reply(content="{}")
    fake.queue_reply(content='{"city": "Oslo"}')
    async with AsyncOllama(fake.url, backend=NativeBackend(fake.url)) as client:
        assert await client.chat("qwen3", USER, format=Address, repair=1).parsed() == \
            Address("Oslo")
    assert len(fake.requests) == 2


# -- the default reply of the fake -----------------------------------------------------------------

async def test_the_fakes_default_reply_fits_the_format(fake: FakeOllama,
                                                      client: AsyncOllama) -> None:
    stream = client.chat("qwen3", USER, format=Person)
    chunks = [chunk async for chunk in stream if chunk.content]
    assert len(chunks) > 5  # token by token
    person = (await stream.result()).parsed
    assert isinstance(person, Person) and isinstance(person.mood, Mood)
    assert await client.chat("qwen3", USER, format="json").parsed() == {
        "answer": "You said: Tell me about Ada."}
    fake.queue_reply(content="plain text")  # a queued reply still wins
    assert (await client.chat("qwen3", USER, format="json").result()).message.content == \
        "plain text"


# -- the blocking client ---------------------------------------------------------------------------

def test_the_blocking_twins() -> None:
    with FakeOllama() as fake, Ollama(fake.url) as client:
        fake.queue_reply(content="nope")
        fake.queue_reply(content=dumps(ADA))
        stream = client.chat("qwen3", USER, format=Person, repair=1)
        assert stream.parsed() == ADA_PERSON and stream.result().repairs == 1
        fake.queue_reply(content=dumps(ADA))
        values = list(client.chat("qwen3", USER, format=Person).objects())
        assert values[-1] == ADA_PERSON and values[-2] == ADA
        assert client.generate("qwen3", "Mood?", format=Mood).parsed() is Mood.HAPPY
        fake.queue_reply(content="nope")
        with pytest.raises(StructuredOutputError):
            _ = client.generate("qwen3", "Mood?", format=Mood).result().parsed


def test_pydantic_is_never_imported_unless_a_model_is_passed() -> None:
    import subprocess
    import sys

    code = """if True:
        import asyncio, dataclasses, sys
        from ollama_stream import AsyncOllama
        from ollama_stream.testing import FakeOllama

        @dataclasses.dataclass
        class Point:
            x: int

        async def main():
            hi = [{"role": "user", "content": "hi"}]
            async with FakeOllama() as fake, AsyncOllama(fake.url) as client:
                await client.chat("qwen3", hi, format=Point).parsed()
                async for _ in client.chat("qwen3", hi, format=Point).objects():
                    pass
        asyncio.run(main())
        print(sorted(m for m in sys.modules if m.split(".")[0] == "pydantic"))
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
