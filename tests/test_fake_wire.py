"""FakeOllama's answers held to PROTOCOL.md byte by byte, over HTTP: Go's field order, escapes,
times and floats, one HTTP chunk per line, logprobs, tool calls as each server version and chat
path sends them, prefill, `stream: false` merging and faults, and the endpoints v0.33 added
(tags' capabilities, show's fields, status, web search and fetch)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from ollama_stream import AsyncOllama
from ollama_stream.testing import FakeModel, FakeOllama

from .fake_http import (
    JSON_UTF8,
    USER,
    error_of,
    http_chunks,
    joined,
    post,
    raw_exchange,
    request,
    stream,
)

CREATED_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?Z$")
CHUNK_KEYS = ["model", "created_at", "message", "done"]
FINAL_KEYS = ["model", "created_at", "message", "done", "done_reason", "total_duration",
              "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count",
              "eval_duration"]
WEATHER = [{"name": "get_weather", "arguments": {"city": "Tokyo", "unit": "C"}},
           {"name": "get_time", "arguments": {}}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]


@pytest.fixture
async def fake(loop_errors: list[dict[str, Any]]) -> AsyncIterator[FakeOllama]:
    models = ["qwen3", "gpt-oss:20b", FakeModel("tiny", capabilities=["completion", "tools"]),
              FakeModel("qwen3.5", renderer="qwen3.5"),
              FakeModel("deepseek-v3", renderer="deepseek3"),
              FakeModel("native-think", native=True)]
    async with FakeOllama(models=models) as server:
        yield server


# -- Go's bytes ------------------------------------------------------------------------------------

async def test_each_line_is_one_http_chunk_in_gos_field_order(fake: FakeOllama) -> None:
    fake.queue_reply(thinking="Light scatters.", content="Blue <wins> & red loses.",
                     tool_calls=WEATHER)
    head, body = await raw_exchange(fake, "/api/chat", {"model": "qwen3", "messages": USER})
    assert head.startswith(b"HTTP/1.1 200") and b"Transfer-Encoding: chunked" in head
    chunks = http_chunks(body)
    assert all(chunk.endswith(b"\n") and chunk.count(b"\n") == 1 for chunk in chunks)
    decoded = [json.loads(chunk) for chunk in chunks]
    assert all(list(line) == CHUNK_KEYS for line in decoded[:-1])
    assert list(decoded[-1]) == FINAL_KEYS
    thinking = decoded[0]["message"]
    assert list(thinking) == ["role", "content", "thinking"] and thinking["content"] == ""
    # <, > and & as Go's HTML-safe encoder writes them
    assert b'"content":"Blue "' in b"".join(chunks)
    assert b'"content":"\\u003cwins\\u003e "' in b"".join(chunks)
    assert b'"content":"\\u0026 "' in b"".join(chunks)
    assert b"<" not in b"".join(chunks) and b"&" not in b"".join(chunks)
    for line in decoded:
        assert CREATED_AT.match(line["created_at"]), line["created_at"]
    [calls] = [line["message"]["tool_calls"] for line in decoded if "tool_calls" in line["message"]]
    assert [list(call) for call in calls] == [["id", "function"], ["id", "function"]]
    assert [list(call["function"]) for call in calls] == [["index", "name", "arguments"]] * 2
    assert list(calls[0]["function"]["arguments"]) == ["city", "unit"]  # key order kept


async def test_json_answers_have_no_newline_and_gins_content_type(fake: FakeOllama) -> None:
    await post(fake, "/api/chat", {"model": "qwen3", "messages": []})
    for method, path, body in (("GET", "/api/tags", None), ("GET", "/api/ps", None),
                               ("GET", "/api/version", None), ("GET", "/api/status", None),
                               ("POST", "/api/show", {"model": "qwen3"}),
                               ("POST", "/api/embed", {"model": "qwen3", "input": "x"}),
                               ("POST", "/api/chat", {"model": "qwen3", "messages": USER,
                                                      "stream": False})):
        status, headers, raw = await request(fake, method, path, body)
        assert status == 200 and headers["content-type"] == JSON_UTF8, path
        assert not raw.endswith(b"\n"), path


async def test_floats_and_times_in_gos_forms(fake: FakeOllama) -> None:
    _, _, raw = await post(fake, "/api/show", {"model": "qwen3"})
    # float32 GGUF values: 1e-6 in 'f' form (float32 compares it with float32(1e-6)), 1e6 whole
    assert b'"qwen3.attention.layer_norm_rms_epsilon":0.000001,' in raw
    assert b'"qwen3.rope.freq_base":1000000,' in raw
    assert re.search(rb'"modified_at":"[^"]+"', raw)
    _, _, raw = await request(fake, "GET", "/api/tags")
    stamps = re.findall(rb'"modified_at":"([^"]+)"', raw)
    assert stamps and all(CREATED_AT.match(stamp.decode()) for stamp in stamps)


# -- logprobs --------------------------------------------------------------------------------------

async def test_logprobs_per_chunk_with_top_logprobs(fake: FakeOllama) -> None:
    fake.queue_reply(content="Hello <world>!")
    chunks = await stream(fake, "/api/chat", {"model": "qwen3", "messages": USER, "think": False,
                                              "logprobs": True, "top_logprobs": 3})
    *tokens, final = chunks
    assert "logprobs" not in final and list(final) == FINAL_KEYS
    for chunk in tokens:
        assert list(chunk) == [*CHUNK_KEYS, "logprobs"]  # after done, before the metrics
        [entry] = chunk["logprobs"]
        assert list(entry) == ["token", "logprob", "bytes", "top_logprobs"]
        assert entry["token"] == chunk["message"]["content"]
        assert entry["bytes"] == list(entry["token"].encode())
        assert isinstance(entry["logprob"], (int, float)) and entry["logprob"] <= 0
        top = entry["top_logprobs"]
        assert len(top) == 3 and top[0] == {k: entry[k] for k in ("token", "logprob", "bytes")}
        assert [t["logprob"] for t in top] == sorted((t["logprob"] for t in top), reverse=True)
    again = await stream(fake, "/api/generate", {"model": "qwen3", "prompt": "x", "think": False,
                                                 "logprobs": True})
    assert all("top_logprobs" not in line["logprobs"][0] for line in again[:-1])  # top 0
    plain = await stream(fake, "/api/chat", {"model": "qwen3", "messages": USER})
    assert not any("logprobs" in line for line in plain)


async def test_unstreamed_logprobs_are_joined_and_the_client_keeps_them(fake: FakeOllama) -> None:
    fake.queue_reply(content="one two three")
    status, _, raw = await post(fake, "/api/chat", {"model": "qwen3", "messages": USER,
                                                    "stream": False, "logprobs": True})
    answer = json.loads(raw)
    assert status == 200 and [e["token"] for e in answer["logprobs"]] == ["one ", "two ", "three"]
    assert list(answer).index("logprobs") == list(answer).index("done_reason") + 1
    fake.queue_reply(content="four five")
    async with AsyncOllama(fake.url) as client:
        result = await client.chat("qwen3", USER, logprobs=True, top_logprobs=1).result()
    assert result.logprobs is not None
    assert [entry["token"] for entry in result.logprobs] == ["four ", "five"]


# -- tool calls by version and chat path -----------------------------------------------------------

async def calls_from(fake: FakeOllama, model: str = "qwen3") -> list[list[dict[str, Any]]]:
    """The tool calls of each chunk that has some, for one scripted reply."""
    fake.queue_reply(content="Checking.", tool_calls=WEATHER)
    chunks = await stream(fake, "/api/chat", {"model": model, "messages": USER, "tools": TOOLS})
    return [[chunk["message"]["tool_calls"], chunk["done"]] for chunk in chunks
            if "tool_calls" in chunk["message"]]


async def test_rendered_path_tool_calls_in_a_chunk_of_their_own(fake: FakeOllama) -> None:
    [[calls, done]] = await calls_from(fake)
    assert done is False
    assert all(re.fullmatch(r"call_[a-z0-9]{8}", call["id"]) for call in calls)
    assert [call["function"]["index"] for call in calls] == [0, 1]


async def test_native_path_tool_calls_only_on_the_done_chunk(fake: FakeOllama) -> None:
    [[calls, done]] = await calls_from(fake, "native-think")
    assert done is True
    assert all(re.fullmatch(r"[0-9A-Za-z]{32}", call["id"]) for call in calls)
    async with FakeOllama(native=True) as everywhere:
        [[calls, done]] = await calls_from(everywhere)
    assert done is True and len(calls[0]["id"]) == 32


@pytest.mark.parametrize(("version", "keys"), [
    ("0.33.0", (["id", "function"], ["index", "name", "arguments"])),
    ("0.12.10", (["id", "function"], ["index", "name", "arguments"])),
    ("0.12.9", (["function"], ["index", "name", "arguments"])),
    ("0.4.7", (["function"], ["index", "name", "arguments"])),
    ("0.4.6", (["function"], ["name", "arguments"])),
])
async def test_old_servers_tool_calls(loop_errors: list[dict[str, Any]], version: str,
                                      keys: tuple[list[str], list[str]]) -> None:
    async with FakeOllama(version=version) as old:
        [[calls, _]] = await calls_from(old)
        assert [list(call) for call in calls] == [keys[0]] * 2
        assert [list(call["function"]) for call in calls] == [keys[1]] * 2
        _, _, raw = await request(old, "GET", "/api/version")
        assert json.loads(raw) == {"version": version}


async def test_tool_call_ids_false_keeps_sending_neither(loop_errors: list[dict[str, Any]]) -> None:
    async with FakeOllama(tool_call_ids=False) as fake:
        [[calls, _]] = await calls_from(fake)
    assert calls == [{"function": {"name": "get_weather", "arguments": {"city": "Tokyo",
                                                                       "unit": "C"}}},
                     {"function": {"name": "get_time", "arguments": {}}}]


async def test_generate_tool_calls_ride_on_the_final_chunk_without_ids(fake: FakeOllama) -> None:
    fake.queue_reply(tool_calls=WEATHER)
    chunks = await stream(fake, "/api/generate", {"model": "qwen3", "prompt": "x"})
    assert not any("tool_calls" in line for line in chunks[:-1])
    assert [list(call) for call in chunks[-1]["tool_calls"]] == [["function"]] * 2
    assert list(chunks[-1])[-1] == "tool_calls"  # after the metrics, as GenerateResponse has it


# -- prefill ---------------------------------------------------------------------------------------

def prefilled(partial: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": "hi"}, {"role": "assistant", "content": partial, **extra}]


async def test_a_trailing_assistant_message_is_continued(fake: FakeOllama) -> None:
    fake.queue_reply(thinking="Not again.", content="Hello world!")
    chunks = await stream(fake, "/api/chat", {"model": "qwen3", "messages": prefilled("Hello")})
    # only the continuation, and no thinking: the parser starts in content mode
    assert joined(chunks, "content") == " world!" and joined(chunks, "thinking") == ""
    chunks = await stream(fake, "/api/chat", {"model": "qwen3",
                                              "messages": prefilled("You said: h")})
    assert joined(chunks, "content") == "i"  # the default reply, continued
    assert fake.requests[-1]["messages"][-1]["role"] == "assistant"


async def test_qwen35_trims_the_partial_so_its_trailing_space_is_lost(fake: FakeOllama) -> None:
    fake.queue_reply(content="Hello world!")
    chunks = await stream(fake, "/api/chat", {"model": "qwen3.5", "messages": prefilled("Hello ")})
    # the partial reached the model as "Hello": "Hello " + " world!" has two spaces
    assert "Hello " + joined(chunks, "content") == "Hello  world!"


async def test_renderers_that_close_the_turn_answer_afresh(fake: FakeOllama) -> None:
    fake.queue_reply(thinking="Fresh.", content="Hello world!")
    chunks = await stream(fake, "/api/chat", {"model": "deepseek-v3",
                                              "messages": prefilled("Hello")})
    assert joined(chunks, "content") == "Hello world!" and joined(chunks, "thinking") == "Fresh."


async def test_gpt_oss_continues_a_thinking_only_partial_in_analysis(fake: FakeOllama) -> None:
    fake.queue_reply(thinking="Let me think about it.", content="Done.")
    chunks = await stream(fake, "/api/chat", {"model": "gpt-oss:20b",
                                              "messages": prefilled("", thinking="Let me")})
    assert joined(chunks, "thinking") == " think about it." and joined(chunks, "content") == "Done."


async def test_native_prefill_needs_thinking_off(fake: FakeOllama) -> None:
    llama = ('{"error":{"code":400,"message":"Assistant response prefill is incompatible with '
             'enable_thinking.","type":"invalid_request_error"}}')
    fake.queue_reply(content="Hello world!")
    body = {"model": "native-think", "messages": prefilled("Hello")}
    assert await error_of(fake, "/api/chat", body) == (400, "application/json", llama)
    assert await error_of(fake, "/api/chat", {**body, "stream": False}) == (400, JSON_UTF8, llama)
    assert fake.pending == 1  # llama-server refused: nothing was generated
    chunks = await stream(fake, "/api/chat", {**body, "think": False})
    assert joined(chunks, "content") == " world!"
    two = [*prefilled("Hello"), {"role": "assistant", "content": "again"}]
    status, _, text = await error_of(fake, "/api/chat", {"model": "native-think", "messages": two,
                                                         "think": False})
    assert status == 400 and "Cannot have 2 or more assistant messages at the end" in text


# -- stream: false ---------------------------------------------------------------------------------

async def unstreamed(fake: FakeOllama, **extra: Any) -> dict[str, Any]:
    status, headers, raw = await post(fake, "/api/chat", {"model": "qwen3", "messages": USER,
                                                          "stream": False, **extra})
    assert status == 200 and headers["content-type"] == JSON_UTF8
    answer: dict[str, Any] = json.loads(raw)
    return answer


async def test_unstreamed_merges_as_write_chat_response_does(fake: FakeOllama) -> None:
    fake.queue_reply(thinking="Think.", content="Say.", tool_calls=WEATHER)
    answer = await unstreamed(fake, tools=TOOLS)
    assert list(answer) == FINAL_KEYS
    assert list(answer["message"]) == ["role", "content", "thinking", "tool_calls"]
    assert (answer["message"]["content"], answer["message"]["thinking"]) == ("Say.", "Think.")
    assert [call["function"]["name"] for call in answer["message"]["tool_calls"]] == [
        "get_weather", "get_time"]
    # without tools in the request the calls of earlier chunks are not gathered ...
    fake.queue_reply(content="Say.", tool_calls=WEATHER)
    assert "tool_calls" not in (await unstreamed(fake))["message"]
    # ... but the last chunk's own survive (they ride on it with tool_calls_on_done)
    fake.queue_reply(content="Say.", tool_calls=WEATHER, tool_calls_on_done=True)
    assert len((await unstreamed(fake))["message"]["tool_calls"]) == 2


async def test_unstreamed_faults(fake: FakeOllama) -> None:
    fake.queue_reply(content="one two three", drop_after=1)
    with pytest.raises(aiohttp.ServerDisconnectedError):  # closed without an answer
        await post(fake, "/api/chat", {"model": "qwen3", "messages": USER, "stream": False})
    fake.queue_reply(content="one two three", stall_after=2)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(asyncio.TimeoutError):  # no answer at all
            await session.post(f"{fake.url}/api/chat", timeout=aiohttp.ClientTimeout(total=0.3),
                               json={"model": "qwen3", "messages": USER, "stream": False})
    await fake.wait_disconnect()
    assert fake.disconnects == 1
    fake.queue_reply(content="one two", error="lost the runner", error_status=502)
    assert await error_of(fake, "/api/generate", {"model": "qwen3", "prompt": "x",
                                                  "stream": False}) == (
        502, JSON_UTF8, "lost the runner")


# -- what v0.33 serves besides ---------------------------------------------------------------------

async def test_tags_carry_capabilities_and_lengths(loop_errors: list[dict[str, Any]]) -> None:
    models = ["qwen3", FakeModel("tiny", capabilities=["completion", "tools"],
                                 context_length=2048, embedding_length=64)]
    async with FakeOllama(models=models) as fake:
        _, _, raw = await request(fake, "GET", "/api/tags")
        entries = {entry["name"]: entry for entry in json.loads(raw)["models"]}
        tiny = entries["tiny:latest"]
        assert list(tiny) == ["name", "model", "modified_at", "size", "digest", "details",
                              "capabilities"]
        assert tiny["capabilities"] == ["completion", "tools"]
        assert (tiny["details"]["context_length"], tiny["details"]["embedding_length"]) == (
            2048, 64)
        status, _, raw = await request(fake, "HEAD", "/api/tags")
        assert status == 200 and raw == b""
    async with FakeOllama(version="0.29.0") as old:  # neither before v0.30.0
        _, _, raw = await request(old, "GET", "/api/tags")
        entry = json.loads(raw)["models"][0]
        assert "capabilities" not in entry and "context_length" not in entry["details"]


async def test_show_sends_the_fields_of_show_response(loop_errors: list[dict[str, Any]]) -> None:
    models = [FakeModel("coder", renderer="qwen3-coder", requires="0.12.0", system="Be brief.",
                        capabilities=["completion", "tools", "insert"])]
    async with FakeOllama(models=models) as fake:
        _, _, raw = await post(fake, "/api/show", {"model": "coder"})
    shown = json.loads(raw)
    assert list(shown) == ["license", "modelfile", "parameters", "template", "system", "renderer",
                           "parser", "details", "model_info", "tensors", "capabilities",
                           "modified_at", "requires"]
    assert (shown["renderer"], shown["parser"], shown["requires"]) == (
        "qwen3-coder", "qwen3-coder", "0.12.0")
    assert shown["capabilities"] == ["completion", "tools", "insert"]
    assert shown["tensors"][0] == {"name": "token_embd.weight", "type": "Q4_K",
                                   "shape": [8, 151936]}


async def test_status_and_a_head_on_ps(fake: FakeOllama) -> None:
    _, _, raw = await request(fake, "GET", "/api/status")
    assert raw == b'{"cloud":{"disabled":false,"source":"none"}}'
    status, headers, raw = await request(fake, "HEAD", "/api/ps")
    assert (status, headers.get("allow"), headers["content-type"]) == (405, "GET", "text/plain")
    status, _, raw = await request(fake, "GET", "/api/chat")
    assert (status, raw) == (405, b"405 method not allowed")


async def test_web_search_and_fetch(fake: FakeOllama) -> None:
    status, headers, raw = await post(fake, "/api/experimental/web_search",
                                      {"query": "what is ollama?", "max_results": 2})
    assert status == 200 and headers["content-type"] == JSON_UTF8
    results = json.loads(raw)["results"]
    assert len(results) == 2 and [list(r) for r in results] == [["title", "url", "content"]] * 2
    _, _, again = await post(fake, "/api/experimental/web_search", {"query": "what is ollama?"})
    assert len(json.loads(again)["results"]) == 5 and json.loads(again)["results"][:2] == results
    _, _, raw = await post(fake, "/api/experimental/web_fetch", {"url": results[0]["url"]})
    assert list(json.loads(raw)) == ["title", "content", "links"]
    fake.add_web_page("https://ollama.com/", "Ollama", "Run models locally.")
    _, _, raw = await post(fake, "/api/experimental/web_search", {"query": "models"})
    assert json.loads(raw) == {"results": [{"title": "Ollama", "url": "https://ollama.com/",
                                            "content": "Run models locally."}]}
    _, _, raw = await post(fake, "/api/experimental/web_fetch", {"url": "https://ollama.com/"})
    assert json.loads(raw) == {"title": "Ollama", "content": "Run models locally."}
    assert await error_of(fake, "/api/experimental/web_fetch", data=b"") == (
        400, JSON_UTF8, "missing request body")
    fake.cloud_disabled = True
    assert await error_of(fake, "/api/experimental/web_search", {"query": "x"}) == (
        403, JSON_UTF8, "ollama cloud is disabled: web search is unavailable")
    _, _, raw = await request(fake, "GET", "/api/status")
    assert json.loads(raw) == {"cloud": {"disabled": True, "source": "env"}}
