"""What a fake holds between requests: its queued replies (FakeReply), the requests it received
(RecordedRequest), and the base class declaring this state for the endpoint mixins, with the model
store's bookkeeping (names found as Ollama finds them: any case, its defaults filled in)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..types import ToolCall
from . import _names
from ._gotypes import keep_alive_seconds
from ._store import _default_info, _Loaded, _ModelInfo, _now, num_ctx


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
    # the status of an `error` met before any output (after output it is a last line, under 200)
    error_status: int = 500
    cut_at: int | None = None  # close the connection after this many bytes of the body


@dataclass
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    # the client's address: equal peers mean a reused connection
    peer: tuple[str, int] | None = None


def _as_tool_call(call: ToolCall | Mapping[str, Any]) -> ToolCall:
    if isinstance(call, ToolCall):
        return call
    if "function" in call:
        return ToolCall.from_dict(call)
    return ToolCall(call["name"], dict(call.get("arguments") or {}), call.get("id"),
                    call.get("index"))


class _FakeState:
    """The state FakeOllama's endpoints share. FakeOllama.__init__ sets every attribute declared
    here (and documents them); the endpoint mixins read and change them through this class."""

    models: set[str]
    pullable: set[str]
    embedding_length: int
    chunk_delay: float
    version: str
    tool_call_ids: bool
    native: bool
    requests: list[dict[str, Any]]
    received: list[RecordedRequest]
    blobs: dict[str, bytes]
    disconnects: int
    _replies: deque[FakeReply]
    _infos: dict[str, _ModelInfo]
    _loaded: dict[str, _Loaded]
    _uses: itertools.count[int]
    _disconnected: asyncio.Event | None
    _raw_prompts: list[str]

    if TYPE_CHECKING:  # FakeOllama's public scripting method, which _next_reply calls
        def default_reply(self, request: Mapping[str, Any]) -> FakeReply: ...

    def _next_reply(self, body: Mapping[str, Any]) -> FakeReply:
        return self._replies.popleft() if self._replies else self.default_reply(body)

    # -- the model store --------------------------------------------------------------------------

    @staticmethod
    def _canonical(name: str) -> str:
        """The name as /api/tags lists it: `qwen3:latest`, `my-org/custom:7b`."""
        return _names.parse(name).short

    def _find(self, name: object) -> str | None:
        """The stored name `name` refers to, if the store has it (any case, any spelling of the
        defaults: `QWEN3`, `library/qwen3:latest`)."""
        if not isinstance(name, str) or not name:
            return None
        key = _names.parse(name).key
        return next((known for known in self.models if known.lower() == key), None)

    def _knows(self, name: object) -> bool:
        return self._find(name) is not None

    def _info(self, name: str) -> _ModelInfo:
        canonical = self._find(name) or self._canonical(name)
        return self._infos.get(canonical) or _default_info(canonical)

    def _add_model(self, name: str, info: _ModelInfo | None = None) -> None:
        canonical = self._find(name) or self._canonical(name)
        self.models.add(canonical)
        if info is None:
            info = dataclasses.replace(_default_info(canonical), modified_at=_now())
        self._infos[canonical] = info

    def _use(self, name: str, request: Mapping[str, Any]) -> None:
        """Note a model as loaded by a chat/generate/embed request (or unloaded, with
        `keep_alive: 0`); the request has been checked, so keep_alive reads."""
        canonical = self._find(name) or self._canonical(name)
        seconds = keep_alive_seconds(request.get("keep_alive"))
        if seconds == 0:
            self._loaded.pop(canonical, None)
            return
        context_length = num_ctx(request.get("options")) or 4096
        # the runner never holds more than the model was trained for
        context_length = min(context_length, self._info(canonical).context_length)
        self._loaded[canonical] = _Loaded(canonical, self._info(canonical), time.time() + seconds,
                                          context_length, next(self._uses))

    def _in_memory(self) -> list[_Loaded]:
        """The loaded models that have not expired, the longest to stay first (the latest used,
        when their keep_alive is the same)."""
        now = time.time()
        alive = [entry for entry in self._loaded.values() if entry.expires > now]
        return sorted(alive, key=lambda e: (e.expires, e.order), reverse=True)
