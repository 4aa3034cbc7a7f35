"""What a fake holds between requests: the replies queued for it (FakeReply), the requests it
received (RecordedRequest), and the base class that declares this shared state for the endpoint
mixins, with the bookkeeping of the model store (known, pulled and loaded models)."""

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
from ._store import _default_info, _keep_alive_seconds, _Loaded, _ModelInfo, _now


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
    requests: list[dict[str, Any]]
    received: list[RecordedRequest]
    blobs: dict[str, bytes]
    disconnects: int
    _replies: deque[FakeReply]
    _call_ids: itertools.count[int]
    _infos: dict[str, _ModelInfo]
    _loaded: dict[str, _Loaded]
    _uses: itertools.count[int]
    _disconnected: asyncio.Event | None

    if TYPE_CHECKING:  # FakeOllama's public scripting method, which _next_reply calls
        def default_reply(self, request: Mapping[str, Any]) -> FakeReply: ...

    def _next_reply(self, body: Mapping[str, Any]) -> FakeReply:
        return self._replies.popleft() if self._replies else self.default_reply(body)

    # -- the model store --------------------------------------------------------------------------

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
        if info is None:
            info = dataclasses.replace(_default_info(canonical), modified_at=_now())
        self._infos[canonical] = info

    def _use(self, name: str, request: Mapping[str, Any]) -> None:
        """Note a model as loaded by a chat/generate/embed request (or unloaded, with
        `keep_alive: 0`)."""
        canonical = self._canonical(name)
        seconds = _keep_alive_seconds(request.get("keep_alive"))
        if seconds == 0:
            self._loaded.pop(canonical, None)
            return
        options = request.get("options")
        num_ctx = options.get("num_ctx") if isinstance(options, dict) else None
        context_length = (num_ctx if isinstance(num_ctx, int) and not isinstance(num_ctx, bool)
                          and num_ctx > 0 else 4096)
        self._loaded[canonical] = _Loaded(canonical, self._info(canonical), time.time() + seconds,
                                          context_length, next(self._uses))

    def _in_memory(self) -> list[_Loaded]:
        """The loaded models that have not expired, the longest to stay first (the latest used,
        when their keep_alive is the same)."""
        now = time.time()
        alive = [entry for entry in self._loaded.values() if entry.expires > now]
        return sorted(alive, key=lambda e: (e.expires, e.order), reverse=True)
