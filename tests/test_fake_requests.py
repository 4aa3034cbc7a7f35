"""FakeOllama's request handling held to PROTOCOL.md case by case, over HTTP: loading and unloading
with empty messages, the checks of ChatHandler/GenerateHandler/EmbedHandler in their order with
the server's statuses and texts, capabilities per model (FakeModel), thinking on by default, and
errors before output as real statuses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ollama_stream import AsyncOllama, ResponseError, RetryPolicy
from ollama_stream.testing import FakeModel, FakeOllama

from .fake_http import JSON_UTF8, USER, error_of, joined, post, request, stream

NO_WAIT = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0, jitter=0.0)
TINY = FakeModel("tiny", capabilities=["completion", "tools"])  # no thinking
BARE = FakeModel("bare", capabilities=["completion"])  # no tools either
EMBEDDER = FakeModel("embedder", capabilities=["embedding"], embedding_length=4)


@pytest.fixture
async def fake(loop_errors: list[dict[str, Any]]) -> AsyncIterator[FakeOllama]:
    async with FakeOllama(models=["qwen3", "gpt-oss:20b", TINY, BARE, EMBEDDER]) as server:
        yield server


# -- empty messages load (or unload) the model -----------------------------------------------------

@pytest.mark.parametrize("stream_flag", [True, False, None])
async def test_empty_messages_load_the_model_with_one_object(fake: FakeOllama,
                                                             stream_flag: bool | None) -> None:
    fake.queue_reply(content="not for a load")
    body: dict[str, Any] = {"model": "qwen3", "messages": []}
    if stream_flag is not None:
        body["stream"] = stream_flag
    status, headers, raw = await post(fake, "/api/chat", body)
    assert status == 200 and headers["content-type"] == JSON_UTF8  # even with stream: true
    assert not raw.endswith(b"\n")
    answer = json.loads(raw)
    assert list(answer) == ["model", "created_at", "message", "done", "done_reason"]
    assert answer["message"] == {"role": "assistant", "content": ""}
    assert (answer["model"], answer["done"], answer["done_reason"]) == ("qwen3", True, "load")
    assert fake.loaded == ["qwen3:latest"] and fake.pending == 1  # no canned greeting


async def test_keep_alive_zero_unloads_before_any_capability_check(fake: FakeOllama) -> None:
    await post(fake, "/api/chat", {"model": "qwen3", "messages": []})
    status, _, raw = await post(fake, "/api/chat",
                                {"model": "qwen3", "messages": [], "keep_alive": 0})
    assert status == 200 and json.loads(raw)["done_reason"] == "unload"
    assert fake.loaded == []
    # step 3 comes before step 5: an embedding model unloads through /api/chat, but cannot load
    status, _, raw = await post(fake, "/api/chat",
                                {"model": "embedder", "messages": [], "keep_alive": "0"})
    assert status == 200 and json.loads(raw)["done_reason"] == "unload"
    assert await error_of(fake, "/api/chat", {"model": "embedder", "messages": []}) == (
        400, JSON_UTF8, '"embedder" does not support chat')


async def test_an_empty_prompt_loads_and_unloads_through_generate(fake: FakeOllama) -> None:
    for body, reason in (({"model": "qwen3"}, "load"), ({"model": "qwen3", "keep_alive": 0},
                                                        "unload")):
        status, headers, raw = await post(fake, "/api/generate", body)
        assert status == 200 and headers["content-type"] == JSON_UTF8
        assert list(json.loads(raw)) == ["model", "created_at", "response", "done", "done_reason"]
        assert json.loads(raw)["done_reason"] == reason


async def test_the_client_sees_a_load(fake: FakeOllama) -> None:
    async with AsyncOllama(fake.url, retry=NO_WAIT) as client:
        result = await client.chat("qwen3", []).result()
    assert result.done_reason == "load" and result.message.content == ""


# -- errors before output are statuses, after output a last line -----------------------------------

async def test_an_error_before_any_output_is_a_500_by_default(fake: FakeOllama) -> None:
    fake.queue_reply(error="model runner has unexpectedly stopped")
    status, headers, raw = await post(fake, "/api/chat", {"model": "qwen3", "messages": USER})
    # streamResponse sets the Content-Type to application/json before it answers
    assert (status, headers["content-type"]) == (500, "application/json")
    assert headers.get("transfer-encoding") == "chunked"
    assert raw == b'{"error":"model runner has unexpectedly stopped"}'


@pytest.mark.parametrize("status", [429, 503])
async def test_an_error_before_output_takes_the_scripted_status(fake: FakeOllama,
                                                                status: int) -> None:
    fake.queue_reply(error="slow down", error_status=status)
    assert await error_of(fake, "/api/chat", {"model": "qwen3", "messages": USER}) == (
        status, "application/json", "slow down")
    fake.queue_reply(error="slow down", error_status=status)
    assert await error_of(fake, "/api/generate", {"model": "qwen3", "prompt": "hi"}) == (
        status, "application/json", "slow down")


async def test_an_error_after_output_stays_a_last_line_under_200(fake: FakeOllama) -> None:
    fake.queue_reply(content="partial answer", error="an error was encountered while running "
                     "the model: unexpected EOF", error_status=503)
    status, headers, raw = await post(fake, "/api/chat", {"model": "qwen3", "messages": USER,
                                                          "think": False})
    assert (status, headers["content-type"]) == (200, "application/x-ndjson")
    assert raw.endswith(b'\n{"error":"an error was encountered while running the model: '
                        b'unexpected EOF"}\n')


async def test_unstreamed_any_error_is_a_status(fake: FakeOllama) -> None:
    fake.queue_reply(content="partial answer", error="boom", error_status=503)
    assert await error_of(fake, "/api/chat", {"model": "qwen3", "messages": USER,
                                              "stream": False}) == (503, JSON_UTF8, "boom")


async def test_the_client_retries_an_error_before_output(fake: FakeOllama) -> None:
    fake.queue_reply(error="server busy, please try again.  maximum pending requests exceeded",
                     error_status=503)
    fake.queue_reply(content="After the retry.")
    async with AsyncOllama(fake.url, retry=NO_WAIT) as client:
        result = await client.chat("qwen3", USER, think=False).result()
    assert result.message.content == "After the retry." and len(fake.requests) == 2


# -- the server's texts and statuses ---------------------------------------------------------------

@pytest.mark.parametrize(("path", "body", "expected"), [
    ("/api/chat", {"model": "nope", "messages": USER}, (404, "model 'nope' not found")),
    ("/api/generate", {"model": "nope", "prompt": "hi"}, (404, "model 'nope' not found")),
    ("/api/show", {"model": "nope"}, (404, "model 'nope:latest' not found")),
    ("/api/embed", {"model": "nope", "input": "x"},
     (404, 'model "nope" not found, try pulling it first')),
    ("/api/copy", {"source": "nope", "destination": "x"}, (404, 'model "nope" not found')),
    ("/api/chat", {"model": "", "messages": USER}, (400, "model is required")),
    ("/api/chat", {"model": "  ", "messages": USER}, (400, "model is required")),
    ("/api/generate", {"prompt": "hi"}, (404, "model '' not found")),
    ("/api/chat", {"model": "bad name", "messages": USER}, (400, "invalid model name")),
])
async def test_unknown_missing_and_invalid_models(fake: FakeOllama, path: str,
                                                  body: dict[str, Any],
                                                  expected: tuple[int, str]) -> None:
    status, content_type, text = await error_of(fake, path, body)
    assert (status, text) == expected and content_type == JSON_UTF8


async def test_delete_of_an_unknown_model(fake: FakeOllama) -> None:
    status, _, raw = await request(fake, "DELETE", "/api/delete", {"model": "nope"})
    assert status == 404 and raw == b'{"error":"model \'nope\' not found"}'


async def test_names_are_found_as_ollama_finds_them(fake: FakeOllama) -> None:
    for name in ("QWEN3", "qwen3:latest", "library/qwen3",
                 "registry.ollama.ai/library/qwen3:latest"):
        status, _, raw = await post(fake, "/api/chat", {"model": name, "messages": []})
        assert status == 200 and json.loads(raw)["model"] == name, raw  # named as it was asked


@pytest.mark.parametrize(("data", "text"), [
    (b"", "missing request body"),
    (b" \n ", "missing request body"),
    (b"null", "model is required"),
    (b"{", "unexpected EOF"),
    (b"{'model': 'qwen3'}", "invalid character '\\'' looking for beginning of object key string"),
    (b'{"model": "qwen3",}', "invalid character '}' looking for beginning of object key string"),
    (b'{"model" "qwen3"}', "invalid character '\"' after object key"),
    (b'{"model": qwen3}', "invalid character 'q' looking for beginning of value"),
    (b"42", "json: cannot unmarshal number into Go value of type api.ChatRequest"),
    (b'{"model":"tiny","messages":"hi"}',
     "json: cannot unmarshal string into Go struct field ChatRequest.messages of type "
     "[]api.Message"),
    (b'{"model":"tiny","stream":"yes"}',
     "json: cannot unmarshal string into Go struct field ChatRequest.stream of type bool"),
    (b'{"model":"tiny","messages":[{"role":"user","content":7}]}',
     "json: cannot unmarshal number into Go struct field ChatRequest.messages.content of type "
     "string"),
    # images are base64 without a data: URL prefix (the ':' is byte 4)
    (b'{"model":"tiny","messages":[{"role":"user","images":["data:image/png;base64,AAAA"]}]}',
     "illegal base64 data at input byte 4"),
])
async def test_bodies_go_cannot_decode(fake: FakeOllama, data: bytes, text: str) -> None:
    assert await error_of(fake, "/api/chat", data=data) == (400, JSON_UTF8, text)


async def test_what_follows_the_first_value_is_never_read(fake: FakeOllama) -> None:
    # json.Decoder.Decode reads one value; gin never looks further
    status, _, raw = await post(fake, "/api/chat", data=b'{"model":"qwen3","messages":[]} junk')
    assert status == 200 and json.loads(raw)["done_reason"] == "load"


@pytest.mark.parametrize(("field", "value", "text"), [
    ("think", "extreme", 'invalid think value: "extreme" (must be "high", "medium", "low", "max", '
                         "true, or false)"),
    ("think", 1, 'think must be a boolean or string ("high", "medium", "low", "max", true, or '
                 "false)"),
    ("keep_alive", "soon", 'time: invalid duration "soon"'),
    ("keep_alive", "-1", 'time: missing unit in duration "-1"'),
    ("keep_alive", "5 min", 'time: unknown unit " min" in duration "5 min"'),
    ("keep_alive", True, "Unsupported type: 'bool'"),
    ("top_logprobs", 21, "top_logprobs must be between 0 and 20"),
    ("top_logprobs", -1, "top_logprobs must be between 0 and 20"),
])
async def test_bad_think_keep_alive_and_top_logprobs_are_400s(fake: FakeOllama, field: str,
                                                              value: Any, text: str) -> None:
    fake.queue_reply(content="kept")
    for path, body in (("/api/chat", {"model": "qwen3", "messages": USER}),
                       ("/api/generate", {"model": "qwen3", "prompt": "hi"})):
        assert await error_of(fake, path, {**body, field: value}) == (400, JSON_UTF8, text)
    assert fake.pending == 1


@pytest.mark.parametrize("keep_alive", ["0", "1h30m", ".5s", "-1m", -1, 30, 2.5])
async def test_keep_alive_values_the_server_takes(fake: FakeOllama, keep_alive: Any) -> None:
    status, _, _ = await post(fake, "/api/chat", {"model": "qwen3", "messages": USER,
                                                  "keep_alive": keep_alive})
    assert status == 200


@pytest.mark.parametrize(("options", "text"), [
    ({"num_ctx": "big"}, 'option "num_ctx" must be of type integer'),
    ({"seed": True}, 'option "seed" must be of type integer'),
    ({"temperature": "hot"}, 'option "temperature" must be of type float32'),
    ({"use_mmap": 1}, 'option "use_mmap" must be of type boolean'),
    ({"stop": "\n"}, 'option "stop" must be of type array'),
    ({"stop": [1]}, 'option "stop" must be of an array of strings'),
])
async def test_wrong_option_types_are_500s(fake: FakeOllama, options: dict[str, Any],
                                           text: str) -> None:
    for path, body in (("/api/chat", {"model": "qwen3", "messages": USER}),
                       ("/api/generate", {"model": "qwen3", "prompt": "hi"}),
                       ("/api/embed", {"model": "qwen3", "input": "hi"})):
        assert await error_of(fake, path, {**body, "options": options}) == (500, JSON_UTF8, text)
    assert fake.loaded == []  # refused before the model was scheduled


async def test_unknown_options_are_ignored_and_numbers_are_numbers(fake: FakeOllama) -> None:
    status, _, _ = await post(fake, "/api/chat", {
        "model": "qwen3", "messages": USER,
        "options": {"bogus": 1, "num_ctx": 8192.0, "temperature": 0, "stop": None}})
    assert status == 200


async def test_a_bad_format_is_the_runners_500(fake: FakeOllama) -> None:
    for value in ("yaml", 5, [1]):
        status, content_type, text = await error_of(
            fake, "/api/chat", {"model": "qwen3", "messages": USER, "format": value})
        quoted = json.dumps(json.dumps(value, separators=(",", ":")))
        assert (status, content_type) == (500, "application/json")
        assert text == f'invalid format: {quoted}; expected "json" or a valid JSON Schema object'
    for value in ("json", {"type": "object"}, None, ""):
        status, _, _ = await post(fake, "/api/chat", {"model": "qwen3", "messages": USER,
                                                      "format": value})
        assert status == 200, value


async def test_truncate_false_with_a_prompt_longer_than_the_context(fake: FakeOllama) -> None:
    long = [{"role": "user", "content": "word " * 600}]
    body = {"model": "qwen3", "messages": long, "options": {"num_ctx": 512}}
    assert await error_of(fake, "/api/chat", {**body, "truncate": False}) == (
        400, "application/json", "the input length exceeds the context length")
    chunks = await stream(fake, "/api/chat", body)  # truncated to fit by default
    assert chunks[-1]["prompt_eval_count"] == 512


# -- capabilities per model ------------------------------------------------------------------------

@pytest.mark.parametrize("think", [True, "high", "max"])
async def test_think_on_a_model_without_thinking(fake: FakeOllama, think: Any) -> None:
    for path, body in (("/api/chat", {"model": "tiny", "messages": USER}),
                       ("/api/generate", {"model": "tiny", "prompt": "hi"})):
        assert await error_of(fake, path, {**body, "think": think}) == (
            400, JSON_UTF8, '"tiny" does not support thinking')


async def test_think_false_on_a_model_without_thinking_is_fine(fake: FakeOllama) -> None:
    fake.queue_reply(thinking="never shown", content="Plain.")
    chunks = await stream(fake, "/api/chat", {"model": "tiny", "messages": USER, "think": False})
    assert joined(chunks, "content") == "Plain." and joined(chunks, "thinking") == ""


async def test_tools_on_a_model_without_tools(fake: FakeOllama) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert await error_of(fake, "/api/chat", {"model": "bare", "messages": USER,
                                              "tools": tools}) == (
        400, JSON_UTF8, "registry.ollama.ai/library/bare:latest does not support tools")
    status, _, _ = await post(fake, "/api/chat", {"model": "bare", "messages": USER, "tools": []})
    assert status == 200  # no tools asked for: nothing to refuse


async def test_suffix_needs_insert_and_embedding_models_do_not_generate(fake: FakeOllama) -> None:
    assert await error_of(fake, "/api/generate", {"model": "tiny", "prompt": "def f(",
                                                  "suffix": "return x"}) == (
        400, JSON_UTF8, "registry.ollama.ai/library/tiny:latest does not support insert")
    assert await error_of(fake, "/api/generate", {"model": "embedder", "prompt": "x"}) == (
        400, JSON_UTF8, '"embedder" does not support generate')
    status, _, raw = await post(fake, "/api/embed", {"model": "embedder", "input": "x"})
    assert status == 200 and len(json.loads(raw)["embeddings"][0]) == 4  # its own length


async def test_thinking_models_think_unless_told_not_to(fake: FakeOllama) -> None:
    for think, shown in ((None, True), (True, True), ("low", True), (False, False)):
        fake.queue_reply(thinking="Hmm.", content="Yes.")
        body: dict[str, Any] = {"model": "qwen3", "messages": USER}
        if think is not None:
            body["think"] = think
        chunks = await stream(fake, "/api/chat", body)
        assert joined(chunks, "thinking") == ("Hmm." if shown else ""), think
        assert joined(chunks, "content") == "Yes."


async def test_gpt_oss_takes_levels_and_always_thinks(fake: FakeOllama) -> None:
    # harmony: true/false are ignored (medium), "max" is read as "high"
    expected = {"low": "low", "high": "high", "max": "high", True: "medium", False: "medium"}
    for think, level in expected.items():
        chunks = await stream(fake, "/api/chat", {"model": "gpt-oss:20b", "messages": USER,
                                                  "think": think})
        assert joined(chunks, "thinking").endswith(f" Reasoning: {level}."), think


def test_fake_models_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown capabilities"):
        FakeModel("x", capabilities=["completion", "telepathy"])
    with pytest.raises(ValueError, match="not a valid Ollama model name"):
        FakeModel("bad name")
    with pytest.raises(TypeError):
        FakeModel("x", ["completion"])  # type: ignore[misc]  # keyword-only after the name


async def test_a_client_error_names_the_refusal(fake: FakeOllama) -> None:
    async with AsyncOllama(fake.url, retry=NO_WAIT) as client:
        with pytest.raises(ResponseError) as caught:
            await client.chat("tiny", USER, think=True).result()
    assert caught.value.status_code == 400
    assert caught.value.error == '"tiny" does not support thinking'
