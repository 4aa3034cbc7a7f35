"""The checks a call's arguments pass before any I/O, and the JSON body of a chat: the options
that chat and generate share (think, format, options, keep_alive, logprobs, truncate, shift), the
messages in their wire form, the tools. Sans-I/O; `ollama_stream.protocol` re-exports the public
names.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from .types import Message

__all__ = ["THINK_LEVELS", "build_chat_request", "check_model", "check_think", "check_tools",
           "is_gpt_oss", "wire_json", "wire_messages"]


THINK_LEVELS = ("low", "medium", "high", "max")


def check_model(model: object) -> str:
    if not isinstance(model, str):
        raise TypeError(f"model must be a str, not {type(model).__name__}")
    if not model.strip():
        raise ValueError("model must be a non-empty model name, such as 'qwen3' or 'llama3.2:3b'")
    if "\n" in model or "\r" in model or "\0" in model:
        raise ValueError(f"model {model!r} holds a line break or NUL, which no model name has")
    return model


def check_finite(value: object, where: str) -> None:
    """Refuse NaN and infinity anywhere in a JSON-bound value: JSON has neither, and the server
    would read them as something else (`keep_alive=inf` silently became its default)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is {value!r}, which JSON cannot carry: give a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            check_finite(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_finite(item, f"{where}[{i}]")


def is_gpt_oss(model: str) -> bool:
    """gpt-oss models take a thinking level, not a bool."""
    return model.rsplit("/", 1)[-1].lower().startswith("gpt-oss")


def check_think(think: object) -> bool | str:
    if think is True or think is False:
        return think
    if isinstance(think, str) and think in THINK_LEVELS:
        return think
    raise ValueError(f"think must be True, False or one of {', '.join(map(repr, THINK_LEVELS))}; "
                     f"got {think!r}")


def wire_messages(messages: object) -> list[dict[str, Any]]:
    """Validate `messages` (Message objects or plain dicts) and return their wire form."""
    if isinstance(messages, (str, bytes, dict)) or not isinstance(messages, (list, tuple)):
        raise TypeError("messages must be a list of Message or dict, "
                        f"not {type(messages).__name__}")
    out = []
    for i, item in enumerate(messages):
        try:
            if isinstance(item, Message):
                # re-validate: a Message may have been changed since it was built
                item.__post_init__()
                out.append(item.to_dict())
            else:
                out.append(Message.from_dict(item).to_dict())
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"messages[{i}]: {exc}") from None
    return out


def check_tools(tools: object) -> list[Any]:
    if isinstance(tools, (str, bytes, dict)) or not isinstance(tools, (list, tuple)):
        raise TypeError(f"tools must be a list of tool schemas, not {type(tools).__name__}")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise TypeError(f"tools[{i}] must be a tool schema dict ({{'type': 'function', "
                            f"'function': {{...}}}}), not {type(tool).__name__}")
    return list(tools)


def _add_generation_options(body: dict[str, Any], *, think: object, format: object,
                            options: object, keep_alive: object, logprobs: object,
                            top_logprobs: object, truncate: object = None,
                            shift: object = None) -> None:
    """The options chat and generate share: checked, and set only when given."""
    if think is not None:
        body["think"] = check_think(think)
        if body["think"] is True and is_gpt_oss(body.get("model", "")):
            body["think"] = "medium"  # gpt-oss ignores true/false and wants a level
    if format is not None:
        if format != "json" and not isinstance(format, dict):
            raise ValueError(f"format must be 'json' or a JSON Schema dict, got {format!r}")
        body["format"] = format
    if options is not None:
        if not isinstance(options, dict):
            raise TypeError(f"options must be a dict such as {{'temperature': 0}}, "
                            f"not {type(options).__name__}")
        check_finite(options, "options")
        body["options"] = options
    if keep_alive is not None:
        if isinstance(keep_alive, bool) or not isinstance(keep_alive, (int, float, str)):
            raise TypeError("keep_alive must be seconds (a number) or a duration string such as "
                            f"'5m', not {type(keep_alive).__name__}")
        if isinstance(keep_alive, float) and not math.isfinite(keep_alive):
            raise ValueError(f"keep_alive={keep_alive!r} cannot be sent: give seconds, a duration "
                             "such as '5m', or a negative number to keep the model loaded")
        body["keep_alive"] = keep_alive
    if logprobs is not None:
        if not isinstance(logprobs, bool):
            raise TypeError(f"logprobs must be a bool, not {type(logprobs).__name__}")
        body["logprobs"] = logprobs
    if top_logprobs is not None:
        if isinstance(top_logprobs, bool) or not isinstance(top_logprobs, int):
            raise TypeError(f"top_logprobs must be an int, not {type(top_logprobs).__name__}")
        if not 0 <= top_logprobs <= 20:
            raise ValueError(f"top_logprobs must be within 0..20, got {top_logprobs}")
        body["top_logprobs"] = top_logprobs
    for name, flag in (("truncate", truncate), ("shift", shift)):  # both v0.12.6+, default true
        if flag is not None:
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, not {type(flag).__name__}")
            body[name] = flag


def build_chat_request(
    model: str,
    messages: object,
    *,
    think: object = None,
    tools: object = None,
    format: object = None,
    options: object = None,
    keep_alive: object = None,
    logprobs: object = None,
    top_logprobs: object = None,
    stream: bool = True,
    truncate: object = None,
    shift: object = None,
) -> dict[str, Any]:
    """Validate the arguments of a chat call and build its JSON body.
    Only arguments that are set are sent."""
    body: dict[str, Any] = {"model": check_model(model), "messages": wire_messages(messages),
                            "stream": stream}
    if tools is not None:
        body["tools"] = check_tools(tools)
    _add_generation_options(body, think=think, format=format, options=options,
                            keep_alive=keep_alive, logprobs=logprobs, top_logprobs=top_logprobs,
                            truncate=truncate, shift=shift)
    return body


def wire_json(obj: Any) -> bytes:
    """A request body as JSON bytes of their own size. orjson's result keeps the block it wrote
    into (4 KiB for an 80-byte body, megabytes for a large one), and a stream holds its body for
    its whole life (to retry, to resume), so it is copied out once."""
    return memoryview(orjson.dumps(obj)).tobytes()
