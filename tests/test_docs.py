"""The docs' examples run as written, against FakeOllama standing in for Ollama."""

from __future__ import annotations

import ast
import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from ollama_stream import ToolCall
from ollama_stream.testing import FakeOllama

DOCS = Path(__file__).parent.parent / "docs"


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)


async def run_blocks(blocks: list[str], namespace: dict[str, Any], page: str) -> None:
    for block in blocks:
        code = compile(block, f"docs/{page}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        outcome = eval(code, namespace)
        if asyncio.iscoroutine(outcome):
            await outcome


def test_api_reference_examples_run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    blocks = python_blocks("api.md")
    assert len(blocks) >= 10
    with FakeOllama() as fake:
        monkeypatch.setenv("OLLAMA_HOST", fake.url)
        fake.queue_reply(thinking="Light and air.", content="Rayleigh scattering.")  # the chat example
        fake.queue_reply(tool_calls=[ToolCall("add", {"a": 2, "b": 3})])  # the agent example's first round
        namespace: dict[str, Any] = {"__name__": "docs_api"}

        async def main() -> None:
            await run_blocks(blocks, namespace, "api.md")
            await namespace["client"].aclose()

        asyncio.run(main())
    out = capsys.readouterr().out
    assert "Light and air.Rayleigh scattering." in out
    assert "The tool add returned: 5" in out
    assert re.search(r"pulling [0-9a-f]{12}: 100%", out)
    assert "success" in out and "0.13.0 True" in out
    assert fake.blobs  # the blob example uploaded one
    names = {r.path for r in fake.received}
    assert {"/api/chat", "/api/generate", "/api/pull", "/api/push", "/api/create", "/api/embed", "/api/tags",
            "/api/show", "/api/ps", "/api/version", "/api/copy", "/api/delete", "/"} <= names


def test_api_reference_lists_every_method() -> None:
    from ollama_stream import AsyncOllama

    page = (DOCS / "api.md").read_text()
    public = [name for name in dir(AsyncOllama) if not name.startswith("_") and callable(getattr(AsyncOllama, name))]
    missing = [name for name in public if name not in ("aclose",) and f"{name}" not in page]
    assert not missing, f"docs/api.md does not mention {missing}"


def test_backends_page_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("litellm", reason='needs pip install "ollama-stream[litellm]"')
    blocks = python_blocks("backends.md")
    routing, router = blocks[1], blocks[2]
    namespace: dict[str, Any] = {"__name__": "docs_backends"}
    exec(compile(routing, "docs/backends.md", "exec"), namespace)
    assert namespace["name"] == "gpt-oss:20b"
    assert eval("infer_provider('openai/gpt-4o')", namespace) == "openai"
    with FakeOllama() as host_a, FakeOllama() as host_b:
        namespace.update(HOST_A=host_a.url, HOST_B=host_b.url)
        exec(compile(router, "docs/backends.md", "exec"), namespace)
        served = len(host_a.requests) + len(host_b.requests)
    out = capsys.readouterr().out
    assert out.count("You said: ") == 3 and "third question" in out
    assert served == 3
