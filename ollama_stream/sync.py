"""Ollama: the blocking client, a second front end over the same AsyncOllama.

On first use it starts one event loop in a daemon thread and makes an AsyncOllama there; each
blocking method hands the async method's coroutine to that loop (`run_coroutine_threadsafe`) and
waits for its result. The methods, their parameters, types and docs, and the constructor's, are
derived from AsyncOllama's, never written a second time. A stream becomes an iterator that a pump
task in the loop thread feeds through a queue as chunks arrive: one hand-off between threads per
chunk (`_sync_streams.py` holds those blocking streams).

Rules of this room, and why:
1. The pump holds no reference to the iterator it feeds, and a `for` loop's iterator (a `_Feed`) is
   held by the loop alone, so a caller's `break` drops it even while the stream object is still
   referenced; its `__del__` cancels the pump, and that closes the HTTP response.
2. A blocking call made from the loop thread itself (a sync tool run by chat_with_tools) would wait
   on its own thread forever: it is refused with a RuntimeError instead.
3. A reader blocked in one thread while another thread closes the client wakes within _POLL seconds
   with a RuntimeError, rather than waiting forever on a queue nobody feeds.
4. `close()`, or collecting the client, closes the AsyncOllama in its loop, cancels what is left as
   asyncio.run does, and joins the thread.
5. After `os.fork()` the child has none of the parent's threads: its first call starts a loop
   thread of its own (the AsyncOllama below starts a session of its own the same way), and the
   parent's, left untouched, is never waited for at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import os
import threading
import weakref
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from ._sync_streams import SyncChatStream, SyncGenerateStream, SyncProgressStream, SyncToolLoop
from .client import AsyncOllama

if TYPE_CHECKING:
    from .config import RetryPolicy, Timeouts

__all__ = ["Ollama", "SyncChatStream", "SyncGenerateStream", "SyncProgressStream", "SyncToolLoop"]

P = ParamSpec("P")
T = TypeVar("T")
C = TypeVar("C")
R = TypeVar("R")
W = TypeVar("W")



class _LoopThread:
    """An event loop running forever in a daemon thread, until stop()."""

    def __init__(self) -> None:
        self.pid = os.getpid()  # a child of os.fork() has no such thread: see Ollama._submit
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
        for name in ("session", "connector"):
            if kwargs.get(name) is not None:
                raise TypeError(
                    f"Ollama(..., {name}=) cannot be used: the blocking client runs its requests "
                    f"on an event loop of its own, and an aiohttp {name} belongs to the loop that "
                    f"made it. Use AsyncOllama({name}=...) in that loop, or leave it out here")
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
        if runner is not None and runner.pid != os.getpid():
            # Forked (multiprocessing, gunicorn --preload, Celery prefork): the loop thread did
            # not come along, so this process starts its own (rule 5).
            with self._lock:
                if self._runner is runner:
                    _FORKED_AWAY.append(runner)  # never finalized here: it belongs to the parent
                    if self._finalizer is not None:
                        self._finalizer.detach()
                    self._runner = self._finalizer = None
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


_FORKED_AWAY: list[_LoopThread] = []  # loop threads of the parent process, after a fork


def _shutdown(client: AsyncOllama, runner: _LoopThread) -> None:
    """Close the async client in its loop, then stop the loop thread (also run when an Ollama is
    collected, and at exit)."""
    if runner.pid != os.getpid():
        return  # a forked child: that thread is the parent's, and not here to stop
    if not runner.loop.is_closed() and runner.thread is not threading.current_thread():
        # Closing is best effort; the loop is stopped regardless.
        with contextlib.suppress(Exception):
            runner.submit(client.aclose()).result(timeout=10)
    runner.stop()

