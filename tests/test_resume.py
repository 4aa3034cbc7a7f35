"""Streams that survive a dropped connection (RetryPolicy(resume=True)): the stream is continued
from its partial reply and every piece of text reaches the caller once, in order; where the server
cannot continue, the original error comes back. Against FakeOllama, whose prefill continuation
follows Ollama's chat paths, cut at seeded byte offsets."""

from __future__ import annotations

import logging
import random
import time
import types
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from ollama_stream import (
    AsyncOllama,
    ChatChunk,
    Ollama,
    OllamaTimeoutError,
    ResponseError,
    RetryPolicy,
    StreamError,
    StreamInterrupted,
    Timeouts,
    ToolCall,
)
from ollama_stream._prefill import ChatPath, ResumedParse, chat_continuation
from ollama_stream.config import RetryPolicy as Policy
from ollama_stream.errors import OllamaConnectionError
from ollama_stream.events import Event
from ollama_stream.testing import FakeModel, FakeOllama, _generation, _gojson, _wire
from ollama_stream.types import Message

from .servers import raw_server, read_request, response_head

RESUME = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0, jitter=0.0, resume=True)
USER = [{"role": "user", "content": "Tell me a story."}]
THINKING = "The user wants a story; keep it short. "
CONTENT = "Once upon a time — café, naïve, 日本語 and 🦊 — a fox\n\nlived  happily. The end."
CALL = ToolCall("remember", {"note": "fox 🦊"})


@pytest.fixture
def steady_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake's timestamps and durations fixed, so every reply to the same request has the same
    bytes and an offset measured on one falls at the same place in the next."""
    clock = types.SimpleNamespace(time_ns=lambda: 1_780_000_000_123_456_789,
                                  perf_counter_ns=lambda: 0, strftime=time.strftime,
                                  gmtime=time.gmtime)
    for module in (_gojson, _wire, _generation):
        monkeypatch.setattr(module, "time", clock)


@pytest.fixture
async def fake(steady_clock: None) -> AsyncIterator[FakeOllama]:
    async with FakeOllama() as server:
        yield server


async def reply_bytes(fake: FakeOllama, model: str, think: bool | None, **reply: Any) -> bytes:
    """The body the fake streams for USER with `reply` queued, read raw."""
    fake.queue_reply(**reply)
    async with aiohttp.ClientSession() as session:
        body: dict[str, Any] = {"model": model, "messages": USER}
        if think is not None:
            body["think"] = think
        async with session.post(f"{fake.url}/api/chat", data=orjson.dumps(body)) as resp:
            data = await resp.read()
    fake.reset()
    return data


def structural_offsets(body: bytes) -> list[int]:
    """Offsets the issue names: inside a token, inside a UTF-8 character, between thinking and
    content, after a tool call, just before (and inside) the final chunk."""
    lines = body.splitlines(keepends=True)
    starts = [sum(len(line) for line in lines[:n]) for n in range(len(lines))]
    kinds = [orjson.loads(line) for line in lines]
    out = []
    for n, obj in enumerate(kinds):
        message = obj.get("message", {})
        if n and message.get("content") and not kinds[n - 1]["message"].get("content"):
            out += [starts[n] - 1, starts[n], starts[n] + 1]  # thinking | content
        if message.get("tool_calls"):
            out += [starts[n] + 30, starts[n] + len(lines[n])]  # inside, after the tool call
        raw = lines[n]
        for position in range(len(raw)):
            if raw[position] >= 0xC0:  # a UTF-8 lead byte: cut one byte into the character
                out.append(starts[n] + position + 1)
                break
    out += [starts[-1] - 1, starts[-1], starts[-1] + 5, len(body) - 2]  # around the final chunk
    return sorted({offset for offset in out if 0 < offset < len(body)})


async def collect(client: AsyncOllama, model: str, **kwargs: Any) -> tuple[list[ChatChunk], Any]:
    stream = client.chat(model, USER, **kwargs)
    chunks = [chunk async for chunk in stream]
    return chunks, await stream.result()


@pytest.mark.parametrize(("model", "think"), [("gpt-oss:20b", None), ("qwen3", False)])
async def test_a_stream_cut_at_any_offset_resumes_into_exactly_the_full_reply(
        fake: FakeOllama, model: str, think: bool | None) -> None:
    reply: dict[str, Any] = {"content": CONTENT, "tool_calls": [CALL]}
    if model.startswith("gpt-oss"):
        reply["thinking"] = THINKING  # harmony continues a reply cut inside its thinking too
    body = await reply_bytes(fake, model, think, **reply)
    rng = random.Random(19)
    offsets = sorted(set(structural_offsets(body)) | set(rng.sample(range(1, len(body)), 30)))
    assert len(offsets) >= 40
    async with AsyncOllama(fake.url, retry=RESUME) as client:
        for offset in offsets:
            fake.reset()
            fake.queue_reply(**reply, cut_at=[offset])
            chunks, result = await collect(client, model, think=think)
            said = "".join(chunk.content for chunk in chunks)
            thought = "".join(chunk.thinking for chunk in chunks)
            assert said == CONTENT, (offset, said)
            assert thought == reply.get("thinking", ""), (offset, thought)
            calls = [(c.name, c.arguments) for chunk in chunks for c in chunk.tool_calls]
            assert calls == [(CALL.name, CALL.arguments)], offset
            assert result.message.content == CONTENT and len(result.message.tool_calls) == 1
            chats = [r for r in fake.received if r.path == "/api/chat"]
            # cut once: a retry when no line had arrived, else a resume; never more
            expected = 1 if offset >= body.index(b"\n") + 1 else 0
            assert result.resumes == sum(chunk.resumed for chunk in chunks) == expected, offset
            assert len(chats) == 2, offset
            if result.resumes:
                continued = chats[-1].body["messages"][-1]
                assert continued["role"] == "assistant"
                assert not chunks[-1].resumed or chunks[-1].done


async def test_the_continuation_asks_for_no_thinking_and_keeps_the_tool_calls(
        fake: FakeOllama) -> None:
    # lines: one of thinking, four of content, the tool call, then the final chunk
    fake.queue_reply(thinking="Hmm. ", content="Alpha beta gamma delta.", tool_calls=[CALL],
                     drop_after=[6])
    async with AsyncOllama(fake.url, retry=RESUME) as client:
        chunks, result = await collect(client, "qwen3")
    message = result.message
    assert message.thinking == "Hmm. " and message.content == "Alpha beta gamma delta."
    assert [(c.name, c.arguments) for c in message.tool_calls] == [(CALL.name, CALL.arguments)]
    assert result.resumes == 1
    resumed = fake.requests[-1]
    assert resumed["think"] is False
    assert resumed["messages"][-1] == {"role": "assistant", "content": "Alpha beta gamma delta.",
                                       "thinking": "Hmm. ",
                                       "tool_calls": [message.tool_calls[0].to_dict()]}
    assert [chunk.resumed for chunk in chunks] == [False] * 6 + [True]
    assert chunks[-1].done and not chunks[-1].tool_calls  # not asked for again


async def test_a_renderer_that_trims_the_message_loses_no_space_and_doubles_none(
        steady_clock: None) -> None:
    model = FakeModel("qwen3.5-like", renderer="qwen3.5", capabilities=["completion"])
    text = "One two  three\n\nfour\tfive six.  "
    async with FakeOllama(models=[model]) as fake, AsyncOllama(fake.url, retry=RESUME) as client:
        for lines in range(1, 7):
            fake.reset()
            fake.queue_reply(content=text, drop_after=[lines])
            chunks, result = await collect(client, "qwen3.5-like")
            assert "".join(chunk.content for chunk in chunks) == text, lines
            assert result.message.content == text and result.resumes == 1
            sent = fake.requests[-1]["messages"][-1]["content"]
            assert text.startswith(sent) and sent != sent.rstrip()  # sent whole; it trims


def test_the_seam_is_dropped_across_chunks_and_only_where_it_matches() -> None:
    def chunk(text: str) -> Any:
        return types.SimpleNamespace(content=text, resumed=False)

    parse = ResumedParse(lambda obj: chunk(obj["t"]), "  \n", "content")
    out = [parse({"t": piece}) for piece in (" ", " \nab", "  c")]
    assert [c.content for c in out] == ["", "ab", "  c"]
    assert [c.resumed for c in out] == [True, False, False]
    other = ResumedParse(lambda obj: chunk(obj["t"]), " ", "content")
    assert other({"t": "\nx"}).content == "\nx"  # the model wrote other whitespace: kept


@pytest.mark.parametrize(("model", "words"), [
    (FakeModel("deepseek-like", renderer="deepseek3", capabilities=["completion"]),
     "renderer 'deepseek3' starts a fresh answer"),
    (FakeModel("chatml-like", capabilities=["completion"],
               template="{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
                        "{{ end }}<|im_start|>assistant\n"),
     "closes every assistant turn")])
async def test_where_the_server_would_start_afresh_the_original_error_is_raised(
        steady_clock: None, model: FakeModel, words: str) -> None:
    async with FakeOllama(models=[model]) as fake:
        fake.queue_reply(content="Never shown twice, never cut short.", drop_after=3)
        async with AsyncOllama(fake.url, retry=RESUME) as client:
            with pytest.raises(StreamInterrupted) as info:
                await collect(client, model.name)
    error = info.value
    assert error.partial is not None and error.partial.content == "Never shown twice, "
    assert any(words in failure for failure in error.failures), error.failures
    assert [r.path for r in fake.received] == ["/api/chat", "/api/show"]  # no second answer


async def test_a_reply_cut_inside_its_thinking_resumes_only_where_thinking_continues(
        fake: FakeOllama) -> None:
    fake.queue_reply(thinking="Step one. Step two. Step three.", content="Done.", drop_after=2)
    async with AsyncOllama(fake.url, retry=RESUME) as client:
        with pytest.raises(StreamInterrupted) as info:
            await collect(client, "qwen3")
    assert info.value.partial is not None and info.value.partial.thinking == "Step one. "
    assert any("inside its thinking" in f for f in info.value.failures)


async def test_a_refused_prefill_raises_the_original_error_with_the_attempt_log(
        fake: FakeOllama) -> None:
    fake.queue_reply(content="Some words that get cut.", drop_after=2)
    fake.queue_error(400, "Assistant response prefill is incompatible with enable_thinking.")
    async with AsyncOllama(fake.url, retry=RESUME) as client:
        with pytest.raises(StreamInterrupted) as info:
            await collect(client, "qwen3", think=False)
    error = info.value
    assert error.partial is not None and error.partial.content == "Some words "
    assert error.attempts == 2 and error.failures == ("connection dropped", "400")
    assert isinstance(error.__context__, ResponseError)  # what the continuation met


async def test_resumes_share_the_attempts_of_the_call(fake: FakeOllama) -> None:
    fake.queue_reply(content="a b c d e f g h i j", drop_after=[2, 2])
    async with AsyncOllama(fake.url, retry=RESUME) as client:
        chunks, result = await collect(client, "qwen3", think=False)
    assert result.message.content == "a b c d e f g h i j" and result.resumes == 2
    assert sum(chunk.resumed for chunk in chunks) == 2
    fake.reset()
    fake.queue_reply(content="a b c d e f g h i j", drop_after=[2, 2, 2])
    async with AsyncOllama(fake.url, retry=RESUME) as client:
        with pytest.raises(StreamInterrupted) as info:
            await collect(client, "qwen3", think=False)
    assert len([r for r in fake.received if r.path == "/api/chat"]) == 3  # 3 attempts in all
    assert info.value.partial is not None and info.value.partial.content == "a b c d e f "
    assert info.value.attempts == 3


async def test_an_idle_timeout_mid_reply_is_resumed(fake: FakeOllama) -> None:
    fake.queue_reply(content="slow words then silence", stall_after=2)
    fake.queue_reply(content="slow words then silence")
    async with AsyncOllama(fake.url, retry=RESUME, timeouts=Timeouts(idle=0.3)) as client:
        chunks, result = await collect(client, "qwen3", think=False)
    assert result.message.content == "slow words then silence" and result.resumes == 1
    assert [chunk.resumed for chunk in chunks].index(True) == 2


async def test_failures_that_are_not_resumed(fake: FakeOllama) -> None:
    async with AsyncOllama(fake.url, retry=RESUME) as client:
        fake.queue_reply(content="x y z", error="an error was encountered while running the model")
        with pytest.raises(StreamError):  # an error line: the server said it, no resume
            await collect(client, "qwen3", think=False)
        assert len(fake.requests) == 1
        no_resume = RetryPolicy(base_delay=0.0, jitter=0.0)
        fake.queue_reply(content="x y z", drop_after=2)
        with pytest.raises(StreamInterrupted):  # resume is off by default
            await collect(client, "qwen3", think=False, retry=no_resume)
        assert len(fake.requests) == 2


async def test_resume_per_call_events_logs_and_the_blocking_client(
        fake: FakeOllama, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ollama_stream")
    events: list[Event] = []
    fake.queue_reply(content="one two three four", drop_after=[3])
    async with AsyncOllama(fake.url, on_event=events.append) as client:
        chunks, result = await collect(client, "qwen3", think=False, retry=RESUME)
    assert result.resumes == 1 and "".join(c.content for c in chunks) == "one two three four"
    resume = next(e for e in events if e.kind == "resume")
    assert resume.reason == "connection dropped" and resume.chunks == 3 and resume.delay == 0.0
    assert [e.kind for e in events if e.operation == "chat"] == [
        "request", "first_chunk", "resume", "request", "finished"]
    assert any(r.getMessage().startswith("resuming POST") for r in caplog.records)


def test_the_blocking_client_and_the_tool_loop_inherit_resume(steady_clock: None) -> None:
    def remember(note: str) -> str:
        """Keep a note."""
        return "kept"

    with FakeOllama() as fake, Ollama(fake.url, retry=RESUME) as client:
        fake.queue_reply(content="blocking and whole", drop_after=[2])
        assert client.chat("qwen3", USER, think=False).result().message.content == (
            "blocking and whole")
        fake.queue_reply(tool_calls=[ToolCall("remember", {"note": "n"})])
        fake.queue_reply(content="the final answer, resumed", drop_after=[3])
        loop = client.chat_with_tools("qwen3", USER, [remember], think=False)
        for _ in loop:
            pass
        assert loop.messages[-1].content == "the final answer, resumed"


async def test_a_raw_generate_resumes_and_a_templated_one_says_why_not(fake: FakeOllama) -> None:
    text = "continues the prompt word by word"
    async with AsyncOllama(fake.url, retry=RESUME) as client:
        fake.queue_reply(content=text, drop_after=[3])
        stream = client.generate("qwen3", "The raw prompt ", raw=True, think=False)
        pieces = [chunk.response async for chunk in stream]
        result = await stream.result()
        assert "".join(pieces) == text and result.response == text and result.resumes == 1
        assert fake.requests[-1]["prompt"] == "The raw prompt " + "continues the prompt "
        fake.queue_reply(content=text, drop_after=3)
        with pytest.raises(StreamInterrupted) as info:
            await client.generate("qwen3", "templated", think=False).result()
    assert any("only a raw generate" in f for f in info.value.failures)


async def test_the_callers_own_prefill_and_the_partial_make_one_message(fake: FakeOllama) -> None:
    history = [*USER, {"role": "assistant", "content": "Once"}]
    fake.queue_reply(content="Once upon a time there was a fox.", drop_after=[3])
    async with AsyncOllama(fake.url, retry=RESUME) as client:
        result = await client.chat("qwen3", history, think=False).result()
    assert result.message.content == " upon a time there was a fox."
    last = fake.requests[-1]["messages"]
    assert [m["role"] for m in last] == ["user", "assistant"]
    assert last[-1]["content"] == "Once upon a "


async def test_a_retryable_status_on_the_continuation_is_retried_within_the_budget(
        fake: FakeOllama) -> None:
    fake.queue_reply(content="p q r s t u", drop_after=2)
    fake.queue_error(503, "server busy, please try again.  maximum pending requests exceeded")
    fake.queue_reply(content="p q r s t u")
    async with AsyncOllama(fake.url, retry=RESUME) as client:
        chunks, result = await collect(client, "qwen3", think=False)
    assert "".join(c.content for c in chunks) == "p q r s t u" and result.resumes == 1
    assert len(fake.requests) == 3  # the cut one, the 503, the continuation: max_attempts=3
    assert fake.requests[1] == fake.requests[2]  # the 503 was retried with the same request


def test_the_resume_rule() -> None:
    on = Policy(resume=True)
    dropped = StreamInterrupted("dropped")
    assert not Policy().resumes(dropped) and on.resumes(dropped)
    assert on.resumes(OllamaTimeoutError("idle", phase="idle", timeout=1.0))
    assert not on.resumes(OllamaTimeoutError("total", phase="total", timeout=1.0))
    assert on.resumes(OllamaConnectionError("reset", reason="connection reset"))
    assert not on.resumes(ResponseError("boom", status_code=200))
    assert not Policy(resume=True, retry_if=lambda e: False).resumes(dropped)
    with pytest.raises(TypeError, match="resume"):
        Policy(resume="yes")  # type: ignore[arg-type]


def test_a_partial_with_nothing_in_it_is_the_same_request_again() -> None:
    body = {"model": "m", "messages": USER, "think": True}
    plan = chat_continuation(body, Message("assistant", ""), ChatPath(False, why="no"))
    assert not isinstance(plan, str) and orjson.loads(plan.body) == body


async def test_a_retry_after_a_first_line_cut_short_starts_a_clean_line(fake: FakeOllama) -> None:
    # without resume too: the bytes of the cut line must not be joined to the next attempt's
    fake.queue_reply(content="whole again", cut_at=[25])
    retry = RetryPolicy(base_delay=0.0, jitter=0.0)
    async with AsyncOllama(fake.url, retry=retry) as client:
        result = await client.chat("qwen3", USER, think=False).result()
    assert result.message.content == "whole again" and result.resumes == 0
    assert len(fake.requests) == 2


# -- clean closes, the show request's deadline, old servers, nested seams, look-alike prompts ---

def chat_line(content: str, done: bool = False) -> bytes:
    obj: dict[str, Any] = {"model": "qwen3", "created_at": "2026-08-21T10:00:00Z",
                           "message": {"role": "assistant", "content": content}, "done": done}
    if done:
        obj["done_reason"] = "stop"
    return orjson.dumps(obj) + b"\n"


def scripted(show_stalls: bool = False) -> tuple[Any, list[bytes]]:
    """A server that closes a chat answer cleanly in the middle of its third line (no chunked
    framing: a close-delimited body, as some proxies send), whose /api/show answers (or stalls),
    and that answers a continuation (a request ending in the partial reply) with the rest."""
    seen: list[bytes] = []

    async def handler(reader: Any, writer: Any) -> None:
        while True:
            line, _, body = await read_request(reader)
            seen.append(line)
            if line.startswith(b"POST /api/show"):
                if show_stalls:
                    await reader.read()  # silent until the client leaves
                    return
                answer = orjson.dumps({"capabilities": ["completion"], "details": {},
                                       "template": "{{ .Prompt }}"})
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer))
                await writer.drain()
                continue
            if orjson.loads(body)["messages"][-1]["role"] == "user":  # a first request
                third = chat_line("three ")
                writer.write(response_head(chunked=False) + chat_line("one ") + chat_line("two ")
                             + third[:len(third) // 2])
                await writer.drain()
                return  # a clean close, in the middle of a line
            assert orjson.loads(body)["messages"][-1]["content"] == "one two "
            writer.write(response_head(chunked=False) + chat_line("three ") + chat_line("four")
                         + chat_line("", done=True))
            await writer.drain()
            return

    return handler, seen


async def test_a_clean_close_in_the_middle_of_a_line_is_a_cut_stream() -> None:
    handler, seen = scripted()
    async with raw_server(handler) as url:
        async with AsyncOllama(url, retry=RESUME) as client:
            result = await client.chat("qwen3", USER).result()
        assert result.message.content == "one two three four" and result.resumes == 1
        async with AsyncOllama(url, retry=RetryPolicy(max_attempts=1)) as client:
            with pytest.raises(StreamInterrupted) as info:  # not a ProtocolError
                await client.chat("qwen3", USER).result()
    assert info.value.partial is not None and info.value.partial.content == "one two "
    assert "resume=True" in str(info.value)  # the way out, named
    assert [line.split()[1] for line in seen] == [b"/api/chat", b"/api/show", b"/api/chat",
                                                  b"/api/chat"]


async def test_asking_how_to_resume_stays_within_the_calls_total() -> None:
    handler, seen = scripted(show_stalls=True)
    async with raw_server(handler) as url, AsyncOllama(url, retry=RESUME) as client:
        started = time.perf_counter()
        with pytest.raises(StreamInterrupted) as info:
            await client.chat("qwen3", USER, timeouts=Timeouts(total=0.5)).result()
        assert time.perf_counter() - started < 5
    assert any("/api/show" in failure for failure in info.value.failures)
    assert [line.split()[1] for line in seen] == [b"/api/chat", b"/api/show"]


async def test_a_model_that_cannot_think_is_not_told_think_false(steady_clock: None) -> None:
    model = FakeModel("plain", capabilities=["completion"])
    async with FakeOllama(models=[model], version="0.12.0") as fake:
        fake.queue_reply(content="alpha beta gamma", drop_after=[2])
        async with AsyncOllama(fake.url, retry=RESUME) as client:
            result = await client.chat("plain", USER).result()
        assert result.message.content == "alpha beta gamma" and result.resumes == 1
        assert "think" not in fake.requests[-1]
        with pytest.raises(ResponseError, match="does not support thinking"):  # as 0.12.0 did
            await AsyncOllama(fake.url).chat("plain", USER, think=False).result()


def test_a_second_resume_starts_from_the_plain_parser() -> None:
    def chunk(text: str) -> Any:
        return types.SimpleNamespace(content=text, resumed=False)

    first = ResumedParse(lambda obj: chunk(obj["t"]), "  ", "content")
    assert first({"t": " "}).content == ""  # half of its seam is left when the stream fails
    second = ResumedParse(first.base, "", "content")  # what the next resume wraps
    assert second({"t": " x"}).content == " x"


async def test_a_raw_prompt_that_only_looks_like_a_resume_gets_the_whole_reply(
        fake: FakeOllama) -> None:
    fake.queue_reply(content="\nHello!")
    async with AsyncOllama(fake.url) as client:
        result = await client.generate("qwen3", "<|user|>hi<|assistant|>\n", raw=True,
                                       think=False).result()
    assert result.response == "\nHello!"
