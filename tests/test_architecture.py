"""The layering docs/architecture.md draws, checked on the source: every module on one floor, every
import pointing down, no import cycle, aiohttp only where allowed, and the CLI on the public API."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ollama_stream

PACKAGE = Path(ollama_stream.__file__).parent
ROOT = PACKAGE.name
ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"
NETWORK = {"aiohttp", "socket", "ssl", "http", "urllib", "selectors", "asyncio", "threading"}
AIOHTTP_ALLOWED = ("_http", "backends", "testing")  # a module, or a package and everything in it


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def resolve(module: str, node: ast.ImportFrom) -> set[str]:
    """The package modules a `from ... import ...` statement in `module` loads."""
    target = node.module or ""
    if node.level:
        package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
        parts = package.split(".")
        target = ".".join(parts[: len(parts) - node.level + 1] + ([target] if target else []))
    # `from . import litellm` loads the submodule; `from . import ChatRequest` the package itself
    return {f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in node.names}


def imports(module: str) -> dict[str, set[str]]:
    """Every import in `module` (at the top, inside functions, under TYPE_CHECKING alike): the
    package modules it reaches, and the outside roots under the key "outside". Imports inside a
    module-level `__getattr__` are left out: they resolve names on first access, after every module
    has loaded (the root's lazy names; and `backends.NativeBackend` / `backends.client_for`, kept
    importable from where they used to live)."""
    tree = ast.parse(MODULES[module].read_text())
    skipped = {id(inner) for node in tree.body
               if isinstance(node, ast.FunctionDef) and node.name == "__getattr__"
               for inner in ast.walk(node)}
    inside: set[str] = set()
    outside: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == ROOT:
                    inside.add(alias.name)
                else:
                    outside.add(alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and (node.module or "").split(".")[0] != ROOT:
                outside.add((node.module or "").split(".")[0])
            else:
                inside.update(resolve(module, node))
    return {"inside": inside - {module}, "outside": outside}


GRAPH = {module: imports(module) for module in MODULES}


def floors_from_the_docs() -> dict[str, int]:
    """module -> floor, read from the layout block of docs/architecture.md."""
    block = ARCHITECTURE.read_text().split("```\n", 2)[1]
    floors: dict[str, int] = {}
    floor = 0
    for line in block.splitlines()[1:]:
        heading = re.search(r"floor (\d+)", line)
        if heading:
            floor = int(heading.group(1))
            continue
        for entry in line.split("  ")[1].split(", ") if line.startswith("  ") else []:
            entry = entry.strip()
            if entry.endswith("/"):
                package = f"{ROOT}.{entry.rstrip('/')}"
                floors.update({m: floor for m in MODULES if m == package or
                               m.startswith(package + ".")})
            else:
                floors[module_name(PACKAGE / entry)] = floor
    return floors


FLOORS = floors_from_the_docs()


def test_every_module_is_on_exactly_one_floor_of_the_architecture_page() -> None:
    assert set(FLOORS) == set(MODULES), (set(MODULES) - set(FLOORS), set(FLOORS) - set(MODULES))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_import_points_down(module: str) -> None:
    up = {target for target in GRAPH[module]["inside"] if FLOORS[target] > FLOORS[module]}
    assert not up, f"{module} (floor {FLOORS[module]}) imports from a higher floor: {sorted(up)}"


def cycles() -> list[list[str]]:
    """Every strongly connected set of modules larger than one (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in GRAPH[node]["inside"]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_inside_the_package() -> None:
    assert cycles() == []


def test_the_cycle_check_sees_a_cycle() -> None:
    GRAPH["ollama_stream.images"]["inside"].add("ollama_stream.types")  # types imports images
    try:
        assert cycles() == [["ollama_stream.images", "ollama_stream.types"]]
    finally:
        GRAPH["ollama_stream.images"]["inside"].discard("ollama_stream.types")


def test_only_the_wire_modules_import_aiohttp() -> None:
    importers = {m for m, found in GRAPH.items() if "aiohttp" in found["outside"]}
    allowed = {m for m in importers
               if any(m == f"{ROOT}.{a}" or m.startswith(f"{ROOT}.{a}.") for a in AIOHTTP_ALLOWED)}
    assert importers == allowed, importers - allowed
    assert f"{ROOT}._http" in importers  # the check can see an import of aiohttp


@pytest.mark.parametrize("module", sorted(m for m, floor in FLOORS.items() if floor == 1))
def test_floor_one_does_no_network_io(module: str) -> None:
    found = GRAPH[module]["outside"] & NETWORK
    if module == f"{ROOT}.tools":
        found -= {"asyncio", "threading"}  # runs one round of tool calls concurrently
    assert not found, f"{module} imports {found}"


def test_the_tool_loop_does_not_import_the_client() -> None:
    assert GRAPH[f"{ROOT}.agent"]["inside"] <= {f"{ROOT}.errors", f"{ROOT}.tools", f"{ROOT}.types"}


CLI = sorted(m for m in MODULES if m == f"{ROOT}.cli" or m.startswith(f"{ROOT}.cli."))


@pytest.mark.parametrize("module", CLI)
def test_cli_uses_only_the_public_api(module: str) -> None:
    assert GRAPH[module]["inside"] <= {ROOT, f"{ROOT}.testing", *CLI}
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 2 and node.module is None:
            assert {alias.name for alias in node.names} <= set(ollama_stream.__all__)


def test_modules_stay_small_or_say_why() -> None:
    """At most ~450 lines, unless the module's docstring says why it is longer."""
    for module, path in MODULES.items():
        lines = len(path.read_text().splitlines())
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert lines <= 450 or "longer than" in doc, f"{module}: {lines} lines"


def test_public_names_are_exported() -> None:
    contract = {"AsyncOllama", "ChatStream", "Message", "ToolCall", "ChatChunk", "ChatResult",
                "Metrics", "Timeouts", "RetryPolicy", "OllamaError", "OllamaConnectionError",
                "ResponseError", "ModelNotFoundError", "StreamError", "StreamInterrupted",
                "ProtocolError", "OllamaTimeoutError"}
    assert contract <= set(ollama_stream.__all__)
    assert all(hasattr(ollama_stream, name) for name in ollama_stream.__all__)


def test_names_that_moved_still_import_from_where_they_were() -> None:
    from ollama_stream import NativeBackend, client_for
    from ollama_stream.backends import NativeBackend as OldNativeBackend
    from ollama_stream.backends import client_for as old_client_for
    from ollama_stream.client import ChatStream, GenerateStream, ProgressStream

    assert OldNativeBackend is NativeBackend and old_client_for is client_for
    assert ChatStream is ollama_stream.ChatStream and GenerateStream and ProgressStream


def test_import_does_not_load_the_cli_or_test_server() -> None:
    code = ("import sys, ollama_stream; "
            "print(sorted(m for m in sys.modules if m.startswith('ollama_stream')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    loaded = set(ast.literal_eval(out))
    assert "ollama_stream.client" in loaded  # the check can see what is loaded
    assert not loaded & {"ollama_stream.cli", "ollama_stream.testing", "ollama_stream.settings",
                         "ollama_stream.backends", "ollama_stream.sync", "ollama_stream.agent"}


def test_py_typed_ships() -> None:
    assert (PACKAGE / "py.typed").exists()
