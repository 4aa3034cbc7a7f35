"""The backend slot: where the chunks of a chat come from.

A backend is any object with `stream_chat(request) -> AsyncIterator[ChatChunk]` and `async aclose()`
(httpx's transport is the model: one method plus closing). `AsyncOllama(backend=...)` drives it; retries,
phase timeouts, accumulation, `.text()`, `.result()` and the tool loop sit above it, written once. A backend
raises this SDK's errors (OllamaConnectionError, ResponseError with the HTTP status, OllamaTimeoutError,
StreamInterrupted, ...): the layer above decides from them what to retry.

The native aiohttp backend is the default and the only one imported by `import ollama_stream`;
`ollama_stream.backends.litellm.LiteLLMBackend` needs `pip install "ollama-stream[litellm]"`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..types import ChatChunk

if TYPE_CHECKING:
    from ..client import AsyncOllama

__all__ = ["KNOWN_PROVIDERS", "NATIVE_PREFIXES", "ChatBackend", "ChatRequest", "NativeBackend", "client_for",
           "infer_provider", "native_model_name"]

NATIVE_PREFIXES = ("ollama/", "ollama_chat/")


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat request: the model and the JSON body `/api/chat` would get (only the fields set)."""

    model: str
    body: dict[str, Any] = field(repr=False)

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.body["messages"]
        return messages

    def get(self, name: str, default: Any = None) -> Any:
        """An optional field of the request (think, tools, format, options, keep_alive, logprobs, ...)."""
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


class NativeBackend:
    """Ollama's native `/api/chat` over aiohttp, as a backend object (no retries of its own: the client
    above retries). `AsyncOllama()` without a backend uses the same code on its integrated fast path."""

    def __init__(self, host: str | None = None, **client_options: Any) -> None:
        from ..client import AsyncOllama
        from ..config import RetryPolicy

        self._client = AsyncOllama(host, retry=RetryPolicy(max_attempts=1), **client_options)

    @property
    def host(self) -> str:
        return self._client.host

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        body = {key: value for key, value in request.body.items() if key not in ("model", "messages", "stream")}
        async with self._client.chat(request.model, request.messages, **body) as stream:
            async for chunk in stream:
                yield chunk

    async def aclose(self) -> None:
        await self._client.aclose()


def native_model_name(model: str) -> str | None:
    """The Ollama model name when `model` is for Ollama's native API (`ollama/x`, `ollama_chat/x`, or a bare
    name such as `qwen3:8b` or `library/qwen3`); None when it names another provider (`openai/gpt-4o`)."""
    for prefix in NATIVE_PREFIXES:
        if model.startswith(prefix):
            return model[len(prefix):]
    provider, slash, _ = model.partition("/")
    if not slash:
        return model
    # A namespaced Ollama model (`library/qwen3`, `user/model:tag`) has no LiteLLM provider as its prefix.
    return None if provider in KNOWN_PROVIDERS else model


def infer_provider(model: str) -> str:
    """The provider a model string names: "ollama" for `ollama/x`, `ollama_chat/x` and bare names,
    otherwise the prefix (`openai/gpt-4o` -> "openai", `anthropic/claude-...` -> "anthropic")."""
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"model must be a non-empty str, got {model!r}")
    return "ollama" if native_model_name(model) is not None else model.partition("/")[0]


# The provider prefixes LiteLLM routes on. Kept here (not read from litellm, which is not imported unless
# used); a prefix not listed is taken as an Ollama namespace. Extend with `KNOWN_PROVIDERS.add(...)`.
KNOWN_PROVIDERS = {
    "openai", "azure", "azure_ai", "anthropic", "bedrock", "vertex_ai", "gemini", "mistral", "groq", "cohere",
    "together_ai", "fireworks_ai", "deepseek", "openrouter", "perplexity", "xai", "huggingface", "replicate",
    "databricks", "cerebras", "sambanova", "nvidia_nim", "watsonx", "cloudflare", "deepinfra", "anyscale",
    "ai21", "voyage", "text-completion-openai", "hosted_vllm", "vllm", "lm_studio", "litellm_proxy", "sagemaker",
    "friendliai", "github", "nebius", "novita", "openai_like", "custom_openai", "dashscope", "moonshot",
}


def client_for(model: str, *, host: str | None = None, api_base: str | None = None, provider: str | None = None,
               **client_options: Any) -> tuple[AsyncOllama, str]:
    """A client for `model` and the model name to pass to its `chat`.

    `ollama/NAME`, `ollama_chat/NAME` or a bare name -> the native Ollama client (prefix stripped); any other
    `provider/model` -> an AsyncOllama driving the LiteLLM backend (needs the `litellm` extra).
    `provider="litellm"` sends an Ollama model through LiteLLM too (`api_base` defaults to the Ollama host)::

        client, name = client_for("openai/gpt-4o")
        async with client:
            result = await client.chat(name, messages).result()
    """
    from ..client import AsyncOllama
    from ..config import resolve_host
    from ..settings import PROVIDERS

    if provider is not None and provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}, got {provider!r}")
    native = native_model_name(model)
    if provider == "ollama" and native is None:
        raise ValueError(f"provider 'ollama' cannot serve {model!r}: it names the {infer_provider(model)!r} provider")
    if native is not None and provider != "litellm":
        return AsyncOllama(host, **client_options), native
    from .litellm import LiteLLMBackend

    if native is not None and api_base is None:
        api_base = resolve_host(host)
    backend = LiteLLMBackend(model=f"ollama_chat/{native}" if native is not None else model, api_base=api_base)
    return AsyncOllama(host, backend=backend, **client_options), model
