"""Every error this SDK raises, in one tree.

    OllamaError                  base; every error below carries .partial and .attempts
    ├── OllamaConnectionError    (also a builtin ConnectionError) refused, reset, DNS, TLS
    ├── OllamaTimeoutError       (also a builtin TimeoutError) .phase: the Timeouts limit passed
    ├── ResponseError            a non-2xx HTTP status; .status_code, .error (the server's text)
    │   ├── ModelNotFoundError   HTTP 404: the model is not pulled; .model
    │   ├── ContextLengthError   the input does not fit the context window; .context_length
    │   ├── CapabilityError      the model cannot do what was asked; .capability, .model
    │   └── UnauthorizedError    HTTP 401/403: sign in or check access; .signin_url
    ├── StreamError              an {"error": ...} line after output started
    ├── StreamInterrupted        the stream ended (EOF, dropped connection) before `done: true`
    ├── ProtocolError            the server sent something that is not Ollama's protocol
    ├── ToolError                a tool call failed under on_error="raise"; .result
    ├── MaxRoundsError           the tool loop hit max_rounds; .messages holds the history
    ├── ReplyTruncatedError      the tool loop's answer was cut at the length limit; .result
    └── StructuredOutputError    a reply does not fit its `format`; .content, .errors, .result

PromptTruncatedWarning (a UserWarning) says the server probably cut the prompt to fit num_ctx.

`.partial` is the assistant Message accumulated from the chunks already handed to the caller (None
when nothing was yielded); `.attempts` is how many requests were made, `.failures` why each one
failed. No message ever contains request headers: the API key stays out of logs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .types import Message

__all__ = [
    "CapabilityError",
    "ContextLengthError",
    "ModelNotFoundError",
    "OllamaConnectionError",
    "OllamaError",
    "OllamaTimeoutError",
    "ProtocolError",
    "ResponseError",
    "StreamError",
    "StreamInterrupted",
    "StructuredOutputError",
    "PromptTruncatedWarning",
    "ReplyTruncatedError",
    "ToolError",
    "MaxRoundsError",
    "UnauthorizedError",
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


class ContextLengthError(ResponseError):
    """The input does not fit the model's context window (the server refused it rather than cut
    it). `.context_length` is the window in tokens when known. Raise `options={"num_ctx": ...}` or
    shorten the history."""

    def __init__(self, message: str, *, context_length: int | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.context_length = context_length


class CapabilityError(ResponseError):
    """The model lacks a capability the request needs: `.capability` is one of "completion",
    "tools", "thinking", "vision", "embedding", "insert", "audio", "image" (as `/api/show` names
    them). Drop what needs it, or use a model that has it."""

    def __init__(self, message: str, *, capability: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.capability = capability


class UnauthorizedError(ResponseError):
    """HTTP 401 or 403: the server (or ollama.com behind it) wants credentials or refuses access.
    `.signin_url` is where to sign in when the server sent one (cloud models on a local server)."""

    def __init__(self, message: str, *, signin_url: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.signin_url = signin_url


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


class ReplyTruncatedError(OllamaError):
    """The tool loop's final answer stopped at the length limit (`done_reason == "length"`), so it
    was not taken as the answer. `.result` is that reply, `.messages` the history."""

    def __init__(self, message: str, *, result: Any = None, messages: list[Message] | None = None,
                 **kw: Any) -> None:
        super().__init__(message, **kw)
        self.result = result
        self.messages = messages or []


class PromptTruncatedWarning(UserWarning):
    """The prompt probably did not fit the context window and the server cut it (`num_ctx` known,
    `prompt_eval_count` reached it). Raise `num_ctx`, or pass `truncate=False` to be refused
    instead (ContextLengthError)."""


class MaxRoundsError(OllamaError):
    """The tool loop ran `max_rounds` rounds and the model still asked for tools."""

    def __init__(self, message: str, *, messages: list[Message] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.messages = messages or []


class StructuredOutputError(OllamaError):
    """A reply asked for with `format=` does not fit it: its content is not JSON, or the JSON does
    not validate against the type or schema. `.content` is the text that was parsed, `.errors` what
    did not fit as (path, message) pairs such as `("$.age", "should be integer, got str 'x'")`,
    `.result` the whole ChatResult (or GenerateResult). `repair=N` re-asks the model with these
    errors."""

    def __init__(self, message: str, *, content: str = "",
                 errors: list[tuple[str, str]] | None = None, result: Any = None,
                 **kw: Any) -> None:
        super().__init__(message, **kw)
        self.content = content
        self.errors = errors or []
        self.result = result
