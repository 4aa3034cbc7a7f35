"""Failures that mean what they say: which of the server's answers are retried, and the typed error
each of its texts raises (texts as Ollama v0.33's Go source writes them; PROTOCOL.md)."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import orjson
import pytest

from ollama_stream import (
    AsyncOllama,
    CapabilityError,
    ContextLengthError,
    ModelNotFoundError,
    OllamaTimeoutError,
    PromptTruncatedWarning,
    ReplyTruncatedError,
    ResponseError,
    RetryPolicy,
    StreamInterrupted,
    Timeouts,
    UnauthorizedError,
)
from ollama_stream.testing import FakeOllama
from tests.servers import http_chunk, raw_server, read_request, response_head

USER = [{"role": "user", "content": "Hi"}]
NO_WAIT = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0, jitter=0.0)


async def fail_then_answer(fake: FakeOllama, status: int, text: str) -> tuple[Any, int]:
    """Queue `status`/`text` twice then a reply; return (the outcome, requests the server saw)."""
    fake.queue_error(status, text)
    fake.queue_error(status, text)
    fake.queue_reply(content="fine")
    async with AsyncOllama(fake.url, retry=NO_WAIT) as client:
        try:
            outcome: Any = await client.chat("qwen3", USER).result()
        except ResponseError as exc:
            outcome = exc
    return outcome, len(fake.requests)


# -- what is retried -----------------------------------------------------------------------------

PERMANENT_500 = [
    'option "num_ctx" must be of type integer',
    "template: :1:12: executing \"\" at <.Foo>: can't evaluate field Foo",
    "model requires more system memory (12.3 GiB) than is available (8.0 GiB)",
    "unable to load full model on GPU",
    "llama-server reported out-of-memory during startup: cudaMalloc failed",
    "this model may be incompatible with your version of Ollama. If you previously pulled "
    "this model, try updating it by running `ollama pull qwen3`",
    "invalid format: expected \"json\" or a valid JSON schema",
]


@pytest.mark.parametrize("text", PERMANENT_500)
async def test_a_permanent_500_is_one_request(fake: FakeOllama, text: str) -> None:
    error, requests = await fail_then_answer(fake, 500, text)
    assert isinstance(error, ResponseError) and error.status_code == 500 and error.error == text
    assert requests == 1 and error.attempts == 1 and "not retried" in str(error)


TRANSIENT = [
    (500, "model runner has unexpectedly stopped, this may be due to resource limitations or an "
          "internal error, check ollama server logs for details"),
    (500, "timed out waiting for llama-server to start - progress 0.00 - "),
    (503, "server busy, please try again.  maximum pending requests exceeded"),
    (502, "dial tcp: lookup ollama.com: no such host"),
    (504, "upstream timed out"),
    (429, "too many requests"),
]


@pytest.mark.parametrize(("status", "text"), TRANSIENT)
async def test_a_passing_failure_is_retried(fake: FakeOllama, status: int, text: str) -> None:
    result, requests = await fail_then_answer(fake, status, text)
    assert not isinstance(result, Exception), result
    assert result.message.content == "fine" and requests == 3


@pytest.mark.parametrize("text", ["you've reached your weekly usage limit, please upgrade",
                                  "session usage limit reached", "monthly quota exceeded"])
async def test_a_used_up_quota_is_not_retried(fake: FakeOllama, text: str) -> None:
    error, requests = await fail_then_answer(fake, 429, text)
    assert isinstance(error, ResponseError) and error.status_code == 429
    assert requests == 1 and "usage limit" in str(error)


async def test_a_passing_429_honours_retry_after(fake: FakeOllama) -> None:
    waits: list[float] = []

    async def record(delay: float) -> None:
        waits.append(delay)

    fake.queue_error(429, "slow down", headers={"Retry-After": "3"})
    fake.queue_reply(content="fine")
    async with AsyncOllama(fake.url, retry=RetryPolicy(max_delay=10)) as client:
        client._sleep = record
        result = await client.chat("qwen3", USER).result()
    assert result.message.content == "fine" and waits == [3.0]


async def test_a_slow_load_that_outlasts_first_chunk_is_one_request() -> None:
    requests = 0
    loading = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        await read_request(reader)
        requests += 1
        loading.set()
        await reader.read()  # still loading when the client gives up

    async with raw_server(handler) as url, AsyncOllama(
            url, retry=NO_WAIT, timeouts=Timeouts(first_chunk=0.2)) as client:
        with pytest.raises(OllamaTimeoutError) as info:
            await client.chat("qwen3", USER).result()
    assert loading.is_set() and requests == 1
    assert info.value.phase == "first_chunk" and info.value.attempts == 1


@pytest.mark.parametrize(("decision", "requests"), [(True, 3), (False, 1), (None, 3)])
async def test_retry_if_is_asked_first(fake: FakeOllama, decision: bool | None,
                                       requests: int) -> None:
    seen: list[int] = []

    def retry_if(error: Any) -> bool | None:
        seen.append(error.status_code)
        return decision

    for _ in range(3):
        fake.queue_error(503, "server busy, please try again.  maximum pending requests exceeded")
    policy = RetryPolicy(max_attempts=3, base_delay=0, retry_if=retry_if)
    async with AsyncOllama(fake.url, retry=policy) as client:
        with pytest.raises(ResponseError):
            await client.chat("qwen3", USER).result()
    assert len(fake.requests) == requests and seen[0] == 503


async def test_retry_if_can_retry_what_the_rule_would_not(fake: FakeOllama) -> None:
    fake.queue_error(400, "my proxy says: try again")
    fake.queue_reply(content="fine")
    policy = RetryPolicy(base_delay=0, retry_if=lambda e: "try again" in str(e) or None)
    async with AsyncOllama(fake.url, retry=policy) as client:
        assert (await client.chat("qwen3", USER).result()).message.content == "fine"


def test_retry_if_must_be_callable() -> None:
    with pytest.raises(TypeError, match="retry_if"):
        RetryPolicy(retry_if="yes")  # type: ignore[arg-type]


# -- a typed error for each text -------------------------------------------------------------

CONTEXT = [
    (400, "the input length exceeds the context length", None),
    (400, "the prompt is longer than the context length currently available to the model; "
          "shorten the prompt, adjust the context length in settings, or use a model with a "
          "longer context length", None),
    (500, "input length (5000 tokens) exceeds the model's maximum context length (4096 tokens)",
     4096),
    (500, "input after truncation exceeds maximum context length", None),
    (500, "input exceeds maximum context length and cannot be truncated further", None),
]


@pytest.mark.parametrize(("status", "text", "window"), CONTEXT)
async def test_context_exceeded_is_a_context_length_error(fake: FakeOllama, status: int,
                                                          text: str, window: int | None) -> None:
    error, requests = await fail_then_answer(fake, status, text)
    assert isinstance(error, ContextLengthError) and error.status_code == status
    assert error.context_length == window and error.model == "qwen3" and requests == 1
    assert "num_ctx" in str(error) and "shorten the history" in str(error)


async def test_the_window_the_request_asked_for_sizes_the_error(fake: FakeOllama) -> None:
    fake.queue_error(400, "the input length exceeds the context length")
    async with AsyncOllama(fake.url, retry=NO_WAIT) as client:
        with pytest.raises(ContextLengthError) as info:
            await client.chat("qwen3", USER, options={"num_ctx": 2048}).result()
    assert info.value.context_length == 2048 and "2048 tokens" in str(info.value)


async def test_llama_servers_nested_error_object_is_read() -> None:
    body = orjson.dumps({"error": {"code": 400, "type": "exceed_context_size_error",
                                   "message": "request (9000 tokens) exceeds the available "
                                              "context size (8192 tokens), try increasing it"}})

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response_head(400, "application/json", chunked=False) + body)
        await writer.drain()
        writer.close()

    async with raw_server(handler) as url, AsyncOllama(url, retry=NO_WAIT) as client:
        with pytest.raises(ContextLengthError) as info:
            await client.chat("qwen3", USER).result()
    assert info.value.context_length == 8192 and info.value.error.startswith("request (9000")


CAPABILITIES = [
    ('"qwen3" does not support thinking', "thinking"),
    ('"deepseek-r1" does not support thinking. Pull the model again to get the latest version '
     "with full thinking support", "thinking"),
    ("registry.ollama.ai/library/llama3.2:latest does not support tools", "tools"),
    ("registry.ollama.ai/library/llama3.2:latest does not support tools\ninsert", "tools"),
    ('"nomic-embed-text" does not support chat', "completion"),
    ('"nomic-embed-text" does not support generate', "completion"),
    ("registry.ollama.ai/library/qwen3:latest does not support insert", "insert"),
    ("registry.ollama.ai/library/qwen3:latest does not support vision", "vision"),
    ("registry.ollama.ai/library/qwen3:latest does not support embedding", "embedding"),
]


@pytest.mark.parametrize(("text", "capability"), CAPABILITIES)
async def test_a_missing_capability_is_a_capability_error(fake: FakeOllama, text: str,
                                                          capability: str) -> None:
    error, requests = await fail_then_answer(fake, 400, text)
    assert isinstance(error, CapabilityError) and error.capability == capability
    assert error.model == "qwen3" and error.status_code == 400 and requests == 1
    assert f"does not support {capability}" in str(error)
    assert "does the model support" not in str(error)  # the old hint that pointed the wrong way


async def test_raw_mode_errors_are_not_capabilities(fake: FakeOllama) -> None:
    error, _ = await fail_then_answer(fake, 400, "raw mode does not support template, system, "
                                                 "or context")
    assert type(error) is ResponseError


@pytest.mark.parametrize(("status", "body", "signin_url"), [
    (401, {"error": "unauthorized",
           "signin_url": "https://ollama.com/connect?name=host&key=c3NoLWVk"},
     "https://ollama.com/connect?name=host&key=c3NoLWVk"),
    (401, {"error": "unauthorized"}, None),
    (403, {"error": "ollama cloud is disabled: remote model is unavailable"}, None),
])
async def test_unauthorized_carries_the_signin_url(fake: FakeOllama, status: int,
                                                   body: dict[str, str],
                                                   signin_url: str | None) -> None:
    fake.queue_error(status, body=orjson.dumps(body))
    async with AsyncOllama(fake.url, retry=NO_WAIT) as client:
        with pytest.raises(UnauthorizedError) as info:
            await client.chat("qwen3", USER).result()
    error = info.value
    assert error.status_code == status and error.signin_url == signin_url
    assert len(fake.requests) == 1
    if signin_url:
        assert f"Sign in at {signin_url}" in str(error)
    if "cloud is disabled" in body["error"]:
        assert "OLLAMA_NO_CLOUD" in str(error)


@pytest.mark.parametrize(("status", "text", "kind"), [
    (400, '"qwen3" does not support thinking', CapabilityError),
    (401, "unauthorized", UnauthorizedError),
    (400, "the input length exceeds the context length", ContextLengthError),
    (404, 'model "qwen3" not found, try pulling it first', ModelNotFoundError),
])
async def test_every_typed_error_is_still_a_response_error(fake: FakeOllama, status: int,
                                                           text: str, kind: type) -> None:
    error, _ = await fail_then_answer(fake, status, text)
    assert type(error) is kind and isinstance(error, ResponseError)
    assert error.status_code == status and error.error == text and error.attempts == 1


# -- nothing cut off in silence ----------------------------------------------------------------

async def test_a_reply_cut_at_the_length_limit_says_so(fake: FakeOllama) -> None:
    fake.queue_reply(content="one two three", done_reason="length")
    fake.queue_reply(content="one two three", done_reason="length")
    async with AsyncOllama(fake.url) as client:
        stream = client.chat("qwen3", USER, think=False)
        text = [piece async for piece in stream.text()]
        assert text and stream.truncated
        result = await stream.result()
        assert result.truncated and result.done_reason == "length"
        chunks = [chunk async for chunk in client.chat("qwen3", USER, think=False)]
    assert chunks[-1].truncated and not chunks[0].truncated
    fake.queue_reply(content="complete")
    async with AsyncOllama(fake.url) as client:
        assert not (await client.chat("qwen3", USER).result()).truncated


async def test_a_prompt_that_reached_num_ctx_warns(fake: FakeOllama) -> None:
    async with AsyncOllama(fake.url) as client:
        result = await client.chat("qwen3", USER, options={"num_ctx": 100000}).result()
        assert not result.prompt_truncated
        prompt = result.metrics.prompt_eval_count if result.metrics else None
        assert prompt
        with pytest.warns(PromptTruncatedWarning, match=f"num_ctx={prompt}") as caught:
            cut = await client.chat("qwen3", USER, options={"num_ctx": prompt}).result()
        assert cut.prompt_truncated and "truncate=False" in str(caught[0].message)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            await client.chat("qwen3", USER).result()  # no num_ctx known: nothing to say
        generated = await client.generate("qwen3", "Hi", options={"num_ctx": 10**6}).result()
        assert not generated.prompt_truncated


async def test_the_tool_loop_does_not_take_a_cut_reply_as_its_answer(fake: FakeOllama) -> None:
    def lookup(city: str) -> str:
        """Look a city up."""
        return "sunny"

    fake.queue_reply(content="The weather is", done_reason="length")
    async with AsyncOllama(fake.url) as client:
        loop = client.chat_with_tools("qwen3", USER, [lookup],
                                      options={"num_predict": 4})
        with pytest.raises(ReplyTruncatedError) as info:
            await loop.run()
    error = info.value
    assert "num_predict=4" in str(error) and error.result.message.content == "The weather is"
    assert loop.truncated and error.messages[-1].content == "The weather is"

    fake.queue_reply(content="The weather is", done_reason="length")
    async with AsyncOllama(fake.url) as client:
        kept = client.chat_with_tools("qwen3", USER, [lookup], on_length="return")
        result = await kept.run()
    assert kept.truncated and result.truncated and result.message.content == "The weather is"
    with pytest.raises(ValueError, match="on_length"):
        AsyncOllama(fake.url).chat_with_tools("qwen3", USER, [lookup], on_length="ignore")


async def test_an_unfinished_stream_names_the_repetition_guard(fake: FakeOllama) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        line = orjson.dumps({"model": "qwen3", "created_at": "2026-08-21T10:00:00Z",
                             "message": {"role": "assistant", "content": "la "}, "done": False})
        writer.write(response_head() + http_chunk(line + b"\n") + b"0\r\n\r\n")
        await writer.drain()

    async with raw_server(handler) as url, AsyncOllama(url, retry=NO_WAIT) as client:
        with pytest.raises(StreamInterrupted) as info:
            await client.chat("qwen3", USER).result()
    assert "repetition guard" in str(info.value) and "proxy" in str(info.value)
    assert info.value.partial is not None and info.value.partial.content == "la "


# -- control per call ----------------------------------------------------------------------

def test_every_method_takes_timeouts_and_retry_for_one_call() -> None:
    import inspect

    from ollama_stream import Ollama

    for cls in (AsyncOllama, Ollama):
        methods = [name for name, member in inspect.getmembers(cls, callable)
                   if not name.startswith("_") and name not in ("aclose", "close")]
        assert len(methods) >= 22, methods
        for name in methods:
            parameters = inspect.signature(getattr(cls, name)).parameters
            for wanted in ("timeouts", "retry"):
                assert wanted in parameters, f"{cls.__name__}.{name} has no {wanted}="
                assert parameters[wanted].kind is inspect.Parameter.KEYWORD_ONLY
                assert parameters[wanted].default is None


async def test_a_calls_timeouts_replace_the_clients_for_that_call_only() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()  # never answers

    async with raw_server(handler) as url, AsyncOllama(
            url, timeouts=Timeouts(first_chunk=30), retry=NO_WAIT) as client:
        with pytest.raises(OllamaTimeoutError) as info:
            await client.chat("qwen3", USER, timeouts=Timeouts(first_chunk=0.2)).result()
        assert info.value.timeout == 0.2 and client.timeouts.first_chunk == 30
        with pytest.raises(OllamaTimeoutError) as probe:
            await client.version(timeouts=Timeouts(first_chunk=0.1))
        assert probe.value.timeout == 0.1
        assert not await client.is_running(timeouts=Timeouts(first_chunk=0.1))


async def test_a_calls_retry_replaces_the_clients(fake: FakeOllama) -> None:
    for _ in range(2):
        fake.queue_error(503, "server busy, please try again.  maximum pending requests exceeded")
    fake.queue_reply(content="fine")
    async with AsyncOllama(fake.url, retry=RetryPolicy(max_attempts=1)) as client:
        result = await client.chat("qwen3", USER, retry=NO_WAIT).result()
        assert result.message.content == "fine" and len(fake.requests) == 3
        fake.queue_error(503, "busy")
        with pytest.raises(ResponseError):
            await client.chat("qwen3", USER).result()  # the client's own policy again: once
    assert len(fake.requests) == 4
    with pytest.raises(TypeError, match="retry must be a RetryPolicy"):
        AsyncOllama(fake.url).chat("qwen3", USER, retry=3)  # type: ignore[arg-type]


async def test_load_and_unload_send_what_the_server_understands(fake: FakeOllama) -> None:
    async with AsyncOllama(fake.url) as client:
        await client.load("qwen3", keep_alive="30m")
        await client.unload("qwen3")
    load, unload = fake.requests[-2:]
    assert load == {"model": "qwen3", "messages": [], "stream": True, "keep_alive": "30m"}
    assert unload == {"model": "qwen3", "messages": [], "stream": True, "keep_alive": 0}


def test_the_stop_command_unloads_the_model(fake_thread: FakeOllama) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "ollama_stream", "--host", fake_thread.url,
                           "stop", "qwen3"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert fake_thread.requests[-1]["keep_alive"] == 0
    assert fake_thread.requests[-1]["messages"] == []


@pytest.fixture
def fake_thread() -> Any:
    with FakeOllama() as server:
        yield server
