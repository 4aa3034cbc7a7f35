"""The backend slot: where the chunks of a chat come from (values and rules only; no I/O here).

A backend is any object with `stream_chat(request) -> AsyncIterator[ChatChunk]` and `async aclose()`
(httpx's transport is the model: one method plus closing). `AsyncOllama(backend=...)` drives it; the
retries, phase limits, accumulation, `.text()`, `.result()` and the tool loop sit above it, written
once. A backend raises this SDK's errors (OllamaConnectionError, ResponseError with the HTTP status,
OllamaTimeoutError, StreamInterrupted, ...): the layer above decides from them what to retry.

Also here: which provider a model string names (`infer_provider`, `native_model_name`). The native
path needs no backend; `ollama_stream.NativeBackend` wraps it as one, and
`ollama_stream.backends.litellm.LiteLLMBackend` needs `pip install "ollama-stream[litellm]"`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..types import ChatChunk

__all__ = ["KNOWN_PROVIDERS", "NATIVE_PREFIXES", "ChatBackend", "ChatRequest", "infer_provider",
           "native_model_name"]

NATIVE_PREFIXES = ("ollama/", "ollama_chat/")


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat request: the model and the JSON body `/api/chat` would get (only the fields
    set)."""

    model: str
    body: dict[str, Any] = field(repr=False)

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.body["messages"]
        return messages

    def get(self, name: str, default: Any = None) -> Any:
        """An optional field of the request (think, tools, format, options, keep_alive, logprobs,
        ...)."""
        return self.body.get(name, default)


@runtime_checkable
class ChatBackend(Protocol):
    """What `AsyncOllama(backend=...)` needs: one streaming method and `aclose`."""

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Yield the reply's chunks; the last one has `done=True`. Raise this SDK's errors."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def native_model_name(model: str) -> str | None:
    """The Ollama model name when `model` is for Ollama's native API (`ollama/x`, `ollama_chat/x`,
    or a bare name such as `qwen3:8b` or `library/qwen3`); None when it names another provider
    (`openai/gpt-4o`)."""
    for prefix in NATIVE_PREFIXES:
        if model.startswith(prefix):
            return model[len(prefix):]
    provider, slash, _ = model.partition("/")
    if not slash:
        return model
    # A namespaced Ollama model (`library/qwen3`, `user/model:tag`) has no LiteLLM provider as its
    # prefix.
    return None if provider in KNOWN_PROVIDERS else model


def infer_provider(model: str) -> str:
    """The provider a model string names: "ollama" for `ollama/x`, `ollama_chat/x` and bare names,
    otherwise the prefix (`openai/gpt-4o` -> "openai", `anthropic/claude-...` -> "anthropic")."""
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"model must be a non-empty str, got {model!r}")
    return "ollama" if native_model_name(model) is not None else model.partition("/")[0]


# The provider prefixes LiteLLM routes on. Kept here (not read from litellm, which is not imported
# unless used); a prefix not listed is taken as an Ollama namespace. Extend with
# `KNOWN_PROVIDERS.add(...)`.
KNOWN_PROVIDERS = {
    "openai", "azure", "azure_ai", "anthropic", "bedrock", "vertex_ai", "gemini", "mistral", "groq",
    "cohere", "together_ai", "fireworks_ai", "deepseek", "openrouter", "perplexity", "xai",
    "huggingface", "replicate", "databricks", "cerebras", "sambanova", "nvidia_nim", "watsonx",
    "cloudflare", "deepinfra", "anyscale", "ai21", "voyage", "text-completion-openai",
    "hosted_vllm", "vllm", "lm_studio", "litellm_proxy", "sagemaker", "friendliai", "github",
    "nebius", "novita", "openai_like", "custom_openai", "dashscope", "moonshot",
}


def __getattr__(name: str) -> Any:
    """NativeBackend (now in ollama_stream.client) and client_for (now in ollama_stream.settings)
    are still importable from here, where they used to live; `from ollama_stream import ...` is the
    home."""
    if name == "NativeBackend":
        from ..client import NativeBackend

        return NativeBackend
    if name == "client_for":
        from ..settings import client_for

        return client_for
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
