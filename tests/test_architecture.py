"""The layering DESIGN.md asks for, checked on the source: the protocol core does no I/O, and the CLI uses
only the public API."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import ollama_stream

PACKAGE = Path(ollama_stream.__file__).parent
CORE = ["protocol", "types", "errors", "config"]
IO_MODULES = {"aiohttp", "asyncio", "socket", "ssl", "http", "urllib", "selectors", "threading"}


def imported(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


@pytest.mark.parametrize("module", CORE)
def test_core_modules_import_nothing_that_does_io(module: str) -> None:
    roots = {name.split(".")[0] for name in imported(module)}
    assert not roots & IO_MODULES, f"{module}.py imports {roots & IO_MODULES}"


def test_cli_uses_only_the_public_api() -> None:
    relative = {name for name in imported("cli") if name.startswith(".")}
    assert relative <= {".", ".testing"}, relative
    tree = ast.parse((PACKAGE / "cli.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module is None:
            assert {alias.name for alias in node.names} <= set(ollama_stream.__all__)


def test_public_names_are_exported() -> None:
    contract = {"AsyncOllama", "ChatStream", "Message", "ToolCall", "ChatChunk", "ChatResult", "Metrics",
                "Timeouts", "RetryPolicy", "OllamaError", "OllamaConnectionError", "ResponseError",
                "ModelNotFoundError", "StreamError", "StreamInterrupted", "ProtocolError", "OllamaTimeoutError"}
    assert contract <= set(ollama_stream.__all__)
    assert all(hasattr(ollama_stream, name) for name in ollama_stream.__all__)


def test_import_does_not_load_the_cli_or_test_server() -> None:
    code = "import sys, ollama_stream; print(sorted(m for m in sys.modules if m.startswith('ollama_stream')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(ast.literal_eval(out))
    assert "ollama_stream.client" in loaded  # the check can see what is loaded
    assert not loaded & {"ollama_stream.cli", "ollama_stream.testing"}


def test_py_typed_ships() -> None:
    assert (PACKAGE / "py.typed").exists()
