"""The streamed replies (ChatStream, GenerateStream, ProgressStream) and the native read loop
behind them, over an aiohttp response (the loop over a ChatBackend is `_backend_loop`'s). Both
retry only through `_retry.first_success`, before the first chunk; after that, every failure is a
typed error carrying `.partial`, unless the native stream is resumed (rule 7). With `format=`,
chat and generate streams also give `parsed()` and `objects()`, and `result()` makes the re-asks
of `repair=N` (`_outputs.py`; never in the read loop).

Rules of the native read loop (`_stream_chunks`), the hot path:
1. One async generator from bytes to typed chunks: per chunk one decode, one `take` (parse and
   add in one call), one yield, nothing else (tests/test_hot_path.py counts the calls); a read's
   lines are decoded one at a time as they are handed over. `async for` drives the generator.
   A read drains aiohttp's buffer directly where `_http.direct_reads` allows, else readany().
2. A chunk is yielded only after it is accumulated, so `.partial` is exactly what the caller has
   seen.
3. Whatever ends the stream, `finally` closes the response; after `done` the body is first read to
   its end (for at most _DRAIN_SECONDS) so the connection goes back to the pool.
4. A stream and its generator share the Exchange, never each other: a stream dropped mid-reply is
   freed at once and its `__del__` closes the socket, so the server stops generating.
5. The event loop gets a turn at least every _BATCH chunks: reads that bring many lines at once
   are handed over in slices with a turn in between, so the phase timers can fire and other tasks
   run whatever the server sends (a read that completes no line waits for the loop anyway).
6. `idle` is the gap between two complete lines: only a read that completes a line restarts it, so
   a line trickled a byte at a time, or a flood of blank lines, cannot hold a stream open.
7. A stream that fails after output started ends in its error, unless the policy resumes it
   (`RetryPolicy.resumes`): then the same request goes again with the partial reply to continue
   (`_prefill`), within the call's attempts and its `total` deadline, and the loop reads on from
   the new response. Nothing of this runs until a failure: the loop's per-chunk work is the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import orjson

from ._backend_loop import backend_chunks
from ._exchange import Exchange
from ._http import DirectReads, direct_reads, send
from ._http_errors import TRANSPORT_ERRORS, EarlyEOF, Response, map_error
from ._retry import first_success, resume
from .errors import OllamaError, ProtocolError
from .protocol import UNDECODABLE, ChatAccumulator, NDJSONDecoder, parse_and_add
from .types import ChatChunk, ChatResult, Message

if TYPE_CHECKING:
    from .endpoints import GenerateChunk, GenerateResult, Progress  # noqa: F401 - the stream bases

__all__ = ["ChatStream", "GenerateStream", "ProgressStream"]

C = TypeVar("C")
R = TypeVar("R")
T = TypeVar("T")
S = TypeVar("S", bound="_Stream[Any, Any]")
RR = TypeVar("RR", bound="ChatResult | GenerateResult")
# After `done`: how long to wait for the end of the body, so that the connection can be reused;
# Ollama ends it at once, and a body that does not end promptly costs a new connection, no more.
_DRAIN_SECONDS = 0.1
_BATCH = 1024  # the most chunks handed over between two turns of the event loop


class _Stream(Generic[C, R]):
    """A streamed reply. Nothing is sent until it is first iterated (or `result()` is awaited).

    `async for chunk in stream` yields each typed chunk as its line arrives; `await stream.result()`
    drains the rest and returns the finished value. Leaving the loop early (`break`, `return`, an
    exception) closes the HTTP response at once, so the server stops generating, even while the
    stream itself is still referenced: the loop's iterator is held by the loop alone, and its loss
    closes the response. `async with ... as stream:` and `aclose()` do the same explicitly.
    """

    __slots__ = ("_exchange", "_gen", "_loose")
    _left_hint = "make the request again for a whole reply"

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self._gen: AsyncGenerator[C, None] | None = None  # held: stepped with __anext__
        self._loose: weakref.ref[AsyncGenerator[C, None]] | None = None  # an `async for`'s

    def __aiter__(self) -> AsyncIterator[C]:
        exchange = self._exchange
        if exchange.finished:
            raise RuntimeError(
                f"this {type(self).__name__} is finished and cannot be iterated again; await "
                "stream.result() for what it returned, or make the request again"
            )
        gen = self._gen
        if gen is None:
            gen = self._loose() if self._loose is not None else None
            if gen is None:
                read = _stream_chunks if exchange.backend is None else backend_chunks
                gen = read(exchange)
                # Held by the caller's loop only: when the loop is left, the generator goes,
                # and this callback closes the response then (not when it is finalized later).
                self._loose = weakref.ref(gen, partial(_left, exchange))
        return gen  # `async for` then drives the read loop: no extra call per chunk

    def __anext__(self) -> Awaitable[C]:
        return self._generator().__anext__()

    def _generator(self) -> AsyncGenerator[C, None]:
        gen = self._gen
        if gen is None:
            gen = self._loose() if self._loose is not None else None
            if gen is None:
                gen = _read_loop(self._exchange)
            self._gen = gen
        return gen

    @property
    def done(self) -> bool:
        """True once the final chunk has been received."""
        return self._exchange.acc.done

    @property
    def truncated(self) -> bool:
        """True once a final chunk says the output stopped at the length limit (`num_predict`):
        for `.text()` users, who see no final chunk."""
        return getattr(self._exchange.acc, "done_reason", None) == "length"

    async def result(self) -> R:
        """Read what is left of the stream and return the finished value (with `format=` and
        `repair=N`, the reply that fits, re-asked for up to N times)."""
        result = await self._result()
        if self._exchange.output is not None:  # format=: see _outputs
            from ._outputs import settle

            result = await settle(self, result)
        return result

    async def _result(self) -> R:
        exchange = self._exchange
        if not exchange.finished:
            async for _ in self:
                pass
        if exchange.acc.done:
            result: R = exchange.acc.result()
            return result
        if exchange.error is not None:
            raise exchange.error
        raise RuntimeError(
            f"this {type(self).__name__} was closed before its final chunk, after "
            f"{exchange.acc.chunks} chunks (its response is closed, so the server stopped): "
            f"{self._left_hint}")

    def _restart(self, exchange: Exchange) -> None:
        """Read a new request's reply from now on (a repair's re-ask)."""
        self._exchange, self._gen, self._loose = exchange, None, None

    async def aclose(self) -> None:
        """Stop the stream and close its HTTP response (the server stops generating). Idempotent."""
        gen = self._gen or (self._loose() if self._loose is not None else None)
        if gen is not None:
            await gen.aclose()
        self._exchange.finished = True
        self._exchange.close_response()

    async def __aenter__(self: S) -> S:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # Abandoned mid-stream: close the socket now rather than when the generator is finalized.
        exchange = self._exchange
        if exchange.response is not None and not exchange.finished:
            with contextlib.suppress(Exception):  # the loop may be gone: nothing left to close then
                exchange.close_response()

    def __repr__(self) -> str:
        exchange = self._exchange
        acc = exchange.acc
        if acc.done:
            state = "done"
        elif exchange.finished:
            state = "closed"
        else:
            state = f"{acc.chunks} chunks" if acc.chunks else "not started"
        about = f"model={exchange.model!r}" if exchange.model else f"path={exchange.path!r}"
        return f"<{type(self).__name__} {about} {state}>"


class _ReplyStream(_Stream[C, RR]):
    """A chat or generate reply: with `format=`, `parsed()` and `objects()` too."""

    __slots__ = ()
    _text = "content"  # the field of a chunk that holds the reply's text

    async def parsed(self) -> Any:
        """`(await self.result()).parsed`: the reply as the `format=` type (after the repairs
        of `repair=N`); StructuredOutputError when it does not fit."""
        return (await self.result()).parsed

    def objects(self) -> AsyncIterator[Any]:
        """Yield the JSON value parsed so far each time the reply grows into a new one (dicts and
        lists: strings may be partial, fields not begun absent), then the final value as
        `parsed()` gives it. Needs jiter (`pip install 'ollama-stream[structured]'`) or pydantic;
        leaving its loop early closes the response."""
        from ._outputs import objects
        from .structured import PartialJSON

        if self._exchange.output is None:
            raise ValueError("objects() needs a request made with format= (a type, 'json' or a "
                             "JSON Schema dict)")
        return _held_by_caller(objects(self, self._text, PartialJSON()), self)


class ChatStream(_ReplyStream[ChatChunk, ChatResult]):
    """A streamed `/api/chat` reply: ChatChunks; `.message` is the assistant message accumulated so
    far, `await .result()` gives the ChatResult, `.text()` yields only content deltas."""

    __slots__ = ()
    _left_hint = ".message holds the part received; make the request again for a whole reply"

    @property
    def message(self) -> Message:
        """The assistant message accumulated from the chunks yielded so far."""
        acc = self._exchange.acc
        assert isinstance(acc, ChatAccumulator)
        return acc.message

    def text(self) -> AsyncIterator[str]:
        """Yield only the content deltas (thinking and tool calls are still accumulated); leaving
        its loop early closes the response, as with the stream itself."""
        return _held_by_caller(_content_of(self), self)


class GenerateStream(_ReplyStream["GenerateChunk", "GenerateResult"]):
    """A streamed `/api/generate` reply: GenerateChunks; `await .result()` gives the GenerateResult
    (with the `context` of the final chunk), `.text()` yields only response deltas."""

    __slots__ = ()
    _text = "response"

    def text(self) -> AsyncIterator[str]:
        """Yield only the response deltas; leaving its loop early closes the response."""
        return _held_by_caller(_response_of(self), self)


class ProgressStream(_Stream["Progress", str]):
    """The progress of a pull, push or create: Progress lines; `await .result()` gives the final
    status."""

    __slots__ = ()


def _read_loop(exchange: Exchange) -> AsyncGenerator[Any, None]:
    return _stream_chunks(exchange) if exchange.backend is None else backend_chunks(exchange)


def _left(exchange: Exchange, _: object) -> None:
    """An `async for` over a stream was left before the end: close the response now."""
    if not exchange.finished:
        exchange.finished = True
        exchange.close_response()


def _held_by_caller(gen: AsyncGenerator[T, None], stream: _Stream[Any, Any]
                    ) -> AsyncGenerator[T, None]:
    """Close the response `stream` reads (a repair's, after one) as soon as the caller drops
    `gen` (a `break` out of it)."""
    weakref.finalize(gen, lambda: _left(stream._exchange, None)).atexit = False
    return gen


async def _content_of(stream: ChatStream) -> AsyncGenerator[str, None]:
    async for chunk in stream:
        if chunk.content:
            yield chunk.content


async def _response_of(stream: GenerateStream) -> AsyncGenerator[str, None]:
    async for chunk in stream:
        if chunk.response:
            yield chunk.response


async def _stream_chunks(exchange: Exchange) -> AsyncGenerator[Any, None]:
    """The native read loop (see the rules above)."""
    acc = exchange.acc
    clean = False
    try:
        resp, (lines, direct) = await first_success(exchange, partial(send, exchange, _first_lines))
        if exchange.watch is not None:
            exchange.watch.first_chunk(exchange.attempts)
        watchdog = exchange.watchdog
        assert watchdog is not None
        readany = resp.content.readany
        decoder = exchange.decoder
        split, take, loads, now = decoder.split, acc.take, orjson.loads, watchdog.loop.time
        watchdog.set_phase("idle")
        budget = _BATCH  # lines left before the loop must get a turn (rule 5)
        chunk = None
        while True:
            rest = None
            if len(lines) > budget:
                lines, rest = lines[:budget], lines[budget:]
            last = chunk
            for line in lines:  # decoded one at a time as they are handed over (rule 1)
                try:
                    chunk = take(loads(line))
                except UNDECODABLE:
                    decoder.skip_blank(line)  # a blank line; any other raises ProtocolError
                    continue
                yield chunk
                if chunk.done:
                    clean = await _drain(resp, exchange)
                    return
            if chunk is not last:  # rule 6: a complete line arrived, so the idle gap restarts
                watchdog.last = now()
            budget -= len(lines)
            if budget <= 0:
                await asyncio.sleep(0)  # a turn for the timers and the other tasks
                budget = _BATCH
                if watchdog.fired:
                    raise watchdog.expired()
                if rest is not None:
                    lines = rest
                    continue
            if decoder.error is not None:
                raise decoder.error
            watchdog.reading = True
            try:
                if direct is None:
                    data: bytes | None = await readany()
                else:  # what readany() returns, without its bookkeeping per buffered piece
                    data = direct.drain()
                    while data is not None and not data:
                        await direct.wait("readany")
                        data = direct.drain()
                    if data is None:  # the end of the body, or an error: readany() decides
                        data = await readany()
            except TRANSPORT_ERRORS as exc:  # the connection failed: rule 7
                data, failure = None, exc
            watchdog.reading = False
            if data:
                lines = split(data)
                continue
            lines = _at_eof(decoder) if data is not None else []
            if lines:
                continue
            # Ended without the final chunk: raises, unless the stream is resumed (rule 7).
            resp, (lines, direct) = await resume(exchange, failure if data is None else None,
                                                 partial(send, exchange, _first_lines))
            decoder, readany = exchange.decoder, resp.content.readany
            split, take = decoder.split, partial(parse_and_add, exchange.parse, acc.add)
    except OllamaError as exc:
        exchange.error = exchange.annotate(exc)
        raise
    except TRANSPORT_ERRORS as exc:
        exchange.error = map_error(exc, exchange, started=True)
        raise exchange.error from exc
    finally:
        exchange.end()
        resp_ = exchange.response
        exchange.response = None
        if resp_ is not None:
            if clean:
                resp_.release()
            else:
                resp_.close()


def _at_eof(decoder: NDJSONDecoder) -> list[bytes]:
    """The end of a body: its last line when it came whole without a newline; nothing when the
    close cut it short (Ollama ends every line with one), so the stream ended early."""
    if not decoder.pending_bytes:
        return []
    try:
        lines = decoder.split(b"\n")
        for line in lines:
            decoder.decode(line)  # a line cut short is no JSON object: ProtocolError
    except ProtocolError:
        return []
    return lines


async def _first_lines(resp: Response, exchange: Exchange
                       ) -> tuple[list[bytes], DirectReads | None]:
    """A stream attempt's reader: read until a line decodes to an object (or raise); that line and
    the ones after it in the same read, undecoded, and the body's direct reads."""
    reader, decoder = resp.content, exchange.decoder
    direct = direct_reads(reader)
    while True:
        data = direct.drain() if direct is not None else None
        while direct is not None and data is not None and not data:
            await direct.wait("readany")
            data = direct.drain()
        if data is None:
            data = await reader.readany()
        lines = decoder.split(data) if data else _at_eof(decoder)
        if not data and not lines:
            raise EarlyEOF("the response body ended before its first line")
        for index, line in enumerate(lines):
            if decoder.decode(line) is not None:  # a blank line is None; any other raises
                return lines[index:], direct


async def _drain(resp: Response, exchange: Exchange) -> bool:
    """After the final chunk: read to the end of the body so the connection can go back to the
    pool."""
    reader = resp.content
    if reader.at_eof():
        return True
    watchdog = exchange.watchdog
    assert watchdog is not None
    watchdog.set_phase("drain", watchdog.loop.time() + _DRAIN_SECONDS)
    watchdog.reading = True
    try:
        while await reader.readany():
            pass
    except TRANSPORT_ERRORS:
        return False
    return True
