"""The fake's generation endpoints: `/api/chat` and `/api/generate`, which serve the reply queue as
Ollama's token chunks (streamed or as one object), and `/api/embed`'s deterministic vectors."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ..types import ToolCall
from ._state import FakeReply
from ._store import _embedding, _keep_alive_seconds, _normalised, _now, _token_ids, split_tokens
from ._wire import _finish_metrics, _json, _json_error, _Wire


class _GenerationRoutes(_Wire):
    """`/api/chat`, `/api/generate` and `/api/embed`, mixed into FakeOllama."""

    # -- /api/chat and /api/generate --------------------------------------------------------------

    async def _model_request(self, request: web.Request, task: str,
                             not_found: str) -> tuple[dict[str, Any], str] | web.Response:
        """The checks /api/chat and /api/generate share: a JSON body (recorded in `requests`), a
        model that is known and can do `task`. `not_found` is that handler's own 404 text, with
        `{model}` in it."""
        body = await self._json_body(request)
        if isinstance(body, web.Response):
            return body
        self.requests.append(body)
        model = body.get("model")
        if not model:
            return _json_error(400, "model is required")
        if not self._knows(model):
            return _json_error(404, not_found.format(model=model))
        if self._info(str(model)).embedding:
            return _json_error(400, f'"{model}" does not support {task}')
        return body, str(model)

    @staticmethod
    def _queued_error(reply: FakeReply) -> web.Response | None:
        if reply.status is None:
            return None
        return web.Response(status=reply.status, body=reply.body,
                            headers={"Content-Type": reply.content_type, **reply.headers})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter_ns()
        not_found = 'model "{model}" not found, try pulling it first'
        checked = await self._model_request(request, "chat", not_found)
        if isinstance(checked, web.Response):
            return checked
        body, model = checked
        reply = self._next_reply(body)
        error = self._queued_error(reply)
        if error is not None:
            return error
        self._use(model, body)
        lines = self._chat_lines(model, body, reply, started)
        if body.get("stream") is False:
            return self._unstreamed(lines)
        return await self._stream(request, lines, reply)

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter_ns()
        checked = await self._model_request(request, "generate", "model '{model}' not found")
        if isinstance(checked, web.Response):
            return checked
        body, model = checked
        if body.get("raw") and (body.get("template") or body.get("system") or body.get("context")):
            return _json_error(400, "raw mode does not support template, system, or context")
        if not body.get("prompt"):  # an empty prompt only loads the model (or unloads it)
            self._use(model, body)
            unload = _keep_alive_seconds(body.get("keep_alive")) == 0
            return _json({"model": model, "created_at": _now(), "response": "", "done": True,
                          "done_reason": "unload" if unload else "load"})
        reply = self._next_reply(body)
        error = self._queued_error(reply)
        if error is not None:
            return error
        self._use(model, body)
        lines = self._generate_lines(model, body, reply, started)
        if body.get("stream") is False:
            return self._unstreamed_generate(lines)
        return await self._stream(request, lines, reply)

    def _chat_lines(self, model: str, request: Mapping[str, Any], reply: FakeReply,
                    started: int) -> list[dict[str, Any]]:
        def chunk(message: dict[str, Any]) -> dict[str, Any]:
            return {"model": model, "created_at": _now(),
                    "message": {"role": "assistant", **message}, "done": False}

        lines = [chunk({"content": "", "thinking": token})
                 for token in split_tokens(reply.thinking)]
        lines += [chunk({"content": token}) for token in split_tokens(reply.content)]
        calls = [self._wire_call(call, index) for index, call in enumerate(reply.tool_calls)]
        if calls and not reply.tool_calls_on_done:
            lines.append(chunk({"content": "", "tool_calls": calls}))
        if reply.error is not None:
            lines.append({"error": reply.error})
            return lines
        final = chunk({"content": ""})
        if calls and reply.tool_calls_on_done:
            final["message"]["tool_calls"] = calls
        prompt_tokens = sum(len(split_tokens(str(m.get("content", ""))))
                            for m in request.get("messages") or [] if isinstance(m, dict))
        final.update(done=True, done_reason=reply.done_reason, prompt_eval_count=prompt_tokens + 10,
                     eval_count=max(1, len(lines)))
        final["_started"] = started
        lines.append(final)
        return lines

    def _generate_lines(self, model: str, request: Mapping[str, Any], reply: FakeReply,
                        started: int) -> list[dict[str, Any]]:
        """Generate's chunks: `response` on every line, `thinking` on thinking lines; the final line
        has `context` (unless raw) and the metrics, and any tool calls."""
        def chunk(response: str, **extra: Any) -> dict[str, Any]:
            return {"model": model, "created_at": _now(), "response": response, **extra,
                    "done": False}

        lines = [chunk("", thinking=token) for token in split_tokens(reply.thinking)]
        lines += [chunk(token) for token in split_tokens(reply.content)]
        if reply.error is not None:
            lines.append({"error": reply.error})
            return lines
        prompt = str(request.get("prompt") or "")
        final = chunk("")
        final.update(done=True, done_reason=reply.done_reason)
        if not request.get("raw"):
            previous = [n for n in request.get("context") or [] if isinstance(n, int)]
            final["context"] = previous + _token_ids(prompt) + _token_ids(reply.content)
        if reply.tool_calls:
            final["tool_calls"] = [self._wire_call(call, index)
                                   for index, call in enumerate(reply.tool_calls)]
        system = str(request.get("system") or "")
        prompt_tokens = len(split_tokens(prompt)) + len(split_tokens(system))
        final.update(prompt_eval_count=prompt_tokens + 10, eval_count=max(1, len(lines)))
        final["_started"] = started
        lines.append(final)
        return lines

    def _wire_call(self, call: ToolCall, index: int) -> dict[str, Any]:
        wire = call.to_dict()
        if not self.tool_call_ids:
            return {"function": {"name": call.name, "arguments": call.arguments}}
        wire.setdefault("id", f"call_{next(self._call_ids):08x}")
        wire["function"].setdefault("index", index)
        return wire

    def _unstreamed(self, lines: list[dict[str, Any]]) -> web.Response:
        if lines and "error" in lines[-1]:
            return _json_error(500, str(lines[-1]["error"]))
        final = lines[-1]
        _finish_metrics(final)
        message = final["message"]
        message["content"] = "".join(line["message"].get("content", "") for line in lines)
        thinking = "".join(line["message"].get("thinking", "") for line in lines)
        if thinking:
            message["thinking"] = thinking
        calls = [c for line in lines for c in line["message"].get("tool_calls", [])]
        if calls:
            message["tool_calls"] = calls
        return _json(final)

    def _unstreamed_generate(self, lines: list[dict[str, Any]]) -> web.Response:
        if lines and "error" in lines[-1]:
            return _json_error(500, str(lines[-1]["error"]))
        final = lines[-1]
        _finish_metrics(final)
        final["response"] = "".join(line["response"] for line in lines)
        thinking = "".join(line.get("thinking", "") for line in lines)
        if thinking:
            final["thinking"] = thinking
        return _json(final)

    # -- /api/embed -------------------------------------------------------------------------------

    async def _embed(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter_ns()
        body = await self._json_body(request)
        if isinstance(body, web.Response):
            return body
        model = body.get("model")
        if not model:
            return _json_error(400, "model is required")
        raw_input = body.get("input")
        if isinstance(raw_input, str):
            texts = [raw_input] if raw_input else []
        elif isinstance(raw_input, list) and all(isinstance(text, str) for text in raw_input):
            texts = list(raw_input)
        elif raw_input is None:
            texts = []
        else:
            return _json_error(400, "invalid input type")
        if not self._knows(model):
            return _json_error(404, f"model '{model}' not found")
        self._use(str(model), body)
        loaded = time.perf_counter_ns()
        if not texts:  # Ollama answers an empty input with no vectors and no metrics
            return _json({"model": model, "embeddings": []})
        dimensions = body.get("dimensions")
        canonical = self._canonical(str(model))
        vectors = [_embedding(f"{canonical}\0{text}", self.embedding_length) for text in texts]
        if isinstance(dimensions, int) and 0 < dimensions < self.embedding_length:
            vectors = [_normalised(vector[:dimensions]) for vector in vectors]  # what Ollama does
        tokens = sum(len(split_tokens(text)) + 1 for text in texts)
        return _json({"model": model, "embeddings": vectors,
                      "total_duration": max(time.perf_counter_ns() - started, 1000),
                      "load_duration": max(loaded - started, 1), "prompt_eval_count": tokens})
