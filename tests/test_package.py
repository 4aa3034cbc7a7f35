"""The package as it ships: the MIT license in a LICENSE file and in the SPDX form setuptools reads
(PEP 639), the project's addresses, a classifier for each Python it is tested on, the tools CI
builds and checks it with in the `dev` extra, and an sdist that carries every file its tests read
(MANIFEST.in), so that `pytest` passes on an unpacked sdist. .ci/run builds both, checks them
with `twine check`, runs the demo from the wheel in a clean venv and the suite from the sdist."""

from __future__ import annotations

import fnmatch
import re
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself needs tomli on 3.10
    import tomli as tomllib

ROOT = Path(__file__).parent.parent
PROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
CI = (ROOT / ".ci" / "run").read_text()


def test_the_license_is_mit_in_a_file_and_as_an_spdx_expression() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text
    project = PROJECT["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert not any(c.startswith("License ::") for c in project["classifiers"])  # PEP 639 says so
    setuptools = re.fullmatch(r"setuptools>=(\d+)", PROJECT["build-system"]["requires"][0])
    assert setuptools and int(setuptools.group(1)) >= 77  # the first to read license = "MIT"


def test_the_project_names_its_addresses() -> None:
    urls = PROJECT["project"]["urls"]
    assert {"Homepage", "Documentation", "Repository", "Issues"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())


def test_a_classifier_for_each_python_it_is_tested_on() -> None:
    project = PROJECT["project"]
    versions = [c.rsplit(" :: ", 1)[1] for c in project["classifiers"]
                if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert versions == ["3.10", "3.11", "3.12", "3.13"]
    assert project["requires-python"] == f">={versions[0]}"
    tested = re.search(r"^for version in ([\d. ]+); do$", CI, re.M)
    assert tested is not None and tested.group(1).split() == [versions[0], versions[-1]]


def test_the_dev_extra_has_what_ci_builds_and_checks_with() -> None:
    dev = {re.split(r"[<>=\[ ]", requirement)[0] for requirement in
           PROJECT["project"]["optional-dependencies"]["dev"]}
    assert {"build", "twine", "pytest", "pexpect"} <= dev
    assert "python -m build" in CI and "twine check --strict" in CI
    assert re.search(r'-m venv "\$clean"', CI) and "ollama-stream\" demo" in CI


def manifest_patterns() -> tuple[set[str], list[tuple[str, list[str]]]]:
    """MANIFEST.in's `include` files and `recursive-include` (folder, patterns) pairs."""
    files: set[str] = set()
    recursive: list[tuple[str, list[str]]] = []
    for line in (ROOT / "MANIFEST.in").read_text().splitlines():
        words = line.split()
        if words and words[0] == "include":
            files.update(words[1:])
        elif words and words[0] == "recursive-include":
            recursive.append((words[1], words[2:]))
        else:
            assert not words or words[0].startswith("#"), f"MANIFEST.in: {line!r} is not read here"
    return files, recursive


def shipped(path: Path, files: set[str], recursive: list[tuple[str, list[str]]]) -> bool:
    relative = path.relative_to(ROOT).as_posix()
    if relative in files:
        return True
    return any(relative.startswith(folder + "/") and any(fnmatch.fnmatch(path.name, p)
                                                         for p in patterns)
               for folder, patterns in recursive)


def test_the_sdist_carries_every_file_the_tests_read() -> None:
    files, recursive = manifest_patterns()
    assert {"LICENSE", "README.md", "mkdocs.yml", ".ci/run"} <= files
    assert all((ROOT / name).is_file() for name in files)
    needed = [p for folder in ("tests", "docs", "benchmarks") for p in (ROOT / folder).rglob("*")
              if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    assert len(needed) > 100
    missing = [str(p.relative_to(ROOT)) for p in needed if not shipped(p, files, recursive)]
    assert not missing, f"MANIFEST.in leaves out {missing}"
