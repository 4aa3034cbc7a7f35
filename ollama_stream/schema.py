"""JSON Schema from Python types, and values checked against it: the one schema generator, for
tool parameters and for structured output (`format=` a type, see `structured.py`).

`schema_for_annotation` turns an annotation (str, int, float, bool, list[T], tuple[T, ...],
fixed-length tuples such as tuple[int, str], dict[str, T], Literal, Enum, Optional, Union,
Annotated, dataclasses, TypedDicts) into a schema, with field descriptions read from docstrings
(`parse_docstring`: Google, reST or NumPy style, section names in any case); `validate_arguments`
(and `validate_value`, the same problems as (path, message) pairs) checks a JSON value against such
a schema, and `_convert` turns it back into the declared Python types. No I/O here.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

__all__ = ["parse_docstring", "schema_for_annotation", "validate_arguments", "validate_value"]

_PRIMITIVES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
# TypedDict key qualifiers (Python 3.11+): they say whether a key is required, not what it holds.
_KEY_QUALIFIERS = tuple(
    q for q in (getattr(typing, "Required", None), getattr(typing, "NotRequired", None)) if q)
_NONE = type(None)
_BARE_TUPLES = (tuple, typing.Tuple)  # noqa: UP006 - the bare typing name, as written in hints


# Section names in any case: `args:` is as common as `Args:`.
_GOOGLE_SECTION = re.compile(r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|"
                             r"Attributes):\s*$", re.IGNORECASE)
_GOOGLE_ENTRY = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_REST_PARAM = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")
_NUMPY_ENTRY = re.compile(r"^(\w+)\s*(:.*)?$")
_ANY_SECTION = re.compile(r"^(Returns?|Raises|Yields|Examples?|Notes?|See Also|References):?\s*$",
                          re.IGNORECASE)
_NUMPY_PARAMETERS = ("parameters", "arguments", "other parameters")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(summary, {parameter: description}) from a Google, reST or NumPy style docstring."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    if lines and _GOOGLE_SECTION.match(lines[0].strip()):
        # """Args:\n        x: ...""" loses the entries' indentation to cleandoc: give it back.
        for i in range(1, len(lines)):
            if not lines[i].strip():
                break
            if not lines[i].startswith(" "):
                lines[i] = "    " + lines[i]
    summary_lines: list[str] = []
    for line in lines:
        if (not line.strip() or _GOOGLE_SECTION.match(line) or line.startswith(":")
                or _ANY_SECTION.match(line)):
            break
        summary_lines.append(line.strip())
    params: dict[str, str] = {}
    current: str | None = None
    mode = ""
    base_indent = 0
    for i, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if _GOOGLE_SECTION.match(stripped) and indent == 0:
            mode, current = "google", None
            continue
        if stripped.lower() in _NUMPY_PARAMETERS and set(nxt) == {"-"}:
            mode, current = "numpy", None
            continue
        if mode == "numpy" and set(stripped) == {"-"}:
            continue
        rest = _REST_PARAM.match(stripped)
        if rest:
            mode, current = "rest", rest.group(1)
            params[current] = rest.group(2).strip()
            base_indent = indent
            continue
        if not stripped:
            if mode == "google":
                current = None
            continue
        if mode == "google":
            if indent == 0:
                mode, current = "", None
                continue
            entry = _GOOGLE_ENTRY.match(stripped)
            if entry and (current is None or indent <= base_indent):
                current, base_indent = entry.group(1).lstrip("*"), indent
                params[current] = entry.group(3).strip()
            elif current is not None:
                params[current] = f"{params[current]} {stripped}".strip()
        elif mode == "numpy":
            if indent == 0 and (_ANY_SECTION.match(stripped) and set(nxt) == {"-"}):
                mode, current = "", None
                continue
            entry = _NUMPY_ENTRY.match(stripped)
            if indent == 0 and entry:
                current = entry.group(1)
                params[current] = ""
            elif current is not None:
                params[current] = f"{params[current]} {stripped}".strip()
        elif mode == "rest":
            if stripped.startswith(":"):
                mode, current = "", None
            elif current is not None and indent > base_indent:
                params[current] = f"{params[current]} {stripped}".strip()
    return " ".join(summary_lines), params


def _is_optional(annotation: Any) -> tuple[bool, Any]:
    """(True, T) for Optional[T] / T | None; (False, annotation) otherwise."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated or origin in _KEY_QUALIFIERS:
        return _is_optional(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not _NONE]
        if len(args) < len(typing.get_args(annotation)):
            if len(args) == 1:
                return True, args[0]
            return True, typing.Union[tuple(args)]  # noqa: UP007 - built at run time
    return False, annotation


def _json_default(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _jsonable(value: Any) -> bool:
    try:
        orjson.dumps(value, default=_json_default)
    except TypeError:
        return False
    return True


def schema_for_annotation(annotation: Any, where: str, _depth: int = 0) -> dict[str, Any]:
    """The JSON Schema of one type annotation;
    TypeError naming `where` when it cannot be expressed."""
    if _depth > 20:
        raise TypeError(f"{where}: the type nests too deeply (a recursive type?)")
    if annotation is Any:
        return {}
    if annotation in _PRIMITIVES:
        return {"type": _PRIMITIVES[annotation]}
    if annotation is _NONE or annotation is None:
        return {"type": "null"}
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in _KEY_QUALIFIERS:
        return schema_for_annotation(args[0], where, _depth + 1)
    if origin is typing.Annotated:
        schema = schema_for_annotation(args[0], where, _depth + 1)
        for extra in args[1:]:
            if isinstance(extra, str):
                schema.setdefault("description", extra)
        return schema
    optional, inner = _is_optional(annotation)
    if optional:
        return schema_for_annotation(inner, where, _depth + 1)
    if origin is typing.Literal:
        values = [v.value if isinstance(v, enum.Enum) else v for v in args]
        schema = {"enum": values}
        kinds = {_PRIMITIVES.get(type(v)) for v in values}
        if len(kinds) == 1 and None not in kinds:
            schema = {"type": kinds.pop(), "enum": values}
        return schema
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        values = [member.value for member in annotation]
        kinds = {_PRIMITIVES.get(type(v)) for v in values}
        if len(kinds) == 1 and None not in kinds:
            return {"type": kinds.pop(), "enum": values}
        return {"enum": values}
    if annotation in _BARE_TUPLES:  # items of any type, any number of them
        return {"type": "array"}
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        return _fixed_tuple_schema(args, where, _depth)
    if (origin in (list, Sequence, typing.Sequence, set, frozenset)
            or annotation in (list, Sequence)
            or (origin is tuple and len(args) == 2 and args[1] is Ellipsis)):
        if origin in (set, frozenset):
            raise TypeError(f"{where}: sets are not JSON; use list[...]")
        if not args:
            return {"type": "array"}
        return {"type": "array", "items": schema_for_annotation(args[0], where, _depth + 1)}
    if origin in (dict, Mapping, typing.Mapping) or annotation in (dict, Mapping):
        if args and args[0] is not str:
            raise TypeError(f"{where}: object keys must be str, not {args[0]!r}")
        schema = {"type": "object"}
        if len(args) == 2 and args[1] is not Any:
            schema["additionalProperties"] = schema_for_annotation(args[1], where, _depth + 1)
        return schema
    if origin is typing.Union or origin is types.UnionType:
        return {"anyOf": [schema_for_annotation(a, where, _depth + 1) for a in args]}
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return _object_schema_for_class(annotation, where, _depth)
    if typing.is_typeddict(annotation):
        return _object_schema_for_class(annotation, where, _depth)
    raise TypeError(
        f"{where}: unsupported annotation {annotation!r}; use str, int, float, bool, list[...], "
        "tuple[...], dict[str, ...], Literal[...], an Enum, Optional[...], a dataclass or a "
        "TypedDict"
    )


def _fixed_tuple_args(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The item types of a fixed-length tuple; `tuple[()]` is `((),)` on Python 3.10."""
    return () if args == ((),) else args


def _fixed_tuple_schema(args: tuple[Any, ...], where: str, depth: int) -> dict[str, Any]:
    """tuple[int, str] as JSON Schema 2020-12 writes a closed tuple: one `prefixItems` entry per
    position, exactly that many items, no others."""
    items = _fixed_tuple_args(args)
    if not items:  # prefixItems may not be empty
        return {"type": "array", "maxItems": 0}
    prefix = [schema_for_annotation(item, f"{where}[{i}]", depth + 1)
              for i, item in enumerate(items)]
    return {"type": "array", "prefixItems": prefix, "minItems": len(items),
            "maxItems": len(items), "items": False}


def _resolve_strings(annotation: Any, globalns: Any, localns: Any) -> Any:
    """Evaluate the forward references that Python 3.10's get_type_hints leaves inside builtin
    generics (the "X" of `list["X"]`); 3.11+ resolves them itself, and then this returns the
    annotation unchanged."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal or not args:
        return annotation  # a Literal's strings are values, not names
    if origin is typing.Annotated:  # the metadata after the type may be strings (descriptions)
        inner = _resolve_strings(args[0], globalns, localns)
        params = (inner, *args[1:])
        return annotation if inner is args[0] else typing.Annotated[params]
    # what get_type_hints does
    resolved = tuple(eval(arg, globalns, localns) if isinstance(arg, str)
                     else _resolve_strings(arg, globalns, localns) for arg in args)
    if all(new is old for new, old in zip(resolved, args, strict=True)):
        return annotation
    if isinstance(annotation, types.GenericAlias):
        return types.GenericAlias(origin, resolved)
    if origin is typing.Union or origin is types.UnionType:
        return typing.Union[resolved]  # noqa: UP007 - built at run time
    return annotation.copy_with(resolved)  # typing.List[...] and the other typing generics


def _class_hints(cls: type) -> dict[str, Any]:
    """The field types of a dataclass or TypedDict, every forward reference resolved (NameError
    when one cannot be)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    module = sys.modules.get(cls.__module__)
    globalns = vars(module) if module is not None else {}
    return {name: _resolve_strings(hint, globalns, dict(vars(cls))) for name, hint in hints.items()}


def _object_schema_for_class(cls: type, where: str, depth: int) -> dict[str, Any]:
    try:
        hints = _class_hints(cls)
    except NameError as exc:
        raise TypeError(f"{where}: cannot resolve a field type of {cls.__name__} ({exc})") from None
    _, field_docs = parse_docstring(
        cls.__doc__ if cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "(") else None)
    properties: dict[str, Any] = {}
    required: list[str] = []
    if dataclasses.is_dataclass(cls):
        for f in dataclasses.fields(cls):
            schema = schema_for_annotation(hints[f.name], f"{where}.{f.name}", depth + 1)
            has_default = (f.default is not dataclasses.MISSING
                           or f.default_factory is not dataclasses.MISSING)
            optional, _ = _is_optional(hints[f.name])
            if f.default is not dataclasses.MISSING and _jsonable(f.default):
                schema["default"] = _json_default(f.default)
            if f.name in field_docs:
                schema["description"] = field_docs[f.name]
            properties[f.name] = schema
            if not has_default and not optional:
                required.append(f.name)
    else:
        required_keys = getattr(cls, "__required_keys__", frozenset(hints))
        for key, hint in hints.items():
            schema = schema_for_annotation(hint, f"{where}.{key}", depth + 1)
            if key in field_docs:
                schema["description"] = field_docs[key]
            properties[key] = schema
            if key in required_keys and not _is_optional(hint)[0]:
                required.append(key)
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    return out


_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: ((isinstance(v, int) and not isinstance(v, bool))
                          or (isinstance(v, float) and v.is_integer())),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}


def _same_json(a: Any, b: Any) -> bool:
    """JSON equality: true and 1 are different values (Python's == says they are equal)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    return bool(a == b)


def validate_arguments(schema: Mapping[str, Any], value: Any, path: str = "arguments") -> list[str]:
    """Check a value against the parts of JSON Schema that tool calls use: type, enum, required,
    properties, additionalProperties, items, prefixItems, minItems/maxItems, anyOf/oneOf. Returns
    the problems found, each a sentence that starts with its path (empty when it fits)."""
    return [f"{where} {problem}" for where, problem in validate_value(schema, value, path)]


def validate_value(schema: Mapping[str, Any], value: Any,
                   path: str = "$") -> list[tuple[str, str]]:
    """`validate_arguments` with each problem as (path, what is wrong), such as
    `("$.age", "should be integer, got str 'x'")`."""
    problems: list[tuple[str, str]] = []
    expected = schema.get("type")
    if expected is not None:
        kinds = expected if isinstance(expected, list) else [expected]
        if not any(_JSON_TYPES.get(kind, lambda v: True)(value) for kind in kinds):
            problems.append((path, f"should be {' or '.join(kinds)}, "
                                   f"got {type(value).__name__} {value!r:.80}"))
            return problems
    if "enum" in schema and not any(_same_json(value, option) for option in schema["enum"]):
        problems.append((path, f"must be one of {schema['enum']!r}, got {value!r:.80}"))
    if schema.get("anyOf") and all(validate_value(option, value, path)
                                   for option in schema["anyOf"]):
        problems.append((path, "matches none of the allowed shapes"))
    if schema.get("oneOf"):
        matches = sum(not validate_value(option, value, path) for option in schema["oneOf"])
        if matches != 1:
            problems.append((path, f"must match exactly one of the allowed shapes, "
                                   f"matches {matches}"))
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for name in schema.get("required") or ():
            if name not in value:
                problems.append((path, f"is missing the required {name!r}"))
        for name, item in value.items():
            if name in properties:
                problems.extend(validate_value(properties[name], item, f"{path}.{name}"))
            else:
                extra = schema.get("additionalProperties")
                if extra is False:
                    problems.append((path, f"has an unexpected {name!r}"))
                elif isinstance(extra, Mapping):
                    problems.extend(validate_value(extra, item, f"{path}.{name}"))
    if isinstance(value, list):
        problems.extend(_array_problems(schema, value, path))
    return problems


def _array_problems(schema: Mapping[str, Any], value: list[Any],
                    path: str) -> list[tuple[str, str]]:
    """prefixItems check the first items, one schema each; `items` the rest (all of them without
    prefixItems), and `items: false` allows no more; then minItems and maxItems."""
    problems: list[tuple[str, str]] = []
    prefix = schema.get("prefixItems")
    prefix = prefix if isinstance(prefix, list) else []
    for i, (item_schema, item) in enumerate(zip(prefix, value, strict=False)):
        if isinstance(item_schema, Mapping):
            problems.extend(validate_value(item_schema, item, f"{path}[{i}]"))
    items = schema.get("items")
    if isinstance(items, Mapping):
        for i in range(len(prefix), len(value)):
            problems.extend(validate_value(items, value[i], f"{path}[{i}]"))
    most = schema.get("maxItems")
    if items is False:
        most = len(prefix) if not isinstance(most, int) else min(most, len(prefix))
    least = schema.get("minItems")
    if isinstance(least, int) and len(value) < least:
        problems.append((path, f"should have at least {least} items, got {len(value)}"))
    if isinstance(most, int) and len(value) > most:
        problems.append((path, f"should have at most {most} items, got {len(value)}"))
    return problems


def _convert(annotation: Any, value: Any) -> Any:
    """Turn JSON values into the Python types the function declared
    (Enums, dataclasses, the fields of TypedDicts, nested ones)."""
    annotation = _is_optional(annotation)[1]
    if value is None:
        return None
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _convert(typing.get_args(annotation)[0], value)
    if annotation is float and isinstance(value, int):
        return float(value)
    if annotation is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation(value)
    if (isinstance(annotation, type) and dataclasses.is_dataclass(annotation)
            and isinstance(value, dict)):
        hints = _class_hints(annotation)
        kwargs = {k: _convert(hints.get(k, Any), v) for k, v in value.items()}
        # Optional fields without a default are not required
        for f in dataclasses.fields(annotation):
            if (f.name not in kwargs and f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING
                    and _is_optional(hints.get(f.name, Any))[0]):
                kwargs[f.name] = None
        return annotation(**kwargs)
    if typing.is_typeddict(annotation) and isinstance(value, dict):
        hints = _class_hints(annotation)
        return {k: _convert(hints.get(k, Any), v) for k, v in value.items()}
    args = typing.get_args(annotation)
    if origin in (list, Sequence, typing.Sequence) and args and isinstance(value, list):
        return [_convert(args[0], item) for item in value]
    if annotation in _BARE_TUPLES and isinstance(value, list):
        return tuple(value)
    if origin is tuple and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], item) for item in value)
        # validated first, so the lengths agree; an extra item would be kept as it is
        types_ = _fixed_tuple_args(args)
        return tuple(_convert(types_[i], item) if i < len(types_) else item
                     for i, item in enumerate(value))
    if origin in (dict, Mapping) and len(args) == 2 and isinstance(value, dict):
        return {k: _convert(args[1], v) for k, v in value.items()}
    return value
