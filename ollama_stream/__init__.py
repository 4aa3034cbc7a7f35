"""ollama_stream: a small, fast Ollama SDK speaking the native NDJSON protocol over aiohttp + orjson.

    async with AsyncOllama() as client:
        async for chunk in client.chat("qwen3", [{"role": "user", "content": "Hi"}]):
            print(chunk.content, end="")

`Ollama` is the blocking client over the same core; it is imported on first use.
"""

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .agent import ToolLoop
from .backends import ChatBackend, ChatRequest, NativeBackend, client_for, infer_provider
from .client import AsyncOllama, ChatStream, GenerateStream, ProgressStream
from .config import RetryPolicy, Settings, Timeouts
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
from .types import (
    ChatChunk,
    ChatResult,
    EmbedResult,
    GenerateChunk,
    GenerateResult,
    ListResult,
    Message,
    Metrics,
    ModelDetails,
    ModelInfo,
    Progress,
    PsResult,
    RunningModel,
    ShowResult,
    ToolCall,
)

if TYPE_CHECKING:
    from .sync import Ollama, SyncChatStream, SyncGenerateStream, SyncProgressStream, SyncToolLoop

_LAZY = {"Ollama", "SyncChatStream", "SyncGenerateStream", "SyncProgressStream", "SyncToolLoop"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import sync

        return getattr(sync, name)
    raise AttributeError(f"module 'ollama_stream' has no attribute {name!r}")


__all__ = [
    "AsyncOllama",
    "ChatBackend",
    "ChatChunk",
    "ChatRequest",
    "ChatResult",
    "ChatStream",
    "EmbedResult",
    "GenerateChunk",
    "GenerateResult",
    "GenerateStream",
    "ListResult",
    "MaxRoundsError",
    "Message",
    "Metrics",
    "ModelDetails",
    "ModelInfo",
    "ModelNotFoundError",
    "NativeBackend",
    "Ollama",
    "OllamaConnectionError",
    "OllamaError",
    "OllamaTimeoutError",
    "Progress",
    "ProgressStream",
    "ProtocolError",
    "PsResult",
    "ResponseError",
    "RetryPolicy",
    "RunningModel",
    "Settings",
    "ShowResult",
    "StreamError",
    "StreamInterrupted",
    "SyncChatStream",
    "SyncGenerateStream",
    "SyncProgressStream",
    "SyncToolLoop",
    "Timeouts",
    "Tool",
    "ToolCall",
    "ToolError",
    "ToolLoop",
    "ToolResult",
    "__version__",
    "client_for",
    "infer_provider",
]
