"""ollama_stream: a small, fast Ollama SDK speaking the native NDJSON protocol over aiohttp +
orjson.

    async with AsyncOllama() as client:
        async for chunk in client.chat("qwen3", [{"role": "user", "content": "Hi"}]):
            print(chunk.content, end="")

`Ollama` is the blocking client over the same core; it is imported on first use.
"""

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .client import AsyncOllama, NativeBackend
from .config import RetryPolicy, Timeouts
from .errors import (
    CapabilityError,
    ContextLengthError,
    MaxRoundsError,
    ModelNotFoundError,
    OllamaConnectionError,
    OllamaError,
    OllamaTimeoutError,
    PromptTruncatedWarning,
    ProtocolError,
    ReplyTruncatedError,
    ResponseError,
    StreamError,
    StreamInterrupted,
    StructuredOutputError,
    ToolError,
    UnauthorizedError,
)
from .streams import ChatStream, GenerateStream, ProgressStream
from .types import ChatChunk, ChatResult, Message, Metrics, ToolCall

if TYPE_CHECKING:
    from .agent import ToolLoop
    from .backends import ChatBackend, ChatRequest, infer_provider
    from .endpoints import (
        CloudStatus,
        EmbeddingsResult,
        EmbedResult,
        GenerateChunk,
        GenerateResult,
        ListResult,
        ModelDetails,
        ModelInfo,
        Progress,
        PsResult,
        RunningModel,
        ShowResult,
        StatusResult,
        WebFetchResult,
        WebSearchHit,
        WebSearchResult,
    )
    from .settings import Settings, client_for
    from .sync import Ollama, SyncChatStream, SyncGenerateStream, SyncProgressStream, SyncToolLoop
    from .tools import Tool, ToolResult

# Imported on first use, to keep `import ollama_stream` light: the blocking front end, the tool
# machinery, the non-chat endpoint types, the backend slot and the settings.
_LAZY = {
    **dict.fromkeys(["Ollama", "SyncChatStream", "SyncGenerateStream", "SyncProgressStream",
                     "SyncToolLoop"], "sync"),
    "ToolLoop": "agent", "Tool": "tools", "ToolResult": "tools",
    **dict.fromkeys(["CloudStatus", "EmbedResult", "EmbeddingsResult", "GenerateChunk",
                     "GenerateResult", "ListResult", "ModelDetails", "ModelInfo", "Progress",
                     "PsResult", "RunningModel", "ShowResult", "StatusResult", "WebFetchResult",
                     "WebSearchHit", "WebSearchResult"],
                    "endpoints"),
    **dict.fromkeys(["ChatBackend", "ChatRequest", "infer_provider"], "backends"),
    **dict.fromkeys(["Settings", "client_for"], "settings"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ollama_stream' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "AsyncOllama",
    "CapabilityError",
    "ChatBackend",
    "ChatChunk",
    "ChatRequest",
    "ChatResult",
    "ChatStream",
    "CloudStatus",
    "ContextLengthError",
    "EmbedResult",
    "EmbeddingsResult",
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
    "PromptTruncatedWarning",
    "ProtocolError",
    "PsResult",
    "ReplyTruncatedError",
    "ResponseError",
    "RetryPolicy",
    "RunningModel",
    "Settings",
    "ShowResult",
    "StatusResult",
    "StreamError",
    "StreamInterrupted",
    "StructuredOutputError",
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
    "UnauthorizedError",
    "WebFetchResult",
    "WebSearchHit",
    "WebSearchResult",
    "__version__",
    "client_for",
    "infer_provider",
]
