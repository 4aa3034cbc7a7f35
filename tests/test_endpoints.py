"""Every endpoint of AsyncOllama (and its blocking twin) against FakeOllama over real HTTP, error
paths too."""

from __future__ import annotations

import base64
import hashlib
import math
import re
from pathlib import Path
from typing import Any

import pytest

from ollama_stream import (
    AsyncOllama,
    EmbedResult,
    GenerateChunk,
    GenerateResult,
    ListResult,
    Message,
    ModelNotFoundError,
    Ollama,
    Progress,
    ProtocolError,
    PsResult,
    RetryPolicy,
    ShowResult,
    StreamError,
    StreamInterrupted,
)
from ollama_stream.testing import FakeOllama

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
PNG_B64 = base64.b64encode(PNG).decode()


# -- generate --------------------------------------------------------------------------------------

async def test_generate_streams_and_accumulates(fake: FakeOllama, client: AsyncOllama) -> None:
    fake.queue_reply(content="Once upon a time.", thinking="A story.")
    stream = client.generate("qwen3", "Tell me a story", think=True, options={"seed": 1},
                             system="Be brief.")
    chunks = [chunk async for chunk in stream]
    assert all(isinstance(c, GenerateChunk) for c in chunks)
    assert "".join(c.thinking for c in chunks) == "A story."
    assert "".join(c.response for c in chunks) == "Once upon a time."
    assert [c.context is not None for c in chunks] == [False] * (len(chunks) - 1) + [True]
    result = await stream.result()
    assert isinstance(result, GenerateResult)
    assert ((result.response, result.thinking, result.model, result.done_reason)
            == ("Once upon a time.", "A story.", "qwen3", "stop"))
    assert result.context and all(isinstance(t, int) for t in result.context)
    assert result.metrics is not None and result.metrics.eval_count
    assert fake.requests[-1] == {"model": "qwen3", "prompt": "Tell me a story",
                                 "system": "Be brief.", "stream": True, "think": True,
                                 "options": {"seed": 1}}


async def test_generate_text_and_context_round_trip(fake: FakeOllama, client: AsyncOllama) -> None:
    first = await client.generate("qwen3", "one").result()
    assert ([t async for t in client.generate("qwen3", "two words", context=first.context).text()]
            == ["You ", "said: ", "two ", "words"])
    assert fake.requests[-1]["context"] == first.context


async def test_generate_errors(fake: FakeOllama, client: AsyncOllama) -> None:
    with pytest.raises(ModelNotFoundError, match="ollama pull nope"):
        await client.generate("nope", "x").result()
    fake.queue_reply(content="half way", error="runner crashed")
    with pytest.raises(StreamError) as info:
        await client.generate("qwen3", "x").result()
    assert info.value.partial == Message("assistant", "half way")
    fake.queue_reply(content="a b c d", drop_after=2)
    with pytest.raises(StreamInterrupted) as dropped:
        await client.generate("qwen3", "x").result()
    assert dropped.value.partial is not None and dropped.value.partial.content == "a b "
    with pytest.raises(TypeError, match="context"):
        client.generate("qwen3", "x", context=["a"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="think"):
        client.generate("qwen3", "x", think="lots")


# -- images ----------------------------------------------------------------------------------------

async def test_images_from_bytes_paths_and_base64(fake: FakeOllama, client: AsyncOllama,
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    image = tmp_path / "cat.png"
    image.write_bytes(PNG)
    monkeypatch.chdir(tmp_path)
    sources: list[Any] = [PNG, image, str(image), "cat.png", PNG_B64,
                          f"data:image/png;base64,{PNG_B64}"]
    await client.chat("qwen3", [Message("user", "what is it?", images=sources)]).result()
    assert fake.requests[-1]["messages"][0]["images"] == [PNG_B64] * len(sources)
    await client.generate("qwen3", "describe", images=[image]).result()
    assert fake.requests[-1]["images"] == [PNG_B64]
    await client.chat("qwen3", [{"role": "user", "content": "x", "images": [PNG]}]).result()
    assert fake.requests[-1]["messages"][0]["images"] == [PNG_B64]


@pytest.mark.parametrize("image,error", [
    ("missing.png", "image 'missing.png': no such file"),
    ("photos/missing.jpg", "image 'photos/missing.jpg': no such file"),
    ("./nowhere", "image './nowhere': no such file"),
    ("not base64 at all!", "is neither an existing file nor valid base64"),
    ("data:image/png;base64,@@@", "the data URL does not hold valid base64"),
    (".", "image '.': not a file"),
])
def test_bad_images_are_value_errors_naming_them(image: str, error: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=re.escape(error)) as info:
        AsyncOllama("http://127.0.0.1:1").chat("qwen3", [{"role": "user", "images": [image]}])
    assert str(info.value).startswith("messages[0]: image ")
    with pytest.raises(ValueError):
        AsyncOllama("http://127.0.0.1:1").generate("qwen3", "x", images=[image])


def test_a_directory_path_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a file"):
        Message("user", images=[tmp_path])
    with pytest.raises(TypeError, match="an image must be"):
        Message("user", images=[3.14])  # type: ignore[list-item]


# -- pull, push, create ----------------------------------------------------------------------------

async def test_pull_progress(fake: FakeOllama, client: AsyncOllama) -> None:
    stream = client.pull("tinyllama")
    lines = [p async for p in stream]
    assert all(isinstance(p, Progress) for p in lines)
    assert (lines[0].status == "pulling manifest" and lines[-1].status == "success"
            and lines[-1].done)
    layers = [p for p in lines if p.digest]
    assert layers and all(p.total and p.digest and p.digest.startswith("sha256:") for p in layers)
    fractions = [p.fraction for p in layers if p.digest == layers[0].digest]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert await stream.result() == "success"
    assert fake.requests == [] and fake.received[-1].body == {"model": "tinyllama", "stream": True}
    assert "tinyllama:latest" in [m.name for m in (await client.list()).models]


async def test_pull_unknown_model_raises_the_error_line(client: AsyncOllama) -> None:
    with pytest.raises(StreamError, match="file does not exist"):
        await client.pull("no-such-model").result()


async def test_push_and_create(fake: FakeOllama, client: AsyncOllama) -> None:
    assert await client.push("qwen3").result() == "success"
    statuses = [p.status async for p in client.create("mine", from_="qwen3",
                                                       system="You are terse.",
                                                       parameters={"temperature": 0})]
    assert statuses[-1] == "success"
    body = fake.received[-1].body
    assert body == {"model": "mine", "from": "qwen3", "system": "You are terse.",
                    "parameters": {"temperature": 0}, "stream": True}
    assert (await client.show("mine")).capabilities
    with pytest.raises(ValueError, match="from_"):
        client.create("nothing")


async def test_blobs_and_create_from_files(fake: FakeOllama, client: AsyncOllama,
                                           tmp_path: Path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF" + bytes(100))
    digest = "sha256:" + hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert await client.has_blob(digest) is False
    assert await client.create_blob(gguf) == digest
    assert await client.has_blob(digest) is True and fake.blobs[digest] == gguf.read_bytes()
    uploads = [r for r in fake.received if r.method == "POST" and r.path.startswith("/api/blobs/")]
    assert await client.create_blob(str(gguf)) == digest  # already there: not sent again
    assert len([r for r in fake.received
                if r.method == "POST" and r.path.startswith("/api/blobs/")]) == len(uploads)
    assert await client.create("from-file", files={"model.gguf": digest}).result() == "success"
    with pytest.raises(ValueError, match="digest"):
        await client.has_blob("md5:abc")
    with pytest.raises(ValueError, match="not a file"):
        await client.create_blob(tmp_path)


# -- embed, list, show, ps, version, delete, copy, is_running --------------------------------------

async def test_embed(fake: FakeOllama, client: AsyncOllama) -> None:
    one = await client.embed("qwen3", "hello")
    assert isinstance(one, EmbedResult) and len(one.embeddings) == 1
    assert all(isinstance(x, float) for x in one.embeddings[0])
    assert math.isclose(sum(x * x for x in one.embeddings[0]), 1.0, rel_tol=1e-6)
    two = await client.embed("qwen3", ["hello", "world"], dimensions=4, truncate=True)
    assert len(two.embeddings) == 2 and all(len(v) == 4 for v in two.embeddings)
    assert two.metrics.prompt_eval_count
    assert fake.received[-1].body == {"model": "qwen3", "input": ["hello", "world"],
                                      "truncate": True, "dimensions": 4}
    with pytest.raises(ModelNotFoundError):
        await client.embed("nope", "x")
    with pytest.raises(TypeError, match="input"):
        await client.embed("qwen3", [1, 2])  # type: ignore[list-item]


async def test_list_show_ps_version(fake: FakeOllama, client: AsyncOllama) -> None:
    listing = await client.list()
    assert isinstance(listing, ListResult)
    first = listing.models[0]
    assert (first.name and first.size > 0 and first.digest and first.modified_at
            and first.details.family)
    shown = await client.show("qwen3")
    assert (isinstance(shown, ShowResult)
            and {"completion", "tools", "thinking"} <= set(shown.capabilities))
    assert isinstance(shown.capabilities, tuple) and shown.template and shown.details.format
    assert shown.model_info and isinstance(shown.raw, dict)
    assert (await client.show("qwen3", verbose=True)).model_info
    with pytest.raises(ModelNotFoundError):
        await client.show("nope")
    assert (await client.ps()).models == []
    await client.chat("qwen3", []).result()
    ps = await client.ps()
    assert isinstance(ps, PsResult) and [m.name for m in ps.models] == ["qwen3:latest"]
    assert ps.models[0].size_vram >= 0 and ps.models[0].expires_at
    assert await client.version() == fake.version


async def test_delete_and_copy(fake: FakeOllama, client: AsyncOllama) -> None:
    await client.copy("qwen3", "qwen3-backup")
    names = [m.name for m in (await client.list()).models]
    assert "qwen3-backup:latest" in names and "qwen3:latest" in names
    await client.delete("qwen3-backup")
    with pytest.raises(ModelNotFoundError) as info:
        await client.delete("qwen3-backup")
    assert info.value.model == "qwen3-backup" and info.value.status_code == 404
    with pytest.raises(ModelNotFoundError):
        await client.copy("nope", "other")


async def test_is_running(fake: FakeOllama, client: AsyncOllama) -> None:
    assert await client.is_running() is True
    async with AsyncOllama("http://127.0.0.1:1") as nobody:
        assert await nobody.is_running() is False


async def test_unknown_response_fields_are_kept_in_raw(fake: FakeOllama,
                                                       client: AsyncOllama) -> None:
    listing = await client.list()
    assert set(listing.models[0].raw) >= {"name", "model", "size", "digest", "details"}


async def test_non_json_answer_to_a_json_endpoint(loop_errors: list[Any]) -> None:
    from .servers import raw_server, read_request

    async def handler(reader: Any, writer: Any) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     b"Content-Length: 5\r\n\r\nhello")
        await writer.drain()
        await reader.read()

    async with raw_server(handler) as url, AsyncOllama(url, retry=RetryPolicy(max_attempts=1)) as c:
        with pytest.raises(ProtocolError, match="did not answer with JSON: b'hello'"):
            await c.list()


async def test_plain_endpoints_are_retried_like_streams(loop_errors: list[Any]) -> None:
    from .servers import raw_server, read_request

    attempts = 0

    async def handler(reader: Any, writer: Any) -> None:
        nonlocal attempts
        while True:
            await read_request(reader)
            attempts += 1
            if attempts == 1:
                body = b'{"error":"server busy, please try again."}'
                writer.write(b"HTTP/1.1 503 X\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            else:
                body = b'{"models":[{"name":"m:latest","model":"m:latest","size":1,"digest":"d"}]}'
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()

    async with (raw_server(handler) as url,
                AsyncOllama(url, retry=RetryPolicy(base_delay=0, jitter=0)) as c):
        listing = await c.list()
    assert [m.name for m in listing.models] == ["m:latest"] and attempts == 2


# -- the blocking client covers the same endpoints -------------------------------------------------

def test_blocking_endpoints(tmp_path: Path) -> None:
    with FakeOllama() as fake, Ollama(fake.url) as client:
        assert [p.status for p in client.pull("tinyllama")][-1] == "success"
        assert client.generate("qwen3", "hi").result().response == "You said: hi"
        assert list(client.generate("qwen3", "a b").text()) == ["You ", "said: ", "a ", "b"]
        assert len(client.embed("qwen3", ["a", "b"]).embeddings) == 2
        assert "thinking" in client.show("qwen3").capabilities
        assert client.ps().models and client.list().models
        client.copy("qwen3", "q2")
        client.delete("q2")
        with pytest.raises(ModelNotFoundError):
            client.delete("q2")
        blob = tmp_path / "b.bin"
        blob.write_bytes(b"data")
        digest = client.create_blob(blob)
        assert client.has_blob(digest) and client.is_running()
        assert client.create("m2", from_="qwen3").result() == "success"
