"""The pytest plugin (`ollama_stream_pytest`, the `pytest11` entry point): the fixtures' example of
docs/testing.md as a user's project, run by a real pytest subprocess that finds the plugin through
its entry point, as an installed ollama-stream offers it; and the plugin costs nothing to load."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ollama_stream_pytest

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs" / "testing.md"


def users_tests() -> str:
    """The fixtures' example of docs/testing.md, run here as a user's test module."""
    block = re.search(r'```python title="tests/test_with_fixtures.py"\n(.*?)```', DOCS.read_text(),
                      re.S)
    assert block is not None, "docs/testing.md lost its fixtures example"
    return block.group(1)


def entry_point() -> str:
    """The pytest11 entry point pyproject.toml declares (its line, read without a TOML parser:
    3.10 has none)."""
    section = (ROOT / "pyproject.toml").read_text().split("[project.entry-points.pytest11]", 1)
    assert len(section) == 2, "pyproject.toml declares no pytest11 entry point"
    match = re.search(r'^(\w+) = "([\w.]+)"$', section[1], re.M)
    assert match is not None
    return f"{match.group(1)} = {match.group(2)}"


def test_the_entry_point_names_the_plugin_and_setuptools_packages_it() -> None:
    assert entry_point() == "ollama_stream_pytest = ollama_stream_pytest"
    include = re.search(r'include = \["([^"]+)"\]', (ROOT / "pyproject.toml").read_text())
    assert include is not None
    pattern = include.group(1).replace("*", ".*")
    assert re.fullmatch(pattern, "ollama_stream_pytest")  # shipped beside ollama_stream


@pytest.mark.timeout(120)
def test_a_users_tests_get_the_fixtures_through_the_entry_point(tmp_path: Path) -> None:
    site = tmp_path / "site"
    info = site / "ollama_stream_plugin_check-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ollama-stream-plugin-check\n"
                                   "Version: 0\n")
    (info / "entry_points.txt").write_text(f"[pytest11]\n{entry_point()}\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n"
                                        "asyncio_default_fixture_loop_scope = function\n")
    (project / "test_with_fixtures.py").write_text(users_tests())
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    for extra in ([], ["-p", "ollama_stream_pytest"]):  # named too: found, not registered twice
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                 "-W", "error", *extra], cwd=project, env=environ,
                                capture_output=True, text=True, timeout=100, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "3 passed" in result.stdout


def test_loading_the_plugin_imports_nothing_but_itself() -> None:
    code = ("import sys, pytest; before = set(sys.modules); import ollama_stream_pytest; "
            "print(sorted(set(sys.modules) - before))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    assert out.strip() == "['ollama_stream_pytest']"


def test_its_fixtures_do_not_clash_with_this_repos_own() -> None:
    tree = ast.parse((ROOT / "tests" / "conftest.py").read_text())
    ours = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef,
                                                                 ast.AsyncFunctionDef))
            and any("fixture" in ast.unparse(d) for d in node.decorator_list)}
    assert ours == {"fake", "client", "loop_errors"}
    plugin = {name for name in vars(ollama_stream_pytest) if name.startswith("fake_ollama")}
    assert plugin == {"fake_ollama", "fake_ollama_thread"} and not plugin & ours
