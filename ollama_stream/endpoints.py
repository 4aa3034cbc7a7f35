"""The rest of Ollama's native API, sans-I/O: the typed answers of generate, pull/push/create,
embed and embeddings, tags, show, ps, status and web search/fetch, with their parsers and
accumulators; their request builders live in `_bodies.py` and are re-exported here.

Kept apart from the chat core so that `import ollama_stream` does not pay for them; the client
imports this module the first time one of these endpoints is used. It is longer than 450 lines
because it holds the answers of sixteen endpoints in one import: each one's part is short, and
they are alike.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from ._bodies import (  # the request side, re-exported: `ollama_stream.endpoints` has it all
    build_copy_request,
    build_create_request,
    build_delete_request,
    build_embed_request,
    build_embeddings_request,
    build_generate_request,
    build_show_request,
    build_transfer_request,
    build_web_fetch_request,
    build_web_search_request,
    check_digest,
)
from .errors import StreamError
from .protocol import (
    _bad_field,
    _parse_tool_calls,
    error_text,
    parse_and_add,
    parse_metrics,
    prompt_overflowed,
)
from .types import Message, Metrics, ToolCall, parsed_of

__all__ = [
    "CloudStatus", "EmbedResult", "EmbeddingsResult", "GenerateAccumulator", "GenerateChunk",
    "GenerateResult", "ListResult", "ModelDetails", "ModelInfo", "Progress", "ProgressAccumulator",
    "PsResult", "RunningModel", "ShowResult", "StatusResult", "Tensor", "WebFetchResult",
    "WebSearchHit",
    "WebSearchResult",
    "build_copy_request", "build_create_request", "build_delete_request", "build_embed_request",
    "build_embeddings_request", "build_generate_request", "build_show_request",
    "build_transfer_request", "build_web_fetch_request", "build_web_search_request",
    "check_digest", "parse_details", "parse_embed", "parse_embeddings", "parse_generate_chunk",
    "parse_list", "parse_progress", "parse_ps", "parse_show", "parse_status", "parse_web_fetch",
    "parse_web_search",
]


@dataclass(slots=True)
class GenerateChunk:
    """One streamed line of `/api/generate`. `context` (token ids) is set on the final chunk
    only; so are `tool_calls`, parsed by the model's built-in parser (v0.11.0+, without ids).
    `remote_model`/`remote_host` name the upstream of a proxied remote model (else None)."""

    model: str
    created_at: str
    response: str
    thinking: str
    done: bool
    done_reason: str | None
    metrics: Metrics | None
    context: list[int] | None
    logprobs: list[Any] | None
    raw: dict[str, Any]
    tool_calls: tuple[ToolCall, ...] = ()
    remote_model: str | None = None
    remote_host: str | None = None
    resumed: bool = False  # the first chunk after the stream was resumed (RetryPolicy.resume)

    @property
    def truncated(self) -> bool:
        """True on a final chunk whose output stopped at the length limit (`num_predict`)."""
        return self.done_reason == "length"


@dataclass(slots=True)
class GenerateResult:
    """A finished `/api/generate` reply; `raw` is the final chunk's decoded line. With `format=`,
    `parsed` is the response as the type asked for, and `repairs` how many re-asks it took."""

    response: str
    thinking: str
    context: list[int] | None
    done_reason: str | None
    metrics: Metrics | None
    model: str
    logprobs: list[Any] | None = None
    prompt_truncated: bool = False
    tool_calls: tuple[ToolCall, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)
    remote_model: str | None = None
    remote_host: str | None = None
    resumes: int = 0  # how many times the stream was resumed after a failure (RetryPolicy.resume)
    repairs: int = 0
    _format: Any = field(default=None, init=False, repr=False, compare=False)
    _parsed: tuple[Any] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def truncated(self) -> bool:
        """True when the output stopped at the length limit (`done_reason == "length"`)."""
        return self.done_reason == "length"

    @property
    def parsed(self) -> Any:
        """The response parsed and converted to the `format=` type, as `ChatResult.parsed`."""
        return parsed_of(self, self.response)


@dataclass(slots=True)
class Progress:
    """One progress line of pull, push or create. `completed` and `total` are bytes (None when not
    sent)."""

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        """True on the final `success` line."""
        return self.status == "success"

    @property
    def fraction(self) -> float | None:
        """completed / total for a layer being transferred (0.0 before its first bytes); None
        otherwise."""
        if not self.total:
            return 1.0 if self.done else None
        return min(1.0, (self.completed or 0) / self.total)


@dataclass(slots=True)
class EmbedResult:
    """`/api/embed`: one embedding (a list of floats) per input, in order."""

    model: str
    embeddings: list[list[float]]
    metrics: Metrics
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ModelDetails:
    """The `details` object of a model: format, family, size class and quantization; the context
    and embedding lengths where the server sends them (v0.30.0+, else None)."""

    parent_model: str = ""
    format: str = ""
    family: str = ""
    families: tuple[str, ...] = ()
    parameter_size: str = ""
    quantization_level: str = ""
    raw: dict[str, Any] = field(default_factory=dict)
    context_length: int | None = None
    embedding_length: int | None = None


@dataclass(slots=True)
class ModelInfo:
    """A model on the server, as `/api/tags` lists it. `capabilities` (v0.30.0+) such as
    completion, tools, thinking; `remote_model`/`remote_host` for a remote model (else None)."""

    name: str
    model: str
    size: int
    digest: str
    modified_at: str
    details: ModelDetails
    raw: dict[str, Any] = field(default_factory=dict)
    capabilities: tuple[str, ...] = ()
    remote_model: str | None = None
    remote_host: str | None = None


@dataclass(slots=True)
class ListResult:
    """`/api/tags`: the models on the server; `raw` is the decoded answer."""

    models: list[ModelInfo]
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RunningModel:
    """A model loaded in memory, as `/api/ps` lists it."""

    name: str
    model: str
    size: int
    digest: str
    details: ModelDetails
    expires_at: str
    size_vram: int
    context_length: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class PsResult:
    """`/api/ps`: the models loaded now; `raw` is the decoded answer."""

    models: list[RunningModel]
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ShowResult:
    """`/api/show`: a model's modelfile, template, parameters, details, architecture facts and
    capabilities; its `renderer` and `parser` (the Go code that renders its prompt and parses its
    output, instead of a template), the Ollama version it `requires`, the `messages` it was created
    with, `remote_model`/`remote_host` for a remote model, and with `verbose` its `tensors`."""

    capabilities: tuple[str, ...]
    details: ModelDetails
    modelfile: str
    parameters: str
    template: str
    model_info: dict[str, Any]
    license: str = ""
    system: str = ""
    modified_at: str = ""
    raw: dict[str, Any] = field(default_factory=dict)
    renderer: str = ""
    parser: str = ""
    requires: str = ""
    messages: tuple[Message, ...] = ()
    remote_model: str | None = None
    remote_host: str | None = None
    tensors: tuple[Tensor, ...] = ()


@dataclass(slots=True)
class Tensor:
    """One tensor of a model's weights, as verbose `/api/show` lists it."""

    name: str
    type: str
    shape: tuple[int, ...]


@dataclass(slots=True)
class CloudStatus:
    """Whether this server may use ollama.com's cloud: `disabled` (OLLAMA_NO_CLOUD), and what
    decided it, `source`: none, env, config or both."""

    disabled: bool = False
    source: str = ""


@dataclass(slots=True)
class StatusResult:
    """`/api/status` (v0.16.2+): the server's cloud status; `raw` is the decoded answer."""

    cloud: CloudStatus
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class WebSearchHit:
    """One result of a web search: the page's title, its URL and a relevant part of its text."""

    title: str
    url: str
    content: str
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class WebSearchResult:
    """A web search's results, best first; `raw` is the decoded answer."""

    results: list[WebSearchHit]
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class WebFetchResult:
    """A fetched web page: its title, its main text and the links found in it."""

    title: str
    content: str
    links: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class EmbeddingsResult:
    """The legacy `/api/embeddings`: one embedding of one prompt, not normalised (unlike
    `/api/embed`'s); empty when the prompt was empty (the model was only loaded)."""

    embedding: list[float]
    raw: dict[str, Any] = field(default_factory=dict)


def _get(obj: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    """A field of a response, tolerant of absence (and null), strict about its type."""
    value = obj.get(name)
    if value is None:
        return default
    if kind is int:
        if type(value) is float and value.is_integer():
            return int(value)
        if type(value) is not int:
            raise _bad_field(name, value, "an integer")
    elif kind is float:
        if type(value) not in (int, float):
            raise _bad_field(name, value, "a number")
    elif not isinstance(value, kind):
        expected = {str: "a string", list: "a list", dict: "an object", bool: "a boolean"}
        raise _bad_field(name, value, expected.get(kind, kind.__name__))
    return value




def _raise_error_line(obj: dict[str, Any]) -> None:
    text = error_text(obj)
    if text:  # `"error": null` or `""` on a line says there is none
        raise StreamError(f"the server reported an error mid-stream: {text}", error=text)


def _final_fields(obj: dict[str, Any]) -> tuple[bool, str | None, Metrics | None]:
    done = obj.get("done", False)
    if done is False:
        return False, None, None
    if done is not True:
        raise _bad_field("done", done, "a boolean")
    return True, _get(obj, "done_reason", str, None), parse_metrics(obj)


def _remote(obj: dict[str, Any]) -> tuple[str | None, str | None]:
    """remote_model and remote_host (None when absent or empty, as Go leaves them out)."""
    return _get(obj, "remote_model", str, None) or None, _get(obj, "remote_host", str, None) or None


def parse_generate_chunk(obj: dict[str, Any]) -> GenerateChunk:
    """Type one decoded `/api/generate` line (StreamError for an error line, ProtocolError for wrong
    types)."""
    _raise_error_line(obj)
    done, done_reason, metrics = _final_fields(obj)
    context = _get(obj, "context", list, None)
    if context is not None and not all(type(token) is int for token in context):
        raise _bad_field("context", context, "a list of integers")
    calls = obj.get("tool_calls")
    if calls is not None and type(calls) is not list:
        raise _bad_field("tool_calls", calls, "a list")
    tool_calls = _parse_tool_calls(calls) if calls else ()
    return GenerateChunk(_get(obj, "model", str, ""), _get(obj, "created_at", str, ""),
                         _get(obj, "response", str, ""), _get(obj, "thinking", str, ""), done,
                         done_reason, metrics, context, _get(obj, "logprobs", list, None), obj,
                         tool_calls, *_remote(obj))


def parse_progress(obj: dict[str, Any]) -> Progress:
    """Type one progress line of pull, push or create."""
    _raise_error_line(obj)
    return Progress(_get(obj, "status", str, ""), _get(obj, "digest", str, None),
                    _get(obj, "total", int, None), _get(obj, "completed", int, None), obj)


def parse_details(obj: object) -> ModelDetails:
    if obj is None:
        return ModelDetails()
    if not isinstance(obj, dict):
        raise _bad_field("details", obj, "an object")
    families = _get(obj, "families", list, [])
    return ModelDetails(_get(obj, "parent_model", str, ""), _get(obj, "format", str, ""),
                        _get(obj, "family", str, ""), tuple(str(f) for f in families),
                        _get(obj, "parameter_size", str, ""),
                        _get(obj, "quantization_level", str, ""), obj,
                        _get(obj, "context_length", int, None) or None,
                        _get(obj, "embedding_length", int, None) or None)


def _strings(obj: dict[str, Any], name: str) -> tuple[str, ...]:
    return tuple(str(item) for item in _get(obj, name, list, []))


def _objects(obj: dict[str, Any], name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = _get(obj, name, list, [])
    for item in items:
        if not isinstance(item, dict):
            raise _bad_field(f"{name}[]", item, "an object")
    return items


def parse_list(obj: dict[str, Any]) -> ListResult:
    """`GET /api/tags`."""
    return ListResult([
        ModelInfo(_get(m, "name", str, ""), _get(m, "model", str, "") or _get(m, "name", str, ""),
                  _get(m, "size", int, 0), _get(m, "digest", str, ""),
                  _get(m, "modified_at", str, ""), parse_details(m.get("details")), m,
                  _strings(m, "capabilities"), *_remote(m))
        for m in _objects(obj, "models")
    ], obj)


def parse_ps(obj: dict[str, Any]) -> PsResult:
    """`GET /api/ps`."""
    return PsResult([
        RunningModel(_get(m, "name", str, ""),
                     _get(m, "model", str, "") or _get(m, "name", str, ""),
                     _get(m, "size", int, 0), _get(m, "digest", str, ""),
                     parse_details(m.get("details")),
                     _get(m, "expires_at", str, ""), _get(m, "size_vram", int, 0),
                     _get(m, "context_length", int, None), m)
        for m in _objects(obj, "models")
    ], obj)


def parse_show(obj: dict[str, Any]) -> ShowResult:
    """`POST /api/show`."""
    messages = []
    for item in _objects(obj, "messages"):
        try:
            messages.append(Message.from_dict(item))
        except (TypeError, ValueError) as exc:
            raise _bad_field("messages[]", item, f"a message ({exc})") from None
    return ShowResult(_strings(obj, "capabilities"), parse_details(obj.get("details")),
                      _get(obj, "modelfile", str, ""), _get(obj, "parameters", str, ""),
                      _get(obj, "template", str, ""), _get(obj, "model_info", dict, {}),
                      _get(obj, "license", str, ""), _get(obj, "system", str, ""),
                      _get(obj, "modified_at", str, ""), obj, _get(obj, "renderer", str, ""),
                      _get(obj, "parser", str, ""), _get(obj, "requires", str, ""),
                      tuple(messages), *_remote(obj),
                      tuple(_tensor(item) for item in _objects(obj, "tensors")))


def _tensor(obj: dict[str, Any]) -> Tensor:
    shape = _get(obj, "shape", list, [])
    if not all(type(n) is int for n in shape):
        raise _bad_field("tensors[].shape", shape, "a list of integers")
    return Tensor(_get(obj, "name", str, ""), _get(obj, "type", str, ""), tuple(shape))


def _vector(value: object, name: str) -> list[float]:
    if not isinstance(value, list) or not all(type(x) in (float, int) for x in value):
        raise _bad_field(name, value, "a list of numbers")
    return [float(x) for x in value]


def parse_embed(obj: dict[str, Any]) -> EmbedResult:
    """`POST /api/embed`: embeddings as lists of floats."""
    embeddings = [_vector(vector, "embeddings[]") for vector in _get(obj, "embeddings", list, [])]
    return EmbedResult(_get(obj, "model", str, ""), embeddings, parse_metrics(obj), obj)


def parse_embeddings(obj: dict[str, Any]) -> EmbeddingsResult:
    """The legacy `POST /api/embeddings`: one vector (null or [] when the prompt was empty)."""
    embedding = obj.get("embedding")
    return EmbeddingsResult([] if embedding is None else _vector(embedding, "embedding"), obj)


def parse_status(obj: dict[str, Any]) -> StatusResult:
    """`GET /api/status`."""
    cloud = _get(obj, "cloud", dict, {})
    return StatusResult(CloudStatus(_get(cloud, "disabled", bool, False),
                                    _get(cloud, "source", str, "")), obj)


def parse_web_search(obj: dict[str, Any]) -> WebSearchResult:
    """`POST /api/experimental/web_search` (or ollama.com's `/api/web_search`)."""
    return WebSearchResult([WebSearchHit(_get(hit, "title", str, ""), _get(hit, "url", str, ""),
                                         _get(hit, "content", str, ""), hit)
                            for hit in _objects(obj, "results")], obj)


def parse_web_fetch(obj: dict[str, Any]) -> WebFetchResult:
    """`POST /api/experimental/web_fetch` (or ollama.com's `/api/web_fetch`)."""
    return WebFetchResult(_get(obj, "title", str, ""), _get(obj, "content", str, ""),
                          _strings(obj, "links"), obj)


# a GenerateChunk with no field set yet, for `take` to fill in
_new_chunk = functools.partial(object.__new__, GenerateChunk)


class GenerateAccumulator:
    """Folds GenerateChunks: response and thinking concatenated; tool calls collected from every
    chunk; context, metrics, done_reason and `raw` from the final chunk; `prompt_truncated` as
    ChatAccumulator has it."""

    __slots__ = ("_logprobs", "_response", "_thinking", "_tool_calls", "chunks", "context", "done",
                 "done_reason", "metrics", "model", "num_ctx", "prompt_truncated", "raw",
                 "remote_host", "remote_model", "resumes")

    def __init__(self, num_ctx: int | None = None) -> None:
        self.num_ctx = num_ctx
        self.prompt_truncated = False
        self.resumes = 0  # counted by the read loop that resumes the stream
        self._response: list[str] = []
        self._thinking: list[str] = []
        self._tool_calls: list[ToolCall] = []
        self._logprobs: list[Any] | None = None
        self.context: list[int] | None = None
        self.model = ""
        self.done = False
        self.done_reason: str | None = None
        self.metrics: Metrics | None = None
        self.raw: dict[str, Any] = {}
        self.remote_model: str | None = None
        self.remote_host: str | None = None
        self.chunks = 0

    def take(self, obj: dict[str, Any]) -> GenerateChunk:
        """`parse_generate_chunk(obj)` and `add` in one call. The fast path takes a delta of
        exactly model, created_at, response, done (False) and maybe thinking, all strings, and
        builds the chunk without the class call; anything else goes the careful way."""
        try:
            size = len(obj)
            if obj["done"] is False and (size == 4 or size == 5):
                response = obj["response"]
                thinking = "" if size == 4 else obj["thinking"]
                model = obj["model"]
                created_at = obj["created_at"]
                if (type(response) is str and type(thinking) is str and type(model) is str
                        and type(created_at) is str):
                    chunk = _new_chunk()
                    chunk.model = model
                    chunk.created_at = created_at
                    chunk.response = response
                    chunk.thinking = thinking
                    chunk.done = False
                    chunk.done_reason = chunk.metrics = chunk.context = chunk.logprobs = None
                    chunk.raw = obj
                    chunk.tool_calls = ()
                    chunk.remote_model = chunk.remote_host = None
                    chunk.resumed = False
                    self.chunks += 1  # as add() folds it in
                    if response:
                        self._response.append(response)
                    if thinking:
                        self._thinking.append(thinking)
                    if not self.model:
                        self.model = model
                    return chunk
        except (KeyError, TypeError):  # not that shape, or not a dict at all
            pass
        return parse_and_add(parse_generate_chunk, self.add, obj)

    def add(self, chunk: GenerateChunk) -> None:
        self.chunks += 1
        if chunk.response:
            self._response.append(chunk.response)
        if chunk.thinking:
            self._thinking.append(chunk.thinking)
        if chunk.tool_calls:
            self._tool_calls.extend(chunk.tool_calls)
        if chunk.logprobs:
            self._logprobs = [*(self._logprobs or ()), *chunk.logprobs]
        self.model = self.model or chunk.model
        self.remote_model = self.remote_model or chunk.remote_model
        self.remote_host = self.remote_host or chunk.remote_host
        if chunk.done:
            self.done, self.done_reason, self.metrics = True, chunk.done_reason, chunk.metrics
            self.context, self.raw = chunk.context, chunk.raw
            if self.num_ctx and chunk.metrics:
                self.prompt_truncated = prompt_overflowed(self.model, chunk.metrics, self.num_ctx)

    @property
    def message(self) -> Message:
        """The reply so far as an assistant Message (used as `.partial` of errors)."""
        return Message("assistant", "".join(self._response), "".join(self._thinking), (),
                       tuple(self._tool_calls))

    def result(self) -> GenerateResult:
        return GenerateResult("".join(self._response), "".join(self._thinking), self.context,
                              self.done_reason, self.metrics, self.model, self._logprobs,
                              self.prompt_truncated, tuple(self._tool_calls), self.raw,
                              self.remote_model, self.remote_host, self.resumes)


class ProgressAccumulator:
    """Keeps the last progress line; done on `success`."""

    __slots__ = ("chunks", "done", "last", "resumes")

    def __init__(self) -> None:
        self.resumes = 0  # a progress stream is never resumed
        self.chunks = 0
        self.done = False
        self.last: Progress | None = None

    def take(self, obj: dict[str, Any]) -> Progress:
        """`parse_progress(obj)` and `add` in one call."""
        return parse_and_add(parse_progress, self.add, obj)

    def add(self, chunk: Progress) -> None:
        self.chunks += 1
        self.last = chunk
        self.done = chunk.done

    @property
    def message(self) -> None:
        return None

    def result(self) -> str:
        """The final status (`success`)."""
        return self.last.status if self.last is not None else ""
