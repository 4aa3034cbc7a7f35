"""The blocking views of streams, for `Ollama`: a pump task in the client's loop thread hands a
stream's items over as they arrive, and the caller's thread takes them out; a cross-thread wake-up
only when the caller waits, so the chunks of one read cost one step, and the first is not held.

Rules of this room (as `sync.py` states them): the pump holds no reference to the iterator it
feeds, and a `for` loop's iterator (a `_Feed`) is held by the loop alone, so a `break` drops it
even while the stream object is still referenced, and its loss cancels the pump, which closes the
HTTP response; a reader blocked in one thread while another closes the client wakes within _POLL
seconds with a RuntimeError.
"""

from __future__ import annotations

import asyncio
import collections
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
_END, _ERROR = 1, 2
_POLL = 0.5  # how often a blocked reader checks whether the client was closed under it


class _Client(Protocol):
    """What a blocking stream needs of its `Ollama` client."""

    @property
    def closed(self) -> bool: ...

    def _submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]: ...

    def _run(self, coro: Coroutine[Any, Any, T]) -> T: ...


class _Hand:
    """What a pump and its feed share, and nothing more: the items in hand (a deque, which either
    thread may touch), the end once it comes, and the wake-up for a reader that waits."""

    __slots__ = ("end", "items", "waiting", "wake")

    def __init__(self) -> None:
        self.items: collections.deque[Any] = collections.deque()
        self.end: tuple[int, Any] | None = None  # (_END, None) or (_ERROR, exception)
        self.waiting = False  # the reader waits for `wake`: the pump must put a token there
        self.wake: queue.SimpleQueue[None] = queue.SimpleQueue()


class _Feed(Generic[C]):
    """One pass over an async source for a blocking reader: a pump task in the loop thread hands
    the items over as they arrive and `__next__` takes them out. The feed is held by the caller's
    `for` loop alone, so leaving the loop (`break`, `return`, an exception) drops it, and its loss
    cancels the pump at once, which closes the HTTP response (rule 1).

    The hand-over costs a cross-thread step only when the reader waits: the pump appends each item
    to a deque and wakes the reader only if it is waiting, so the first chunk of a read goes over
    at once and the others of the same read are there when the reader comes back for them."""

    def __init__(self, owner: _SyncIterator[C]) -> None:
        self._owner = owner
        self._hand: _Hand | None = None
        self._items: collections.deque[Any] = collections.deque()  # the hand's, once started
        self._task: list[asyncio.Task[None]] = []  # filled by the pump, which never refers to us

    def __iter__(self) -> Iterator[C]:
        return self

    def __next__(self) -> C:
        items = self._items
        if items:  # the common case: the item is here already
            item: C = items.popleft()
            return item
        return self._wait()

    def _wait(self) -> C:
        owner = self._owner
        if owner._finished:
            raise StopIteration
        hand = self._hand
        if hand is None:
            hand = self._hand = _Hand()
            self._items = hand.items
            owner._client._submit(_pump(owner._source, hand, self._task))
        items = hand.items
        while True:
            if items:
                item: C = items.popleft()
                return item
            if hand.end is not None:
                if items:  # what came before the end goes first
                    continue
                owner._finished = True
                if hand.end[0] == _ERROR:
                    raise hand.end[1]
                raise StopIteration
            hand.waiting = True
            if items or hand.end is not None:  # it came between the look and the flag
                hand.waiting = False
                continue
            try:
                hand.wake.get(timeout=_POLL)
            except queue.Empty:
                if owner._client.closed:  # closed from another thread while we waited
                    owner._finished = True
                    raise RuntimeError("the Ollama client was closed while this stream was being "
                                       "read") from None
            hand.waiting = False

    def clear(self) -> None:
        """Forget the items in hand (the stream was closed)."""
        self._items.clear()

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
        feed = self._current()
        if feed is not None:  # what it held is not handed out after the close
            feed.clear()

    def __enter__(self: _I) -> _I:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def _pump(source: AsyncIterator[Any], hand: _Hand, holder: list[asyncio.Task[None]]) -> None:
    """Runs in the loop thread: hand the items of the async source over to the caller's thread as
    they come, waking it only when it waits. It holds no reference to the blocking iterator, so
    dropping that iterator (a `break`) lets it be collected."""
    task = asyncio.current_task()
    assert task is not None
    holder.append(task)
    append, wake = hand.items.append, hand.wake.put
    try:
        async for item in source:
            append(item)
            if hand.waiting:
                hand.waiting = False
                wake(None)
    except asyncio.CancelledError:
        hand.end = (_ERROR, RuntimeError("the stream was closed before its end"))
        raise
    except BaseException as exc:  # handed to the caller's thread
        hand.end = (_ERROR, exc)
    else:
        hand.end = (_END, None)
    finally:
        hand.waiting = False
        wake(None)


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
