"""The README's quick start runs as written, against FakeOllama standing in for Ollama."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ollama_stream.testing import FakeOllama

README = (Path(__file__).parent.parent / "README.md").read_text()


def python_block_after(heading: str) -> str:
    section = README.split(heading, 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block after {heading!r}"
    return match.group(1)


def test_quick_start_runs(monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    with FakeOllama() as fake:
        monkeypatch.setenv("OLLAMA_HOST", fake.url)
        fake.queue_reply(thinking="Rayleigh.", content="Blue light scatters most.")
        fake.queue_reply(content="Red, then.")
        exec(compile(python_block_after("## Quick start"), "README.md", "exec"),
             {"__name__": "readme"})
    out = capsys.readouterr().out
    assert out.startswith("Rayleigh.Blue light scatters most.\n")
    assert re.search(r"\n[\d.]+ tokens/s\nRed, then\.$", out)
    assert fake.requests[1]["messages"][1] == {"role": "assistant",
                                               "content": "Blue light scatters most.",
                                               "thinking": "Rayleigh."}


def test_fresh_clone_commands_come_first() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert first_block is not None
    commands = first_block.group(1)
    assert "python -m ollama_stream demo" in commands
    assert 'pip install -e ".[dev]" && python -m pytest -q' in commands
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert 'python -m pip install -e ".[dev]" && python -m pytest -q' in ci
