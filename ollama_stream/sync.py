"""Ollama: the blocking client, a second front end over the same AsyncOllama.

On first use it starts one event loop in a daemon thread and makes an AsyncOllama there; each
blocking method hands the async method's coroutine to that loop (`run_coroutine_threadsafe`) and
waits for its result. The methods, their parameters, types and docs, and the constructor's, are
derived from AsyncOllama's, never written a second time. A stream becomes an iterator that a pump
task in the loop thread feeds through a queue as chunks arrive: one hand-off between threads per
chunk.

Rules of this room, and why:
1. The pump holds no reference to the iterator it feeds, so a caller's `break` lets the iterator be
   collected; its `__del__` cancels the pump, and that closes the HTTP response.
2. A blocking call made from the loop thread itself (a sync tool run by chat_with_tools) would wait
   on its own thread forever: it is refused with a RuntimeError instead.
3. A reader blocked in one thread while another thread closes the client wakes within _POLL seconds
   with a RuntimeError, rather than waiting forever on a queue nobody feeds.
4. `close()`, or collecting the client, closes the AsyncOllama in its loop, cancels what is left as
   asyncio.run does, and joins the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import queue
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar

from .agent import ToolEvent, ToolLoop
from .client import AsyncOllama
from .endpoints import GenerateChunk, GenerateResult, Progress
from .types import ChatChunk, ChatResult, Message

if TYPE_CHECKING:
    from .config import RetryPolicy, Timeouts

__all__ = ["Ollama", "SyncChatStream", "SyncGenerateStream", "SyncProgressStream", "SyncToolLoop"]

P = ParamSpec("P")
T = TypeVar("T")
C = TypeVar("C")
R = TypeVar("R")
W = TypeVar("W")

_I = TypeVar("_I", bound="_SyncIterator[Any]")
_CHUNK, _END, _ERROR = 0, 1, 2
_POLL = 0.5  # how often a blocked reader checks whether the client was closed under it


class _LoopThread:
    """An event loop running forever in a daemon thread, until stop()."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._main, name="ollama-stream-loop", daemon=True)
        self.thread.start()
        self._ready.wait()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            # Streams still being read: cancel them, as asyncio.run does.
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self.thread:
            self.thread.join()


class _SyncIterator(Generic[C]):
    """Feeds an async iterator's items to a blocking caller, as they arrive, through a queue.

    A task in the loop thread runs the async iteration. `close()` (also `with`, and garbage
    collection, so a `break` out of a for loop is enough) cancels that task inside the loop and then
    closes the source, which closes the HTTP response.
    """

    def __init__(self, client: Ollama, source: AsyncIterator[C],
                 closer: Callable[[], Awaitable[None]]) -> None:
        self._client = client
        self._source = source
        self._closer = closer
        self._queue: queue.SimpleQueue[tuple[int, Any]] | None = None
        self._task: list[asyncio.Task[None]] = []  # filled by the pump, which never refers to us
        self._finished = False
        self._closed = False

    def __iter__(self) -> Iterator[C]:
        return self

    def __next__(self) -> C:
        if self._finished:
            raise StopIteration
        if self._queue is None:
            self._queue = queue.SimpleQueue()
            self._client._submit(_pump(self._source, self._queue, self._task))
        while True:
            try:
                kind, value = self._queue.get(timeout=_POLL)
                break
            except queue.Empty:
                if self._client.closed:  # closed from another thread while we waited
                    self._finished = True
                    raise RuntimeError("the Ollama client was closed while this stream was being "
                                       "read") from None
        if kind == _CHUNK:
            item: C = value
            return item
        self._finished = True
        if kind == _ERROR:
            raise value
        raise StopIteration

    async def _stop(self) -> None:
        for task in self._task:
            if not task.done():
                task.cancel()
                await asyncio.wait([task])
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

    def __del__(self) -> None:
        for task in self._task:
            if not task.done():
                # A closed loop has nothing left to stop.
                with contextlib.suppress(RuntimeError):
                    task.get_loop().call_soon_threadsafe(task.cancel)


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

    def __init__(self, client: Ollama, stream: Any) -> None:
        super().__init__(client, stream, stream.aclose)
        self._stream = stream

    def result(self) -> R:
        """Read what is left and return the finished value."""
        if self._queue is not None:
            for _ in self:
                pass
        value: R = self._client._run(self._stream.result())
        return value

    @property
    def done(self) -> bool:
        return bool(self._stream.done)


class SyncChatStream(_SyncStream[ChatChunk, ChatResult]):
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


class SyncGenerateStream(_SyncStream[GenerateChunk, GenerateResult]):
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

    def __init__(self, client: Ollama, loop: ToolLoop) -> None:
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


def _streaming(method: Callable[Concatenate[AsyncOllama, P], Any],
               kind: Callable[[Ollama, Any], W]) -> Callable[Concatenate[Ollama, P], W]:
    """The blocking twin of a stream-returning AsyncOllama method: same parameters, a blocking
    stream back."""

    @functools.wraps(method)
    def call(self: Ollama, /, *args: P.args, **kwargs: P.kwargs) -> W:
        return kind(self, method(self._async, *args, **kwargs))  # validates now, sends nothing yet

    _set_return(call, method, kind)
    return call


def _blocking(method: Callable[Concatenate[AsyncOllama, P], Coroutine[Any, Any, T]]
              ) -> Callable[Concatenate[Ollama, P], T]:
    """The blocking twin of a coroutine AsyncOllama method: same parameters, the awaited value
    back."""

    @functools.wraps(method)
    def call(self: Ollama, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(method(self._async, *args, **kwargs))

    _set_return(call, method, None)
    return call


def _set_return(call: Callable[..., Any], method: Callable[..., Any], kind: Any) -> None:
    """help() and inspect show the parameters of the async method and the blocking return type."""
    signature = inspect.signature(method)
    returns = kind.__name__ if kind is not None else signature.return_annotation
    call.__signature__ = signature.replace(return_annotation=returns)  # type: ignore[attr-defined]
    del call.__wrapped__  # type: ignore[attr-defined]


def _parameters_of(source: Callable[Concatenate[AsyncOllama, P], None]
                   ) -> Callable[[Callable[..., None]], Callable[Concatenate[Ollama, P], None]]:
    """Give a constructor the parameters of AsyncOllama's (for type checkers, help() and
    inspect)."""

    def derive(init: Callable[..., None]) -> Callable[Concatenate[Ollama, P], None]:
        init.__signature__ = inspect.signature(source)  # type: ignore[attr-defined]
        init.__doc__ = source.__doc__
        return init

    return derive


class Ollama:
    """The blocking client: the same methods, arguments and return types as AsyncOllama, with plain
    iterators for streams. Safe to share between threads; works where an event loop is already
    running in the calling thread (Jupyter). `close()` (or `with Ollama() as client:`) stops its
    loop thread."""

    @_parameters_of(AsyncOllama.__init__)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._async = AsyncOllama(*args, **kwargs)
        self._runner: _LoopThread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._finalizer: weakref.finalize[Any, Any] | None = None

    @property
    def host(self) -> str:
        return self._async.host

    @property
    def timeouts(self) -> Timeouts:
        return self._async.timeouts

    @property
    def retry(self) -> RetryPolicy:
        return self._async.retry

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return f"Ollama(host={self.host!r})"

    def _submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        runner = self._runner
        if runner is None:
            with self._lock:
                if self._closed:
                    coro.close()
                    raise RuntimeError("this Ollama client is closed; create a new one")
                if self._runner is None:
                    self._runner = _LoopThread()
                    self._finalizer = weakref.finalize(self, _shutdown, self._async, self._runner)
                runner = self._runner
        if runner.thread is threading.current_thread():
            coro.close()
            raise RuntimeError("a blocking Ollama call cannot be made from inside its own loop "
                               "thread (from a tool run by chat_with_tools, use AsyncOllama "
                               "instead)")
        return runner.submit(coro)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._submit(coro).result()

    def close(self) -> None:
        """Close the connections and stop the loop thread. Idempotent."""
        with self._lock:
            self._closed = True
            finalizer, self._finalizer = self._finalizer, None
            self._runner = None
        if finalizer is not None:
            finalizer()

    def __enter__(self) -> Ollama:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    chat = _streaming(AsyncOllama.chat, SyncChatStream)
    generate = _streaming(AsyncOllama.generate, SyncGenerateStream)
    pull = _streaming(AsyncOllama.pull, SyncProgressStream)
    push = _streaming(AsyncOllama.push, SyncProgressStream)
    create = _streaming(AsyncOllama.create, SyncProgressStream)
    chat_with_tools = _streaming(AsyncOllama.chat_with_tools, SyncToolLoop)
    load = _blocking(AsyncOllama.load)
    unload = _blocking(AsyncOllama.unload)
    embed = _blocking(AsyncOllama.embed)
    embeddings = _blocking(AsyncOllama.embeddings)
    list = _blocking(AsyncOllama.list)
    show = _blocking(AsyncOllama.show)
    ps = _blocking(AsyncOllama.ps)
    version = _blocking(AsyncOllama.version)
    status = _blocking(AsyncOllama.status)
    web_search = _blocking(AsyncOllama.web_search)
    web_fetch = _blocking(AsyncOllama.web_fetch)
    delete = _blocking(AsyncOllama.delete)
    copy = _blocking(AsyncOllama.copy)
    create_blob = _blocking(AsyncOllama.create_blob)
    has_blob = _blocking(AsyncOllama.has_blob)
    is_running = _blocking(AsyncOllama.is_running)


def _shutdown(client: AsyncOllama, runner: _LoopThread) -> None:
    """Close the async client in its loop, then stop the loop thread (also run when an Ollama is
    collected)."""
    if not runner.loop.is_closed() and runner.thread is not threading.current_thread():
        # Closing is best effort; the loop is stopped regardless.
        with contextlib.suppress(Exception):
            runner.submit(client.aclose()).result(timeout=10)
    runner.stop()

