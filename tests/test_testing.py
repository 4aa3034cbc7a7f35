"""FakeOllama as its users see it: a real loopback server, read here with plain aiohttp, urllib and
the official `ollama` client, so that its wire format is checked independently of this SDK's own
parser."""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from datetime import datetime, timezone
from typing import Any

import aiohttp
import ollama
import pytest

from ollama_stream.testing import FakeOllama

USER = [{"role": "user", "content": "Why is the sky blue?"}]
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
FINAL_METRICS = ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
                 "eval_count", "eval_duration")


async def post_chat(fake: FakeOllama, body: Any = None, *, data: bytes | None = None,
                    headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """POST /api/chat with plain aiohttp: (status, Content-Type, raw body)."""
    kwargs: dict[str, Any] = {"data": data} if data is not None else {"json": body}
    async with (aiohttp.ClientSession() as session,
                session.post(f"{fake.url}/api/chat", headers=headers, **kwargs) as response):
        return response.status, response.headers.get("Content-Type", ""), await response.read()


def ndjson(raw: bytes) -> list[dict[str, Any]]:
    """Every line must be exactly one JSON object, and the body must end with a newline."""
    text = raw.decode()
    assert text.endswith("\n"), "the stream should end with a newline"
    lines = [json.loads(line) for line in text.splitlines()]
    assert all(isinstance(line, dict) for line in lines)
    return lines


async def stream_lines(fake: FakeOllama, body: dict[str, Any]) -> list[dict[str, Any]]:
    status, content_type, raw = await post_chat(fake, body)
    assert status == 200, raw
    assert content_type == "application/x-ndjson"
    return ndjson(raw)


def joined(lines: list[dict[str, Any]], field: str) -> str:
    return "".join(line["message"].get(field, "") for line in lines)


# -- lifecycle -------------------------------------------------------------------------------------

async def test_url_only_while_running_and_on_loopback(loop_errors: list[dict[str, Any]]) -> None:
    server = FakeOllama()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url
    async with server as fake:
        assert fake is server
        match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)", fake.url)
        assert match and 0 < int(match.group(1)) < 65536
        status, _, _ = await post_chat(fake, {"model": "qwen3", "messages": USER})
        assert status == 200
    with pytest.raises(RuntimeError):
        _ = server.url


async def test_two_fakes_get_different_ports(loop_errors: list[dict[str, Any]]) -> None:
    async with FakeOllama() as one, FakeOllama() as two:
        assert one.url != two.url


# -- the default reply -----------------------------------------------------------------------------

async def test_default_reply_echoes_the_last_user_message_thinking_by_default(
        fake: FakeOllama) -> None:
    # a thinking model thinks when `think` is omitted (Ollama v0.12.4+), as the real server does
    messages = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "hello there"}]
    lines = await stream_lines(fake, {"model": "qwen3", "messages": messages})
    assert joined(lines, "content") == "You said: hello there"
    assert joined(lines, "thinking") == "The user wrote 2 words. I will answer briefly."


@pytest.mark.parametrize("think", [True, "low"])
async def test_default_reply_thinks_first_when_think_is_truthy(fake: FakeOllama,
                                                               think: Any) -> None:
    lines = await stream_lines(fake, {"model": "qwen3", "messages": USER, "think": think})
    assert joined(lines, "content") == "You said: Why is the sky blue?"
    assert joined(lines, "thinking") == "The user wrote 5 words. I will answer briefly."
    kinds = ["thinking" if line["message"].get("thinking") else "content" for line in lines
             if line["message"].get("thinking") or line["message"].get("content")]
    # every thinking line before any content
    assert kinds == sorted(kinds, key=lambda kind: kind != "thinking")
    assert kinds[0] == "thinking" and kinds[-1] == "content"


async def test_default_reply_without_think_false_has_no_thinking(fake: FakeOllama) -> None:
    lines = await stream_lines(fake, {"model": "qwen3", "messages": USER, "think": False})
    assert joined(lines, "thinking") == ""
    assert joined(lines, "content") == "You said: Why is the sky blue?"


async def test_default_reply_to_a_tool_result_names_the_tool(fake: FakeOllama) -> None:
    messages = [*USER, {"role": "tool", "content": '{"temp": 22}', "tool_name": "get_weather"}]
    lines = await stream_lines(fake, {"model": "qwen3", "messages": messages})
    assert joined(lines, "content") == 'The tool get_weather returned: {"temp": 22}'


# -- scripting and recording -----------------------------------------------------------------------

async def test_queued_replies_are_served_first_in_first_out(fake: FakeOllama) -> None:
    fake.queue_reply(content="one")
    fake.queue_reply(content="two", thinking="hmm")
    fake.queue_reply(content="three")
    assert fake.pending == 3
    bodies = [{"model": "qwen3", "messages": [{"role": "user", "content": f"q{n}"}]}
              for n in range(4)]
    answers = []
    for n, body in enumerate(bodies):
        lines = await stream_lines(fake, body)
        answers.append((joined(lines, "thinking"), joined(lines, "content")))
        assert fake.pending == max(0, 2 - n)
    # the default reply thinks: qwen3 is a thinking model and `think` was not turned off
    assert answers == [("", "one"), ("hmm", "two"), ("", "three"),
                       ("The user wrote 1 words. I will answer briefly.", "You said: q3")]
    assert fake.requests == bodies


async def test_received_records_every_request_with_headers_and_body(fake: FakeOllama) -> None:
    body = {"model": "qwen3", "messages": USER}
    async with aiohttp.ClientSession(headers={"X-Test": "yes"}) as session:
        for path in ("/", "/api/version", "/api/tags"):
            async with session.get(f"{fake.url}{path}") as response:
                assert response.status == 200
        async with session.post(f"{fake.url}/api/chat", json=body) as response:
            await response.read()
    assert [(r.method, r.path) for r in fake.received] == [
        ("GET", "/"), ("GET", "/api/version"), ("GET", "/api/tags"), ("POST", "/api/chat")]
    assert all(r.headers.get("X-Test") == "yes" for r in fake.received)
    assert [r.body for r in fake.received] == [None, None, None, body]
    assert fake.received[-1].headers["Content-Type"] == "application/json"
    assert fake.requests == [body]  # only /api/chat bodies


# -- the wire format -------------------------------------------------------------------------------

async def test_stream_lines_have_ollamas_shapes(fake: FakeOllama) -> None:
    fake.queue_reply(content="Rayleigh scattering, mostly.", thinking="Physics question.",
                     tool_calls=[{"name": "get_weather", "arguments": {"city": "Tokyo"}},
                                 {"name": "get_time", "arguments": {}}],
                     done_reason="stop")
    lines = await stream_lines(fake, {"model": "qwen3", "messages": USER, "think": True})
    assert len(lines) >= 5
    for line in lines:
        assert line["model"] == "qwen3"
        assert RFC3339_UTC.match(line["created_at"]), line["created_at"]
        # Go's nanoseconds cut to the microseconds datetime takes (3.10 parses no more, nor "Z")
        whole, _, fraction = line["created_at"].rstrip("Z").partition(".")
        stamp = f"{whole}.{fraction[:6].ljust(6, '0')}+00:00"
        assert datetime.fromisoformat(stamp).tzinfo == timezone.utc
        assert line["message"]["role"] == "assistant"
        assert isinstance(line["message"]["content"], str)
    assert [line["done"] for line in lines] == [False] * (len(lines) - 1) + [True]
    assert joined(lines, "thinking") == "Physics question."
    assert joined(lines, "content") == "Rayleigh scattering, mostly."

    final = lines[-1]
    assert final["done_reason"] == "stop"
    for key in FINAL_METRICS:
        assert type(final[key]) is int and final[key] > 0, key
    assert final["total_duration"] >= final["load_duration"] + final["prompt_eval_duration"]
    assert "done_reason" not in lines[0] and "total_duration" not in lines[0]

    with_calls = [n for n, line in enumerate(lines) if line["message"].get("tool_calls")]
    # a chunk of their own, before the end
    assert len(with_calls) == 1 and with_calls[0] < len(lines) - 1
    calls = lines[with_calls[0]]["message"]["tool_calls"]
    assert [(c["function"]["name"], c["function"]["arguments"], c["function"]["index"])
            for c in calls] == [("get_weather", {"city": "Tokyo"}, 0), ("get_time", {}, 1)]
    assert all(c["id"].startswith("call_") for c in calls)
    assert len({c["id"] for c in calls}) == 2


async def test_tool_calls_on_done_ride_on_the_final_line_only(fake: FakeOllama) -> None:
    fake.queue_reply(content="Checking.",
                     tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}],
                     tool_calls_on_done=True)
    lines = await stream_lines(fake, {"model": "qwen3", "messages": USER})
    assert not any(line["message"].get("tool_calls") for line in lines[:-1])
    final = lines[-1]
    assert final["done"] is True
    [call] = final["message"]["tool_calls"]
    assert call["id"].startswith("call_")
    assert call["function"] == {"name": "get_weather", "arguments": {"city": "Oslo"}, "index": 0}


async def test_unstreamed_reply_is_one_json_object(fake: FakeOllama) -> None:
    fake.queue_reply(content="All of it at once.", thinking="No streaming wanted.")
    status, content_type, raw = await post_chat(fake, {"model": "qwen3", "messages": USER,
                                                       "stream": False})
    assert status == 200
    assert content_type.startswith("application/json")
    reply = json.loads(raw)  # fails on NDJSON with more than one line
    assert reply["done"] is True and reply["done_reason"] == "stop"
    assert reply["message"] == {"role": "assistant", "content": "All of it at once.",
                                "thinking": "No streaming wanted."}
    assert all(type(reply[key]) is int and reply[key] > 0 for key in FINAL_METRICS)


# -- errors ----------------------------------------------------------------------------------------

async def test_unknown_model_is_ollamas_404(fake: FakeOllama) -> None:
    fake.queue_reply(content="kept for later")
    status, content_type, raw = await post_chat(fake, {"model": "x", "messages": USER})
    assert status == 404
    assert content_type.startswith("application/json")
    assert json.loads(raw) == {"error": "model 'x' not found"}  # ChatHandler's own 404 text
    assert fake.pending == 1  # a rejected request does not use up the queued reply


@pytest.mark.parametrize("model", ["qwen3", "qwen3:latest", "gpt-oss:20b"])
async def test_known_models_with_or_without_a_tag(fake: FakeOllama, model: str) -> None:
    lines = await stream_lines(fake, {"model": model, "messages": USER})
    assert lines[-1]["done"] is True and lines[-1]["model"] == model


async def test_a_tag_other_than_latest_is_another_model(fake: FakeOllama) -> None:
    status, _, raw = await post_chat(fake, {"model": "qwen3:8b", "messages": USER})
    assert status == 404 and b"qwen3:8b" in raw


@pytest.mark.parametrize("body", [{"messages": USER}, {"model": "", "messages": USER}])
async def test_missing_model_is_a_400(fake: FakeOllama, body: dict[str, Any]) -> None:
    status, _, raw = await post_chat(fake, body)
    assert status == 400
    assert json.loads(raw) == {"error": "model is required"}


@pytest.mark.parametrize(("data", "text"), [
    (b"this is not json", "invalid character 'h' in literal true (expecting 'r')"),
    (b"[1, 2]", "json: cannot unmarshal array into Go value of type api.ChatRequest"),
])
async def test_a_body_that_is_not_a_json_object_is_a_400(fake: FakeOllama, data: bytes,
                                                         text: str) -> None:
    status, _, raw = await post_chat(fake, data=data, headers={"Content-Type": "application/json"})
    assert status == 400
    assert json.loads(raw) == {"error": text}  # Go's decoder says what is wrong
    assert fake.requests == []
    assert fake.received[-1].path == "/api/chat"


async def test_queued_error_sets_status_body_and_headers(fake: FakeOllama) -> None:
    fake.queue_error(503, "busy", headers={"Retry-After": "2"})
    async with (aiohttp.ClientSession() as session,
                session.post(f"{fake.url}/api/chat",
                             json={"model": "qwen3", "messages": USER}) as response):
        assert response.status == 503
        assert response.headers["Retry-After"] == "2"
        assert await response.json() == {"error": "busy"}
    assert fake.pending == 0
    lines = await stream_lines(fake, {"model": "qwen3", "messages": USER})  # served once only
    assert lines[-1]["done"] is True


# -- the other endpoints ---------------------------------------------------------------------------

async def test_root_version_and_tags(loop_errors: list[dict[str, Any]]) -> None:
    async with (FakeOllama(models=["qwen3", "llama3.2:1b"]) as fake,
                aiohttp.ClientSession() as session):
        async with session.get(f"{fake.url}/") as response:
            assert response.status == 200 and await response.text() == "Ollama is running"
        async with session.get(f"{fake.url}/api/version") as response:
            assert await response.json() == {"version": "0.33.0"}
        async with session.get(f"{fake.url}/api/tags") as response:
            tags = await response.json()
        assert sorted(m["name"] for m in tags["models"]) == ["llama3.2:1b", "qwen3:latest"]
        assert all(m["model"] == m["name"] for m in tags["models"])
        status, _, _ = await post_chat(fake, {"model": "gpt-oss:20b", "messages": USER})
        assert status == 404  # only the models given are known
        status, _, _ = await post_chat(fake, {"model": "llama3.2:1b", "messages": USER})
        assert status == 200


# -- thread mode and blocking clients --------------------------------------------------------------

def fake_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "FakeOllama"]


def test_thread_mode_serves_a_blocking_client() -> None:
    with FakeOllama() as fake:
        assert [t.is_alive() for t in fake_threads()] == [True]
        assert threading.current_thread().name != "FakeOllama"
        fake.queue_reply(content="From a thread.", thinking="Blocking is fine.")
        request = urllib.request.Request(
            f"{fake.url}/api/chat", method="POST", headers={"Content-Type": "application/json"},
            data=json.dumps({"model": "qwen3", "messages": USER}).encode())
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Type"] == "application/x-ndjson"
            lines = ndjson(response.read())
        assert joined(lines, "thinking") == "Blocking is fine."
        assert joined(lines, "content") == "From a thread."
        assert lines[-1]["done"] is True and lines[-1]["eval_count"] > 0
        assert fake.requests == [{"model": "qwen3", "messages": USER}]
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(urllib.request.Request(
                f"{fake.url}/api/chat", method="POST", data=b'{"model": "nope", "messages": []}'),
                timeout=10)
        assert caught.value.code == 404
        caught.value.close()
    assert fake_threads() == []
    with pytest.raises(RuntimeError):
        _ = fake.url


# -- the official ollama client --------------------------------------------------------------------

async def test_official_async_client_streams_thinking_and_content(fake: FakeOllama) -> None:
    fake.queue_reply(content="Blue light scatters most.", thinking="Rayleigh.")
    parts = []
    async with ollama.AsyncClient(host=fake.url) as official:
        stream = await official.chat(model="qwen3", messages=USER, stream=True, think=True)
        async for part in stream:
            parts.append(part)
    assert "".join(p.message.thinking or "" for p in parts) == "Rayleigh."
    assert "".join(p.message.content or "" for p in parts) == "Blue light scatters most."
    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
    final = parts[-1]
    assert final.done_reason == "stop"
    assert isinstance(final.eval_count, int) and final.eval_count > 0
    assert final.total_duration and final.total_duration > 0
    assert fake.requests[-1]["think"] is True and fake.requests[-1]["stream"] is True


async def test_official_async_client_unstreamed_and_not_found(fake: FakeOllama) -> None:
    async with ollama.AsyncClient(host=fake.url) as official:
        reply = await official.chat(model="qwen3", messages=[{"role": "user", "content": "hi"}])
        assert reply.message.content == "You said: hi" and reply.done
        with pytest.raises(ollama.ResponseError) as caught:
            await official.chat(model="nosuchmodel", messages=USER)
    assert caught.value.status_code == 404
    assert "model 'nosuchmodel' not found" in caught.value.error


def test_official_sync_client_with_a_tool_call() -> None:
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}]
    with FakeOllama() as fake, ollama.Client(host=fake.url) as official:
        fake.queue_reply(thinking="Need the weather.",
                         tool_calls=[{"name": "get_weather", "arguments": {"city": "Tokyo"}}])
        parts = list(official.chat(model="qwen3", messages=USER, tools=tools, stream=True,
                                   think=True))
        with_calls = [p for p in parts if p.message.tool_calls]
        assert len(with_calls) == 1
        call = with_calls[0].message.tool_calls[0]
        assert call.function.name == "get_weather"
        assert call.function.arguments == {"city": "Tokyo"}
        assert "".join(p.message.thinking or "" for p in parts) == "Need the weather."
        assert parts[-1].done and parts[-1].eval_count

        messages = [*USER, {"role": "assistant", "content": "", "tool_calls": [call]},
                    {"role": "tool", "content": "22 C, clear", "tool_name": "get_weather"}]
        parts = list(official.chat(model="qwen3", messages=messages, tools=tools, stream=True))
        assert ("".join(p.message.content or "" for p in parts)
                == "The tool get_weather returned: 22 C, clear")
        assert fake.requests[0]["tools"][0]["function"]["name"] == "get_weather"
    assert fake_threads() == []


# -- what existing users' code relies on -----------------------------------------------------------

def test_the_public_surface_of_ollama_stream_testing_stays() -> None:
    import inspect

    import ollama_stream.testing as testing

    for name in ("FakeOllama", "FakeReply", "RecordedRequest", "DEFAULT_MODELS", "DEFAULT_PULLABLE",
                 "FAKE_VERSION", "split_tokens", "FakeModel"):
        assert hasattr(testing, name), name
    assert testing.FAKE_VERSION == "0.33.0"  # the Ollama it now emulates
    assert testing.split_tokens("a b") == ["a ", "b"]
    parameters = inspect.signature(FakeOllama).parameters
    assert {"models", "chunk_delay", "version", "ssl", "tool_call_ids", "pullable",
            "embedding_length"} <= set(parameters)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters.values())
    # queue_reply's positional parameters, in their order
    assert list(inspect.signature(FakeOllama.queue_reply).parameters)[:5] == [
        "self", "content", "thinking", "tool_calls", "done_reason"]
    for method in ("queue_reply", "queue_error", "default_reply", "start", "stop",
                   "wait_disconnect", "__aenter__", "__aexit__", "__enter__", "__exit__"):
        assert callable(getattr(FakeOllama, method)), method
    fake = FakeOllama(models=["qwen3"], pullable=["tinyllama"], tool_call_ids=False)
    for attribute in ("models", "pullable", "embedding_length", "chunk_delay", "version", "ssl",
                      "tool_call_ids", "requests", "received", "blobs", "disconnects", "pending",
                      "loaded"):
        assert hasattr(fake, attribute), attribute
    assert fake.models == {"qwen3:latest"} and fake.pullable == {"tinyllama:latest"}
    reply = testing.FakeReply("content", "thinking")  # positional, as before
    assert (reply.content, reply.thinking, reply.status, reply.error_status) == (
        "content", "thinking", None, 500)
