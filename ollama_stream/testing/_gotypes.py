"""The Go types Ollama decodes requests into (api/types.go): the request structs with their
fields' Go kinds and names, and Ollama's own decoders with their error texts, api.Duration
(keep_alive, a number of seconds or a Go duration) and api.ThinkValue (think)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ._gojson import go_quote

# -- the request structs ---------------------------------------------------------------------------

@dataclass(frozen=True)
class GoType:
    """A Go type the decoder fills: its kind, its name in Go's errors, and what it holds."""

    kind: str  # string bool int float any map smap slice struct bytes duration think message
    go: str
    elem: GoType | None = None
    fields: tuple[tuple[str, GoType], ...] = ()


STRING, BOOL, INT = GoType("string", "string"), GoType("bool", "bool"), GoType("int", "int")
ANY = GoType("any", "interface {}")
RAW = GoType("any", "json.RawMessage")
MAP = GoType("map", "map[string]interface {}")
SMAP = GoType("smap", "map[string]string", STRING)
DURATION = GoType("duration", "api.Duration")
THINK = GoType("think", "api.ThinkValue")
IMAGES = GoType("slice", "[]api.ImageData", GoType("bytes", "api.ImageData"))


def struct(go: str, **fields: GoType) -> GoType:
    return GoType("struct", go, fields=tuple(fields.items()))


def slice_of(elem: GoType, go: str) -> GoType:
    return GoType("slice", go, elem)


_FUNCTION = struct("api.ToolCallFunction", index=INT, name=STRING, arguments=ANY)
_TOOL_CALLS = slice_of(struct("api.ToolCall", id=STRING, function=_FUNCTION), "[]api.ToolCall")
# Message has its own UnmarshalJSON (via `type Alias Message`): its errors end the decoding at once
_ALIAS = struct("api.Alias", role=STRING, content=STRING, thinking=STRING, images=IMAGES,
                tool_calls=_TOOL_CALLS, tool_name=STRING, tool_call_id=STRING)
MESSAGES = slice_of(GoType("message", "api.Message", _ALIAS), "[]api.Message")
_TOOLS = slice_of(struct("api.Tool", type=STRING, items=ANY, function=struct(
    "api.ToolFunction", name=STRING, description=STRING, parameters=ANY)), "api.Tools")

CHAT = struct("api.ChatRequest", model=STRING, messages=MESSAGES, stream=BOOL, format=RAW,
              keep_alive=DURATION, tools=_TOOLS, options=MAP, think=THINK, truncate=BOOL,
              shift=BOOL, _debug_render_only=BOOL, logprobs=BOOL, top_logprobs=INT)
GENERATE = struct("api.GenerateRequest", model=STRING, prompt=STRING, suffix=STRING,
                  system=STRING, template=STRING, context=slice_of(INT, "[]int"), stream=BOOL,
                  raw=BOOL, format=RAW, keep_alive=DURATION, images=IMAGES, options=MAP,
                  think=THINK, truncate=BOOL, shift=BOOL, _debug_render_only=BOOL, logprobs=BOOL,
                  top_logprobs=INT)
EMBED = struct("api.EmbedRequest", model=STRING, input=ANY, keep_alive=DURATION, truncate=BOOL,
               dimensions=INT, options=MAP)
SHOW = struct("api.ShowRequest", model=STRING, system=STRING, template=STRING, verbose=BOOL,
              options=MAP, name=STRING)
DELETE = struct("api.DeleteRequest", model=STRING, name=STRING)
COPY = struct("api.CopyRequest", source=STRING, destination=STRING)
PULL = struct("api.PullRequest", model=STRING, insecure=BOOL, username=STRING, password=STRING,
              stream=BOOL, name=STRING)
PUSH = struct("api.PushRequest", model=STRING, insecure=BOOL, username=STRING, password=STRING,
              stream=BOOL, name=STRING)
CREATE = struct("api.CreateRequest", model=STRING, stream=BOOL, quantize=STRING,
                draft_quantize=STRING, **{"from": STRING}, remote_host=STRING, files=SMAP,
                draft_files=SMAP, adapters=SMAP, template=STRING, license=ANY, system=STRING,
                parameters=MAP, messages=MESSAGES, renderer=STRING, parser=STRING,
                requires=STRING, info=MAP, name=STRING, quantization=STRING)


class Abort(Exception):
    """An error that ends the decoding at once (a custom UnmarshalJSON's)."""


# -- Ollama's own decoders: api.Duration (keep_alive) and api.ThinkValue (think) -------------------

THINK_LEVELS = ("high", "medium", "low", "max")
_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0,
          "m": 60.0, "h": 3600.0}
_GO_KINDS = {bool: "bool", dict: "map[string]interface {}", list: "[]interface {}"}


def check_think(value: Any) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, str):
        if value not in THINK_LEVELS:
            raise Abort(f"invalid think value: {go_quote(value)} (must be \"high\", \"medium\", "
                         "\"low\", \"max\", true, or false)")
        return
    raise Abort('think must be a boolean or string ("high", "medium", "low", "max", true, '
                 "or false)")


def check_duration(value: Any) -> None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return
    if isinstance(value, str):
        parse_go_duration(value)
        return
    raise Abort(f"Unsupported type: '{_GO_KINDS[type(value)]}'")


def keep_alive_seconds(value: Any, default: float = 300.0) -> float:
    """A checked keep_alive in seconds; negative means forever (inf), as Ollama reads it."""
    if value is None:
        return default
    seconds = float(value) if not isinstance(value, str) else parse_go_duration(value)
    return math.inf if seconds < 0 else seconds


def _time_quote(text: str) -> str:
    """The time package's quote: non-ASCII and control bytes as \\xNN."""
    out = ['"']
    for char in text:
        if ord(char) >= 0x80 or ord(char) < 0x20:
            out.extend(f"\\x{byte:02x}" for byte in char.encode())
        else:
            out.append("\\" + char if char in '"\\' else char)
    return "".join(out) + '"'


_PART = re.compile(r"(\d*)(\.\d*)?")


def parse_go_duration(text: str) -> float:
    """time.ParseDuration in seconds, with its error texts (raised as Abort)."""
    invalid = Abort(f"time: invalid duration {_time_quote(text)}")
    rest, sign = text, 1.0
    if rest[:1] in ("-", "+"):
        sign, rest = (-1.0 if rest[0] == "-" else 1.0), rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise invalid
    total = 0.0
    while rest:
        if not (rest[0] == "." or rest[0].isdigit()) or not rest[0].isascii():
            raise invalid
        match = _PART.match(rest)
        assert match is not None
        whole, fraction = match.group(1), match.group(2) or ""
        if not whole and len(fraction) <= 1:
            raise invalid
        rest = rest[match.end():]
        unit_end = next((n for n, c in enumerate(rest) if c == "." or c in "0123456789"),
                        len(rest))
        if unit_end == 0:
            raise Abort(f"time: missing unit in duration {_time_quote(text)}")
        unit, rest = rest[:unit_end], rest[unit_end:]
        if unit not in _UNITS:
            raise Abort(f"time: unknown unit {_time_quote(unit)} in duration "
                         f"{_time_quote(text)}")
        total += float((whole or "0") + (fraction if len(fraction) > 1 else "")) * _UNITS[unit]
    if total > 9.223372036854775807e9:  # more than Go's Duration holds
        raise invalid
    return sign * total
