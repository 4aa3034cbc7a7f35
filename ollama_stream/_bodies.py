"""The JSON bodies of every endpoint but chat (whose body `_arguments.build_chat_request` builds),
from arguments checked before any I/O. Sans-I/O; `ollama_stream.endpoints` re-exports the names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ._arguments import _add_generation_options, check_model, wire_messages
from .types import Message

__all__ = ["build_copy_request", "build_create_request", "build_delete_request",
           "build_embed_request", "build_embeddings_request", "build_generate_request",
           "build_show_request", "build_transfer_request", "build_web_fetch_request",
           "build_web_search_request", "check_digest"]


def _optional(body: dict[str, Any], name: str, value: Any, kind: type | tuple[type, ...],
              what: str) -> None:
    """Put `value` in `body` when it is set, after checking its type (a bool is not a number)."""
    if value is None:
        return
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kind):
        raise TypeError(f"{name} must be {what}, not {type(value).__name__}")
    body[name] = value


def build_generate_request(
    model: str, prompt: str | None = None, *, suffix: str | None = None,
    system: str | None = None, template: str | None = None, context: Sequence[int] | None = None,
    raw: bool | None = None, images: Sequence[Any] | None = None, format: object = None,
    options: dict[str, Any] | None = None, keep_alive: float | str | None = None,
    think: object = None, logprobs: bool | None = None, top_logprobs: int | None = None,
    stream: bool = True, truncate: bool | None = None, shift: bool | None = None,
) -> dict[str, Any]:
    """Validate the arguments of a generate call and build its JSON body (only what is set)."""
    body: dict[str, Any] = {"model": check_model(model), "stream": stream}
    _optional(body, "prompt", prompt, str, "a str")
    _optional(body, "suffix", suffix, str, "a str")
    _optional(body, "system", system, str, "a str")
    _optional(body, "template", template, str, "a str")
    if context is not None:
        if isinstance(context, (str, bytes)) or not all(type(t) is int for t in context):
            raise TypeError("context must be a list of ints (the `context` of an earlier "
                            "generate result)")
        body["context"] = list(context)
    _optional(body, "raw", raw, bool, "a bool")
    if images is not None:
        body["images"] = list(Message("user", images=images).images)
    _add_generation_options(body, think=think, format=format, options=options,
                            keep_alive=keep_alive, logprobs=logprobs, top_logprobs=top_logprobs,
                            truncate=truncate, shift=shift)
    return body


def build_embed_request(
    model: str, input: str | Sequence[str], *, truncate: bool | None = None,
    dimensions: int | None = None, keep_alive: float | str | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate the arguments of an embed call and build its JSON body."""
    body: dict[str, Any] = {"model": check_model(model)}
    if isinstance(input, str):
        body["input"] = input
    elif isinstance(input, Sequence) and all(isinstance(text, str) for text in input):
        body["input"] = list(input)
    else:
        raise TypeError("input must be a str or a list of str")
    if truncate is not None:
        body["truncate"] = bool(truncate)
    if dimensions is not None:
        if isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1:
            raise ValueError(f"dimensions must be a positive int, got {dimensions!r}")
        body["dimensions"] = dimensions
    _add_generation_options(body, think=None, format=None, options=options,
                            keep_alive=keep_alive, logprobs=None, top_logprobs=None)
    return body


def build_create_request(
    model: str, *, from_: str | None = None, files: Mapping[str, str] | None = None,
    adapters: Mapping[str, str] | None = None, template: str | None = None,
    license: str | Sequence[str] | None = None, system: str | None = None,
    parameters: Mapping[str, Any] | None = None, messages: object = None,
    quantize: str | None = None, renderer: str | None = None, parser: str | None = None,
    requires: str | None = None,
) -> dict[str, Any]:
    """Validate the arguments of a create call and build its JSON body (streamed progress)."""
    body: dict[str, Any] = {"model": check_model(model)}
    texts = (("from", from_), ("template", template), ("system", system), ("quantize", quantize),
             ("renderer", renderer), ("parser", parser), ("requires", requires))
    for name, value in texts:
        if value is not None:
            if not isinstance(value, str):
                shown = "from_" if name == "from" else name
                raise TypeError(f"{shown} must be a str, not {type(value).__name__}")
            body[name] = value
    for name, mapping in (("files", files), ("adapters", adapters), ("parameters", parameters)):
        if mapping is not None:
            if not isinstance(mapping, Mapping):
                raise TypeError(f"{name} must be a dict, not {type(mapping).__name__}")
            body[name] = dict(mapping)
    if license is not None:
        body["license"] = license if isinstance(license, str) else list(license)
    if messages is not None:
        body["messages"] = wire_messages(messages)
    if from_ is None and not files:
        raise ValueError("create needs from_ (an existing model) or files (blobs uploaded with "
                         "create_blob)")
    body["stream"] = True
    return body


def build_embeddings_request(model: str, prompt: str, *, keep_alive: float | str | None = None,
                             options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body of a legacy `/api/embeddings` call: one prompt (an empty one only loads the
    model)."""
    body: dict[str, Any] = {"model": check_model(model)}
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str (one text; embed() takes several), "
                        f"not {type(prompt).__name__}")
    body["prompt"] = prompt
    _add_generation_options(body, think=None, format=None, options=options,
                            keep_alive=keep_alive, logprobs=None, top_logprobs=None)
    return body


def build_web_search_request(query: str, max_results: int | None = None) -> dict[str, Any]:
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"query must be a non-empty str, got {query!r}")
    body: dict[str, Any] = {"query": query}
    if max_results is not None:
        if isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 1:
            raise ValueError(f"max_results must be a positive int (the service's default is 5, "
                             f"its limit 10), got {max_results!r}")
        body["max_results"] = max_results
    return body


def build_web_fetch_request(url: str) -> dict[str, Any]:
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"url must be a non-empty str such as 'https://ollama.com', got {url!r}")
    return {"url": url}


def build_transfer_request(model: str, *, insecure: bool = False) -> dict[str, Any]:
    """The body of a pull or a push (streamed progress)."""
    body: dict[str, Any] = {"model": check_model(model)}
    if insecure:
        body["insecure"] = True
    body["stream"] = True
    return body


def build_show_request(model: str, *, verbose: bool = False, system: str | None = None,
                       options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`system` and `options` are what the answer is shown with: the system prompt in place of the
    model's (in `system` and the modelfile), options over its parameters (in the modelfile)."""
    body: dict[str, Any] = {"model": check_model(model)}
    if verbose:
        body["verbose"] = True
    _optional(body, "system", system, str, "a str")
    if options is not None:
        if not isinstance(options, Mapping):
            raise TypeError(f"options must be a dict such as {{'num_ctx': 8192}}, "
                            f"not {type(options).__name__}")
        body["options"] = dict(options)
    return body


def build_copy_request(source: str, destination: str) -> dict[str, Any]:
    return {"source": check_model(source), "destination": check_model(destination)}


def build_delete_request(model: str) -> dict[str, Any]:
    return {"model": check_model(model)}


def check_digest(digest: object) -> str:
    """A blob digest as the blob endpoints take it: `sha256:<64 hex digits>`."""
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise ValueError(f"a blob digest looks like 'sha256:<64 hex digits>', got {digest!r}")
    return digest
