"""JSON schemas from Python functions (ollama_stream.tools): the signature -> schema table,
docstring parsing, schema validity against jsonschema, unsupported annotations, the Tool wrapper and
validate_arguments."""

import enum
import json
import sys
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Optional, TypedDict, Union

import jsonschema
import pytest

from ollama_stream import ToolCall
from ollama_stream.tools import (
    Tool,
    as_tool,
    parse_docstring,
    run_tool_calls,
    schema_for_annotation,
    schema_for_function,
    tool_schemas,
    validate_arguments,
)

# -- types used by the table -----------------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclass
class Point:
    """A point on the map.

    Args:
        lat: Latitude in degrees,
            north is positive.
        lon: Longitude in degrees.
        label (str): Shown next to the pin.
    """

    lat: float
    lon: float
    label: str = "pin"
    tags: list[str] = field(default_factory=list)
    note: Optional[str] = None  # noqa: UP045


POINT_SCHEMA = {
    "type": "object",
    "properties": {
        "lat": {"type": "number", "description": "Latitude in degrees, north is positive."},
        "lon": {"type": "number", "description": "Longitude in degrees."},
        "label": {"type": "string", "default": "pin", "description": "Shown next to the pin."},
        "tags": {"type": "array", "items": {"type": "string"}},
        "note": {"type": "string", "default": None},
    },
    "required": ["lat", "lon"],
}


@dataclass
class Route:
    start: Point
    end: Point
    mode: Color = Color.GREEN
    stops: int = 0


ROUTE_SCHEMA = {
    "type": "object",
    "properties": {
        "start": POINT_SCHEMA,
        "end": POINT_SCHEMA,
        "mode": {"type": "string", "enum": ["red", "green"], "default": "green"},
        "stops": {"type": "integer", "default": 0},
    },
    "required": ["start", "end"],
}


class Movie(TypedDict):
    title: str
    year: int


class MovieFilter(TypedDict, total=False):
    genre: str
    after: int


MOVIE_SCHEMA = {"type": "object",
                "properties": {"title": {"type": "string"}, "year": {"type": "integer"}},
                "required": ["title", "year"]}


@dataclass
class Node:
    children: list["Node"]


class Opaque:
    pass


# -- module-level functions for the table ----------------------------------------------------------


def f_str(x: str) -> None: ...
def f_int(x: int) -> None: ...
def f_float(x: float) -> None: ...
def f_bool(x: bool) -> None: ...
def f_list_int(x: list[int]) -> None: ...
def f_bare_list(x: list) -> None: ...  # type: ignore[type-arg]
def f_bare_dict(x: dict) -> None: ...  # type: ignore[type-arg]
def f_dict_str_float(x: dict[str, float]) -> None: ...
def f_dict_str_any(x: dict[str, Any]) -> None: ...
def f_tuple_var(x: tuple[str, ...]) -> None: ...
def f_tuple_pair(x: tuple[int, str]) -> None: ...
def f_tuple_typing(x: typing.Tuple[float, bool]) -> None: ...  # noqa: UP006
def f_tuple_nested(x: tuple[Point, Literal["a", "b"]]) -> None: ...
def f_tuple_empty(x: tuple[()]) -> None: ...
def f_tuple_bare(x: tuple) -> None: ...  # type: ignore[type-arg]
def f_literal(x: Literal["a", "b"]) -> None: ...
def f_literal_int(x: Literal[1, 2, 3] = 2) -> None: ...
def f_literal_mixed(x: Literal[1, "x"]) -> None: ...
def f_literal_enum_member(x: Literal[Color.RED]) -> None: ...
def f_enum(x: Color = Color.RED) -> None: ...
def f_enum_required(x: Color) -> None: ...
def f_int_enum(x: Level = Level.HIGH) -> None: ...
def f_optional(x: Optional[int]) -> None: ...  # noqa: UP045
def f_pipe_none(x: int | None) -> None: ...
def f_default(x: int = 5) -> None: ...
def f_optional_none(x: Optional[str] = None) -> None: ...  # noqa: UP045
def f_any(x: Any) -> None: ...
def f_union(x: Union[int, str]) -> None: ...  # noqa: UP007
def f_optional_union(x: Union[int, str, None]) -> None: ...  # noqa: UP007
def f_annotated(x: Annotated[str, "the name"]) -> None: ...
def f_annotated_non_str(x: Annotated[int, 42]) -> None: ...
def f_dataclass(where: Point) -> None: ...
def f_nested_dataclass(route: Route) -> None: ...
def f_list_dataclass(points: list[Point]) -> None: ...
def f_typeddict(movie: Movie) -> None: ...
def f_typeddict_partial(query: MovieFilter) -> None: ...
def f_dict_typeddict(x: dict[str, Movie]) -> None: ...
def f_varargs(x: int, *args: int, **kwargs: str) -> None: ...
def f_nothing_required(a: int = 1, b: Optional[str] = None,  # noqa: UP045
                       c: int | None = None) -> None: ...
def f_no_params() -> None: ...
def f_order(b: int, a: str, c: bool = False, /, *, d: float) -> None: ...


def _p(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


def _r(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


GOOD_POINT = {"lat": 48.85, "lon": 2.35}
PAIR = {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "minItems": 2,
        "maxItems": 2, "items": False}

# (function, expected parameters, a valid argument dict, an invalid one)
TABLE = [
    pytest.param(f_str, _r(["x"], x={"type": "string"}), {"x": "hi"}, {"x": 1}, id="str"),
    pytest.param(f_int, _r(["x"], x={"type": "integer"}), {"x": 3}, {"x": 3.5}, id="int"),
    pytest.param(f_float, _r(["x"], x={"type": "number"}), {"x": 1}, {"x": "1.0"}, id="float"),
    pytest.param(f_bool, _r(["x"], x={"type": "boolean"}), {"x": False}, {"x": 0}, id="bool"),
    pytest.param(f_list_int, _r(["x"], x={"type": "array", "items": {"type": "integer"}}),
                 {"x": [1, 2]}, {"x": [1, "2"]}, id="list[int]"),
    pytest.param(f_bare_list, _r(["x"], x={"type": "array"}), {"x": [1, "a", None]}, {"x": {}},
                 id="bare-list"),
    pytest.param(f_bare_dict, _r(["x"], x={"type": "object"}), {"x": {"k": [1]}}, {"x": []},
                 id="bare-dict"),
    pytest.param(f_dict_str_float,
                 _r(["x"], x={"type": "object", "additionalProperties": {"type": "number"}}),
                 {"x": {"a": 1.5, "b": 2}}, {"x": {"a": "1.5"}}, id="dict[str,float]"),
    pytest.param(f_dict_str_any, _r(["x"], x={"type": "object"}), {"x": {"a": None}},
                 {"x": "a"}, id="dict[str,Any]"),
    pytest.param(f_tuple_var, _r(["x"], x={"type": "array", "items": {"type": "string"}}),
                 {"x": ["a", "b"]}, {"x": ["a", 2]}, id="tuple[str,...]"),
    pytest.param(f_tuple_pair, _r(["x"], x=PAIR), {"x": [1, "a"]}, {"x": [1, "a", 2]},
                 id="tuple[int,str]-too-long"),
    pytest.param(f_tuple_typing,
                 _r(["x"], x={"type": "array", "prefixItems": [{"type": "number"},
                                                                {"type": "boolean"}],
                              "minItems": 2, "maxItems": 2, "items": False}),
                 {"x": [1, True]}, {"x": [1.5]}, id="Tuple[float,bool]-too-short"),
    pytest.param(f_tuple_nested,
                 _r(["x"], x={"type": "array",
                              "prefixItems": [POINT_SCHEMA, {"type": "string", "enum": ["a", "b"]}],
                              "minItems": 2, "maxItems": 2, "items": False}),
                 {"x": [GOOD_POINT, "b"]}, {"x": [GOOD_POINT, "c"]}, id="tuple[dataclass,Literal]"),
    pytest.param(f_tuple_empty, _r(["x"], x={"type": "array", "maxItems": 0}), {"x": []},
                 {"x": [1]}, id="tuple[()]"),
    pytest.param(f_tuple_bare, _r(["x"], x={"type": "array"}), {"x": [1, "a"]}, {"x": "a"},
                 id="bare-tuple"),
    pytest.param(f_literal, _r(["x"], x={"type": "string", "enum": ["a", "b"]}), {"x": "b"},
                 {"x": "c"}, id="Literal[str]"),
    pytest.param(f_literal_int, _p(x={"type": "integer", "enum": [1, 2, 3], "default": 2}), {},
                 {"x": 4}, id="Literal[int]-default"),
    pytest.param(f_literal_mixed, _r(["x"], x={"enum": [1, "x"]}), {"x": "x"}, {"x": "y"},
                 id="Literal-mixed"),
    pytest.param(f_literal_enum_member, _r(["x"], x={"type": "string", "enum": ["red"]}),
                 {"x": "red"}, {"x": "green"}, id="Literal[Enum.member]"),
    pytest.param(f_enum, _p(x={"type": "string", "enum": ["red", "green"], "default": "red"}),
                 {"x": "green"}, {"x": "RED"}, id="Enum-str-default"),
    pytest.param(f_enum_required, _r(["x"], x={"type": "string", "enum": ["red", "green"]}),
                 {"x": "red"}, {}, id="Enum-str-required"),
    pytest.param(f_int_enum, _p(x={"type": "integer", "enum": [1, 2], "default": 2}), {"x": 1},
                 {"x": 3}, id="IntEnum"),
    pytest.param(f_optional, _p(x={"type": "integer"}), {}, {"x": "1"}, id="Optional[int]"),
    pytest.param(f_pipe_none, _p(x={"type": "integer"}), {"x": 1}, {"x": [1]}, id="int|None"),
    pytest.param(f_default, _p(x={"type": "integer", "default": 5}), {}, {"x": True}, id="default"),
    pytest.param(f_optional_none, _p(x={"type": "string", "default": None}), {"x": "s"}, {"x": 1},
                 id="Optional[str]=None"),
    pytest.param(f_any, _r(["x"], x={}), {"x": [None, {"a": 1}]}, {}, id="Any"),
    pytest.param(f_union, _r(["x"], x={"anyOf": [{"type": "integer"}, {"type": "string"}]}),
                 {"x": "a"}, {"x": 1.5}, id="Union[int,str]"),
    pytest.param(f_optional_union, _p(x={"anyOf": [{"type": "integer"}, {"type": "string"}]}),
                 {"x": 1}, {"x": False}, id="Union[int,str,None]"),
    pytest.param(f_annotated, _r(["x"], x={"type": "string", "description": "the name"}),
                 {"x": "Ann"}, {"x": None}, id="Annotated-description"),
    pytest.param(f_annotated_non_str, _r(["x"], x={"type": "integer"}), {"x": 1}, {"x": "1"},
                 id="Annotated-non-str-metadata"),
    pytest.param(f_dataclass, _r(["where"], where=POINT_SCHEMA), {"where": GOOD_POINT},
                 {"where": {"lat": 1.0}}, id="dataclass"),
    pytest.param(f_nested_dataclass, _r(["route"], route=ROUTE_SCHEMA),
                 {"route": {"start": GOOD_POINT, "end": {"lat": 0, "lon": 0, "tags": ["x"]},
                            "mode": "red"}},
                 {"route": {"start": GOOD_POINT, "end": {"lat": 0, "lon": "east"}}},
                 id="nested-dataclass"),
    pytest.param(f_list_dataclass, _r(["points"], points={"type": "array", "items": POINT_SCHEMA}),
                 {"points": [GOOD_POINT, {"lat": 1, "lon": 2, "label": "b"}]},
                 {"points": [GOOD_POINT, {"lat": 1, "lon": 2, "label": 3}]}, id="list[dataclass]"),
    pytest.param(f_typeddict, _r(["movie"], movie=MOVIE_SCHEMA),
                 {"movie": {"title": "Heat", "year": 1995}},
                 {"movie": {"title": "Heat"}}, id="TypedDict-total"),
    pytest.param(f_typeddict_partial,
                 _r(["query"], query={"type": "object",
                                      "properties": {"genre": {"type": "string"},
                                                     "after": {"type": "integer"}}}),
                 {"query": {}}, {"query": {"after": "1990"}}, id="TypedDict-total=False"),
    pytest.param(f_dict_typeddict,
                 _r(["x"], x={"type": "object", "additionalProperties": MOVIE_SCHEMA}),
                 {"x": {"a": {"title": "A", "year": 1}}}, {"x": {"a": {"title": "A", "year": "1"}}},
                 id="dict[str,TypedDict]"),
    pytest.param(f_varargs, _r(["x"], x={"type": "integer"}), {"x": 1}, {},
                 id="*args-**kwargs-left-out"),
    pytest.param(f_nothing_required,
                 _p(a={"type": "integer", "default": 1}, b={"type": "string", "default": None},
                    c={"type": "integer", "default": None}),
                 {}, {"a": "one"}, id="nothing-required"),
    pytest.param(f_no_params, _p(), {}, [], id="no-parameters"),
    pytest.param(f_order,
                 _r(["b", "a", "d"], b={"type": "integer"}, a={"type": "string"},
                    c={"type": "boolean", "default": False}, d={"type": "number"}),
                 {"b": 1, "a": "x", "d": 0.5}, {"b": 1, "a": "x"}, id="order-kept"),
]


def _property_orders(schema: Any) -> list[list[str]]:
    """The key order of every `properties` dict, depth first (dict equality ignores order)."""
    out: list[list[str]] = []
    if isinstance(schema, dict):
        if isinstance(schema.get("properties"), dict):
            out.append(list(schema["properties"]))
        for value in schema.values():
            out.extend(_property_orders(value))
    elif isinstance(schema, list):
        for value in schema:
            out.extend(_property_orders(value))
    return out


@pytest.mark.parametrize(("function", "expected", "valid", "invalid"), TABLE)
def test_parameters_schema(function: Any, expected: dict[str, Any], valid: Any,
                           invalid: Any) -> None:
    schema = schema_for_function(function)
    assert schema["name"] == function.__name__
    assert schema["parameters"] == expected
    assert _property_orders(schema["parameters"]) == _property_orders(expected)
    if "required" not in expected:
        assert "required" not in schema["parameters"]  # absent, not []


@pytest.mark.parametrize(("function", "expected", "valid", "invalid"), TABLE)
def test_table_schemas_are_valid_json_schema(function: Any, expected: dict[str, Any], valid: Any,
                                             invalid: Any) -> None:
    parameters = schema_for_function(function)["parameters"]
    jsonschema.Draft202012Validator.check_schema(parameters)
    json.dumps(parameters)  # plain JSON, nothing Python-only left in it


@pytest.mark.parametrize(("function", "expected", "valid", "invalid"), TABLE)
def test_table_examples_agree_with_jsonschema(function: Any, expected: dict[str, Any], valid: Any,
                                              invalid: Any) -> None:
    parameters = schema_for_function(function)["parameters"]
    jsonschema.validate(valid, parameters, cls=jsonschema.Draft202012Validator)
    assert validate_arguments(parameters, valid) == []
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(invalid, parameters, cls=jsonschema.Draft202012Validator)
    problems = validate_arguments(parameters, invalid)
    assert problems
    assert all(p.startswith("arguments") for p in problems)


def test_table_covers_every_row_once() -> None:
    functions = [row.values[0] for row in TABLE]
    assert len(functions) == len(set(functions))
    assert len({row.id for row in TABLE}) == len(TABLE)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="typing.NotRequired / Required are 3.11+")
def test_typeddict_not_required_and_required() -> None:
    from typing import NotRequired, Required

    class Total(TypedDict):
        title: str
        year: NotRequired[int]

    class Partial(TypedDict, total=False):
        title: Required[str]
        year: int

    for cls in (Total, Partial):
        assert schema_for_annotation(cls, "x") == {
            "type": "object",
            "properties": {"title": {"type": "string"}, "year": {"type": "integer"}},
            "required": ["title"]}


def test_typeddict_optional_value_is_not_required_and_docstring_describes_keys() -> None:
    class Query(TypedDict):
        """A search.

        Args:
            text: What to look for.
            page: Which page.
        """

        text: str
        page: Optional[int]  # noqa: UP045

    assert schema_for_annotation(Query, "x") == {
        "type": "object",
        "properties": {"text": {"type": "string", "description": "What to look for."},
                       "page": {"type": "integer", "description": "Which page."}},
        "required": ["text"]}


def test_dataclass_without_docstring_has_no_field_descriptions() -> None:
    @dataclass
    class Plain:
        a: int
        b: str = "x"

    # the generated __doc__ "Plain(a: int, b: str = 'x')" must not be read as a docstring
    assert Plain.__doc__ and Plain.__doc__.startswith("Plain(")
    assert schema_for_annotation(Plain, "x") == {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "string", "default": "x"}},
        "required": ["a"]}


def test_dataclass_field_order_and_default_factory() -> None:
    @dataclass
    class Ordered:
        zeta: int
        alpha: list[int] = field(default_factory=lambda: [1])
        mid: float = 0.5

    schema = schema_for_annotation(Ordered, "x")
    assert list(schema["properties"]) == ["zeta", "alpha", "mid"]
    # factory not recorded
    assert schema["properties"]["alpha"] == {"type": "array", "items": {"type": "integer"}}
    assert schema["properties"]["mid"] == {"type": "number", "default": 0.5}
    assert schema["required"] == ["zeta"]


def test_non_json_default_is_left_out() -> None:
    sentinel = Opaque()

    def f(x: Any = sentinel, y: int = 3) -> None: ...

    assert schema_for_function(f)["parameters"] == _p(x={}, y={"type": "integer", "default": 3})

    @dataclass
    class Holder:
        x: Any = sentinel

    assert schema_for_annotation(Holder, "h") == _p(x={})


def test_dataclass_attributes_section_describes_fields() -> None:
    @dataclass
    class Pin:
        """A pin.

        Attributes:
            lat: Latitude.
            lon: Longitude.
        """

        lat: float
        lon: float

    schema = schema_for_annotation(Pin, "x")
    assert schema["properties"]["lat"].get("description") == "Latitude."
    assert schema["properties"]["lon"].get("description") == "Longitude."


def test_annotated_optional_is_not_required() -> None:
    def f(x: Annotated[Optional[int], "how many"]) -> None: ...  # noqa: UP045

    assert schema_for_function(f)["parameters"] == _p(
        x={"type": "integer", "description": "how many"})


# -- docstrings ------------------------------------------------------------------------------------


def google_style(city: str, days: int = 3, units: str = "metric", verbose: bool = False) -> str:
    """Get the weather forecast
    for a city.

    A longer explanation that is not part of the summary.

    Args:
        city: The city name,
            for example "Paris".
        days (int): How many days
            to forecast.
        units (str, optional): Either metric or imperial.

    Returns:
        The forecast as text. verbose: not a parameter description.

    Raises:
        ValueError: If the city is unknown.

    Examples:
        >>> google_style("Paris")
        units: also not a parameter description
    """
    return city


def rest_style(query: str, limit: int = 10, exact: bool = False) -> list[str]:
    """Search the index.

    :param query: What to look for,
        in plain words.
    :type query: str
    :param int limit: At most this many hits.
    :param bool exact: Match the whole phrase.
    :returns: The hits.
        exact: not a parameter description
    :rtype: list[str]
    :raises KeyError: Never.
    """
    return []


def numpy_style(x: float, y: float = 0.0, z: int = 0) -> float:
    """Add two numbers.

    Parameters
    ----------
    x : float
        The first number,
        never NaN.
    y : float, optional
        The second number.
    z
        No type given.

    Returns
    -------
    float
        The sum. y : not a parameter.

    Raises
    ------
    ValueError
        If x is NaN.

    Examples
    --------
    >>> numpy_style(1.0)
    1.0
    """
    return x + y


def no_docstring(x: int) -> int:
    return x


def only_args(x: int) -> int:
    """
    Args:
        x: The x.
    """
    return x


DOCSTRING_CASES = [
    pytest.param(google_style, "Get the weather forecast for a city.",
                 {"city": 'The city name, for example "Paris".',
                  "days": "How many days to forecast.",
                  "units": "Either metric or imperial."}, id="google"),
    pytest.param(rest_style, "Search the index.",
                 {"query": "What to look for, in plain words.", "limit": "At most this many hits.",
                  "exact": "Match the whole phrase."}, id="rest"),
    pytest.param(numpy_style, "Add two numbers.",
                 {"x": "The first number, never NaN.", "y": "The second number.",
                  "z": "No type given."}, id="numpy"),
]


@pytest.mark.parametrize(("function", "summary", "descriptions"), DOCSTRING_CASES)
def test_docstring_summary_and_parameter_descriptions(function: Any, summary: str,
                                                      descriptions: dict[str, str]) -> None:
    schema = schema_for_function(function)
    assert schema["description"] == summary
    got = {name: prop["description"] for name, prop in schema["parameters"]["properties"].items()
           if "description" in prop}
    assert got == descriptions


@pytest.mark.parametrize(("function", "summary", "descriptions"), DOCSTRING_CASES)
def test_parse_docstring_directly(function: Any, summary: str,
                                  descriptions: dict[str, str]) -> None:
    parsed_summary, params = parse_docstring(function.__doc__)
    assert parsed_summary == summary
    assert {k: v for k, v in params.items() if k in descriptions} == descriptions
    # nothing from Returns / Raises / Examples leaks into a real parameter
    leaks = ("forecast as text", "The hits.", "The sum.", ">>>", "KeyError", "Never.",
             "If x is NaN", "unknown", "not a parameter")
    assert not [(name, text) for name, text in params.items() for word in leaks if word in text]


def test_google_other_sections_do_not_leak() -> None:
    props = schema_for_function(google_style)["parameters"]["properties"]
    assert "description" not in props["verbose"]  # only named under Returns:
    assert props["units"]["description"] == "Either metric or imperial."
    assert "longer explanation" not in schema_for_function(google_style)["description"]


def test_rest_other_fields_do_not_leak() -> None:
    _, params = parse_docstring(rest_style.__doc__)
    assert params["query"] == "What to look for, in plain words."  # `:type query:` is not appended
    assert params["exact"] == "Match the whole phrase."  # `:returns:` continuation is not appended
    assert set(params) == {"query", "limit", "exact"}


def test_numpy_returns_section_does_not_leak() -> None:
    _, params = parse_docstring(numpy_style.__doc__)
    assert set(params) == {"x", "y", "z"}


def test_no_docstring_means_no_description_key() -> None:
    schema = schema_for_function(no_docstring)
    assert "description" not in schema
    assert "description" not in schema["parameters"]["properties"]["x"]
    assert Tool.from_function(no_docstring).to_schema() == {
        "type": "function",
        "function": {"name": "no_docstring", "parameters": _r(["x"], x={"type": "integer"})}}


def test_docstring_with_only_an_args_section_has_no_summary() -> None:
    schema = schema_for_function(only_args)
    assert "description" not in schema
    assert schema["parameters"]["properties"]["x"]["description"] == "The x."


@pytest.mark.parametrize(("doc", "expected"), [
    (None, ("", {})),
    ("", ("", {})),
    pytest.param("Args:\n    a: A.\n", ("", {"a": "A."})),
    ("One line.", ("One line.", {})),
    ("\n    Starts on the second line\n    and wraps.\n\n    More.\n",
     ("Starts on the second line and wraps.", {})),
    ("Summary.\nArgs:\n    a: A.\n", ("Summary.", {"a": "A."})),
    ("Summary.\n:param a: A.\n", ("Summary.", {"a": "A."})),
    ("Summary.\n\nReturns:\n    a: B.\n", ("Summary.", {})),
    ("Summary.\n\nArgs:\n    *args: Extra.\n    **kwargs: More.\n    a: A.\n",
     ("Summary.", {"args": "Extra.", "kwargs": "More.", "a": "A."})),
    ("S.\n\nArgs:\n    a (dict[str, int], optional): A\n        map: of things.\n    b: B.\n",
     ("S.", {"a": "A map: of things.", "b": "B."})),
    ("S.\n\nKeyword Args:\n    a: A.\n", ("S.", {"a": "A."})),
    ("S.\n\nArgs:\n    a: A.\nReturns:\n    b: B.\n", ("S.", {"a": "A."})),
    ("S.\n\nargs:\n    a: A.\n    b: B.\n", ("S.", {"a": "A.", "b": "B."})),
    ("args:\n    a: A.\n", ("", {"a": "A."})),
    ("S.\n\nARGUMENTS:\n    a: A.\nreturns:\n    b: B.\n", ("S.", {"a": "A."})),
    ("S.\n\nkeyword arguments:\n    a: A.\n", ("S.", {"a": "A."})),
    ("S.\n\nparameters\n----------\na : int\n    The a.\nreturns\n-------\nint\n",
     ("S.", {"a": "The a."})),
], ids=["none", "empty", "args-first-line", "one-line", "leading-newline",
        "args-right-after-summary", "param-right-after-summary", "returns-only", "star-args",
        "google-type-and-colon-continuation", "keyword-args", "returns-without-blank",
        "lowercase-args", "lowercase-args-first-line", "uppercase-and-lowercase-sections",
        "lowercase-keyword-arguments", "lowercase-numpy"])
def test_parse_docstring_table(doc: str | None, expected: tuple[str, dict[str, str]]) -> None:
    assert parse_docstring(doc) == expected


# -- unsupported annotations -----------------------------------------------------------------------


def takes_set(tags: set[int]) -> None: ...
def takes_class(thing: Opaque) -> None: ...
def takes_int_keys(scores: dict[int, str]) -> None: ...
def takes_untyped(x, y: int) -> None: ...  # type: ignore[no-untyped-def]
def takes_bad_field(where: Route, extra: list[Opaque]) -> None: ...
def takes_recursive(tree: Node) -> None: ...
def takes_unresolvable(x: "Missing") -> None: ...  # type: ignore[name-defined]  # noqa: F821


@pytest.mark.parametrize(("function", "pattern"), [
    (takes_set, r"parameter 'tags' of tool 'takes_set': sets are not JSON"),
    (takes_class, r"parameter 'thing' of tool 'takes_class': unsupported annotation .*Opaque"),
    (takes_int_keys, r"parameter 'scores' of tool 'takes_int_keys': object keys must be str"),
    (takes_untyped, r"parameter 'x' of tool 'takes_untyped' has no type annotation"),
    (takes_bad_field, r"parameter 'extra' of tool 'takes_bad_field': unsupported annotation"),
    (takes_recursive,
     r"parameter 'tree' of tool 'takes_recursive'(\.children)+: the type nests too deeply"),
    (takes_unresolvable, r"parameter 'x' of tool 'takes_unresolvable': cannot resolve"),
], ids=["set", "plain-class", "dict-int-keys", "no-annotation", "list-of-class", "recursive",
        "unresolvable"])
def test_unsupported_annotations_raise_type_error(function: Any, pattern: str) -> None:
    with pytest.raises(TypeError, match=pattern):
        schema_for_function(function)
    with pytest.raises(TypeError, match=pattern):
        Tool.from_function(function)
    with pytest.raises(TypeError, match=pattern):
        as_tool(function)


@dataclass
class Trail:
    stops: list["Point"]
    by_name: dict[str, list["Point"]]
    note: Annotated[list["Point"], "points of interest"]
    kind: Literal["Point", "line"] = "line"


def takes_forward_refs(trail: Trail, extra: list["Point"]) -> None: ...


def test_forward_references_inside_builtin_generics_resolve_on_every_python() -> None:
    # Python 3.10's get_type_hints leaves the "Point" of list["Point"] a string; 3.11+ resolves it.
    point = schema_for_annotation(Point, "p")
    points = {"type": "array", "items": point}
    trail = schema_for_annotation(Trail, "trail")
    assert trail["properties"]["stops"] == points
    assert trail["properties"]["by_name"] == {"type": "object", "additionalProperties": points}
    assert trail["properties"]["note"] == {**points, "description": "points of interest"}
    assert trail["properties"]["kind"] == {"type": "string", "enum": ["Point", "line"],
                                           "default": "line"}
    parameters = Tool.from_function(takes_forward_refs).to_schema()["function"]["parameters"]
    assert parameters["properties"]["extra"] == points
    assert parameters["properties"]["trail"] == trail


async def test_arguments_behind_forward_references_arrive_as_the_declared_types() -> None:
    seen: list[Any] = []

    def plan(trail: Trail, extra: list["Point"]) -> str:
        seen.extend([trail, extra])
        return "ok"

    stop = {"lat": 1, "lon": 2.5}
    arguments = {"trail": {"stops": [stop], "by_name": {"home": [stop]}, "note": []},
                 "extra": [stop]}
    [result] = await run_tool_calls([plan], [ToolCall("plan", arguments)])
    assert result.ok, result.error
    trail, extra = seen
    point = Point(1.0, 2.5)
    assert trail == Trail([point], {"home": [point]}, []) and extra == [point]


def test_unresolvable_return_annotation_does_not_matter() -> None:
    def local_return(x: int) -> "NotDefinedAnywhere":  # type: ignore[name-defined]  # noqa: F821
        return x

    assert schema_for_function(local_return)["parameters"] == _r(["x"], x={"type": "integer"})


def test_unsupported_dataclass_field_names_the_field() -> None:
    @dataclass
    class Box:
        size: int
        content: set[str]

    def pack(box: Box) -> None: ...

    with pytest.raises(TypeError,
                       match=r"^parameter 'box' of tool 'pack'\.content: sets are not JSON"):
        schema_for_function(pack)


def test_unresolvable_dataclass_field_raises_type_error() -> None:
    @dataclass
    class Local:
        x: "Missing"  # type: ignore[name-defined]  # noqa: F821

    def uses_local(p: Local) -> None: ...

    with pytest.raises(TypeError, match=r"parameter 'p' of tool 'uses_local'"):
        schema_for_function(uses_local)


def test_lambda_needs_a_name() -> None:
    with pytest.raises(TypeError, match=r"needs a name"):
        schema_for_function(lambda x: x)
    with pytest.raises(TypeError, match=r"needs a name"):
        as_tool(lambda: None)


@pytest.mark.parametrize("item", [42, "get_weather", None, [1]])
def test_non_tools_are_rejected(item: Any) -> None:
    with pytest.raises(TypeError, match=r"a tool must be a function, a Tool or a schema dict"):
        as_tool(item)
    with pytest.raises(TypeError, match=r"a tool must be a function, a Tool or a schema dict"):
        tool_schemas([item])


# -- Tool ------------------------------------------------------------------------------------------


RICH_SCHEMA: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "plan_trip",
        "description": "Plan a trip.",
        "parameters": {
            "type": "object",
            "$defs": {"place": {"type": "object", "properties": {"name": {"type": "string"}},
                                "required": ["name"], "additionalProperties": False}},
            "properties": {
                "stops": {"type": "array", "items": {"$ref": "#/$defs/place"}, "minItems": 1},
                "mode": {"type": "string", "enum": ["car", "train"], "default": "train"},
                "budget": {"anyOf": [{"type": "number", "minimum": 0}, {"type": "null"}]},
                "meta": {"type": "object",
                         "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
                         "x-vendor": {"keep": True}},
            },
            "required": ["stops"],
        },
    },
}


def test_from_function_to_schema() -> None:
    tool = Tool.from_function(google_style)
    assert tool.name == "google_style"
    assert tool.function is google_style
    assert tool.timeout is None
    expected = schema_for_function(google_style)
    assert tool.to_schema() == {"type": "function", "function": {
        "name": "google_style", "description": "Get the weather forecast for a city.",
        "parameters": expected["parameters"]}}
    assert list(tool.to_schema()["function"]) == ["name", "description", "parameters"]


def test_from_function_overrides() -> None:
    tool = Tool.from_function(google_style, name="forecast", description="Weather.", timeout=2.5)
    assert tool.timeout == 2.5
    assert tool.to_schema()["function"]["name"] == "forecast"
    assert tool.to_schema()["function"]["description"] == "Weather."
    blank = Tool.from_function(google_style, description="")
    assert "description" not in blank.to_schema()["function"]


def test_from_schema_round_trip() -> None:
    original = json.dumps(RICH_SCHEMA, sort_keys=True)
    tool = Tool.from_schema(RICH_SCHEMA)
    assert tool.name == "plan_trip"
    assert tool.description == "Plan a trip."
    assert tool.parameters == RICH_SCHEMA["function"]["parameters"]
    assert tool.function is None
    assert json.dumps(tool.to_schema(), sort_keys=True) == original
    assert json.dumps(RICH_SCHEMA, sort_keys=True) == original  # not mutated


def test_from_schema_rejects_malformed() -> None:
    for bad in ({}, {"type": "function"}, {"function": {"description": "x"}},
                {"function": {"name": 3}}):
        with pytest.raises(ValueError, match=r"a tool schema must look like"):
            Tool.from_schema(bad)


def test_from_schema_without_parameters_gets_empty_object() -> None:
    tool = Tool.from_schema({"type": "function", "function": {"name": "ping"}})
    assert tool.parameters == {"type": "object", "properties": {}}
    assert tool.to_schema() == {"type": "function", "function": {"name": "ping"}}


def test_as_tool_accepts_function_dict_and_tool() -> None:
    from_function = as_tool(google_style)
    assert isinstance(from_function, Tool)
    assert from_function.to_schema() == Tool.from_function(google_style).to_schema()
    from_dict = as_tool(RICH_SCHEMA)
    assert from_dict.name == "plan_trip"
    assert from_dict.to_schema() == RICH_SCHEMA
    tool = Tool("custom", "Does things.", _r(["a"], a={"type": "string"}))
    assert as_tool(tool) is tool


def test_tool_schemas_passes_dicts_through_unchanged() -> None:
    original = json.dumps(RICH_SCHEMA, sort_keys=True)
    tool = Tool("custom", parameters=_p())
    out = tool_schemas([RICH_SCHEMA, google_style, tool])
    assert out[0] is RICH_SCHEMA
    assert json.dumps(out[0], sort_keys=True) == original
    assert out[1] == Tool.from_function(google_style).to_schema()
    assert out[2] == {"type": "function", "function": {"name": "custom", "parameters": _p()}}
    simple = {"type": "function", "function": {"name": "x", "parameters": _p()}}
    assert tool_schemas([simple])[0] is simple


def test_tool_default_parameters_are_not_shared() -> None:
    a, b = Tool("a"), Tool("b")
    assert a.parameters == {"type": "object", "properties": {}}
    assert a.parameters is not b.parameters


@pytest.mark.parametrize("name", ["", None, 3])
def test_tool_needs_a_name(name: Any) -> None:
    with pytest.raises(ValueError, match=r"non-empty name"):
        Tool(name=name)


@pytest.mark.parametrize("timeout", [0, 0.0, -1, float("nan")])
def test_tool_timeout_must_be_positive(timeout: float) -> None:
    with pytest.raises(ValueError, match=r"timeout must be > 0"):
        Tool("t", timeout=timeout)
    with pytest.raises(ValueError, match=r"timeout must be > 0"):
        Tool.from_function(google_style, timeout=timeout)
    with pytest.raises(ValueError, match=r"timeout must be > 0"):
        Tool.from_schema(RICH_SCHEMA, timeout=timeout)


def test_tool_positive_timeout_is_kept() -> None:
    assert Tool("t", timeout=0.001).timeout == 0.001


# -- validate_arguments ----------------------------------------------------------------------------


WHERE = {"type": "object", "properties": {"where": {"type": "object", "properties": {
    "lat": {"type": "number"}, "lon": {"type": "number"}}, "required": ["lat", "lon"]}}}
TAGS = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}}
STRICT = {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False}
EITHER = {"anyOf": [{"type": "integer"}, {"type": "string", "enum": ["auto"]}]}


@pytest.mark.parametrize(("schema", "value", "problem"), [
    (_r(["city"], city={"type": "string"}), {}, "arguments is missing the required 'city'"),
    (_r(["a", "b"], a={"type": "string"}, b={"type": "string"}), {"a": "x"},
     "arguments is missing the required 'b'"),
    ({"type": "integer"}, "3", "arguments should be integer, got str '3'"),
    ({"type": "integer"}, True, "arguments should be integer, got bool True"),
    ({"type": "integer"}, 1.5, "arguments should be integer, got float 1.5"),
    ({"type": "integer"}, 1.0, None),
    ({"type": "integer"}, 7, None),
    ({"type": "number"}, 1, None),
    ({"type": "number"}, 2.5, None),
    ({"type": "number"}, False, "arguments should be number, got bool False"),
    ({"type": "boolean"}, 1, "arguments should be boolean, got int 1"),
    ({"type": "string"}, None, "arguments should be string, got NoneType None"),
    ({"type": "array"}, (1, 2), "arguments should be array, got tuple (1, 2)"),
    ({"type": "object"}, [], "arguments should be object, got list []"),
    ({"type": "null"}, None, None),
    ({"type": "string", "enum": ["a", "b"]}, "c", "arguments must be one of ['a', 'b'], got 'c'"),
    ({"type": "string", "enum": ["a", "b"]}, "a", None),
    ({"type": "integer", "enum": [1, 2]}, 2.0, None),
    (WHERE, {"where": {"lat": "north", "lon": 2}},
     "arguments.where.lat should be number, got str 'north'"),
    (WHERE, {"where": {"lat": 1}}, "arguments.where is missing the required 'lon'"),
    (WHERE, {"where": {"lat": 1, "lon": 2}}, None),
    (TAGS, {"tags": ["a", 2, "c"]}, "arguments.tags[1] should be string, got int 2"),
    (TAGS, {"tags": []}, None),
    (STRICT, {"a": 1, "b": 2}, "arguments has an unexpected 'b'"),
    (STRICT, {"a": 1}, None),
    ({"type": "object", "additionalProperties": {"type": "integer"}}, {"k": "v"},
     "arguments.k should be integer, got str 'v'"),
    ({"type": "object", "properties": {"a": {"type": "integer"}}},
     {"a": 1, "extra": "anything"}, None),
    (EITHER, 1.5, "arguments matches none of the allowed shapes"),
    (EITHER, "manual", "arguments matches none of the allowed shapes"),
    (EITHER, "auto", None),
    (EITHER, 3, None),
    ({"type": ["string", "null"]}, None, None),
    ({"type": ["string", "null"]}, "s", None),
    ({"type": ["string", "null"]}, 1, "arguments should be string or null, got int 1"),
    ({}, {"anything": [1, None]}, None),
    (PAIR, [1, "a"], None),
    (PAIR, [1.0, "a"], None),
    (PAIR, ["1", "a"], "arguments[0] should be integer, got str '1'"),
    (PAIR, [1, 2], "arguments[1] should be string, got int 2"),
    (PAIR, [1], "arguments should have at least 2 items, got 1"),
    (PAIR, [1, "a", None], "arguments should have at most 2 items, got 3"),
    ({"type": "array", "prefixItems": [{"type": "integer"}], "items": False}, [1, 2],
     "arguments should have at most 1 items, got 2"),
    ({"type": "array", "prefixItems": [{"type": "integer"}]}, [1, "open tuple"], None),
    ({"type": "array", "prefixItems": [{"type": "integer"}], "items": {"type": "string"}},
     [1, "a", 3], "arguments[2] should be string, got int 3"),
    ({"type": "array", "maxItems": 0}, [], None),
    ({"type": "array", "minItems": 1}, [], "arguments should have at least 1 items, got 0"),
])
def test_validate_arguments(schema: dict[str, Any], value: Any, problem: str | None) -> None:
    problems = validate_arguments(schema, value)
    if problem is None:
        assert problems == []
        jsonschema.validate(value, schema)
    else:
        assert problem in problems, problems
        assert len(problems) == 1, problems
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(value, schema)


def test_validate_arguments_reports_every_problem_with_its_path() -> None:
    schema = _r(["name", "where"], name={"type": "string"}, where=WHERE["properties"]["where"],
                tags=TAGS["properties"]["tags"])
    problems = validate_arguments(schema, {"where": {"lat": "x", "lon": None},
                                           "tags": [1, "ok", 3]})
    assert problems == [
        "arguments is missing the required 'name'",
        "arguments.where.lat should be number, got str 'x'",
        "arguments.where.lon should be number, got NoneType None",
        "arguments.tags[0] should be string, got int 1",
        "arguments.tags[2] should be string, got int 3",
    ]


def test_validate_arguments_custom_path_and_truncated_value() -> None:
    problems = validate_arguments({"type": "integer"}, "y" * 500, path="args.n")
    assert len(problems) == 1
    assert problems[0].startswith("args.n should be integer, got str 'yyy")
    assert len(problems[0]) < 150  # the value is cut to 80 characters


@pytest.mark.parametrize(("schema", "value"), [
    ({"enum": [1, "x"]}, True),
    ({"enum": [0, "x"]}, False),
])
def test_untyped_enum_does_not_accept_bools_for_numbers(schema: dict[str, Any], value: Any) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(value, schema)
    assert validate_arguments(schema, value) != []


def test_mixed_literal_schema_and_bool_argument() -> None:
    # the schema that Literal[1, "x"] produces is exactly the untyped enum tested above
    parameters = schema_for_function(f_literal_mixed)["parameters"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"x": True}, parameters)


# -- fixed-length tuples: schema, checks and conversion --------------------------------------------


def move(frm: tuple[int, int], to: tuple[int, int], piece: tuple[Point, Color]) -> str:
    """Move a piece.

    args:
        frm: Row and column it leaves.
        to: Row and column it reaches.
        piece: Where it was bought, and its colour.
    """
    return f"{frm} -> {to} with {piece}"


def test_a_lowercase_args_section_describes_the_parameters() -> None:
    function = Tool.from_function(move).to_schema()["function"]
    assert function["description"] == "Move a piece."
    properties = function["parameters"]["properties"]
    assert properties["frm"]["description"] == "Row and column it leaves."
    assert properties["piece"]["prefixItems"][1] == {"type": "string", "enum": ["red", "green"]}


async def test_tuple_arguments_arrive_as_tuples_of_the_declared_types() -> None:
    seen: list[Any] = []

    def record(frm: tuple[int, int], to: tuple[int, int], piece: tuple[Point, Color]) -> str:
        seen.extend([frm, to, piece])
        return "ok"

    arguments = {"frm": [1.0, 2], "to": [3, 4], "piece": [{"lat": 1, "lon": 2}, "red"]}
    [result] = await run_tool_calls([record], [ToolCall("record", arguments)])
    assert result.ok, result.error
    assert seen == [(1, 2), (3, 4), (Point(1.0, 2.0), Color.RED)]
    assert [type(x) for x in seen[0]] == [int, int]
    [bad] = await run_tool_calls([record], [ToolCall("record", {**arguments, "to": [3]})])
    assert bad.error == ("invalid arguments for 'record': arguments.to should have at least 2 "
                         "items, got 1")


# -- validate_value: the same problems as (path, message) pairs ------------------------------------

def test_validate_value_gives_each_problem_as_its_path_and_message() -> None:
    from ollama_stream.schema import validate_value

    schema = _r(["name", "where"], name={"type": "string"}, where=WHERE["properties"]["where"],
                tags=TAGS["properties"]["tags"])
    value = {"where": {"lat": "x", "lon": 1}, "tags": [1, "ok"], "first name": 2}
    assert validate_value(schema, value) == [
        ("$", "is missing the required 'name'"),
        ("$.where.lat", "should be number, got str 'x'"),
        ("$.tags[0]", "should be string, got int 1"),
    ]
    # validate_arguments is the same list, each pair joined (a path with a space stays whole)
    assert validate_arguments(schema, value) == [
        f"{path} {problem}" for path, problem in validate_value(schema, value, "arguments")]
    closed = {"type": "object", "properties": {}, "additionalProperties": False}
    assert validate_value(closed, {"first name": 1}, "$.x") == [
        ("$.x", "has an unexpected 'first name'")]


class Paint(TypedDict):
    color: Color
    where: Point
    layers: list[Level]


async def test_the_fields_of_a_typed_dict_arrive_as_their_declared_types() -> None:
    seen: list[Any] = []

    def paint(job: Paint) -> str:
        """Paint a spot."""
        seen.append(job)
        return "ok"

    arguments = {"job": {"color": "red", "where": {"lat": 1, "lon": 2}, "layers": [1, 2]}}
    [result] = await run_tool_calls([paint], [ToolCall("paint", arguments)])
    assert result.ok, result.error
    assert seen == [{"color": Color.RED, "where": Point(1.0, 2.0),
                     "layers": [Level.LOW, Level.HIGH]}]
