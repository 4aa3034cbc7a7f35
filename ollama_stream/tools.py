"""Python functions as tools: a function's schema from its signature and docstring, and running
one round of tool calls.

No network here. `Tool.from_function(f)` builds the schema Ollama wants from the type hints and the
docstring (the types themselves are `ollama_stream.schema`'s job); `run_tool_calls` checks each
call's arguments, executes the round concurrently and returns `ToolResult`s.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import time
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from .schema import (
    _convert,
    _is_optional,
    _json_default,
    _jsonable,
    _resolve_strings,
    parse_docstring,
    schema_for_annotation,
    validate_arguments,
)
from .types import ToolCall

__all__ = ["Tool", "ToolResult", "as_tool", "parse_docstring", "run_tool_calls",
           "schema_for_annotation", "schema_for_function", "tool_schemas", "validate_arguments"]


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


# -- running calls ---------------------------------------------------------------------------------

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
