"""The tool loop: stream a reply, run the tool calls it makes, send the results back, until the
model answers.

It drives anything with a `chat` method shaped like `AsyncOllama.chat` (the `ChatClient` protocol),
so it does not import the client; the tools themselves run through `ollama_stream.tools`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, Protocol

from .errors import MaxRoundsError, ReplyTruncatedError, ToolError
from .tools import Tool, ToolResult, as_tool, run_tool_calls
from .types import ChatChunk, ChatResult, Message

__all__ = ["ChatClient", "ToolLoop"]

ToolEvent = ChatChunk | ToolResult


class ChatReply(Protocol):
    """What the loop needs of a streamed reply (a ChatStream is one)."""

    def __aiter__(self) -> AsyncIterator[ChatChunk]: ...

    async def result(self) -> ChatResult: ...

    async def aclose(self) -> None: ...


class ChatClient(Protocol):
    """Anything the loop can drive: `chat(model, messages, tools=..., **options)` returning a reply
    that streams ChatChunks and has `result()` and `aclose()` (AsyncOllama is one)."""

    def chat(self, *args: Any, **kwargs: Any) -> ChatReply: ...


class ToolLoop:
    """An async iterator over one agent run: each round's ChatChunks as they stream, then one
    ToolResult per executed call, then the next round, until a round makes no tool calls.

    `loop.messages` is the whole history (the input messages, each assistant message with its
    thinking and tool calls, one `tool` message per call); `loop.result` is the final round's
    ChatResult. A final reply cut at the length limit is not taken as the answer: it raises
    ReplyTruncatedError, or with `on_length="return"` ends the loop with `loop.truncated` True.
    """

    def __init__(self, client: ChatClient, model: str,
                 messages: Sequence[Message | dict[str, Any]], tools: Sequence[Any], *,
                 max_rounds: int, on_error: str, tool_timeout: float | None,
                 chat_options: dict[str, Any], on_length: str = "raise") -> None:
        if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1:
            raise ValueError(f"max_rounds must be a positive int, got {max_rounds!r}")
        if on_error not in ("return", "raise"):
            raise ValueError("on_error must be 'return' (send the error to the model) or 'raise', "
                             f"got {on_error!r}")
        if on_length not in ("raise", "return"):
            raise ValueError("on_length must be 'raise' (a reply cut at the length limit is an "
                             f"error) or 'return' (end with loop.truncated), got {on_length!r}")
        self.tools: list[Tool] = [as_tool(item) for item in tools]
        names = [tool.name for tool in self.tools]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"two tools share the name(s) {', '.join(duplicates)}")
        self.messages: list[Message] = [m if isinstance(m, Message) else Message.from_dict(m)
                                        for m in messages]
        self.result: ChatResult | None = None
        self.rounds = 0
        self.truncated = False  # the final reply stopped at the length limit (on_length="return")
        self._client = client
        self._model = model
        self._schemas = [tool.to_schema() for tool in self.tools]
        self._max_rounds = max_rounds
        self._on_error = on_error
        self._on_length = on_length
        self._tool_timeout = tool_timeout
        self._options = chat_options
        # Checked now, before any I/O, with the same rules as chat().
        client.chat(model, self.messages, tools=self._schemas, **chat_options)
        self._gen: AsyncGenerator[ToolEvent, None] | None = None

    def __aiter__(self) -> AsyncIterator[ToolEvent]:
        if self._gen is None:
            self._gen = self._run()
        return self._gen

    async def run(self) -> ChatResult:
        """Run to the end without looking at the events; return the final reply."""
        async for _ in self:
            pass
        assert self.result is not None
        return self.result

    async def aclose(self) -> None:
        if self._gen is not None:
            await self._gen.aclose()

    async def __aenter__(self) -> ToolLoop:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _cut(self, result: ChatResult) -> ReplyTruncatedError:
        options = self._options.get("options") or {}
        limit = options.get("num_predict") if isinstance(options, dict) else None
        said = f"num_predict={limit}" if limit is not None else "the model's num_predict"
        return ReplyTruncatedError(
            f"the model's reply in round {self.rounds} stopped at the length limit ({said}, "
            "done_reason 'length'), so it is not taken as the answer: raise "
            "options={'num_predict': ...}, or pass on_length='return' to keep it. The reply is in "
            ".result, the history in .messages",
            result=result, messages=list(self.messages), partial=result.message)

    async def _run(self) -> AsyncGenerator[ToolEvent, None]:
        while True:
            self.rounds += 1
            stream = self._client.chat(self._model, self.messages, tools=self._schemas,
                                       **self._options)
            try:
                async for chunk in stream:
                    yield chunk
                result = await stream.result()
            finally:
                await stream.aclose()
            self.messages.append(result.message)
            calls = result.message.tool_calls
            if not calls:
                self.result = result
                if result.truncated:
                    self.truncated = True
                    if self._on_length == "raise":
                        raise self._cut(result)
                return
            if self.rounds >= self._max_rounds:
                raise MaxRoundsError(
                    f"the model still asked for tools after max_rounds={self._max_rounds} rounds "
                    f"({', '.join(call.name for call in calls)}); raise max_rounds or check the "
                    "tools' answers. "
                    "The history, with these unanswered calls last (not executed), is in .messages",
                    messages=list(self.messages),
                )
            results = await run_tool_calls(self.tools, calls, timeout=self._tool_timeout)
            for call, outcome in zip(calls, results, strict=True):
                if outcome.error is not None and self._on_error == "raise":
                    raise ToolError(f"tool call {call.name}({outcome.arguments}) failed: "
                                    f"{outcome.error}",
                                    result=outcome, messages=list(self.messages))
                self.messages.append(Message("tool", outcome.content, tool_name=call.name,
                                             tool_call_id=call.id))
                yield outcome
