"""The fake's generation endpoints: `/api/chat` and `/api/generate`, checked in the order of
Ollama's handlers (server/routes.go) and then served from the reply queue as its chunks (streamed
or as one object), and `/api/embed`'s deterministic vectors."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from . import _names
from ._checks import (
    Thinking,
    format_error,
    option_error,
    plan_prefill,
    resolve_think,
)
from ._gojson import F32, go_quote, go_time
from ._gotypes import CHAT, EMBED, GENERATE, GoType, keep_alive_seconds
from ._replies import (
    ToolCallIds,
    Turn,
    chat_lines,
    generate_lines,
    merge_chat,
    merge_generate,
    prompt_tokens,
    version_tuple,
    wire_calls,
)
from ._state import FakeReply
from ._store import _embedding, _ModelInfo, _normalised, num_ctx, split_tokens
from ._wire import _json, _json_error, _Wire


def _unloads(body: Mapping[str, Any]) -> bool:
    return "keep_alive" in body and keep_alive_seconds(body["keep_alive"]) == 0


class _GenerationRoutes(_Wire):
    """`/api/chat`, `/api/generate` and `/api/embed`, mixed into FakeOllama."""

    _ids: ToolCallIds  # set by FakeOllama.__init__

    # -- the checks both handlers share -----------------------------------------------------------

    async def _inference_body(self, request: web.Request,
                              struct: GoType) -> dict[str, Any] | web.Response:
        body = await self._body(request, struct)
        recorded = self.received[-1].body
        if isinstance(recorded, dict):
            self.requests.append(recorded)  # what the client sent, as it sent it
        if isinstance(body, web.Response):
            return body
        top = body.get("top_logprobs") or 0
        if not 0 <= top <= 20:
            return _json_error(400, "top_logprobs must be between 0 and 20")
        return body

    def _model(self, model: str, missing: web.Response) -> str | web.Response:
        """The stored name a request's `model` refers to, or the handler's answer."""
        if not model.strip():
            return missing
        ref = model.strip()
        if ref.lower().endswith(":local"):  # an explicit local source: the name without it
            ref = ref[: -len(":local")]
        if not _names.parse(ref).valid:
            return _json_error(400, "invalid model name")
        found = self._find(ref)
        return found if found is not None else _json_error(404, f"model '{model}' not found")

    def _admit(self, stored: str, model: str, body: Mapping[str, Any], task: str,
               wanted: tuple[str, ...]) -> tuple[_ModelInfo, Thinking] | web.Response:
        """A generating request's checks before any output, in Ollama's order: its think value
        for this model, then scheduleRunner's; the model's info and the thinking to use, or the
        handler's answer."""
        info = self._info(stored)
        think = resolve_think(info, body.get("think"), model, version_tuple(self.version))
        if think.error is not None:
            return _json_error(400, think.error)
        refused = self._schedule(stored, model, info, body, task, wanted)
        return refused if refused is not None else (info, think)

    def _schedule(self, stored: str, model: str, info: _ModelInfo, body: Mapping[str, Any],
                  task: str, wanted: tuple[str, ...]) -> web.Response | None:
        """scheduleRunner's checks: capabilities (completion first), then option types."""
        if "completion" not in info.capabilities:
            return _json_error(400, f"{go_quote(model)} does not support {task}")
        missing = [c for c in wanted if c not in info.capabilities]
        if missing:
            what = "\n".join(missing)  # errors.Join
            return _json_error(400, f"{_names.parse(stored).full} does not support {what}")
        error = option_error(body.get("options"))
        return _json_error(500, error) if error is not None else None

    def _turn(self, model: str, info: _ModelInfo, think: Thinking,
              body: Mapping[str, Any]) -> Turn:
        native = info.native if info.native is not None else self.native
        return Turn(model, info, think.on, native, bool(body.get("tools")),
                    bool(body.get("logprobs")), int(body.get("top_logprobs") or 0),
                    self._context(body, info), think.level)

    def _take_reply(self, stored: str, body: Mapping[str, Any],
                    failure: FakeReply | None) -> FakeReply | web.Response:
        """The reply a generating request uses: the runner's refusal (`failure`; no queued reply
        is used up), else the next queued one, whose HTTP error status, if it has one, is the
        handler's answer. The model counts as used either way, but not for that error."""
        if failure is not None:
            self._use(stored, body)
            return failure
        reply = self._next_reply(body)
        answer = self._queued_error(reply)
        if answer is not None:
            return answer
        self._use(stored, body)
        return reply

    @staticmethod
    def _queued_error(reply: FakeReply) -> web.Response | None:
        if reply.status is None:
            return None
        return web.Response(status=reply.status, body=reply.body,
                            headers={"Content-Type": reply.content_type, **reply.headers})

    def _calls(self, reply: FakeReply, turn: Turn, *, chat: bool = True) -> list[dict[str, Any]]:
        return wire_calls(reply.tool_calls, version=self.version, with_ids=self.tool_call_ids,
                          native=turn.native, ids=self._ids, chat=chat)

    # -- /api/chat --------------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter_ns()
        body = await self._inference_body(request, CHAT)
        if isinstance(body, web.Response):
            return body
        model = str(body.get("model") or "")
        stored = self._model(model, _json_error(400, "model is required"))
        if isinstance(stored, web.Response):
            return stored
        messages = body.get("messages") or []
        if not messages and _unloads(body):
            self._use(stored, body)
            return _json({"model": model, "created_at": go_time(),
                          "message": {"role": "assistant", "content": ""}, "done": True,
                          "done_reason": "unload"})
        admitted = self._admit(stored, model, body, "chat", ("tools",) if body.get("tools") else ())
        if isinstance(admitted, web.Response):
            return admitted
        info, think = admitted
        if not messages:  # only loads the model
            self._use(stored, body)
            return _json({"model": model, "created_at": go_time(),
                          "message": {"role": "assistant", "content": ""}, "done": True,
                          "done_reason": "load"})
        turn = self._turn(model, info, think, body)
        count = prompt_tokens([str(m.get("content") or "") for m in messages
                               if isinstance(m, dict)])
        failure = self._runner_failure(body, count, info)
        if failure is None:
            prefill = plan_prefill(info, turn.native, turn.thinking, messages)
            turn.prefill, turn.prefill_thinking = prefill.content, prefill.thinking
            if prefill.error is not None:
                failure = FakeReply(error=prefill.error, error_status=400)
        reply = self._take_reply(stored, body, failure)
        if isinstance(reply, web.Response):
            return reply
        if reply is failure:
            lines = [{"error": reply.error}]
        else:
            if turn.prefill is not None or turn.prefill_thinking is not None:
                reply = _without_calls_made(reply, messages[-1])
            lines = chat_lines(turn, reply, self._calls(reply, turn), count)
        if body.get("stream") is False:
            return await self._unstreamed(request, lines, reply,
                                          lambda ls: merge_chat(ls, turn.tools), started)
        return await self._stream(request, lines, reply, started=started)

    def _raw_written(self, prompt: str) -> str:
        """A raw prompt that extends an earlier one is a reply resumed by appending its partial to
        the prompt: the part of the reply it already holds (the model writes on from there)."""
        earlier = max((seen for seen in self._raw_prompts
                       if prompt.startswith(seen) and len(seen) < len(prompt)),
                      key=len, default=None)
        self._raw_prompts.append(prompt)
        return prompt[len(earlier):] if earlier is not None else ""

    @staticmethod
    def _context(body: Mapping[str, Any], info: _ModelInfo) -> int:
        """The runner's context: num_ctx (4096 by default), never more than the model's."""
        return min(num_ctx(body.get("options")) or 4096, info.context_length)

    def _runner_failure(self, body: Mapping[str, Any], tokens: int,
                        info: _ModelInfo) -> FakeReply | None:
        """What the runner refuses before any output: a bad `format` (500) and, with
        `truncate: false`, a prompt longer than the context (400)."""
        error = format_error(body.get("format"), "format" in body)
        if error is not None:
            return FakeReply(error=error)
        if body.get("truncate") is False and tokens > self._context(body, info):
            return FakeReply(error="the input length exceeds the context length", error_status=400)
        return None

    # -- /api/generate ----------------------------------------------------------------------------

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter_ns()
        body = await self._inference_body(request, GENERATE)
        if isinstance(body, web.Response):
            return body
        model = str(body.get("model") or "")
        stored = self._model(model, _json_error(404, f"model '{model}' not found"))
        if isinstance(stored, web.Response):
            return stored
        prompt = str(body.get("prompt") or "")
        if not prompt and _unloads(body):
            self._use(stored, body)
            return _json({"model": model, "created_at": go_time(), "response": "", "done": True,
                          "done_reason": "unload"})
        if body.get("raw") and (body.get("template") or body.get("system") or body.get("context")):
            return _json_error(400, "raw mode does not support template, system, or context")
        admitted = self._admit(stored, model, body, "generate",
                               ("insert",) if body.get("suffix") else ())
        if isinstance(admitted, web.Response):
            return admitted
        info, think = admitted
        if not prompt:  # only loads the model
            self._use(stored, body)
            return _json({"model": model, "created_at": go_time(), "response": "", "done": True,
                          "done_reason": "load"})
        turn = self._turn(model, info, think, body)
        failure = self._runner_failure(
            body, prompt_tokens([prompt, str(body.get("system") or "")]), info)
        reply = self._take_reply(stored, body, failure)
        if isinstance(reply, web.Response):
            return reply
        if reply is failure:
            lines = [{"error": reply.error}]
        else:
            calls = self._calls(reply, turn, chat=False)
            written = self._raw_written(prompt) if body.get("raw") else ""
            lines = generate_lines(turn, reply, body, calls, written)
        if body.get("stream") is False:
            return await self._unstreamed(request, lines, reply, merge_generate, started)
        return await self._stream(request, lines, reply, started=started)

    # -- /api/embed -------------------------------------------------------------------------------

    async def _embed(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter_ns()
        body = await self._body(request, EMBED)
        if isinstance(body, web.Response):
            return body
        model = str(body.get("model") or "")
        if not model.strip():
            return _json_error(404, f"model '{model}' not found")
        if not _names.parse(model.strip()).valid:
            return _json_error(400, "invalid model name")
        raw_input = body.get("input")
        if isinstance(raw_input, str):
            texts = [raw_input] if raw_input else []
        elif isinstance(raw_input, list) and all(isinstance(text, str) for text in raw_input):
            texts = list(raw_input)
        elif raw_input is None:
            texts = []
        else:
            return _json_error(400, "invalid input type")
        stored = self._find(model.strip())
        if stored is None:
            return _json_error(404, f"model {go_quote(model)} not found, try pulling it first")
        error = option_error(body.get("options"))
        if error is not None:
            return _json_error(500, error)
        self._use(stored, body)
        loaded = time.perf_counter_ns()
        if not texts:  # Ollama answers an empty input with no vectors and no metrics
            return _json({"model": model, "embeddings": []})
        info = self._info(stored)
        limit = min(num_ctx(body.get("options")) or info.context_length, info.context_length)
        tokens = [len(split_tokens(text)) + 1 for text in texts]
        if body.get("truncate") is False and max(tokens) > limit:
            return _json_error(400, "the input length exceeds the context length")
        length = info.embedding_length or self.embedding_length
        dimensions = body.get("dimensions")
        vectors = [_embedding(f"{stored}\0{text}", length) for text in texts]
        if isinstance(dimensions, int) and 0 < dimensions < length:
            vectors = [_normalised(vector[:dimensions]) for vector in vectors]  # what Ollama does
        return _json({"model": model, "embeddings": [[F32(v) for v in vec] for vec in vectors],
                      "total_duration": max(time.perf_counter_ns() - started, 1000),
                      "load_duration": max(loaded - started, 1),
                      "prompt_eval_count": sum(min(n, limit) for n in tokens)})


def _without_calls_made(reply: FakeReply, prefill: Mapping[str, Any]) -> FakeReply:
    """A continued message already holds some tool calls: the model goes on after them, and does
    not make them again."""
    made = [call.get("function") for call in prefill.get("tool_calls") or ()
            if isinstance(call, Mapping)]
    said = {(f.get("name"), orjson.dumps(f.get("arguments") or {}))
            for f in made if isinstance(f, Mapping)}
    calls = [call for call in reply.tool_calls
             if (call.name, orjson.dumps(call.arguments)) not in said]
    if len(calls) == len(reply.tool_calls):
        return reply
    return dataclasses.replace(reply, tool_calls=calls)
