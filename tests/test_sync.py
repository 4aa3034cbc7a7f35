"""The blocking client `Ollama`: one core driven from a private loop thread, tested against a
FakeOllama in its own thread."""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ollama_stream import (
    AsyncOllama,
    ChatChunk,
    ChatResult,
    Message,
    ModelNotFoundError,
    Ollama,
    StreamError,
    SyncChatStream,
    ToolCall,
    ToolResult,
)
from ollama_stream.testing import FakeOllama

USER = [{"role": "user", "content": "hello"}]


def loop_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "ollama-stream-loop"]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


@pytest.fixture
def client(fake: FakeOllama) -> Iterator[Ollama]:
    with Ollama(fake.url) as c:
        yield c


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in inspect.getmembers(cls, callable)
            if not name.startswith("_") and name not in ("aclose", "close")}


def test_every_async_method_has_a_blocking_twin_with_the_same_parameters() -> None:
    async_methods = public_methods(AsyncOllama)
    sync_methods = public_methods(Ollama)
    assert set(async_methods) == set(sync_methods)
    for name, signature in async_methods.items():
        assert (list(signature.parameters.values())
                == list(sync_methods[name].parameters.values())), name
    constructor = inspect.signature(AsyncOllama.__init__).parameters
    assert list(constructor) == list(inspect.signature(Ollama.__init__).parameters)
    for name, param in constructor.items():
        assert inspect.signature(Ollama.__init__).parameters[name].default == param.default, name
    assert inspect.signature(Ollama.chat).return_annotation == "SyncChatStream"
    assert Ollama.chat.__doc__ == AsyncOllama.chat.__doc__


def test_chat_streams_chunks_and_accumulates(fake: FakeOllama, client: Ollama) -> None:
    fake.queue_reply(content="Blue light scatters.", thinking="Physics.")
    stream = client.chat("qwen3", USER, think=True)
    assert isinstance(stream, SyncChatStream)
    chunks = list(stream)
    assert all(isinstance(c, ChatChunk) for c in chunks) and chunks[-1].done
    assert stream.message == Message("assistant", "Blue light scatters.", "Physics.")
    result = stream.result()
    assert isinstance(result, ChatResult) and result.message.content == "Blue light scatters."
    assert (list(client.chat("qwen3", [{"role": "user", "content": "a b"}]).text())
            == ["You ", "said: ", "a ", "b"])


def test_chunks_reach_the_caller_as_they_arrive(fake: FakeOllama, client: Ollama) -> None:
    fake.queue_reply(content="one two three", stall_after=2)  # two lines, then the server stalls
    stream = client.chat("qwen3", USER)
    assert next(stream).content == "one "
    assert next(stream).content == "two "  # delivered although the stream has not ended
    stream.close()


def test_break_closes_the_response(fake: FakeOllama, client: Ollama) -> None:
    fake.queue_reply(content="word " * 300, chunk_delay=0.005)
    for chunk in client.chat("qwen3", USER):
        assert chunk.content == "word "
        break
    gc.collect()
    deadline = threading.Event()
    for _ in range(200):
        if fake.disconnects:
            break
        deadline.wait(0.01)
    assert fake.disconnects == 1


def test_with_closes_the_response(fake: FakeOllama, client: Ollama) -> None:
    fake.queue_reply(content="word " * 300, chunk_delay=0.005)
    with client.chat("qwen3", USER) as stream:
        next(stream)
    for _ in range(200):
        if fake.disconnects:
            break
        threading.Event().wait(0.01)
    assert fake.disconnects == 1
    with pytest.raises(StopIteration):
        next(stream)


def test_errors_are_the_same_types(fake: FakeOllama, client: Ollama) -> None:
    with pytest.raises(ModelNotFoundError):
        client.chat("nope", USER).result()
    fake.queue_reply(content="half", error="boom")
    seen = []
    with pytest.raises(StreamError) as info:
        for chunk in client.chat("qwen3", USER):
            seen.append(chunk.content)
    assert info.value.partial == Message("assistant", "half") and "".join(seen) == "half"
    with pytest.raises(ValueError, match="think"):
        client.chat("qwen3", USER, think="very")


def test_tool_loop(fake: FakeOllama, client: Ollama) -> None:
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    fake.queue_reply(tool_calls=[ToolCall("add", {"a": 2, "b": 3})])
    loop = client.chat_with_tools("qwen3", USER, tools=[add])
    events = list(loop)
    assert [e.content for e in events if isinstance(e, ToolResult)] == ["5"]
    assert loop.result is not None and loop.result.message.content == "The tool add returned: 5"
    assert [m.role for m in loop.messages] == ["user", "assistant", "tool", "assistant"]


def test_plain_methods(fake: FakeOllama, client: Ollama) -> None:
    assert client.version() == fake.version
    assert client.is_running() is True
    assert "qwen3:latest" in [m.name for m in client.list().models]


def test_shared_between_threads(fake: FakeOllama, client: Ollama) -> None:
    def ask(i: int) -> str:
        return client.chat("qwen3", [{"role": "user", "content": f"n{i}"}]).result().message.content

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(40)))
    assert answers == [f"You said: n{i}" for i in range(40)]
    assert len(loop_threads()) == 1


def test_works_inside_a_running_event_loop(fake: FakeOllama) -> None:
    async def notebook_cell() -> str:  # a Jupyter cell runs inside the kernel's loop
        with Ollama(fake.url) as client:
            return client.chat("qwen3", USER).result().message.content

    assert asyncio.run(notebook_cell()) == "You said: hello"


def test_close_leaves_no_thread_or_socket(fake: FakeOllama) -> None:
    gc.collect()
    threads_before, fds_before = loop_threads(), open_fds()
    client = Ollama(fake.url)
    assert loop_threads() == threads_before  # the loop thread starts on first use
    for _ in range(3):
        client.chat("qwen3", USER).result()
    assert len(loop_threads()) == len(threads_before) + 1
    client.close()
    client.close()
    assert loop_threads() == threads_before
    gc.collect()
    assert open_fds() == fds_before
    with pytest.raises(RuntimeError, match="closed"):
        client.chat("qwen3", USER).result()


def test_a_collected_client_stops_its_thread(fake: FakeOllama) -> None:
    before = loop_threads()
    client = Ollama(fake.url)
    client.version()
    del client
    gc.collect()
    assert loop_threads() == before


def test_closing_from_another_thread_ends_a_blocked_reader(fake: FakeOllama) -> None:
    fake.queue_reply(content="a b c", stall_after=1)
    client = Ollama(fake.url)
    stream = client.chat("qwen3", USER)
    assert next(stream).content == "a "
    errors: queue.SimpleQueue[BaseException] = queue.SimpleQueue()

    def read_rest() -> None:
        try:
            next(stream)
        except BaseException as exc:
            errors.put(exc)

    reader = threading.Thread(target=read_rest)
    reader.start()
    client.close()
    reader.join(10)
    assert not reader.is_alive()
    error: Any = errors.get_nowait()
    assert isinstance(error, Exception) and "closed" in str(error)


def test_a_sync_tool_may_use_the_blocking_client(fake: FakeOllama, client: Ollama) -> None:
    def nested() -> str:
        """Sync tools run in a worker thread, not the loop thread, so they may block on the
        client."""
        return client.version()

    fake.queue_reply(tool_calls=[ToolCall("nested", {})])
    loop = client.chat_with_tools("qwen3", USER, tools=[nested])
    results = [e for e in loop if isinstance(e, ToolResult)]
    assert results[0].error is None and results[0].content == fake.version
