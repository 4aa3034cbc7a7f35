"""FakeOllama: a real HTTP server on 127.0.0.1 that speaks Ollama's protocol, for tests and demos.

    async with FakeOllama() as fake:                  # in the running loop
        fake.queue_reply(content="Hi!", thinking="Greet back.")
        async with AsyncOllama(fake.url) as client: ...
    with FakeOllama() as fake: ...                    # in a thread of its own, for blocking clients

Replies stream token by token with Ollama's shapes and real metrics on the final chunk. Faults can be
queued too (HTTP errors, mid-stream error lines, dropped or stalled connections) to test error handling.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import socket
import ssl as ssl_module
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
from aiohttp import web

from .types import ToolCall

__all__ = ["DEFAULT_MODELS", "FakeOllama", "FakeReply", "RecordedRequest"]

DEFAULT_MODELS = ("qwen3", "llama3.2", "gpt-oss:20b", "deepseek-r1", "smollm2:135m")
FAKE_VERSION = "0.13.0"
_TOKEN = re.compile(r"\S+\s*|\s+")


def split_tokens(text: str) -> list[str]:
    """Split text into word-sized tokens whose concatenation is the text."""
    return _TOKEN.findall(text)


@dataclass
class FakeReply:
    """What one `/api/chat` call streams back. See FakeOllama.queue_reply."""

    content: str = ""
    thinking: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    done_reason: str = "stop"
    tool_calls_on_done: bool = False
    error: str | None = None
    drop_after: int | None = None
    stall_after: int | None = None
    chunk_delay: float | None = None
    status: int | None = None
    body: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    peer: tuple[str, int] | None = None  # the client's address: equal peers mean a reused connection


def _as_tool_call(call: ToolCall | Mapping[str, Any]) -> ToolCall:
    if isinstance(call, ToolCall):
        return call
    if "function" in call:
        return ToolCall.from_dict(call)
    return ToolCall(call["name"], dict(call.get("arguments") or {}), call.get("id"), call.get("index"))


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeOllama:
    """A loopback Ollama server. `models` are the names it knows (others get Ollama's 404);
    `chunk_delay` paces the tokens (seconds between lines, 0 = as fast as possible); `ssl`, a server-side
    SSLContext, makes it serve https; `tool_call_ids=False` sends tool calls without id and index, as
    servers before v0.13 did."""

    def __init__(self, *, models: Iterable[str] = DEFAULT_MODELS, chunk_delay: float = 0.0,
                 version: str = FAKE_VERSION, ssl: ssl_module.SSLContext | None = None,
                 tool_call_ids: bool = True) -> None:
        self.models = {self._canonical(name) for name in models}
        self.chunk_delay = chunk_delay
        self.version = version
        self.ssl = ssl  # serve https with this server-side context
        self.tool_call_ids = tool_call_ids  # False: tool calls without id/index, as servers before v0.13 sent
        self.requests: list[dict[str, Any]] = []  # bodies of /api/chat requests, in order
        self.received: list[RecordedRequest] = []  # every request, any path
        self.disconnects = 0  # streams the client left before their end
        self._replies: deque[FakeReply] = deque()
        self._call_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._disconnected: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    # -- scripting ------------------------------------------------------------------------------------

    def queue_reply(
        self,
        content: str = "",
        thinking: str = "",
        tool_calls: Iterable[ToolCall | Mapping[str, Any]] | None = None,
        done_reason: str = "stop",
        *,
        tool_calls_on_done: bool = False,
        error: str | None = None,
        drop_after: int | None = None,
        stall_after: int | None = None,
        chunk_delay: float | None = None,
    ) -> None:
        """Set what the next `/api/chat` streams: thinking tokens, then content tokens, then tool calls
        (in a chunk of their own, or on the final chunk with `tool_calls_on_done=True`), then the final
        chunk with metrics. Faults: `error` writes an `{"error"}` line instead of the final chunk;
        `drop_after=N` closes the connection after N lines; `stall_after=N` stops writing after N lines
        and keeps the connection open."""
        calls = [_as_tool_call(call) for call in (tool_calls or ())]
        self._replies.append(FakeReply(content, thinking, calls, done_reason, tool_calls_on_done, error,
                                       drop_after, stall_after, chunk_delay))

    def queue_error(self, status: int, error: str | None = None, *, body: bytes | None = None,
                    content_type: str = "application/json", headers: Mapping[str, str] | None = None) -> None:
        """Make the next `/api/chat` answer `status` with `{"error": error}` (or the raw `body`)."""
        if body is None:
            body = orjson.dumps({"error": error or "fake error"})
        self._replies.append(FakeReply(status=status, body=body, content_type=content_type,
                                       headers=dict(headers or {})))

    def default_reply(self, request: Mapping[str, Any]) -> FakeReply:
        """The reply when nothing is queued: echo the last message, thinking first when `think` is asked."""
        messages = request.get("messages") or []
        last = messages[-1] if messages else {}
        text = str(last.get("content", "")) if isinstance(last, dict) else ""
        if isinstance(last, dict) and last.get("role") == "tool":
            content = f"The tool {last.get('tool_name') or 'call'} returned: {text}"
        elif text:
            content = f"You said: {text}"
        else:
            content = "Hello! How can I help you today?"
        think = request.get("think")
        thinking = f"The user wrote {len(text.split())} words. I will answer briefly." if think else ""
        return FakeReply(content=content, thinking=thinking)

    @property
    def pending(self) -> int:
        """Replies queued and not yet served."""
        return len(self._replies)

    # -- lifecycle ------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if not self._port:
            raise RuntimeError("FakeOllama is not running: use `async with FakeOllama()` or `with FakeOllama()`")
        return f"{'https' if self.ssl else 'http'}://127.0.0.1:{self._port}"

    async def start(self) -> None:
        """Start serving on a free port of 127.0.0.1 in the running loop."""
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_get("/", self._root)
        app.router.add_get("/api/version", self._version)
        app.router.add_get("/api/tags", self._tags)
        app.router.add_post("/api/chat", self._chat)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock, ssl_context=self.ssl).start()
        self._port = sock.getsockname()[1]
        self._disconnected = asyncio.Event()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._port = 0

    async def __aenter__(self) -> FakeOllama:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def __enter__(self) -> FakeOllama:
        """Serve from a thread with its own event loop (for blocking clients)."""
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._thread_loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # pragma: no cover - reported to the caller below
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="FakeOllama", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            raise failure[0]
        return self

    def __exit__(self, *exc_info: object) -> None:
        loop, thread = self._thread_loop, self._thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
        self._thread = self._thread_loop = None

    async def wait_disconnect(self, timeout: float = 5.0) -> None:
        """Wait until a client leaves a stream before its end (in-loop mode)."""
        assert self._disconnected is not None
        await asyncio.wait_for(self._disconnected.wait(), timeout)
        self._disconnected.clear()

    # -- handlers -------------------------------------------------------------------------------------

    @staticmethod
    def _canonical(name: str) -> str:
        return name if ":" in name else f"{name}:latest"

    def _knows(self, name: object) -> bool:
        return isinstance(name, str) and self._canonical(name) in self.models

    async def _record(self, request: web.Request) -> Any:
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        self.received.append(RecordedRequest(request.method, request.path, dict(request.headers), body,
                                             tuple(peer) if peer else None))
        return body

    async def _root(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return web.Response(text="Ollama is running")

    async def _version(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return web.json_response({"version": self.version}, dumps=lambda o: orjson.dumps(o).decode())

    async def _tags(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        models = [{"name": name, "model": name, "modified_at": "2025-07-07T20:22:19.184789Z", "size": 0,
                   "digest": "0" * 64, "details": {"format": "gguf", "family": name.split(":")[0]}}
                  for name in sorted(self.models)]
        return web.json_response({"models": models}, dumps=lambda o: orjson.dumps(o).decode())

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter_ns()
        body = await self._record(request)
        if not isinstance(body, dict):
            return _json_error(400, "missing request body" if body is None else "invalid JSON body")
        self.requests.append(body)
        model = body.get("model")
        if not model:
            return _json_error(400, "model is required")
        if not self._knows(model):
            return _json_error(404, f'model "{model}" not found, try pulling it first')
        reply = self._replies.popleft() if self._replies else self.default_reply(body)
        if reply.status is not None:
            return web.Response(status=reply.status, body=reply.body,
                                headers={"Content-Type": reply.content_type, **reply.headers})
        lines = self._chat_lines(str(model), body, reply, started)
        if body.get("stream") is False:
            return self._unstreamed(lines)
        return await self._stream(request, lines, reply)

    def _chat_lines(self, model: str, request: Mapping[str, Any], reply: FakeReply,
                    started: int) -> list[dict[str, Any]]:
        def chunk(message: dict[str, Any]) -> dict[str, Any]:
            return {"model": model, "created_at": _now(), "message": {"role": "assistant", **message},
                    "done": False}

        lines = [chunk({"content": "", "thinking": token}) for token in split_tokens(reply.thinking)]
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

    def _wire_call(self, call: ToolCall, index: int) -> dict[str, Any]:
        wire = call.to_dict()
        if not self.tool_call_ids:
            return {"function": {"name": call.name, "arguments": call.arguments}}
        wire.setdefault("id", f"call_{next(self._call_ids):08x}")
        wire["function"].setdefault("index", index)
        return wire

    @staticmethod
    def _finish_metrics(line: dict[str, Any]) -> None:
        started = line.pop("_started", None)
        if started is None:
            return
        total = max(time.perf_counter_ns() - started, 1000)
        load = total // 20
        prompt = total // 10
        line.update(total_duration=total, load_duration=load, prompt_eval_duration=prompt,
                    eval_duration=max(total - load - prompt, 1))

    def _unstreamed(self, lines: list[dict[str, Any]]) -> web.Response:
        if lines and "error" in lines[-1]:
            return _json_error(500, str(lines[-1]["error"]))
        final = lines[-1]
        self._finish_metrics(final)
        message = final["message"]
        message["content"] = "".join(line["message"].get("content", "") for line in lines)
        thinking = "".join(line["message"].get("thinking", "") for line in lines)
        if thinking:
            message["thinking"] = thinking
        calls = [c for line in lines for c in line["message"].get("tool_calls", [])]
        if calls:
            message["tool_calls"] = calls
        return web.Response(body=orjson.dumps(final), content_type="application/json")

    async def _stream(self, request: web.Request, lines: list[dict[str, Any]],
                      reply: FakeReply) -> web.StreamResponse:
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
                    self._finish_metrics(line)
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


def _json_error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=orjson.dumps({"error": message}), content_type="application/json")
