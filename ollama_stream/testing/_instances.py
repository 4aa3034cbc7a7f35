"""The fake's answer to a request with `format`: a valid instance of the JSON Schema (or a JSON
object for "json"), written as a model writes JSON, so that it streams token by token.

Rules: deterministic (the same schema gives the same instance); every property is filled in, not
only the required ones, so that partial values have something to show; `$ref`s into `$defs` or
`definitions` are followed (pydantic's schemas use them), a recursive one only while it can stop;
an unknown keyword is ignored, never an error: what cannot be satisfied (a `pattern`) is skipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["instance_of", "structured_content"]

_STOP = 12  # nesting from where only what is required is filled in (so recursive schemas end)
_MAX_DEPTH = 48  # where a $ref is no longer followed
_FORMATS = {"date-time": "2024-05-06T07:08:09Z", "date": "2024-05-06", "time": "07:08:09",
            "email": "ada@example.com", "uri": "https://example.com/",
            "url": "https://example.com/", "uuid": "12345678-1234-5678-1234-567812345678",
            "ipv4": "192.0.2.1", "ipv6": "2001:db8::1", "hostname": "example.com",
            "duration": "P1D"}


def structured_content(format: object, said: str) -> str:
    """The content of a reply to `format` ("json" or a schema): `{"answer": "You said: ..."}` for
    "json", an instance of the schema otherwise, as JSON with spaces after `:` and `,`."""
    if isinstance(format, Mapping):
        value = instance_of(format, root=format, key="text", said=said)
    else:
        value = {"answer": said}
    return json.dumps(value, ensure_ascii=False)


def instance_of(schema: Any, *, root: Any = None, key: str = "text", said: str = "",
                index: int = 0, depth: int = 0) -> Any:
    """A value valid under `schema`; `key` (the property or array it fills) names its strings,
    `index` tells the items of an array apart (for `uniqueItems`)."""
    root = schema if root is None else root
    if not isinstance(schema, Mapping):
        return said or key if schema is not False else None
    if isinstance(schema.get("$ref"), str):
        target = _resolve(root, schema["$ref"])
        if target is not None and depth < _MAX_DEPTH:
            merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            return instance_of(merged, root=root, key=key, said=said, index=index,
                               depth=depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][index % len(schema["enum"])]
    for combinator in ("anyOf", "oneOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            chosen = next((o for o in options if isinstance(o, Mapping)
                           and o.get("type") != "null"), options[0])
            rest = {k: v for k, v in schema.items() if k != combinator}
            return instance_of({**rest, **chosen} if isinstance(chosen, Mapping) else chosen,
                               root=root, key=key, said=said, index=index, depth=depth + 1)
    if isinstance(schema.get("allOf"), list):
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            if isinstance(part, Mapping):
                merged = _merge(merged, _resolved(root, part))
        return instance_of(merged, root=root, key=key, said=said, index=index, depth=depth + 1)
    kind = _kind(schema)
    if kind == "object":
        return _object(schema, root, said, depth)
    if kind == "array":
        return _array(schema, root, key, depth)
    if kind in ("integer", "number"):
        return _number(schema, kind, index)
    if kind == "boolean":
        return index % 2 == 0
    if kind == "null":
        return None
    return _string(schema, key, said, index)


def _kind(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
    if kind is None:
        if "properties" in schema or "additionalProperties" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        return "string"
    return str(kind)


def _object(schema: Mapping[str, Any], root: Any, said: str, depth: int) -> dict[str, Any]:
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    out: dict[str, Any] = {}
    for name, sub in properties.items():
        if depth >= _STOP and name not in required:
            continue  # a recursive schema stops where it may
        out[name] = instance_of(sub, root=root, key=name, said="", depth=depth + 1)
    extra = schema.get("additionalProperties")
    if not properties and isinstance(extra, Mapping) and depth < _STOP:
        out["key"] = instance_of(extra, root=root, key="key", depth=depth + 1)
    if not out and not properties and not extra and said:
        out["answer"] = said  # a bare {"type": "object"}
    return out


def _array(schema: Mapping[str, Any], root: Any, key: str, depth: int) -> list[Any]:
    prefix: list[Any] = _typed(schema.get("prefixItems"), list, [])
    items = schema.get("items")
    least: int = _typed(schema.get("minItems"), int, 0)
    most: int | None = _typed(schema.get("maxItems"), int, None)
    count = max(least, len(prefix), 0 if depth >= _STOP else 2)
    if items is False or (items is None and prefix):
        count = len(prefix)
    if most is not None:
        count = min(count, most)
    if schema.get("uniqueItems") and isinstance(items, Mapping):
        choices = items.get("enum")
        if isinstance(choices, list) or items.get("type") == "boolean":
            count = min(count, len(choices) if isinstance(choices, list) else 2)
    out = []
    for i in range(count):
        sub = prefix[i] if i < len(prefix) else items if isinstance(items, Mapping) else {}
        out.append(instance_of(sub, root=root, key=key, index=i, depth=depth + 1))
    return out


def _number(schema: Mapping[str, Any], kind: str, index: int) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    value: float = (1 if kind == "integer" else 1.5) + index
    if isinstance(low, (int, float)):
        value = max(value, low + (1 if "exclusiveMinimum" in schema and "minimum" not in schema
                                  else 0))
    if isinstance(high, (int, float)):
        value = min(value, high - (1 if "exclusiveMaximum" in schema and "maximum" not in schema
                                   else 0))
    step = schema.get("multipleOf")
    if isinstance(step, (int, float)) and step > 0:
        value = step * max(1, round(value / step))
    return int(value) if kind == "integer" else float(value)


def _string(schema: Mapping[str, Any], key: str, said: str, index: int) -> str:
    text = _FORMATS.get(str(schema.get("format")), said or (f"{key} {index + 1}" if index
                                                            else key))
    least, most = schema.get("minLength"), schema.get("maxLength")
    if isinstance(least, int) and len(text) < least:
        text = text + "x" * (least - len(text))
    if isinstance(most, int) and len(text) > most:
        text = text[:most]
    return text


def _typed(value: Any, kind: type, default: Any) -> Any:
    return value if isinstance(value, kind) else default


def _resolve(root: Any, ref: str) -> Mapping[str, Any] | None:
    if not ref.startswith("#"):
        return None
    node = root
    for part in ref[1:].split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, Mapping) else None


def _resolved(root: Any, schema: Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(schema.get("$ref"), str):
        return _resolve(root, schema["$ref"]) or {}
    return schema


def _merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """allOf's parts as one schema: properties and required joined, the rest from the later."""
    out = {**a, **b}
    if "properties" in a or "properties" in b:
        out["properties"] = {**(a.get("properties") or {}), **(b.get("properties") or {})}
    if "required" in a or "required" in b:
        out["required"] = [*(a.get("required") or ()), *(b.get("required") or ())]
    return out
