"""The backend slot. One conformance module runs the same scripted conversations through every
backend (native, and LiteLLM's `ollama_chat/` provider when the extra is installed) against
FakeOllama; the generic driver is also tested with a scripted in-memory backend.

LiteLLM looks the model up with a *blocking* call to `/api/show` after a stream, from inside the
event loop: FakeOllama therefore runs in its own thread here, and every test is bounded by a
timeout.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from ollama_stream import (
    AsyncOllama,
    ChatBackend,
    ChatChunk,
    ChatRequest,
    Message,
    ModelNotFoundError,
    NativeBackend,
    OllamaError,
    OllamaTimeoutError,
    ResponseError,
    RetryPolicy,
    StreamError,
    StreamInterrupted,
    Timeouts,
    ToolCall,
    ToolResult,
)
from ollama_stream.testing import FakeOllama

HAS_LITELLM = importlib.util.find_spec("litellm") is not None
NO_WAIT = RetryPolicy(max_attempts=3, base_delay=0, max_delay=0, jitter=0)
USER = [{"role": "user", "content": "What's the weather in Tokyo and Paris?"}]

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_fake(fake: FakeOllama) -> None:
    fake.reset()  # the queue and the records; the module shares one fake


def native(url: str, **options: Any) -> AsyncOllama:
    return AsyncOllama(url, **options)


def via_native_backend(url: str, **options: Any) -> AsyncOllama:
    return AsyncOllama(url, backend=NativeBackend(url), **options)


def via_litellm(url: str, **options: Any) -> AsyncOllama:
    from ollama_stream.backends.litellm import LiteLLMBackend

    return AsyncOllama(url, backend=LiteLLMBackend(api_base=url), **options)


BACKENDS = [
    pytest.param(native, id="native"),
    pytest.param(via_native_backend, id="native-backend-object"),
    pytest.param(via_litellm, id="litellm",
                 marks=pytest.mark.skipif(not HAS_LITELLM,
                                          reason='needs pip install "ollama-stream[litellm]"')),
]

Factory = Callable[..., AsyncOllama]


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 45))


# -- conformance: the same script, the same results, whatever the backend --------------------------

@pytest.mark.parametrize("make", BACKENDS)
def test_scripted_conversation_accumulates_the_same(fake: FakeOllama, make: Factory) -> None:
    fake.queue_reply(thinking="Two cities, two calls.", content="Checking both.",
                     tool_calls=[ToolCall("get_weather", {"city": "Tokyo"}),
                                 ToolCall("get_weather", {"city": "Paris", "unit": "F"})])

    async def main() -> tuple[list[ChatChunk], Any]:
        async with make(fake.url) as client:
            stream = client.chat("qwen3", USER, think=True)
            chunks = [chunk async for chunk in stream]
            return chunks, await stream.result()

    chunks, result = run(main())
    assert "".join(c.thinking for c in chunks) == "Two cities, two calls."
    assert "".join(c.content for c in chunks) == "Checking both."
    message = result.message
    assert (message.content, message.thinking) == ("Checking both.", "Two cities, two calls.")
    assert [(c.name, c.arguments) for c in message.tool_calls] == [
        ("get_weather", {"city": "Tokyo"}), ("get_weather", {"city": "Paris", "unit": "F"})]
    assert all(c.id for c in message.tool_calls)  # ids may differ: LiteLLM replaces them
    assert (result.metrics is not None and result.metrics.eval_count
            and result.metrics.prompt_eval_count)
    assert chunks[-1].done and all(not c.done for c in chunks[:-1])
    assert (fake.requests[-1]["think"] is True
            and fake.requests[-1]["messages"][0]["content"] == USER[0]["content"])


@pytest.mark.parametrize("make", BACKENDS)
def test_text_and_options_reach_the_server(fake: FakeOllama, make: Factory) -> None:
    fake.queue_reply(content="Hello there, friend.")

    async def main() -> list[str]:
        async with make(fake.url) as client:
            return [t async for t in client.chat("qwen3", USER,
                                                 options={"temperature": 0, "seed": 7},
                                                 keep_alive="5m").text()]

    assert "".join(run(main())) == "Hello there, friend."
    sent = fake.requests[-1]
    assert (sent["options"]["temperature"] == 0 and sent["options"]["seed"] == 7
            and sent["keep_alive"] == "5m")


@pytest.mark.parametrize("make", BACKENDS)
def test_the_tool_loop_runs_over_the_backend(fake: FakeOllama, make: Factory) -> None:
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    fake.queue_reply(tool_calls=[ToolCall("get_weather", {"city": "Tokyo"}),
                                 ToolCall("get_weather", {"city": "Rome"})])
    fake.queue_reply(content="Sunny in both.")

    async def main() -> tuple[list[Any], list[Message]]:
        async with make(fake.url) as client:
            loop = client.chat_with_tools("qwen3", USER, tools=[get_weather])
            return [e async for e in loop], loop.messages

    events, history = run(main())
    assert [e.content for e in events if isinstance(e, ToolResult)] == ["sunny in Tokyo",
                                                                         "sunny in Rome"]
    assert [m.role for m in history] == ["user", "assistant", "tool", "tool", "assistant"]
    assert history[-1].content == "Sunny in both."
    tool_messages = [m for m in fake.requests[-1]["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in tool_messages] == ["sunny in Tokyo", "sunny in Rome"]


@pytest.mark.parametrize("make", BACKENDS)
def test_retries_happen_once_above_the_backend(fake: FakeOllama, make: Factory) -> None:
    fake.queue_error(503, "server busy, please try again.")
    fake.queue_reply(content="Second time lucky.")

    async def main() -> str:
        async with make(fake.url, retry=NO_WAIT) as client:
            return (await client.chat("qwen3", USER).result()).message.content

    assert run(main()) == "Second time lucky."
    assert len(fake.requests) == 2  # LiteLLM's own retries are off: only ours


@pytest.mark.parametrize("make", BACKENDS)
def test_errors_are_the_sdks(fake: FakeOllama, make: Factory) -> None:
    fake.queue_error(400, '"qwen3" does not support tools')
    fake.queue_reply(content="half of it", error="model runner has unexpectedly stopped")

    async def main() -> list[BaseException]:
        errors: list[BaseException] = []
        async with make(fake.url, retry=NO_WAIT) as client:
            for model in ("qwen3", "qwen3", "no-such-model"):
                try:
                    await client.chat(model, USER).result()
                except OllamaError as exc:
                    errors.append(exc)
        return errors

    bad_request, mid_stream, missing = run(main())
    assert (isinstance(bad_request, ResponseError) and bad_request.status_code == 400
            and bad_request.attempts == 1)
    assert (isinstance(mid_stream, StreamError)
            and "model runner has unexpectedly stopped" in str(mid_stream))
    assert mid_stream.partial is not None and mid_stream.partial.content == "half of it"
    assert isinstance(missing, ModelNotFoundError) and "ollama pull no-such-model" in str(missing)
    assert len(fake.requests) == 3  # none of them retried


@pytest.mark.parametrize("make", BACKENDS)
def test_phase_timeouts_apply_above_the_backend(fake: FakeOllama, make: Factory) -> None:
    fake.queue_reply(content="never", stall_after=0)
    fake.queue_reply(content="one two three", stall_after=2)

    async def main() -> tuple[BaseException, BaseException]:
        async with make(fake.url, retry=RetryPolicy(max_attempts=2, base_delay=0),
                        timeouts=Timeouts(first_chunk=0.3, idle=0.3)) as client:
            with pytest.raises(OllamaTimeoutError) as first:
                await client.chat("qwen3", USER).result()
            with pytest.raises(OllamaTimeoutError) as idle:
                await client.chat("qwen3", USER).result()
            return first.value, idle.value

    first, idle = run(main())
    # not retried, like any first-chunk timeout (the model may still be loading)
    assert first.phase == "first_chunk" and first.attempts == 1
    assert idle.phase == "idle" and idle.partial == Message("assistant", "one two ")
    assert fake.pending == 0


@pytest.mark.parametrize("make", BACKENDS)
def test_break_closes_the_stream(fake: FakeOllama, make: Factory) -> None:
    fake.queue_reply(content="word " * 300, chunk_delay=0.005)

    async def main() -> int:
        async with make(fake.url) as client:
            async for _ in client.chat("qwen3", USER):
                break
            gc.collect()
            for _ in range(200):
                if fake.disconnects:
                    break
                await asyncio.sleep(0.01)
            return fake.disconnects

    assert run(main()) == 1


# -- the generic driver with a scripted backend ----------------------------------------------------

class ScriptedBackend:
    """Plays one script per request: a list of chunks and exceptions (and `"stall"` to hang)."""

    def __init__(self, *scripts: list[Any]) -> None:
        self.scripts = list(scripts)
        self.requests: list[ChatRequest] = []
        self.closed = False

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        self.requests.append(request)
        for step in self.scripts.pop(0):
            if isinstance(step, BaseException):
                raise step
            if step == "stall":
                await asyncio.Event().wait()
            yield step

    async def aclose(self) -> None:
        self.closed = True


def chunk(content: str = "", done: bool = False) -> ChatChunk:
    return ChatChunk("m", "t", content, "", (), done, "stop" if done else None, None, None, {})


async def test_a_scripted_backend_satisfies_the_protocol(loop_errors: list[Any]) -> None:
    backend = ScriptedBackend([chunk("Hel"), chunk("lo"), chunk(done=True)])
    assert isinstance(backend, ChatBackend)
    async with AsyncOllama(backend=backend) as client:
        result = await client.chat("m", USER, think="low", options={"seed": 1}).result()
    assert result.message.content == "Hello" and result.done_reason == "stop"
    assert backend.requests[0].model == "m" and backend.requests[0].get("think") == "low"
    assert backend.requests[0].messages == USER and backend.closed


async def test_generic_retries_only_before_the_first_chunk(loop_errors: list[Any]) -> None:
    busy = ResponseError("busy", status_code=503)
    backend = ScriptedBackend([busy], [busy], [chunk("ok"), chunk(done=True)])
    async with AsyncOllama(backend=backend, retry=NO_WAIT) as client:
        assert (await client.chat("m", USER).result()).message.content == "ok"
    backend = ScriptedBackend([chunk("par"), ResponseError("late", status_code=503)],
                              [chunk("never")])
    async with AsyncOllama(backend=backend, retry=NO_WAIT) as client:
        with pytest.raises(ResponseError) as info:
            await client.chat("m", USER).result()
    assert info.value.partial == Message("assistant", "par") and len(backend.scripts) == 1
    backend = ScriptedBackend([ResponseError("no", status_code=401)], [chunk("never")])
    async with AsyncOllama(backend=backend, retry=NO_WAIT) as client:
        with pytest.raises(ResponseError, match="no"):
            await client.chat("m", USER).result()
    assert len(backend.scripts) == 1


async def test_generic_end_without_done_and_foreign_errors(loop_errors: list[Any]) -> None:
    async with AsyncOllama(backend=ScriptedBackend([chunk("a")]), retry=NO_WAIT) as client:
        with pytest.raises(StreamInterrupted, match="without a final chunk") as info:
            await client.chat("m", USER).result()
    assert info.value.partial == Message("assistant", "a")
    async with AsyncOllama(backend=ScriptedBackend([chunk("a"), KeyError("oops")])) as client:
        with pytest.raises(OllamaError, match="ScriptedBackend failed: KeyError") as wrapped:
            await client.chat("m", USER).result()
    assert isinstance(wrapped.value.__cause__, KeyError)


async def test_generic_timeouts_never_fire_inside_the_callers_code(loop_errors: list[Any]) -> None:
    backend = ScriptedBackend([chunk("a"), chunk("b"), chunk(done=True)])
    async with AsyncOllama(backend=backend, timeouts=Timeouts(total=0.1)) as client:
        stream = client.chat("m", USER)
        await stream.__anext__()
        # the caller is busy when the total limit passes: no cancel lands here
        await asyncio.sleep(0.2)
        with pytest.raises(OllamaTimeoutError) as info:
            await stream.__anext__()  # it is reported at the next read instead
    assert info.value.phase == "total" and info.value.partial == Message("assistant", "a")


async def test_generic_stall_is_an_idle_timeout(loop_errors: list[Any]) -> None:
    backend = ScriptedBackend([chunk("a"), "stall"])
    async with AsyncOllama(backend=backend, timeouts=Timeouts(idle=0.1)) as client:
        with pytest.raises(OllamaTimeoutError) as info:
            await client.chat("m", USER).result()
    assert info.value.phase == "idle" and info.value.partial == Message("assistant", "a")


def test_a_backend_must_look_like_one() -> None:
    with pytest.raises(TypeError, match="stream_chat"):
        AsyncOllama(backend=object())  # type: ignore[arg-type]


# -- LiteLLM costs nothing to those who do not use it ----------------------------------------------

def test_import_never_loads_litellm() -> None:
    code = ("import ollama_stream, sys; print('litellm' in sys.modules, "
            "'ollama_stream.backends.litellm' in sys.modules)")
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False False"
    assert "litellm" not in out.stderr  # -X importtime lists every module imported


def test_without_litellm_the_error_is_the_install_command() -> None:
    code = ("import sys; sys.modules['litellm'] = None\n"
            "from ollama_stream.backends.litellm import LiteLLMBackend\n"
            "try:\n    LiteLLMBackend(model='openai/gpt-4o')\n"
            "except ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    expected = ('LiteLLMBackend needs LiteLLM, which is not installed: '
                'pip install "ollama-stream[litellm]"')
    assert out.stdout.strip() == expected
