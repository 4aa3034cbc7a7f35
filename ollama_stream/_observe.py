"""Watching one call: a `Watch` turns the moments of a request into `Event`s for the caller's
`on_event` hook, DEBUG lines on the `ollama_stream` logger, and an OpenTelemetry span.

Rules of this room, and why:
1. Nothing here runs unless someone listens: the client makes a Watch only when it has a hook,
   when the logger is enabled for DEBUG, or when the application imported opentelemetry and set
   a tracer provider. With all three off the request path gains no call and the per-chunk path is
   untouched; nothing here is ever called per chunk.
2. opentelemetry is never imported here: it is used only if the application imported it.
3. A hook that raises is logged (at WARNING, with its traceback) and never breaks the call.
4. No header, and so no API key, is ever logged or traced; bodies and replies only with
   `log_content=True`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from ._version import __version__
from .events import Event
from .types import Metrics

__all__ = ["LOG", "Watch"]

LOG = logging.getLogger("ollama_stream")
_OPERATIONS = {"/api/chat": "chat", "/api/generate": "generate", "/api/embed": "embed",
               "/api/embeddings": "embeddings"}
# The GenAI semantic conventions' names for the operations that get a span.
_SPANNED = {"chat": "chat", "generate": "text_completion", "embed": "embeddings",
            "embeddings": "embeddings"}


class Watch:
    """The observation of one call (see the rules above)."""

    __slots__ = ("_first", "_span", "_started", "body", "content", "hook", "host", "log",
                 "method", "model", "operation", "url")

    def __init__(self, method: str, url: str, path: str, model: str | None, host: str, *,
                 hook: Callable[[Event], Any] | None, content: bool, body: Any) -> None:
        self.method, self.url, self.model, self.host = method, url, model, host
        self.operation = _OPERATIONS.get(path, path.rpartition("/")[2] or "version")
        self.hook = hook
        self.log = LOG.isEnabledFor(logging.DEBUG)
        self.content = content
        self.body = _decoded(body) if content else None
        self._started = time.perf_counter()
        self._first: float | None = None
        self._span: Any = None

    def _emit(self, kind: str, attempt: int, **facts: Any) -> Event:
        event = Event(kind, self.operation, self.method, self.url, self.model, attempt,
                      time.perf_counter() - self._started, request=self.body, **facts)
        if self.hook is not None:
            try:
                self.hook(event)
            except Exception:  # rule 3
                LOG.warning("the on_event hook raised on a %r event; the call goes on", kind,
                            exc_info=True)
        return event

    def request(self, attempt: int) -> None:
        if attempt == 1 and self._span is None:
            self._span = _start_span(self)
        self._emit("request", attempt)
        if self.log:
            extra = f" body={self.body}" if self.content else ""
            LOG.debug("%s %s model=%s attempt=%d%s", self.method, self.url, self.model, attempt,
                      extra)

    def retry(self, attempt: int, reason: str, delay: float) -> None:
        self._emit("retry", attempt, reason=reason, delay=delay)
        if self.log:
            LOG.debug("retrying %s %s in %.2fs: attempt %d failed (%s)", self.method, self.url,
                      delay, attempt, reason)
        if self._span is not None:
            self._span.add_event("retry", {"attempt": attempt, "reason": reason, "delay": delay})

    def resume(self, attempt: int, reason: str, delay: float, chunks: int) -> None:
        self._emit("resume", attempt, reason=reason, delay=delay, chunks=chunks,
                   time_to_first_chunk=self._first)
        if self.log:
            LOG.debug("resuming %s %s in %.2fs from its partial reply: attempt %d failed after %d "
                      "chunks (%s)", self.method, self.url, delay, attempt, chunks, reason)
        if self._span is not None:
            self._span.add_event("resume", {"attempt": attempt, "reason": reason, "delay": delay,
                                            "chunks": chunks})

    def first_chunk(self, attempt: int) -> None:
        self._first = time.perf_counter() - self._started
        self._emit("first_chunk", attempt, time_to_first_chunk=self._first)

    def finished(self, attempt: int, chunks: int, done_reason: str | None,
                 metrics: Metrics | None, model: str | None, content: str | None) -> None:
        text = content if self.content else None
        self._emit("finished", attempt, chunks=chunks, done_reason=done_reason, metrics=metrics,
                   time_to_first_chunk=self._first, content=text)
        speed = metrics.tokens_per_second if metrics is not None else None
        if self.log:
            said = f" content={text!r}" if text is not None else ""
            LOG.debug("%s %s ended: %d chunks, done_reason=%s, %s tokens/s, first chunk after "
                      "%s s%s", self.method, self.url, chunks, done_reason,
                      f"{speed:.1f}" if speed else "-",
                      f"{self._first:.3f}" if self._first is not None else "-", said)
        span = self._span
        if span is not None:
            self._span = None
            _end_span(span, self, chunks, done_reason, metrics, model, speed, text, None, False)

    def failed(self, attempt: int, error: Any, chunks: int, *, abandoned: bool = False) -> None:
        self._emit("failed", attempt, error=error, chunks=chunks, abandoned=abandoned,
                   time_to_first_chunk=self._first)
        if self.log:
            what = "left by the caller" if abandoned else f"failed: {type(error).__name__}"
            LOG.debug("%s %s %s after %d chunks (%s)", self.method, self.url, what, chunks,
                      error if error is not None else "before its final chunk")
        span = self._span
        if span is not None:
            self._span = None
            _end_span(span, self, chunks, None, None, None, None, None, error, abandoned)


def _decoded(body: Any) -> Any:
    if isinstance(body, (bytes, bytearray)):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
    return None


def _tracer() -> Any:
    """A tracer when the application imported opentelemetry and configured a provider (rule 2)."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None  # nobody set one up: the client makes no Watch for that either
    return provider.get_tracer("ollama_stream", __version__)


def _start_span(watch: Watch) -> Any:
    name = _SPANNED.get(watch.operation)
    tracer = _tracer() if name is not None else None
    if tracer is None:
        return None
    address, _, port = watch.host.partition("://")[2].rpartition(":")
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": name, "gen_ai.provider.name": "ollama", "gen_ai.system": "ollama",
        "gen_ai.request.model": watch.model or "", "server.address": address.strip("[]"),
    }
    if port.isdigit():
        attributes["server.port"] = int(port)
    if watch.content and isinstance(watch.body, dict):
        messages = watch.body.get("messages")
        prompt = messages if messages is not None else watch.body.get("prompt")
        attributes["gen_ai.input.messages"] = orjson.dumps(prompt).decode()
    kind = sys.modules["opentelemetry.trace"].SpanKind.CLIENT
    return tracer.start_span(f"{name} {watch.model or ''}".strip(), kind=kind,
                             attributes=attributes)


def _end_span(span: Any, watch: Watch, chunks: int, done_reason: str | None,
              metrics: Metrics | None, model: str | None, speed: float | None,
              content: str | None, error: Any, abandoned: bool) -> None:
    attributes: dict[str, Any] = {"ollama_stream.chunks": chunks}
    if model:
        attributes["gen_ai.response.model"] = model
    if done_reason:
        attributes["gen_ai.response.finish_reasons"] = (done_reason,)
    if metrics is not None:
        if metrics.prompt_eval_count is not None:
            attributes["gen_ai.usage.input_tokens"] = metrics.prompt_eval_count
        if metrics.eval_count is not None:
            attributes["gen_ai.usage.output_tokens"] = metrics.eval_count
    if watch._first is not None:
        attributes["ollama_stream.time_to_first_chunk"] = watch._first
    if speed is not None:
        attributes["ollama_stream.tokens_per_second"] = speed
    if content is not None:
        message = [{"role": "assistant", "content": content}]
        attributes["gen_ai.output.messages"] = orjson.dumps(message).decode()
    if abandoned:
        attributes["ollama_stream.abandoned"] = True
    span.set_attributes(attributes)
    if error is not None:
        trace = sys.modules["opentelemetry.trace"]
        span.set_attribute("error.type", type(error).__name__)
        span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)[:500]))
    span.end()
