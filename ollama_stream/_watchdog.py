"""The phase timers of one request: first_chunk, idle and total (connect is aiohttp's own
sock_connect).

Rules of this room, and why:
1. One timer per request, never one per line. A read only stores a timestamp (`last`); when the
   timer fires it re-arms itself if the deadline moved. A stream of thousands of lines costs a few
   timer events.
2. Expiry never raises inside the caller's code. It fails the pending read (`reader.set_exception`),
   or, before a response exists, cancels the task, but only while that task awaits the server
   (`waiting`), and `waiting` turns that cancel into `Expired`. A limit that passes while the
   caller's code runs is raised by the next read (`fired` is set).
3. An outside cancel is never swallowed: a cancel counts as ours only when it was the only one asked
   for (`Task.uncancel` on 3.11+; 3.10 cannot tell the two apart).
4. No phase runs between attempts: the attempt loop calls `cancel()` before it sleeps, and only
   `total_deadline` spans the whole request.

Contract: make one per request, call `start_attempt()` at each attempt (and
`waiting_for_connection()` / `connection_free()` around a wait for the pool), set `reader` once a
response exists, `set_phase("idle")` once the first chunk is out, set `last` when a line completes
and `reading` around each read, and `cancel()` when the request ends.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

from .config import Timeouts

__all__ = ["Expired", "Watchdog"]

T = TypeVar("T")
INF = float("inf")


class Expired(Exception):
    """A phase's deadline passed: set on a response's reader, or raised by `Watchdog.waiting`."""

    def __init__(self, phase: str, limit: float | None, during: str | None = None) -> None:
        super().__init__(phase)
        self.phase = phase
        self.limit = limit
        self.during = during or phase  # the phase that was running (total may end any of them)


class _Reader(Protocol):
    """What the watchdog needs of a response body reader (aiohttp's StreamReader)."""

    def set_exception(self, exc: BaseException) -> None: ...


class Watchdog:
    """One timer per request for the first_chunk, idle and total limits (see the rules above)."""

    __slots__ = ("_handle", "cancelled_task", "fired", "idle", "last", "loop", "phase",
                 "phase_deadline", "reader", "reading", "task", "timeouts", "total_deadline")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeouts: Timeouts) -> None:
        self.loop = loop
        self.timeouts = timeouts
        self.idle = timeouts.idle
        self.total_deadline = loop.time() + timeouts.total if timeouts.total else INF
        self.phase = "first_chunk"
        self.phase_deadline = INF
        self.reader: _Reader | None = None
        self.task: asyncio.Task[Any] | None = None
        self.fired: str | None = None
        self.cancelled_task = False
        self.reading = False
        self.last = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start_attempt(self) -> None:
        """Arm the first_chunk limit for a new attempt, in the task that makes it."""
        self.reader = None
        self.fired = None
        self.cancelled_task = False
        self.task = asyncio.current_task()
        self.connection_free()

    def waiting_for_connection(self) -> None:
        """The request waits for a free connection of the pool: a phase of its own (`pool`),
        not first_chunk time, since the request has not even been sent."""
        limit = self.timeouts.pool
        self.set_phase("pool", self.loop.time() + limit if limit else INF)

    def connection_free(self) -> None:
        """The request has its connection (or needs no wait): the first_chunk limit starts."""
        limit = self.timeouts.first_chunk
        self.set_phase("first_chunk", self.loop.time() + limit if limit else INF)

    def set_phase(self, phase: str, deadline: float = INF) -> None:
        """Enter `phase` ("pool", "first_chunk", "idle", "drain"); idle takes its deadline from
        `last`."""
        self.phase = phase
        self.phase_deadline = deadline
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        when, _ = self._next(self.loop.time())
        if when != INF:
            self._handle = self.loop.call_at(when, self._fire)

    def _next(self, now: float) -> tuple[float, str]:
        if self.phase == "idle":
            when = (self.last if self.reading else now) + self.idle if self.idle else INF
        else:
            when = self.phase_deadline
        if self.total_deadline <= when:
            return self.total_deadline, "total"
        return when, self.phase

    def _fire(self) -> None:
        self._handle = None
        now = self.loop.time()
        when, phase = self._next(now)
        if now < when:
            self._handle = self.loop.call_at(when, self._fire)
            return
        self.fired = phase
        if self.reader is not None:
            self.reader.set_exception(self.expired())
        elif self.task is not None and self.reading:
            self.cancelled_task = True
            self.task.cancel()
        # Otherwise the caller's own code runs (between chunks of a backend): the next read raises.

    async def waiting(self, awaitable: Awaitable[T]) -> T:
        """Await the server (or a backend) with the limits armed: while it waits, the watchdog may
        cancel the task, and that cancel comes out as `Expired`, never as a CancelledError."""
        self.reading = True
        try:
            return await awaitable
        except asyncio.CancelledError:
            expired = self.timeout_behind_cancel()
            if expired is not None:
                raise expired from None
            raise
        finally:
            self.reading = False

    def timeout_behind_cancel(self) -> Expired | None:
        """After a CancelledError while `reading`: the expiry that caused it, or None when the
        cancel came from outside and must go on as a cancel (rule 3)."""
        if self.fired and self.cancelled_task and _only_our_cancel(self.task):
            return self.expired()
        return None

    def expired(self) -> Expired:
        """The expiry of the phase that fired (or of the current one)."""
        phase = self.fired or self.phase
        limit = self.timeouts.total if phase == "total" else getattr(self.timeouts, phase, None)
        return Expired(phase, limit, self.phase)

    def cancel(self) -> None:
        """Disarm: between attempts, and when the request ends."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.task = None
        self.reader = None


def _only_our_cancel(task: asyncio.Task[Any] | None) -> bool:
    """After the watchdog cancelled `task`: was that the only cancel asked for (so it is a
    timeout)?"""
    if task is None:
        return False
    if sys.version_info >= (3, 11):
        return task.uncancel() == 0
    return True  # pragma: no cover - 3.10 cannot tell a concurrent outside cancel apart
