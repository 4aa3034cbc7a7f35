"""LiteLLMBackend: the same typed chunks from any provider LiteLLM speaks
(`pip install "ollama-stream[litellm]"`).

It drives `litellm.acompletion(stream=True)` and maps each streamed chunk into a ChatChunk; retries,
timeouts, accumulation and the tool loop stay in the client above. LiteLLM's own retries are off
(`num_retries=0`). Facts this mapping handles (measured on LiteLLM 1.106): thinking is
`delta.reasoning_content`, deleted when empty; tool calls are OpenAI-shaped with JSON-string
arguments, split over deltas by some providers, and `ollama_chat/` gives each call a fresh uuid id
(and may give all of them index 0), so calls are keyed by id, else by index; usage arrives in a
chunk of its own after `finish_reason`.
"""

from __future__ import annotations

import importlib
import os
import time
import warnings
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timezone
from typing import Any

import orjson

from ..errors import (
    ModelNotFoundError,
    OllamaConnectionError,
    OllamaError,
    OllamaTimeoutError,
    ProtocolError,
    ResponseError,
    StreamError,
    StreamInterrupted,
)
from ..types import ChatChunk, Metrics, ToolCall
from . import ChatRequest, native_model_name

__all__ = ["INSTALL", "LiteLLMBackend"]

INSTALL = 'pip install "ollama-stream[litellm]"'
_OLLAMA_PROVIDERS = ("ollama", "ollama_chat")
_OPTIONS_TO_PARAMS = {"temperature": "temperature", "top_p": "top_p", "seed": "seed",
                      "stop": "stop", "num_predict": "max_tokens",
                      "frequency_penalty": "frequency_penalty",
                      "presence_penalty": "presence_penalty"}
# Set on import too, so `from litellm import Router` after importing this module stays offline.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
_EFFORT = {True: "medium", False: "none", "low": "low", "medium": "medium", "high": "high",
           "max": "high"}


def import_litellm() -> Any:
    """Import LiteLLM without letting it fetch its model price map over the network."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        litellm: Any = importlib.import_module("litellm")
    except ImportError as exc:
        raise ImportError("LiteLLMBackend needs LiteLLM, which is not installed: "
                          f"{INSTALL}") from exc
    # no "Give Feedback" banners on stdout: errors are raised typed
    litellm.suppress_debug_info = True
    return litellm


class LiteLLMBackend:
    """A ChatBackend over `litellm.acompletion`. `model` (e.g. "openai/gpt-4o", "ollama_chat/qwen3")
    is used for every request when given; otherwise each request's model goes to LiteLLM (a bare
    name as `ollama_chat/NAME`). `api_base` and any other keyword (api_key, timeout, ...) go to
    every call. With `router=` (a `litellm.Router`), calls go to `router.acompletion` and `model`
    names one of the router's model groups."""

    def __init__(self, model: str | None = None, api_base: str | None = None, *,
                 router: Any = None, **litellm_kwargs: Any) -> None:
        self._litellm = import_litellm()
        self.model = model
        self.api_base = api_base
        self.router = router
        self._kwargs = litellm_kwargs

    def __repr__(self) -> str:
        return f"LiteLLMBackend(model={self.model!r}, api_base={self.api_base!r})"

    async def aclose(self) -> None:
        """Nothing to release: LiteLLM keeps its own connection pools."""

    def completion_kwargs(self, request: ChatRequest) -> dict[str, Any]:
        """The keyword arguments of `litellm.acompletion` for a request
        (public for inspection and tests)."""
        model = self.model or request.model
        if self.router is None and native_model_name(model) == model:
            model = f"ollama_chat/{model}"  # a bare (or namespaced) name means a local Ollama model
        provider = model.partition("/")[0]
        kwargs: dict[str, Any] = {"model": model, "messages": openai_messages(request.messages),
                                  "stream": True, "stream_options": {"include_usage": True},
                                  "num_retries": 0}
        if self.api_base is not None:
            kwargs["api_base"] = self.api_base
        supported = self._supported(model, provider)
        think = request.get("think")
        if think is not None:
            if "reasoning_effort" in supported:
                kwargs["reasoning_effort"] = _EFFORT[think]
            elif think:
                warnings.warn(f"{model} does not take a thinking level through LiteLLM; "
                              f"think={think!r} dropped", stacklevel=3)
        if request.get("tools"):
            kwargs["tools"] = request.get("tools")
        fmt = request.get("format")
        if fmt == "json":
            kwargs["response_format"] = {"type": "json_object"}
        elif isinstance(fmt, Mapping):
            kwargs["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": "response", "schema": fmt}}
        for name in ("logprobs", "top_logprobs"):
            if request.get(name) is not None:
                kwargs[name] = request.get(name)
        ollama = provider in _OLLAMA_PROVIDERS
        if request.get("keep_alive") is not None:
            if ollama:
                kwargs["keep_alive"] = request.get("keep_alive")
            else:
                warnings.warn(f"keep_alive is an Ollama setting; dropped for {model}", stacklevel=3)
        for key, value in (request.get("options") or {}).items():
            if key in _OPTIONS_TO_PARAMS:
                kwargs[_OPTIONS_TO_PARAMS[key]] = value
            elif ollama:
                kwargs[key] = value  # LiteLLM's ollama providers pass their own options through
            else:
                warnings.warn(f"option {key!r} has no LiteLLM equivalent for {model}; dropped",
                              stacklevel=3)
        kwargs.update(self._kwargs)
        return kwargs

    def _supported(self, model: str, provider: str) -> set[str]:
        try:
            params = self._litellm.get_supported_openai_params(
                model=model.partition("/")[2] or model, custom_llm_provider=provider)
        except Exception:  # an unknown provider: assume the common OpenAI parameters
            params = None
        return set(params or ())

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        kwargs = self.completion_kwargs(request)
        model = kwargs["model"]
        calls = _ToolCallAssembler()
        finish_reason: str | None = None
        usage: Any = None
        started = False
        last_model, created = model, _rfc3339(time.time())
        try:
            complete = (self.router.acompletion if self.router is not None
                        else self._litellm.acompletion)
            response = await complete(**kwargs)
            async for part in response:
                last_model = getattr(part, "model", None) or last_model
                created = _rfc3339(getattr(part, "created", None) or time.time())
                usage = getattr(part, "usage", None) or usage
                choices = getattr(part, "choices", None) or ()
                if not choices:
                    continue
                choice = choices[0]
                finish_reason = getattr(choice, "finish_reason", None) or finish_reason
                delta = getattr(choice, "delta", None)
                if delta is None:
                    continue
                # deleted when empty: getattr
                thinking = getattr(delta, "reasoning_content", None) or ""
                content = getattr(delta, "content", None) or ""
                for call in getattr(delta, "tool_calls", None) or ():
                    calls.add(call)
                if thinking or content:
                    started = True
                    yield ChatChunk(last_model, created, content, thinking, (), False, None, None,
                                    None, {"litellm": part})
        except OllamaError:
            raise
        except Exception as exc:
            error = map_exception(exc, model, self.api_base)
            # the status was 200: an error line mid-stream
            if started and isinstance(error, ResponseError):
                error = StreamError(f"the server reported an error mid-stream ({model} via "
                                    f"LiteLLM): {error.error}", error=error.error)
            elif started and isinstance(error, OllamaConnectionError):
                error = StreamInterrupted(f"the stream from {model} via LiteLLM broke off: {error}")
            raise error from exc
        metrics = (Metrics(prompt_eval_count=getattr(usage, "prompt_tokens", None),
                           eval_count=getattr(usage, "completion_tokens", None))
                   if usage is not None else Metrics())
        yield ChatChunk(last_model, created, "", "", calls.finish(), True, finish_reason, metrics,
                        None, {"finish_reason": finish_reason})


class _ToolCallAssembler:
    """Whole ToolCalls from OpenAI-style deltas: keyed by id when present, else by index;
    arguments joined."""

    def __init__(self) -> None:
        self._order: list[Any] = []
        self._parts: dict[Any, dict[str, Any]] = {}
        self._key_of_index: dict[int, Any] = {}

    def add(self, delta: Any) -> None:
        index = getattr(delta, "index", None) or 0
        call_id = getattr(delta, "id", None)
        key = call_id if call_id else self._key_of_index.get(index, ("index", index))
        if call_id:
            self._key_of_index[index] = key
        part = self._parts.get(key)
        if part is None:
            part = self._parts[key] = {"id": call_id, "name": "", "arguments": [],
                                       "index": len(self._order)}
            self._order.append(key)
        function = getattr(delta, "function", None)
        name = getattr(function, "name", None)
        if name:
            part["name"] = name
        arguments = getattr(function, "arguments", None)
        if arguments:
            part["arguments"].append(arguments if isinstance(arguments, str)
                                     else orjson.dumps(arguments).decode())

    def finish(self) -> tuple[ToolCall, ...]:
        out = []
        for key in self._order:
            part = self._parts[key]
            text = "".join(part["arguments"]).strip()
            try:
                arguments = orjson.loads(text) if text else {}
            except orjson.JSONDecodeError:
                raise ProtocolError(f"tool call {part['name']!r}: arguments are not valid JSON: "
                                    f"{text[:200]!r}") from None
            if not isinstance(arguments, dict):
                raise ProtocolError(f"tool call {part['name']!r}: arguments are not a JSON object: "
                                    f"{text[:200]!r}")
            out.append(ToolCall(part["name"], arguments, part["id"], part["index"]))
        return tuple(out)


def openai_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ollama's wire messages in OpenAI's shape: JSON-string tool arguments, ids on every call (made
    up when an old server gave none, and matched to the tool results by name and order), images as
    content parts."""
    out: list[dict[str, Any]] = []
    unanswered: list[tuple[str, str]] = []
    for n, message in enumerate(messages):
        role = message["role"]
        content = message.get("content", "")
        if role == "assistant":
            entry: dict[str, Any] = {"role": "assistant", "content": content}
            calls = []
            for i, call in enumerate(message.get("tool_calls") or ()):
                function = call["function"]
                call_id = call.get("id") or f"call_{n}_{i}"
                unanswered.append((function["name"], call_id))
                calls.append({"id": call_id, "type": "function", "function": {
                    "name": function["name"],
                    "arguments": orjson.dumps(function.get("arguments") or {}).decode()}})
            if calls:
                entry["tool_calls"] = calls
        elif role == "tool":
            call_id = message.get("tool_call_id")
            name = message.get("tool_name")
            if not call_id:
                match = next((pair for pair in unanswered if name is None or pair[0] == name), None)
                call_id = match[1] if match else f"call_{n}"
            unanswered = [pair for pair in unanswered if pair[1] != call_id]
            entry = {"role": "tool", "tool_call_id": call_id, "content": content}
            if name:
                entry["name"] = name
        else:
            images = message.get("images") or ()
            if images:
                parts: list[dict[str, Any]] = [{"type": "text", "text": content}] if content else []
                parts += [{"type": "image_url",
                           "image_url": {"url": f"data:image/png;base64,{image}"}}
                          for image in images]
                entry = {"role": role, "content": parts}
            else:
                entry = {"role": role, "content": content}
        out.append(entry)
    return out


def map_exception(exc: BaseException, model: str, api_base: str | None) -> OllamaError:
    """LiteLLM's exceptions as this SDK's, with the HTTP status the retry policy reads."""
    litellm = import_litellm()
    errors = litellm.exceptions
    where = f"{model} via LiteLLM" + (f" at {api_base}" if api_base else "")
    text = str(getattr(exc, "message", None) or exc)
    if isinstance(exc, errors.MidStreamFallbackError):
        return StreamInterrupted(f"the stream from {where} broke off: {text}")
    if isinstance(exc, errors.Timeout):
        return OllamaTimeoutError(f"{where} timed out: {text}", phase="first_chunk")
    if isinstance(exc, errors.APIConnectionError):
        return OllamaConnectionError(f"cannot reach {where}: {text}. Check api_base and that the "
                                     "provider is up.", url=api_base or "")
    statuses = [(errors.NotFoundError, 404), (errors.RateLimitError, 429),
                (errors.BadGatewayError, 502), (errors.ServiceUnavailableError, 503),
                (errors.InternalServerError, 500), (errors.AuthenticationError, 401),
                (errors.PermissionDeniedError, 403), (errors.BadRequestError, 400)]
    for kind, default_status in statuses:
        if isinstance(exc, kind):
            status = int(getattr(exc, "status_code", None) or default_status)
            if status == 404:
                name = native_model_name(model) or model
                hint = f" Pull it first: ollama pull {name}" if name != model else ""
                return ModelNotFoundError(f"model {name!r} not found ({where}): {text}.{hint}",
                                          status_code=404, error=text, url=api_base or "",
                                          model=name)
            return ResponseError(f"HTTP {status} from {where}: {text}", status_code=status,
                                 error=text, url=api_base or "", model=model)
    other = getattr(exc, "status_code", None)
    if isinstance(other, int):
        return ResponseError(f"HTTP {other} from {where}: {text}", status_code=other, error=text,
                             url=api_base or "", model=model)
    return OllamaError(f"LiteLLM failed for {where}: {type(exc).__name__}: {text}")


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
