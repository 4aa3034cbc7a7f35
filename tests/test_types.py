"""Unit tests for ollama_stream.types (ToolCall, Message, Metrics) and
protocol.build_chat_request."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from ollama_stream.protocol import build_chat_request
from ollama_stream.types import Message, Metrics, ToolCall

# --------------------------------------------------------------------------------------------------
# ToolCall
# --------------------------------------------------------------------------------------------------


def test_tool_call_to_dict_full() -> None:
    call = ToolCall("get_weather", {"city": "Paris"}, id="call_1", index=0)
    assert call.to_dict() == {
        "id": "call_1",
        "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}},
    }


def test_tool_call_to_dict_minimal_leaves_none_out() -> None:
    call = ToolCall("get_time")
    assert call.to_dict() == {"function": {"name": "get_time", "arguments": {}}}


def test_tool_call_to_dict_id_without_index() -> None:
    assert ToolCall("f", {"a": 1}, id="x").to_dict() == {
        "id": "x", "function": {"name": "f", "arguments": {"a": 1}}}


def test_tool_call_to_dict_index_without_id() -> None:
    assert ToolCall("f", index=2).to_dict() == {"function": {"index": 2, "name": "f",
                                                             "arguments": {}}}


def test_tool_call_from_dict_ollama_wire() -> None:
    wire = {"function": {"index": 1, "name": "add", "arguments": {"a": 1, "b": [2, 3]}}}
    assert ToolCall.from_dict(wire) == ToolCall("add", {"a": 1, "b": [2, 3]}, None, 1)


def test_tool_call_from_dict_openai_json_string_arguments() -> None:
    wire = {"id": "call_abc", "type": "function",
            "function": {"name": "add", "arguments": '{"a": 1, "b": "x"}'}}
    call = ToolCall.from_dict(wire)
    assert call == ToolCall("add", {"a": 1, "b": "x"}, id="call_abc")
    assert isinstance(call.arguments, dict)


def test_tool_call_from_dict_bytes_json_arguments() -> None:
    assert ToolCall.from_dict(
        {"function": {"name": "f", "arguments": b'{"k": true}'}}).arguments == {"k": True}


@pytest.mark.parametrize("function", [{"name": "f"}, {"name": "f", "arguments": None},
                                      {"name": "f", "arguments": ""}])
def test_tool_call_from_dict_missing_arguments(function: dict[str, Any]) -> None:
    call = ToolCall.from_dict({"function": function})
    assert call.arguments == {}
    assert call == ToolCall("f")


def test_tool_call_from_dict_invalid_json_string() -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        ToolCall.from_dict({"function": {"name": "f", "arguments": "{not json"}})


@pytest.mark.parametrize("data", [{}, {"function": None}, {"function": "f"},
                                  {"name": "f", "arguments": {}}])
def test_tool_call_from_dict_missing_function(data: dict[str, Any]) -> None:
    with pytest.raises(TypeError, match="function"):
        ToolCall.from_dict(data)


def test_tool_call_from_dict_not_a_mapping() -> None:
    with pytest.raises(TypeError):
        ToolCall.from_dict(["function"])  # type: ignore[arg-type]


@pytest.mark.parametrize("function", [{"name": ""}, {"arguments": {}}, {"name": None}])
def test_tool_call_from_dict_empty_name(function: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="name"):
        ToolCall.from_dict({"function": function})


def test_tool_call_constructor_validation() -> None:
    with pytest.raises(ValueError):
        ToolCall("")
    with pytest.raises(TypeError):
        ToolCall("f", "{}")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ToolCall("f", {}, id=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ToolCall("f", {}, index=True)


@pytest.mark.parametrize("call", [
    ToolCall("f"),
    ToolCall("f", {"a": {"b": [1, 2, None]}}),
    ToolCall("f", {"x": 1}, id="call_9"),
    ToolCall("f", {"x": 1}, index=3),
    ToolCall("search", {"q": "é"}, id="id", index=0),
])
def test_tool_call_round_trip(call: ToolCall) -> None:
    assert ToolCall.from_dict(call.to_dict()) == call


# --------------------------------------------------------------------------------------------------
# Message
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "sent"), [("bot", "bot"), ("users", "users"),
                                            ("function", "function"), ("Developer", "developer"),
                                            ("wizard", "wizard"), ("控制", "控制")])
def test_any_role_is_accepted_and_lowercased_as_the_server_does(role: str, sent: str) -> None:
    # Ollama takes any role and lowercases it (api.Message.UnmarshalJSON); the template decides
    assert Message(role, "hi").to_dict() == {"role": sent, "content": "hi"}
    assert Message.from_dict({"role": role}).role == sent


@pytest.mark.parametrize("role", ["", None, 1, b"user", ["user"]])
def test_a_role_must_be_a_non_empty_str(role: object) -> None:
    with pytest.raises(ValueError) as info:
        Message(role)  # type: ignore[arg-type]
    assert repr(role) in str(info.value) and "non-empty str" in str(info.value)


@pytest.mark.parametrize(("role", "expected"), [("USER", "user"), ("Assistant", "assistant"),
                                                ("sYsTeM", "system"), ("TOOL", "tool"),
                                                ("user", "user")])
def test_message_role_lowercased(role: str, expected: str) -> None:
    m = Message(role, "hi")
    assert m.role == expected
    assert m.to_dict()["role"] == expected


def test_message_none_content_and_thinking_become_empty() -> None:
    m = Message("assistant", None, None)  # type: ignore[arg-type]
    assert m.content == ""
    assert m.thinking == ""
    assert m.to_dict() == {"role": "assistant"}


@pytest.mark.parametrize("kwargs", [{"content": 5}, {"content": b"hi"}, {"thinking": 1.0},
                                    {"thinking": ["x"]}, {"tool_name": 3}, {"tool_call_id": 3}])
def test_message_non_str_fields(kwargs: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        Message("user", **kwargs)


def test_message_lists_become_tuples() -> None:
    m = Message("assistant", images=["aGk=", "aGk="], tool_calls=[ToolCall("f")])
    assert m.images == ("aGk=", "aGk=")
    assert type(m.images) is tuple
    assert m.tool_calls == (ToolCall("f"),)
    assert type(m.tool_calls) is tuple


def test_message_tool_call_dicts_become_tool_calls() -> None:
    m = Message("assistant", tool_calls=[
        {"function": {"name": "f", "arguments": {"a": 1}}},
        {"id": "c2", "function": {"name": "g", "arguments": '{"b": 2}'}}])
    assert m.tool_calls == (ToolCall("f", {"a": 1}), ToolCall("g", {"b": 2}, id="c2"))
    assert all(isinstance(call, ToolCall) for call in m.tool_calls)


def test_message_bytes_images_become_base64() -> None:
    raw = b"\x89PNG\r\n\x1a\n\x00\xff"
    m = Message("user", "look", images=[raw, bytearray(b"abc"), "ZGVm"])
    assert m.images == (base64.b64encode(raw).decode("ascii"), "YWJj", "ZGVm")
    assert all(isinstance(image, str) for image in m.images)


def test_message_bytes_images_in_tuple_become_base64() -> None:
    assert Message("user", images=(b"abc",)).images == ("YWJj",)


def test_message_tool_call_dicts_in_tuple_become_tool_calls() -> None:
    m = Message("assistant", tool_calls=({"function": {"name": "f"}},))
    assert m.tool_calls == (ToolCall("f"),)


@pytest.mark.parametrize("kwargs", [{"images": "abc"}, {"images": b"abc"}, {"images": [1]},
                                    {"tool_calls": {}}, {"tool_calls": "f"}, {"tool_calls": [5]}])
def test_message_bad_sequences(kwargs: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        Message("user", **kwargs)


def test_message_to_dict_plain_user() -> None:
    assert Message("user", "Hello").to_dict() == {"role": "user", "content": "Hello"}


def test_message_to_dict_assistant_with_thinking_and_tool_calls() -> None:
    m = Message("assistant", "", "Let me check.",
                tool_calls=[ToolCall("get_weather", {"city": "Oslo"}, index=0)])
    assert m.to_dict() == {
        "role": "assistant",
        "thinking": "Let me check.",
        "tool_calls": [{"function": {"index": 0, "name": "get_weather",
                                     "arguments": {"city": "Oslo"}}}],
    }


def test_message_to_dict_tool_result() -> None:
    m = Message("tool", "12 degrees", tool_name="get_weather", tool_call_id="call_1")
    assert m.to_dict() == {"role": "tool", "content": "12 degrees", "tool_name": "get_weather",
                           "tool_call_id": "call_1"}


def test_message_to_dict_images_is_list() -> None:
    assert Message("user", "x", images=["aGk="]).to_dict() == {"role": "user", "content": "x",
                                                               "images": ["aGk="]}


def test_message_from_dict_ignores_keys_that_are_not_message_fields() -> None:
    stored = {"role": "user", "content": "hi", "name": "bob", "timestamp": 1767225600,
              "id": "msg_1", "tool_calls": None}
    assert Message.from_dict(stored) == Message("user", "hi")


def test_message_from_dict_missing_role() -> None:
    with pytest.raises(ValueError, match=r"role.*'content'"):
        Message.from_dict({"content": "hi"})


@pytest.mark.parametrize("data", ["user", ["user", "hi"], None, ("role", "user")])
def test_message_from_dict_not_a_dict(data: object) -> None:
    with pytest.raises(TypeError):
        Message.from_dict(data)  # type: ignore[arg-type]


def test_message_from_dict_validates_fields() -> None:
    with pytest.raises(ValueError):
        Message.from_dict({"role": ""})
    with pytest.raises(TypeError):
        Message.from_dict({"role": "user", "content": 1})
    with pytest.raises(TypeError):
        Message.from_dict({"role": "user", "images": "abc"})


def test_message_from_dict_nulls() -> None:
    m = Message.from_dict({"role": "assistant", "content": None, "thinking": None, "images": None,
                           "tool_calls": None, "tool_name": None, "tool_call_id": None})
    assert m == Message("assistant")


def test_message_from_dict_wire_form() -> None:
    m = Message.from_dict({"role": "assistant", "content": "", "thinking": "hmm",
                           "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]})
    assert m == Message("assistant", "", "hmm", (), (ToolCall("f", {"x": 1}),))


@pytest.mark.parametrize("message", [
    Message("user", "Hello"),
    Message("system", "Be brief."),
    Message("user", "see", images=["aGk=", "Ynll"]),
    Message("assistant", "answer", "thought",
            tool_calls=[ToolCall("f", {"a": [1]}, id="c", index=0), ToolCall("g")]),
    Message("tool", "42", tool_name="f", tool_call_id="c"),
    Message("assistant"),
])
def test_message_round_trip(message: Message) -> None:
    assert Message.from_dict(message.to_dict()) == message


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------


def test_metrics_tokens_per_second() -> None:
    m = Metrics(eval_count=100, eval_duration=2_000_000_000, prompt_eval_count=50,
                prompt_eval_duration=250_000_000)
    assert m.tokens_per_second == pytest.approx(50.0)
    assert m.prompt_tokens_per_second == pytest.approx(200.0)


def test_metrics_rate_formula() -> None:
    m = Metrics(eval_count=37, eval_duration=123_456_789, prompt_eval_count=11,
                prompt_eval_duration=987_654)
    assert m.tokens_per_second == pytest.approx(37 / 123_456_789 * 1e9)
    assert m.prompt_tokens_per_second == pytest.approx(11 / 987_654 * 1e9)


def test_metrics_zero_count_gives_zero_rate() -> None:
    m = Metrics(eval_count=0, eval_duration=1_000, prompt_eval_count=0, prompt_eval_duration=1_000)
    assert m.tokens_per_second == 0.0
    assert m.prompt_tokens_per_second == 0.0


@pytest.mark.parametrize(("count", "duration"), [(None, 1_000), (10, None), (None, None), (10, 0)])
def test_metrics_rate_missing(count: int | None, duration: int | None) -> None:
    m = Metrics(eval_count=count, eval_duration=duration, prompt_eval_count=count,
                prompt_eval_duration=duration)
    assert m.tokens_per_second is None
    assert m.prompt_tokens_per_second is None


def test_metrics_rates_are_independent() -> None:
    m = Metrics(eval_count=10, eval_duration=1_000_000_000)
    assert m.tokens_per_second == pytest.approx(10.0)
    assert m.prompt_tokens_per_second is None
    m = Metrics(prompt_eval_count=10, prompt_eval_duration=1_000_000_000)
    assert m.tokens_per_second is None
    assert m.prompt_tokens_per_second == pytest.approx(10.0)


# --------------------------------------------------------------------------------------------------
# build_chat_request
# --------------------------------------------------------------------------------------------------

USER = [{"role": "user", "content": "hi"}]
WIRE_USER = [{"role": "user", "content": "hi"}]


def test_build_minimal_body() -> None:
    assert build_chat_request("qwen3", USER) == {"model": "qwen3", "messages": WIRE_USER,
                                                 "stream": True}


def test_build_stream_false() -> None:
    assert build_chat_request("qwen3", USER, stream=False) == {
        "model": "qwen3", "messages": WIRE_USER, "stream": False}


def test_build_empty_messages_allowed() -> None:
    assert build_chat_request("m", []) == {"model": "m", "messages": [], "stream": True}


TOOL_SCHEMA = {"type": "function",
               "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}


@pytest.mark.parametrize(("kwargs", "key", "value"), [
    ({"think": True}, "think", True),
    ({"think": False}, "think", False),
    ({"think": "high"}, "think", "high"),
    ({"tools": [TOOL_SCHEMA]}, "tools", [TOOL_SCHEMA]),
    ({"tools": []}, "tools", []),
    ({"format": "json"}, "format", "json"),
    ({"format": {"type": "object"}}, "format", {"type": "object"}),
    ({"options": {"temperature": 0}}, "options", {"temperature": 0}),
    ({"options": {}}, "options", {}),
    ({"keep_alive": "5m"}, "keep_alive", "5m"),
    ({"keep_alive": 0}, "keep_alive", 0),
    ({"keep_alive": -1}, "keep_alive", -1),
    ({"keep_alive": 1.5}, "keep_alive", 1.5),
    ({"logprobs": True}, "logprobs", True),
    ({"logprobs": False}, "logprobs", False),
    ({"top_logprobs": 0}, "top_logprobs", 0),
    ({"top_logprobs": 5}, "top_logprobs", 5),
    ({"top_logprobs": 20}, "top_logprobs", 20),
])
def test_build_each_argument_appears_when_set(kwargs: dict[str, Any], key: str, value: Any) -> None:
    body = build_chat_request("m", USER, **kwargs)
    assert body == {"model": "m", "messages": WIRE_USER, "stream": True, key: value}


def test_build_tools_tuple_becomes_list() -> None:
    assert build_chat_request("m", USER, tools=(TOOL_SCHEMA,))["tools"] == [TOOL_SCHEMA]


def test_build_all_arguments() -> None:
    body = build_chat_request("m", USER, think="low", tools=[TOOL_SCHEMA], format="json",
                              options={"seed": 1}, keep_alive="10m", logprobs=True, top_logprobs=3,
                              stream=False)
    assert body == {"model": "m", "messages": WIRE_USER, "stream": False, "think": "low",
                    "tools": [TOOL_SCHEMA], "format": "json", "options": {"seed": 1},
                    "keep_alive": "10m", "logprobs": True, "top_logprobs": 3}


def test_build_dicts_and_messages_same_wire_form() -> None:
    dicts = [
        {"role": "system", "content": "Be brief."},
        {"role": "USER", "content": "see", "images": [b"abc"]},
        {"role": "assistant", "content": "", "thinking": "t",
         "tool_calls": [{"function": {"name": "f", "arguments": '{"a": 1}'}}]},
        {"role": "tool", "content": "1", "tool_name": "f"},
    ]
    objects = [
        Message("system", "Be brief."),
        Message("user", "see", images=["YWJj"]),
        Message("assistant", "", "t", tool_calls=[ToolCall("f", {"a": 1})]),
        Message("tool", "1", tool_name="f"),
    ]
    from_dicts = build_chat_request("m", dicts)["messages"]
    from_objects = build_chat_request("m", objects)["messages"]
    assert from_dicts == from_objects
    assert from_dicts == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "see", "images": ["YWJj"]},
        {"role": "assistant", "thinking": "t",
         "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
        {"role": "tool", "content": "1", "tool_name": "f"},
    ]


def test_build_mixed_dicts_and_messages() -> None:
    body = build_chat_request("m", [Message("user", "a"), {"role": "assistant", "content": "b"}])
    assert body["messages"] == [{"role": "user", "content": "a"},
                                {"role": "assistant", "content": "b"}]


@pytest.mark.parametrize("model", ["", "   "])
def test_build_empty_model(model: str) -> None:
    with pytest.raises(ValueError, match="model"):
        build_chat_request(model, USER)


@pytest.mark.parametrize("model", [None, 1, b"qwen3"])
def test_build_non_str_model(model: object) -> None:
    with pytest.raises(TypeError, match="model"):
        build_chat_request(model, USER)  # type: ignore[arg-type]


def test_build_empty_role_second_message() -> None:
    with pytest.raises(ValueError) as info:
        build_chat_request("m", [{"role": "user", "content": "a"}, {"role": "", "content": "b"}])
    assert str(info.value).startswith("messages[1]:")
    assert "role" in str(info.value)


def test_build_sends_any_role_and_never_unknown_keys() -> None:
    body = build_chat_request("m", [{"role": "Developer", "content": "a", "timestamp": "t"},
                                    {"role": "user", "content": "b", "id": 7, "meta": {"x": 1}}])
    assert body["messages"] == [{"role": "developer", "content": "a"},
                                {"role": "user", "content": "b"}]


def test_build_message_errors_are_indexed() -> None:
    with pytest.raises(TypeError, match=r"^messages\[0\]:"):
        build_chat_request("m", [{"role": "user", "content": 5}])
    with pytest.raises(ValueError, match=r"^messages\[2\]:.*role"):
        build_chat_request("m", [*USER, *USER, {"content": "no role", "extra": 1}])
    with pytest.raises(TypeError, match=r"^messages\[1\]:"):
        build_chat_request("m", [*USER, "hello"])


def test_build_revalidates_mutated_message() -> None:
    m = Message("user", "hi")
    m.role = ""
    with pytest.raises(ValueError, match=r"^messages\[0\]:"):
        build_chat_request("m", [m])


@pytest.mark.parametrize("think", [True, False, "low", "medium", "high", "max"])
def test_build_think_accepted(think: bool | str) -> None:
    assert build_chat_request("m", USER, think=think)["think"] == think


@pytest.mark.parametrize("think", ["extreme", "HIGH", "", "true", 1, 0, [True]])
def test_build_think_rejected(think: object) -> None:
    with pytest.raises(ValueError, match="think"):
        build_chat_request("m", USER, think=think)


@pytest.mark.parametrize("top_logprobs", [21, -1, 100])
def test_build_top_logprobs_out_of_range(top_logprobs: int) -> None:
    with pytest.raises(ValueError, match="top_logprobs"):
        build_chat_request("m", USER, top_logprobs=top_logprobs)


@pytest.mark.parametrize("top_logprobs", [True, False, 1.0, "5"])
def test_build_top_logprobs_wrong_type(top_logprobs: object) -> None:
    with pytest.raises(TypeError, match="top_logprobs"):
        build_chat_request("m", USER, top_logprobs=top_logprobs)


@pytest.mark.parametrize("logprobs", ["yes", 1, 0])
def test_build_logprobs_wrong_type(logprobs: object) -> None:
    with pytest.raises(TypeError, match="logprobs"):
        build_chat_request("m", USER, logprobs=logprobs)


@pytest.mark.parametrize("fmt", ["xml", "JSON", "", ["json"], 1])
def test_build_format_rejected(fmt: object) -> None:
    with pytest.raises(ValueError, match="format"):
        build_chat_request("m", USER, format=fmt)


@pytest.mark.parametrize("options", [[1], "temperature=0", 0])
def test_build_options_wrong_type(options: object) -> None:
    with pytest.raises(TypeError, match="options"):
        build_chat_request("m", USER, options=options)


@pytest.mark.parametrize("keep_alive", [True, False, [], {}])
def test_build_keep_alive_wrong_type(keep_alive: object) -> None:
    with pytest.raises(TypeError, match="keep_alive"):
        build_chat_request("m", USER, keep_alive=keep_alive)


@pytest.mark.parametrize("messages", ["hello", {"role": "user", "content": "hi"}, b"hi", None, 5])
def test_build_messages_wrong_type(messages: object) -> None:
    with pytest.raises(TypeError, match="messages"):
        build_chat_request("m", messages)


@pytest.mark.parametrize("tools", ["f", TOOL_SCHEMA, 5])
def test_build_tools_not_a_list(tools: object) -> None:
    with pytest.raises(TypeError, match="tools"):
        build_chat_request("m", USER, tools=tools)


@pytest.mark.parametrize("tools", [[TOOL_SCHEMA, "f"], [None]])
def test_build_tools_items_must_be_dicts(tools: list[Any]) -> None:
    with pytest.raises(TypeError, match=r"tools\[\d\]"):
        build_chat_request("m", USER, tools=tools)


def test_build_model_checked_before_messages() -> None:
    with pytest.raises(TypeError, match="model"):
        build_chat_request(None, "not a list")  # type: ignore[arg-type]
