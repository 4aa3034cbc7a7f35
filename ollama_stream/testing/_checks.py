"""The inference handlers' checks, without I/O, each with the server's text: option types and
`format` (500s), `think` against the model's capabilities, and what a trailing assistant message
becomes on each chat path (a continuation, a fresh answer, or llama-server's 400)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._prefill import CONTINUING_RENDERERS, TRIMMING_RENDERERS
from ._gojson import dumps, go_quote
from ._store import _ModelInfo

# api.Options by Go kind (Runner's fields included); other keys are ignored, as by Ollama
_INTEGER = frozenset({"num_keep", "seed", "num_predict", "top_k", "repeat_last_n", "num_ctx",
                      "num_batch", "num_gpu", "num_thread", "draft_num_predict", "main_gpu"})
_FLOAT = frozenset({"top_p", "min_p", "typical_p", "temperature", "repeat_penalty",
                    "presence_penalty", "frequency_penalty"})
_BOOLEAN = frozenset({"use_mmap"})
_ARRAY = frozenset({"stop"})
LLAMA_PREFILL = "Assistant response prefill is incompatible with enable_thinking."
LLAMA_TWO_ASSISTANTS = "Cannot have 2 or more assistant messages at the end of the list."


def option_error(options: Mapping[str, Any] | None) -> str | None:
    """Options.FromMap's error for the first option of the wrong type (answered with 500)."""
    for key, value in (options or {}).items():
        if value is None:
            continue
        number = type(value) in (int, float)
        if key in _INTEGER and not number:
            return f"option {go_quote(key)} must be of type integer"
        if key in _FLOAT and not number:
            return f"option {go_quote(key)} must be of type float32"
        if key in _BOOLEAN and type(value) is not bool:
            return f"option {go_quote(key)} must be of type boolean"
        if key in _ARRAY:
            if not isinstance(value, list):
                return f"option {go_quote(key)} must be of type array"
            if not all(isinstance(item, str) for item in value):
                return f"option {go_quote(key)} must be of an array of strings"
    return None


def format_error(value: Any, present: bool) -> str | None:
    """The runner's check of `format`: absent, null, "", "json" or an object (a JSON Schema)."""
    if not present or value is None or value in ("", "json") or isinstance(value, dict):
        return None
    return (f"invalid format: {go_quote(dumps(value).decode())}; expected \"json\" or a valid "
            "JSON Schema object")


def llama_error(message: str) -> str:
    """llama-server's error body, which Ollama passes on as the error's text."""
    return dumps({"error": {"code": 400, "message": message,
                            "type": "invalid_request_error"}}).decode()


@dataclass
class Thinking:
    """What `think` comes to for one model: on or off, the harmony level, or the 400's text."""

    on: bool
    level: str = ""
    error: str | None = None


def resolve_think(info: _ModelInfo, think: Any, model: str,
                  version: tuple[int, ...] = (99,)) -> Thinking:
    """Omitted on a thinking model = on (v0.12.4); `think: false` turns it off, except on gpt-oss
    (harmony), which always thinks and reads true as "medium" and "max" as "high"; true or a
    level on a model without thinking is the server's 400, and so is false before v0.12.5."""
    if "thinking" not in info.capabilities:
        if think is True or isinstance(think, str) or (think is False and version < (0, 12, 5)):
            return Thinking(False, error=f"{go_quote(model)} does not support thinking")
        return Thinking(False)
    if info.harmony:
        level = think if isinstance(think, str) else "medium"
        return Thinking(True, "high" if level == "max" else level)
    return Thinking(think is not False)


@dataclass
class Prefill:
    """A trailing assistant message, as the model's chat path takes it."""

    content: str | None = None  # continue this content
    thinking: str | None = None  # continue this thinking (harmony, content empty)
    error: str | None = None  # llama-server's 400 (native path)


def plan_prefill(info: _ModelInfo, native: bool, thinking: bool,
                 messages: Sequence[Mapping[str, Any]]) -> Prefill:
    """Native: continued verbatim (thinking dropped) only with thinking off, else llama-server's
    400. Harmony: `final` channel with content, `analysis` with only thinking. Renderers that
    continue do (qwen3.5 and laguna trim the content first; a thinking-only partial is a closed
    think block there); other renderers answer afresh. Go templates continue when they leave the
    last message open, as qwen3's (`$last`) does; `.Messages` templates without `$last` close
    every turn and answer afresh."""
    if not messages or messages[-1].get("role") != "assistant":
        return Prefill()
    last = messages[-1]
    content = str(last.get("content") or "")
    partial_thinking = str(last.get("thinking") or "")
    if native:
        if len(messages) > 1 and messages[-2].get("role") == "assistant":
            return Prefill(error=llama_error(LLAMA_TWO_ASSISTANTS))
        if thinking:
            return Prefill(error=llama_error(LLAMA_PREFILL))
        return Prefill(content=content)
    if info.harmony:
        if content:
            return Prefill(content=content)
        return Prefill(thinking=partial_thinking) if partial_thinking else Prefill()
    if info.renderer:
        if info.renderer not in CONTINUING_RENDERERS:
            return Prefill()
        if info.renderer in TRIMMING_RENDERERS:
            return Prefill(content=content.strip()) if content or partial_thinking else Prefill()
    elif ".Messages" in info.template and "$last" not in info.template:
        return Prefill()  # the template closes every turn (chatml, llama3-instruct): afresh
    return Prefill(content=content) if content else Prefill()
