"""The typed values of Ollama's chat protocol: messages, tool calls, chunks, metrics and results.

Slotted, non-frozen dataclasses: a ChatChunk is built once per streamed line, and a frozen
dataclass's `__init__` costs about 40% more per chunk (see DESIGN.md). Wire form in and out via
`to_dict`/`from_dict`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from .images import encode_image

__all__ = ["ROLES", "ChatChunk", "ChatResult", "Message", "Metrics", "ToolCall"]

# The roles Ollama's templates know. Any other non-empty role is sent as it is (the server takes any
# role and lowercases it; the model's template decides what it means), so this is a reference only.
ROLES = frozenset({"system", "user", "assistant", "tool"})


def _optional_str(value: object, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"{name} must be a str or None, not {type(value).__name__}")


@dataclass(slots=True)
class ToolCall:
    """One function call the model asked for.
    `arguments` is a JSON object (a dict), never a string."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    index: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"tool call name must be a non-empty str, got {self.name!r}")
        if not isinstance(self.arguments, dict):
            raise TypeError(f"tool call {self.name!r}: arguments must be a dict, "
                            f"not {type(self.arguments).__name__}")
        _optional_str(self.id, f"tool call {self.name!r}: id")
        if self.index is not None and (type(self.index) is not int):
            raise TypeError(f"tool call {self.name!r}: index must be an int or None")

    def to_dict(self) -> dict[str, Any]:
        """The wire form: `{"id", "function": {"index", "name", "arguments"}}`,
        None fields left out."""
        function: dict[str, Any] = {}
        if self.index is not None:
            function["index"] = self.index
        function["name"] = self.name
        function["arguments"] = self.arguments
        out: dict[str, Any] = {}
        if self.id is not None:
            out["id"] = self.id
        out["function"] = function
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolCall:
        """Read Ollama's wire form; also takes OpenAI's, whose `arguments` is a JSON string."""
        if not isinstance(data, Mapping):
            raise TypeError(f"a tool call must be a dict, not {type(data).__name__}")
        function = data.get("function")
        if not isinstance(function, Mapping):
            raise TypeError("a tool call needs a 'function' object with 'name' and 'arguments'")
        arguments = function.get("arguments")
        if arguments is None:
            arguments = {}
        elif isinstance(arguments, (str, bytes)):
            try:
                arguments = orjson.loads(arguments) if arguments else {}
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"tool call {function.get('name')!r}: arguments is not valid "
                                 f"JSON: {arguments[:200]!r}") from exc
        return cls(function.get("name"), arguments, data.get("id"),  # type: ignore[arg-type]
                   function.get("index"))


@dataclass(slots=True)
class Message:
    """A chat message, as sent in `messages` and as accumulated from a reply.

    Append the accumulated assistant message (thinking, content and tool_calls) to the history, then
    one `Message("tool", result, tool_name=...)` per executed call, and the next turn has what the
    model needs. `role` is any non-empty str, lowercased as the server does (system, user, assistant
    and tool are the ones every template knows).
    """

    role: str
    content: str = ""
    thinking: str = ""
    images: Sequence[str | bytes | os.PathLike[str]] = ()
    tool_calls: Sequence[ToolCall] = ()
    tool_name: str | None = None
    tool_call_id: str | None = None

    def __post_init__(self) -> None:
        role = self.role
        if not isinstance(role, str) or not role:
            raise ValueError(f"role must be a non-empty str such as {', '.join(sorted(ROLES))}; "
                             f"got {role!r}")
        self.role = role.lower()
        if self.content is None:
            self.content = ""
        elif not isinstance(self.content, str):
            raise TypeError(f"content must be a str, not {type(self.content).__name__}")
        if self.thinking is None:
            self.thinking = ""
        elif not isinstance(self.thinking, str):
            raise TypeError(f"thinking must be a str, not {type(self.thinking).__name__}")
        if self.images != ():
            self.images = tuple(encode_image(image) for image in _sequence(self.images, "images"))
        if self.tool_calls != ():
            self.tool_calls = tuple(
                call if isinstance(call, ToolCall) else ToolCall.from_dict(call)
                for call in _sequence(self.tool_calls, "tool_calls")
            )
        _optional_str(self.tool_name, "tool_name")
        _optional_str(self.tool_call_id, "tool_call_id")

    def to_dict(self) -> dict[str, Any]:
        """The wire form; empty fields are left out."""
        out: dict[str, Any] = {"role": self.role}
        if self.content:
            out["content"] = self.content
        if self.thinking:
            out["thinking"] = self.thinking
        if self.images:
            out["images"] = list(self.images)
        if self.tool_calls:
            out["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        if self.tool_name is not None:
            out["tool_name"] = self.tool_name
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        """Build a Message from its wire form (or the dicts users write by hand), validating each
        field. Keys that are not message fields (a `timestamp`, ids an app stores) are ignored, and
        so never sent."""
        if not isinstance(data, Mapping):
            raise TypeError(f"a message must be a Message or a dict, not {type(data).__name__}")
        if "role" not in data:
            raise ValueError("a message needs a 'role' (such as system, user, assistant or tool); "
                             f"got the keys {', '.join(map(repr, data)) or '(none)'}")
        return cls(
            data["role"],
            data.get("content", ""),
            data.get("thinking", ""),
            _none_to_empty(data.get("images")),
            _none_to_empty(data.get("tool_calls")),
            data.get("tool_name"),
            data.get("tool_call_id"),
        )


def _none_to_empty(value: Any) -> Any:
    return () if value is None else value


def _sequence(value: object, name: str) -> Sequence[Any]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a list, not {type(value).__name__}")
    return value


@dataclass(slots=True)
class Metrics:
    """The counters of a final chunk.
    Durations are integer nanoseconds; None when the server left one out."""

    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None

    @property
    def tokens_per_second(self) -> float | None:
        """Generation speed: eval_count / eval_duration, in tokens per second."""
        if self.eval_count is None or not self.eval_duration:
            return None
        return self.eval_count / self.eval_duration * 1e9

    @property
    def prompt_tokens_per_second(self) -> float | None:
        """Prompt processing speed: prompt_eval_count / prompt_eval_duration,
        in tokens per second."""
        if self.prompt_eval_count is None or not self.prompt_eval_duration:
            return None
        return self.prompt_eval_count / self.prompt_eval_duration * 1e9


@dataclass(slots=True)
class ChatChunk:
    """One streamed line of `/api/chat`, typed.
    `raw` is the decoded line, for fields not modelled here.

    `images` are base64 images in the message (rare: only models that output images send them).
    `remote_model` and `remote_host` name the upstream model and Ollama host when the model is a
    remote one that this server proxies (v0.12.0+); None otherwise.
    """

    model: str
    created_at: str
    content: str
    thinking: str
    tool_calls: tuple[ToolCall, ...]
    done: bool
    done_reason: str | None
    metrics: Metrics | None
    logprobs: list[Any] | None
    raw: dict[str, Any]
    images: tuple[str, ...] = ()
    remote_model: str | None = None
    remote_host: str | None = None
    resumed: bool = False  # the first chunk after the stream was resumed (RetryPolicy.resume)

    @property
    def truncated(self) -> bool:
        """True on a final chunk whose output stopped at the length limit (`num_predict`)."""
        return self.done_reason == "length"


@dataclass(slots=True)
class ChatResult:
    """A finished reply: the accumulated assistant message plus the final chunk's facts.

    `truncated` says the output stopped at the length limit (`num_predict`);
    `prompt_truncated` that the prompt probably did not fit `num_ctx` and the server cut it.
    `raw` is the final chunk's decoded line, for fields not modelled here; `remote_model` and
    `remote_host` name the upstream of a proxied remote model (else None). With `format=`,
    `parsed` is the content as the type asked for, and `repairs` how many re-asks it took.
    """

    message: Message
    model: str
    done_reason: str | None
    metrics: Metrics | None
    logprobs: list[Any] | None = None
    prompt_truncated: bool = False
    raw: dict[str, Any] = field(default_factory=dict)
    remote_model: str | None = None
    remote_host: str | None = None
    resumes: int = 0  # how many times the stream was resumed after a failure (RetryPolicy.resume)
    repairs: int = 0
    # set by the stream when the request had `format=`; the parsed value once computed
    _format: Any = field(default=None, init=False, repr=False, compare=False)
    _parsed: tuple[Any] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def truncated(self) -> bool:
        """True when the output stopped at the length limit (`done_reason == "length"`)."""
        return self.done_reason == "length"

    @property
    def parsed(self) -> Any:
        """The content parsed and converted to the `format=` type: a dataclass instance, an Enum
        member, a pydantic model instance, a list of them...; the JSON value for "json" or a
        schema dict. StructuredOutputError when it does not fit; ValueError without `format=`."""
        return parsed_of(self, self.message.content)


def parsed_of(result: Any, content: str) -> Any:
    """`.parsed` of a ChatResult or GenerateResult: kept once computed, else computed by the
    format the stream attached (`structured.OutputFormat`)."""
    if result._parsed is not None:
        return result._parsed[0]
    if result._format is None:
        raise ValueError(
            f"this {type(result).__name__} was not asked for structured output, so it has no "
            ".parsed: pass format= (a type, 'json' or a JSON Schema dict) to chat() or generate()")
    return result._format.parse_result(result, content)
