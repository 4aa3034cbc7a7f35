"""Drop-ins for agent code written against raw Ollama dicts (mindX-style), with this SDK's line
handling, typed errors, retries and timeouts underneath."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

from . import AsyncOllama, Message, RetryPolicy, Timeouts

__all__ = ["stream_chat"]


async def stream_chat(
    base_url: str | None,
    model: str,
    messages: Sequence[Message | dict[str, Any]],
    think: bool | str = False,
    options: dict[str, Any] | None = None,
    *,
    timeouts: Timeouts | None = None,
    retry: RetryPolicy | None = None,
) -> AsyncGenerator[dict[str, Any], None]:
    """Stream `/api/chat` and yield each line's decoded dict, exactly as the aiohttp loop in
    Ollama's streaming docs does, so code that already consumes dicts keeps working.

    Accumulate the reply the way the spec asks (thinking and content concatenated, tool calls from
    every chunk, the final one included), then append it to the history for the next turn::

        thinking, content, tool_calls = "", "", []
        async for chunk in stream_chat("http://localhost:11434", "qwen3", messages, think=True):
            message = chunk.get("message", {})
            thinking += message.get("thinking", "")
            content += message.get("content", "")
            tool_calls += message.get("tool_calls", [])
        messages.append({"role": "assistant", "thinking": thinking, "content": content,
                         "tool_calls": tool_calls})

    Unlike a hand-written loop, lines split across reads are reassembled, an `{"error"}` line raises
    StreamError, a dropped stream raises StreamInterrupted, and failures before the first chunk are
    retried. `base_url` None means OLLAMA_HOST (or http://127.0.0.1:11434).
    """
    async with (
        AsyncOllama(base_url, timeouts=timeouts, retry=retry) as client,
        client.chat(model, list(messages), think=think, options=options) as stream,
    ):
        async for chunk in stream:
            yield chunk.raw
