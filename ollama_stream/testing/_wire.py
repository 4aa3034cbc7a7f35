"""How the fake reads and writes HTTP: each request recorded with its JSON body, Ollama's JSON
answers and `{"error": ...}` answers, and NDJSON streams paced by chunk_delay, with the queued
faults (drop, stall) and the final chunk's metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from ._state import FakeReply, RecordedRequest, _FakeState


def _json(obj: Any, status: int = 200, *, charset: str | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(obj), content_type="application/json",
                        charset=charset)


def _error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


def _json_error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=_error_body(message), content_type="application/json")


def _finish_metrics(line: dict[str, Any]) -> None:
    """Put the durations on a final chunk, measured from its `_started` mark to now."""
    started = line.pop("_started", None)
    if started is None:
        return
    total = max(time.perf_counter_ns() - started, 1000)
    load = total // 20
    prompt = total // 10
    line.update(total_duration=total, load_duration=load, prompt_eval_duration=prompt,
                eval_duration=max(total - load - prompt, 1))


class _Wire(_FakeState):
    """Reading requests into `received` and streaming lines back, for the endpoint mixins."""

    async def _record(self, request: web.Request, *, raw_body: bool = False) -> Any:
        raw = await request.read()
        if raw_body:
            body: Any = raw
        else:
            try:
                body = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                body = raw
        transport = request.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        self.received.append(RecordedRequest(request.method, request.path, dict(request.headers),
                                             body, tuple(peer) if peer else None))
        return body

    async def _json_body(self, request: web.Request) -> dict[str, Any] | web.Response:
        """The request's JSON object, or Ollama's 400 for a missing or malformed one."""
        body = await self._record(request)
        if not isinstance(body, dict):
            message = "missing request body" if body is None else "invalid JSON body"
            return _json_error(400, message)
        return body

    async def _stream(self, request: web.Request, lines: list[dict[str, Any]], reply: FakeReply,
                      before_last: Callable[[], None] | None = None) -> web.StreamResponse:
        """Write `lines` as NDJSON with the reply's pacing and faults; `before_last` runs just
        before the last line is written (so that a client reading that line sees its effect)."""
        delay = self.chunk_delay if reply.chunk_delay is None else reply.chunk_delay
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        try:
            for n, line in enumerate(lines):
                if n == reply.drop_after:
                    assert request.transport is not None
                    request.transport.close()
                    return response
                if n == reply.stall_after:
                    await asyncio.Event().wait()  # until the client leaves (handler cancellation)
                if line.get("done"):
                    _finish_metrics(line)
                if before_last is not None and n == len(lines) - 1:
                    before_last()
                await response.write(orjson.dumps(line) + b"\n")
                if delay:
                    await asyncio.sleep(delay)
            await response.write_eof()
        except (asyncio.CancelledError, ConnectionError):
            self.disconnects += 1
            if self._disconnected is not None:
                self._disconnected.set()
            raise
        return response
