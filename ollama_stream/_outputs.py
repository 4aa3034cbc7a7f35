"""What a chat or generate stream with `format=` does once its reply is whole, and while it grows:
the format attached to the result (for `.parsed`), the re-asks of `repair=N`, and `objects()`.

Rules of this room:
1. Nothing here runs in the read loop: `settle` runs in `result()`, after the final chunk, and
   `objects()` reads the stream as any caller does, so the hot path is the same with or without
   a format.
2. A repair is a new request on the same stream: the stream reads the next answer from a new
   Exchange (`_restart`), made by the client's own `again`, with the invalid answer and its
   errors added (chat: as an assistant message and a user message; generate, which has no
   messages and whose `context` Ollama deprecates: appended to the prompt as text).
3. The count of re-asks lives on the request (`Structured.repairs`), so `result()` after
   `objects()` tells the same count.
4. A reply that only calls tools (a round of `chat_with_tools`) is not checked nor repaired.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING, Any, Protocol

from .structured import NOTHING, OutputFormat, PartialJSON, repair_message
from .types import ChatResult, Message

if TYPE_CHECKING:
    from ._exchange import Exchange

__all__ = ["Structured", "objects", "settle"]


class _Restartable(Protocol):
    """What these helpers need of a stream (streams._ReplyStream)."""

    _exchange: Exchange

    def __aiter__(self) -> Any: ...

    async def _result(self) -> Any: ...

    def _restart(self, exchange: Exchange) -> None: ...


class Structured:
    """The structured part of one chat or generate call: its `output` format, the `repair` budget,
    the request `body` (a repair adds to it), `again` (body -> the next Exchange) and the count of
    re-asks so far."""

    __slots__ = ("again", "body", "output", "repair", "repairs")

    def __init__(self, output: OutputFormat, repair: object, body: dict[str, Any],
                 again: Callable[[dict[str, Any]], Exchange]) -> None:
        if isinstance(repair, bool) or not isinstance(repair, int) or repair < 0:
            raise ValueError(f"repair must be the number of re-asks allowed (an int >= 0, such as "
                             f"2), got {repair!r}")
        self.output = output
        self.repair = repair
        self.body = body
        self.again = again
        self.repairs = 0

    def attach(self, result: Any) -> Any:
        result._format = self.output
        result.repairs = self.repairs
        return result

    def check(self, result: Any) -> list[tuple[str, str]]:
        """The problems of a result's content (none: its parsed value is kept on it)."""
        value, errors = self.output.check(_content(result), truncated=result.truncated)
        if not errors:
            result._parsed = (value,)
        return errors

    def reask(self, stream: _Restartable, result: Any, errors: list[tuple[str, str]]) -> None:
        """Send the next request of a repair; `stream` reads its reply from now on."""
        body = dict(self.body)
        if isinstance(result, ChatResult):
            answer = result.message.to_dict()
            body["messages"] = [*body["messages"], answer,
                                Message("user", repair_message(errors)).to_dict()]
        else:
            body["prompt"] = (f"{body.get('prompt') or ''}\n\nYour previous answer was:\n"
                              f"{result.response}\n\n{repair_message(errors)}")
        self.body = body
        self.repairs += 1
        exchange = self.again(body)
        exchange.output = self
        stream._restart(exchange)


def _calls_tools(result: Any) -> bool:
    """A reply that only calls tools (a round of chat_with_tools) is not the answer: no repair."""
    return (isinstance(result, ChatResult) and bool(result.message.tool_calls)
            and not result.message.content.strip())


def _content(result: Any) -> str:
    return result.message.content if isinstance(result, ChatResult) else str(result.response)


async def settle(stream: _Restartable, result: Any) -> Any:
    """`result()` of a stream with `format=`: the format attached, and with `repair=N` the
    re-asks until the reply fits or N were made (the last result is returned either way; its
    `.parsed` raises StructuredOutputError when it still does not fit)."""
    spec: Structured = stream._exchange.output
    while True:
        spec.attach(result)
        if spec.repairs >= spec.repair or _calls_tools(result):
            return result
        errors = spec.check(result)
        if not errors:
            return result
        spec.reask(stream, result, errors)
        result = await stream._result()


async def objects(stream: _Restartable, field: str,
                  partial: PartialJSON) -> AsyncGenerator[Any, None]:
    """`stream.objects()`: the value parsed so far each time the `field` text of the chunks grows
    into a new one, then the final checked and converted value (StructuredOutputError when it does
    not fit once the repairs are spent). A repair starts over with the next answer's values."""
    spec: Structured = stream._exchange.output
    while True:
        exchange = stream._exchange
        if not exchange.finished:  # else only the final value is left to give
            feed = partial.feed
            if exchange.acc.chunks:  # the caller read some chunks before: they count too
                seen = exchange.acc.message
                value = feed(seen.content) if seen is not None and seen.content else NOTHING
                if value is not NOTHING:
                    yield value
            async for chunk in stream:
                text = getattr(chunk, field)
                if text:
                    value = feed(text)
                    if value is not NOTHING:
                        yield value
        result = spec.attach(await stream._result())
        errors = spec.check(result)
        if not errors:
            yield result.parsed
            return
        if spec.repairs >= spec.repair or _calls_tools(result):
            raise spec.output.error(_content(result), errors, result, spec.repairs)
        spec.reask(stream, result, errors)
        partial.reset()
