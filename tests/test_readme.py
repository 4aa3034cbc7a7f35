"""Every code block of the README runs as pasted, each whole in a subprocess, against a FakeOllama
standing in for Ollama (OLLAMA_HOST points at it): the Python blocks as scripts, the testing
section's files as a fresh project under pytest, and the commands of the shell blocks through the
real command (those that would wait for a person or serve forever are only parsed). A block of a
kind this module does not know fails the test, so a new block cannot go unchecked."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ollama_stream import ToolCall
from ollama_stream.cli import parse
from ollama_stream.testing import FakeOllama

from .test_cli import OWN_SETTINGS
from .test_pytest_plugin import entry_point

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
FENCE = re.compile(r"^```(?P<lang>\w*)(?P<info>[^\n]*)\n(?P<code>.*?)^```", re.S | re.M)
HEADING = re.compile(r"^#{1,4} (.+)$", re.M)


@dataclass
class Block:
    lang: str
    title: str
    code: str
    heading: str  # the heading the block sits under ("" before the first)


def readme_blocks() -> list[Block]:
    found, heading, position = [], "", 0
    for match in FENCE.finditer(README):
        headings = HEADING.findall(README, position, match.start())  # prose only, not code
        heading = headings[-1] if headings else heading
        position = match.end()
        title = re.search(r'title="([^"]+)"', match.group("info"))
        found.append(Block(match.group("lang"), title.group(1) if title else "",
                           match.group("code"), heading))
    return found


BLOCKS = readme_blocks()
SCRIPTS = [b for b in BLOCKS if b.lang == "python" and not b.title]


def environ(fake: FakeOllama) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in OWN_SETTINGS}
    path = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return {**env, "OLLAMA_HOST": fake.url, "PYTHONIOENCODING": "utf-8", "PYTHONPATH": path}


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


def run_script(code: str, fake: FakeOllama, cwd: Path) -> str:
    (cwd / "block.py").write_text(code)
    result = subprocess.run([sys.executable, "block.py"], cwd=cwd, env=environ(fake),
                            capture_output=True, text=True, encoding="utf-8", timeout=60,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    return result.stdout


def test_every_block_is_of_a_kind_this_module_runs() -> None:
    kinds = {(b.lang, b.title) for b in BLOCKS}
    assert kinds <= {("bash", ""), ("python", ""), ("toml", "pyproject.toml"),
                     ("python", "tests/test_my_agent.py")}, kinds
    assert {b.heading for b in SCRIPTS} == set(CHECKS), "a Python block without its check"


# -- the Python blocks, as scripts -----------------------------------------------------------------

def check_quick_start(fake: FakeOllama, out: str) -> None:
    assert re.fullmatch(r"Rayleigh\.\n\nBlue light scatters most\.\n[\d.]+ tokens/s\nRed, then\.\n",
                        out), out  # a blank line between the reasoning and the answer
    assert fake.requests[1]["messages"][1] == {"role": "assistant",
                                               "content": "Blue light scatters most.",
                                               "thinking": "Rayleigh."}


def check_tools(fake: FakeOllama, out: str) -> None:
    assert ("[get_weather({'city': 'Tokyo'}) returned {\"city\":\"Tokyo\",\"temperature\":22,"
            "\"unit\":\"celsius\"}]") in out
    assert out.endswith("Sunny, 22 °C.\n4 messages\n"), out


def check_providers(fake: FakeOllama, out: str) -> None:
    assert out == f"AsyncOllama qwen3 {fake.url}\n"


def check_errors(fake: FakeOllama, out: str) -> None:
    assert out == "You said: Hello\n"


REPLIES: dict[str, list[dict[str, Any]]] = {
    "Quick start": [{"thinking": "Rayleigh.", "content": "Blue light scatters most."},
                    {"content": "Red, then."}],
    "Tools and agents": [{"tool_calls": [ToolCall("get_weather", {"city": "Tokyo"})]},
                         {"content": "Sunny, 22 °C."}],
}
def check_structured(fake: FakeOllama, out: str) -> None:
    lines = out.splitlines()
    assert lines[0].startswith("Person(name=") and lines[-1].startswith("Person(name=")
    assert any(line.startswith("{") for line in lines[1:-1])  # partial values on the way
    assert fake.requests[0]["format"]["required"] == ["name", "age"]


CHECKS = {"Quick start": check_quick_start, "Tools and agents": check_tools,
          "Structured output": check_structured,
          "Other providers, several hosts, settings from the environment": check_providers,
          "Errors, retries and timeouts": check_errors}


@pytest.mark.parametrize("block", SCRIPTS, ids=[b.heading for b in SCRIPTS])
def test_every_python_block_runs_as_a_script(block: Block, fake: FakeOllama,
                                             tmp_path: Path) -> None:
    for reply in REPLIES.get(block.heading, []):
        fake.queue_reply(**reply)
    CHECKS[block.heading](fake, run_script(block.code, fake, tmp_path))


@pytest.mark.timeout(120)
def test_the_testing_section_passes_in_a_fresh_project(tmp_path: Path) -> None:
    """The config block and the test file, in a project of their own, under pytest; the plugin is
    found through its entry point, as an installed ollama-stream offers it."""
    config = next(b for b in BLOCKS if b.title == "pyproject.toml")
    tests = next(b for b in BLOCKS if b.title == "tests/test_my_agent.py")
    section = README.split("## Testing your code without Ollama", 1)[1].split("\n## ", 1)[0]
    assert "pip install pytest pytest-asyncio" in section  # what the project needs, named
    site = tmp_path / "site" / "ollama_stream_readme_check-0.dist-info"
    site.mkdir(parents=True)
    (site / "METADATA").write_text("Metadata-Version: 2.1\nName: readme-check\nVersion: 0\n")
    (site / "entry_points.txt").write_text(f"[pytest11]\n{entry_point()}\n")
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / config.title).write_text(config.code)
    (project / tests.title).write_text(tests.code)
    env = {k: v for k, v in os.environ.items() if k not in OWN_SETTINGS}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site"), str(ROOT)])
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-W", "error"], cwd=project, env=env, capture_output=True, text=True,
                            timeout=100, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


# -- the shell blocks ------------------------------------------------------------------------------

def commands() -> list[tuple[str, list[str], str]]:
    """(heading, argv, stdin) of every command of every shell block: `a && b` are two, and
    `echo TEXT | command` pipes TEXT in."""
    found = []
    for block in (b for b in BLOCKS if b.lang == "bash"):
        for line in block.code.splitlines():
            for part in line.split("&&"):
                stdin = ""
                if "|" in part and part.strip().startswith("echo "):
                    echo, part = part.split("|", 1)
                    stdin = shlex.split(echo)[1] + "\n"
                argv = shlex.split(part, comments=True)
                if argv:
                    found.append((block.heading, argv, stdin))
    return found


def test_the_fresh_clone_commands_come_first_and_are_cis() -> None:
    first = [argv for heading, argv, _ in commands() if heading == "ollama_stream"][:4]
    assert first == [["python", "-m", "pip", "install", "-e", "."],
                     ["python", "-m", "ollama_stream", "demo"],
                     ["python", "-m", "pip", "install", "-e", ".[dev]"],
                     ["python", "-m", "pytest", "-q"]]
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'python -m pip install -e ".[dev]" && python -m pytest -q' in ci


def test_trying_it_without_ollama_comes_right_after_them() -> None:
    after = README.split("```", 2)[2].split("\n## ", 1)[0]
    assert "ollama-stream fake-server" in after and "python quickstart.py" in after


def test_every_command_of_the_shell_blocks_runs(fake: FakeOllama, tmp_path: Path) -> None:
    (tmp_path / "quickstart.py").write_text(next(b.code for b in SCRIPTS
                                                 if b.heading == "Quick start"))
    env = environ(fake)
    ran = []
    for heading, argv, stdin in commands():
        if argv[:3] in (["python", "-m", "pip"], ["python", "-m", "pytest"]):
            continue  # installs and the test command: the first ones are checked against CI
        if argv == ["python", "-m", "benchmarks.run"]:
            assert (ROOT / "benchmarks" / "run.py").is_file()
            continue
        if argv == ["python", "quickstart.py"]:
            result = subprocess.run([sys.executable, "quickstart.py"], cwd=tmp_path, env=env,
                                    capture_output=True, text=True, timeout=60, check=False)
            assert result.returncode == 0 and result.stdout, result.stderr
            continue
        if argv[:3] == ["python", "-m", "ollama_stream"]:
            argv = ["ollama-stream", *argv[3:]]
        assert argv[0] == "ollama-stream", f"a README command this test does not know: {argv}"
        args = parse(argv[1:])  # every command line parses
        waits = args.command in ("fake-server", "demo") or (
            args.command in ("chat", "run") and not args.words and not stdin)
        if waits:
            continue  # serves until Ctrl-C, paces a demo, or waits for a person: parsed only
        result = subprocess.run([sys.executable, "-m", "ollama_stream", *argv[1:]], input=stdin,
                                env=env, capture_output=True, text=True, encoding="utf-8",
                                timeout=60, check=False)
        assert result.returncode == 0, (heading, argv, result.stderr)
        ran.append(argv[1])
    assert {"run", "list"} <= set(ran)
    assert fake.requests[-1]["messages"][-1]["content"] == "some text\n Summarise:"
