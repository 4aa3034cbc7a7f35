"""Every Python block of every docs page runs as written, in order, against FakeOllama standing in
for Ollama (OLLAMA_HOST points at it). Blocks may use top-level `await`; `test_*` functions a page
defines are called."""

from __future__ import annotations

import ast
import asyncio
import gc
import importlib.util
import inspect
import logging
import re
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ollama_stream import ToolCall
from ollama_stream.testing import FakeOllama

DOCS = Path(__file__).parent.parent / "docs"
PAGES = sorted(p.name for p in DOCS.glob("*.md"))
HAS_LITELLM = importlib.util.find_spec("litellm") is not None
BLOCK = re.compile(r"^(?P<indent>[ ]*)```python\n(?P<code>.*?)^(?P=indent)```", re.S | re.M)

# Replies a page's blocks need (block index -> queue_reply arguments, queued just before that
# block runs).
ADD_CALL = {"tool_calls": [ToolCall("add", {"a": 2, "b": 3})]}
WEATHER_CALLS = {"thinking": "Check both.",
                 "tool_calls": [ToolCall("get_weather", {"city": "Tokyo"}),
                                ToolCall("get_weather", {"city": "Paris"})]}
SCRIPTS: dict[str, dict[int, list[dict[str, Any]]]] = {
    "api.md": {2: [{"thinking": "Light and air.", "content": "Rayleigh scattering."}],
               4: [ADD_CALL]},
    "tools.md": {0: [WEATHER_CALLS, {"content": "Tokyo is sunny, Paris is rainy."}]},
    "migrating.md": {4: [ADD_CALL], 5: [ADD_CALL]},
    # the errors example gets an answer that does not fit; the repair example one that is not JSON
    "structured.md": {5: [{"content": '{"name": "Ada", "age": "old", "languages": []}'}],
                      6: [{"content": "Ada is 36."}]},
}


def python_blocks(page: str) -> list[str]:
    return [textwrap.dedent(m.group("code")) if m.group("indent") else m.group("code")
            for m in BLOCK.finditer((DOCS / page).read_text())]


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeOllama, FakeOllama]]:
    with FakeOllama() as fake, FakeOllama() as other:
        monkeypatch.setenv("OLLAMA_HOST", fake.url)
        yield fake, other


def run_page(page: str, fake: FakeOllama, namespace: dict[str, Any]) -> None:
    script = SCRIPTS.get(page, {})
    for index, code in enumerate(python_blocks(page)):
        if ("import litellm" in code or "from litellm" in code) and not HAS_LITELLM:
            continue
        for reply in script.get(index, []):
            fake.queue_reply(**reply)
        # dont_inherit: a block runs as written, without this file's `from __future__` imports
        # (postponed annotations would leave a block's dataclass fields as strings)
        compiled = compile(code, f"docs/{page} block {index}", "exec",
                           flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
        foreign = re.search(r"^\s*(import ollama$|from ollama import)", code, re.M) is not None
        with warnings.catch_warnings():
            # ollama-python's snippets, like its users, leave their httpx clients unclosed
            if foreign:
                warnings.simplefilter("ignore", ResourceWarning)
            outcome = eval(compiled, namespace)
            if inspect.iscoroutine(outcome):
                asyncio.run(outcome)
            if foreign:
                for name in [n for n, v in namespace.items()
                             if type(v).__module__.startswith("ollama._")]:
                    del namespace[name]
                gc.collect()
    for name, value in list(namespace.items()):
        if name.startswith("test_") and callable(value):
            result = value()
            if inspect.iscoroutine(result):
                asyncio.run(result)


@pytest.fixture
def process_globals(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo, after the test, what a page configures for a whole process, as an application does:
    the `ollama_stream` logger's level and handlers, and OpenTelemetry's tracer provider (which
    can be set only once per process)."""
    if importlib.util.find_spec("opentelemetry") is not None:
        import opentelemetry.trace as trace
        from opentelemetry.util._once import Once

        monkeypatch.setattr(trace, "_TRACER_PROVIDER", trace._TRACER_PROVIDER)
        monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())
    log = logging.getLogger("ollama_stream")
    level, handlers = log.level, list(log.handlers)
    yield
    log.handlers[:] = handlers
    log.setLevel(level)  # setLevel, not an assignment: it clears the loggers' isEnabledFor cache


@pytest.mark.timeout(120)
@pytest.mark.parametrize("page", PAGES)
def test_every_python_block_runs(page: str, fakes: tuple[FakeOllama, FakeOllama],
                                 capsys: pytest.CaptureFixture[str],
                                 process_globals: None) -> None:
    fake, other = fakes
    namespace: dict[str, Any] = {"__name__": f"docs_{page[:-3]}", "HOST_A": fake.url,
                                 "HOST_B": other.url}
    run_page(page, fake, namespace)
    client = namespace.get("client")
    if (client is not None and hasattr(client, "aclose")
            and inspect.iscoroutinefunction(client.aclose)):
        asyncio.run(client.aclose())
    out = capsys.readouterr().out
    check = PAGE_CHECKS.get(page)
    if check is not None:
        check(out, fake, other)


def check_api(out: str, fake: FakeOllama, other: FakeOllama) -> None:
    assert "Light and air.Rayleigh scattering." in out and "The tool add returned: 5" in out
    assert re.search(r"pulling [0-9a-f]{12}: 100%", out) and f"{fake.version} True" in out
    assert fake.blobs
    paths = {r.path for r in fake.received}
    assert {"/api/chat", "/api/generate", "/api/pull", "/api/push", "/api/create", "/api/embed",
            "/api/tags", "/api/show", "/api/ps", "/api/version", "/api/copy", "/api/delete",
            "/api/status", "/api/experimental/web_search", "/api/experimental/web_fetch",
            "/"} <= paths


def check_tools(out: str, fake: FakeOllama, other: FakeOllama) -> None:
    assert "get_weather({'city': 'Tokyo'}) ->" in out and "Tokyo is sunny, Paris is rainy." in out


def check_backends(out: str, fake: FakeOllama, other: FakeOllama) -> None:
    if HAS_LITELLM:  # the Router example spread three questions over the two hosts
        assert out.count("You said: ") == 3 and "third question" in out
        assert len(fake.requests) + len(other.requests) == 3


def check_migrating(out: str, fake: FakeOllama, other: FakeOllama) -> None:
    # ollama-python's loop and chat_with_tools agree
    assert out.count("The tool add returned: 5") == 2
    assert "404 not-pulled" in out.replace("\n", " ")


def check_errors(out: str, fake: FakeOllama, other: FakeOllama) -> None:
    assert "You said: Hi" in out and "missing: not-pulled-yet" in out
    assert "A story that survives its connection.\n" in out  # resumed, each word once


def check_application(out: str, fake: FakeOllama, other: FakeOllama) -> None:
    assert "session open: True" in out and "\n4\n" in out
    chat = next(r for r in fake.received if r.path == "/api/chat")
    assert chat.headers["X-Service"] == "billing" and chat.headers["X-Request-Tag"] == "nightly"
    assert "chat qwen3 True" in out
    assert "{'request': 2, 'first_chunk': 1, 'finished': 2} 2" in out


def check_structured(out: str, fake: FakeOllama, other: FakeOllama) -> None:
    assert "name 1 Mood.HAPPY city" in out  # the fake's instance of Person, converted
    assert "[('$', \"is missing the required 'mood'\"), " in out and "$.age" in out
    assert "\n1 name\n" in out  # repaired after one re-ask
    assert "Person(name='name', age=1, mood=<Mood.HAPPY: 'happy'>" in out  # objects()' last
    assert "{'name': 'name'}" in out and "Mood.HAPPY\n" in out  # a partial; generate's Enum
    invalid = {"role": "assistant", "content": "Ada is 36."}
    assert any(request.get("messages", [])[-2:-1] == [invalid]
               for request in fake.requests)  # the re-ask carried the invalid answer
    assert "Address(city='city', country='country')" in out  # the blocking client


PAGE_CHECKS = {"api.md": check_api, "tools.md": check_tools, "backends.md": check_backends,
               "migrating.md": check_migrating, "errors.md": check_errors,
               "application.md": check_application, "structured.md": check_structured}


def test_every_page_with_code_is_checked_somewhere() -> None:
    assert {"api.md", "tools.md", "migrating.md", "index.md", "streaming.md", "testing.md",
            "structured.md"} <= {
        page for page in PAGES if python_blocks(page)}


def test_api_reference_lists_every_method() -> None:
    from ollama_stream import AsyncOllama

    page = (DOCS / "api.md").read_text()
    public = [name for name in dir(AsyncOllama)
              if not name.startswith("_") and callable(getattr(AsyncOllama, name))]
    missing = [name for name in public if name != "aclose" and name not in page]
    assert not missing, f"docs/api.md does not mention {missing}"


def test_mkdocs_nav_lists_every_page() -> None:
    nav = (DOCS.parent / "mkdocs.yml").read_text()
    assert all(page in nav for page in PAGES), [page for page in PAGES if page not in nav]
