"""ollama_stream: a small, fast Ollama SDK speaking the native NDJSON protocol over aiohttp + orjson.

    async with AsyncOllama() as client:
        async for chunk in client.chat("qwen3", [{"role": "user", "content": "Hi"}]):
            print(chunk.content, end="")
"""

from ._version import __version__
from .agent import ToolLoop
from .client import AsyncOllama, ChatStream
from .config import RetryPolicy, Timeouts
from .errors import (
    MaxRoundsError,
    ModelNotFoundError,
    OllamaConnectionError,
    OllamaError,
    OllamaTimeoutError,
    ProtocolError,
    ResponseError,
    StreamError,
    StreamInterrupted,
    ToolError,
)
from .tools import Tool, ToolResult
from .types import ChatChunk, ChatResult, Message, Metrics, ToolCall

__all__ = [
    "AsyncOllama",
    "ChatChunk",
    "ChatResult",
    "ChatStream",
    "MaxRoundsError",
    "Message",
    "Metrics",
    "ModelNotFoundError",
    "OllamaConnectionError",
    "OllamaError",
    "OllamaTimeoutError",
    "ProtocolError",
    "ResponseError",
    "RetryPolicy",
    "StreamError",
    "StreamInterrupted",
    "Timeouts",
    "Tool",
    "ToolCall",
    "ToolError",
    "ToolLoop",
    "ToolResult",
    "__version__",
]
