"""FakeOllama: a real HTTP server on 127.0.0.1 that speaks Ollama's protocol, for tests and demos.

    async with FakeOllama() as fake:                  # in the running loop
        fake.queue_reply(content="Hi!", thinking="Greet back.")
        async with AsyncOllama(fake.url) as client: ...
    with FakeOllama() as fake: ...                    # in a thread of its own, for blocking clients

Replies stream token by token with Ollama's shapes and real metrics on the final chunk. Faults can be
queued too (HTTP errors, mid-stream error lines, dropped or stalled connections) to test error handling.

Besides `/api/chat` it serves the rest of Ollama's native API with the same shapes: `/api/generate` (sharing
the reply queue), `/api/embed`, the model store (`/api/tags`, `/api/show`, `/api/ps`, `/api/pull`, `/api/push`,
`/api/create`, `/api/copy`, `/api/delete`), blobs (`/api/blobs/:digest`), `/api/version` and `/`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
import math
import random
import re
import socket
import ssl as ssl_module
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from aiohttp import web

from .types import ToolCall

__all__ = ["DEFAULT_MODELS", "DEFAULT_PULLABLE", "FakeOllama", "FakeReply", "RecordedRequest"]

DEFAULT_MODELS = ("qwen3", "llama3.2", "gpt-oss:20b", "deepseek-r1", "smollm2:135m")
DEFAULT_PULLABLE = ("tinyllama", "nomic-embed-text", "qwen3:0.6b", "all-minilm", "llama3.2:1b")
FAKE_VERSION = "0.13.0"
_TOKEN = re.compile(r"\S+\s*|\s+")


def split_tokens(text: str) -> list[str]:
    """Split text into word-sized tokens whose concatenation is the text."""
    return _TOKEN.findall(text)


@dataclass
class FakeReply:
    """What one `/api/chat` or `/api/generate` call streams back. See FakeOllama.queue_reply."""

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
    return _timestamp(datetime.now(timezone.utc))


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- the model store ------------------------------------------------------------------------------------
# Everything about a model is derived from its name, so that two fakes (and two runs) agree byte for byte.

_BASE_MODIFIED_AT = "2025-07-07T20:22:19.184789Z"  # modified_at of the models a fake starts with
_EMBEDDING_BASES = frozenset({"all-minilm", "bge-m3", "bge-large", "granite-embedding"})  # besides "*embed*"
# base name -> (family, parameter size, quantization, context length)
_KNOWN_FAMILIES: dict[str, tuple[str, str, str, int]] = {
    "qwen3": ("qwen3", "8.2B", "Q4_K_M", 40960),
    "llama3.2": ("llama", "3.2B", "Q4_K_M", 131072),
    "gpt-oss": ("gptoss", "20.9B", "MXFP4", 131072),
    "deepseek-r1": ("qwen3", "8.2B", "Q4_K_M", 131072),
    "smollm2": ("llama", "1.7B", "Q8_0", 8192),
    "tinyllama": ("llama", "1.1B", "Q4_0", 2048),
    "nomic-embed-text": ("nomic-bert", "137M", "F16", 2048),
    "all-minilm": ("bert", "23M", "F16", 512),
}
_BYTES_PER_PARAMETER = {"F32": 4.0, "F16": 2.0, "BF16": 2.0, "Q8_0": 1.07, "Q4_0": 0.57, "Q4_K_M": 0.61,
                        "MXFP4": 0.62}
_FILE_TYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10,
               "Q3_K_S": 11, "Q3_K_M": 12, "Q3_K_L": 13, "Q4_K_S": 14, "Q4_K_M": 15, "Q5_K_S": 16,
               "Q5_K_M": 17, "Q6_K": 18, "BF16": 32, "MXFP4": 38}  # general.file_type, as llama.cpp numbers them
_SIZE_TAG = re.compile(r"^(\d+(?:\.\d+)?)([bm])$", re.IGNORECASE)
_CHAT_TEMPLATE = (
    "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    "{{- if .Tools }}<|im_start|>system\n# Tools\n{{ range .Tools }}{{ . }}\n{{ end }}<|im_end|>\n{{ end }}"
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n{{ if .Think }}<think>\n{{ end }}")
_EMBED_TEMPLATE = "{{ .Prompt }}"
_CHAT_PARAMETERS: dict[str, Any] = {"stop": ["<|im_start|>", "<|im_end|>"], "temperature": 0.6, "top_p": 0.95}
_LICENSE = "Apache License\nVersion 2.0, January 2004\nhttp://www.apache.org/licenses/"
_BLOBS_DIR = "/root/.ollama/models/blobs"
_DIGEST = re.compile(r"^sha256[:-][0-9a-fA-F]{64}$")  # what Ollama's blob store accepts
# the long tokenizer arrays of model_info: `/api/show` empties arrays longer than 5 unless verbose, as Ollama does
_TOKENIZER_ARRAYS: dict[str, list[Any]] = {
    "tokenizer.ggml.tokens": ["<unk>", "<s>", "</s>", "!", '"', "#", "$", "%"],
    "tokenizer.ggml.token_type": [2, 3, 3, 1, 1, 1, 1, 1],
    "tokenizer.ggml.merges": ["\u0120 \u0120", "\u0120 t", "i n", "\u0120 a", "h e", "e r"],
}
_PULL_FAILURE = "pull model manifest: file does not exist"  # Ollama: `pull model manifest: %s` of os.ErrNotExist
_TRANSFER_STEPS = 4  # progress lines with `completed` per layer


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class _ModelInfo:
    """What the store knows of one model: the fields of /api/tags, /api/show and /api/ps."""

    family: str
    parameter_size: str
    quantization: str
    context_length: int
    embedding: bool
    digest: str  # the manifest's sha256, 64 hex digits, as /api/tags shows it
    modified_at: str = _BASE_MODIFIED_AT
    parent: str = ""
    system: str = ""
    template: str = _CHAT_TEMPLATE
    parameters: Mapping[str, Any] = field(default_factory=dict)
    license: str = _LICENSE

    @property
    def parameter_count(self) -> int:
        number, unit = float(self.parameter_size[:-1] or 0), self.parameter_size[-1:].upper()
        return int(number * (1e9 if unit == "B" else 1e6))

    @property
    def layers(self) -> list[tuple[str, int]]:
        """(digest, size) of the model's two layers: the weights and a small params layer."""
        small = 120 + int(self.digest[:2], 16)
        weights = max(int(self.parameter_count * _BYTES_PER_PARAMETER.get(self.quantization, 0.6)), 4096)
        weights += int(self.digest[2:6], 16)
        return [(f"sha256:{_sha256(self.digest + ':model')}", weights),
                (f"sha256:{_sha256(self.digest + ':params')}", small)]

    @property
    def size(self) -> int:
        return sum(size for _, size in self.layers)

    @property
    def capabilities(self) -> list[str]:
        return ["embedding"] if self.embedding else ["completion", "tools", "thinking"]

    def details(self) -> dict[str, Any]:
        return {"parent_model": self.parent, "format": "gguf", "family": self.family, "families": [self.family],
                "parameter_size": self.parameter_size, "quantization_level": self.quantization}


def _default_info(name: str) -> _ModelInfo:
    """The info of a model the store has never seen, derived from its name (`base:tag`)."""
    base, _, tag = name.partition(":")
    base = base.rsplit("/", 1)[-1]
    embedding = "embed" in base or base in _EMBEDDING_BASES
    family, parameter_size, quantization, context_length = _KNOWN_FAMILIES.get(
        base, (re.sub(r"[^a-z0-9]", "", base.lower()) or "llama", "7.6B", "F16" if embedding else "Q4_K_M", 8192))
    if match := _SIZE_TAG.match(tag):
        parameter_size = f"{match.group(1)}{match.group(2).upper()}"
    return _ModelInfo(family, parameter_size, quantization, context_length, embedding, _sha256(name),
                      template=_EMBED_TEMPLATE if embedding else _CHAT_TEMPLATE,
                      parameters={} if embedding else dict(_CHAT_PARAMETERS))


def _go_value(value: Any) -> str:
    """A parameter value as Go's `%#v` prints it in /api/show's `parameters`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    return str(value)


def _parameter_lines(parameters: Mapping[str, Any], fmt: Callable[[str, Any], str]) -> list[str]:
    lines = []
    for key in sorted(parameters):
        values = parameters[key]
        for value in values if isinstance(values, list) else [values]:
            lines.append(fmt(key, value))
    return lines


def _keep_alive_seconds(value: object, default: float = 300.0) -> float:
    """`keep_alive` as Ollama reads it: a number of seconds or a Go duration ("5m", "1h30m"); negative =
    forever (inf). Anything unreadable falls back to the default of 5 minutes."""
    if value is None or isinstance(value, bool):
        return default
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        parsed = _go_duration(value.strip())
        if parsed is None:
            return default
        seconds = parsed
    else:
        return default
    return math.inf if seconds < 0 else seconds


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _go_duration(text: str) -> float | None:
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    parts = _DURATION_PART.findall(body)
    if not parts or "".join(number + unit for number, unit in parts) != body:
        return None
    return sign * sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def _embedding(seed: str, length: int) -> list[float]:
    """A deterministic unit vector for `seed`."""
    rng = random.Random(int(_sha256(seed)[:16], 16))
    return _normalised([rng.gauss(0.0, 1.0) for _ in range(length)])


def _normalised(vector: list[float]) -> list[float]:
    norm = max(math.sqrt(sum(v * v for v in vector)), 1e-12)
    return [v / norm for v in vector]


def _token_ids(text: str) -> list[int]:
    """Deterministic stand-ins for token ids (for generate's `context`)."""
    return [zlib.crc32(token.encode()) % 151_000 + 1 for token in split_tokens(text)]


@dataclass
class _Loaded:
    """A model in memory, as /api/ps lists it."""

    name: str
    info: _ModelInfo
    expires: float  # epoch seconds; inf = kept forever
    context_length: int
    order: int  # when it was last used: breaks ties between equal expiries, most recent first


class FakeOllama:
    """A loopback Ollama server. `models` are the names it knows (others get Ollama's 404);
    `chunk_delay` paces the tokens and the progress lines of pull/push/create (seconds between lines,
    0 = as fast as possible); `ssl`, a server-side SSLContext, makes it serve https; `tool_call_ids=False`
    sends tool calls without id and index, as servers before v0.13 did. `pullable` are the names
    `/api/pull` finds in the "registry" (besides the models already known); `embedding_length` is the length
    of the vectors `/api/embed` returns (`dimensions` can only shorten them, as with Ollama)."""

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
        self.tool_call_ids = tool_call_ids  # False: tool calls without id/index, as servers before v0.13 sent
        self.requests: list[dict[str, Any]] = []  # bodies of /api/chat and /api/generate requests, in order
        self.received: list[RecordedRequest] = []  # every request, any path
        self.blobs: dict[str, bytes] = {}  # uploaded with POST /api/blobs/:digest, by digest ("sha256:<hex>")
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
        """Set what the next `/api/chat` (or `/api/generate`) streams: thinking tokens, then content tokens,
        then tool calls (in a chunk of their own, or on the final chunk with `tool_calls_on_done=True`), then
        the final chunk with metrics. Faults: `error` writes an `{"error"}` line instead of the final chunk;
        `drop_after=N` closes the connection after N lines; `stall_after=N` stops writing after N lines
        and keeps the connection open. `/api/generate` streams `content` as `response` and puts tool calls
        on its final chunk."""
        calls = [_as_tool_call(call) for call in (tool_calls or ())]
        self._replies.append(FakeReply(content, thinking, calls, done_reason, tool_calls_on_done, error,
                                       drop_after, stall_after, chunk_delay))

    def queue_error(self, status: int, error: str | None = None, *, body: bytes | None = None,
                    content_type: str = "application/json", headers: Mapping[str, str] | None = None) -> None:
        """Make the next `/api/chat` or `/api/generate` answer `status` with `{"error": error}` (or the raw
        `body`)."""
        if body is None:
            body = orjson.dumps({"error": error or "fake error"})
        self._replies.append(FakeReply(status=status, body=body, content_type=content_type,
                                       headers=dict(headers or {})))

    def default_reply(self, request: Mapping[str, Any]) -> FakeReply:
        """The reply when nothing is queued: echo the last message (or generate's prompt), thinking first
        when `think` is asked."""
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
        thinking = f"The user wrote {len(text.split())} words. I will answer briefly." if think else ""
        return FakeReply(content=content, thinking=thinking)

    @property
    def pending(self) -> int:
        """Replies queued and not yet served."""
        return len(self._replies)

    @property
    def loaded(self) -> list[str]:
        """The models in memory, as `/api/ps` lists them: the longest to stay first (the latest used, when
        their keep_alive is the same)."""
        now = time.time()
        alive = [entry for entry in self._loaded.values() if entry.expires > now]
        return [entry.name for entry in sorted(alive, key=lambda e: (e.expires, e.order), reverse=True)]

    # -- lifecycle ------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if not self._port:
            raise RuntimeError("FakeOllama is not running: use `async with FakeOllama()` or `with FakeOllama()`")
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
                app.router.add_get(path, getattr(self, handler))  # and HEAD, as Ollama routes / and /api/tags
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

    # -- the model store --------------------------------------------------------------------------------

    @staticmethod
    def _canonical(name: str) -> str:
        return name if ":" in name else f"{name}:latest"

    def _knows(self, name: object) -> bool:
        return isinstance(name, str) and self._canonical(name) in self.models

    def _info(self, name: str) -> _ModelInfo:
        canonical = self._canonical(name)
        return self._infos.get(canonical) or _default_info(canonical)

    def _add_model(self, name: str, info: _ModelInfo | None = None) -> None:
        canonical = self._canonical(name)
        self.models.add(canonical)
        self._infos[canonical] = info or dataclasses.replace(_default_info(canonical), modified_at=_now())

    def _use(self, name: str, request: Mapping[str, Any]) -> None:
        """Note a model as loaded by a chat/generate/embed request (or unloaded, with `keep_alive: 0`)."""
        canonical = self._canonical(name)
        seconds = _keep_alive_seconds(request.get("keep_alive"))
        if seconds == 0:
            self._loaded.pop(canonical, None)
            return
        options = request.get("options")
        num_ctx = options.get("num_ctx") if isinstance(options, dict) else None
        context_length = num_ctx if isinstance(num_ctx, int) and not isinstance(num_ctx, bool) and num_ctx > 0 \
            else 4096
        self._loaded[canonical] = _Loaded(canonical, self._info(canonical), time.time() + seconds,
                                          context_length, next(self._uses))

    # -- handlers -------------------------------------------------------------------------------------

    async def _record(self, request: web.Request, *, raw_body: bool = False) -> Any:
        raw = await request.read()
        if raw_body:
            body: Any = raw
        else:
            try:
                body = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                body = raw
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        self.received.append(RecordedRequest(request.method, request.path, dict(request.headers), body,
                                             tuple(peer) if peer else None))
        return body

    async def _unrouted(self, request: web.Request) -> web.StreamResponse:
        """Anything else: gin's plain-text 405 for a known path, 404 otherwise."""
        await self._record(request)
        templates = {path.split("{", 1)[0] for _, path, _ in self._ROUTES}
        known = any(request.path == t or (t.endswith("/") and t != "/" and request.path.startswith(t))
                    for t in templates)
        if known:
            return web.Response(status=405, text="405 method not allowed")
        return web.Response(status=404, text="404 page not found")

    async def _root(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return web.Response(text="Ollama is running")

    async def _version(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return web.json_response({"version": self.version}, dumps=lambda o: orjson.dumps(o).decode())

    async def _tags(self, request: web.Request) -> web.StreamResponse:
        """Most recently modified first, as Ollama sorts them (ties by name)."""
        await self._record(request)
        infos = sorted(((name, self._info(name)) for name in self.models), key=lambda item: item[0])
        infos.sort(key=lambda item: item[1].modified_at, reverse=True)
        models = [{"name": name, "model": name, "modified_at": info.modified_at, "size": info.size,
                   "digest": info.digest, "details": info.details()} for name, info in infos]
        return _json({"models": models})

    async def _ps(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        models = []
        for name in self.loaded:
            entry = self._loaded[name]
            in_memory = int(entry.info.size * 1.1) + entry.context_length * 64 * 1024
            models.append({"name": name, "model": name, "size": in_memory, "digest": entry.info.digest,
                           "details": entry.info.details(), "expires_at": _expiry(entry.expires),
                           "size_vram": in_memory, "context_length": entry.context_length})
        return _json({"models": models})

    async def _json_body(self, request: web.Request) -> dict[str, Any] | web.Response:
        """The request's JSON object, or Ollama's 400 for a missing or malformed one."""
        body = await self._record(request)
        if not isinstance(body, dict):
            return _json_error(400, "missing request body" if body is None else "invalid JSON body")
        return body

    # -- /api/chat and /api/generate --------------------------------------------------------------------

    async def _model_request(self, request: web.Request, task: str,
                             not_found: str) -> tuple[dict[str, Any], str] | web.Response:
        """The checks /api/chat and /api/generate share: a JSON body (recorded in `requests`), a model that is
        known and can do `task`. `not_found` is that handler's own 404 text, with `{model}` in it."""
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

    def _next_reply(self, body: Mapping[str, Any]) -> FakeReply:
        return self._replies.popleft() if self._replies else self.default_reply(body)

    @staticmethod
    def _queued_error(reply: FakeReply) -> web.Response | None:
        if reply.status is None:
            return None
        return web.Response(status=reply.status, body=reply.body,
                            headers={"Content-Type": reply.content_type, **reply.headers})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter_ns()
        checked = await self._model_request(request, "chat", 'model "{model}" not found, try pulling it first')
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
        if not body.get("prompt"):  # an empty prompt only loads the model (or unloads it, with keep_alive 0)
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

    def _generate_lines(self, model: str, request: Mapping[str, Any], reply: FakeReply,
                        started: int) -> list[dict[str, Any]]:
        """Generate's chunks: `response` on every line, `thinking` on thinking lines; the final line has
        `context` (unless raw) and the metrics, and any tool calls."""
        def chunk(response: str, **extra: Any) -> dict[str, Any]:
            return {"model": model, "created_at": _now(), "response": response, **extra, "done": False}

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
            final["tool_calls"] = [self._wire_call(call, index) for index, call in enumerate(reply.tool_calls)]
        prompt_tokens = len(split_tokens(prompt)) + len(split_tokens(str(request.get("system") or "")))
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

    def _unstreamed_generate(self, lines: list[dict[str, Any]]) -> web.Response:
        if lines and "error" in lines[-1]:
            return _json_error(500, str(lines[-1]["error"]))
        final = lines[-1]
        self._finish_metrics(final)
        final["response"] = "".join(line["response"] for line in lines)
        thinking = "".join(line.get("thinking", "") for line in lines)
        if thinking:
            final["thinking"] = thinking
        return _json(final)

    async def _stream(self, request: web.Request, lines: list[dict[str, Any]], reply: FakeReply,
                      before_last: Callable[[], None] | None = None) -> web.StreamResponse:
        """Write `lines` as NDJSON with the reply's pacing and faults; `before_last` runs just before the
        last line is written (so that a client reading that line sees its effect)."""
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

    # -- /api/embed -------------------------------------------------------------------------------------

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

    # -- /api/show --------------------------------------------------------------------------------------

    async def _show(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_body(request)
        if isinstance(body, web.Response):
            return body
        model = body.get("model") or body.get("name")
        if not model:
            return _json_error(400, "model is required")
        if not self._knows(model):
            return _json_error(404, f"model '{model}' not found")
        canonical = self._canonical(str(model))
        info = self._info(canonical)
        shown: dict[str, Any] = {
            "license": info.license,
            "modelfile": self._modelfile(canonical, info),
            "parameters": "\n".join(_parameter_lines(info.parameters, lambda k, v: f"{k:<30} {_go_value(v)}")),
            "template": info.template,
        }
        if info.system:
            shown["system"] = info.system
        shown.update(details=info.details(), model_info=self._model_info(info, bool(body.get("verbose"))),
                     capabilities=info.capabilities, modified_at=info.modified_at)
        return _json(shown)

    @staticmethod
    def _modelfile(name: str, info: _ModelInfo) -> str:
        weights = info.layers[0][0].replace(":", "-")
        lines = ['# Modelfile generated by "ollama show"',
                 "# To build a new Modelfile based on this, replace FROM with:", f"# FROM {name}", "",
                 f"FROM {_BLOBS_DIR}/{weights}", f'TEMPLATE """{info.template}"""']
        if info.system:
            lines.append(f'SYSTEM """{info.system}"""')
        lines += _parameter_lines(info.parameters, lambda k, v: f"PARAMETER {k} {v}")
        if info.license:
            lines.append(f'LICENSE """{info.license}"""')
        return "\n".join(lines) + "\n"

    def _model_info(self, info: _ModelInfo, verbose: bool) -> dict[str, Any]:
        arch = info.family
        model_info: dict[str, Any] = {
            "general.architecture": arch,
            "general.basename": arch,
            "general.file_type": _FILE_TYPES.get(info.quantization, 15),
            "general.parameter_count": info.parameter_count,
            "general.quantization_version": 2,
            f"{arch}.attention.head_count": 32,
            f"{arch}.block_count": 36,
            f"{arch}.context_length": info.context_length,
            f"{arch}.embedding_length": self.embedding_length,
            "tokenizer.ggml.bos_token_id": 1,
            "tokenizer.ggml.eos_token_id": 2,
            "tokenizer.ggml.model": "bert" if info.embedding else "gpt2",
        }
        if info.embedding:
            model_info[f"{arch}.pooling_type"] = 1
        for key, values in _TOKENIZER_ARRAYS.items():
            model_info[key] = list(values) if verbose else []
        return dict(sorted(model_info.items()))

    # -- /api/pull, /api/push, /api/create: progress streams ------------------------------------------

    async def _pull(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_body(request)
        if isinstance(body, web.Response):
            return body
        model = body.get("model") or body.get("name")
        if not model or not isinstance(model, str):
            return _json_error(400, "invalid model name")
        lines, pulled = self._pull_lines(model)
        return await self._progress(request, body, lines, lambda: self._add_pulled(pulled))

    def _pull_lines(self, name: str) -> tuple[list[dict[str, Any]], list[str]]:
        """Ollama's pull progress for `name`, and the names that become known if it succeeds."""
        canonical = self._canonical(name)
        lines: list[dict[str, Any]] = [{"status": "pulling manifest"}]
        if canonical not in self.models and canonical not in self.pullable:
            lines.append({"error": _PULL_FAILURE})
            return lines, []
        for digest, size in self._info(canonical).layers:
            lines += _transfer_lines("pulling", digest, size)
        lines += [{"status": "verifying sha256 digest"}, {"status": "writing manifest"}, {"status": "success"}]
        return lines, [canonical]

    def _add_pulled(self, names: Iterable[str]) -> None:
        for name in names:
            if name not in self.models:
                self._add_model(name)

    async def _push(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_body(request)
        if isinstance(body, web.Response):
            return body
        model = body.get("model") or body.get("name")
        if not model or not isinstance(model, str):
            return _json_error(400, "model is required")
        canonical = self._canonical(model)
        lines: list[dict[str, Any]] = [{"status": "retrieving manifest"}]
        if canonical not in self.models:
            base, _, tag = canonical.partition(":")
            lines += [{"status": "couldn't retrieve manifest"},
                      {"error": f"open /root/.ollama/models/manifests/registry.ollama.ai/library/{base}/{tag}: "
                                "no such file or directory"}]
        else:
            for digest, size in self._info(canonical).layers:
                lines += _transfer_lines("pushing", digest, size)
            lines += [{"status": "pushing manifest"}, {"status": "success"}]
        return await self._progress(request, body, lines)

    async def _create(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_body(request)
        if isinstance(body, web.Response):
            return body
        model = body.get("model") or body.get("name")
        if not model or not isinstance(model, str):
            return _json_error(400, "invalid model name")
        source, files = body.get("from"), body.get("files")
        if not source and files is None:
            return _json_error(400, "neither 'from' or 'files' was specified")
        if files is not None and not source:
            kind = _files_kind(files)
            if kind is None:
                return _json_error(400, "unknown type")
            lines, info = self._create_from_files(model, files, kind)
            pulled: list[str] = []
        else:
            lines, info, pulled = self._create_from_model(str(source))
        if info is not None:
            lines, info = self._create_layers(body, info, lines)
        if info is not None:
            lines += [{"status": "writing manifest"}, {"status": "success"}]
        created = info

        def commit() -> None:
            self._add_pulled(pulled)
            if created is not None:
                self._add_model(model, created)

        return await self._progress(request, body, lines, commit)

    def _create_from_model(self, source: str) -> tuple[list[dict[str, Any]], _ModelInfo | None, list[str]]:
        """Ollama pulls a `from` model it does not have first, and fails with the pull's error."""
        lines: list[dict[str, Any]] = []
        pulled: list[str] = []
        canonical = self._canonical(source)
        if canonical not in self.models:
            lines, pulled = self._pull_lines(source)
            if not pulled:
                return lines, None, []
        base = self._info(canonical)
        return lines, dataclasses.replace(base, parent=canonical, parameters=dict(base.parameters)), pulled

    def _create_from_files(self, name: str, files: Mapping[str, Any],
                           kind: str) -> tuple[list[dict[str, Any]], _ModelInfo | None]:
        """`files` maps file names to digests of uploaded blobs (POST /api/blobs/:digest)."""
        lines: list[dict[str, Any]] = []
        for digest in files.values():
            lines.append({"status": "parsing GGUF" if kind == "gguf" else "converting model"})
            blob = self.blobs.get(str(digest))
            if blob is None:
                lines.append({"error": f"open {_BLOBS_DIR}/{str(digest).replace(':', '-')}: "
                                       "no such file or directory"})
                return lines, None
            if kind == "gguf" and not blob.startswith(b"GGUF"):
                lines.append({"error": "supplied file was not in GGUF format"})
                return lines, None
        info = dataclasses.replace(_default_info(self._canonical(name)), quantization="F16")
        return lines, info

    def _create_layers(self, request: Mapping[str, Any], info: _ModelInfo,
                       lines: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], _ModelInfo | None]:
        """The statuses of docs/api.md's create example: metadata, quantizing, then one per new layer."""
        lines = [*lines, {"status": "reading model metadata"}]
        quantize = request.get("quantize") or request.get("quantization")
        if quantize:
            wanted = str(quantize).upper()
            if info.quantization not in ("F16", "F32"):
                return [*lines, {"error": "quantization is only supported for F16 and F32 models"}], None
            if wanted not in _FILE_TYPES:
                return [*lines, {"error": f"unsupported quantization type {quantize}"}], None
            lines.append({"status": f"quantizing {info.quantization} model to {wanted}"})
            info = dataclasses.replace(info, quantization=wanted)
        changes: dict[str, Any] = {}
        for key in ("template", "system", "license"):
            value = request.get(key)
            if isinstance(value, str) and value:
                lines.append({"status": f"creating {key} layer"})
                changes[key] = value
        parameters = request.get("parameters")
        if isinstance(parameters, dict) and parameters:
            lines.append({"status": "creating parameters layer"})
            changes["parameters"] = {**info.parameters, **parameters}
        digest = _sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS).decode())
        return lines, dataclasses.replace(info, digest=digest, modified_at=_now(), **changes)

    async def _progress(self, request: web.Request, body: Mapping[str, Any], lines: list[dict[str, Any]],
                        commit: Callable[[], None] | None = None) -> web.StreamResponse:
        """Stream progress `lines` (paced by chunk_delay); `commit` applies the change just before the final
        `success`. With `stream: false`, Ollama answers only the last status, or a 500 with the error."""
        failed = "error" in lines[-1]
        if body.get("stream") is False:
            if failed:
                return _json_error(500, str(lines[-1]["error"]))
            if commit is not None:
                commit()
            return _json(lines[-1])
        return await self._stream(request, lines, FakeReply(), None if failed else commit)

    # -- /api/copy and /api/delete ----------------------------------------------------------------------

    async def _copy(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_body(request)
        if isinstance(body, web.Response):
            return body
        source, destination = body.get("source"), body.get("destination")
        if not source or not isinstance(source, str):
            return _json_error(400, f'source "{source or ""}" is invalid')
        if not destination or not isinstance(destination, str):
            return _json_error(400, f'destination "{destination or ""}" is invalid')
        if not self._knows(source):
            return _json_error(404, f'model "{source}" not found')
        self._add_model(destination, dataclasses.replace(self._info(source), modified_at=_now()))
        return web.Response(status=200)

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_body(request)
        if isinstance(body, web.Response):
            return body
        model = body.get("model") or body.get("name")
        if not model or not isinstance(model, str):
            return _json_error(400, f'name "{model or ""}" is invalid')
        if not self._knows(model):
            return _json_error(404, f"model '{model}' not found")
        canonical = self._canonical(model)
        self.models.discard(canonical)
        self._infos.pop(canonical, None)  # a loaded model stays in /api/ps until it expires, as with Ollama
        return web.Response(status=200)

    # -- /api/blobs/:digest -----------------------------------------------------------------------------

    async def _head_blob(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        digest = request.match_info["digest"]
        if not _DIGEST.match(digest):
            return _json_error(400, "invalid digest format")
        if digest.replace("-", ":", 1) not in self.blobs:  # Ollama stores sha256:x as the file sha256-x
            return _json_error(404, f'blob "{digest}" not found')
        return web.Response(status=200)

    async def _create_blob(self, request: web.Request) -> web.StreamResponse:
        data: bytes = await self._record(request, raw_body=True)
        digest = request.match_info["digest"]
        if not _DIGEST.match(digest):
            return _json_error(400, "invalid digest format")
        if digest.replace("-", ":", 1) in self.blobs:
            return web.Response(status=200)  # already there: Ollama does not read the body
        actual = f"sha256:{hashlib.sha256(data).hexdigest()}"
        if actual != digest:
            return _json_error(400, f'digest mismatch, expected "{digest}", got "{actual}"')
        self.blobs[digest] = data
        return web.Response(status=201)


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(obj), content_type="application/json")


def _expiry(expires: float) -> str:
    """`expires_at` of /api/ps; a model kept forever expires when Go's longest duration runs out."""
    if math.isinf(expires):
        return _timestamp(datetime.now(timezone.utc) + timedelta(microseconds=(2**63 - 1) // 1000))
    return _timestamp(datetime.fromtimestamp(expires, timezone.utc))


def _transfer_lines(verb: str, digest: str, total: int) -> list[dict[str, Any]]:
    """Progress of one layer: `completed` is absent until non-zero (Go's omitempty), then grows to `total`."""
    status = f"{verb} {digest[7:19]}"
    lines: list[dict[str, Any]] = [{"status": status, "digest": digest, "total": total}]
    lines += [{"status": status, "digest": digest, "total": total, "completed": total * step // _TRANSFER_STEPS}
              for step in range(1, _TRANSFER_STEPS + 1)]
    return lines


def _files_kind(files: object) -> str | None:
    """What Ollama makes of create's `files` from their names: "gguf", "safetensors", or None (unknown)."""
    if not isinstance(files, dict):
        return None
    for name in files:
        if name.endswith(".safetensors"):
            return "safetensors"
        if name.endswith((".gguf", ".bin")):
            return "gguf"
    return None


def _json_error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=orjson.dumps({"error": message}), content_type="application/json")
