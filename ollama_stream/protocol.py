"""The sans-I/O core: NDJSON bytes -> decoded objects -> typed chunks -> an accumulated reply.

Nothing here reads a socket or imports aiohttp. `NDJSONDecoder` takes byte fragments split anywhere
and returns the complete JSON objects; `parse_chat_chunk` types one object; `ChatAccumulator` folds
chunks into the assistant message exactly as Ollama's streaming spec asks, and its `take` does both
in one call on the hot path. The request side (`build_chat_request` and the argument checks) lives
in `_arguments.py` and is re-exported here.

This module is longer than 450 lines on purpose: the decoder, the careful parser and the fast path
of `take` must agree exactly, so they are read (and tested) side by side.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from ._arguments import (  # the request side, re-exported: `ollama_stream.protocol` has it all
    THINK_LEVELS,
    build_chat_request,
    check_model,
    check_think,
    check_tools,
    is_gpt_oss,
    wire_messages,
)
from .errors import PromptTruncatedWarning, ProtocolError, StreamError
from .images import _is_base64
from .types import ChatChunk, ChatResult, Message, Metrics, ToolCall

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "THINK_LEVELS",
    "ChatAccumulator",
    "NDJSONDecoder",
    "NotAnObject",
    "UNDECODABLE",
    "build_chat_request",
    "check_model",
    "check_think",
    "check_tools",
    "error_text",
    "is_gpt_oss",
    "parse_chat_chunk",
    "parse_metrics",
    "prompt_overflowed",
    "wire_messages",
]

DEFAULT_MAX_LINE_BYTES = 16 * 2**20
_PREVIEW = 200
# shared, never mutated: feed() and split() return them when no line completed
_NO_OBJECTS: list[dict[str, Any]] = []
_NO_LINES: list[bytes] = []
_loads = orjson.loads
C = TypeVar("C")  # a chunk type (ChatChunk, GenerateChunk, Progress)
_JSONDecodeError = orjson.JSONDecodeError


class NDJSONDecoder:
    """Split a byte stream into lines and decode each as a JSON object.

    Feed it fragments as they arrive (`feed`), then call `close()` at EOF for a last line without
    `\\n`. Blank lines are skipped, `\\r\\n` endings accepted. A line longer than `max_line_bytes`
    raises ProtocolError as soon as it is known to be too long, without waiting for its end.

    A reader that decodes the lines one at a time as it hands them over (the client's read loop)
    calls `split` instead of `feed`, decodes each line with `orjson.loads`, and hands a line that
    did not give a JSON object to `skip_blank`, which skips a blank one and words the error for
    any other by its line number.
    """

    __slots__ = ("_batch", "_max", "_partial", "error", "lines")

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        if max_line_bytes < 1:
            raise ValueError(f"max_line_bytes must be at least 1, got {max_line_bytes}")
        self._max = max_line_bytes
        self._partial = bytearray()
        # complete lines seen so far, blank ones included: error messages name line numbers
        self.lines = 0
        self._batch: list[bytes] = _NO_LINES  # the lines of the last split(), for their numbers
        # A bad line after good ones in the same fragment: the good ones are returned first and this
        # is raised by the next feed()/split()/close(); callers that may not call again check it
        # after each batch.
        self.error: ProtocolError | None = None

    def split(self, data: bytes) -> list[bytes]:
        """Take the next fragment; return the complete lines it finishes, undecoded (blank ones
        included; a line may keep its `\\n`). The rest of the fragment waits for the next call."""
        if self.error is not None:
            raise self.error
        newline = data.find(b"\n")
        if newline < 0:
            partial = self._partial
            partial += data
            if len(partial) > self._max:
                raise self._too_long(len(partial), self.lines + 1)
            return _NO_LINES
        if self._partial:
            self._partial += data
            data = bytes(self._partial)
            self._partial.clear()
        elif newline == len(data) - 1 and newline <= self._max:
            # The common case on a live stream: one whole line per read (Ollama flushes per token).
            self.lines += 1
            self._batch = lines = [data]
            return lines
        lines = data.split(b"\n")
        tail = lines.pop()
        # an over-long tail is refused by the next call, after these lines are out
        if tail:
            self._partial += tail
        if len(data) > self._max:
            for index, line in enumerate(lines):
                if len(line) > self._max:
                    error = self._too_long(len(line), self.lines + index + 1)
                    if not index:
                        raise error
                    self.error, lines = error, lines[:index]
                    break
        self.lines += len(lines)
        self._batch = lines
        if len(lines) > len(data) >> 4:  # lines of under 16 bytes on average: a flood of blank
            return [line for line in lines if line]  # ones, left out at once (and cheaply)
        return lines

    def skip_blank(self, line: bytes) -> None:
        """A line of the last split() that gave no JSON object: return if it is blank (whitespace
        only), else raise the ProtocolError that says what it is, by its line number."""
        if not line.strip():
            return
        try:
            obj = _loads(line)
        except _JSONDecodeError:
            raise self._bad_line(line, "is not valid JSON") from None
        raise self._bad_line(line, f"is a JSON {type(obj).__name__}, not an object")

    def decode(self, line: bytes) -> dict[str, Any] | None:
        """One line of the last split() as its JSON object; None for a blank line."""
        try:
            obj = _loads(line)
        except _JSONDecodeError:
            obj = None
        if type(obj) is dict:
            return obj
        self.skip_blank(line)
        return None

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Take the next fragment;
        return the objects of every line it completes (often none or one)."""
        out: list[dict[str, Any]] = []
        for line in self.split(data):
            try:
                obj = self.decode(line)
            except ProtocolError as exc:
                return self._fail(out, exc)
            if obj is not None:
                out.append(obj)
        return out

    def _fail(self, good: list[dict[str, Any]], error: ProtocolError) -> list[dict[str, Any]]:
        self._partial.clear()
        if not good:
            raise error
        self.error = error
        return good

    @property
    def max_line_bytes(self) -> int:
        return self._max

    def close(self) -> list[dict[str, Any]]:
        """End of input: decode a last line that had no trailing newline."""
        if self.error is not None:
            raise self.error
        if not self._partial:
            return _NO_OBJECTS
        return self.feed(b"\n")

    @property
    def pending_bytes(self) -> int:
        """How many bytes of an incomplete line are buffered."""
        return len(self._partial)

    def _bad_line(self, line: bytes, what: str) -> ProtocolError:
        # its number: found by identity in its batch (an equal line before it would have failed)
        number = self.lines - len(self._batch) + 1
        for index, seen in enumerate(self._batch):
            if seen is line:
                number += index
                break
        line = line[:-1] if line.endswith(b"\n") else line
        preview = bytes(line[:_PREVIEW])
        more = f" (first {_PREVIEW} of {len(line)} bytes)" if len(line) > _PREVIEW else ""
        return ProtocolError(f"line {number} of the stream {what}: {preview!r}{more}")

    def _too_long(self, size: int, line_number: int) -> ProtocolError:
        self._partial.clear()
        return ProtocolError(
            f"line {line_number} of the stream is over max_line_bytes={self._max} ({size} bytes "
            "so far); raise max_line_bytes on the client if such long lines are expected"
        )


class NotAnObject(Exception):
    """An accumulator's `take` was given a decoded line that is not a JSON object."""


# what a read loop catches around `take(orjson.loads(line))`, to hand the line to `skip_blank`
UNDECODABLE = (_JSONDecodeError, NotAnObject)


def parse_and_add(parse: Callable[[dict[str, Any]], C], add: Callable[[C], None], obj: Any) -> C:
    """The careful `take`: `parse(obj)`, then `add` the chunk and return it; anything but a dict
    raises NotAnObject. Every accumulator's take falls back to it (its own parser and add), and a
    resumed stream takes through it with the parser that drops the seam."""
    if type(obj) is not dict:
        raise NotAnObject
    chunk = parse(obj)
    add(chunk)
    return chunk


def error_text(obj: dict[str, Any]) -> str | None:
    """The server's text when a line is an `{"error": ...}` line, else None."""
    err = obj.get("error")
    if err is None:
        return None
    if isinstance(err, str):
        return err
    try:
        return orjson.dumps(err).decode()
    except TypeError:  # e.g. an integer beyond 64 bits, which a Python caller can build
        return repr(err)


def _bad_field(name: str, value: object, expected: str) -> ProtocolError:
    return ProtocolError(f"field {name!r} of a chunk should be {expected}, "
                         f"got {type(value).__name__}: {repr(value)[:_PREVIEW]}")


_METRIC_FIELDS = ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
                  "eval_count", "eval_duration")


def parse_metrics(obj: dict[str, Any]) -> Metrics:
    """The six counters of a final chunk (or of any response that carries them);
    absent ones are None."""
    values: list[int | None] = []
    for name in _METRIC_FIELDS:
        value = obj.get(name)
        if value is not None and (type(value) is not int):
            if type(value) is float and value.is_integer():
                value = int(value)
            else:
                raise _bad_field(name, value, "an integer")
        values.append(value)
    return Metrics(*values)


def _parse_tool_calls(value: object) -> tuple[ToolCall, ...]:
    if type(value) is not list:
        raise _bad_field("message.tool_calls", value, "a list")
    try:
        return tuple(ToolCall.from_dict(call) for call in value)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"a tool call in the stream is malformed: {exc}") from None


def parse_chat_chunk(obj: dict[str, Any]) -> ChatChunk:
    """Type one decoded `/api/chat` line.
    Raises StreamError for an error line, ProtocolError for wrong types."""
    # Fast path for the chunk that makes up nearly every stream: a thinking or content delta,
    # nothing else. Everything it does not accept (the final chunk, tool calls, images, logprobs,
    # errors, wrong types, a missing model or created_at) goes through the careful parser below,
    # which also words the errors.
    get = obj.get
    message = get("message")
    if type(message) is dict and get("done") is False:
        content = message.get("content", "")
        thinking = message.get("thinking", "")
        model = get("model")
        created_at = get("created_at")
        if (type(content) is str and type(thinking) is str and type(model) is str
                and type(created_at) is str and "tool_calls" not in message
                and "images" not in message):
            if len(obj) == 4:  # model, created_at, message and done: nothing else to look for
                return ChatChunk(model, created_at, content, thinking, (), False, None, None, None,
                                 obj)
            # a proxied remote model's deltas carry remote_model and remote_host on every line
            remote_model = get("remote_model")
            remote_host = get("remote_host")
            if ("logprobs" not in obj and "error" not in obj
                    and (remote_model is None or type(remote_model) is str)
                    and (remote_host is None or type(remote_host) is str)):
                return ChatChunk(model, created_at, content, thinking, (), False, None, None, None,
                                 obj, (), remote_model or None, remote_host or None)
    return _parse_chat_chunk(obj)


def _parse_images(value: object) -> tuple[str, ...]:
    """`message.images`: base64 strs (Go's []byte), checked so that a path can never pass for one
    when the message is sent back."""
    if type(value) is not list:
        raise _bad_field("message.images", value, "a list")
    for image in value:
        if type(image) is not str or not _is_base64(image):
            raise _bad_field("message.images[]", image, "a base64 str")
    return tuple(value)


def _parse_chat_chunk(obj: dict[str, Any]) -> ChatChunk:
    if "error" in obj:
        text = error_text(obj)
        if text:  # `"error": null` or `""` on a chunk says there is none
            raise StreamError(f"the server reported an error mid-stream: {text}", error=text)
    message = obj.get("message")
    images: tuple[str, ...] = ()
    if message is None:
        content = thinking = ""
        tool_calls: tuple[ToolCall, ...] = ()
    elif type(message) is dict:
        content = message.get("content", "")
        if type(content) is not str:
            if content is not None:
                raise _bad_field("message.content", content, "a string")
            content = ""
        thinking = message.get("thinking", "")
        if type(thinking) is not str:
            if thinking is not None:
                raise _bad_field("message.thinking", thinking, "a string")
            thinking = ""
        calls = message.get("tool_calls")
        tool_calls = _parse_tool_calls(calls) if calls else ()
        if message.get("images"):
            images = _parse_images(message["images"])
    else:
        raise _bad_field("message", message, "an object")

    done = obj.get("done", False)
    if done is True:
        metrics: Metrics | None = parse_metrics(obj)
        done_reason = obj.get("done_reason")
        if done_reason is not None and type(done_reason) is not str:
            raise _bad_field("done_reason", done_reason, "a string")
    elif done is False:
        metrics = done_reason = None
    else:
        raise _bad_field("done", done, "a boolean")

    model = obj.get("model", "")
    if type(model) is not str:
        raise _bad_field("model", model, "a string")
    created_at = obj.get("created_at", "")
    if type(created_at) is not str:
        raise _bad_field("created_at", created_at, "a string")
    logprobs = obj.get("logprobs")
    if logprobs is not None and type(logprobs) is not list:
        raise _bad_field("logprobs", logprobs, "a list")
    # inline, not a helper: the final chunk's calls are counted too (tests/test_hot_path.py)
    remote_model = obj.get("remote_model")
    if remote_model is not None and type(remote_model) is not str:
        raise _bad_field("remote_model", remote_model, "a string")
    remote_host = obj.get("remote_host")
    if remote_host is not None and type(remote_host) is not str:
        raise _bad_field("remote_host", remote_host, "a string")
    return ChatChunk(model, created_at, content, thinking, tool_calls, done, done_reason, metrics,
                     logprobs, obj, images, remote_model or None, remote_host or None)


# a ChatChunk with no field set yet, for `take` to fill in (a partial: cheaper than the call)
_new_chunk = functools.partial(object.__new__, ChatChunk)


class ChatAccumulator:
    """Folds ChatChunks into the reply, as Ollama's streaming spec asks.

    Content and thinking are concatenated; tool calls and images are collected from every chunk, the
    final one included (newer servers attach tool calls there); metrics, done_reason and `raw` come
    from the final chunk. With `num_ctx` (the window the request asked for), a final
    `prompt_eval_count` that reaches it sets `prompt_truncated` and warns (PromptTruncatedWarning):
    the server probably cut the prompt.
    """

    __slots__ = ("_content", "_images", "_logprobs", "_thinking", "_tool_calls", "done",
                 "done_reason", "metrics", "model", "num_ctx", "prompt_truncated", "raw",
                 "remote_host", "remote_model", "resumes")

    def __init__(self, num_ctx: int | None = None) -> None:
        self.num_ctx = num_ctx
        self.prompt_truncated = False
        self.resumes = 0  # counted by the read loop that resumes the stream
        self._content: list[str] = []
        self._thinking: list[str] = []
        self._tool_calls: list[ToolCall] = []
        self._images: list[str] = []
        self._logprobs: list[Any] | None = None
        self.model = ""
        self.done = False
        self.done_reason: str | None = None
        self.metrics: Metrics | None = None
        self.raw: dict[str, Any] = {}
        self.remote_model: str | None = None
        self.remote_host: str | None = None

    @property
    def chunks(self) -> int:
        """How many chunks were folded in (every one leaves its content here, even "")."""
        return len(self._content)

    def take(self, obj: dict[str, Any]) -> ChatChunk:
        """`parse_chat_chunk(obj)` and `add` in one call: the chunk of one decoded line (as
        `orjson.loads` gives it), folded in. Anything but a dict raises NotAnObject (the decoder,
        which knows the line, words that).

        The fast path takes the line nearly every chunk is, a thinking or content delta: exactly
        model, created_at, message and done (False), and a message of role, content and, maybe,
        thinking, all strings. It reads them by subscripts, with one shape check (the four keys and
        nothing beside them; "role" beside content, and thinking), and builds the chunk without the
        class call. Everything else goes through parse_chat_chunk and add, which word the errors."""
        try:
            message = obj["message"]
            if obj["done"] is False and len(obj) == 4 and "role" in message:
                content = message["content"]
                model = obj["model"]
                created_at = obj["created_at"]
                if type(content) is str and type(model) is str and type(created_at) is str:
                    if len(message) == 2:
                        thinking = ""
                    else:  # only {role, content, thinking} goes on: KeyError or TypeError if not
                        thinking = message["thinking"]
                        if len(message) != 3 or type(thinking) is not str:
                            raise TypeError
                        if thinking:  # every check is done: from here on, nothing fails
                            self._thinking.append(thinking)
                    chunk = _new_chunk()
                    chunk.model = model
                    chunk.created_at = created_at
                    chunk.content = content
                    chunk.thinking = thinking
                    chunk.tool_calls = chunk.images = ()
                    chunk.done = False
                    chunk.done_reason = chunk.metrics = chunk.logprobs = None
                    chunk.raw = obj
                    chunk.remote_model = chunk.remote_host = None
                    chunk.resumed = False
                    self._content.append(content)  # (which counts the chunk)
                    if not self.model:  # the first chunk (as add() has it)
                        self.model = model
                        self.remote_model = self.remote_host = None
                    return chunk
        except (KeyError, TypeError):  # not that shape, or not a dict at all
            pass
        return parse_and_add(parse_chat_chunk, self.add, obj)

    def add(self, chunk: ChatChunk) -> None:
        """Fold in one chunk."""
        self._content.append(chunk.content)  # "" too: the list counts the chunks
        if chunk.thinking:
            self._thinking.append(chunk.thinking)
        if chunk.tool_calls:
            self._tool_calls.extend(chunk.tool_calls)
        if chunk.images:
            self._images.extend(chunk.images)
        if chunk.logprobs:
            if self._logprobs is None:
                self._logprobs = []
            self._logprobs.extend(chunk.logprobs)
        if chunk.done:
            self.done = True
            self.done_reason = chunk.done_reason
            self.metrics = chunk.metrics
            self.model = chunk.model or self.model
            self.raw = chunk.raw
            self.remote_model = chunk.remote_model or self.remote_model
            self.remote_host = chunk.remote_host or self.remote_host
            if self.num_ctx and chunk.metrics:  # only then a call: this is the hot path's room
                self.prompt_truncated = prompt_overflowed(self.model, chunk.metrics, self.num_ctx)
        elif not self.model:
            # the first chunk: remote_model and remote_host are on every chunk that has them
            self.model = chunk.model
            self.remote_model = chunk.remote_model
            self.remote_host = chunk.remote_host

    @property
    def content(self) -> str:
        return "".join(self._content)

    @property
    def thinking(self) -> str:
        return "".join(self._thinking)

    @property
    def message(self) -> Message:
        """The assistant message accumulated so far, ready to append to the history."""
        message = Message("assistant", self.content, self.thinking, (), tuple(self._tool_calls))
        if self._images:
            # already checked base64 (`_parse_images`): set as they are, never read as paths
            message.images = tuple(self._images)
        return message

    def result(self) -> ChatResult:
        """The finished reply (call after the final chunk)."""
        return ChatResult(self.message, self.model, self.done_reason, self.metrics, self._logprobs,
                          self.prompt_truncated, self.raw, self.remote_model, self.remote_host,
                          self.resumes)


def prompt_overflowed(model: str, metrics: Metrics, num_ctx: int) -> bool:
    """Whether a reply's prompt reached the num_ctx window it asked for, which means the server
    probably cut it to fit; warns (PromptTruncatedWarning) when it did."""
    prompt = metrics.prompt_eval_count
    if prompt is None or prompt < num_ctx:
        return False
    warnings.warn(f"the prompt to {model or 'the model'} took {prompt} tokens, the whole "
                  f"num_ctx={num_ctx} window: the server probably cut it to fit. Raise "
                  "options={'num_ctx': ...}, shorten the history, or pass truncate=False to be "
                  "refused instead (ContextLengthError).", PromptTruncatedWarning, stacklevel=3)
    return True
