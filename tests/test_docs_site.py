"""The documentation site as a reader meets it: nav titles that are the pages' titles, tables
without a literal `\\|`, the repository and site addresses set (and the package's agreeing), and a
reference that shows constructors with their typed parameters and no private base class. The
checks of the built HTML run when OLLAMA_STREAM_SITE names a site `mkdocs build` made (.ci/run
does)."""

from __future__ import annotations

import html
import importlib
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
MKDOCS = (ROOT / "mkdocs.yml").read_text()
REFERENCE = (DOCS / "reference.md").read_text()
SITE = os.environ.get("OLLAMA_STREAM_SITE")


def nav() -> list[tuple[str, str]]:
    section = MKDOCS.split("\nnav:\n", 1)[1]
    return re.findall(r"^  - (.+): (\S+\.md)$", section, re.M)


def test_nav_titles_are_the_page_titles() -> None:
    entries = nav()
    assert {page for _, page in entries} == {p.name for p in DOCS.glob("*.md")}
    for title, page in entries:
        heading = re.search(r"^# (.+)$", (DOCS / page).read_text(), re.M)
        assert heading is not None and heading.group(1) == title, (page, title)


def table_rows(text: str) -> list[str]:
    outside_code = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return [line for line in outside_code.splitlines() if line.startswith("|")]


def test_no_table_shows_a_literal_escaped_pipe() -> None:
    pages = [ROOT / "README.md", *DOCS.glob("*.md")]
    found = [(page.name, row) for page in pages for row in table_rows(page.read_text())
             if "\\|" in row]
    assert not found, found


def test_the_site_and_the_package_name_one_repository() -> None:
    site_url = re.search(r"^site_url: (\S+)$", MKDOCS, re.M)
    repo_url = re.search(r"^repo_url: (\S+)$", MKDOCS, re.M)
    assert site_url and repo_url
    project = (ROOT / "pyproject.toml").read_text()
    assert f'Repository = "{repo_url.group(1)}"' in project
    assert f'Documentation = "{site_url.group(1)}"' in project
    assert f"git+{repo_url.group(1)}" in (ROOT / "README.md").read_text()


def reference_entries() -> list[tuple[str, str]]:
    """(dotted name, its options block) of every `::: name` on the reference page."""
    return re.findall(r"^::: (\S+)\n((?:    .*\n)*)", REFERENCE, re.M)


def resolve(dotted: str) -> object:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def base_names(cls: type) -> list[str]:
    """The names of a class's direct bases (generic ones by their origin, `_Stream[...]`)."""
    bases = cls.__dict__.get("__orig_bases__", cls.__bases__)
    return [getattr(getattr(b, "__origin__", b), "__name__", str(b)) for b in bases]


def test_reference_entries_with_a_private_base_hide_their_bases() -> None:
    checked = 0
    for dotted, options in reference_entries():
        target = resolve(dotted)
        if isinstance(target, type) and any(n.startswith("_") for n in base_names(target)):
            checked += 1
            assert "show_bases: false" in options, f"{dotted}: {base_names(target)}"
    assert checked >= 4  # the streams and FakeOllama: the check sees private bases


def test_the_reference_is_configured_to_show_typed_signatures() -> None:
    for option in ("merge_init_into_class: true", "show_signature_annotations: true",
                   "separate_signature: true", "docs/griffe_sync.py:BlockingClient"):
        assert option in MKDOCS, option


# -- the built site --------------------------------------------------------------------------------

def page_text(path: Path) -> str:
    body = re.sub(r"<script.*?</script>|<style.*?</style>", "", path.read_text(), flags=re.S)
    return re.sub(r"\n\s*\n+", "\n", html.unescape(re.sub(r"<[^>]+>", "", body)))


built = pytest.mark.skipif(SITE is None, reason="OLLAMA_STREAM_SITE names no built site")


@built
def test_built_reference_shows_each_constructor_with_types() -> None:
    assert SITE is not None
    text = page_text(Path(SITE) / "reference" / "index.html")
    assert "AsyncOllama(\n    host: str | None = None,\n    *,\n    headers: Mapping" in text
    assert "Ollama(\n    host: str | None = None,\n    *,\n    headers: Mapping" in text
    assert "chat(\n    model: str," in text and ") -> SyncChatStream" in text  # Ollama's methods
    for dotted, options in reference_entries():
        target = resolve(dotted)
        constructed = isinstance(target, type) and not getattr(target, "_is_protocol", False)
        if constructed and "merge_init_into_class: false" not in options:
            name = dotted.rpartition(".")[2]
            assert re.search(rf"^\s*{dotted}\n(?:[^\n]*\n){{1,3}}?\s*{name}\(", text, re.M), dotted
    assert "Bases: _" not in text


@built
def test_built_pages_show_no_escaped_pipe() -> None:
    assert SITE is not None
    pages = list(Path(SITE).glob("*/index.html"))
    assert len(pages) >= 10
    assert not [p.parent.name for p in pages if "\\|" in page_text(p)]
