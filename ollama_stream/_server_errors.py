"""What the server's error answers mean, and the typed error for each: a context window exceeded,
a capability the model lacks, credentials wanted, a failure that no retry can fix, a cloud quota
used up. Pure functions over the status and text of an answer (`_http` reads them off the wire).

Every pattern comes from Ollama's Go source (main of August 2026, v0.33; see PROTOCOL.md): the
handlers in server/routes.go and server/images.go, llm/llama_server.go and the MLX runner, and the
texts of llama.cpp and ollama.com that Ollama passes through. Matching is on lowercased substrings,
so a prefix the server adds (the model's name, "registry.ollama.ai/library/x:latest") does not
matter. An unknown text means none of these: the status alone then decides.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import (
    CapabilityError,
    ContextLengthError,
    ModelNotFoundError,
    ResponseError,
    UnauthorizedError,
)

__all__ = ["capability_missing", "context_window", "error_for_status", "is_context_exceeded",
           "is_permanent_500", "is_quota_exhausted"]

# HTTP 500s that come back the same however often the request is sent: wrong option types
# (server/routes.go modelOptions), template and format errors, and the loads that cannot fit.
_PERMANENT_500 = (
    "must be of type",                                   # option "num_ctx" must be of type integer
    "template:",                                         # a Go template that fails to execute
    "invalid format",                                    # a `format` the server cannot use
    "requires more system memory",                       # <= v0.24: model requires more system ...
    "unable to load full model on gpu",                  # v0.30+
    "reported out-of-memory during startup",             # llama-server reported out-of-memory ...
    "may be incompatible with your version of ollama",   # a model newer than the server
    "is no longer compatible with your version of ollama",
)

# A context window exceeded: Ollama's own texts, llama.cpp's and the MLX runner's.
_CONTEXT_EXCEEDED = (
    "exceeds the context length",           # the input length exceeds the context length
    "exceeds maximum context length",       # embed: input after truncation exceeds maximum ...
    "longer than the context length",       # llama-server: the prompt is longer than the ...
    "exceeds the model's maximum context",  # MLX (500): input length (N tokens) exceeds the ...
    "exceeds the available context size",   # llama.cpp: request (N tokens) exceeds ...
    "context length exceeded",
)
_WINDOW = re.compile(r"(?:maximum context length|available context size) \((\d+) tokens\)")

# 429s from ollama.com that say a quota is used up for hours or days: not worth retrying.
_QUOTA = ("usage limit", "quota")

# `"x" does not support chat` (the completion capability), `... does not support tools`, ...
_CAPABILITY = re.compile(r"does not support ([a-z][a-z ]*?)(?: input)?(?:[.,\n]|$)")
_CAPABILITY_NAMES = {
    "chat": "completion", "generate": "completion", "completion": "completion",
    "thinking": "thinking", "tools": "tools", "insert": "insert", "vision": "vision",
    "image": "vision", "audio": "audio", "embedding": "embedding", "embeddings": "embedding",
    "image generation": "image",
}


def is_permanent_500(text: str) -> bool:
    """An HTTP 500 whose text says the same request will fail again."""
    lowered = text.lower()
    return any(pattern in lowered for pattern in _PERMANENT_500) or is_context_exceeded(text)


def is_context_exceeded(text: str) -> bool:
    """The text says the input does not fit in the model's context window."""
    lowered = text.lower()
    return any(pattern in lowered for pattern in _CONTEXT_EXCEEDED)


def context_window(text: str) -> int | None:
    """The window size in tokens when the text names it ("maximum context length (M tokens)")."""
    match = _WINDOW.search(text.lower())
    return int(match.group(1)) if match else None


def is_quota_exhausted(text: str) -> bool:
    """A 429 that says a usage limit or quota is used up (ollama.com's weekly or session limits)."""
    lowered = text.lower()
    return any(pattern in lowered for pattern in _QUOTA)


def capability_missing(text: str) -> str | None:
    """The capability a `does not support ...` answer names, as `/api/show` spells capabilities
    ("completion", "tools", "thinking", "vision", "embedding", "insert", ...); None for other texts.
    When the server names several (one per line), the first is returned."""
    if "raw mode does not support" in text:
        return None  # a request error (raw with template, system or context), not a capability
    match = _CAPABILITY.search(text.lower())
    if match is None:
        return None
    return _CAPABILITY_NAMES.get(match.group(1).strip())


_STATUS_HINTS = {
    400: "The server rejected the request: its text above says which argument.",
    401: "The server wants credentials: set OLLAMA_API_KEY or pass an Authorization header.",
    402: "ollama.com's usage limit is reached: wait for it to reset, or upgrade the plan.",
    403: "The server refused the request: check OLLAMA_ORIGINS on the server or the proxy's rules.",
    408: "The server timed out reading the request; try again.",
    429: "The server is rate-limiting; wait and try again.",
    500: "The server failed: see the Ollama server log for the cause.",
    502: "A proxy in front of Ollama could not reach it: check that Ollama is running behind it.",
    503: "The server is busy (queue full); try again later, or raise OLLAMA_MAX_QUEUE on the "
         "server.",
    504: "A proxy in front of Ollama timed out waiting for it: check the server, or raise the "
         "proxy's timeout.",
}
_CAPABILITY_ADVICE = {
    "completion": "it cannot chat or generate (an embedding model?): use embed(), or a chat model",
    "tools": "drop tools=, or use a model with the tools capability (see show(model))",
    "thinking": "drop think= (think=False is accepted), or use a thinking model",
    "vision": "drop the images, or use a vision model",
    "embedding": "use an embedding model (such as nomic-embed-text) for embed()",
    "insert": "drop suffix=, or use a model that can fill in the middle",
    "audio": "drop the audio, or use a model that takes audio",
    "image": "use an image generation model",
}


def error_for_status(status: int, text: str, *, what: str, url: str, host: str,
                     model: str | None, signin_url: str | None = None,
                     retry_after: float | None = None,
                     num_ctx: int | None = None) -> ResponseError:
    """The error for an HTTP status and the server's text. `what` names the request in messages
    (the URL and the model); `num_ctx` is the context window the request asked for, if known."""
    common: dict[str, Any] = {"status_code": status, "error": text, "url": url, "model": model,
                              "retry_after": retry_after}
    said = f"HTTP {status} from {what}: {text}"
    if status == 404 and model:
        return ModelNotFoundError(f"model {model!r} not found on {host} (HTTP 404: {text}). "
                                  f"Pull it first: ollama pull {model}", **common)
    if status in (401, 403):
        if signin_url:
            advice = (f"Sign in at {signin_url} to use this model through the server, or use a "
                      "local model.")
        elif "cloud is disabled" in text.lower():
            advice = "The server has cloud models turned off (OLLAMA_NO_CLOUD): use a local model."
        else:
            advice = _STATUS_HINTS[status]
        return UnauthorizedError(f"{said}. {advice}", signin_url=signin_url, **common)
    capability = capability_missing(text) if status == 400 else None
    if capability is not None:
        name = repr(model) if model else "the model"
        return CapabilityError(f"{name} does not support {capability} ({said}): "
                               f"{_CAPABILITY_ADVICE.get(capability, 'use another model')}.",
                               capability=capability, **common)
    if status in (400, 413, 500) and is_context_exceeded(text):
        window = context_window(text) or num_ctx
        size = f" ({window} tokens)" if window else ""
        return ContextLengthError(
            f"the input does not fit the context window{size} of {model or 'the model'} ({said}). "
            "Raise options={'num_ctx': ...} (show(model) tells the model's maximum), or shorten "
            "the history.", context_length=window, **common)
    hint = _STATUS_HINTS.get(status, "")
    if status == 429 and is_quota_exhausted(text):
        hint = "A usage limit is used up; it is not retried: wait for it to reset, or upgrade."
    elif status == 500 and is_permanent_500(text):
        hint = "Sending it again will not help (not retried): see the text above."
    return ResponseError(f"{said}. {hint}".rstrip(), **common)
