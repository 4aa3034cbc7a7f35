"""Structured output in `chat`: the format from `--format json` or `--format-schema FILE`, and on a
terminal the reply's JSON printed once whole, indented (a pipe gets the content as it streams)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from typing import Any, TextIO

import orjson

from .. import ChatChunk, ChatResult
from ._render import ReplyPrinter


def add_format_schema(chat: argparse.ArgumentParser) -> None:
    chat.add_argument("--format-schema", metavar="FILE",
                      help="structured output: the JSON Schema in FILE (on a terminal the reply's "
                           "JSON is printed indented)")


def format_of(args: argparse.Namespace) -> str | dict[str, Any] | None:
    """`--format json`, or the schema `--format-schema FILE` holds; ValueError when it cannot be
    read or is not a JSON object."""
    path = getattr(args, "format_schema", None)
    if path is None:
        return args.format  # type: ignore[no-any-return]
    if args.format is not None:
        raise ValueError("--format and --format-schema each set the format: give one of them")
    try:
        with open(path, "rb") as file:
            schema = orjson.loads(file.read())
    except OSError as exc:
        raise ValueError(f"--format-schema: cannot read {path}: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"--format-schema: {path} is not JSON ({exc}); it should hold a JSON "
                         "Schema object such as {\"type\": \"object\", ...}") from None
    if not isinstance(schema, dict):
        raise ValueError(f"--format-schema: {path} holds a JSON {type(schema).__name__}, not a "
                         "JSON Schema object")
    return schema


def printer_for(format: object, out: TextIO) -> type[ReplyPrinter]:
    """How a reply is shown: indented JSON once whole on a terminal when a format is set."""
    return JsonReplyPrinter if format is not None and out.isatty() else ReplyPrinter


class JsonReplyPrinter(ReplyPrinter):
    """A ReplyPrinter that holds the answer back and prints it indented once the reply is whole
    (thinking and tool calls stream as usual); content that is not JSON is printed as it came,
    with a note on stderr."""

    def __init__(self, out: TextIO, style: Any, **options: Any) -> None:
        super().__init__(out, style, **options)
        self.held: list[str] = []

    def chunk(self, chunk: ChatChunk) -> None:
        if chunk.content and not self.as_json:
            self.held.append(chunk.content)
            if self.first_token is None:  # the summary's time to first token: the answer's
                self.first_token = time.perf_counter() - self.started
            chunk = dataclasses.replace(chunk, content="")
        super().chunk(chunk)

    def done(self, result: ChatResult | ChatChunk | None) -> None:
        text = "".join(self.held)
        if text and not self.as_json:
            if self.section == "thinking":
                self.out.write(self.style.reset() + "\n\n")
            elif self.section:
                self.out.write("\n")
            self.out.write(pretty(text))
            self.section = "answer"
        super().done(result)


def pretty(text: str) -> str:
    """JSON indented by two spaces (as it was when it is not JSON, with a note on stderr)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        sys.stderr.write(f"ollama-stream: the reply is not valid JSON ({exc}); shown as it came\n")
        return text
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
