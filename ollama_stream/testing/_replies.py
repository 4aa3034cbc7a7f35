"""A reply as Ollama's chunks, without I/O: what one chat or generate generation streams for a
FakeReply (thinking, content, tool calls, logprobs, the final metrics) as the request and the
model's chat path shape it, and the one object `stream: false` merges them into.

Rules: dicts are built in Go's struct field order; `created_at: None` and `None` durations are
filled in as each line is written (see _wire)."""

from __future__ import annotations

import random
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..types import ToolCall
from ._state import FakeReply
from ._store import _ModelInfo, _token_ids, split_tokens

# stand-in alternatives for top_logprobs (never the chosen token)
_ALTERNATIVES = (" the", "<tool_call>", "\n", ",", " a", ".", " and", " I", " to", " of", "!",
                 " is", " it", " you", "</think>", " in", " that", " we", ":", " so", " be", "?")
_LLAMA_ID = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_OLLAMA_ID = "abcdefghijklmnopqrstuvwxyz0123456789"


@dataclass
class Turn:
    """One generation as the checks left it: the model (as typed) and what the request asks."""

    model: str
    info: _ModelInfo
    thinking: bool  # thinking is on: the reply's thinking is shown
    native: bool  # llama-server's chat path (v0.30+)
    tools: bool  # the request had tools
    logprobs: bool
    top_logprobs: int
    context: int  # the runner's context: a longer prompt is truncated to it
    level: str = ""  # the harmony think level, "" for other models
    prefill: str | None = None  # the trailing assistant content the reply continues
    prefill_thinking: str | None = None  # ... or its thinking, when it had no content


class ToolCallIds:
    """Ids as the server makes them: `call_` + 8 of [a-z0-9] (routes.go toolCallId), or
    llama.cpp's 32 alphanumerics on the native path; seeded, so runs agree."""

    def __init__(self, seed: int = 0x0113) -> None:
        self._rng = random.Random(seed)

    def ollama(self) -> str:
        return "call_" + "".join(self._rng.choice(_OLLAMA_ID) for _ in range(8))

    def llama(self) -> str:
        return "".join(self._rng.choice(_LLAMA_ID) for _ in range(32))


def version_tuple(text: str) -> tuple[int, ...]:
    """`0.12.10` -> (0, 12, 10); a suffix such as `-rc2` is ignored."""
    parts = []
    for piece in text.lstrip("v").split("-")[0].split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def wire_calls(calls: Sequence[ToolCall], *, version: str, with_ids: bool, native: bool,
               ids: ToolCallIds, chat: bool = True) -> list[dict[str, Any]]:
    """Tool calls in Go's order ({"id", "function": {"index", "name", "arguments"}}) as the server
    of `version` sends them: `index` since v0.4.7, `id` since v0.12.10 (chat only; generate's
    have none); `with_ids=False` drops both, as servers before v0.4.7 did."""
    semver = version_tuple(version)
    wire = []
    for index, call in enumerate(calls):
        function: dict[str, Any] = {}
        if with_ids and semver >= (0, 4, 7):
            function["index"] = call.index if call.index is not None else index
        function.update(name=call.name, arguments=call.arguments)
        out: dict[str, Any] = {}
        if chat and with_ids and semver >= (0, 12, 10):
            out["id"] = call.id or (ids.llama() if native else ids.ollama())
        out["function"] = function
        wire.append(out)
    return wire


def logprobs(token: str, top: int) -> list[dict[str, Any]]:
    """One token's logprobs: its own, and `top` alternatives (itself first) when asked."""
    seed = zlib.crc32(token.encode())
    value = -round((seed % 9973) / 9973 * 0.75, 6)
    entry: dict[str, Any] = {"token": token, "logprob": value}
    if token:
        entry["bytes"] = list(token.encode())
    if top > 0:
        ranked = [dict(entry)]  # the chosen token first
        others = [alt for alt in _ALTERNATIVES if alt != token]
        start = seed % len(others)
        for k in range(1, top):
            alt = others[(start + k) % len(others)]
            ranked.append({"token": alt, "logprob": round(value - 1.5 * k - (seed % 97) / 97, 6),
                           "bytes": list(alt.encode())})
        entry["top_logprobs"] = ranked
    return [entry]


def _continuation(text: str, partial: str | None) -> str:
    """What a model that was handed `partial` still writes: the rest of `text` when it starts
    with `partial`, else all of `text`."""
    if partial and text.startswith(partial):
        return text[len(partial):]
    return text


def prompt_tokens(texts: Sequence[str]) -> int:
    return sum(len(split_tokens(text)) for text in texts) + 10


def chat_lines(turn: Turn, reply: FakeReply, calls: list[dict[str, Any]],
               prompt_count: int) -> list[dict[str, Any]]:
    """The chunks of one /api/chat reply. Rendered path: tool calls in a chunk of their own (or
    on the final chunk with `tool_calls_on_done`); native path: always on the final chunk."""
    def chunk(message: dict[str, Any], token: str | None = None) -> dict[str, Any]:
        line: dict[str, Any] = {"model": turn.model, "created_at": None,
                                "message": {"role": "assistant", **message}, "done": False}
        if turn.logprobs and token is not None:
            line["logprobs"] = logprobs(token, turn.top_logprobs)
        return line

    thinking = ""
    if turn.prefill_thinking is not None:  # only the harmony path keeps on thinking
        thinking = _continuation(reply.thinking, turn.prefill_thinking) if turn.thinking else ""
    elif turn.thinking and turn.prefill is None:
        thinking = reply.thinking
    content = _continuation(reply.content, turn.prefill)
    lines = [chunk({"content": "", "thinking": token}, token) for token in split_tokens(thinking)]
    lines += [chunk({"content": token}, token) for token in split_tokens(content)]
    on_done = turn.native or reply.tool_calls_on_done
    if calls and not on_done:
        lines.append(chunk({"content": "", "tool_calls": calls}))
    if reply.error is not None:
        lines.append({"error": reply.error})
        return lines
    final = chunk({"content": ""})
    if calls and on_done:
        final["message"]["tool_calls"] = calls
    final.update(done_reason=reply.done_reason, total_duration=None, load_duration=None,
                 prompt_eval_count=min(prompt_count, turn.context), prompt_eval_duration=None,
                 eval_count=max(1, len(lines)), eval_duration=None)
    final["done"] = True
    lines.append(final)
    return lines


def generate_lines(turn: Turn, reply: FakeReply, request: Mapping[str, Any],
                   calls: list[dict[str, Any]], written: str = "") -> list[dict[str, Any]]:
    """Generate's chunks: `response` on every line, `thinking` on thinking lines (between the
    empty chunks of the think tags, which generate does not skip); the final line has `context`
    (unless raw), the metrics and any tool calls. `written`: the part of the reply a raw prompt
    already holds (a resumed reply), which is not written again."""
    def chunk(response: str, token: str | None, **extra: Any) -> dict[str, Any]:
        line = {"model": turn.model, "created_at": None, "response": response, **extra,
                "done": False}
        if turn.logprobs and token is not None:
            line["logprobs"] = logprobs(token, turn.top_logprobs)
        return line

    thinking = reply.thinking if turn.thinking else ""
    lines = []
    if thinking:
        lines.append(chunk("", "<think>"))
        lines += [chunk("", token, thinking=token) for token in split_tokens(thinking)]
        lines += [chunk("", "</think>"), chunk("", "\n\n")]
    prompt = str(request.get("prompt") or "")
    content = _continuation(reply.content, written)
    lines += [chunk(token, token) for token in split_tokens(content)]
    if reply.error is not None:
        lines.append({"error": reply.error})
        return lines
    final: dict[str, Any] = {"model": turn.model, "created_at": None, "response": "",
                             "done": True, "done_reason": reply.done_reason}
    if not request.get("raw"):
        previous = [n for n in request.get("context") or [] if isinstance(n, int)]
        final["context"] = previous + _token_ids(prompt) + _token_ids(reply.content)
    system = str(request.get("system") or "")
    final.update(total_duration=None, load_duration=None,
                 prompt_eval_count=min(prompt_tokens([prompt, system]), turn.context),
                 prompt_eval_duration=None,
                 eval_count=max(1, len(lines)), eval_duration=None)
    if calls:
        final["tool_calls"] = calls
    lines.append(final)
    return lines


def merge_chat(lines: list[dict[str, Any]], had_tools: bool) -> dict[str, Any]:
    """writeChatResponse: content, thinking and logprobs joined; tool calls gathered from every
    chunk only if the request had tools (else only the last chunk's own survive); all else from
    the last chunk."""
    last = lines[-1]
    message: dict[str, Any] = {"role": "assistant",
                               "content": "".join(line["message"]["content"] for line in lines)}
    thinking = "".join(line["message"].get("thinking", "") for line in lines)
    if thinking:
        message["thinking"] = thinking
    calls = ([c for line in lines for c in line["message"].get("tool_calls", [])] if had_tools
             else last["message"].get("tool_calls", []))
    if calls:
        message["tool_calls"] = calls
    merged: dict[str, Any] = {"model": last["model"], "created_at": last["created_at"],
                              "message": message, "done": last["done"]}
    for key in ("done_reason",):
        if key in last:
            merged[key] = last[key]
    joined = [entry for line in lines for entry in line.get("logprobs", [])]
    if joined:
        merged["logprobs"] = joined
    merged.update({k: v for k, v in last.items() if k not in merged and k != "logprobs"})
    return merged


def merge_generate(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """GenerateHandler's `stream: false`: response, thinking and logprobs joined, the rest from the
    last chunk."""
    last = lines[-1]
    merged: dict[str, Any] = {"model": last["model"], "created_at": last["created_at"],
                              "response": "".join(line["response"] for line in lines)}
    thinking = "".join(line.get("thinking", "") for line in lines)
    if thinking:
        merged["thinking"] = thinking
    merged.update({k: v for k, v in last.items()
                   if k not in merged and k not in ("thinking", "logprobs")})
    joined = [entry for line in lines for entry in line.get("logprobs", [])]
    if joined:
        merged["logprobs"] = joined
    return merged
