"""How the fake reads and writes HTTP as Ollama's gin server does: requests recorded and decoded
as Go decodes them, JSON answers (`application/json; charset=utf-8`, no newline), and NDJSON one
line per HTTP chunk, headers leaving with the first (so an early error is a status), with faults.

Rules: `created_at: None` in a line is stamped as it is written; a `done` line's durations are
measured then, from the reply's start."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from ._godecode import MISSING_BODY, decode
from ._gojson import dumps, go_time
from ._gotypes import GoType
from ._state import FakeReply, RecordedRequest, _FakeState

JSON_UTF8 = "application/json; charset=utf-8"  # gin's c.JSON
JSON_PLAIN = "application/json"  # set by a handler before c.JSON: streamResponse, waitForStream
NDJSON = "application/x-ndjson"
_DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


def _json(obj: Any, status: int = 200, *, content_type: str = JSON_UTF8) -> web.Response:
    """c.JSON(status, obj)."""
    return web.Response(status=status, body=dumps(obj), headers={"Content-Type": content_type})


def _error_body(message: str) -> bytes:
    return dumps({"error": message})


def _json_error(status: int, message: str, *, content_type: str = JSON_UTF8) -> web.Response:
    return _json({"error": message}, status, content_type=content_type)


def _finish_metrics(line: dict[str, Any], started: int) -> None:
    """Put the durations on a final chunk (where its builder left their places), measured from
    `started` (perf_counter_ns) to now."""
    if line.get("total_duration", 0) is not None:
        return
    total = max(time.perf_counter_ns() - started, 1000)
    load = total // 20
    prompt = total // 10
    line.update(total_duration=total, load_duration=load, prompt_eval_duration=prompt,
                eval_duration=max(total - load - prompt, 1))


def _stamp(line: dict[str, Any], started: int) -> bytes:
    if "created_at" in line and line["created_at"] is None:
        line["created_at"] = go_time()
    if line.get("done") is True:
        _finish_metrics(line, started)
    return dumps(line)


class _GoStream(web.StreamResponse):
    """A streamed answer whose headers leave with its first line, as Go's net/http sends them
    (in the same write as the first flushed chunk), not in a write of their own."""

    _send_headers_immediately = False  # aiohttp's switch (web.Response has it off)


class _Wire(_FakeState):
    """Reading requests into `received` and writing answers back, for the endpoint mixins."""

    async def _record(self, request: web.Request) -> bytes:
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw
        if request.method == "POST" and request.path.startswith("/api/blobs/"):
            body = raw  # blob uploads are recorded as the bytes they are
        transport = request.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        self.received.append(RecordedRequest(request.method, request.path, dict(request.headers),
                                             body, tuple(peer[:2]) if peer else None))
        return raw

    async def _body(self, request: web.Request, struct: GoType) -> dict[str, Any] | web.Response:
        """The request decoded into `struct` as Ollama decodes it, or its 400."""
        raw = await self._record(request)
        body, error = decode(raw, struct)
        if error is not None or body is None:
            return _json_error(400, error or MISSING_BODY)
        return body

    def _left(self) -> None:
        self.disconnects += 1
        if self._disconnected is not None:
            self._disconnected.set()

    async def _stream(self, request: web.Request, lines: list[dict[str, Any]], reply: FakeReply,
                      before_last: Callable[[], None] | None = None,
                      started: int | None = None) -> web.StreamResponse:
        """Write `lines` as NDJSON (gin's c.Stream: one write and flush per line), with the
        reply's pacing and faults. Nothing is sent before the first line, so an `{"error"}`
        first line becomes the status `reply.error_status` with that body, and a drop or stall
        at 0 happens before the headers. `before_last` runs just before the last line is written
        (so that a client reading that line sees its effect)."""
        started = time.perf_counter_ns() if started is None else started
        delay = self.chunk_delay if reply.chunk_delay is None else reply.chunk_delay
        response: web.StreamResponse | None = None
        written = 0  # bytes of the body so far, for `cut_at`
        try:
            for n, line in enumerate(lines):
                if n == reply.drop_after or (reply.cut_at == 0 and response is None):
                    assert request.transport is not None
                    request.transport.close()
                    return response or web.StreamResponse()
                if n == reply.stall_after:
                    await asyncio.Event().wait()  # until the client leaves (handler cancellation)
                if before_last is not None and n == len(lines) - 1:
                    before_last()
                last = n == len(lines) - 1 or "error" in line
                if response is None and "error" in line:  # nothing written yet: a real status
                    response = _GoStream(status=reply.error_status,
                                         headers={"Content-Type": JSON_PLAIN})
                    await response.prepare(request)
                    await response.write_eof(_error_body(str(line["error"])))
                    return response
                if response is None:
                    response = _GoStream(headers={"Content-Type": NDJSON})
                    await response.prepare(request)
                data = _stamp(line, started) + b"\n"
                if reply.cut_at is not None and written + len(data) > reply.cut_at:
                    if reply.cut_at > written:  # the line's first bytes, then the cut
                        await response.write(data[:reply.cut_at - written])
                    assert request.transport is not None
                    request.transport.close()
                    return response
                written += len(data)
                if last:  # the last chunk and the end of the body in one write
                    await response.write_eof(data)
                    return response
                await response.write(data)
                if delay:
                    await asyncio.sleep(delay)
            response = response or _GoStream(headers={"Content-Type": NDJSON})
            await response.prepare(request)  # no lines at all: an empty stream
            await response.write_eof()
        except (asyncio.CancelledError, ConnectionError):
            self._left()
            raise
        return response

    async def _unstreamed(self, request: web.Request, lines: list[dict[str, Any]],
                          reply: FakeReply, merge: Callable[[list[dict[str, Any]]], dict[str, Any]],
                          started: int) -> web.StreamResponse:
        """`stream: false`: the server gathers every line, then answers once: the merged object,
        or the error's status (even after output, never a partial body). The scripted faults
        still happen where the lines would have: a drop closes the connection with no answer, a
        stall never answers."""
        delay = self.chunk_delay if reply.chunk_delay is None else reply.chunk_delay
        try:
            for n, line in enumerate(lines):
                if n == reply.drop_after or reply.cut_at is not None:  # closed without an answer
                    assert request.transport is not None
                    request.transport.close()
                    return web.StreamResponse()
                if n == reply.stall_after:
                    await asyncio.Event().wait()
                if "error" in line:
                    return _json_error(reply.error_status, str(line["error"]))
                if delay and n < len(lines) - 1:
                    await asyncio.sleep(delay)
        except (asyncio.CancelledError, ConnectionError):
            self._left()
            raise
        merged = merge(lines)
        _stamp(merged, started)
        return web.Response(body=dumps(merged), headers={"Content-Type": JSON_UTF8})
