"""Running tool calls and the agent loop, end to end against FakeOllama; the mindX-style compat
drop-in."""

from __future__ import annotations

import asyncio
import enum
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ollama_stream import (
    AsyncOllama,
    ChatChunk,
    MaxRoundsError,
    Message,
    StreamError,
    Tool,
    ToolCall,
    ToolError,
    ToolResult,
)
from ollama_stream.compat import stream_chat
from ollama_stream.testing import FakeOllama
from ollama_stream.tools import run_tool_calls

USER = [{"role": "user", "content": "What's the weather in Tokyo and Paris?"}]


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


@dataclass
class Place:
    city: str
    country: str = ""


def get_weather(city: str, unit: Unit = Unit.C) -> dict[str, Any]:
    """Get the current weather in a city.

    Args:
        city: The city's name.
        unit: Celsius or Fahrenheit.
    """
    return {"city": city, "temp": 22 if unit is Unit.C else 72, "unit": unit.value}


async def get_time(place: Place) -> str:
    """The local time at a place."""
    await asyncio.sleep(0)
    return f"12:00 in {place.city}, {place.country or '?'}"


def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"kaboom: {reason}")


# -- running one round of calls --------------------------------------------------------------------

async def test_results_come_back_in_the_models_order_and_calls_run_concurrently() -> None:
    second_started = asyncio.Event()

    async def first(x: int) -> int:
        """Waits for the second call: only finishes if both run at once."""
        await asyncio.wait_for(second_started.wait(), 5)
        return x * 10

    async def second(x: int) -> int:
        """Starts, releases the first."""
        second_started.set()
        return x + 1

    results = await run_tool_calls([first, second],
                                   [ToolCall("first", {"x": 1}), ToolCall("second", {"x": 2})])
    assert [(r.name, r.result, r.content) for r in results] == [("first", 10, "10"),
                                                                ("second", 3, "3")]


async def test_sync_tools_run_in_threads_concurrently() -> None:
    other = threading.Event()

    def waiter() -> str:
        """Blocks its thread until the other sync tool has run."""
        assert other.wait(5), "the other tool never ran: calls were not concurrent"
        return "done"

    def setter() -> str:
        """Releases the waiter."""
        other.set()
        return "set"

    results = await run_tool_calls([waiter, setter], [ToolCall("waiter"), ToolCall("setter")])
    assert [r.content for r in results] == ["done", "set"] and all(r.ok for r in results)


async def test_arguments_are_converted_to_the_declared_types() -> None:
    results = await run_tool_calls([get_weather, get_time], [
        ToolCall("get_weather", {"city": "Tokyo", "unit": "fahrenheit"}),
        ToolCall("get_time", {"place": {"city": "Paris", "country": "FR"}}),
    ])
    assert results[0].result == {"city": "Tokyo", "temp": 72, "unit": "fahrenheit"}
    assert results[0].content == '{"city":"Tokyo","temp":72,"unit":"fahrenheit"}'
    assert results[1].content == "12:00 in Paris, FR"


@pytest.mark.parametrize("call,error", [
    (ToolCall("get_weather", {}),
     "invalid arguments for 'get_weather': arguments is missing the required 'city'"),
    (ToolCall("get_weather", {"city": 5}), "arguments.city should be string, got int 5"),
    (ToolCall("get_weather", {"city": "x", "unit": "kelvin"}),
     "arguments.unit must be one of ['celsius', "),
    (ToolCall("get_weather", {"city": "x", "wind": True}), "unexpected argument 'wind'"),
    (ToolCall("rm_rf", {"path": "/"}), "unknown tool 'rm_rf'; the tools are: explode, get_weather"),
    (ToolCall("explode", {"reason": "test"}), "RuntimeError: kaboom: test"),
])
async def test_failures_become_error_results(call: ToolCall, error: str) -> None:
    [result] = await run_tool_calls([get_weather, explode], [call])
    assert result.error is not None and error in result.error
    assert result.content == f"Error: {result.error}" and not result.ok and result.result is None


async def test_a_tool_that_hangs_times_out() -> None:
    async def hang() -> str:
        """Never returns."""
        await asyncio.Event().wait()
        return "never"

    [result] = await run_tool_calls([Tool.from_function(hang, timeout=0.1)], [ToolCall("hang")])
    assert result.error == "tool 'hang' did not finish within 0.1s"
    [result] = await run_tool_calls([hang], [ToolCall("hang")], timeout=0.05)
    assert result.error == "tool 'hang' did not finish within 0.05s"


async def test_return_values_are_serialised() -> None:
    @dataclass
    class Reading:
        value: float

    class Opaque:
        def __str__(self) -> str:
            return "opaque!"

    def text() -> str:
        """Text."""
        return "plain text, not JSON"

    def numbers() -> list[float]:
        """Numbers."""
        return [1, 2.5]

    def reading() -> Reading:
        """A dataclass."""
        return Reading(3.5)

    def unit() -> Unit:
        """An enum."""
        return Unit.F

    def opaque() -> Opaque:
        """Not JSON."""
        return Opaque()

    results = await run_tool_calls(
        [text, numbers, reading, unit, opaque],
        [ToolCall(n) for n in ("text", "numbers", "reading", "unit", "opaque")])
    assert [r.content for r in results] == ["plain text, not JSON", "[1,2.5]", '{"value":3.5}',
                                            '"fahrenheit"', '"opaque!"']


async def test_a_schema_only_tool_cannot_run_and_a_dict_schema_with_a_function_can() -> None:
    schema = {"type": "function", "function": {"name": "add", "parameters": {
        "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"]}}}
    [result] = await run_tool_calls([schema], [ToolCall("add", {"a": 1, "b": 2})])
    assert result.error == "tool 'add' has no Python function to run it"

    def add(a: int, b: int) -> int:
        return a + b

    [result] = await run_tool_calls([Tool.from_schema(schema, add)],
                                    [ToolCall("add", {"a": 1, "b": 2})])
    assert result.content == "3"
    [result] = await run_tool_calls([Tool.from_schema(schema, add)], [ToolCall("add", {"a": 1})])
    assert result.error is not None and "missing the required 'b'" in result.error


# -- the loop, end to end --------------------------------------------------------------------------

async def test_multi_round_agent_conversation(fake: FakeOllama, client: AsyncOllama) -> None:
    fake.queue_reply(thinking="Two cities: call both.", tool_calls=[
        ToolCall("get_weather", {"city": "Tokyo"}),
        ToolCall("get_weather", {"city": "Paris", "unit": "fahrenheit"})])
    fake.queue_reply(content="Let me check the time too.",
                     tool_calls=[ToolCall("get_time",
                                          {"place": {"city": "Tokyo", "country": "JP"}})],
                     tool_calls_on_done=True)
    fake.queue_reply(thinking="Done.", content="Tokyo 22C at noon, Paris 72F.")

    loop = client.chat_with_tools("qwen3", USER, tools=[get_weather, get_time], think=True,
                                  options={"temperature": 0})
    events = [event async for event in loop]
    kinds = ["chunk" if isinstance(e, ChatChunk) else "tool" for e in events]
    compact = re.sub(r"(chunk,)+chunk", "chunks", ",".join(kinds))
    assert compact == "chunks,tool,tool,chunks,tool,chunks"
    results = [e for e in events if isinstance(e, ToolResult)]
    assert [r.content for r in results] == ['{"city":"Tokyo","temp":22,"unit":"celsius"}',
                                            '{"city":"Paris","temp":72,"unit":"fahrenheit"}',
                                            "12:00 in Tokyo, JP"]
    assert all(r.duration >= 0 and r.call_id and r.call_id.startswith("call_") for r in results)

    assert loop.rounds == 3
    assert (loop.result is not None
            and loop.result.message.content == "Tokyo 22C at noon, Paris 72F.")
    history = loop.messages
    assert [m.role for m in history] == ["user", "assistant", "tool", "tool", "assistant", "tool",
                                         "assistant"]
    assert history[1].thinking == "Two cities: call both." and len(history[1].tool_calls) == 2
    assert [(m.tool_name, m.tool_call_id) for m in history if m.role == "tool"] == [
        (r.name, r.call_id) for r in results]
    assert (history[4].content == "Let me check the time too."
            and history[4].tool_calls[0].name == "get_time")

    assert len(fake.requests) == 3
    sent = fake.requests[2]
    assert sent["think"] is True and sent["options"] == {"temperature": 0}
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather", "get_time"]
    assert sent["messages"] == [m.to_dict() for m in history[:-1]]


async def test_a_failing_tool_is_reported_to_the_model_and_the_loop_goes_on(
        fake: FakeOllama, client: AsyncOllama) -> None:
    fake.queue_reply(tool_calls=[ToolCall("explode", {"reason": "disk full"}),
                                 ToolCall("unknown_tool", {})])
    fake.queue_reply(content="Sorry, that failed.")
    loop = client.chat_with_tools("qwen3", USER, tools=[explode])
    results = [e for e in [e async for e in loop] if isinstance(e, ToolResult)]
    assert [r.error for r in results] == ["RuntimeError: kaboom: disk full",
                                          "unknown tool 'unknown_tool'; the tools are: explode"]
    tool_messages = fake.requests[1]["messages"][2:]
    assert [m["content"] for m in tool_messages] == [
        "Error: RuntimeError: kaboom: disk full",
        "Error: unknown tool 'unknown_tool'; the tools are: explode"]
    assert loop.result is not None and loop.result.message.content == "Sorry, that failed."


async def test_on_error_raise(fake: FakeOllama, client: AsyncOllama) -> None:
    fake.queue_reply(tool_calls=[ToolCall("get_weather", {"city": "Oslo"}),
                                 ToolCall("explode", {"reason": "x"})])
    loop = client.chat_with_tools("qwen3", USER, tools=[get_weather, explode], on_error="raise")
    with pytest.raises(ToolError, match=r"tool call explode\(\{'reason': 'x'\}\) "
                                        r"failed: RuntimeError") as info:
        await loop.run()
    assert info.value.result.name == "explode"
    assert [m.role for m in info.value.messages] == ["user", "assistant", "tool"]
    assert len(fake.requests) == 1


async def test_max_rounds(fake: FakeOllama, client: AsyncOllama) -> None:
    for _ in range(3):
        fake.queue_reply(tool_calls=[ToolCall("get_weather", {"city": "Rome"})])
    loop = client.chat_with_tools("qwen3", USER, tools=[get_weather], max_rounds=2)
    with pytest.raises(MaxRoundsError, match=r"max_rounds=2 .*\(get_weather\)") as info:
        await loop.run()
    assert len(fake.requests) == 2 and loop.rounds == 2
    assert [m.role for m in info.value.messages] == ["user", "assistant", "tool", "assistant"]
    # the unanswered calls, not executed
    assert info.value.messages[-1].tool_calls[0].name == "get_weather"


async def test_tool_call_ids_are_left_out_when_the_server_sends_none(
        loop_errors: list[Any]) -> None:
    async with FakeOllama(tool_call_ids=False) as fake, AsyncOllama(fake.url) as client:
        fake.queue_reply(tool_calls=[ToolCall("get_weather", {"city": "Lima"})])
        loop = client.chat_with_tools("qwen3", USER, tools=[get_weather])
        await loop.run()
    tool_message = fake.requests[1]["messages"][2]
    assert tool_message == {"role": "tool", "content": '{"city":"Lima","temp":22,"unit":"celsius"}',
                            "tool_name": "get_weather"}


async def test_a_stream_error_mid_loop_propagates(fake: FakeOllama, client: AsyncOllama) -> None:
    fake.queue_reply(tool_calls=[ToolCall("get_weather", {"city": "Lima"})])
    fake.queue_reply(content="Half an ans", error="model runner has unexpectedly stopped")
    loop = client.chat_with_tools("qwen3", USER, tools=[get_weather])
    with pytest.raises(StreamError) as info:
        await loop.run()
    assert info.value.partial == Message("assistant", "Half an ans")
    assert [m.role for m in loop.messages] == ["user", "assistant", "tool"]


async def test_loop_arguments_are_checked_before_any_io(fake: FakeOllama,
                                                        client: AsyncOllama) -> None:
    with pytest.raises(ValueError, match="max_rounds"):
        client.chat_with_tools("qwen3", USER, tools=[get_weather], max_rounds=0)
    with pytest.raises(ValueError, match="on_error"):
        client.chat_with_tools("qwen3", USER, tools=[get_weather], on_error="ignore")
    with pytest.raises(ValueError, match="think"):
        client.chat_with_tools("qwen3", USER, tools=[get_weather], think="lots")
    with pytest.raises(ValueError, match="share the name"):
        client.chat_with_tools("qwen3", USER,
                               tools=[get_weather, Tool.from_function(explode, name="get_weather")])
    with pytest.raises(TypeError, match="parameter 'x' of tool 'bad'"):
        def bad(x: set[int]) -> None:
            """Sets are not JSON."""
        client.chat_with_tools("qwen3", USER, tools=[bad])
    assert fake.received == []


async def test_chat_accepts_functions_tools_and_dicts(fake: FakeOllama,
                                                      client: AsyncOllama) -> None:
    rich = {"type": "function", "function": {"name": "search", "parameters": {
        "type": "object", "$defs": {"q": {"type": "string"}},
        "properties": {"q": {"$ref": "#/$defs/q"},
                       "filters": {"anyOf": [{"type": "null"}, {"type": "object", "properties": {
                           "tags": {"type": "array", "items": {"enum": ["a", "b"]}}}}]}}}}}
    await client.chat("qwen3", USER, tools=[get_weather,
                                            Tool.from_function(explode, description="Boom."),
                                            rich]).result()
    sent = fake.requests[-1]["tools"]
    assert sent[0]["function"]["name"] == "get_weather"
    assert sent[0]["function"]["parameters"]["required"] == ["city"]
    assert sent[1]["function"]["description"] == "Boom."
    assert sent[2] == rich  # a ready-made schema goes out unchanged


# -- the mindX-style drop-in -----------------------------------------------------------------------

async def test_compat_stream_chat_yields_raw_dicts(fake: FakeOllama) -> None:
    fake.queue_reply(thinking="Hmm.", content="Hello!", tool_calls=[ToolCall("f", {"x": 1})])
    chunks = [chunk async for chunk in stream_chat(fake.url, "qwen3", USER, think=True,
                                                   options={"seed": 1})]
    assert all(isinstance(chunk, dict) for chunk in chunks)
    assert chunks[-1]["done"] is True and "eval_count" in chunks[-1]
    assert fake.requests[-1]["think"] is True and fake.requests[-1]["options"] == {"seed": 1}


async def test_compat_docstring_example_runs(fake: FakeOllama) -> None:
    doc = stream_chat.__doc__ or ""
    example = doc.split("::", 1)[1].split("\n\n", 2)[1]
    code = "\n".join(line[4:] for line in example.splitlines())
    code = code.replace('"http://localhost:11434"', "url")
    fake.queue_reply(thinking="Think.", content="Answer.", tool_calls=[ToolCall("f", {"x": 1})])
    messages: list[dict[str, Any]] = list(USER)
    namespace = {"stream_chat": stream_chat, "messages": messages, "url": fake.url}
    exec(compile("async def _example():\n" + "\n".join("    " + line for line in code.splitlines()),
                 "stream_chat.__doc__", "exec"), namespace)
    await namespace["_example"]()
    assert messages[-1]["thinking"] == "Think." and messages[-1]["content"] == "Answer."
    assert messages[-1]["tool_calls"][0]["function"] == {"index": 0, "name": "f",
                                                         "arguments": {"x": 1}}


async def test_compat_errors_are_typed(fake: FakeOllama) -> None:
    from ollama_stream import ModelNotFoundError

    with pytest.raises(ModelNotFoundError):
        async for _ in stream_chat(fake.url, "missing-model", USER):
            pass


# -- the docs page's example runs ------------------------------------------------------------------

def test_docs_tools_page_example_runs(capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    page = (Path(__file__).parent.parent / "docs" / "tools.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert blocks
    with FakeOllama() as fake:
        fake.queue_reply(thinking="Check both.",
                         tool_calls=[ToolCall("get_weather", {"city": "Tokyo"}),
                                     ToolCall("get_weather", {"city": "Paris"})])
        fake.queue_reply(content="Tokyo is sunny, Paris is rainy.")
        monkeypatch.setenv("OLLAMA_HOST", fake.url)
        namespace: dict[str, Any] = {"__name__": "docs_example"}
        exec(compile(blocks[0], "docs/tools.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "get_weather({'city': 'Tokyo'}) ->" in out and "Tokyo is sunny, Paris is rainy." in out


@dataclass
class Note:
    text: str
    author: str | None


async def test_optional_dataclass_field_without_default_may_be_left_out() -> None:
    def save(note: Note) -> str:
        """Save a note."""
        return f"{note.text} by {note.author}"

    [result] = await run_tool_calls([save], [ToolCall("save", {"note": {"text": "hi"}})])
    assert result.error is None and result.content == "hi by None"


async def test_explicit_null_for_an_optional_parameter_means_not_given() -> None:
    def greet(name: str, title: str | None = None, times: int = 1) -> str:
        """Greet someone."""
        return f"{title or ''}{name}" * times

    [ok, bad] = await run_tool_calls([greet], [
        ToolCall("greet", {"name": "Ada", "title": None, "times": None}),
        ToolCall("greet", {"name": None})])
    assert ok.error is None and ok.content == "Ada"
    # required: null is wrong
    assert bad.error is not None and "arguments.name should be string" in bad.error


def test_one_of_means_exactly_one() -> None:
    from ollama_stream.tools import validate_arguments

    schema = {"oneOf": [{"type": "number"}, {"type": "integer"}]}
    assert validate_arguments(schema, 1.5) == []
    assert validate_arguments(schema, 2) == [
        "arguments must match exactly one of the allowed shapes, matches 2"]
    assert validate_arguments(schema, "x") == [
        "arguments must match exactly one of the allowed shapes, matches 0"]
