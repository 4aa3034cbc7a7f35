"""The fields today's server has (issue 12, against Ollama v0.33's api/types.go): kept and typed on
chunks and results, sent when asked for. Recorded answers of a real server are replayed byte for
byte (tests/fixtures/transcripts, copied unchanged from the shared recordings); fields those
recordings lack are served as the bytes Go's json.Marshal writes for api/types.go's structs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from ollama_stream import (
    AsyncOllama,
    ContextLengthError,
    Message,
    ProtocolError,
    ResponseError,
)
from ollama_stream.protocol import ChatAccumulator, build_chat_request, parse_chat_chunk
from ollama_stream.testing import FakeOllama

from .conftest import NO_WAIT
from .servers import LAST_CHUNK, http_chunk, raw_server, read_request, response_head

TRANSCRIPTS = Path(__file__).parent / "fixtures" / "transcripts"
USER = [{"role": "user", "content": "hi"}]
NDJSON = "application/x-ndjson"
JSON = "application/json; charset=utf-8"

Answer = tuple[int, str, bytes]  # status, Content-Type, body


def recorded(name: str) -> Answer:
    """A recorded exchange's answer: its status, Content-Type and body bytes."""
    status = int((TRANSCRIPTS / f"{name}.status").read_text().split()[0])
    headers = (TRANSCRIPTS / f"{name}.headers").read_text().splitlines()
    content_type = next(line.split(":", 1)[1].strip() for line in headers
                        if line.lower().startswith("content-type:"))
    return status, content_type, (TRANSCRIPTS / f"{name}.body").read_bytes()


def recorded_request(name: str) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads((TRANSCRIPTS / f"{name}.request").read_text()
                                        .split("\n", 2)[2])
    return body


def lines(*objects: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(obj) + b"\n" for obj in objects)


@contextlib.asynccontextmanager
async def serving(answers: Sequence[Answer], seen: list[tuple[str, dict[str, Any] | None]],
                  headers: list[dict[str, str]] | None = None) -> AsyncIterator[str]:
    """A byte-level server giving `answers` in turn, one HTTP chunk per line (as Ollama flushes);
    records each request as (method and path, decoded body), and its headers in `headers`."""
    queue = list(answers)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                line, received, body = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            method, path, _ = line.decode().split(" ", 2)
            seen.append((f"{method} {path}", orjson.loads(body) if body else None))
            if headers is not None:
                headers.append(received)
            status, content_type, data = queue.pop(0)
            writer.write(response_head(status, content_type))
            for piece in data.splitlines(keepends=True):
                writer.write(http_chunk(piece))
            writer.write(LAST_CHUNK)
            await writer.drain()

    async with raw_server(handler) as url:
        yield url


# -- chat: any role, unknown keys dropped ---------------------------------------------------------

async def test_a_role_the_templates_do_not_know_gets_the_servers_reply() -> None:
    seen: list[tuple[str, dict[str, Any] | None]] = []
    history = [{"role": "wizard", "content": "hi", "timestamp": "2026-12-01T18:21:35Z",
                "id": "msg-1"}]
    async with (serving([recorded("chat_bad_role")], seen) as url,
                AsyncOllama(url, retry=NO_WAIT) as client):
        result = await client.chat("tiny", history).result()
    assert seen == [("POST /api/chat", {**recorded_request("chat_bad_role"), "stream": True})]
    assert result.message == Message("assistant", "Hello world!")


# -- chat: the final chunk as .raw, remote_model and remote_host ----------------------------------

async def test_chat_result_keeps_the_final_chunk_as_raw() -> None:
    status, content_type, body = recorded("chat_stream")
    final = orjson.loads(body.splitlines()[-1])
    async with (serving([(status, content_type, body)], []) as url,
                AsyncOllama(url, retry=NO_WAIT) as client):
        stream = client.chat("tiny", USER)
        chunks = [chunk async for chunk in stream]
        result = await stream.result()
    assert result.raw == final and result.raw is chunks[-1].raw
    assert result.remote_model is None and result.remote_host is None
    assert all(chunk.remote_model is None and chunk.images == () for chunk in chunks)


REMOTE = {"remote_model": "gpt-oss:120b", "remote_host": "https://ollama.com:443"}


def remote_chat_lines() -> bytes:
    """What ChatHandler writes for a remote model: remote_model and remote_host on every line, in
    ChatResponse's field order (after model)."""
    def line(content: str, **final: Any) -> dict[str, Any]:
        return {"model": "gpt-oss:120b-cloud", **REMOTE, "created_at": "2026-08-21T10:00:00.1Z",
                "message": {"role": "assistant", "content": content}, "done": bool(final),
                **final}

    return lines(line("Hel"), line("lo"), line("", done_reason="stop", eval_count=2))


async def test_remote_model_and_host_are_typed_on_chunks_and_results() -> None:
    async with (serving([(200, NDJSON, remote_chat_lines())], []) as url,
                AsyncOllama(url, retry=NO_WAIT) as client):
        stream = client.chat("gpt-oss:120b-cloud", USER)
        chunks = [chunk async for chunk in stream]
        result = await stream.result()
    assert [(c.remote_model, c.remote_host) for c in chunks] == [tuple(REMOTE.values())] * 3
    assert (result.remote_model, result.remote_host) == tuple(REMOTE.values())
    assert result.model == "gpt-oss:120b-cloud" and result.message.content == "Hello"


def test_a_plain_delta_with_remote_fields_stays_on_the_fast_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import ollama_stream.protocol as protocol

    def careful(obj: dict[str, Any]) -> None:
        raise AssertionError(f"left the fast path: {obj}")

    obj = orjson.loads(remote_chat_lines().splitlines()[0])
    monkeypatch.setattr(protocol, "_parse_chat_chunk", careful)
    chunk = parse_chat_chunk(obj)
    assert (chunk.content, chunk.remote_model, chunk.remote_host) == ("Hel", *REMOTE.values())


@pytest.mark.parametrize("name", ["remote_model", "remote_host"])
@pytest.mark.parametrize("done", [False, True])
def test_a_remote_field_of_the_wrong_type_is_a_protocol_error(name: str, done: bool) -> None:
    obj = {"model": "m", "message": {"role": "assistant", "content": ""}, "done": done, name: 1}
    with pytest.raises(ProtocolError, match=name):
        parse_chat_chunk(obj)


def test_old_positional_construction_still_works() -> None:
    from ollama_stream import ChatChunk, ChatResult

    chunk = ChatChunk("m", "t", "c", "", (), False, None, None, None, {})
    result = ChatResult(Message("assistant", "c"), "m", "stop", None)
    assert chunk.images == () and chunk.remote_model is None
    assert result.raw == {} and result.logprobs is None and result.remote_host is None


# -- chat: images in the reply -------------------------------------------------------------------

PIXEL = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGBgAAAABQABpfZFQAAAAABJRU5Er"
         "kJggg==")


async def test_images_in_the_reply_are_kept_in_the_accumulated_message() -> None:
    message = {"role": "assistant", "content": "Here:", "images": [PIXEL]}
    body = lines({"model": "m", "created_at": "t", "message": message, "done": False},
                 {"model": "m", "created_at": "t",
                  "message": {"role": "assistant", "content": ""}, "done": True})
    seen: list[tuple[str, dict[str, Any] | None]] = []
    async with (serving([(200, NDJSON, body), recorded("chat_stream")], seen) as url,
                AsyncOllama(url, retry=NO_WAIT) as client):
        stream = client.chat("m", USER)
        chunks = [chunk async for chunk in stream]
        result = await stream.result()
        assert chunks[0].images == (PIXEL,) and stream.message.images == (PIXEL,)
        assert result.message == Message("assistant", "Here:", images=[PIXEL])
        await client.chat("m", [*USER, result.message]).result()  # the history goes back as it is
    assert seen[1][1] is not None
    assert seen[1][1]["messages"][1] == message


@pytest.mark.parametrize("images", [["/etc/passwd"], ["not base64!"], [1], "aGk="])
def test_images_that_are_not_base64_are_a_protocol_error(images: object) -> None:
    # never taken for a path: the message would read that file when sent back
    obj = {"model": "m", "message": {"role": "assistant", "content": "", "images": images},
           "done": False}
    with pytest.raises(ProtocolError, match="images"):
        parse_chat_chunk(obj)


def test_the_accumulator_never_reads_a_reply_image_as_a_path(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    (tmp_path / "aGk=").write_bytes(b"a file named like the base64 of 'hi'")
    monkeypatch.chdir(tmp_path)
    acc = ChatAccumulator()
    acc.add(parse_chat_chunk({"model": "m", "done": True,
                              "message": {"role": "assistant", "content": "", "images": ["aGk="]}}))
    assert acc.result().message.images == ("aGk=",)


# -- chat: truncate and shift ---------------------------------------------------------------------

@pytest.mark.parametrize(("truncate", "shift"), [(False, None), (None, False), (True, True)])
def test_truncate_and_shift_are_sent_only_when_set(truncate: bool | None,
                                                    shift: bool | None) -> None:
    body = build_chat_request("m", USER, truncate=truncate, shift=shift)
    assert body.get("truncate") == truncate and body.get("shift") == shift
    assert ("truncate" in body) is (truncate is not None)
    assert ("shift" in body) is (shift is not None)


@pytest.mark.parametrize("name", ["truncate", "shift"])
@pytest.mark.parametrize("value", [0, 1, "false", "yes"])
def test_truncate_and_shift_must_be_bools(name: str, value: object) -> None:
    with pytest.raises(TypeError, match=f"{name} must be a bool"):
        AsyncOllama("http://127.0.0.1:9").chat("m", USER, **{name: value})  # type: ignore[arg-type]


async def test_truncate_false_gets_the_servers_context_error() -> None:
    seen: list[tuple[str, dict[str, Any] | None]] = []
    request = recorded_request("chat_truncate_false_overflow")
    async with (serving([recorded("chat_truncate_false_overflow")], seen) as url,
                AsyncOllama(url, retry=NO_WAIT) as client):
        with pytest.raises(ContextLengthError) as info:
            await client.chat("tiny", request["messages"], truncate=False,
                              options=request["options"]).result()
    assert seen[0][1] is not None and seen[0][1]["truncate"] is False
    assert isinstance(info.value, ResponseError) and info.value.status_code == 400
    assert info.value.error == "the input length exceeds the context length"


async def test_truncate_and_shift_reach_the_fake(fake: FakeOllama, client: AsyncOllama) -> None:
    await client.chat("qwen3", USER, truncate=False, shift=False).result()
    assert fake.requests[-1]["truncate"] is False and fake.requests[-1]["shift"] is False


# -- generate: tool_calls, .raw, remote fields, truncate and shift --------------------------------

async def test_generate_result_keeps_the_final_chunk_as_raw() -> None:
    status, content_type, body = recorded("generate_think")
    async with (serving([(status, content_type, body)], []) as url,
                AsyncOllama(url, retry=NO_WAIT) as client):
        result = await client.generate("tiny-think", "hi", think=True).result()
    assert result.raw == orjson.loads(body.splitlines()[-1])
    assert result.raw["context"] == result.context
    assert (result.thinking, result.response) == ("Let me think", "Hello world!")
    assert result.tool_calls == () and result.remote_model is None


def generate_lines(final: dict[str, Any]) -> bytes:
    """GenerateResponse's field order: model, remote_*, created_at, response, done, done_reason,
    context, metrics, tool_calls."""
    head = {"model": "qwen3", "created_at": "2026-08-21T10:00:00.1Z"}
    return lines({**head, "response": "", "thinking": "Weather.", "done": False},
                 {**head, "response": "", "done": True, "done_reason": "stop", "context": [1, 2],
                  "eval_count": 3, **final})


GO_CALL = {"function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}}


async def test_generate_tool_calls_on_chunks_and_result() -> None:
    from ollama_stream import GenerateChunk, ToolCall

    async with (serving([(200, NDJSON, generate_lines({"tool_calls": [GO_CALL]}))], []) as url,
                AsyncOllama(url, retry=NO_WAIT) as client):
        stream = client.generate("qwen3", "weather in Paris?")
        chunks: list[GenerateChunk] = [chunk async for chunk in stream]
        result = await stream.result()
    call = ToolCall("get_weather", {"city": "Paris"}, None, 0)
    assert [c.tool_calls for c in chunks] == [(), (call,)]
    assert result.tool_calls == (call,) and result.thinking == "Weather."


async def test_generate_tool_calls_from_the_fake(fake: FakeOllama, client: AsyncOllama) -> None:
    from ollama_stream import ToolCall

    fake.queue_reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})])
    result = await client.generate("qwen3", "weather in Paris?", truncate=False,
                                   shift=True).result()
    assert [(c.name, c.arguments) for c in result.tool_calls] == [("get_weather",
                                                                    {"city": "Paris"})]
    assert result.raw["done"] is True and "tool_calls" in result.raw
    assert fake.requests[-1]["truncate"] is False and fake.requests[-1]["shift"] is True


async def test_generate_remote_fields() -> None:
    async with (serving([(200, NDJSON, generate_lines(REMOTE))], []) as url,
                AsyncOllama(url, retry=NO_WAIT) as client):
        result = await client.generate("qwen3", "hi").result()
    assert (result.remote_model, result.remote_host) == tuple(REMOTE.values())


@pytest.mark.parametrize("calls", [{"name": "f"}, "f", [{"function": "f"}]])
def test_generate_tool_calls_of_the_wrong_shape_are_a_protocol_error(calls: object) -> None:
    from ollama_stream.endpoints import parse_generate_chunk

    with pytest.raises(ProtocolError, match=r"tool_calls|tool call"):
        parse_generate_chunk({"model": "m", "response": "", "done": True, "tool_calls": calls})


def test_generate_request_truncate_and_shift() -> None:
    from ollama_stream.endpoints import build_generate_request

    body = build_generate_request("m", "hi", truncate=False, shift=False)
    assert body["truncate"] is False and body["shift"] is False
    assert "truncate" not in build_generate_request("m", "hi")
    with pytest.raises(TypeError, match="shift must be a bool"):
        build_generate_request("m", "hi", shift="no")  # type: ignore[arg-type]


# -- tags, ps, show: .raw and the fields of today's server ----------------------------------------

async def test_list_and_ps_keep_the_answer_as_raw() -> None:
    answers = [recorded("tags"), recorded("ps_loaded")]
    async with serving(answers, []) as url, AsyncOllama(url, retry=NO_WAIT) as client:
        listed, running = await client.list(), await client.ps()
    assert listed.raw == orjson.loads(answers[0][2]) and running.raw == orjson.loads(answers[1][2])
    assert [m.name for m in listed.models] == ["tiny-think:latest", "tiny:latest"]
    assert listed.models[0].capabilities == () and listed.models[0].details.context_length is None
    assert running.models[0].context_length == 2048


async def test_tags_of_a_newer_server_capabilities_lengths_and_remote_models() -> None:
    tags = {"models": [
        {"name": "qwen3:latest", "model": "qwen3:latest",
         "modified_at": "2026-08-21T12:00:00+02:00", "size": 5, "digest": "d",
         "details": {"parent_model": "", "format": "gguf", "family": "qwen3", "families": None,
                     "parameter_size": "8.2B", "quantization_level": "Q4_K_M",
                     "context_length": 40960, "embedding_length": 4096},
         "capabilities": ["completion", "tools", "thinking"]},
        {"name": "gpt-oss:120b-cloud", "model": "gpt-oss:120b-cloud", **REMOTE,
         "modified_at": "2026-08-21T12:00:00+02:00", "size": 384, "digest": "e",
         "details": {"parent_model": "", "format": "", "family": "", "families": None,
                     "parameter_size": "", "quantization_level": ""}}]}
    async with (serving([(200, JSON, orjson.dumps(tags))], []) as url,
                AsyncOllama(url, retry=NO_WAIT) as client):
        local, remote = (await client.list()).models
    assert local.capabilities == ("completion", "tools", "thinking")
    assert (local.details.context_length, local.details.embedding_length) == (40960, 4096)
    assert local.details.families == () and local.remote_model is None
    assert (remote.remote_model, remote.remote_host) == tuple(REMOTE.values())


async def test_show_sends_system_and_options_and_keeps_the_answer_as_raw() -> None:
    seen: list[tuple[str, dict[str, Any] | None]] = []
    answer = recorded("show_tiny_think")
    async with serving([answer], seen) as url, AsyncOllama(url, retry=NO_WAIT) as client:
        info = await client.show("tiny-think", system="Be terse.", options={"num_ctx": 8192})
    assert seen == [("POST /api/show", {"model": "tiny-think", "system": "Be terse.",
                                        "options": {"num_ctx": 8192}})]
    assert info.raw == orjson.loads(answer[2])
    assert info.capabilities == ("completion", "tools", "thinking")
    assert (info.renderer, info.parser, info.requires, info.messages) == ("", "", "", ())


async def test_show_of_a_newer_server_renderer_parser_requires_messages_remote() -> None:
    answer = {"modelfile": "FROM qwen3-coder\n", "parameters": "", "template": "",
              "system": "Be terse.", "renderer": "qwen3-coder", "parser": "qwen3-coder",
              "details": {"family": "qwen3moe"},
              "messages": [{"role": "user", "content": "hi"},
                           {"role": "assistant", "content": "Hello!"}],
              **REMOTE, "model_info": {}, "capabilities": ["completion", "tools"],
              "modified_at": "2026-08-21T12:00:00+02:00", "requires": "0.12.0"}
    async with (serving([(200, JSON, orjson.dumps(answer))], []) as url,
                AsyncOllama(url, retry=NO_WAIT) as client):
        info = await client.show("qwen3-coder")
    assert (info.renderer, info.parser, info.requires) == ("qwen3-coder", "qwen3-coder", "0.12.0")
    assert info.messages == (Message("user", "hi"), Message("assistant", "Hello!"))
    assert (info.remote_model, info.remote_host, info.system) == (*REMOTE.values(), "Be terse.")


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"system": 1}, "system must be a str"), ({"options": [("num_ctx", 1)]}, "options must be"),
])
async def test_show_arguments_are_checked_before_any_io(kwargs: dict[str, Any], error: str,
                                                        fake: FakeOllama,
                                                        client: AsyncOllama) -> None:
    with pytest.raises(TypeError, match=error):
        await client.show("qwen3", **kwargs)
    assert fake.received == []


async def test_show_from_the_fake_with_system(client: AsyncOllama) -> None:
    info = await client.show("qwen3", system="Be terse.")
    assert info.raw and isinstance(info.system, str)


# -- create: renderer, parser, requires -----------------------------------------------------------

async def test_create_sends_renderer_parser_and_requires(fake: FakeOllama,
                                                          client: AsyncOllama) -> None:
    progress = client.create("coder", from_="qwen3", renderer="qwen3-coder",
                             parser="qwen3-coder", requires="0.12.0")
    assert await progress.result() == "success"
    body = next(r.body for r in fake.received if r.path == "/api/create")
    assert (body["renderer"], body["parser"], body["requires"]) == ("qwen3-coder",
                                                                    "qwen3-coder", "0.12.0")
    with pytest.raises(TypeError, match="renderer must be a str"):
        client.create("coder", from_="qwen3", renderer=1)  # type: ignore[arg-type]


# -- status ---------------------------------------------------------------------------------------

GIN_404 = (404, "text/plain", b"404 page not found")


async def test_status_is_typed() -> None:
    from ollama_stream import CloudStatus, StatusResult

    seen: list[tuple[str, dict[str, Any] | None]] = []
    answer = b'{"cloud":{"disabled":true,"source":"env"}}'
    async with (serving([(200, JSON, answer)], seen) as url,
                AsyncOllama(url, retry=NO_WAIT) as client):
        status = await client.status()
    assert seen == [("GET /api/status", None)]
    assert status == StatusResult(CloudStatus(True, "env"), orjson.loads(answer))


@pytest.mark.parametrize(("call", "path", "version"), [
    (lambda c: c.status(), "/api/status", "v0.16.2"),
    (lambda c: c.web_search("ollama"), "/api/experimental/web_search", "v0.18.0"),
    (lambda c: c.web_fetch("https://ollama.com"), "/api/experimental/web_fetch", "v0.18.0"),
])
async def test_an_older_server_says_which_version_added_the_endpoint(call: Any, path: str,
                                                                    version: str) -> None:
    async with serving([GIN_404], []) as url, AsyncOllama(url, retry=NO_WAIT) as client:
        with pytest.raises(ResponseError) as info:
            await call(client)
    assert info.value.status_code == 404
    assert path in str(info.value) and f"new in Ollama {version}" in str(info.value)


# -- web search and fetch -------------------------------------------------------------------------

SEARCH = {"results": [{"title": "Ollama", "url": "https://ollama.com/",
                       "content": "Cloud models are now available..."},
                      {"title": "GitHub", "url": "https://github.com/ollama/ollama",
                       "content": "Get up and running."}]}
FETCH = {"title": "Ollama", "content": "Cloud models are now available...",
         "links": ["https://ollama.com/models", "https://github.com/ollama/ollama"]}


async def test_web_search_and_fetch_through_a_local_server(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    from ollama_stream import WebFetchResult, WebSearchHit, WebSearchResult

    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)  # a local server signs the calls itself
    seen: list[tuple[str, dict[str, Any] | None]] = []
    answers = [(200, JSON, orjson.dumps(SEARCH)), (200, JSON, orjson.dumps(FETCH))]
    async with serving(answers, seen) as url, AsyncOllama(url, retry=NO_WAIT) as client:
        found = await client.web_search("what is ollama?", max_results=2)
        page = await client.web_fetch("ollama.com")
    assert seen == [("POST /api/experimental/web_search", {"query": "what is ollama?",
                                                           "max_results": 2}),
                    ("POST /api/experimental/web_fetch", {"url": "ollama.com"})]
    hits = [WebSearchHit(**hit, raw=hit) for hit in SEARCH["results"]]
    assert found == WebSearchResult(hits, SEARCH)
    assert page == WebFetchResult("Ollama", FETCH["content"], tuple(FETCH["links"]), FETCH)


@contextlib.contextmanager
def hosted(url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Take the loopback server at `url` for ollama.com (never reach the real one)."""
    import ollama_stream.config as config

    monkeypatch.setattr(config, "is_hosted_service", lambda base: base == url)
    yield


async def test_web_search_and_fetch_at_the_hosted_service_send_the_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", "sk-test")
    seen: list[tuple[str, dict[str, Any] | None]] = []
    headers: list[dict[str, str]] = []
    answers = [(200, JSON, orjson.dumps(SEARCH)), (200, JSON, orjson.dumps(FETCH))]
    async with serving(answers, seen, headers) as url:
        with hosted(url, monkeypatch):
            async with AsyncOllama(url, retry=NO_WAIT) as client:
                assert (await client.web_search("q")).results[0].title == "Ollama"
                assert (await client.web_fetch("https://ollama.com")).links
    assert [path for path, _ in seen] == ["POST /api/web_search", "POST /api/web_fetch"]
    assert [h["authorization"] for h in headers] == ["Bearer sk-test"] * 2


@pytest.fixture
def no_io(monkeypatch: pytest.MonkeyPatch) -> None:
    from ollama_stream._http import Transport

    async def refuse(self: Transport) -> None:
        raise AssertionError(f"a request was about to go to {self.host}")

    monkeypatch.setattr(Transport, "session", refuse)


@pytest.mark.parametrize("call", [lambda c: c.web_search("q"), lambda c: c.web_fetch("u")])
@pytest.mark.parametrize("host", ["ollama.com", "https://ollama.com", "OLLAMA.COM/"])
async def test_the_hosted_service_without_a_key_is_a_value_error_before_any_io(
        call: Any, host: str, monkeypatch: pytest.MonkeyPatch, no_io: None) -> None:
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    async with AsyncOllama(host) as client:
        with pytest.raises(ValueError, match="OLLAMA_API_KEY") as info:
            await call(client)
    assert "https://ollama.com:443" in str(info.value).lower()
    assert "ollama signin" in str(info.value)


def test_the_blocking_twin_raises_the_same(monkeypatch: pytest.MonkeyPatch, no_io: None) -> None:
    from ollama_stream import Ollama

    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    with Ollama("ollama.com") as client, pytest.raises(ValueError, match="OLLAMA_API_KEY"):
        client.web_search("q", max_results=3)


async def test_an_authorization_header_is_a_key_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    seen: list[tuple[str, dict[str, Any] | None]] = []
    async with serving([(200, JSON, orjson.dumps(FETCH))], seen) as url:
        with hosted(url, monkeypatch):
            async with AsyncOllama(url, headers={"authorization": "Bearer k"}) as client:
                await client.web_fetch("https://ollama.com")
    assert seen == [("POST /api/web_fetch", {"url": "https://ollama.com"})]


@pytest.mark.parametrize(("args", "error"), [
    (("",), "query must be a non-empty str"), ((" ",), "query"), ((1,), "query"),
    (("q", 0), "max_results must be a positive int"), (("q", True), "max_results"),
    (("q", "5"), "max_results"),
])
async def test_web_search_arguments_are_checked_before_any_io(args: tuple[Any, ...], error: str,
                                                              no_io: None) -> None:
    async with AsyncOllama("http://127.0.0.1:9") as client:
        with pytest.raises(ValueError, match=error):
            await client.web_search(*args)
        with pytest.raises(ValueError, match="url must be a non-empty str"):
            await client.web_fetch("")


# -- the legacy /api/embeddings -------------------------------------------------------------------

async def test_embeddings_posts_one_prompt_and_types_the_vector() -> None:
    from ollama_stream import AsyncOllama as Client
    from ollama_stream import EmbeddingsResult

    seen: list[tuple[str, dict[str, Any] | None]] = []
    answers = [(200, JSON, b'{"embedding":[0.5,-1.25,3]}'), (200, JSON, b'{"embedding":[]}')]
    async with serving(answers, seen) as url, Client(url, retry=NO_WAIT) as client:
        result = await client.embeddings("nomic-embed-text", "hello", keep_alive="1m",
                                         options={"num_ctx": 512})
        loaded = await client.embeddings("nomic-embed-text", "")
    assert seen == [("POST /api/embeddings", {"model": "nomic-embed-text", "prompt": "hello",
                                              "keep_alive": "1m", "options": {"num_ctx": 512}}),
                    ("POST /api/embeddings", {"model": "nomic-embed-text", "prompt": ""})]
    assert result == EmbeddingsResult([0.5, -1.25, 3.0], {"embedding": [0.5, -1.25, 3]})
    assert all(type(x) is float for x in result.embedding) and loaded.embedding == []
    doc = Client.embeddings.__doc__ or ""
    assert doc.startswith("Deprecated: use `embed`") and "not normalised" in doc


async def test_embeddings_of_an_unknown_model_and_bad_arguments(fake: FakeOllama,
                                                                client: AsyncOllama) -> None:
    from ollama_stream import ModelNotFoundError

    with pytest.raises(TypeError, match="prompt must be a str"):
        await client.embeddings("nomic-embed-text", ["a", "b"])  # type: ignore[arg-type]
    assert fake.received == []
    async with (serving([(404, JSON, b'{"error":"model \\"nope\\" not found, try pulling it '
                                     b'first"}')], []) as url,
                AsyncOllama(url, retry=NO_WAIT) as other):
        with pytest.raises(ModelNotFoundError, match="nope"):
            await other.embeddings("nope", "x")


def test_embeddings_parser_tolerates_null_and_refuses_strings() -> None:
    from ollama_stream.endpoints import parse_embeddings

    assert parse_embeddings({"embedding": None}).embedding == []
    with pytest.raises(ProtocolError, match="embedding"):
        parse_embeddings({"embedding": "0.1,0.2"})


# -- against FakeOllama: what it serves today ------------------------------------------------------

async def test_any_role_and_stored_keys_against_the_fake(fake: FakeOllama,
                                                          client: AsyncOllama) -> None:
    history = [{"role": "Developer", "content": "Be brief.", "id": "m1"},
               {"role": "user", "content": "hi", "timestamp": 1767225600}]
    result = await client.chat("qwen3", history).result()
    assert fake.requests[-1]["messages"] == [{"role": "developer", "content": "Be brief."},
                                             {"role": "user", "content": "hi"}]
    assert result.raw["done"] is True and result.raw["done_reason"] == result.done_reason
    assert result.raw["model"] == result.model


async def test_truncate_and_shift_pass_through_the_native_backend(fake: FakeOllama) -> None:
    from ollama_stream import NativeBackend

    async with AsyncOllama(fake.url, backend=NativeBackend(fake.url)) as client:
        await client.chat("qwen3", USER, truncate=False, shift=True).result()
    assert fake.requests[-1]["truncate"] is False and fake.requests[-1]["shift"] is True


def test_the_blocking_twins_take_the_same_arguments() -> None:
    from ollama_stream import Ollama, ToolCall

    with FakeOllama() as fake, Ollama(fake.url) as client:
        fake.queue_reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})])
        result = client.generate("qwen3", "weather?", truncate=False).result()
        assert [call.name for call in result.tool_calls] == ["get_weather"]
        assert client.show("qwen3", system="Be terse.").raw
        assert client.list().raw["models"] and isinstance(client.ps().raw, dict)
    assert fake.requests[-1]["truncate"] is False
