"""What the client tells an observer about each call: the `Event` that `AsyncOllama(on_event=...)`
receives (and on which the client's logging and tracing are built). Values only, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import OllamaError
    from .types import Metrics

__all__ = ["EVENT_KINDS", "Event"]

EVENT_KINDS = ("request", "retry", "first_chunk", "resume", "finished", "failed")


@dataclass(frozen=True, slots=True)
class Event:
    """One moment of a call.

    `kind` is one of "request" (an attempt is sent: `attempt`), "retry" (an attempt failed and
    another follows after `delay` seconds; `reason` says why), "first_chunk" (the first chunk of a
    stream reached the caller: `time_to_first_chunk`), "resume" (a stream failed after `chunks`
    chunks for `reason` and is continued from its partial reply after `delay` seconds, with
    `RetryPolicy(resume=True)`), "finished" (the call ended well: `chunks`,
    `done_reason`, `metrics`), "failed" (it ended in `error`; or `abandoned`: the caller left the
    stream before its end). `operation` is the endpoint ("chat", "generate", "embed", "pull", ...);
    `elapsed` the seconds since the call started. `request` and `content` (the request's body and
    the reply's text) are set only for a client made with `log_content=True`; `error` is the
    exception the caller gets, so a failed stream's `error.partial` holds the reply so far in any
    case.
    """

    kind: str
    operation: str
    method: str
    url: str
    model: str | None
    attempt: int
    elapsed: float
    delay: float | None = None
    reason: str | None = None
    chunks: int = 0
    done_reason: str | None = None
    metrics: Metrics | None = None
    time_to_first_chunk: float | None = None
    error: OllamaError | None = None
    abandoned: bool = False
    request: Any = None
    content: str | None = None
