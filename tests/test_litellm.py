"""The LiteLLM mapping on LiteLLM's own objects: request arguments, split tool-call deltas, usage,
exceptions."""

from __future__ import annotations

import asyncio
import warnings
from types import SimpleNamespace
from typing import Any

import pytest

litellm = pytest.importorskip("litellm", reason='needs pip install "ollama-stream[litellm]"')

from ollama_stream import (  # noqa: E402 - after the skip
    ChatRequest,
    ModelNotFoundError,
    OllamaConnectionError,
    OllamaError,
    OllamaTimeoutError,
    ProtocolError,
    ResponseError,
    StreamInterrupted,
    ToolCall,
)
from ollama_stream.backends.litellm import (  # noqa: E402
    LiteLLMBackend,
    map_exception,
    openai_messages,
)
from ollama_stream.protocol import build_chat_request  # noqa: E402


def request(**kw: Any) -> ChatRequest:
    body = build_chat_request("qwen3", [{"role": "user", "content": "hi"}], **kw)
    return ChatRequest("qwen3", body)


# -- the request -----------------------------------------------------------------------------------

def test_kwargs_for_a_native_model() -> None:
    kwargs = LiteLLMBackend(api_base="http://h:1").completion_kwargs(
        request(think="max", format="json",
                options={"temperature": 0.2, "num_predict": 9, "num_ctx": 4096}, keep_alive=0))
    assert kwargs["model"] == "ollama_chat/qwen3" and kwargs["api_base"] == "http://h:1"
    assert kwargs["stream"] is True and kwargs["stream_options"] == {"include_usage": True}
    assert kwargs["num_retries"] == 0  # ours are the only retries
    assert (kwargs["reasoning_effort"] == "high"
            and kwargs["response_format"] == {"type": "json_object"})
    assert (kwargs["temperature"], kwargs["max_tokens"], kwargs["num_ctx"],
            kwargs["keep_alive"]) == (0.2, 9, 4096, 0)
    assert kwargs["messages"] == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("think,effort",
                         [(True, "medium"), (False, "none"), ("low", "low"), ("high", "high")])
def test_think_maps_to_reasoning_effort(think: Any, effort: str) -> None:
    assert LiteLLMBackend().completion_kwargs(request(think=think))["reasoning_effort"] == effort


def test_settings_a_provider_cannot_take_are_dropped_with_a_warning() -> None:
    backend = LiteLLMBackend(model="cohere/command-r")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kwargs = backend.completion_kwargs(request(keep_alive="5m", options={"mirostat": 1},
                                                   think=True))
    texts = [str(w.message) for w in caught]
    assert any("keep_alive is an Ollama setting" in t for t in texts)
    assert any("option 'mirostat' has no LiteLLM equivalent" in t for t in texts)
    assert ("keep_alive" not in kwargs and "mirostat" not in kwargs
            and kwargs["model"] == "cohere/command-r")


def test_schema_format_and_tools_pass_through() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    kwargs = LiteLLMBackend(model="openai/gpt-4o").completion_kwargs(
        request(format=schema, tools=tools))
    assert kwargs["response_format"] == {"type": "json_schema",
                                         "json_schema": {"name": "response", "schema": schema}}
    assert kwargs["tools"] == tools


def test_messages_become_openai_shaped() -> None:
    wire = build_chat_request("m", [
        {"role": "user", "content": "look", "images": [b"png"]},
        {"role": "assistant", "content": "", "thinking": "t", "tool_calls": [
            {"function": {"name": "f", "arguments": {"x": 1}}},
            {"id": "call_b", "function": {"name": "g"}}]},
        {"role": "tool", "tool_name": "f", "content": "1"},
        {"role": "tool", "tool_name": "g", "tool_call_id": "call_b", "content": "2"},
    ])["messages"]
    out = openai_messages(wire)
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,cG5n"}}
    assert out[0] == {"role": "user", "content": [{"type": "text", "text": "look"}, image]}
    assert out[1]["tool_calls"] == [
        {"id": "call_1_0", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}},
        {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]
    # matched by name
    assert out[2] == {"role": "tool", "tool_call_id": "call_1_0", "content": "1", "name": "f"}
    assert out[3] == {"role": "tool", "tool_call_id": "call_b", "content": "2", "name": "g"}


# -- the stream ------------------------------------------------------------------------------------

def part(content: str | None = None, reasoning: str | None = None,
         tool_calls: list[Any] | None = None, finish: str | None = None, usage: Any = None) -> Any:
    delta = SimpleNamespace(content=content, tool_calls=tool_calls)
    if reasoning is not None:
        delta.reasoning_content = reasoning  # LiteLLM deletes the attribute when empty
    choices = [SimpleNamespace(delta=delta, finish_reason=finish)] if usage is None else []
    return SimpleNamespace(model="gpt-x", created=1_700_000_000, choices=choices, usage=usage)


def tool_delta(index: int, call_id: str | None = None, name: str | None = None,
               arguments: str | None = None) -> Any:
    return SimpleNamespace(index=index, id=call_id,
                           function=SimpleNamespace(name=name, arguments=arguments))


async def replay(parts: list[Any], monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    async def fake_acompletion(**kwargs: Any) -> Any:
        async def stream() -> Any:
            for item in parts:
                if isinstance(item, BaseException):
                    raise item
                yield item
        return stream()

    backend = LiteLLMBackend(model="openai/gpt-x")
    monkeypatch.setattr(backend._litellm, "acompletion", fake_acompletion)
    return [chunk async for chunk in backend.stream_chat(request())]


def test_split_tool_call_deltas_are_assembled(monkeypatch: pytest.MonkeyPatch) -> None:
    parts = [
        part(reasoning="Plan."), part(content="Calling."),
        part(tool_calls=[tool_delta(0, "call_1", "get_weather", '{"ci')]),
        part(tool_calls=[tool_delta(0, None, None, 'ty": "Oslo"}'),
                         tool_delta(1, "call_2", "get_time", "")]),
        part(tool_calls=[tool_delta(1, None, None, '{"tz": "UTC"}')]),
        part(finish="tool_calls"),
        part(usage=SimpleNamespace(prompt_tokens=12, completion_tokens=7)),
    ]
    chunks = asyncio.run(replay(parts, monkeypatch))
    assert [(c.thinking, c.content) for c in chunks[:-1]] == [("Plan.", ""), ("", "Calling.")]
    final = chunks[-1]
    assert final.done and final.done_reason == "tool_calls"
    assert final.tool_calls == (ToolCall("get_weather", {"city": "Oslo"}, "call_1", 0),
                                ToolCall("get_time", {"tz": "UTC"}, "call_2", 1))
    assert final.metrics is not None and (final.metrics.prompt_eval_count,
                                          final.metrics.eval_count) == (12, 7)


def test_ollama_chat_calls_all_at_index_zero_are_kept_apart_by_id(
        monkeypatch: pytest.MonkeyPatch) -> None:
    parts = [part(tool_calls=[tool_delta(0, "uuid-a", "f", '{"n": 1}')]),
             part(tool_calls=[tool_delta(0, "uuid-b", "f", '{"n": 2}')]), part(finish="stop")]
    final = asyncio.run(replay(parts, monkeypatch))[-1]
    assert [(c.id, c.arguments) for c in final.tool_calls] == [("uuid-a", {"n": 1}),
                                                               ("uuid-b", {"n": 2})]


def test_bad_tool_arguments_are_a_protocol_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ProtocolError, match="not valid JSON"):
        asyncio.run(replay([part(tool_calls=[tool_delta(0, "c", "f", "{oops")]),
                            part(finish="stop")], monkeypatch))


# -- exceptions ------------------------------------------------------------------------------------

def litellm_error(name: str, **kw: Any) -> BaseException:
    cls = getattr(litellm.exceptions, name)
    error: BaseException = cls(message="boom", llm_provider="openai", model="gpt-x", **kw)
    return error


@pytest.mark.parametrize("name,kind,status", [
    ("RateLimitError", ResponseError, 429),
    ("InternalServerError", ResponseError, 500),
    ("ServiceUnavailableError", ResponseError, 503),
    ("BadGatewayError", ResponseError, 502),
    ("AuthenticationError", ResponseError, 401),
    ("BadRequestError", ResponseError, 400),
    ("NotFoundError", ModelNotFoundError, 404),
])
def test_status_errors(name: str, kind: type, status: int) -> None:
    error = map_exception(litellm_error(name), "openai/gpt-x", None)
    assert type(error) is kind and isinstance(error, ResponseError) and error.status_code == status


def test_connection_timeout_and_mid_stream_errors() -> None:
    assert isinstance(map_exception(litellm.exceptions.APIConnectionError(
        message="refused", llm_provider="ollama", model="m"), "ollama_chat/m", "http://h"),
        OllamaConnectionError)
    assert isinstance(map_exception(litellm.exceptions.Timeout(
        message="slow", model="m", llm_provider="ollama"), "m", None), OllamaTimeoutError)
    fallback = litellm.exceptions.MidStreamFallbackError(message="cut", model="m",
                                                         llm_provider="ollama",
                                                         original_exception=RuntimeError("x"))
    assert isinstance(map_exception(fallback, "m", None), StreamInterrupted)
    assert type(map_exception(RuntimeError("?"), "m", None)) is OllamaError
