"""FakeOllama itself: its constructor and scripting API (queue_reply, queue_error, default_reply),
and its lifecycle (start/stop in the running loop or in a thread of its own, the routes, the URL).
The endpoints come from the mixins it inherits."""

from __future__ import annotations

import asyncio
import itertools
import socket
import ssl as ssl_module
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from ..types import ToolCall
from ._generation import _GenerationRoutes
from ._models import _ModelRoutes
from ._progress import _ProgressRoutes
from ._state import FakeReply, RecordedRequest, _as_tool_call
from ._store import DEFAULT_MODELS, DEFAULT_PULLABLE, FAKE_VERSION, _Loaded, _ModelInfo
from ._wire import _error_body


class FakeOllama(_GenerationRoutes, _ModelRoutes, _ProgressRoutes):
    """A loopback Ollama server. `models` are the names it knows (others get Ollama's 404);
    `chunk_delay` paces the tokens and the progress lines of pull/push/create (seconds between
    lines, 0 = as fast as possible); `ssl`, a server-side SSLContext, makes it serve https;
    `tool_call_ids=False` sends tool calls without id and index, as servers before v0.13 did.
    `pullable` are the names `/api/pull` finds in the "registry" (besides the models already known);
    `embedding_length` is the length of the vectors `/api/embed` returns (`dimensions` can only
    shorten them, as with Ollama)."""

    def __init__(self, *, models: Iterable[str] = DEFAULT_MODELS, chunk_delay: float = 0.0,
                 version: str = FAKE_VERSION, ssl: ssl_module.SSLContext | None = None,
                 tool_call_ids: bool = True, pullable: Iterable[str] = DEFAULT_PULLABLE,
                 embedding_length: int = 8) -> None:
        self.models = {self._canonical(name) for name in models}
        self.pullable = {self._canonical(name) for name in pullable}  # what /api/pull can fetch
        self.embedding_length = embedding_length  # the length of /api/embed's vectors
        self.chunk_delay = chunk_delay
        self.version = version
        self.ssl = ssl  # serve https with this server-side context
        # False: tool calls without id/index, as servers before v0.13 sent
        self.tool_call_ids = tool_call_ids
        # bodies of /api/chat and /api/generate requests, in order
        self.requests: list[dict[str, Any]] = []
        self.received: list[RecordedRequest] = []  # every request, any path
        # uploaded with POST /api/blobs/:digest, by digest ("sha256:<hex>")
        self.blobs: dict[str, bytes] = {}
        self.disconnects = 0  # streams the client left before their end
        self._replies: deque[FakeReply] = deque()
        self._call_ids = itertools.count(1)
        self._infos: dict[str, _ModelInfo] = {}  # models pulled, created or copied since start
        self._loaded: dict[str, _Loaded] = {}
        self._uses = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._disconnected: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    # -- scripting --------------------------------------------------------------------------------

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
        """Set what the next `/api/chat` (or `/api/generate`) streams: thinking tokens, then content
        tokens, then tool calls (in a chunk of their own, or on the final chunk with
        `tool_calls_on_done=True`), then the final chunk with metrics. Faults: `error` writes an
        `{"error"}` line instead of the final chunk; `drop_after=N` closes the connection after N
        lines; `stall_after=N` stops writing after N lines and keeps the connection open.
        `/api/generate` streams `content` as `response` and puts tool calls on its final chunk."""
        calls = [_as_tool_call(call) for call in (tool_calls or ())]
        self._replies.append(FakeReply(content, thinking, calls, done_reason, tool_calls_on_done,
                                       error, drop_after, stall_after, chunk_delay))

    def queue_error(self, status: int, error: str | None = None, *, body: bytes | None = None,
                    content_type: str = "application/json",
                    headers: Mapping[str, str] | None = None) -> None:
        """Make the next `/api/chat` or `/api/generate` answer `status` with `{"error": error}` (or
        the raw `body`)."""
        if body is None:
            body = _error_body(error or "fake error")
        self._replies.append(FakeReply(status=status, body=body, content_type=content_type,
                                       headers=dict(headers or {})))

    def default_reply(self, request: Mapping[str, Any]) -> FakeReply:
        """The reply when nothing is queued: echo the last message (or generate's prompt), thinking
        first when `think` is asked."""
        if "messages" not in request and "prompt" in request:
            text = str(request.get("prompt") or "")
            content = f"You said: {text}"
        else:
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
        words = len(text.split())
        thinking = f"The user wrote {words} words. I will answer briefly." if think else ""
        return FakeReply(content=content, thinking=thinking)

    @property
    def pending(self) -> int:
        """Replies queued and not yet served."""
        return len(self._replies)

    @property
    def loaded(self) -> list[str]:
        """The models in memory, as `/api/ps` lists them: the longest to stay first (the latest
        used, when their keep_alive is the same)."""
        return [entry.name for entry in self._in_memory()]

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if not self._port:
            raise RuntimeError(
                "FakeOllama is not running: use `async with FakeOllama()` or `with FakeOllama()`")
        return f"{'https' if self.ssl else 'http'}://127.0.0.1:{self._port}"

    _ROUTES: tuple[tuple[str, str, str], ...] = (  # method, path, handler name
        ("GET", "/", "_root"),
        ("GET", "/api/version", "_version"),
        ("GET", "/api/tags", "_tags"),
        ("GET", "/api/ps", "_ps"),
        ("POST", "/api/chat", "_chat"),
        ("POST", "/api/generate", "_generate"),
        ("POST", "/api/embed", "_embed"),
        ("POST", "/api/show", "_show"),
        ("POST", "/api/pull", "_pull"),
        ("POST", "/api/push", "_push"),
        ("POST", "/api/create", "_create"),
        ("POST", "/api/copy", "_copy"),
        ("DELETE", "/api/delete", "_delete"),
        ("HEAD", "/api/blobs/{digest}", "_head_blob"),
        ("POST", "/api/blobs/{digest}", "_create_blob"),
    )

    async def start(self) -> None:
        """Start serving on a free port of 127.0.0.1 in the running loop."""
        app = web.Application(client_max_size=64 * 2**20)
        for method, path, handler in self._ROUTES:
            if method == "GET":
                # and HEAD, as Ollama routes / and /api/tags
                app.router.add_get(path, getattr(self, handler))
            else:
                app.router.add_route(method, path, getattr(self, handler))
        app.router.add_route("*", "/{tail:.*}", self._unrouted)
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

    async def _unrouted(self, request: web.Request) -> web.StreamResponse:
        """Anything else: gin's plain-text 405 for a known path, 404 otherwise."""
        await self._record(request)
        templates = {path.split("{", 1)[0] for _, path, _ in self._ROUTES}
        asked = request.path
        known = any(asked == t or (t.endswith("/") and t != "/" and asked.startswith(t))
                    for t in templates)
        if known:
            return web.Response(status=405, text="405 method not allowed")
        return web.Response(status=404, text="404 page not found")
