"""Model options as the command reads them (`--option key=value`, `/set parameter`, a Modelfile's
PARAMETER lines), checked against the names and Go kinds of Ollama's `api.Options` (and its
embedded `Runner`) in api/types.go, so that a typo is refused with the names that exist instead of
being dropped by the server, which ignores unknown keys.

The table is a copy of the server's struct: an option newer than it is refused here until it is
added (the public API has no such table; the fake's is private to it)."""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from typing import Any

import orjson

INTEGER, FLOAT, BOOLEAN, STRINGS = "an integer", "a number", "true or false", "a list of strings"

# api.Options then api.Runner, in the struct's order, by Go kind: int, float32, *bool, []string
OPTION_KINDS: dict[str, str] = {
    "num_keep": INTEGER, "seed": INTEGER, "num_predict": INTEGER, "top_k": INTEGER,
    "top_p": FLOAT, "min_p": FLOAT, "typical_p": FLOAT, "repeat_last_n": INTEGER,
    "temperature": FLOAT, "repeat_penalty": FLOAT, "presence_penalty": FLOAT,
    "frequency_penalty": FLOAT, "stop": STRINGS,
    "num_ctx": INTEGER, "num_batch": INTEGER, "num_gpu": INTEGER, "main_gpu": INTEGER,
    "use_mmap": BOOLEAN, "num_thread": INTEGER, "draft_num_predict": INTEGER,
}

# parser.deprecatedParameters: the server warns and drops them
DEPRECATED = frozenset({"penalize_newline", "low_vram", "f16_kv", "logits_all", "vocab_only",
                        "use_mlock", "mirostat", "mirostat_tau", "mirostat_eta"})

# strconv.ParseBool's spellings, as Ollama's FormatParams reads a PARAMETER line
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def check_name(name: str, where: str = "--option") -> str:
    """`name` when Ollama reads it; a ValueError that names the options that exist otherwise."""
    if name in OPTION_KINDS:
        return name
    if name in DEPRECATED:
        raise ValueError(f"{where} {name}: Ollama no longer reads this option (it was removed from "
                         "api.Options); leave it out")
    close = difflib.get_close_matches(name, OPTION_KINDS, n=1)
    guess = f"did you mean {close[0]}? " if close else ""
    raise ValueError(f"{where} {name!r} is not an option Ollama reads ({guess}the options are: "
                     f"{', '.join(sorted(OPTION_KINDS))})")


def parse_value(name: str, text: str, where: str = "--option") -> Any:
    """The typed value of option `name` from its text, or a ValueError saying what it takes."""
    kind = OPTION_KINDS[check_name(name, where)]
    wrong = ValueError(f"{where} {name} takes {kind}, got {text!r}")
    if kind == INTEGER:
        try:
            return int(text)
        except ValueError:
            raise wrong from None
    if kind == FLOAT:
        try:
            value: int | float = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise wrong from None
            if not math.isfinite(value):
                raise wrong from None
        return value
    if kind == BOOLEAN:
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise wrong
    if text.startswith("["):  # stop=["a", "b"]
        try:
            items = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise wrong from None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise wrong
        return items
    return [text]


def add_option(options: dict[str, Any], name: str, text: str, where: str = "--option") -> None:
    """Parse one option into `options`; `stop` accumulates, as repeated PARAMETER lines do."""
    value = parse_value(name, text, where)
    if OPTION_KINDS[name] == STRINGS and isinstance(options.get(name), list):
        options[name] = [*options[name], *value]
    else:
        options[name] = value


def parse_options(pairs: Sequence[str]) -> dict[str, Any] | None:
    """`--option key=value` pairs, each checked; None when there are none."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--option takes key=value, got {pair!r}")
        add_option(options, key.strip(), value.strip())
    return options or None
