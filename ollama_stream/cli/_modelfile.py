"""A Modelfile read as `ollama create -f` reads it (parser/parser.go in Ollama's source): commands
FROM, PARAMETER, TEMPLATE, SYSTEM, ADAPTER, LICENSE, MESSAGE, REQUIRES, RENDERER, PARSER, values
that may be quoted (in double quotes or triple double quotes, over several lines), `#` comments;
then the keyword arguments of `create()`, with the local files (FROM or ADAPTER naming a path) to
upload as blobs."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._options import DEPRECATED, add_option

COMMANDS = ("from", "license", "template", "system", "adapter", "draft", "renderer", "parser",
            "parameter", "message", "requires")
ROLES = ("system", "user", "assistant")
_NAME = re.compile(r"([A-Za-z]+)(?:[ \t]+(.*))?$", re.S)
_PARAMETER = re.compile(r"([A-Za-z0-9_]+)[ \t]+(.*)$", re.S)
_SEMVER = re.compile(r"v?\d+(\.\d+){0,2}(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?")


@dataclass
class CreatePlan:
    """What `create` sends: its keyword arguments, and the local files whose digests go into
    `files` (FROM) or `adapters` (ADAPTER) once uploaded."""

    arguments: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    adapters: list[Path] = field(default_factory=list)


def _unquote(text: str) -> tuple[str, bool]:
    """Go's unquote: the value inside triple or single double quotes, and whether it is
    complete (an opening quote closed)."""
    if text.startswith('"""'):
        return (text[3:-3], True) if len(text) >= 6 and text.endswith('"""') else ("", False)
    if text.startswith('"'):
        return (text[1:-1], True) if len(text) >= 2 and text.endswith('"') else ("", False)
    return text, True


def parse(text: str, name: str = "Modelfile") -> list[tuple[str, str, str]]:
    """The commands of a Modelfile as (command, parameter, value), in order: the command
    lower-cased, the parameter's name for a PARAMETER (else ""), a MESSAGE's value as
    "role: content". A ValueError names the line and what is wrong."""
    lines = text.removeprefix("\ufeff").splitlines()
    commands: list[tuple[str, str, str]] = []
    index = 0
    while index < len(lines):
        number, line = index + 1, lines[index].strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        match = _NAME.match(line)
        command = match.group(1).lower() if match else ""
        if command not in COMMANDS:
            raise ValueError(f"{name} (line {number}): command must be one of "
                             f"{', '.join(c.upper() for c in COMMANDS)}; got {line.split()[0]!r}")
        assert match is not None
        key, rest = "", match.group(2) or ""
        if command == "parameter":
            found = _PARAMETER.match(rest)
            if found is None:
                raise ValueError(f"{name} (line {number}): PARAMETER takes a name and a value, "
                                 "such as PARAMETER temperature 0.7")
            key, rest = found.group(1), found.group(2)
        elif command == "message":
            role, _, rest = rest.partition(" ")
            if role not in ROLES:
                raise ValueError(f"{name} (line {number}): the MESSAGE role must be one of "
                                 f"{', '.join(ROLES)}, got {role!r}")
        while not _unquote(rest.strip())[1]:  # an open quote: the value goes on
            if index >= len(lines):
                raise ValueError(f"{name} (line {number}): the quoted value of {command.upper()} "
                                 "is never closed")
            rest += "\n" + lines[index]
            index += 1
        value = _unquote(rest.strip())[0]
        if command == "message":
            value = f"{role}: {value}"
        if not value and command in ("from", "adapter", "draft"):
            raise ValueError(f"{name} (line {number}): {command.upper()} needs a model or a path")
        commands.append((command, key, value))
    if not any(command == "from" for command, _, _ in commands):
        raise ValueError(f"{name} has no FROM line: start it with FROM MODEL (or FROM ./file.gguf)")
    return commands


def _local(value: str, base: Path) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else base / path


def plan(commands: list[tuple[str, str, str]], base: Path) -> CreatePlan:
    """The create() arguments for parsed commands; paths are relative to `base` (the Modelfile's
    folder), as Ollama's own command has them."""
    result = CreatePlan()
    arguments = result.arguments
    parameters: dict[str, Any] = {}
    for key, parameter, value in commands:
        if key == "from":
            path = _local(value, base)
            if path.is_dir():
                raise ValueError(f"FROM {value}: a folder of weights (safetensors) is not "
                                 "supported here; convert it to one GGUF file, or use "
                                 "`ollama create`")
            if path.is_file():
                result.files.append(path)
            else:
                arguments["from_"] = value
        elif key == "adapter":
            path = _local(value, base)
            if not path.is_file():
                raise ValueError(f"ADAPTER {value}: no such file (looked for {path})")
            result.adapters.append(path)
        elif key == "draft":
            raise ValueError("DRAFT is not supported by ollama-stream create (create() has no "
                             "draft files); use `ollama create` for a draft model")
        elif key in ("template", "system", "renderer", "parser"):
            arguments[key] = value
        elif key == "license":
            arguments.setdefault("license", []).append(value)
        elif key == "requires":
            if not _SEMVER.fullmatch(value):
                raise ValueError(f"REQUIRES {value}: it must be a version such as 0.14.0")
            arguments["requires"] = value.removeprefix("v")
        elif key == "message":
            role, _, content = value.partition(": ")
            arguments.setdefault("messages", []).append({"role": role, "content": content})
        elif parameter in DEPRECATED:  # as Ollama's own command: a warning, and left out
            sys.stderr.write(f"warning: parameter {parameter} is deprecated\n")
        else:
            add_option(parameters, parameter, value, where="PARAMETER")
    if parameters:
        arguments["parameters"] = parameters
    return result


def read(path: str) -> CreatePlan:
    """Parse and plan the Modelfile at `path`; a missing file is a ValueError saying so."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"no Modelfile at {path}: give its path with -f, or create from a model "
                         "with --from MODEL") from None
    except IsADirectoryError:
        raise ValueError(f"-f {path} is a folder: give the Modelfile inside it") from None
    return plan(parse(text, path), file.resolve().parent)
