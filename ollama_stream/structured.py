"""Structured output, without I/O: what `format=` takes and the schema it is sent as, a reply's
content parsed, validated and converted back to the type asked for, the re-ask of a repair, and
the partial JSON value of content that is still streaming.

- `resolve_format(format)`: "json" and JSON Schema dicts are sent as they are; a type (dataclass,
  TypedDict, Enum, list[...], dict[str, ...], Literal[...], ...) becomes its schema through
  `schema.py`, the one schema generator for tools and formats; a pydantic model class is detected
  by its `model_json_schema` and `model_validate_json` (pydantic is never imported here). A format
  that cannot be sent fails here, before any I/O, with a message naming the type.
- `OutputFormat.check(content)`: the value and no errors, or None and every problem as a
  (path, message) pair: the content is not JSON, does not validate against the schema, or cannot
  be built as the type. pydantic models validate with their own `model_validate_json`.
- `PartialJSON`: the value of a growing JSON text, parsed by jiter's partial mode (or
  pydantic_core's, when jiter is not installed) only when a chunk may show something new, and
  at most once per 1/64 of growth past 1 KiB, so the parsing of a whole reply stays linear.
"""

from __future__ import annotations

import importlib
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from .errors import StructuredOutputError
from .schema import _convert, schema_for_annotation, validate_value

__all__ = ["NOTHING", "OutputFormat", "PartialJSON", "partial_parser", "repair_message",
           "resolve_format", "type_name"]

NOTHING: Any = object()  # PartialJSON.feed: nothing new to show
_INSTALL = ("stream.objects() needs an incremental JSON parser and found none: pip install "
            "'ollama-stream[structured]' (it adds jiter), or pip install -U pydantic (a "
            "pydantic_core whose from_json takes allow_partial='trailing-strings' has one)")
_SMALL = 1024  # characters: up to here, every chunk that may change the value is parsed
_GROWTH = 6  # past _SMALL, parse again once the text has grown by 1/2**_GROWTH of its length
_MAX_REF_DEPTH = 64  # a recursive schema is checked this deep, and taken as it is below
_SHOWN_ERRORS = 5  # in an error's message; `.errors` has them all
_NOT_JSON_HINT = (
    "The model wrote no JSON: it may have ignored `format` (Ollama v0.12.4 to v0.21.0 did with "
    "think=False on thinking models such as qwen3.5 and gemma4: ollama/ollama#14645). Upgrade "
    "Ollama or leave thinking on, or pass repair=N to re-ask the model")


class OutputFormat:
    """A resolved `format=`: `wire` is what is sent ("json" or a JSON Schema dict), `kind` one of
    "json", "schema" (a dict given), "type" (an annotation) or "pydantic", `annotation` the type
    asked for, `name` how messages call it."""

    __slots__ = ("_checked", "annotation", "kind", "name", "wire")

    def __init__(self, kind: str, wire: str | dict[str, Any], checked: Mapping[str, Any] | None,
                 annotation: Any, name: str) -> None:
        self.kind = kind
        self.wire = wire
        self._checked = checked  # the schema values are validated against (local $refs inlined)
        self.annotation = annotation
        self.name = name

    def __repr__(self) -> str:
        return f"<OutputFormat {self.kind} {self.name}>"

    def check(self, content: str, *, truncated: bool = False) -> tuple[Any, list[tuple[str, str]]]:
        """(value, []) when `content` fits, else (None, the problems as (path, message))."""
        text = content.strip()
        if not text:
            return None, [("$", "is empty: the reply has no content (a thinking model may have "
                                "written its whole answer as thinking)")]
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            problem = f"is not JSON ({exc}): {_preview(text)}"
            if truncated:
                problem = ("was cut off at the length limit (num_predict) before its JSON ended: "
                           f"{_preview(text, tail=True)}")
            return None, [("$", problem)]
        if self.kind == "json":
            return value, []
        if self.kind == "pydantic":
            return _pydantic_check(self.annotation, text)
        assert self._checked is not None
        problems = validate_value(self._checked, value, "$")
        if problems or self.kind == "schema":
            return (None if problems else value), problems
        try:
            return _convert(self.annotation, value), []
        except (TypeError, ValueError) as exc:
            return None, [("$", f"cannot be made a {self.name}: {exc}")]

    def parse_result(self, result: Any, content: str) -> Any:
        """`.parsed` of a ChatResult or GenerateResult with this format: the content checked and
        converted, and kept on the result; StructuredOutputError when it does not fit."""
        value, errors = self.check(content, truncated=result.truncated)
        if errors:
            raise self.error(content, errors, result, result.repairs)
        result._parsed = (value,)
        return value

    def error(self, content: str, errors: list[tuple[str, str]], result: Any,
              repairs: int = 0) -> StructuredOutputError:
        """The StructuredOutputError of a reply that does not fit."""
        model = getattr(result, "model", "") or "the model"
        shown = "; ".join(f"{path} {problem}" for path, problem in errors[:_SHOWN_ERRORS])
        if len(errors) > _SHOWN_ERRORS:
            shown += f" (and {len(errors) - _SHOWN_ERRORS} more in .errors)"
        after = f" after {repairs} repair{'s' if repairs != 1 else ''}" if repairs else ""
        if getattr(result, "truncated", False):
            hint = ("It stopped at the length limit: raise options={'num_predict': ...}, or ask "
                    "for less")
        elif errors and errors[0][1].startswith("is not JSON"):
            hint = _NOT_JSON_HINT
        elif repairs:
            hint = "Allow more repairs, or ask differently; .content holds the last answer"
        else:
            hint = ("Pass repair=N to re-ask the model with these errors; .content holds the "
                    "text")
        return StructuredOutputError(
            f"the reply of {model!r} does not fit {self.name}{after}: {shown}. {hint}",
            content=content, errors=list(errors), result=result,
            partial=getattr(result, "message", None))


def resolve_format(format: object) -> OutputFormat:
    """What `format=` asks for. ValueError for a string other than "json", TypeError for
    anything that is neither a JSON Schema dict nor a type the schema generator knows."""
    if isinstance(format, str):
        if format == "json":
            return OutputFormat("json", "json", None, None, "JSON")
        raise ValueError(
            f"format must be 'json', a JSON Schema dict, or a type (a dataclass, TypedDict, Enum, "
            f"pydantic model, list[...], ...); got {format!r}")
    if isinstance(format, dict):
        return OutputFormat("schema", format, inline_refs(format), None, "the JSON Schema")
    if _is_pydantic_model(format):
        model: Any = format
        return OutputFormat("pydantic", model.model_json_schema(), None, model, model.__name__)
    if hasattr(format, "model_json_schema") and not isinstance(format, type):
        name = type(format).__name__
        raise TypeError(f"format={name}(...) is a pydantic model instance: pass the class, "
                        f"format={name}")
    name = type_name(format)
    try:
        schema = schema_for_annotation(format, f"format={name}")
    except TypeError as exc:
        raise TypeError(f"{exc} (format also takes 'json', a JSON Schema dict, or a pydantic "
                        "model class)") from None
    return OutputFormat("type", schema, schema, format, name)


def _is_pydantic_model(format: object) -> bool:
    return (isinstance(format, type) and callable(getattr(format, "model_json_schema", None))
            and callable(getattr(format, "model_validate_json", None)))


def type_name(annotation: Any) -> str:
    """An annotation as it is written: `Person`, `list[Person]`, `Literal['a', 'b']`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is None:
        if annotation is None or annotation is type(None):
            return "None"
        if isinstance(annotation, type):  # Outer.Inner, a class in a function without <locals>
            return annotation.__qualname__.rpartition("<locals>.")[2]
        return repr(annotation)
    if origin is typing.Literal:
        return f"Literal[{', '.join(map(repr, args))}]"
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(type_name(arg) for arg in args)
    inner = ", ".join("..." if arg is Ellipsis else type_name(arg) for arg in args)
    return f"{type_name(origin)}[{inner}]"


def _pydantic_check(model: Any, text: str) -> tuple[Any, list[tuple[str, str]]]:
    """A pydantic model's own validation; its ValidationError (a ValueError with `errors()`)
    becomes (path, message) pairs."""
    try:
        return model.model_validate_json(text), []
    except ValueError as exc:
        errors = getattr(exc, "errors", None)
        if not callable(errors):
            raise
        problems = []
        for entry in errors():
            path = "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}"
                                 for part in entry.get("loc", ()))
            message = str(entry.get("msg", "is invalid"))
            if "input" in entry and entry.get("type") != "missing":
                message += f", got {entry['input']!r:.80}"
            problems.append((path, message))
        return None, problems


def _preview(text: str, *, tail: bool = False) -> str:
    if len(text) <= 80:
        return repr(text)
    return f"...{text[-60:]!r}" if tail else f"{text[:60]!r}..."


def inline_refs(schema: Any, root: Any = None, depth: int = 0) -> Any:
    """A copy of a schema with its local `$ref`s (`#/$defs/...`, `#/definitions/...`) replaced by
    what they point to, for validation (the schema sent is the caller's, unchanged). A recursive
    schema is inlined _MAX_REF_DEPTH levels deep, and accepts anything below."""
    root = schema if root is None else root
    if depth > _MAX_REF_DEPTH:
        return {}
    if isinstance(schema, list):
        return [inline_refs(item, root, depth + 1) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        target = _pointer(root, ref[1:])
        if isinstance(target, dict):
            rest = {key: value for key, value in schema.items() if key != "$ref"}
            return inline_refs({**target, **rest}, root, depth + 1)
    return {key: value if key in ("enum", "const", "default", "examples")
            else inline_refs(value, root, depth + 1)
            for key, value in schema.items() if key not in ("$defs", "definitions")}


def _pointer(root: Any, pointer: str) -> Any:
    """What a JSON pointer (`/$defs/Address`) names in `root`; None when nothing."""
    node = root
    for part in pointer.split("/")[1:] if pointer else ():
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def repair_message(errors: list[tuple[str, str]]) -> str:
    """What a repair tells the model after its invalid answer."""
    listed = "\n".join(f"- {path} {problem}" for path, problem in errors[:20])
    return ("Your reply did not fit the required JSON format:\n" + listed
            + "\nReply again with only the corrected JSON, and nothing else.")


# -- partial values --------------------------------------------------------------------------------

def partial_parser() -> Callable[[str], Any]:
    """The partial JSON parser of this environment: jiter's (the `[structured]` extra), else
    pydantic_core's (pydantic's users have it); ImportError with the install command when neither
    is, or neither knows trailing strings (too old)."""
    candidates: list[Callable[[Any], Callable[[str], Any]]] = [
        lambda jiter: lambda text: jiter.from_json(
            text.encode(), partial_mode="trailing-strings", cache_mode="keys"),
        lambda core: lambda text: core.from_json(
            text, allow_partial="trailing-strings", cache_strings="keys"),
    ]
    for module, make in zip(("jiter", "pydantic_core"), candidates, strict=True):
        try:
            parse = make(importlib.import_module(module))
            if parse('["a') == ["a"]:  # an old version without trailing strings does not count
                return parse
        except (ImportError, TypeError, ValueError):
            continue
    raise ImportError(_INSTALL)


class PartialJSON:
    """The JSON value of a text that grows a chunk at a time: `feed(text)` returns the value of
    everything fed so far when it may differ from the last one returned, else NOTHING.

    A chunk is parsed only when it can show something new: not when it is blank, nor when it
    ends in a digit (a number there may go on, and its prefix would be a wrong value). Past
    _SMALL characters the text is parsed again only once it has grown by 1/64 of its length, so
    the parsing of a reply of n characters costs O(n) in all (about 65 n plus a constant), however
    small its chunks. Strings may be partial; keys and values not yet begun are absent."""

    __slots__ = ("_last", "_parse", "_parsed_at", "_parts", "_size")

    def __init__(self, parse: Callable[[str], Any] | None = None) -> None:
        self._parse = parse if parse is not None else partial_parser()
        self._parts: list[str] = []
        self._size = 0
        self._parsed_at = 0
        self._last: Any = NOTHING

    def reset(self) -> None:
        """Start again (a repair's new answer)."""
        self._parts, self._size, self._parsed_at, self._last = [], 0, 0, NOTHING

    def feed(self, text: str) -> Any:
        parts = self._parts
        parts.append(text)
        size = self._size = self._size + len(text)
        if not text or text[-1].isdigit() or text.isspace():
            return NOTHING
        if size > _SMALL and size - self._parsed_at < size >> _GROWTH:
            return NOTHING
        self._parsed_at = size
        whole = "".join(parts)
        self._parts = [whole]
        try:
            value = self._parse(whole)
        except ValueError:  # not JSON (yet, or at all): nothing to show
            return NOTHING
        if type(value) is type(self._last) and value == self._last:
            return NOTHING
        self._last = value
        return value

