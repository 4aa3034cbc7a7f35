"""FakeOllama against the real server's recorded answers (../shared/transcripts, Ollama v0.24): each
recorded request is replayed against a fake scripted to give the same reply, and the answers are
compared on what must agree (status, Content-Type, error texts byte for byte, the key order and
value types of every object, line framing, the byte forms of times), ignoring what legitimately
varies (timestamps, durations, ids, generated text and how it is cut into tokens)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ollama_stream.testing import FakeModel, FakeOllama

TRANSCRIPTS = Path(__file__).resolve().parents[2] / "shared" / "transcripts"
pytestmark = pytest.mark.skipif(not TRANSCRIPTS.is_dir(), reason="no recorded transcripts here")
RFC3339_NANO = re.compile(rb'"(created_at|modified_at|expires_at)":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d'
                          rb'(\.\d{0,8}[1-9])?(Z|[+-]\d\d:\d\d)"')
HELLO = {"content": "Hello world!"}
THINK = {"thinking": "Let me think", "content": "Hello world!"}
SUNNY = {"content": "The weather is sunny."}
WEATHER = {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}
# what each replayed request is answered with (the fake's reply queue), where it generates
REPLIES: dict[str, dict[str, Any]] = {
    "chat_stream": HELLO, "chat_nostream": HELLO, "chat_bad_role": HELLO, "chat_logprobs": HELLO,
    "chat_overflow_truncated": HELLO, "chat_think_false_tiny": HELLO, "chat_think_false": THINK,
    "chat_length": {"content": "Hello world", "done_reason": "length"},
    "chat_unknown_option": {"content": "Hello world!", "done_reason": "length"},
    "chat_format_json": {"content": "{\n\n}"},
    "chat_loop_length": {"content": "~~~~~~", "done_reason": "length"},
    "chat_think_max": THINK, "chat_think_true_nostream": THINK, "chat_tools_nostream": WEATHER,
    "chat_tools_round2": SUNNY, "chat_tools_think_round2": {**SUNNY, "thinking": "Let me think"},
    "generate_stream": HELLO, "generate_nostream": HELLO, "generate_think": THINK,
    "generate_think_default": THINK,
}
# compared byte for byte: the server's own error texts and fixed answers
EXACT = {"chat_bad_keepalive", "chat_bad_messages_type", "chat_broken_model", "chat_think_bogus",
         "chat_think_high_unsupported", "chat_think_unsupported", "chat_bad_format",
         "chat_truncate_false_overflow", "copy_bad", "copy_unknown", "delete_again",
         "delete_created", "embed_bad_input", "embed_empty_input", "embed_truncate_false_overflow",
         "embed_unknown_model", "generate_raw_with_system", "generate_unknown_model", "ps_empty",
         "version", "wrong_method", "root_head", "blob_head_missing"}
# what the fake does not reproduce, and why
LEFT_OUT = {
    "tags_after_copy": "the same shape as tags",
    "show_unknown": "v0.33 names the resolved model ('nope:latest'); v0.24 said 'nope' (see "
                    "test_fake_fidelity)",
}
NAMES = sorted({p.stem for p in TRANSCRIPTS.glob("*.request")}) if TRANSCRIPTS.is_dir() else []


def recorded(name: str) -> dict[str, Any]:
    method_url, _, body = (TRANSCRIPTS / f"{name}.request").read_text().partition("\n\n")
    method, url = method_url.split()
    headers = {}
    for line in (TRANSCRIPTS / f"{name}.headers").read_text().splitlines()[1:]:
        key, sep, value = line.partition(":")
        if sep:
            headers[key.strip().lower()] = value.strip()
    return {"method": method, "path": "/" + url.split("/", 3)[3], "body": body.strip().encode(),
            "status": int((TRANSCRIPTS / f"{name}.status").read_text().split()[0]),
            "headers": headers, "raw": (TRANSCRIPTS / f"{name}.body").read_bytes()}


def shape(value: Any) -> Any:
    """Keys in order and value kinds, recursively; a list by its first item (the number of
    tokens, results or tensors varies)."""
    if isinstance(value, dict):
        return {"{}": [(key, shape(item)) for key, item in value.items()]}
    if isinstance(value, list):
        return {"[]": shape(value[0]) if value else None}
    if isinstance(value, bool) or value is None:
        return repr(value) if value is None else "bool"
    return "number" if isinstance(value, (int, float)) else type(value).__name__


def line_shapes(raw: bytes) -> list[Any]:
    """The shape of each NDJSON line, runs of equal shapes kept once."""
    shapes: list[Any] = []
    for line in raw.splitlines():
        current = shape(json.loads(line))
        if not shapes or shapes[-1] != current:
            shapes.append(current)
    return shapes


@pytest.fixture
async def tiny(loop_errors: list[dict[str, Any]]) -> AsyncIterator[FakeOllama]:
    """The recording server's models: tiny (completion and tools, through its template),
    tiny-think (the same and thinking) and from-file (a GGUF Ollama could not read)."""
    models = [FakeModel("tiny", capabilities=["completion", "tools"], context_length=1024),
              FakeModel("tiny-think", capabilities=["completion", "tools", "thinking"]),
              FakeModel("from-file", capabilities=[])]
    async with FakeOllama(models=models, version="0.24.0") as fake:
        yield fake


async def replay(fake: FakeOllama, name: str) -> tuple[int, dict[str, str], bytes]:
    sent = recorded(name)
    async with (aiohttp.ClientSession() as session,
                session.request(sent["method"], f"{fake.url}{sent['path']}",
                                data=sent["body"] or None) as response):
        headers = {key.lower(): value for key, value in response.headers.items()}
        return response.status, headers, await response.read()


async def prepare(fake: FakeOllama, name: str) -> None:
    """The state the recording had reached before this request."""
    if name in REPLIES:
        fake.queue_reply(**REPLIES[name])
    if name == "ps_loaded":
        await replay(fake, "chat_stream")
    if name == "delete_created":
        fake.models.add("tiny-sys:latest")
    if name == "create_files_bad_gguf":  # uploaded before (a GGUF Ollama could not read)
        digest = json.loads(recorded(name)["body"])["files"]["tiny.gguf"]
        fake.blobs[digest] = b"GGUF\x03\x00\x00\x00"


def layer_kinds(raw: bytes) -> list[str]:
    """A create's statuses without their digests, runs of equal ones kept once (the number of
    layers a model has varies)."""
    kinds: list[str] = []
    for line in raw.splitlines():
        status = str(json.loads(line).get("status", "error"))
        kind = status.rsplit(" sha256:", 1)[0]
        if not kinds or kinds[-1] != kind:
            kinds.append(kind)
    return kinds


@pytest.mark.parametrize("name", NAMES)
async def test_the_fake_answers_as_the_recording(tiny: FakeOllama, name: str) -> None:
    if name in LEFT_OUT:
        pytest.skip(LEFT_OUT[name])
    real = recorded(name)
    await prepare(tiny, name)
    status, headers, raw = await replay(tiny, name)
    assert status == real["status"], raw
    assert headers.get("content-type") == real["headers"].get("content-type")
    assert headers.get("allow") == real["headers"].get("allow")
    if real["method"] == "HEAD":
        assert raw == b""
        return
    if name in EXACT:
        assert raw == real["raw"]
        return
    if real["headers"].get("content-type") == "application/x-ndjson":
        assert raw.endswith(b"\n") and real["raw"].endswith(b"\n")
        assert line_shapes(raw) == line_shapes(real["raw"])
        if name.startswith("create_"):  # which layers are reused, which are new
            assert layer_kinds(raw) == layer_kinds(real["raw"])
    else:
        assert not raw.endswith(b"\n")  # c.JSON writes no newline
        if name.startswith("show_"):
            ours, theirs = list(json.loads(raw)), list(json.loads(real["raw"]))
            # the fields of the recording come in the fake's answer in the same order
            assert [key for key in ours if key in theirs] == theirs
            return
        assert shape(json.loads(raw)) == shape(json.loads(real["raw"]))
    # every time is in Go's RFC 3339 form: nanoseconds, trailing zeros cut (the pattern holds for
    # the recording too)
    for answer in (raw, real["raw"]):
        times = sum(answer.count(f'"{key}"'.encode())
                    for key in ("created_at", "modified_at", "expires_at"))
        assert len(RFC3339_NANO.findall(answer)) == times


def test_every_transcript_is_replayed_or_said_why() -> None:
    if not NAMES:
        pytest.skip("no recorded transcripts here")
    assert set(LEFT_OUT) | set(REPLIES) | EXACT <= set(NAMES)
