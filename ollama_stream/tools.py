"""Python functions as tools: JSON schemas from signatures and docstrings, argument checks,
and running calls.

No network here. `Tool.from_function(f)` builds the schema Ollama wants from type hints (str, int,
float, bool, list[T], dict[str, T], Literal, Enum, Optional, dataclasses, TypedDicts) and the
docstring (Google, reST or NumPy style); `run_tool_calls` executes one round of calls concurrently
and returns `ToolResult`s.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import functools
import inspect
import re
import sys
import time
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from .types import ToolCall

__all__ = ["Tool", "ToolResult", "as_tool", "run_tool_calls", "schema_for_function", "tool_schemas",
           "validate_arguments"]

_PRIMITIVES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
# TypedDict key qualifiers (Python 3.11+): they say whether a key is required, not what it holds.
_KEY_QUALIFIERS = tuple(
    q for q in (getattr(typing, "Required", None), getattr(typing, "NotRequired", None)) if q)
_NONE = type(None)


@dataclass
class Tool:
    """A tool the model may call: its name, description, JSON-Schema `parameters`, and the Python
    function that runs it (None for a schema-only tool). `timeout` (seconds) bounds one call."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    function: Callable[..., Any] | None = None
    timeout: float | None = None
    schema: dict[str, Any] | None = None  # a ready-made schema, sent unchanged

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a tool needs a non-empty name, got {self.name!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"tool {self.name!r}: timeout must be > 0 seconds or None")

    def to_schema(self) -> dict[str, Any]:
        """The wire form:
        `{"type": "function", "function": {"name", "description", "parameters"}}`."""
        if self.schema is not None:
            return self.schema
        function: dict[str, Any] = {"name": self.name}
        if self.description:
            function["description"] = self.description
        function["parameters"] = self.parameters
        return {"type": "function", "function": function}

    @classmethod
    def from_function(cls, function: Callable[..., Any], *, name: str | None = None,
                      description: str | None = None, timeout: float | None = None) -> Tool:
        """Build a Tool from a (sync or async) function's signature and docstring."""
        schema = schema_for_function(function)
        return cls(name or schema["name"],
                   schema.get("description", "") if description is None else description,
                   schema["parameters"], function, timeout)

    @classmethod
    def from_schema(cls, schema: Mapping[str, Any], function: Callable[..., Any] | None = None, *,
                    timeout: float | None = None) -> Tool:
        """Wrap a ready-made `{"type": "function", "function": {...}}` schema;
        it is sent unchanged."""
        spec = schema.get("function") if isinstance(schema, Mapping) else None
        if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
            raise ValueError("a tool schema must look like {'type': 'function', 'function': "
                             "{'name': ..., 'parameters': {...}}}")
        parameters = spec.get("parameters") or {"type": "object", "properties": {}}
        return cls(spec["name"], spec.get("description") or "", dict(parameters), function, timeout,
                   dict(schema))


@dataclass
class ToolResult:
    """One executed tool call: what was called, what it returned (or the error), and how long it
    took. `content` is what was sent back to the model."""

    name: str
    arguments: dict[str, Any]
    result: Any
    error: str | None
    duration: float
    content: str
    call_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# -- schemas ---------------------------------------------------------------------------------------

_GOOGLE_SECTION = re.compile(r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|"
                             r"Attributes):\s*$")
_GOOGLE_ENTRY = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_REST_PARAM = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")
_NUMPY_ENTRY = re.compile(r"^(\w+)\s*(:.*)?$")
_ANY_SECTION = re.compile(r"^(Returns?|Raises|Yields|Examples?|Notes?|See Also|References):?\s*$")


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
        if stripped in ("Parameters", "Arguments", "Other Parameters") and set(nxt) == {"-"}:
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
        "dict[str, ...], Literal[...], an Enum, Optional[...], a dataclass or a TypedDict"
    )


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


def _object_schema_for_class(cls: type, where: str, depth: int) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
        module = sys.modules.get(cls.__module__)
        globalns = vars(module) if module is not None else {}
        hints = {name: _resolve_strings(hint, globalns, dict(vars(cls)))
                 for name, hint in hints.items()}
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


def _parameter_hints(function: Callable[..., Any], name: str) -> dict[str, Any]:
    """The parameters' type hints, strings resolved. The return annotation is not needed and may
    name something unresolvable (a class local to the caller), so it never fails the tool."""
    try:
        hints = typing.get_type_hints(function, include_extras=True)
        hints.pop("return", None)
        globalns = getattr(inspect.unwrap(function), "__globals__", {})
        return {param: _resolve_strings(hint, globalns, None) for param, hint in hints.items()}
    except NameError:
        pass
    target = inspect.unwrap(function)
    globalns = getattr(target, "__globals__", {})
    code, closure = getattr(target, "__code__", None), getattr(target, "__closure__", None) or ()
    localns: dict[str, Any] = {}
    for var, cell in zip(code.co_freevars if code else (), closure, strict=False):
        with contextlib.suppress(ValueError):  # an empty cell has no contents
            localns[var] = cell.cell_contents
    hints = {}
    for param, annotation in getattr(target, "__annotations__", {}).items():
        if param == "return":
            continue
        if isinstance(annotation, str):
            try:
                # what get_type_hints does, one at a time
                annotation = eval(annotation, globalns, localns)
            except Exception as exc:
                raise TypeError(f"parameter {param!r} of tool {name!r}: cannot resolve its "
                                f"annotation {annotation!r} ({exc})") from None
        hints[param] = annotation
    return hints


def schema_for_function(function: Callable[..., Any]) -> dict[str, Any]:
    """`{"name", "description", "parameters"}` for a function, from its signature and docstring."""
    if not callable(function):
        raise TypeError("a tool must be a function, a Tool or a schema dict, "
                        f"not {type(function).__name__}")
    name = getattr(function, "__name__", None)
    if not name or name == "<lambda>":
        raise TypeError("a tool function needs a name (a lambda has none): use def, "
                        "or Tool(name=..., ...)")
    summary, param_docs = parse_docstring(inspect.getdoc(function))
    hints = _parameter_hints(function, name)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(function).parameters.values():
        where = f"parameter {param.name!r} of tool {name!r}"
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue  # *args / **kwargs are not described to the model
        if param.name not in hints:
            raise TypeError(f"{where} has no type annotation; annotate it "
                            "(str, int, float, bool, list[...], ...)")
        annotation = hints[param.name]
        schema = schema_for_annotation(annotation, where)
        optional, _ = _is_optional(annotation)
        if param.default is not param.empty:
            if _jsonable(param.default):
                schema["default"] = _json_default(param.default)
        elif not optional:
            required.append(param.name)
        if param_docs.get(param.name):
            schema["description"] = param_docs[param.name]
        properties[param.name] = schema
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    out: dict[str, Any] = {"name": name, "parameters": parameters}
    if summary:
        out["description"] = summary
    return out


@functools.lru_cache(maxsize=512)
def _tool_for_function(function: Callable[..., Any]) -> Tool:
    return Tool.from_function(function)


def as_tool(item: Any) -> Tool:
    """A Tool from a function, a ready-made schema dict or a Tool."""
    if isinstance(item, Tool):
        return item
    if isinstance(item, Mapping):
        return Tool.from_schema(item)
    if callable(item):
        try:
            return _tool_for_function(item)
        except TypeError as exc:
            if "unhashable" not in str(exc):
                raise
            return Tool.from_function(item)
    raise TypeError("a tool must be a function, a Tool or a schema dict, "
                    f"not {type(item).__name__}")


def tool_schemas(tools: Iterable[Any]) -> list[dict[str, Any]]:
    """The wire schemas for `tools=`: dicts pass through unchanged;
    functions and Tools are converted."""
    return [item if isinstance(item, dict) else as_tool(item).to_schema() for item in tools]


# -- checking and running calls --------------------------------------------------------------------

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
    properties, items, additionalProperties, anyOf/oneOf. Returns the problems found (empty when it
    fits)."""
    problems: list[str] = []
    expected = schema.get("type")
    if expected is not None:
        kinds = expected if isinstance(expected, list) else [expected]
        if not any(_JSON_TYPES.get(kind, lambda v: True)(value) for kind in kinds):
            problems.append(f"{path} should be {' or '.join(kinds)}, "
                            f"got {type(value).__name__} {value!r:.80}")
            return problems
    if "enum" in schema and not any(_same_json(value, option) for option in schema["enum"]):
        problems.append(f"{path} must be one of {schema['enum']!r}, got {value!r:.80}")
    if schema.get("anyOf") and all(validate_arguments(option, value, path)
                                   for option in schema["anyOf"]):
        problems.append(f"{path} matches none of the allowed shapes")
    if schema.get("oneOf"):
        matches = sum(not validate_arguments(option, value, path) for option in schema["oneOf"])
        if matches != 1:
            problems.append(f"{path} must match exactly one of the allowed shapes, "
                            f"matches {matches}")
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for name in schema.get("required") or ():
            if name not in value:
                problems.append(f"{path} is missing the required {name!r}")
        for name, item in value.items():
            if name in properties:
                problems.extend(validate_arguments(properties[name], item, f"{path}.{name}"))
            else:
                extra = schema.get("additionalProperties")
                if extra is False:
                    problems.append(f"{path} has an unexpected {name!r}")
                elif isinstance(extra, Mapping):
                    problems.extend(validate_arguments(extra, item, f"{path}.{name}"))
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            problems.extend(validate_arguments(schema["items"], item, f"{path}[{i}]"))
    return problems


def _convert(annotation: Any, value: Any) -> Any:
    """Turn JSON values into the Python types the function declared
    (Enums, dataclasses, nested ones)."""
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
        hints = typing.get_type_hints(annotation)
        kwargs = {k: _convert(hints.get(k, Any), v) for k, v in value.items()}
        # Optional fields without a default are not required
        for f in dataclasses.fields(annotation):
            if (f.name not in kwargs and f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING
                    and _is_optional(hints.get(f.name, Any))[0]):
                kwargs[f.name] = None
        return annotation(**kwargs)
    args = typing.get_args(annotation)
    if origin in (list, Sequence, typing.Sequence) and args and isinstance(value, list):
        return [_convert(args[0], item) for item in value]
    if origin is tuple and args and isinstance(value, list):
        return tuple(_convert(args[0], item) for item in value)
    if origin in (dict, Mapping) and len(args) == 2 and isinstance(value, dict):
        return {k: _convert(args[1], v) for k, v in value.items()}
    return value


def _json_fallback(value: Any) -> Any:
    converted = _json_default(value)
    return str(value) if converted is value else converted


def _serialise(value: Any) -> str:
    """A tool's return value as sent to the model: a str as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, default=_json_fallback).decode()


def _is_async(function: Callable[..., Any]) -> bool:
    """An async function, or an object whose __call__ is one."""
    return (inspect.iscoroutinefunction(function)
            or inspect.iscoroutinefunction(type(function).__call__))


def _drop_optional_nulls(parameters: Mapping[str, Any],
                         arguments: dict[str, Any]) -> dict[str, Any]:
    """Models often send `null` for an optional parameter they mean to leave out: treat it so,
    unless the parameter's schema itself allows null."""
    required = set(parameters.get("required") or ())
    properties = parameters.get("properties") or {}
    return {name: value for name, value in arguments.items()
            if value is not None or name in required
            or not validate_arguments(properties.get(name, {}), None)}


async def _run_one(tool: Tool | None, call: ToolCall, available: Sequence[str],
                   default_timeout: float | None) -> ToolResult:
    started = time.perf_counter()

    def done(result: Any, error: str | None) -> ToolResult:
        content = f"Error: {error}" if error is not None else _serialise(result)
        return ToolResult(call.name, call.arguments, result, error, time.perf_counter() - started,
                          content, call.id)

    if tool is None:
        return done(None, f"unknown tool {call.name!r}; "
                          f"the tools are: {', '.join(available) or '(none)'}")
    if tool.function is None:
        return done(None, f"tool {call.name!r} has no Python function to run it")
    arguments = _drop_optional_nulls(tool.parameters, call.arguments)
    problems = validate_arguments(tool.parameters, arguments)
    if problems:
        return done(None, f"invalid arguments for {call.name!r}: " + "; ".join(problems))
    function = tool.function
    try:
        hints = (_parameter_hints(function, call.name)
                 if inspect.isfunction(function) or inspect.ismethod(function) else {})
        signature = inspect.signature(function)
        kwargs = {}
        takes_extra = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        for name, value in arguments.items():
            if name not in signature.parameters and not takes_extra:
                return done(None, f"invalid arguments for {call.name!r}: "
                                  f"unexpected argument {name!r}")
            kwargs[name] = _convert(hints.get(name, Any), value)
        for name, param in signature.parameters.items():
            if (name not in kwargs and param.default is param.empty
                    and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
                    and _is_optional(hints.get(name, Any))[0]):
                kwargs[name] = None
    except (TypeError, ValueError) as exc:
        return done(None, f"invalid arguments for {call.name!r}: {exc}")
    timeout = tool.timeout if tool.timeout is not None else default_timeout
    try:
        pending = (function(**kwargs) if _is_async(function)
                   else asyncio.to_thread(function, **kwargs))
        result = await asyncio.wait_for(pending, timeout) if timeout else await pending
        if inspect.isawaitable(result):
            result = await (asyncio.wait_for(result, timeout) if timeout else result)
    except asyncio.TimeoutError:
        return done(None, f"tool {call.name!r} did not finish within {timeout}s")
    except Exception as exc:
        return done(None, f"{type(exc).__name__}: {exc}")
    return done(result, None)


async def run_tool_calls(tools: Iterable[Any], calls: Sequence[ToolCall], *,
                         timeout: float | None = None) -> list[ToolResult]:
    """Run one round of tool calls concurrently (async tools awaited, sync ones in a thread) and
    return the results in the order the model made the calls. A call never reaches a function whose
    name was not registered; failures become ToolResults with `error` set."""
    registry: dict[str, Tool] = {}
    for item in tools:
        tool = as_tool(item)
        registry[tool.name] = tool
    names = sorted(registry)
    return list(await asyncio.gather(*(_run_one(registry.get(call.name), call, names, timeout)
                                       for call in calls)))
