"""FakeOllama's default reply to a request with `format`: a valid instance of the schema, generated
from it, streamed token by token (chat and generate); "json" gets a JSON object; a queued reply
still wins."""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import jsonschema
import pytest

from ollama_stream import AsyncOllama
from ollama_stream.testing import FakeOllama
from ollama_stream.testing._instances import instance_of

HAS_PYDANTIC = importlib.util.find_spec("pydantic") is not None
TREE = {"$defs": {"Node": {"type": "object", "properties": {
    "label": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
    "required": ["label", "children"]}}, "$ref": "#/$defs/Node"}

SCHEMAS: list[Any] = [
    {"type": "string"},
    {"type": "integer", "minimum": 10, "maximum": 12},
    {"type": "number", "exclusiveMinimum": 5, "multipleOf": 0.5},
    {"type": ["null", "boolean"]},
    {"enum": ["red", "green"]},
    {"const": {"fixed": True}},
    {"type": "object"},
    {"type": "object", "additionalProperties": {"type": "integer"}},
    {"type": "array", "items": {"type": "integer"}, "uniqueItems": True, "minItems": 3},
    {"type": "array", "items": {"enum": ["only"]}, "uniqueItems": True},
    {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False},
    {"type": "array", "maxItems": 0},
    {"type": "string", "minLength": 40, "maxLength": 45},
    {"type": "string", "format": "date-time"},
    {"anyOf": [{"type": "null"}, {"type": "object", "properties": {"x": {"type": "number"}},
                                  "required": ["x"]}]},
    {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
               {"properties": {"b": {"type": "integer"}}, "required": ["b"]}]},
    {"oneOf": [{"type": "integer"}, {"type": "string"}]},
    TREE,
    {"type": "object", "properties": {"when": {"type": "string", "format": "date"},
                                      "id": {"type": "string", "format": "uuid"},
                                      "mail": {"type": "string", "format": "email"}},
     "required": ["when", "id", "mail"], "additionalProperties": False},
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: json.dumps(s)[:40])
def test_the_instance_is_valid(schema: dict[str, Any]) -> None:
    value = instance_of(schema)
    jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())
    assert instance_of(schema) == value  # deterministic


def test_a_recursive_schema_stops() -> None:
    tree = instance_of(TREE)
    depth = 0
    while tree["children"]:
        tree, depth = tree["children"][0], depth + 1
    assert 2 < depth < 10


@pytest.mark.skipif(not HAS_PYDANTIC, reason="pydantic is not installed")
def test_pydantic_schemas_with_defs_refs_and_formats() -> None:
    import datetime
    import enum
    import uuid

    import pydantic

    class Kind(enum.Enum):
        CAT = "cat"
        DOG = "dog"

    class Pet(pydantic.BaseModel):
        name: str = pydantic.Field(min_length=2)
        kind: Kind
        born: datetime.date
        chip: uuid.UUID | None = None

    class Owner(pydantic.BaseModel):
        name: str
        age: int = pydantic.Field(ge=18, le=120)
        pets: list[Pet]
        seen: datetime.datetime
        tags: set[str]

    value = instance_of(Owner.model_json_schema())
    owner = Owner.model_validate(value)
    assert owner.age >= 18 and len(owner.pets) == 2 and owner.pets[0].kind is Kind.CAT


async def test_the_default_reply_streams_the_instance_token_by_token() -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"},
                                               "pages": {"type": "integer"}},
              "required": ["title", "pages"]}
    async with FakeOllama() as fake, AsyncOllama(fake.url) as client:
        stream = client.chat("qwen3", [{"role": "user", "content": "A book?"}], format=schema,
                             think=True)
        pieces = [chunk.content async for chunk in stream if chunk.content]
        result = await stream.result()
        assert len(pieces) >= 4 and result.message.thinking  # thinking as usual, then the JSON
        book = json.loads("".join(pieces))
        assert book == {"title": "title", "pages": 1}
        jsonschema.validate(book, schema)
        generated = [chunk.response async for chunk in
                     client.generate("qwen3", "A book?", format=schema) if chunk.response]
        assert len(generated) >= 4 and json.loads("".join(generated)) == book
        said = await client.generate("qwen3", "A book?", format="json").result()
        assert json.loads(said.response) == {"answer": "You said: A book?"}
        fake.queue_reply(content="not JSON at all")  # queued replies still win
        raw = await client.generate("qwen3", "A book?", format=schema).result()
        assert raw.response == "not JSON at all"
