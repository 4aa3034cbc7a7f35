"""Resuming a stream from its partial reply (`RetryPolicy(resume=True)`), without I/O: whether a
model's chat path continues a trailing assistant message, the request that continues one, and the
seam where the continuation meets what the caller has already seen.

Rules of this room, and why (the facts are Ollama's own, read from its source):
1. Continue only where the server continues: harmony (gpt-oss) content and thinking; the renderers
   that leave the message open; Go templates, except `.Messages` templates that close every turn
   (no `$last`); llama-server's native path, content only and with thinking off. Elsewhere the
   server would start a fresh answer and repeat what the caller saw, so nothing is resumed there.
2. Content is continued with `think: false` (llama-server refuses a prefill while thinking is on,
   and a renderer past thinking must not think again); a partial of thinking only is continued
   only on harmony, which keeps on thinking.
3. Tool calls already received go back inside the message, so they are not asked for again.
4. What the server trims is not shown twice: qwen3.5 and laguna strip the message's whitespace, so
   the first characters of the continuation that repeat the partial's trailing whitespace (the
   seam) are dropped.
5. Only a raw generate continues: its prompt is the model's text, so the partial is appended to
   it; a templated generate has no way to continue a reply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._arguments import wire_json
from .types import Message

if TYPE_CHECKING:
    from .endpoints import ShowResult

__all__ = ["CONTINUING_RENDERERS", "TRIMMING_RENDERERS", "ChatPath", "Continuation",
           "ResumedParse", "chat_continuation", "chat_path", "generate_continuation"]

# Ollama's renderers that leave a trailing assistant message open; qwen3.5 and laguna trim it
CONTINUING_RENDERERS = frozenset({"qwen3-coder", "qwen3-vl-instruct", "qwen3-vl-thinking",
                                  "qwen3.5", "olmo3", "olmo3-think", "lfm2", "lfm2-thinking",
                                  "cohere", "laguna"})
TRIMMING_RENDERERS = frozenset({"qwen3.5", "laguna"})
_HARMONY = frozenset({"gptoss", "gpt-oss", "harmony"})


@dataclass(frozen=True, slots=True)
class ChatPath:
    """How a model's chat path takes a trailing assistant message (rule 1)."""

    content: bool  # it continues the message's content
    thinking: bool = False  # it continues a message of thinking only
    trims: bool = False  # it strips the message's whitespace first (rule 4)
    why: str = ""  # why it does not continue, for the attempt log
    thinks: bool = True  # the model can think, so `think: false` must be said (rule 2)


def chat_path(show: ShowResult) -> ChatPath:
    """Rule 1, from what `/api/show` says of the model."""
    thinks = "thinking" in show.capabilities
    if show.details.family in _HARMONY or show.renderer in _HARMONY:
        return ChatPath(content=True, thinking=True)
    if show.renderer:
        if show.renderer in CONTINUING_RENDERERS:
            return ChatPath(content=True, trims=show.renderer in TRIMMING_RENDERERS,
                            thinks=thinks)
        return ChatPath(False, why=f"its renderer {show.renderer!r} starts a fresh answer after "
                                   "an assistant message")
    if ".Messages" in show.template and "$last" not in show.template:
        return ChatPath(False, why="its template closes every assistant turn, so the server would "
                                   "start a fresh answer")
    return ChatPath(content=True, thinks=thinks)


@dataclass(frozen=True, slots=True)
class Continuation:
    """The request that continues a stream, the seam to drop from its first characters, and the
    chunks' field that holds the text."""

    body: bytes
    seam: str = ""
    field: str = "content"


def chat_continuation(body: Mapping[str, Any], partial: Message,
                      path: ChatPath) -> Continuation | str:
    """The chat request that continues `partial` (rules 1 to 4), or why there is none."""
    request = dict(body)
    if not (partial.content or partial.thinking or partial.tool_calls):
        return Continuation(wire_json(request))  # nothing shown yet: the request again
    if partial.content or partial.tool_calls:
        if not path.content:
            return path.why
        if path.thinks or "think" in request:  # rule 2 (servers before 0.12.5 refuse it else)
            request["think"] = False
    elif not path.thinking:
        return ("the reply stopped inside its thinking, which this model's chat path cannot "
                "continue")
    messages = list(request.get("messages") or ())
    last = messages[-1] if messages and isinstance(messages[-1], Mapping) else None
    if last is not None and last.get("role") == "assistant":
        # the caller's own message to continue: the partial goes on after it
        prefill = dict(last)
        messages.pop()
    else:
        prefill = {"role": "assistant"}
    content = str(prefill.get("content") or "") + partial.content
    prefill["content"] = content
    thinking = str(prefill.get("thinking") or "") + partial.thinking
    if thinking:
        prefill["thinking"] = thinking
    if partial.tool_calls:  # rule 3
        prefill["tool_calls"] = [*(prefill.get("tool_calls") or ()),
                                 *(call.to_dict() for call in partial.tool_calls)]
    messages.append(prefill)
    request["messages"] = messages
    seam = content[len(content.rstrip()):] if path.trims else ""
    return Continuation(wire_json(request), seam)


def generate_continuation(body: Mapping[str, Any], partial: Message) -> Continuation | str:
    """The generate request that continues `partial` (rule 5), or why there is none."""
    if not (partial.content or partial.thinking or partial.tool_calls):
        return Continuation(wire_json(dict(body)), field="response")
    if not body.get("raw"):
        return ("only a raw generate can be resumed (its prompt is the model's own text); use "
                "chat, whose partial reply the server continues")
    if partial.thinking or partial.tool_calls:
        return "a raw prompt cannot continue a reply that has thinking or tool calls"
    prompt = str(body.get("prompt") or "") + partial.content
    return Continuation(wire_json({**body, "prompt": prompt}), field="response")


class ResumedParse:
    """The parser of a stream after a resume: marks its first chunk `resumed` and drops the seam
    (rule 4) from the text field (`content` of a chat chunk, `response` of a generate one)."""

    __slots__ = ("_field", "_first", "_seam", "base")

    def __init__(self, parse: Callable[[dict[str, Any]], Any], seam: str, field: str) -> None:
        self.base, self._seam, self._field, self._first = parse, seam, field, True

    def __call__(self, obj: dict[str, Any]) -> Any:
        chunk = self.base(obj)
        if self._first:
            self._first = False
            chunk.resumed = True
        seam = self._seam
        if seam:
            text: str = getattr(chunk, self._field)
            if text:
                same = 0
                while same < len(text) and same < len(seam) and text[same] == seam[same]:
                    same += 1
                setattr(chunk, self._field, text[same:])
                # all of the text was seam: the rest of the seam may come in the next chunk
                self._seam = seam[same:] if same == len(text) else ""
        return chunk
