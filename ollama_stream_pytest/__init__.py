"""The pytest plugin of ollama_stream (the `pytest11` entry point of that name): fixtures that
serve a FakeOllama, `fake_ollama` in the test's event loop and `fake_ollama_thread` in a thread of
its own for blocking code, each with OLLAMA_HOST pointing at it.

It lives outside the `ollama_stream` package because pytest imports every installed plugin in
every run, and importing anything under `ollama_stream` loads the client and aiohttp (~0.2 s):
this module imports only pytest, and the fake inside the fixtures, when a test asks for one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ollama_stream.testing import FakeOllama

MARKER = ("fake_ollama(**arguments): FakeOllama's arguments (models, version, native, chunk_delay, "
          "...) for the fake_ollama and fake_ollama_thread fixtures")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)


def _arguments(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("fake_ollama")
    return dict(marker.kwargs) if marker is not None else {}


@pytest.fixture
async def fake_ollama(request: pytest.FixtureRequest,
                      monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeOllama]:
    """A FakeOllama serving in the test's event loop; `OLLAMA_HOST` points at it, so that
    `AsyncOllama()` reaches it. An async fixture: it needs pytest-asyncio with
    `asyncio_mode = "auto"` (or use `fake_ollama_thread`). Configure it with
    `@pytest.mark.fake_ollama(models=[...], ...)`."""
    from ollama_stream.testing import FakeOllama

    async with FakeOllama(**_arguments(request)) as fake:
        monkeypatch.setenv("OLLAMA_HOST", fake.url)
        yield fake


@pytest.fixture
def fake_ollama_thread(request: pytest.FixtureRequest,
                       monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOllama]:
    """A FakeOllama serving from a thread with its own event loop, for blocking code (`Ollama`,
    ollama-python, requests, subprocesses); `OLLAMA_HOST` points at it."""
    from ollama_stream.testing import FakeOllama

    with FakeOllama(**_arguments(request)) as fake:
        monkeypatch.setenv("OLLAMA_HOST", fake.url)
        yield fake
