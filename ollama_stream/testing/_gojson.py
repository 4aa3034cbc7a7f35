"""JSON bytes as Go's encoding/json writes them, so that the fake's answers match Ollama's byte for
byte: keys in struct order (a dict's insertion order), `<` `>` `&` U+2028 U+2029 escaped, floats in
Go's shortest form (float32 where Go has a float32), and times in RFC 3339 with trimmed nanoseconds.

Rule: every answer body the fake writes goes through `dumps`; nothing else formats JSON."""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Mapping
from typing import Any

import orjson

# Go's HTML-safe escaping (json.Marshal and json.Encoder both default to it). These characters
# only ever occur inside strings in orjson's output, so replacing them in the whole text is safe.
_ESCAPES = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"),
            ("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029"))


class F32(float):
    """A float that Go holds as a float32 (embeddings, GGUF metadata): written in the shortest
    form that reads back as the same float32, e.g. `0.1` rather than `0.10000000149011612`."""

    __slots__ = ()


def dumps(obj: Any) -> bytes:
    """`json.Marshal(obj)`: no spaces, no trailing newline."""
    out = orjson.dumps(_go_floats(obj)) if _has_floats(obj) else orjson.dumps(obj)
    for raw, escaped in _ESCAPES:
        if raw in out:
            out = out.replace(raw, escaped)
    return out


def _has_floats(obj: Any) -> bool:
    if type(obj) is dict:
        return any(_has_floats(value) for value in obj.values())
    if type(obj) is list or type(obj) is tuple:
        return any(_has_floats(value) for value in obj)
    return isinstance(obj, float)


def _go_floats(obj: Any) -> Any:
    """A copy with every float replaced by a Fragment holding Go's text for it."""
    if isinstance(obj, Mapping):
        return {key: _go_floats(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_go_floats(value) for value in obj]
    if isinstance(obj, float):
        return orjson.Fragment(go_float(obj, 32 if isinstance(obj, F32) else 64).encode())
    return obj


def go_float(value: float, bits: int = 64) -> str:
    """encoding/json's float: strconv's shortest digits, 'f' form unless the magnitude is below
    1e-6 or at least 1e21, and `e-07` cleaned up to `e-7`."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"json: unsupported value: {value!r}")  # what Go's Marshal says
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    text = _shortest32(value) if bits == 32 else repr(value)
    negative = text.startswith("-")
    digits, point = _digits(text.lstrip("-"))
    if bits == 32:  # Go compares in float32, against float32(1e-6) and float32(1e21)
        magnitude, small, large = abs(_as_float32(value)), _F32_SMALL, _F32_LARGE
    else:
        magnitude, small, large = abs(value), 1e-6, 1e21
    if magnitude < small or magnitude >= large:
        exponent = point - 1
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        sign = "-" if exponent < 0 else "+"
        body = f"{mantissa}e{sign}{abs(exponent):02d}"
        if body[-4:-1] == "e-0":  # Go trims e-07 to e-7, and only that case
            body = body[:-2] + body[-1]
    elif point <= 0:
        body = "0." + "0" * -point + digits
    elif point >= len(digits):
        body = digits + "0" * (point - len(digits))
    else:
        body = digits[:point] + "." + digits[point:]
    return "-" + body if negative else body


def _as_float32(value: float) -> float:
    result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return result


_F32_SMALL = _as_float32(1e-6)
_F32_LARGE = _as_float32(1e21)


def _shortest32(value: float) -> str:
    """The fewest significant digits that read back as the same float32."""
    target = _as_float32(value)
    for precision in range(1, 10):
        text = f"{target:.{precision - 1}e}"
        if _as_float32(float(text)) == target:
            return text
    return repr(target)


def _digits(text: str) -> tuple[str, int]:
    """A positive number's significant digits and the decimal point's place: value = 0.DIGITS x
    10**point."""
    mantissa, _, exponent = text.lower().partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + int(exponent or 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    return stripped.rstrip("0") or "0", point


def go_time(nanoseconds: int | None = None) -> str:
    """A UTC time as Go's time.Time marshals it (RFC 3339, nanoseconds with their trailing zeros
    cut, no fraction at all when it is zero): `2025-07-07T20:22:19.19314Z`."""
    ns = time.time_ns() if nanoseconds is None else nanoseconds
    seconds, fraction = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    digits = f"{fraction:09d}".rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"


def go_quote(text: str) -> str:
    """Go's `%q` of a string (strconv.Quote): double quotes, Go's escapes for the rest."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif char.isprintable() or char == " ":
            out.append(char)
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_SHORT_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                  "\v": "\\v"}
