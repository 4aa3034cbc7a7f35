"""Request bodies read as Ollama reads them (gin's ShouldBindJSON: one `json.Decoder.Decode` into a
Go struct), so that a bad body gets the server's own 400 text: the scanner's syntax errors, the
type errors of the request structs, and the texts of Ollama's Duration and ThinkValue decoders.

Rule: `decode` is the only way the fake reads a request body; it returns the value or Go's error."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from ._gojson import go_quote
from ._gotypes import STRING, Abort, GoType, check_duration, check_think

MISSING_BODY = "missing request body"  # what the handlers answer to io.EOF: no value at all


# -- the scanner: where the first value ends, or Go's syntax error ---------------------------------

_WS = b" \t\r\n"
_LITERALS = {ord("t"): b"true", ord("f"): b"false", ord("n"): b"null"}


class _Syntax(Exception):
    pass


def _quote_char(c: int) -> str:
    if c == ord("'"):
        return "'\\''"
    if c == ord('"'):
        return "'\"'"
    return "'" + go_quote(chr(c))[1:-1] + "'"


def _fail(c: int, context: str) -> _Syntax:
    return _Syntax(f"invalid character {_quote_char(c)} {context}")


def _scan(data: bytes, i: int, context: str = "looking for beginning of value") -> int:
    """The index after the value starting at data[i] (after whitespace); raises _Syntax."""
    n = len(data)
    while i < n and data[i] in _WS:
        i += 1
    if i >= n:
        raise EOFError
    c = data[i]
    if c == ord("{"):
        return _scan_object(data, i + 1)
    if c == ord("["):
        return _scan_array(data, i + 1)
    if c == ord('"'):
        return _scan_string(data, i + 1)
    if c == ord("-") or ord("0") <= c <= ord("9"):
        return _scan_number(data, i)
    if c in _LITERALS:
        word = _LITERALS[c]
        for k in range(1, len(word)):
            if i + k >= n:
                raise EOFError
            if data[i + k] != word[k]:
                literal = word.decode()
                raise _fail(data[i + k], f"in literal {literal} (expecting '{chr(word[k])}')")
        return i + len(word)
    raise _fail(c, context)


def _skip(data: bytes, i: int) -> int:
    while i < len(data) and data[i] in _WS:
        i += 1
    if i >= len(data):
        raise EOFError
    return i


def _scan_object(data: bytes, i: int) -> int:
    i = _skip(data, i)
    if data[i] == ord("}"):
        return i + 1
    while True:
        if data[i] != ord('"'):
            raise _fail(data[i], "looking for beginning of object key string")
        i = _skip(data, _scan_string(data, i + 1))
        if data[i] != ord(":"):
            raise _fail(data[i], "after object key")
        i = _skip(data, _scan(data, i + 1))
        if data[i] == ord("}"):
            return i + 1
        if data[i] != ord(","):
            raise _fail(data[i], "after object key:value pair")
        i = _skip(data, i + 1)


def _scan_array(data: bytes, i: int) -> int:
    i = _skip(data, i)
    if data[i] == ord("]"):
        return i + 1
    while True:
        i = _skip(data, _scan(data, i))
        if data[i] == ord("]"):
            return i + 1
        if data[i] != ord(","):
            raise _fail(data[i], "after array element")
        i += 1


_PLAIN = re.compile(rb'[^"\\\x00-\x1f]*')
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _scan_string(data: bytes, i: int) -> int:
    n = len(data)
    while True:
        match = _PLAIN.match(data, i)
        i = match.end() if match else i
        if i >= n:
            raise EOFError
        c = data[i]
        if c == ord('"'):
            return i + 1
        if c < 0x20:
            raise _fail(c, "in string literal")
        i += 1  # a backslash
        if i >= n:
            raise EOFError
        if data[i] == ord("u"):
            for k in range(1, 5):
                if i + k >= n:
                    raise EOFError
                if data[i + k] not in _HEX:
                    raise _fail(data[i + k], "in \\u hexadecimal character escape")
            i += 5
        elif data[i] in b'bfnrt\\/"':
            i += 1
        else:
            raise _fail(data[i], "in string escape code")


def _digits(data: bytes, i: int) -> int:
    while i < len(data) and ord("0") <= data[i] <= ord("9"):
        i += 1
    return i


def _need_digit(data: bytes, i: int, context: str) -> None:
    if i >= len(data):
        raise EOFError
    if not ord("0") <= data[i] <= ord("9"):
        raise _fail(data[i], context)


def _scan_number(data: bytes, i: int) -> int:
    """Ends at the first byte that cannot continue the number; at the end of the input a number
    that could still grow ("1.", "-") is cut short (unexpected EOF)."""
    if data[i] == ord("-"):
        i += 1
        _need_digit(data, i, "in numeric literal")
    i = i + 1 if data[i] == ord("0") else _digits(data, i)
    if i < len(data) and data[i] == ord("."):
        _need_digit(data, i + 1, "after decimal point in numeric literal")
        i = _digits(data, i + 1)
    if i < len(data) and data[i] in b"eE":
        i += 1
        if i < len(data) and data[i] in b"+-":
            i += 1
        _need_digit(data, i, "in exponent of numeric literal")
        i = _digits(data, i)
    return i


def first_value(raw: bytes) -> tuple[Any, str | None]:
    """json.Decoder.Decode's first step: the first JSON value in `raw` (what follows it is never
    read), or Go's error text; MISSING_BODY when there is no value at all (io.EOF)."""
    if not raw.strip(_WS):
        return None, MISSING_BODY
    try:  # what orjson reads whole, Go's scanner reads alike: scan only what orjson refuses
        return orjson.loads(raw), None
    except orjson.JSONDecodeError:
        pass
    try:
        end = _scan(raw, 0)
    except EOFError:
        return None, "unexpected EOF"
    except _Syntax as exc:
        return None, str(exc)
    text = raw[:end]
    try:
        return orjson.loads(text), None
    except orjson.JSONDecodeError:  # Go takes what orjson refuses: big numbers, bad UTF-8
        return json.loads(text.decode("utf-8", "replace")), None


# -- decoding into a struct: type errors as Go reports them ----------------------------------------

@dataclass
class _TypeError:
    value: str
    struct: str
    path: tuple[str, ...]
    go: str

    def text(self) -> str:
        if not self.struct and not self.path:
            return f"json: cannot unmarshal {self.value} into Go value of type {self.go}"
        field = ".".join(self.path)
        return (f"json: cannot unmarshal {self.value} into Go struct field "
                f"{self.struct}.{field} of type {self.go}")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


class _Decoder:
    """One Unmarshal: type errors are saved (the first one is reported, decoding goes on), errors
    of custom decoders abort."""

    def __init__(self) -> None:
        self.saved: _TypeError | str | None = None

    def save(self, error: _TypeError | str) -> None:
        if self.saved is None:
            self.saved = error

    def value(self, value: Any, t: GoType, where: tuple[str, tuple[str, ...]]) -> Any:
        if value is None and t.kind not in ("message",):
            return None  # null leaves a Go value as it is
        kind = t.kind
        if kind == "any":
            return value
        if kind in ("duration", "think"):
            check_duration(value) if kind == "duration" else check_think(value)
            return value
        if kind == "message":
            return self.message(value, t, where)
        expected = {"string": "string", "bool": "bool", "bytes": "string", "int": "number",
                    "map": "object", "smap": "object", "struct": "object", "slice": "array"}[kind]
        if _kind(value) != expected:
            self.type_error(_kind(value), t, where)
            return None
        if kind == "int" and (isinstance(value, float) or not -2**63 <= value < 2**63):
            self.type_error(f"number {_number_text(value)}", t, where)
            return None
        if kind == "bytes":
            return self.base64(value)
        if kind == "smap":
            return {k: self.value(v, STRING, where) for k, v in value.items()}
        if kind == "slice":
            assert t.elem is not None
            return [self.value(item, t.elem, where) for item in value]
        if kind == "struct":
            return self.fields(value, t, where[1])
        return value

    def type_error(self, value: str, t: GoType, where: tuple[str, tuple[str, ...]]) -> None:
        self.save(_TypeError(value, where[0], where[1], t.go))

    def fields(self, obj: dict[str, Any], t: GoType, path: tuple[str, ...]) -> dict[str, Any]:
        """Keys match fields case-insensitively, as in Go; unknown keys are ignored."""
        names = {name.lower(): (name, ft) for name, ft in t.fields}
        out: dict[str, Any] = {}
        for key, value in obj.items():
            found = names.get(key.lower())
            if found is None:
                continue
            name, ft = found
            out[name] = self.value(value, ft, (t.go.rpartition(".")[2], (*path, name)))
        return out

    def message(self, value: Any, t: GoType, where: tuple[str, tuple[str, ...]]) -> Any:
        assert t.elem is not None
        inner = _Decoder()
        if value is not None and not isinstance(value, dict):
            inner.save(_TypeError(_kind(value), "", (), t.elem.go))
            decoded: Any = None
        else:
            decoded = inner.fields(value or {}, t.elem, ())
            if isinstance(decoded.get("role"), str):
                decoded["role"] = decoded["role"].lower()  # Message.UnmarshalJSON lowercases it
        error = inner.saved
        if isinstance(error, _TypeError):  # Go puts the outer context in front of the inner one
            error = _TypeError(error.value, where[0], where[1] + error.path, error.go)
            raise Abort(error.text())
        if error is not None:
            raise Abort(error)
        return decoded

    def base64(self, text: str) -> str:
        """An image: base64 (Go skips \\r and \\n), e.g. no `data:` URL prefix."""
        bad = _NOT_BASE64.search(text)
        if bad is not None:
            self.save(f"illegal base64 data at input byte {bad.start()}")
        return text


_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/=\r\n]")


def _number_text(value: float) -> str:
    """The number as the request wrote it, near enough: Go quotes the literal itself."""
    return repr(value) if isinstance(value, float) else str(value)


def decode(raw: bytes, t: GoType) -> tuple[dict[str, Any] | None, str | None]:
    """`ShouldBindJSON(&req)` for a request struct `t`: the body's known fields (case-insensitive
    keys under their own names), or Go's error text (MISSING_BODY for an empty body)."""
    value, error = first_value(raw)
    if error is not None:
        return None, error
    if value is None:
        return {}, None
    if not isinstance(value, dict):
        return None, _TypeError(_kind(value), "", (), t.go).text()
    decoder = _Decoder()
    try:
        out = decoder.fields(value, t, ())
    except Abort as exc:
        return None, str(exc)
    saved = decoder.saved
    if saved is not None:
        return None, saved.text() if isinstance(saved, _TypeError) else saved
    return out, None
