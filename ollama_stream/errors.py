"""Every error this SDK raises, in one tree.

    OllamaError                  base; every error below carries .partial and .attempts
    ├── OllamaConnectionError    (also a builtin ConnectionError) refused, reset, DNS, TLS
    ├── OllamaTimeoutError       (also a builtin TimeoutError) .phase: the Timeouts limit passed
    ├── ResponseError            a non-2xx HTTP status; .status_code, .error (the server's text)
    │   └── ModelNotFoundError   HTTP 404: the model is not pulled; .model
    ├── StreamError              an {"error": ...} line after output started
    ├── StreamInterrupted        the stream ended (EOF, dropped connection) before `done: true`
    ├── ProtocolError            the server sent something that is not Ollama's protocol
    ├── ToolError                a tool call failed under on_error="raise"; .result
    └── MaxRoundsError           the tool loop hit max_rounds; .messages holds the history

`.partial` is the assistant Message accumulated from the chunks already handed to the caller (None
when nothing was yielded); `.attempts` is how many requests were made, `.failures` why each one
failed. No message ever contains request headers: the API key stays out of logs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .types import Message

__all__ = [
    "ModelNotFoundError",
    "OllamaConnectionError",
    "OllamaError",
    "OllamaTimeoutError",
    "ProtocolError",
    "ResponseError",
    "StreamError",
    "StreamInterrupted",
    "ToolError",
    "MaxRoundsError",
]


class OllamaError(Exception):
    """Base of every error raised by ollama_stream."""

    partial: Message | None
    attempts: int
    failures: tuple[str, ...]

    def __init__(self, message: str, *, partial: Message | None = None, attempts: int = 1,
                 failures: tuple[str, ...] = ()) -> None:
        # One positional argument only: OSError subclasses would read two as (errno, strerror).
        super().__init__(message)
        self.partial = partial
        self.attempts = attempts
        self.failures = failures

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        return self.message


class OllamaConnectionError(OllamaError, ConnectionError):
    """The server could not be reached: connection refused or reset, DNS failure, TLS failure."""

    def __init__(self, message: str, *, url: str = "", retryable: bool = True,
                 reason: str = "connection failed", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.url = url
        self.retryable = retryable  # False for failures a retry cannot fix (TLS, an invalid URL)
        self.reason = reason  # a few words for the attempt log: "connection refused", "DNS failure"


class OllamaTimeoutError(OllamaError, TimeoutError):
    """A phase of the request ran past its limit (see `Timeouts`)."""

    def __init__(self, message: str, *, phase: str, timeout: float | None = None,
                 **kw: Any) -> None:
        super().__init__(message, **kw)
        self.phase = phase
        self.timeout = timeout


class ResponseError(OllamaError):
    """The server answered with a non-2xx status before streaming."""

    def __init__(self, message: str, *, status_code: int, error: str = "", url: str = "",
                 model: str | None = None, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.status_code = status_code
        self.error = error
        self.url = url
        self.model = model
        self.retry_after = retry_after


class ModelNotFoundError(ResponseError):
    """HTTP 404 for a model that is not on the server; `ollama pull <model>` fixes it."""


class StreamError(OllamaError):
    """The server wrote an `{"error": ...}` line into a stream (the status was already 200)."""

    def __init__(self, message: str, *, error: str = "", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.error = error


class StreamInterrupted(OllamaError):
    """The stream stopped before its `done: true` chunk: the connection dropped or hit EOF early."""


class ProtocolError(OllamaError):
    """The bytes received are not Ollama's protocol (bad JSON, wrong types, an over-long line)."""


class ToolError(OllamaError):
    """A tool call failed (unknown tool, bad arguments, an exception, a timeout) under
    on_error="raise"."""

    def __init__(self, message: str, *, result: Any = None, messages: list[Message] | None = None,
                 **kw: Any) -> None:
        super().__init__(message, **kw)
        self.result = result
        self.messages = messages or []


class MaxRoundsError(OllamaError):
    """The tool loop ran `max_rounds` rounds and the model still asked for tools."""

    def __init__(self, message: str, *, messages: list[Message] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.messages = messages or []
