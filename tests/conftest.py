"""Shared fixtures: FakeOllama in the test's loop, a client on it, and a guard against leaked
resources."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ollama_stream import AsyncOllama, RetryPolicy
from ollama_stream.testing import FakeOllama

# LiteLLM fetches its price map from the internet when imported unless told not to: never from the
# tests.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# Subprocess tests (the CLI, import checks) start fresh interpreters: let them cache bytecode
# instead of compiling aiohttp from source every time when the environment says not to write it.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

# Modules that import LiteLLM go last: its huge object graph makes every later gc.collect() (the
# leak guard below runs one per test) slow for the rest of the session.
LATE = {"test_backends.py", "test_docs.py", "test_litellm.py", "test_settings.py"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name in LATE)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.path.name == "test_hot_path.py":
        # Garbage that earlier tests left in reference cycles (a stream held by a traceback) would
        # run its finalizers inside the hot-path counts when the collector happens to run there.
        gc.collect()

# Retries without waiting: the policy's arithmetic is tested on its own in test_config.py.
NO_WAIT = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0, jitter=0.0)


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Fail the test if the event loop reports anything (aiohttp reports unclosed sessions this
    way)."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    yield seen
    gc.collect()
    await asyncio.sleep(0)  # let finalizers scheduled by gc run
    loop.set_exception_handler(previous)
    assert not seen, f"the event loop reported: {[c.get('message') for c in seen]}"


@pytest.fixture
async def fake(loop_errors: list[dict[str, Any]]) -> AsyncIterator[FakeOllama]:
    async with FakeOllama() as server:
        yield server


@pytest.fixture
async def client(fake: FakeOllama) -> AsyncIterator[AsyncOllama]:
    async with AsyncOllama(fake.url, retry=NO_WAIT) as c:
        yield c
