"""The blocking views of streams, for `Ollama`: a pump task in the client's loop thread moves a
stream's items into a queue as they arrive, and the caller's thread takes them out.

Rules of this room (as `sync.py` states them): the pump holds no reference to the iterator it
feeds, and a `for` loop's iterator (a `_Feed`) is held by the loop alone, so a `break` drops it
even while the stream object is still referenced, and its loss cancels the pump, which closes the
HTTP response; a reader blocked in one thread while another closes the client wakes within _POLL
seconds with a RuntimeError.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import Future
from typing import Any, Generic, Protocol, TypeVar

from .agent import ToolEvent, ToolLoop
from .endpoints import GenerateChunk, GenerateResult, Progress
from .types import ChatChunk, ChatResult, Message

__all__ = ["SyncChatStream", "SyncGenerateStream", "SyncProgressStream", "SyncToolLoop"]

T = TypeVar("T")
C = TypeVar("C")
R = TypeVar("R")
_I = TypeVar("_I", bound="_SyncIterator[Any]")
_CHUNK, _END, _ERROR = 0, 1, 2
_POLL = 0.5  # how often a blocked reader checks whether the client was closed under it


class _Client(Protocol):
    """What a blocking stream needs of its `Ollama` client."""

    @property
    def closed(self) -> bool: ...

    def _submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]: ...

    def _run(self, coro: Coroutine[Any, Any, T]) -> T: ...


class _Feed(Generic[C]):
    """One pass over an async source for a blocking reader: a pump task in the loop thread puts
    the items into a queue as they arrive and `__next__` takes them out. The feed is held by the
    caller's `for` loop alone, so leaving the loop (`break`, `return`, an exception) drops it, and
    its loss cancels the pump at once, which closes the HTTP response (rule 1)."""

    def __init__(self, owner: _SyncIterator[C]) -> None:
        self._owner = owner
        self._queue: queue.SimpleQueue[tuple[int, Any]] | None = None
        self._task: list[asyncio.Task[None]] = []  # filled by the pump, which never refers to us

    def __iter__(self) -> Iterator[C]:
        return self

    def __next__(self) -> C:
        owner = self._owner
        if owner._finished:
            raise StopIteration
        if self._queue is None:
            self._queue = queue.SimpleQueue()
            owner._client._submit(_pump(owner._source, self._queue, self._task))
        while True:
            try:
                kind, value = self._queue.get(timeout=_POLL)
                break
            except queue.Empty:
                if owner._client.closed:  # closed from another thread while we waited
                    owner._finished = True
                    raise RuntimeError("the Ollama client was closed while this stream was being "
                                       "read") from None
        if kind == _CHUNK:
            item: C = value
            return item
        owner._finished = True
        if kind == _ERROR:
            raise value
        raise StopIteration

    async def stop(self) -> None:
        """In the loop thread: cancel the pump and wait for it."""
        for task in self._task:
            if not task.done():
                task.cancel()
                await asyncio.wait([task])

    def __del__(self) -> None:
        for task in self._task:
            if not task.done():
                # A closed loop has nothing left to stop.
                with contextlib.suppress(RuntimeError):
                    task.get_loop().call_soon_threadsafe(task.cancel)


class _SyncIterator(Generic[C]):
    """A blocking view of an async iterator, as its items arrive. `for item in it` reads through a
    `_Feed` that only the loop holds (leaving the loop closes the response); `next(it)` through
    one that `it` holds. `close()` (also `with`) cancels the reading in the loop thread and then
    closes the source, which closes the HTTP response."""

    def __init__(self, client: _Client, source: AsyncIterator[C],
                 closer: Callable[[], Awaitable[None]]) -> None:
        self._client = client
        self._source = source
        self._closer = closer
        self._feed: _Feed[C] | None = None  # held: for next(it)
        self._loose: weakref.ref[_Feed[C]] | None = None  # a for loop's
        self._finished = False
        self._closed = False

    def _current(self) -> _Feed[C] | None:
        return self._feed or (self._loose() if self._loose is not None else None)

    def __iter__(self) -> Iterator[C]:
        feed = self._current()
        if feed is None:
            feed = _Feed(self)
            self._loose = weakref.ref(feed)
        return feed

    def __next__(self) -> C:
        if self._feed is None:
            self._feed = self._current() or _Feed(self)
        return next(self._feed)

    async def _stop(self) -> None:
        feed = self._current()
        if feed is not None:
            await feed.stop()
        await self._closer()

    def close(self) -> None:
        """Stop reading and close the HTTP response. Idempotent."""
        if self._closed:
            return
        self._closed = self._finished = True
        if not self._client.closed:
            self._client._run(self._stop())

    def __enter__(self: _I) -> _I:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def _pump(source: AsyncIterator[Any], out: queue.SimpleQueue[tuple[int, Any]],
                holder: list[asyncio.Task[None]]) -> None:
    """Runs in the loop thread: move items from the async source to the caller's queue. It holds no
    reference to the blocking iterator, so dropping that iterator (a `break`) lets it be
    collected."""
    task = asyncio.current_task()
    assert task is not None
    holder.append(task)
    put = out.put
    try:
        async for item in source:
            put((_CHUNK, item))
    except asyncio.CancelledError:
        put((_ERROR, RuntimeError("the stream was closed before its end")))
        raise
    except BaseException as exc:  # handed to the caller's thread
        put((_ERROR, exc))
    else:
        put((_END, None))


class _SyncStream(_SyncIterator[C], Generic[C, R]):
    """A blocking view of a stream: iterate it for chunks; `.result()`; `with` closes it."""

    def __init__(self, client: _Client, stream: Any) -> None:
        super().__init__(client, stream, stream.aclose)
        self._stream = stream

    def result(self) -> R:
        """Read what is left and return the finished value."""
        if self._current() is not None:
            for _ in self:
                pass
        value: R = self._client._run(self._stream.result())
        return value

    @property
    def done(self) -> bool:
        return bool(self._stream.done)


class _SyncReplyStream(_SyncStream[C, R]):
    """A blocking chat or generate stream: with `format=`, `parsed()` and `objects()` too, the
    async stream's own, run in the loop thread."""

    def parsed(self) -> Any:
        """The reply as the `format=` type (after the re-asks of `repair=N`), as
        `ChatStream.parsed`; StructuredOutputError when it does not fit."""
        return getattr(self.result(), "parsed")  # noqa: B009 - R is ChatResult or GenerateResult

    def objects(self) -> _SyncIterator[Any]:
        """`for value in stream.objects()`: the partial values, then the final one, as
        `ChatStream.objects` yields them; leaving the loop early closes the response."""
        return _SyncIterator(self._client, self._stream.objects(), self._stream.aclose)


class SyncChatStream(_SyncReplyStream[ChatChunk, ChatResult]):
    """`for chunk in client.chat(...)`: ChatChunks as they arrive; `.message`, `.result()`,
    `.text()`."""

    @property
    def message(self) -> Message:
        """The assistant message accumulated so far."""
        message: Message = self._stream.message
        return message

    def text(self) -> Iterator[str]:
        """Only the content deltas."""
        for chunk in self:
            if chunk.content:
                yield chunk.content


class SyncGenerateStream(_SyncReplyStream[GenerateChunk, GenerateResult]):
    """`for chunk in client.generate(...)`: GenerateChunks as they arrive; `.result()`,
    `.text()`."""

    def text(self) -> Iterator[str]:
        """Only the response deltas."""
        for chunk in self:
            if chunk.response:
                yield chunk.response


class SyncProgressStream(_SyncStream[Progress, str]):
    """`for progress in client.pull(...)`: Progress lines; `.result()` gives the final status."""


class SyncToolLoop(_SyncIterator[ToolEvent]):
    """`for event in client.chat_with_tools(...)`: ChatChunks and ToolResults; `.messages`,
    `.result`, `.run()`."""

    def __init__(self, client: _Client, loop: ToolLoop) -> None:
        super().__init__(client, aiter(loop), loop.aclose)
        self._loop = loop

    @property
    def messages(self) -> list[Message]:
        return self._loop.messages

    @property
    def result(self) -> ChatResult | None:
        return self._loop.result

    @property
    def rounds(self) -> int:
        return self._loop.rounds

    def run(self) -> ChatResult:
        """Run to the end; return the final reply."""
        for _ in self:
            pass
        assert self._loop.result is not None
        return self._loop.result
