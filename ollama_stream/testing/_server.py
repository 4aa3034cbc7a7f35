"""FakeOllama itself: its constructor and scripting API (queue_reply, queue_error, default_reply,
reset, add_web_page), and its lifecycle (start/stop in the running loop or in a thread of its
own, the routes, the URL). The endpoints come from the mixins it inherits."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import socket
import ssl as ssl_module
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiohttp import web

from ..types import ToolCall
from ._checks import resolve_think
from ._generation import _GenerationRoutes
from ._instances import structured_content
from ._models import _ModelRoutes
from ._progress import _ProgressRoutes
from ._replies import ToolCallIds
from ._state import FakeReply, RecordedRequest, _as_tool_call
from ._store import (
    DEFAULT_MODELS,
    DEFAULT_PULLABLE,
    FAKE_VERSION,
    FakeModel,
    _Loaded,
    _model_info,
    _ModelInfo,
)
from ._web import _WebPage, _WebRoutes
from ._wire import _error_body


class FakeOllama(_GenerationRoutes, _ModelRoutes, _ProgressRoutes, _WebRoutes):
    """A loopback Ollama server that behaves as Ollama v0.33 does (statuses, texts, bytes).

    `models` are the models it knows (others get Ollama's 404): names, whose details are
    inferred from the name, or `FakeModel`s with their capabilities and lengths. `chunk_delay`
    paces the tokens and the progress lines of pull/push/create (seconds between lines, 0 = as
    fast as possible); `ssl`, a server-side SSLContext, makes it serve https. `version` is the
    Ollama it claims to be, and old ones are emulated where clients can tell: tool calls carry
    `function.index` since v0.4.7 and `id` since v0.12.10; /api/tags has capabilities and
    lengths since v0.30.0. `tool_call_ids=False` sends tool calls with neither (as before
    v0.4.7). `pullable` are the names `/api/pull` finds in the "registry" (besides the models
    already known); `embedding_length` is the length of the vectors `/api/embed` returns (a
    FakeModel's own wins; `dimensions` can only shorten them, as with Ollama).

    `native=True` puts every model on llama-server's native chat path (Ollama v0.30+ for GGUF
    models with no Go TEMPLATE, renderer or parser): tool calls arrive all on the final
    `done: true` chunk, with llama.cpp's 32-character ids, and a trailing assistant message is
    continued only with thinking off (else llama-server's 400). The default, False, is the
    rendered path, because v0.33 takes it for every model that ships a Go TEMPLATE, which the
    library's models do (`chatModeForModel` / `shouldUseGoTemplate` in server/routes.go): tool
    calls then arrive whole in a chunk of their own, with ids `call_` + 8 characters.

    `host` and `port` choose where it listens (default 127.0.0.1 and a free port), so that it
    can stand in for Ollama at a fixed address (`ollama-stream fake-server`)."""

    def __init__(self, *, models: Iterable[str | FakeModel] = DEFAULT_MODELS,
                 chunk_delay: float = 0.0, version: str = FAKE_VERSION,
                 ssl: ssl_module.SSLContext | None = None, tool_call_ids: bool = True,
                 pullable: Iterable[str] = DEFAULT_PULLABLE, embedding_length: int = 8,
                 native: bool = False, host: str = "127.0.0.1", port: int = 0) -> None:
        self._infos: dict[str, _ModelInfo] = {}  # models described or changed since start
        self.models: set[str] = set()
        for model in models:
            if isinstance(model, FakeModel):
                name = self._canonical(model.name)
                self._infos[name] = _model_info(model)
            else:
                name = self._canonical(model)
            self.models.add(name)
        self.pullable = {self._canonical(name) for name in pullable}  # what /api/pull can fetch
        self.embedding_length = embedding_length  # the length of /api/embed's vectors
        self.chunk_delay = chunk_delay
        self.version = version
        self.ssl = ssl  # serve https with this server-side context
        self.tool_call_ids = tool_call_ids  # False: tool calls without id and index
        self.native = native  # llama-server's native chat path for every model
        self.host = host
        self.port = port  # 0: a free port, chosen when it starts
        self.cloud_disabled = False  # True: /api/status says so, web search/fetch answer 403
        # bodies of /api/chat and /api/generate requests, in order
        self.requests: list[dict[str, Any]] = []
        self.received: list[RecordedRequest] = []  # every request, any path
        self._raw_prompts: list[str] = []  # of raw generates: how a resumed one is known
        # uploaded with POST /api/blobs/:digest, by digest ("sha256:<hex>")
        self.blobs: dict[str, bytes] = {}
        self.disconnects = 0  # streams the client left before their end
        self._replies: deque[FakeReply] = deque()
        self._ids = ToolCallIds()
        self._loaded: dict[str, _Loaded] = {}
        self._uses = itertools.count(1)
        self._web_pages: dict[str, _WebPage] = {}
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
        drop_after: int | Sequence[int] | None = None,
        stall_after: int | None = None,
        chunk_delay: float | None = None,
        error_status: int = 500,
        cut_at: int | Sequence[int] | None = None,
    ) -> None:
        """Set what the next `/api/chat` (or `/api/generate`) generates: thinking tokens (shown
        only when thinking is on: a thinking model, `think` not false), then content tokens, then
        tool calls (in a chunk of their own, or on the final chunk with `tool_calls_on_done=True`
        or on the native path), then the final chunk with metrics. A request ending in an
        assistant message gets the part of `content` after that message (prefill).

        Faults: `error` replaces the final chunk; before any output (no thinking, content or
        tool calls shown) it is a real HTTP status, `error_status` (500 by default; 429, 503, ...),
        after output a last `{"error"}` line under 200. `drop_after=N` closes the connection after
        N lines; `cut_at=B` closes it after B bytes of the body (inside a line, a token, a UTF-8
        character); `stall_after=N` stops writing after N lines and keeps the connection open.
        They apply to `stream: false` too: an error is its status, a drop closes without an
        answer, a stall never answers. A sequence of drops (`drop_after=[3, 5]`, `cut_at=[...]`)
        scripts as many requests: the reply is cut at each in turn (each count within that
        request's own stream, such as the continuation of a resumed one), then served whole.
        `/api/generate` streams `content` as `response` and puts tool calls on its final chunk.
        Loading requests (no messages, no prompt) leave the queue alone."""
        calls = [_as_tool_call(call) for call in (tool_calls or ())]
        if drop_after is not None and cut_at is not None:
            raise ValueError("queue_reply: drop_after and cut_at together; give one of them")
        drops = _counts("drop_after", drop_after)
        cuts = _counts("cut_at", cut_at)
        faults: list[tuple[int | None, int | None]] = [(n, None) for n in drops]
        faults += [(None, n) for n in cuts]
        if not isinstance(drop_after if drops else cut_at, int):
            faults.append((None, None))  # none, or a sequence: after its cuts, served whole
        for drop, cut in faults:
            self._replies.append(FakeReply(content, thinking, calls, done_reason,
                                           tool_calls_on_done, error, drop, stall_after,
                                           chunk_delay, error_status=error_status, cut_at=cut))

    def queue_error(self, status: int, error: str | None = None, *, body: bytes | None = None,
                    content_type: str = "application/json",
                    headers: Mapping[str, str] | None = None) -> None:
        """Make the next generating `/api/chat` or `/api/generate` answer `status` with
        `{"error": error}` (or the raw `body`), as a scheduler or proxy failure would."""
        if body is None:
            body = _error_body(error or "fake error")
        self._replies.append(FakeReply(status=status, body=body, content_type=content_type,
                                       headers=dict(headers or {})))

    def default_reply(self, request: Mapping[str, Any]) -> FakeReply:
        """The reply when nothing is queued: an echo of the last user message (or generate's
        prompt, or the tool result), after a line of thinking (shown when thinking is on; on
        gpt-oss models it names the think level). With a `format`, the content is JSON: a valid
        instance of the schema (generated from it), or `{"answer": "You said: ..."}` for
        "json"."""
        if "messages" not in request and "prompt" in request:
            text = str(request.get("prompt") or "")
            content = f"You said: {text}"
        else:
            messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
            # a trailing assistant message is being continued: answer what came before it
            asked = [m for m in messages if m.get("role") != "assistant"]
            last = asked[-1] if asked else {}
            text = str(last.get("content") or "")
            if last.get("role") == "tool":
                content = f"The tool {last.get('tool_name') or 'call'} returned: {text}"
            else:
                content = f"You said: {text}"
        thinking = f"The user wrote {len(text.split())} words. I will answer briefly."
        stored = self._find(request.get("model"))
        if stored is not None and self._info(stored).harmony:
            level = resolve_think(self._info(stored), request.get("think"), stored).level
            thinking += f" Reasoning: {level}."
        if request.get("format") == "json" or isinstance(request.get("format"), dict):
            content = structured_content(request["format"], content)
        return FakeReply(content=content, thinking=thinking)

    def reset(self) -> None:
        """Forget the queued replies and what was received (`requests`, `received`,
        `disconnects`), e.g. between tests sharing one fake; the models stay as they are."""
        self._replies.clear()
        self.requests.clear()
        self.received.clear()
        self._raw_prompts.clear()
        self.disconnects = 0
        if self._disconnected is not None:
            self._disconnected.clear()

    def add_web_page(self, url: str, title: str, content: str, links: Iterable[str] = ()) -> None:
        """A page for the web search and fetch endpoints: fetched by its URL, found by a search
        for any word of its title or content. With none added, both answer canned pages."""
        self._web_pages[url] = _WebPage(url, title, content, tuple(links))

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
        """Where a client reaches it; a wildcard bind address is reached on loopback."""
        if not self._port:
            raise RuntimeError(
                "FakeOllama is not running: use `async with FakeOllama()` or `with FakeOllama()`")
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.ssl else 'http'}://{host}:{self._port}"

    _ROUTES: tuple[tuple[str, str, str], ...] = (  # method, path, handler name
        ("GET", "/", "_root"),
        ("HEAD", "/", "_root"),
        ("GET", "/api/version", "_version"),
        ("HEAD", "/api/version", "_version"),
        ("GET", "/api/status", "_status"),
        ("GET", "/api/tags", "_tags"),
        ("HEAD", "/api/tags", "_tags"),
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
        ("POST", "/api/experimental/web_search", "_web_search"),
        ("POST", "/api/experimental/web_fetch", "_web_fetch"),
    )

    async def start(self) -> None:
        """Start serving on `host`:`port` (a free port when 0) in the running loop."""
        app = web.Application(client_max_size=64 * 2**20)
        for method, path, handler in self._ROUTES:
            if method == "GET":  # HEAD only where Ollama routes it (/, version, tags)
                app.router.add_get(path, getattr(self, handler), allow_head=False)
            else:
                app.router.add_route(method, path, getattr(self, handler))
        app.router.add_route("*", "/{tail:.*}", self._unrouted)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        family = socket.AF_INET6 if _is_ipv6(self.host) else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            await self._runner.cleanup()
            self._runner = None
            raise
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
            except BaseException as exc:  # reported to the caller below
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
            self._thread.join()
            self._thread = self._thread_loop = None
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
        """Anything else: gin's plain-text 405 (with Allow) for a known path, 404 otherwise."""
        await self._record(request)
        allowed = [method for method, path, _ in self._ROUTES if _matches(path, request.path)]
        if allowed:
            return web.Response(status=405, body=b"405 method not allowed",
                                headers={"Content-Type": "text/plain",
                                         "Allow": ", ".join(dict.fromkeys(allowed))})
        return web.Response(status=404, body=b"404 page not found",
                            headers={"Content-Type": "text/plain"})


def _matches(template: str, path: str) -> bool:
    if "{" not in template:
        return template == path
    prefix = template.split("{", 1)[0]
    return path.startswith(prefix) and "/" not in path[len(prefix):] and path != prefix


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def _counts(name: str, value: int | Sequence[int] | None) -> list[int]:
    """A fault's counts: none, one, or a sequence of them (one per request)."""
    if value is None:
        return []
    counts = [value] if isinstance(value, int) else list(value)
    if not counts or any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in counts):
        raise ValueError(f"queue_reply: {name} must be a count >= 0 or a sequence of them, "
                         f"got {value!r}")
    return counts
