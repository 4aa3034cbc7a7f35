"""The read loop over a ChatBackend (the LiteLLM one, or any other): the same contract as the
native loop in `streams.py`, written once for every backend.

Rules of this room, and why:
1. Retries only through `_retry.first_success`, before the first chunk; after it, every failure
   is a typed error carrying `.partial` (a backend's stream is not resumed).
2. The phase limits hold around each of the backend's chunks (`_next_chunk`), and whatever a
   backend raises comes out as an OllamaError: it never breaks the caller's loop with a foreign
   exception.
3. Whatever ends the stream, the backend's own stream is closed in `finally`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from functools import partial
from typing import Any

from ._exchange import Exchange
from ._http_errors import map_error
from ._retry import first_success
from ._watchdog import Expired
from .errors import OllamaError, StreamInterrupted
from .types import ChatChunk

__all__ = ["backend_chunks"]


async def backend_chunks(exchange: Exchange) -> AsyncGenerator[Any, None]:
    """The same contract as `_stream_chunks` over any ChatBackend: retries before the first chunk,
    the phase limits, accumulation and typed errors with `.partial`, written once for every
    backend."""
    acc = exchange.acc
    opened: tuple[AsyncIterator[ChatChunk], ChatChunk] | None = None
    try:
        opened = await first_success(exchange, partial(_open_backend, exchange))
        source, chunk = opened
        if exchange.watch is not None:
            exchange.watch.first_chunk(exchange.attempts)
        assert exchange.watchdog is not None
        exchange.watchdog.set_phase("idle")
        while True:
            acc.add(chunk)
            yield chunk
            if chunk.done:
                return
            chunk = await _next_chunk(exchange, source)
    except OllamaError as exc:
        exchange.error = exchange.annotate(exc)
        raise
    finally:
        exchange.end()
        if opened is not None:
            await _aclose(opened[0])


async def _open_backend(exchange: Exchange) -> tuple[AsyncIterator[ChatChunk], ChatChunk]:
    """One attempt over a backend: start its stream and wait for the first chunk."""
    source: AsyncIterator[ChatChunk] = exchange.backend.stream_chat(exchange.request)
    try:
        return source, await _next_chunk(exchange, source)
    except BaseException:
        await _aclose(source)
        raise


async def _next_chunk(exchange: Exchange, source: AsyncIterator[ChatChunk]) -> ChatChunk:
    """The backend's next chunk within the phase limits; only OllamaErrors come out."""
    watchdog = exchange.watchdog
    assert watchdog is not None
    try:
        if watchdog.fired:  # a limit passed while the caller's code ran
            raise watchdog.expired()
        watchdog.last = watchdog.loop.time()
        return await watchdog.waiting(source.__anext__())
    except Expired as exc:
        raise map_error(exc, exchange, started=exchange.acc.chunks > 0) from None
    except StopAsyncIteration:
        raise StreamInterrupted(
            f"the backend {type(exchange.backend).__name__} ended the reply to "
            f"{exchange.model!r} after {exchange.acc.chunks} chunks without a final chunk",
            partial=exchange.partial()
        ) from None
    except OllamaError:
        raise
    except Exception as exc:  # a backend that broke its contract: still a typed error
        backend = type(exchange.backend).__name__
        raise OllamaError(f"the backend {backend} failed: {type(exc).__name__}: {exc}") from exc


async def _aclose(source: AsyncIterator[Any]) -> None:
    close = getattr(source, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()
