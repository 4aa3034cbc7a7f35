"""This SDK against the faithful fake: what the client reads of v0.33's answers (native-path tool
calls on the done chunk, thinking by default, capabilities, show's renderer and tensors, the cloud
status, web search and fetch)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from ollama_stream import AsyncOllama, ResponseError
from ollama_stream.testing import FakeModel, FakeOllama

USER = [{"role": "user", "content": "Weather in Tokyo?"}]
CALL = {"name": "get_weather", "arguments": {"city": "Tokyo"}}


MODELS = ["qwen3", FakeModel("tiny", capabilities=["completion", "tools"], context_length=2048,
                             embedding_length=64, renderer="qwen3.5")]


@pytest.fixture
async def fake(loop_errors: list[dict[str, Any]]) -> AsyncIterator[FakeOllama]:
    async with FakeOllama(models=MODELS) as server:
        yield server


@pytest.fixture
async def client(fake: FakeOllama) -> AsyncIterator[AsyncOllama]:
    async with AsyncOllama(fake.url) as c:
        yield c


async def test_native_path_tool_calls_reach_the_message(loop_errors: list[dict[str, Any]]) -> None:
    async with FakeOllama(native=True) as fake, AsyncOllama(fake.url) as client:
        fake.queue_reply(thinking="Look it up.", tool_calls=[CALL])
        chunks = [chunk async for chunk in client.chat("qwen3", USER)]
    assert [bool(chunk.tool_calls) for chunk in chunks] == [False] * (len(chunks) - 1) + [True]
    [call] = chunks[-1].tool_calls
    assert (call.name, call.arguments, call.index, len(call.id or "")) == (
        "get_weather", {"city": "Tokyo"}, 0, 32)


async def test_thinking_arrives_without_asking_and_stops_when_told(fake: FakeOllama,
                                                                  client: AsyncOllama) -> None:
    fake.queue_reply(thinking="Hmm.", content="Sunny.")
    result = await client.chat("qwen3", USER).result()
    assert (result.message.thinking, result.message.content) == ("Hmm.", "Sunny.")
    fake.queue_reply(thinking="Hmm.", content="Sunny.")
    result = await client.chat("qwen3", USER, think=False).result()
    assert not result.message.thinking and result.message.content == "Sunny."


async def test_capabilities_in_show_and_a_refusal(client: AsyncOllama) -> None:
    shown = await client.show("tiny")
    assert shown.capabilities == ("completion", "tools")
    assert shown.raw["renderer"] == "qwen3.5"
    with pytest.raises(ResponseError) as caught:
        await client.chat("tiny", USER, think=True).result()
    assert caught.value.status_code == 400


async def test_list_reads_capabilities_and_lengths(client: AsyncOllama) -> None:
    listed = await client.list()
    tiny = next(model for model in listed.models if model.name == "tiny:latest")
    assert tiny.capabilities == ("completion", "tools")
    assert tiny.details.context_length == 2048


async def test_show_reads_renderer_and_tensors(client: AsyncOllama) -> None:
    shown = await client.show("tiny")
    assert shown.renderer == "qwen3.5"
    assert shown.tensors


async def test_cloud_status(client: AsyncOllama) -> None:
    status = await client.status()
    assert status is not None


async def test_web_search_and_fetch(client: AsyncOllama) -> None:
    found = await client.web_search("ollama", max_results=2)
    page = await client.web_fetch(found.results[0].url)
    assert page.title
