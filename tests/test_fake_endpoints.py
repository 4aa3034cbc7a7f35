"""FakeOllama's endpoints besides /api/chat, read over real HTTP with plain aiohttp: generate,
embed, the model store (tags, show, ps, pull, push, create, copy, delete), blobs and the root.
Shapes are checked key by key against Ollama's own (see PROTOCOL.md), so that the fake stays a
faithful stand-in."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import struct
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import ollama
import pytest

from ollama_stream.testing import DEFAULT_MODELS, DEFAULT_PULLABLE, FakeOllama

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
LAYER_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
METRICS = ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
           "eval_count", "eval_duration")
DETAILS_KEYS = {"parent_model", "format", "family", "families", "parameter_size",
                "quantization_level"}
# /api/tags adds the two lengths (v0.30); /api/ps and /api/show do not
TAGS_DETAILS_KEYS = DETAILS_KEYS | {"context_length", "embedding_length"}
PS_KEYS = {"name", "model", "size", "digest", "details", "expires_at", "size_vram",
           "context_length"}
SHOW_KEYS = {"license", "modelfile", "parameters", "template", "details", "model_info",
             "tensors", "capabilities", "modified_at"}
PULL_FAILED = {"error": "pull model manifest: file does not exist"}
USER = [{"role": "user", "content": "Why is the sky blue?"}]


# -- helpers ---------------------------------------------------------------------------------------

async def call(fake: FakeOllama, method: str, path: str, body: Any = None, *,
               data: bytes | None = None) -> tuple[int, str, bytes]:
    """One request with plain aiohttp: (status, Content-Type, raw body)."""
    kwargs: dict[str, Any] = ({"data": data} if data is not None
                              else {} if body is None else {"json": body})
    async with (aiohttp.ClientSession() as session,
                session.request(method, f"{fake.url}{path}", **kwargs) as response):
        return response.status, response.headers.get("Content-Type", ""), await response.read()


async def call_json(fake: FakeOllama, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """A request answered with one JSON document: (status, decoded body)."""
    status, content_type, raw = await call(fake, method, path, body)
    assert content_type.startswith("application/json"), (content_type, raw)
    return status, json.loads(raw)


def ndjson(raw: bytes) -> list[dict[str, Any]]:
    """Every line must be exactly one JSON object, and the body must end with a newline."""
    text = raw.decode()
    assert text.endswith("\n"), "the stream should end with a newline"
    lines = [json.loads(line) for line in text.splitlines()]
    assert all(isinstance(line, dict) for line in lines)
    return lines


async def stream(fake: FakeOllama, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """A streamed answer: status 200, NDJSON, and its decoded lines."""
    status, content_type, raw = await call(fake, "POST", path, body)
    assert status == 200, raw
    assert content_type == "application/x-ndjson"
    return ndjson(raw)


async def tags(fake: FakeOllama) -> dict[str, dict[str, Any]]:
    status, body = await call_json(fake, "GET", "/api/tags")
    assert status == 200
    return {model["name"]: model for model in body["models"]}


async def ps(fake: FakeOllama) -> list[dict[str, Any]]:
    status, body = await call_json(fake, "GET", "/api/ps")
    assert status == 200
    assert set(body) == {"models"}
    models: list[dict[str, Any]] = body["models"]
    return models


async def chat_status(fake: FakeOllama, model: str) -> int:
    status, _, _ = await call(fake, "POST", "/api/chat",
                              {"model": model, "messages": USER, "stream": False})
    return status


def statuses(lines: list[dict[str, Any]]) -> list[str]:
    return [line["status"] for line in lines if "status" in line]


def layer_kinds(lines: list[dict[str, Any]]) -> list[str]:
    """A create's statuses with the layer digests cut off: "using existing layer" (the store has
    it) or "creating new layer" (v0.33's manifest/layer.go), the others as they are."""
    kinds = []
    for status in statuses(lines):
        verb, _, digest = status.rpartition(" ")
        if verb in ("using existing layer", "creating new layer"):
            assert LAYER_DIGEST.match(digest), status
            kinds.append(verb)
        else:
            kinds.append(status)
    return kinds


EXISTING, NEW = "using existing layer", "creating new layer"


def check_transfer(lines: list[dict[str, Any]], verb: str) -> list[str]:
    """The layer lines of a pull or push: per layer, a first line with `total` and no `completed`,
    then `completed` growing strictly to `total`. Returns the layer digests in order."""
    digests = list(dict.fromkeys(line["digest"] for line in lines))
    groups = [[line for line in lines if line["digest"] == digest] for digest in digests]
    assert [line for group in groups for line in group] == lines, (
        "each layer's lines should be contiguous")
    for digest, group in zip(digests, groups, strict=True):
        assert LAYER_DIGEST.match(digest), digest
        assert len(group) >= 3, "several progress lines per layer"
        assert all(line["status"] == f"{verb} {digest[7:19]}" for line in group)
        total = group[0]["total"]
        assert type(total) is int and total > 0
        assert all(line["total"] == total for line in group)
        assert set(group[0]) == {"status", "digest", "total"}  # completed is absent while zero
        completed = [line["completed"] for line in group[1:]]
        assert all(type(k) is int and k > 0 for k in completed)
        assert completed == sorted(set(completed)), "completed should grow strictly"
        assert completed[-1] == total
    return digests


def parse_time(stamp: str) -> datetime:
    """Go's RFC 3339 (up to 9 fractional digits) read by datetime, which takes at most 6 (and on
    3.10 neither more digits nor "Z")."""
    assert RFC3339_UTC.match(stamp), stamp
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{whole}.{fraction[:6].ljust(6, '0')}+00:00")


def as_float32(value: float) -> float:
    result: float = struct.unpack("f", struct.pack("f", value))[0]
    return result


def sha256_digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


# -- /api/generate ---------------------------------------------------------------------------------

async def test_generate_streams_tokens_then_a_final_chunk_with_context_and_metrics(
        fake: FakeOllama) -> None:
    body = {"model": "qwen3", "prompt": "Why is the sky blue?", "think": False}
    lines = await stream(fake, "/api/generate", body)
    assert len(lines) >= 3
    for line in lines[:-1]:
        assert set(line) == {"model", "created_at", "response", "done"}, line
        assert line["model"] == "qwen3" and line["done"] is False
        assert RFC3339_UTC.match(line["created_at"])
        assert isinstance(line["response"], str) and line["response"]
    assert "".join(line["response"] for line in lines) == "You said: Why is the sky blue?"
    final = lines[-1]
    assert set(final) == {"model", "created_at", "response", "done", "done_reason", "context",
                          *METRICS}
    assert final["response"] == "" and final["done"] is True and final["done_reason"] == "stop"
    assert isinstance(final["context"], list) and final["context"]
    assert all(type(token) is int for token in final["context"])
    for key in METRICS:
        assert type(final[key]) is int and final[key] > 0, key
    assert fake.requests == [body]  # recorded like chat's, told apart by "prompt"


async def test_generate_thinks_first_when_think_is_truthy(fake: FakeOllama) -> None:
    lines = await stream(fake, "/api/generate",
                         {"model": "qwen3", "prompt": "Why is the sky blue?", "think": True})
    thinking = [line for line in lines if "thinking" in line]
    assert thinking, "thinking lines expected"
    for line in thinking:
        assert set(line) == {"model", "created_at", "response", "thinking", "done"}
        assert line["response"] == "" and line["thinking"]
    assert ("".join(line["thinking"] for line in thinking)
            == "The user wrote 5 words. I will answer briefly.")
    first_content = next(n for n, line in enumerate(lines) if line["response"])
    # as in the recorded generate_think transcript: generate does not skip the chunks of the think
    # tags, so one empty chunk comes before the thinking and two come after it
    empty = {"model", "created_at", "response", "done"}
    before = lines[:first_content]
    assert set(before[0]) == empty and before[0]["response"] == ""
    assert all("thinking" in line for line in before[1:-2])
    assert [set(line) for line in before[-2:]] == [empty, empty]
    assert not any("thinking" in line for line in lines[first_content:])
    assert "".join(line["response"] for line in lines) == "You said: Why is the sky blue?"


async def test_generate_without_think_has_no_thinking(fake: FakeOllama) -> None:
    lines = await stream(fake, "/api/generate", {"model": "qwen3", "prompt": "hi", "think": False})
    assert not any("thinking" in line for line in lines)
    assert "".join(line["response"] for line in lines) == "You said: hi"


async def test_generate_shares_the_reply_queue_with_chat(fake: FakeOllama) -> None:
    fake.queue_reply(content="From the queue.", thinking="Queued thought.")
    fake.queue_reply(content="Second in line.")
    lines = await stream(fake, "/api/generate", {"model": "qwen3", "prompt": "anything"})
    # shown without `think`: a thinking model thinks unless told not to
    assert "".join(line.get("thinking", "") for line in lines) == "Queued thought."
    assert "".join(line["response"] for line in lines) == "From the queue."
    assert fake.pending == 1
    status, reply = await call_json(fake, "POST", "/api/chat",
                                    {"model": "qwen3", "messages": USER, "stream": False})
    assert status == 200 and reply["message"]["content"] == "Second in line."
    assert fake.pending == 0
    lines = await stream(fake, "/api/generate", {"model": "qwen3", "prompt": "again"})
    assert "".join(line["response"] for line in lines) == "You said: again"
    assert [("prompt" in body, "messages" in body) for body in fake.requests] == [
        (True, False), (False, True), (True, False)]


async def test_generate_unstreamed_is_one_object_with_everything_joined(fake: FakeOllama) -> None:
    fake.queue_reply(content="All of it at once.", thinking="No streaming wanted.")
    status, reply = await call_json(fake, "POST", "/api/generate",
                                    {"model": "qwen3", "prompt": "go", "stream": False})
    assert status == 200
    assert set(reply) == {"model", "created_at", "response", "thinking", "done", "done_reason",
                          "context", *METRICS}
    assert reply["response"] == "All of it at once."
    assert reply["thinking"] == "No streaming wanted."
    assert reply["done"] is True and reply["done_reason"] == "stop"
    assert all(type(token) is int for token in reply["context"]) and reply["context"]
    assert all(type(reply[key]) is int and reply[key] > 0 for key in METRICS)


async def test_generate_context_is_deterministic_and_carries_the_given_context(
        fake: FakeOllama) -> None:
    async def context(body: dict[str, Any]) -> list[int]:
        lines = await stream(fake, "/api/generate", {"model": "qwen3", **body})
        assert not any("context" in line for line in lines[:-1]), "context only on the final chunk"
        result: list[int] = lines[-1]["context"]
        return result

    first = await context({"prompt": "Tell me a story."})
    assert await context({"prompt": "Tell me a story."}) == first
    assert await context({"prompt": "Something else entirely."}) != first
    continued = await context({"prompt": "Go on.", "context": first})
    assert continued[:len(first)] == first and len(continued) > len(first)
    async with FakeOllama() as other:
        lines = await stream(other, "/api/generate",
                             {"model": "qwen3", "prompt": "Tell me a story."})
        assert lines[-1]["context"] == first  # the same across servers and runs


async def test_generate_raw_has_no_context_and_refuses_a_template(fake: FakeOllama) -> None:
    lines = await stream(fake, "/api/generate",
                         {"model": "qwen3", "prompt": "[INST] hi [/INST]", "raw": True})
    assert lines[-1]["done"] is True and "context" not in lines[-1]
    status, body = await call_json(fake, "POST", "/api/generate",
                                   {"model": "qwen3", "prompt": "hi", "raw": True,
                                    "system": "Be brief."})
    assert status == 400
    assert body == {"error": "raw mode does not support template, system, or context"}


async def test_generate_unknown_or_missing_model(fake: FakeOllama) -> None:
    fake.queue_reply(content="kept for later")
    status, body = await call_json(fake, "POST", "/api/generate",
                                   {"model": "nosuch", "prompt": "hi"})
    assert status == 404 and body == {"error": "model 'nosuch' not found"}
    # GenerateHandler answers a missing model with its 404 (ChatHandler with a 400)
    status, body = await call_json(fake, "POST", "/api/generate", {"prompt": "hi"})
    assert status == 404 and body == {"error": "model '' not found"}
    status, _, raw = await call(fake, "POST", "/api/generate", data=b"not json")
    assert status == 400
    assert json.loads(raw) == {"error": "invalid character 'o' in literal null (expecting 'u')"}
    assert fake.pending == 1  # a rejected request does not use up the queued reply


async def test_generate_queued_http_error(fake: FakeOllama) -> None:
    fake.queue_error(503, "server busy, please try again.  maximum pending requests exceeded")
    status, body = await call_json(fake, "POST", "/api/generate",
                                   {"model": "qwen3", "prompt": "hi"})
    assert status == 503
    assert body == {"error": "server busy, please try again.  maximum pending requests exceeded"}
    assert fake.pending == 0
    assert await ps(fake) == []  # a refused request loads nothing


async def test_generate_error_line_replaces_the_final_chunk(fake: FakeOllama) -> None:
    fake.queue_reply(content="partial answer", error="model runner has unexpectedly stopped")
    lines = await stream(fake, "/api/generate", {"model": "qwen3", "prompt": "hi"})
    assert lines[-1] == {"error": "model runner has unexpectedly stopped"}
    assert "".join(line.get("response", "") for line in lines) == "partial answer"
    assert not any(line.get("done") for line in lines)


async def test_generate_unstreamed_error_is_a_500(fake: FakeOllama) -> None:
    fake.queue_reply(content="partial", error="boom")
    status, body = await call_json(fake, "POST", "/api/generate",
                                   {"model": "qwen3", "prompt": "hi", "stream": False})
    assert status == 500 and body == {"error": "boom"}


async def test_generate_drop_after_cuts_the_connection(fake: FakeOllama) -> None:
    fake.queue_reply(content="one two three four", drop_after=2)
    async with (aiohttp.ClientSession() as session,
                session.post(f"{fake.url}/api/generate",
                             json={"model": "qwen3", "prompt": "hi"}) as response):
        assert response.status == 200
        assert json.loads(await response.content.readline())["response"] == "one "
        assert json.loads(await response.content.readline())["response"] == "two "
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


async def test_generate_stall_after_stops_writing_until_the_client_leaves(fake: FakeOllama) -> None:
    fake.queue_reply(content="one two three", stall_after=1)
    async with (aiohttp.ClientSession() as session,
                session.post(f"{fake.url}/api/generate",
                             json={"model": "qwen3", "prompt": "hi"}) as response):
        assert json.loads(await response.content.readline())["response"] == "one "
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(response.content.readline(), 0.3)
    await fake.wait_disconnect()
    assert fake.disconnects == 1


async def test_generate_chunk_delay_paces_the_lines(fake: FakeOllama) -> None:
    fake.queue_reply(content="a b c d", chunk_delay=0.05)
    started = time.monotonic()
    lines = await stream(fake, "/api/generate", {"model": "qwen3", "prompt": "hi"})
    assert len(lines) == 5
    assert time.monotonic() - started >= 0.05 * (len(lines) - 1)


async def test_empty_prompt_loads_and_keep_alive_zero_unloads(fake: FakeOllama) -> None:
    fake.queue_reply(content="not for a load")
    status, body = await call_json(fake, "POST", "/api/generate", {"model": "llama3.2"})
    assert status == 200
    assert set(body) == {"model", "created_at", "response", "done", "done_reason"}
    assert ((body["model"], body["response"], body["done"], body["done_reason"])
            == ("llama3.2", "", True, "load"))
    assert [m["name"] for m in await ps(fake)] == ["llama3.2:latest"]
    status, body = await call_json(fake, "POST", "/api/generate",
                                   {"model": "llama3.2", "keep_alive": 0})
    assert status == 200 and body["done_reason"] == "unload"
    assert await ps(fake) == []
    assert fake.pending == 1


async def test_embedding_models_refuse_generate_and_chat(loop_errors: list[dict[str, Any]]) -> None:
    async with FakeOllama(models=["nomic-embed-text", "qwen3"]) as fake:
        status, body = await call_json(fake, "POST", "/api/generate",
                                       {"model": "nomic-embed-text", "prompt": "x"})
        assert status == 400 and body == {"error": '"nomic-embed-text" does not support generate'}
        status, body = await call_json(fake, "POST", "/api/chat",
                                       {"model": "nomic-embed-text", "messages": USER})
        assert status == 400 and body == {"error": '"nomic-embed-text" does not support chat'}
        assert await chat_status(fake, "qwen3") == 200


# -- /api/pull -------------------------------------------------------------------------------------

async def test_pull_streams_ollamas_progress_and_the_model_becomes_known(fake: FakeOllama) -> None:
    assert "tinyllama:latest" not in await tags(fake)
    assert await chat_status(fake, "tinyllama") == 404
    lines = await stream(fake, "/api/pull", {"model": "tinyllama"})
    assert not any("error" in line for line in lines)
    assert lines[0] == {"status": "pulling manifest"}
    assert lines[-3:] == [{"status": "verifying sha256 digest"}, {"status": "writing manifest"},
                          {"status": "success"}]
    digests = check_transfer(lines[1:-3], "pulling")
    assert len(digests) == 2
    assert "tinyllama:latest" in await tags(fake)
    assert await chat_status(fake, "tinyllama") == 200
    status, shown = await call_json(fake, "POST", "/api/show", {"model": "tinyllama"})
    assert status == 200 and shown["details"]["family"] == "llama"


async def test_pulling_an_unknown_name_is_200_then_an_error_line(fake: FakeOllama) -> None:
    lines = await stream(fake, "/api/pull", {"model": "no-such-model"})
    assert lines == [{"status": "pulling manifest"}, PULL_FAILED]
    assert "no-such-model:latest" not in await tags(fake)
    assert await chat_status(fake, "no-such-model") == 404


async def test_pull_unstreamed(fake: FakeOllama) -> None:
    status, body = await call_json(fake, "POST", "/api/pull",
                                   {"model": "qwen3:0.6b", "stream": False})
    assert status == 200 and body == {"status": "success"}
    assert "qwen3:0.6b" in await tags(fake)
    status, body = await call_json(fake, "POST", "/api/pull",
                                   {"model": "no-such-model", "stream": False})
    assert status == 500 and body == PULL_FAILED


async def test_pulling_a_known_model_succeeds_and_changes_nothing(fake: FakeOllama) -> None:
    before = await tags(fake)
    # not in `pullable`, but already here
    lines = await stream(fake, "/api/pull", {"model": "qwen3"})
    assert lines[-1] == {"status": "success"}
    assert await tags(fake) == before


async def test_pullable_names_are_configurable(loop_errors: list[dict[str, Any]]) -> None:
    assert {"tinyllama", "nomic-embed-text", "qwen3:0.6b"} <= set(DEFAULT_PULLABLE)
    async with FakeOllama(models=["qwen3"], pullable=["my-org/custom:7b"]) as fake:
        assert await stream(fake, "/api/pull", {"model": "tinyllama"}) == [
            {"status": "pulling manifest"}, PULL_FAILED]
        lines = await stream(fake, "/api/pull", {"model": "my-org/custom:7b"})
        assert lines[-1] == {"status": "success"}
        found = await tags(fake)
        assert set(found) == {"qwen3:latest", "my-org/custom:7b"}
        assert found["my-org/custom:7b"]["details"]["parameter_size"] == "7B"


async def test_pull_progress_is_paced_by_chunk_delay(loop_errors: list[dict[str, Any]]) -> None:
    async with FakeOllama(chunk_delay=0.02) as fake:
        started = time.monotonic()
        lines = await stream(fake, "/api/pull", {"model": "tinyllama"})
        assert time.monotonic() - started >= 0.02 * (len(lines) - 1)


async def test_a_pull_left_midway_adds_nothing(loop_errors: list[dict[str, Any]]) -> None:
    async with FakeOllama(chunk_delay=0.05) as fake:
        async with (aiohttp.ClientSession() as session,
                    session.post(f"{fake.url}/api/pull", json={"model": "tinyllama"}) as response):
            assert json.loads(await response.content.readline()) == {"status": "pulling manifest"}
            response.close()
        await fake.wait_disconnect()
        assert "tinyllama:latest" not in await tags(fake)


# -- /api/push -------------------------------------------------------------------------------------

async def test_push_streams_progress_for_a_known_model(fake: FakeOllama) -> None:
    lines = await stream(fake, "/api/push", {"model": "qwen3", "insecure": True})
    assert lines[0] == {"status": "retrieving manifest"}
    assert lines[-2:] == [{"status": "pushing manifest"}, {"status": "success"}]
    assert len(check_transfer(lines[1:-2], "pushing")) == 2
    status, body = await call_json(fake, "POST", "/api/push", {"model": "qwen3", "stream": False})
    assert status == 200 and body == {"status": "success"}


async def test_pushing_an_unknown_model_is_200_then_an_error_line(fake: FakeOllama) -> None:
    lines = await stream(fake, "/api/push", {"model": "nosuch"})
    assert lines[:2] == [{"status": "retrieving manifest"},
                         {"status": "couldn't retrieve manifest"}]
    assert len(lines) == 3 and set(lines[2]) == {"error"}
    assert lines[2]["error"].endswith("/library/nosuch/latest: no such file or directory")


# -- /api/create -----------------------------------------------------------------------------------

async def test_create_from_a_known_model(fake: FakeOllama) -> None:
    lines = await stream(fake, "/api/create",
                         {"model": "brief", "from": "qwen3", "system": "Be brief."})
    # as in the create_from transcript: the source's layers reused, the system prompt's new
    # (weights, template, system, license, parameters)
    assert layer_kinds(lines) == [EXISTING, EXISTING, NEW, EXISTING, EXISTING,
                                  "writing manifest", "success"]
    entry = (await tags(fake))["brief:latest"]
    assert (entry["details"]["parent_model"] == "qwen3:latest"
            and entry["details"]["family"] == "qwen3")
    status, shown = await call_json(fake, "POST", "/api/show", {"model": "brief"})
    assert status == 200 and shown["system"] == "Be brief."
    assert 'SYSTEM """Be brief."""' in shown["modelfile"]
    assert await chat_status(fake, "brief") == 200
    [running] = await ps(fake)  # /api/ps builds its details without the parent
    assert running["name"] == "brief:latest" and running["details"]["parent_model"] == ""


async def test_create_without_a_system_prompt_has_no_system_layer(fake: FakeOllama) -> None:
    lines = await stream(fake, "/api/create", {"model": "plain", "from": "llama3.2"})
    assert layer_kinds(lines) == [EXISTING] * 4 + ["writing manifest", "success"]
    status, shown = await call_json(fake, "POST", "/api/show", {"model": "plain"})
    assert status == 200 and "system" not in shown


async def test_create_with_a_template_and_parameters(fake: FakeOllama) -> None:
    body = {"model": "tuned", "from": "qwen3", "template": "{{ .Prompt }}",
            "parameters": {"temperature": 0.2, "num_ctx": 8192}}
    lines = await stream(fake, "/api/create", body)
    # weights, template (new), license, parameters (new)
    assert layer_kinds(lines) == [EXISTING, NEW, EXISTING, NEW, "writing manifest", "success"]
    status, shown = await call_json(fake, "POST", "/api/show", {"model": "tuned"})
    assert status == 200 and shown["template"] == "{{ .Prompt }}"
    parameters = shown["parameters"].splitlines()
    assert f"{'num_ctx':<30} 8192" in parameters
    assert f"{'temperature':<30} 0.2" in parameters
    # the request's value wins over the base model's
    assert f"{'temperature':<30} 0.6" not in parameters
    assert f"{'top_p':<30} 0.95" in parameters  # the base model's others are kept


async def test_create_from_an_unknown_model_fails_like_its_pull(fake: FakeOllama) -> None:
    lines = await stream(fake, "/api/create", {"model": "mine", "from": "no-such-base"})
    assert lines == [{"status": "pulling manifest"}, PULL_FAILED]
    assert "mine:latest" not in await tags(fake)
    status, body = await call_json(fake, "POST", "/api/create",
                                   {"model": "mine", "from": "no-such-base", "stream": False})
    assert status == 500 and body == PULL_FAILED


async def test_create_from_a_pullable_model_pulls_it_first(fake: FakeOllama) -> None:
    lines = await stream(fake, "/api/create",
                         {"model": "tiny-helper", "from": "tinyllama", "system": "Help."})
    names = statuses(lines)
    assert names[0] == "pulling manifest"
    pulled_at = names.index("success")
    assert layer_kinds(lines)[pulled_at + 1:] == [EXISTING, EXISTING, NEW, EXISTING, EXISTING,
                                                  "writing manifest", "success"]
    check_transfer([line for line in lines if "digest" in line], "pulling")
    known = await tags(fake)
    assert "tinyllama:latest" in known and "tiny-helper:latest" in known


async def test_create_needs_from_or_files(fake: FakeOllama) -> None:
    status, body = await call_json(fake, "POST", "/api/create", {"model": "empty"})
    assert status == 400 and body == {"error": "neither 'from' or 'files' was specified"}
    status, body = await call_json(fake, "POST", "/api/create", {"from": "qwen3"})
    assert status == 400 and body == {"error": "invalid model name"}


async def test_create_unstreamed(fake: FakeOllama) -> None:
    status, body = await call_json(fake, "POST", "/api/create",
                                   {"model": "quiet", "from": "qwen3", "stream": False})
    assert status == 200 and body == {"status": "success"}
    assert "quiet:latest" in await tags(fake)


async def test_create_from_uploaded_gguf_files(fake: FakeOllama) -> None:
    weights = b"GGUF\x03\x00\x00\x00 fake weights"
    digest = sha256_digest(weights)
    status, _, _ = await call(fake, "POST", f"/api/blobs/{digest}", data=weights)
    assert status == 201
    lines = await stream(fake, "/api/create",
                         {"model": "from-file", "files": {"model.gguf": digest}})
    # as in create_files_bad_gguf: the uploaded blob is the weights layer, already in the store,
    # and a bare GGUF brings no other layer
    assert lines == [{"status": "parsing GGUF"}, {"status": f"{EXISTING} {digest}"},
                     {"status": "writing manifest"}, {"status": "success"}]
    entry = (await tags(fake))["from-file:latest"]
    assert (entry["details"]["parent_model"] == ""
            and entry["details"]["quantization_level"] == "F16")
    assert entry["capabilities"] == ["completion"]


async def test_create_from_files_that_are_missing_or_not_gguf(fake: FakeOllama) -> None:
    missing = sha256_digest(b"never uploaded")
    lines = await stream(fake, "/api/create", {"model": "broken", "files": {"model.gguf": missing}})
    assert lines[0] == {"status": "parsing GGUF"} and set(lines[-1]) == {"error"}
    assert lines[-1]["error"].endswith(f"{missing.replace(':', '-')}: no such file or directory")
    text = b"just some text"
    await call(fake, "POST", f"/api/blobs/{sha256_digest(text)}", data=text)
    lines = await stream(fake, "/api/create",
                         {"model": "broken", "files": {"model.gguf": sha256_digest(text)}})
    assert lines == [{"status": "parsing GGUF"}, {"error": "supplied file was not in GGUF format"}]
    status, body = await call_json(fake, "POST", "/api/create",
                                   {"model": "broken", "files": {"notes.txt": missing}})
    assert status == 400 and body == {"error": "unknown type"}
    assert "broken:latest" not in await tags(fake)


async def test_create_quantizes_only_f16_weights(fake: FakeOllama) -> None:
    # refused before any status line: a real 500, as streamResponse answers an early error
    status, content_type, raw = await call(fake, "POST", "/api/create",
                                           {"model": "q", "from": "qwen3", "quantize": "q8_0"})
    assert (status, content_type) == (500, "application/json")
    assert json.loads(raw) == {"error": "quantization is only supported for F16 and F32 models"}
    weights = b"GGUF f16 weights"
    await call(fake, "POST", f"/api/blobs/{sha256_digest(weights)}", data=weights)
    lines = await stream(fake, "/api/create",
                         {"model": "q", "files": {"m.gguf": sha256_digest(weights)},
                          "quantize": "q8_0"})
    assert ({"status": "quantizing F16 model to Q8_0"} in lines
            and lines[-1] == {"status": "success"})
    assert layer_kinds(lines)[2:] == [NEW, "writing manifest", "success"]  # quantized weights
    assert (await tags(fake))["q:latest"]["details"]["quantization_level"] == "Q8_0"


# -- /api/embed ------------------------------------------------------------------------------------

async def test_embed_shape_norm_and_metrics(fake: FakeOllama) -> None:
    status, content_type, raw = await call(fake, "POST", "/api/embed",
                                           {"model": "qwen3",
                                            "input": ["The sky is blue.", "Grass is green."]})
    assert status == 200 and content_type == "application/json; charset=utf-8"
    body = json.loads(raw)
    assert set(body) == {"model", "embeddings", "total_duration", "load_duration",
                         "prompt_eval_count"}
    assert body["model"] == "qwen3"
    vectors = body["embeddings"]
    assert len(vectors) == 2 and vectors[0] != vectors[1]
    for vector in vectors:
        assert len(vector) == 8 and all(type(v) is float for v in vector)
        # float32 values, as Ollama's []float32: unit length to float32 precision
        assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-6)
    # ... written in float32's shortest form (at most 9 significant digits, each one reading
    # back as the float32 it stands for), as Go writes a float32
    numbers = re.findall(rb"-?[\d.]+(?:e[-+]?\d+)?", raw.split(b'"embeddings":')[1].split(b"]]")[0])
    assert len(numbers) == 16
    for text in numbers:
        digits = len(text.lstrip(b"-").replace(b".", b"").lstrip(b"0").split(b"e")[0])
        value = as_float32(float(text))
        shortest = next(n for n in range(1, 10) if as_float32(float(f"{value:.{n - 1}e}")) == value)
        assert digits == shortest, text
    for key in ("total_duration", "load_duration", "prompt_eval_count"):
        assert type(body[key]) is int and body[key] > 0, key


async def test_embed_is_deterministic_per_text_and_model(fake: FakeOllama) -> None:
    async def embed(model: str, text: str | list[str]) -> list[list[float]]:
        status, body = await call_json(fake, "POST", "/api/embed", {"model": model, "input": text})
        assert status == 200
        result: list[list[float]] = body["embeddings"]
        return result

    [sky] = await embed("qwen3", "The sky is blue.")
    assert await embed("qwen3", ["Another text.", "The sky is blue."]) == [
        (await embed("qwen3", "Another text."))[0], sky]
    assert await embed("qwen3:latest", "The sky is blue.") == [sky]
    assert await embed("llama3.2", "The sky is blue.") != [sky]
    async with FakeOllama() as other:
        status, body = await call_json(other, "POST", "/api/embed",
                                       {"model": "qwen3", "input": "The sky is blue."})
        assert status == 200 and body["embeddings"] == [sky]


async def test_embed_dimensions_shorten_and_renormalise(fake: FakeOllama) -> None:
    _, full = await call_json(fake, "POST", "/api/embed", {"model": "qwen3", "input": "hello"})
    _, short = await call_json(fake, "POST", "/api/embed",
                               {"model": "qwen3", "input": "hello", "dimensions": 3})
    [vector] = short["embeddings"]
    assert len(vector) == 3
    # float32 values, as Ollama's: unit length to float32 precision
    assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-6)
    prefix = full["embeddings"][0][:3]
    norm = math.sqrt(sum(v * v for v in prefix))
    # Ollama truncates, then normalises again
    assert vector == pytest.approx([v / norm for v in prefix])
    _, longer = await call_json(fake, "POST", "/api/embed",
                                {"model": "qwen3", "input": "hello", "dimensions": 50})
    # more than the model has: ignored, as by Ollama
    assert longer["embeddings"] == full["embeddings"]


async def test_embedding_length_option(loop_errors: list[dict[str, Any]]) -> None:
    async with FakeOllama(embedding_length=32) as fake:
        _, body = await call_json(fake, "POST", "/api/embed", {"model": "qwen3", "input": "hello"})
        assert len(body["embeddings"][0]) == 32
        _, shown = await call_json(fake, "POST", "/api/show", {"model": "qwen3"})
        assert shown["model_info"]["qwen3.embedding_length"] == 32


async def test_embed_errors_and_empty_input(fake: FakeOllama) -> None:
    status, body = await call_json(fake, "POST", "/api/embed", {"model": "nosuch", "input": "x"})
    # EmbedHandler's text, as recorded (embed_unknown_model)
    assert status == 404 and body == {"error": 'model "nosuch" not found, try pulling it first'}
    for bad in (42, ["ok", 1], {"text": "x"}):
        status, body = await call_json(fake, "POST", "/api/embed", {"model": "qwen3", "input": bad})
        assert status == 400 and body == {"error": "invalid input type"}, bad
    empties: tuple[str | list[str], ...] = ("", [])
    for empty in empties:
        status, body = await call_json(fake, "POST", "/api/embed",
                                       {"model": "qwen3", "input": empty})
        assert status == 200 and body == {"model": "qwen3", "embeddings": []}


# -- /api/tags -------------------------------------------------------------------------------------

async def test_tags_have_realistic_entries(fake: FakeOllama) -> None:
    found = await tags(fake)
    assert set(found) == {name if ":" in name else f"{name}:latest" for name in DEFAULT_MODELS}
    for name, entry in found.items():
        assert set(entry) == {"name", "model", "modified_at", "size", "digest", "details",
                              "capabilities"}
        assert list(entry)[-1] == "capabilities"  # Go's field order
        assert entry["model"] == name
        assert type(entry["size"]) is int and entry["size"] > 0
        assert HEX64.match(entry["digest"])
        parse_time(entry["modified_at"])
        details = entry["details"]
        assert set(details) == TAGS_DETAILS_KEYS
        assert type(details["context_length"]) is int and details["context_length"] > 0
        assert details["embedding_length"] == 8  # the fake's embedding_length
        assert details["format"] == "gguf" and details["parent_model"] == ""
        assert details["families"] == [details["family"]] and details["family"]
        assert re.fullmatch(r"\d+(\.\d+)?[BM]", details["parameter_size"])
        assert details["quantization_level"]
    assert len({entry["digest"] for entry in found.values()}) == len(found)
    assert found["gpt-oss:20b"]["details"]["parameter_size"] == "20B"
    assert found["qwen3:latest"]["details"]["family"] == "qwen3"
    assert found["gpt-oss:20b"]["size"] > found["smollm2:135m"]["size"]
    assert found["qwen3:latest"]["capabilities"] == ["completion", "tools", "thinking"]
    assert found["qwen3:latest"]["details"]["context_length"] == 40960


async def test_tags_list_the_most_recently_modified_first(fake: FakeOllama) -> None:
    await stream(fake, "/api/pull", {"model": "tinyllama"})
    status, body = await call_json(fake, "GET", "/api/tags")
    assert status == 200
    names = [model["name"] for model in body["models"]]
    assert names[0] == "tinyllama:latest"
    assert names[1:] == sorted(names[1:])  # equal modified_at: by name
    stamps = [parse_time(model["modified_at"]) for model in body["models"]]
    assert stamps == sorted(stamps, reverse=True) and stamps[0] > stamps[1]


# -- /api/show -------------------------------------------------------------------------------------

async def test_show_a_chat_model(fake: FakeOllama) -> None:
    status, shown = await call_json(fake, "POST", "/api/show", {"model": "qwen3"})
    assert status == 200
    assert set(shown) == SHOW_KEYS
    assert all(isinstance(shown[key], str)
               for key in ("license", "modelfile", "parameters", "template"))
    assert shown["capabilities"] == ["completion", "tools", "thinking"]
    entry = (await tags(fake))["qwen3:latest"]
    shown_details = {key: value for key, value in entry["details"].items()
                     if key not in ("context_length", "embedding_length")}  # tags' own
    assert shown["details"] == shown_details and shown["modified_at"] == entry["modified_at"]
    info = shown["model_info"]
    assert info["general.architecture"] == "qwen3"
    assert type(info["qwen3.context_length"]) is int and info["qwen3.context_length"] > 0
    assert type(info["general.parameter_count"]) is int and info["general.parameter_count"] > 0
    assert shown["modelfile"].startswith('# Modelfile generated by "ollama show"\n')
    assert re.search(r"^FROM /\S+/sha256-[0-9a-f]{64}$", shown["modelfile"], re.MULTILINE)
    assert shown["parameters"] and all(re.fullmatch(r"\S+ {2,}\S.*", line)
                                       for line in shown["parameters"].splitlines())
    # without verbose Ollama does not read the arrays: they marshal as null (show_tiny_think)
    assert info["tokenizer.ggml.tokens"] is None and info["tokenizer.ggml.merges"] is None
    assert all(set(t) == {"name", "type", "shape"} for t in shown["tensors"])


async def test_show_verbose_fills_the_tokenizer_arrays(fake: FakeOllama) -> None:
    _, brief = await call_json(fake, "POST", "/api/show", {"model": "qwen3"})
    _, verbose = await call_json(fake, "POST", "/api/show", {"model": "qwen3", "verbose": True})
    arrays = [key for key, value in verbose["model_info"].items() if isinstance(value, list)]
    assert {"tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
            "tokenizer.ggml.merges"} <= set(arrays)
    for key in arrays:
        assert len(verbose["model_info"][key]) > 5, key
        # unless verbose, Ollama leaves the arrays unread: null
        assert brief["model_info"][key] is None, key
    assert {k: v for k, v in verbose["model_info"].items() if k not in arrays} == {
        k: v for k, v in brief["model_info"].items() if k not in arrays}


async def test_show_an_embedding_model(loop_errors: list[dict[str, Any]]) -> None:
    async with FakeOllama(models=["nomic-embed-text"]) as fake:
        status, shown = await call_json(fake, "POST", "/api/show", {"model": "nomic-embed-text"})
        assert status == 200 and shown["capabilities"] == ["embedding"]
        assert shown["model_info"]["general.architecture"] == "nomic-bert"
        assert shown["details"]["quantization_level"] == "F16"


async def test_show_unknown_or_missing_model(fake: FakeOllama) -> None:
    status, body = await call_json(fake, "POST", "/api/show", {"model": "nosuch"})
    # v0.33 names the model as it resolved it (v0.24's show_unknown still said 'nope')
    assert status == 404 and body == {"error": "model 'nosuch:latest' not found"}
    status, body = await call_json(fake, "POST", "/api/show", {})
    assert status == 400 and body == {"error": "model is required"}


# -- /api/ps ---------------------------------------------------------------------------------------

async def test_ps_is_empty_until_a_model_is_used(fake: FakeOllama) -> None:
    assert await ps(fake) == []
    # a 404 loads nothing
    await call(fake, "POST", "/api/chat", {"model": "nosuch", "messages": USER})
    await call(fake, "POST", "/api/embed", {"model": "nosuch", "input": "x"})
    assert await ps(fake) == []


async def test_ps_lists_used_models_latest_first_with_ollamas_shape(fake: FakeOllama) -> None:
    assert await chat_status(fake, "qwen3") == 200
    await stream(fake, "/api/generate", {"model": "llama3.2", "prompt": "hi"})
    await call_json(fake, "POST", "/api/embed", {"model": "gpt-oss:20b", "input": "hi"})
    assert [m["name"] for m in await ps(fake)] == ["gpt-oss:20b", "llama3.2:latest", "qwen3:latest"]
    assert await chat_status(fake, "qwen3") == 200  # used again: its expiry moves furthest out
    loaded = await ps(fake)
    assert [m["name"] for m in loaded] == ["qwen3:latest", "gpt-oss:20b", "llama3.2:latest"]
    assert fake.loaded == [m["name"] for m in loaded]
    known = await tags(fake)
    now = datetime.now(timezone.utc)
    for entry in loaded:
        assert set(entry) == PS_KEYS
        assert entry["model"] == entry["name"]
        assert (type(entry["size"]) is int and entry["size"] > 0
                and entry["size_vram"] == entry["size"])
        assert entry["digest"] == known[entry["name"]]["digest"]
        # /api/ps builds its details without the two lengths /api/tags has
        assert entry["details"] == {key: value
                                    for key, value in known[entry["name"]]["details"].items()
                                    if key not in ("context_length", "embedding_length")}
        assert entry["context_length"] == 4096
        expires = parse_time(entry["expires_at"])
        # keep_alive defaults to 5m
        assert now + timedelta(minutes=4) < expires < now + timedelta(minutes=6)


async def test_ps_honours_keep_alive_and_num_ctx(fake: FakeOllama) -> None:
    await call(fake, "POST", "/api/chat", {"model": "qwen3", "messages": USER,
                                           "keep_alive": "1h", "options": {"num_ctx": 8192}})
    await call(fake, "POST", "/api/chat", {"model": "llama3.2", "messages": USER, "keep_alive": 60})
    await call(fake, "POST", "/api/chat", {"model": "deepseek-r1", "messages": USER,
                                           "keep_alive": -1})
    loaded = {m["name"]: m for m in await ps(fake)}
    # longest to stay first
    assert list(loaded) == ["deepseek-r1:latest", "qwen3:latest", "llama3.2:latest"]
    now = datetime.now(timezone.utc)
    assert parse_time(loaded["deepseek-r1:latest"]["expires_at"]) > now + timedelta(days=365 * 100)
    assert (now + timedelta(minutes=59) < parse_time(loaded["qwen3:latest"]["expires_at"])
            < now + timedelta(hours=2))
    assert now < parse_time(loaded["llama3.2:latest"]["expires_at"]) < now + timedelta(seconds=61)
    assert loaded["qwen3:latest"]["context_length"] == 8192
    await call(fake, "POST", "/api/chat", {"model": "qwen3", "messages": USER, "keep_alive": 0})
    assert [m["name"] for m in await ps(fake)] == ["deepseek-r1:latest", "llama3.2:latest"]


# -- /api/delete and /api/copy ---------------------------------------------------------------------

async def test_delete_forgets_the_model(fake: FakeOllama) -> None:
    status, _, raw = await call(fake, "DELETE", "/api/delete", {"model": "qwen3"})
    assert status == 200 and raw == b""
    assert "qwen3:latest" not in await tags(fake)
    assert await chat_status(fake, "qwen3") == 404
    status, _ = await call_json(fake, "POST", "/api/show", {"model": "qwen3"})
    assert status == 404
    status, body = await call_json(fake, "DELETE", "/api/delete", {"model": "qwen3"})
    assert status == 404 and body == {"error": "model 'qwen3' not found"}


async def test_delete_unknown_or_missing_model(fake: FakeOllama) -> None:
    status, body = await call_json(fake, "DELETE", "/api/delete", {"model": "nosuch"})
    assert status == 404 and body == {"error": "model 'nosuch' not found"}
    status, body = await call_json(fake, "DELETE", "/api/delete", {})
    assert status == 400 and body == {"error": "model is required"}  # modelref.ErrModelRequired
    status, body = await call_json(fake, "DELETE", "/api/delete", {"model": "bad name"})
    assert status == 400 and body == {"error": 'name "bad name" is invalid'}
    assert len(await tags(fake)) == len(DEFAULT_MODELS)


async def test_copy_makes_both_names_known(fake: FakeOllama) -> None:
    status, _, raw = await call(fake, "POST", "/api/copy",
                                {"source": "qwen3", "destination": "my-qwen"})
    assert status == 200 and raw == b""
    found = await tags(fake)
    source, copy = found["qwen3:latest"], found["my-qwen:latest"]
    assert ((copy["digest"], copy["size"], copy["details"])
            == (source["digest"], source["size"], source["details"]))
    assert await chat_status(fake, "qwen3") == 200 and await chat_status(fake, "my-qwen") == 200
    await call(fake, "DELETE", "/api/delete", {"model": "qwen3"})
    assert await chat_status(fake, "my-qwen") == 200  # the copy outlives its source


async def test_copy_from_a_missing_source(fake: FakeOllama) -> None:
    status, body = await call_json(fake, "POST", "/api/copy",
                                   {"source": "nosuch", "destination": "other"})
    assert status == 404 and body == {"error": 'model "nosuch" not found'}
    status, body = await call_json(fake, "POST", "/api/copy", {"source": "qwen3"})
    assert status == 400 and body == {"error": 'destination "" is invalid'}
    assert "other:latest" not in await tags(fake)


# -- /api/blobs/:digest ----------------------------------------------------------------------------

async def test_blob_upload_then_head(fake: FakeOllama) -> None:
    data = b"GGUF some bytes \x00\xff"
    digest = sha256_digest(data)
    status, _, _ = await call(fake, "HEAD", f"/api/blobs/{digest}")
    assert status == 404
    status, _, raw = await call(fake, "POST", f"/api/blobs/{digest}", data=data)
    assert status == 201 and raw == b""
    assert fake.blobs == {digest: data}
    assert fake.received[-1].body == data  # recorded as bytes, not parsed
    status, _, _ = await call(fake, "HEAD", f"/api/blobs/{digest}")
    assert status == 200
    status, _, _ = await call(fake, "HEAD", f"/api/blobs/{digest.replace(':', '-')}")
    assert status == 200  # Ollama names the file sha256-<hex>: both spellings find it
    status, _, _ = await call(fake, "POST", f"/api/blobs/{digest}", data=data)
    assert status == 200  # already there


async def test_blob_digest_mismatch_and_bad_format(fake: FakeOllama) -> None:
    claimed = "sha256:" + "0" * 64
    status, content_type, raw = await call(fake, "POST", f"/api/blobs/{claimed}",
                                           data=b"other bytes")
    assert status == 400 and content_type.startswith("application/json")
    assert json.loads(raw) == {
        "error": f'digest mismatch, expected "{claimed}", got "{sha256_digest(b"other bytes")}"'}
    assert fake.blobs == {}
    status, _, _ = await call(fake, "HEAD", f"/api/blobs/{claimed}")
    assert status == 404
    status, _, raw = await call(fake, "POST", "/api/blobs/not-a-digest", data=b"x")
    assert status == 400 and json.loads(raw) == {"error": "invalid digest format"}


# -- the root, unknown paths, and recording --------------------------------------------------------

async def test_root_answers_get_and_head(fake: FakeOllama) -> None:
    status, content_type, raw = await call(fake, "GET", "/")
    assert status == 200 and raw == b"Ollama is running" and content_type.startswith("text/plain")
    status, content_type, raw = await call(fake, "HEAD", "/")
    assert status == 200 and raw == b"" and content_type.startswith("text/plain")
    status, body = await call_json(fake, "GET", "/api/version")
    assert status == 200 and body == {"version": "0.33.0"}


async def test_unknown_paths_and_methods(fake: FakeOllama) -> None:
    status, _, raw = await call(fake, "GET", "/api/nope")
    assert status == 404 and raw == b"404 page not found"
    status, _, raw = await call(fake, "GET", "/api/generate")
    assert status == 405 and raw == b"405 method not allowed"
    assert [(r.method, r.path) for r in fake.received] == [("GET", "/api/nope"),
                                                           ("GET", "/api/generate")]


async def test_every_request_is_recorded(fake: FakeOllama) -> None:
    blob = b"blob bytes"
    sent: list[tuple[str, str, Any]] = [
        ("GET", "/", None), ("HEAD", "/", None), ("GET", "/api/version", None),
        ("GET", "/api/tags", None), ("GET", "/api/ps", None),
        ("POST", "/api/generate", {"model": "qwen3", "prompt": "hi"}),
        ("POST", "/api/embed", {"model": "qwen3", "input": "hi"}),
        ("POST", "/api/show", {"model": "qwen3"}),
        ("POST", "/api/pull", {"model": "tinyllama"}), ("POST", "/api/push", {"model": "qwen3"}),
        ("POST", "/api/create", {"model": "c", "from": "qwen3"}),
        ("POST", "/api/copy", {"source": "qwen3", "destination": "d"}),
        ("DELETE", "/api/delete", {"model": "d"}),
    ]
    for method, path, body in sent:
        status, _, _ = await call(fake, method, path, body)
        assert status < 300, (method, path, status)
    status, _, _ = await call(fake, "POST", f"/api/blobs/{sha256_digest(blob)}", data=blob)
    assert status == 201
    status, _, _ = await call(fake, "HEAD", f"/api/blobs/{sha256_digest(blob)}")
    assert status == 200
    blob_path = f"/api/blobs/{sha256_digest(blob)}"
    assert [(r.method, r.path, r.body) for r in fake.received] == [
        *sent, ("POST", blob_path, blob), ("HEAD", blob_path, None)]
    assert all(r.peer is not None and r.peer[0] == "127.0.0.1" for r in fake.received)
    assert all("Host" in r.headers for r in fake.received)
    assert fake.requests == [{"model": "qwen3", "prompt": "hi"}]  # only chat and generate bodies


# -- thread mode and the official client -----------------------------------------------------------

def test_thread_mode_serves_the_model_store_to_a_blocking_client() -> None:
    def post(url: str, body: dict[str, Any]) -> bytes:
        request = urllib.request.Request(url, method="POST", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            data: bytes = response.read()
            return data

    with FakeOllama() as fake:
        lines = ndjson(post(f"{fake.url}/api/pull", {"model": "nomic-embed-text"}))
        assert lines[-1] == {"status": "success"}
        body = json.loads(post(f"{fake.url}/api/embed",
                               {"model": "nomic-embed-text", "input": ["a", "b"]}))
        assert [len(vector) for vector in body["embeddings"]] == [8, 8]
        reply = json.loads(post(f"{fake.url}/api/generate",
                                {"model": "qwen3", "prompt": "hi", "stream": False}))
        assert reply["response"] == "You said: hi"
        with urllib.request.urlopen(f"{fake.url}/api/ps", timeout=10) as response:
            assert [m["name"] for m in json.loads(response.read())["models"]] == [
                "qwen3:latest", "nomic-embed-text:latest"]


async def test_the_official_client_reads_every_endpoint(fake: FakeOllama) -> None:
    async with ollama.AsyncClient(host=fake.url) as official:
        progress = [part async for part in await official.pull("tinyllama", stream=True)]
        assert progress[-1].status == "success"
        assert ([p.completed for p in progress if p.digest][-1]
                == [p.total for p in progress if p.digest][-1])
        generated = await official.generate(model="tinyllama", prompt="hi")
        assert generated.response == "You said: hi" and generated.done and generated.context
        embedded = await official.embed(model="qwen3", input=["a", "b"])
        assert len(embedded.embeddings) == 2 and len(embedded.embeddings[0]) == 8
        listed = await official.list()
        assert "tinyllama:latest" in [m.model for m in listed.models]
        assert all(m.size and m.size > 0 and m.details and m.details.family for m in listed.models)
        shown = await official.show("qwen3")
        assert shown.capabilities == ["completion", "tools", "thinking"] and shown.modelinfo
        running = await official.ps()
        assert [m.model for m in running.models] == ["qwen3:latest", "tinyllama:latest"]
        assert all(m.expires_at is not None and m.size_vram for m in running.models)
        created = [part.status async for part in await official.create(
            "mine", from_="qwen3", system="Hi.", stream=True)]
        assert created[-1] == "success"
        await official.copy("mine", "mine-too")
        await official.delete("mine")
        with pytest.raises(ollama.ResponseError) as caught:
            await official.show("mine")
        assert caught.value.status_code == 404
        copied = await official.show("mine-too")
        assert copied.modelfile is not None and 'SYSTEM """Hi."""' in copied.modelfile
