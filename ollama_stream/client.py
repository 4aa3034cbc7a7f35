"""AsyncOllama, the asyncio client: its arguments, its lifecycle, and one short method per endpoint
of Ollama's native API. The exchanges themselves are the lower rooms' work: `_http` sends and maps
errors, `_retry` retries, `_watchdog` times the phases, `streams` reads the streams.

Also here: NativeBackend, the native path as a ChatBackend object (it wraps an AsyncOllama). It is
longer than 450 lines because it has one method per endpoint, twenty of them, each short and alike.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import os
import random
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson

from ._arguments import wire_json
from ._exchange import Exchange
from ._http import Transport, basic_credential, build_headers, read_body, send
from ._observe import LOG, Watch
from ._prefill import ChatPath, Continuation, chat_continuation, chat_path, generate_continuation
from ._retry import first_success
from .config import RetryPolicy, Timeouts, resolve_endpoint
from .errors import (
    OllamaConnectionError,
    OllamaError,
    OllamaTimeoutError,
    ProtocolError,
    ResponseError,
)
from .protocol import DEFAULT_MAX_LINE_BYTES, build_chat_request, parse_metrics
from .streams import ChatStream, GenerateStream, ProgressStream
from .types import ChatChunk, ChatResult, Message, Metrics

if TYPE_CHECKING:
    from .agent import ToolLoop
    from .backends import ChatBackend, ChatRequest
    from .endpoints import (
        EmbeddingsResult,
        EmbedResult,
        ListResult,
        PsResult,
        ShowResult,
        StatusResult,
        WebFetchResult,
        WebSearchResult,
    )
    from .events import Event

__all__ = ["AsyncOllama", "ChatStream", "GenerateStream", "NativeBackend", "ProgressStream"]

_NO_RETRY = RetryPolicy(max_attempts=1)


class AsyncOllama:
    """An asyncio client for Ollama's native API.

    `host` (or OLLAMA_HOST, else http://127.0.0.1:11434) follows Ollama's own rules. `headers` are
    added to every request; OLLAMA_API_KEY, when set, is sent as a bearer token. `timeouts` and
    `retry` set the phase limits and the retry policy; `max_line_bytes` bounds one NDJSON line;
    `pool_limit` caps open connections; `ssl` is passed to aiohttp (TLS verification stays on unless
    you pass something here); `backend` makes chat come from a ChatBackend instead of the native
    API. Use it as `async with AsyncOllama() as client:` or call `await client.aclose()`.

    Into your own stack: `session` (your aiohttp.ClientSession, never closed here; our headers go
    with each request) or `connector` (your connector, shared); `trust_env=True` to honour
    HTTP(S)_PROXY / NO_PROXY and .netrc as aiohttp does (off by default, so that a proxy set for
    the internet never captures the traffic to a local Ollama), `proxy`/`proxy_auth` for one
    proxy; `redirects` ("same-origin", "any" to follow other origins too, without the
    Authorization header, or "none"); `on_event(event)` is called at each request, retry, first
    chunk, end and failure (see `ollama_stream.events.Event`); `log_content=True` lets events,
    DEBUG logs and traces carry the request bodies and the replies.
    """

    def __init__(
        self,
        host: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        pool_limit: int = 100,
        ssl: Any = None,
        backend: ChatBackend | None = None,
        session: Any = None,
        connector: Any = None,
        trust_env: bool = False,
        proxy: str | None = None,
        proxy_auth: Any = None,
        redirects: str = "same-origin",
        on_event: Callable[[Event], Any] | None = None,
        log_content: bool = False,
    ) -> None:
        if backend is not None:
            from .backends import ChatBackend

            if not isinstance(backend, ChatBackend):
                raise TypeError("backend must have stream_chat(request) and aclose(); got "
                                f"{type(backend).__name__}")
        self.backend = backend
        self.timeouts = timeouts if timeouts is not None else Timeouts()
        self.retry = retry if retry is not None else RetryPolicy()
        if not isinstance(self.timeouts, Timeouts):
            raise TypeError(f"timeouts must be a Timeouts, not {type(self.timeouts).__name__}")
        if not isinstance(self.retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, not {type(self.retry).__name__}")
        for name, value in (("max_line_bytes", max_line_bytes), ("pool_limit", pool_limit)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.max_line_bytes = max_line_bytes
        url, credentials = resolve_endpoint(host)
        self._headers = build_headers(headers)
        if credentials is not None:  # http://user:password@host: basic auth, on purpose
            if any(name.lower() == "authorization" for name in self._headers):
                raise ValueError(
                    "the host holds credentials (user:password@) and an Authorization header is "
                    "set too (OLLAMA_API_KEY or headers=): keep one of them")
            self._headers["Authorization"] = basic_credential(*credentials)
        if redirects not in ("same-origin", "any", "none"):
            raise ValueError(f"redirects must be 'same-origin', 'any' or 'none', got {redirects!r}")
        if session is not None and connector is not None:
            raise ValueError("pass session= or connector=, not both: a session has its connector")
        if proxy is not None and not (isinstance(proxy, str) and proxy.startswith(("http://",
                                                                                    "https://"))):
            raise ValueError(f"proxy must be an http:// or https:// URL, got {proxy!r}")
        if proxy_auth is not None and (
                proxy is None or not isinstance(proxy_auth, tuple) or len(proxy_auth) < 2
                or not all(isinstance(part, str) for part in proxy_auth[:2])):
            raise ValueError(
                "proxy_auth must be (login, password) strs (or an aiohttp.BasicAuth), given with "
                "proxy=; for a proxy from the environment (trust_env=True) put them in its URL")
        if on_event is not None and not callable(on_event):
            raise TypeError(f"on_event must be a function of one event, not "
                            f"{type(on_event).__name__}")
        if inspect.iscoroutinefunction(on_event):
            raise TypeError("on_event must be a plain function: it is called inline, in the event "
                            "loop, and never awaited; hand the event to a queue, or start your "
                            "coroutine from it with asyncio.get_running_loop().create_task(...)")
        if ssl is not None and (session is not None or connector is not None):
            raise ValueError("ssl= configures the client's own connector; with session= or "
                             "connector=, give yours the ssl (aiohttp.TCPConnector(ssl=...))")
        self._transport = Transport(url, self._headers, pool_limit=pool_limit, ssl=ssl,
                                    session=session, connector=connector,
                                    trust_env=bool(trust_env), proxy=proxy,
                                    proxy_auth=proxy_auth, redirects=redirects)
        self._on_event = on_event
        self._log_content = bool(log_content)
        # The attempt loop's clock and dice: tests replace them so that retries do not wait.
        self._sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
        self._rng = random.Random()
        self._chat_paths: dict[str, ChatPath] = {}  # how each model continues a reply (resume)

    @property
    def host(self) -> str:
        """The base URL requests go to, such as http://127.0.0.1:11434."""
        return self._transport.host

    @property
    def pool_limit(self) -> int:
        return self._transport.pool_limit

    @property
    def closed(self) -> bool:
        return self._transport.closed

    def __repr__(self) -> str:
        return f"AsyncOllama(host={self.host!r})"

    async def __aenter__(self) -> AsyncOllama:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool. The client cannot be used afterwards."""
        await self._transport.close()
        if self.backend is not None:
            await self.backend.aclose()

    def _exchange(self, path: str, body: Any, model: str | None, *,
                  timeouts: Timeouts | None = None, retry: RetryPolicy | None = None,
                  **kind: Any) -> Exchange:
        """A new request with this client's settings, or the call's own `timeouts` and `retry`
        (checked here, before any I/O); `kind` sets the method, parser or backend."""
        if timeouts is not None and not isinstance(timeouts, Timeouts):
            raise TypeError(f"timeouts must be a Timeouts, not {type(timeouts).__name__}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, not {type(retry).__name__}")
        watch = None
        # Someone listens: a hook, DEBUG logging, or a tracer provider that the application set up
        # (asked here, not in a helper, to add no call to a request: `_observe`'s rule 1).
        otel = sys.modules.get("opentelemetry.trace")
        if (self._on_event is not None or LOG.isEnabledFor(logging.DEBUG)
                or (otel is not None and not isinstance(
                    otel.get_tracer_provider(), (otel.ProxyTracerProvider,
                                                 otel.NoOpTracerProvider)))):
            watch = Watch(kind.get("method", "POST"), self.host + path, path, model, self.host,
                          hook=self._on_event, content=self._log_content,
                          body=body if not callable(body) else None)
        return Exchange(self._transport, path, body, model,
                        timeouts=timeouts if timeouts is not None else self.timeouts,
                        retry=retry if retry is not None else self.retry,
                        max_line_bytes=self.max_line_bytes, sleep=self._sleep, rng=self._rng,
                        watch=watch, **kind)

    # -- streamed endpoints -----------------------------------------------------------------------

    def chat(
        self,
        model: str,
        messages: list[Message] | list[dict[str, Any]] | list[Message | dict[str, Any]],
        *,
        think: bool | str | None = None,
        tools: Sequence[Any] | None = None,
        format: str | dict[str, Any] | type[Any] | Any | None = None,
        repair: int = 0,
        options: dict[str, Any] | None = None,
        keep_alive: float | str | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        truncate: bool | None = None,
        shift: bool | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
    ) -> ChatStream:
        """Stream a chat reply from `POST /api/chat`. Arguments are checked now; nothing is sent
        until the returned ChatStream is iterated. An argument left as None is not sent (the
        server's default holds). `tools` takes Python functions, `Tool`s, or schema dicts (sent
        unchanged). `format` takes "json", a JSON Schema dict (both sent unchanged) or a type (a
        dataclass, TypedDict, Enum, pydantic model, list[...], ...; sent as its schema): then
        `result.parsed`, `await stream.parsed()` and `stream.objects()` give the reply as that
        type, and `repair=N` re-asks the model up to N times with the errors of a reply that does
        not fit. `truncate=False` makes an over-long history an error instead of dropping its
        oldest messages; `shift=False` makes running out of context an error instead of shifting
        it (both default to true on the server, v0.12.6+; a `shift` unlike the loaded model's
        reloads it). `timeouts` and `retry` replace the client's for this call only.
        """
        if (tools is not None and not isinstance(tools, (str, bytes, dict))
                and isinstance(tools, Sequence) and not all(type(tool) is dict for tool in tools)):
            from .tools import tool_schemas  # functions and Tools: imported only when used

            tools = tool_schemas(tools)
        output = None
        if format is not None or repair:
            output, format = _output_of(format, repair)
        body = build_chat_request(model, messages, think=think, tools=tools, format=format,
                                  options=options, keep_alive=keep_alive, logprobs=logprobs,
                                  top_logprobs=top_logprobs, truncate=truncate, shift=shift)
        num_ctx = _num_ctx(options) if options else None
        if self.backend is not None:
            from .backends import ChatRequest

            exchange = self._exchange("/api/chat", b"", model, backend=self.backend,
                                      request=ChatRequest(model, body), num_ctx=num_ctx,
                                      timeouts=timeouts, retry=retry)
        else:
            data = wire_json(body)
            exchange = self._exchange("/api/chat", data, model, num_ctx=num_ctx,
                                      timeouts=timeouts, retry=retry,
                                      resume=partial(self._continue_chat, data))
        if output is not None:
            exchange.output = self._structured(output, repair, body, "/api/chat", model,
                                               num_ctx=num_ctx, timeouts=timeouts, retry=retry)
        return ChatStream(exchange)

    async def _continue_chat(self, request: bytes, exchange: Exchange) -> Continuation | str:
        """How a chat stream that failed mid-reply goes on (RetryPolicy.resume): the `request`
        (as first sent) continuing all of its partial reply so far, or why the model's chat path
        cannot continue one."""
        reply = exchange.acc.message or Message("assistant", "")
        path = ChatPath(content=True)
        if reply.content or reply.thinking or reply.tool_calls:
            path = await self._chat_path(exchange)
        return chat_continuation(orjson.loads(request), reply, path)

    async def _chat_path(self, exchange: Exchange) -> ChatPath:
        """How the model's chat path takes a message to continue, from `/api/show` (asked once
        per model and client, with the call's retry policy and within what is left of its
        `total`)."""
        model = exchange.model or ""
        known = self._chat_paths.get(model)
        if known is None:
            timeouts = exchange.timeouts
            watchdog = exchange.watchdog
            if watchdog is not None and timeouts.total:
                left = max(watchdog.total_deadline - watchdog.loop.time(), 0.001)
                timeouts = dataclasses.replace(timeouts, total=left)
            try:
                known = chat_path(await self.show(model, timeouts=timeouts,
                                                  retry=exchange.retry))
            except OllamaError as exc:
                return ChatPath(False, why=f"/api/show could not say how {model!r} continues a "
                                           f"reply ({type(exc).__name__}: {exc})")
            self._chat_paths[model] = known
        return known

    def _structured(self, output: Any, repair: int, body: dict[str, Any], path: str, model: str,
                    **per_call: Any) -> Any:
        """What a chat or generate with `format=` needs after its reply: the format, the repair
        budget, the body, and how to send a repair's re-ask (`_again`)."""
        from ._outputs import Structured

        return Structured(output, repair, body, partial(self._again, path, model, per_call))

    def _again(self, path: str, model: str, per_call: dict[str, Any],
               body: dict[str, Any]) -> Exchange:
        """A repair's re-ask: the request chat() or generate() made, with a new body."""
        data = wire_json(body)
        if path == "/api/generate":
            from .endpoints import GenerateAccumulator, parse_generate_chunk

            return self._exchange(path, data, model, parse=parse_generate_chunk,
                                  acc=GenerateAccumulator(per_call.get("num_ctx")),
                                  resume=partial(_continue_generate, data), **per_call)
        if self.backend is not None:
            from .backends import ChatRequest

            return self._exchange(path, b"", model, backend=self.backend,
                                  request=ChatRequest(model, body), **per_call)
        return self._exchange(path, data, model, resume=partial(self._continue_chat, data),
                              **per_call)

    async def load(self, model: str, *, keep_alive: float | str | None = None,
                   timeouts: Timeouts | None = None,
                   retry: RetryPolicy | None = None) -> ChatResult:
        """Load a model into memory without generating anything: `POST /api/chat` with no
        messages, which the server answers with `done_reason` "load". `keep_alive` says how long
        it stays (seconds or a duration such as "10m"; negative = until unloaded). Loading can
        take minutes: a `timeouts=Timeouts(first_chunk=...)` here sizes the wait for it."""
        body = build_chat_request(model, [], keep_alive=keep_alive)
        return await ChatStream(self._exchange("/api/chat", wire_json(body), model,
                                               timeouts=timeouts, retry=retry)).result()

    async def unload(self, model: str, *, timeouts: Timeouts | None = None,
                     retry: RetryPolicy | None = None) -> ChatResult:
        """Unload a model from memory now (`keep_alive: 0`): the server answers `done_reason`
        "unload", as for `ollama stop MODEL`."""
        body = build_chat_request(model, [], keep_alive=0)
        return await ChatStream(self._exchange("/api/chat", wire_json(body), model,
                                               timeouts=timeouts, retry=retry)).result()

    def chat_with_tools(
        self,
        /,
        model: str,
        messages: Sequence[Message | dict[str, Any]],
        tools: Sequence[Any],
        *,
        max_rounds: int = 8,
        think: bool | str | None = None,
        on_error: str = "return",
        tool_timeout: float | None = None,
        on_length: str = "raise",
        max_calls_per_round: int = 32,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        **chat_options: Any,
    ) -> ToolLoop:
        """Run an agent loop: stream a reply, run the tool calls it makes (concurrently, in the
        model's order), send the results back, and stream again until a reply makes no calls.
        Iterate the returned ToolLoop for ChatChunks and ToolResults; `.messages` then holds the
        whole history. A failing tool's error is sent to the model as its result (`on_error="raise"`
        raises ToolError instead); more than `max_rounds` model calls raises MaxRoundsError.
        `tool_timeout` bounds each call (a Tool's own timeout wins). A final reply cut at the
        length limit raises ReplyTruncatedError (`on_length="return"` keeps it as the answer,
        with `loop.truncated` True). One round runs at most `max_calls_per_round` calls; the model
        is told that the rest were not run. `timeouts` and `retry` apply to each model call.
        """
        from .agent import ToolLoop

        per_call = {name: value for name, value in (("timeouts", timeouts), ("retry", retry))
                    if value is not None}
        return ToolLoop(self, model, messages, tools, max_rounds=max_rounds, on_error=on_error,
                        tool_timeout=tool_timeout,
                        chat_options={"think": think, **per_call, **chat_options},
                        on_length=on_length, max_calls_per_round=max_calls_per_round)

    def generate(
        self,
        model: str,
        prompt: str | None = None,
        *,
        suffix: str | None = None,
        system: str | None = None,
        template: str | None = None,
        context: Sequence[int] | None = None,
        raw: bool | None = None,
        images: Sequence[Any] | None = None,
        format: str | dict[str, Any] | type[Any] | Any | None = None,
        repair: int = 0,
        options: dict[str, Any] | None = None,
        keep_alive: float | str | None = None,
        think: bool | str | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        truncate: bool | None = None,
        shift: bool | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
    ) -> GenerateStream:
        """Stream a completion from `POST /api/generate`. Arguments are checked now; nothing is sent
        until the stream is iterated. Images may be bytes, paths, or base64 strs; `truncate` and
        `shift` as for chat. None = not sent. Tool calls the model's built-in parser finds come in
        the final chunk's (and the result's) `tool_calls`. `format` and `repair` as for chat (a
        repair appends the invalid answer and its errors to the prompt)."""
        from .endpoints import GenerateAccumulator, build_generate_request, parse_generate_chunk

        output = None
        if format is not None or repair:
            output, format = _output_of(format, repair)
        body = build_generate_request(model, prompt, suffix=suffix, system=system,
                                      template=template, context=context, raw=raw, images=images,
                                      format=format, options=options, keep_alive=keep_alive,
                                      think=think, logprobs=logprobs, top_logprobs=top_logprobs,
                                      truncate=truncate, shift=shift)
        num_ctx = _num_ctx(options) if options else None
        data = wire_json(body)
        exchange = self._exchange("/api/generate", data, model,
                                  parse=parse_generate_chunk, num_ctx=num_ctx,
                                  acc=GenerateAccumulator(num_ctx), timeouts=timeouts, retry=retry,
                                  resume=partial(_continue_generate, data))
        if output is not None:
            exchange.output = self._structured(output, repair, body, "/api/generate", model,
                                               num_ctx=num_ctx, timeouts=timeouts, retry=retry)
        return GenerateStream(exchange)

    def _progress(self, path: str, model: str, body: dict[str, Any],
                  **per_call: Any) -> ProgressStream:
        from .endpoints import ProgressAccumulator, parse_progress

        return ProgressStream(self._exchange(path, wire_json(body), model, parse=parse_progress,
                                             acc=ProgressAccumulator(), **per_call))

    def pull(self, model: str, *, insecure: bool = False, timeouts: Timeouts | None = None,
             retry: RetryPolicy | None = None) -> ProgressStream:
        """Download a model: a stream of Progress lines (per layer: digest, total, completed),
        ending in `success`. An `{"error"}` line (e.g. an unknown model) raises StreamError."""
        from .endpoints import build_transfer_request

        return self._progress("/api/pull", model, build_transfer_request(model, insecure=insecure),
                              timeouts=timeouts, retry=retry)

    def push(self, model: str, *, insecure: bool = False, timeouts: Timeouts | None = None,
             retry: RetryPolicy | None = None) -> ProgressStream:
        """Upload a model to its registry: a stream of Progress lines ending in `success`."""
        from .endpoints import build_transfer_request

        return self._progress("/api/push", model, build_transfer_request(model, insecure=insecure),
                              timeouts=timeouts, retry=retry)

    def create(
        self,
        model: str,
        *,
        from_: str | None = None,
        files: Mapping[str, str] | None = None,
        adapters: Mapping[str, str] | None = None,
        template: str | None = None,
        license: str | Sequence[str] | None = None,
        system: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        messages: Sequence[Message | dict[str, Any]] | None = None,
        quantize: str | None = None,
        renderer: str | None = None,
        parser: str | None = None,
        requires: str | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
    ) -> ProgressStream:
        """Create a model from another (`from_`) or from uploaded blobs (`files`: name -> digest,
        see `create_blob`): a stream of Progress lines ending in `success`. `renderer` and
        `parser` name the built-in prompt renderer and output parser to use instead of a template
        (such as "qwen3-coder"); `requires` is the oldest Ollama version the model needs."""
        from .endpoints import build_create_request

        body = build_create_request(model, from_=from_, files=files, adapters=adapters,
                                    template=template, license=license, system=system,
                                    parameters=parameters, messages=messages, quantize=quantize,
                                    renderer=renderer, parser=parser, requires=requires)
        return self._progress("/api/create", model, body, timeouts=timeouts, retry=retry)

    # -- plain request/response endpoints ---------------------------------------------------------

    async def embed(
        self,
        model: str,
        input: str | Sequence[str],
        *,
        truncate: bool | None = None,
        dimensions: int | None = None,
        keep_alive: float | str | None = None,
        options: dict[str, Any] | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
    ) -> EmbedResult:
        """Embed one text or several: `POST /api/embed`. One vector (list of floats) per input, in
        order."""
        from .endpoints import build_embed_request, parse_embed

        body = build_embed_request(model, input, truncate=truncate, dimensions=dimensions,
                                   keep_alive=keep_alive, options=options)
        return parse_embed(await self._json("POST", "/api/embed", body, model, timeouts=timeouts,
                                            retry=retry, num_ctx=_num_ctx(options)))

    async def embeddings(
        self,
        model: str,
        prompt: str,
        *,
        keep_alive: float | str | None = None,
        options: dict[str, Any] | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
    ) -> EmbeddingsResult:
        """Deprecated: use `embed`. One prompt's embedding from the legacy `POST /api/embeddings`,
        not normalised (`embed`'s are), for code whose stored vectors came from this endpoint. An
        empty prompt only loads the model (the embedding is then empty)."""
        from .endpoints import build_embeddings_request, parse_embeddings

        body = build_embeddings_request(model, prompt, keep_alive=keep_alive, options=options)
        return parse_embeddings(await self._json("POST", "/api/embeddings", body, model,
                                                 timeouts=timeouts, retry=retry))

    async def list(self, *, timeouts: Timeouts | None = None,
                   retry: RetryPolicy | None = None) -> ListResult:
        """The models on the server (`GET /api/tags`)."""
        from .endpoints import parse_list

        return parse_list(await self._json("GET", "/api/tags", timeouts=timeouts, retry=retry))

    async def show(self, model: str, *, verbose: bool = False, system: str | None = None,
                   options: Mapping[str, Any] | None = None, timeouts: Timeouts | None = None,
                   retry: RetryPolicy | None = None) -> ShowResult:
        """A model's details, template, parameters and capabilities (`POST /api/show`). `system`
        shows the model with that system prompt instead of its own (in `.system` and the
        modelfile), `options` with those parameters over its own (in the modelfile's PARAMETER
        lines; `.parameters` stays the model's). `verbose` adds the tensors and long arrays."""
        from .endpoints import build_show_request, parse_show

        body = build_show_request(model, verbose=verbose, system=system, options=options)
        return parse_show(await self._json("POST", "/api/show", body, model, timeouts=timeouts,
                                           retry=retry))

    async def ps(self, *, timeouts: Timeouts | None = None,
                 retry: RetryPolicy | None = None) -> PsResult:
        """The models loaded in memory now (`GET /api/ps`)."""
        from .endpoints import parse_ps

        return parse_ps(await self._json("GET", "/api/ps", timeouts=timeouts, retry=retry))

    async def version(self, *, timeouts: Timeouts | None = None,
                      retry: RetryPolicy | None = None) -> str:
        """The server's version (`GET /api/version`)."""
        answer = await self._json("GET", "/api/version", timeouts=timeouts, retry=retry)
        version = answer.get("version")
        if not isinstance(version, str):
            raise ProtocolError(f"{self.host}/api/version did not give a version string: "
                                f"{version!r}")
        return version

    async def status(self, *, timeouts: Timeouts | None = None,
                     retry: RetryPolicy | None = None) -> StatusResult:
        """The server's cloud status (`GET /api/status`, v0.16.2+): whether ollama.com's cloud
        models and web search are disabled here, and by what."""
        from .endpoints import parse_status

        return parse_status(await self._needs("v0.16.2", "GET", "/api/status", timeouts=timeouts,
                                              retry=retry))

    async def web_search(self, query: str, max_results: int | None = None, *,
                         timeouts: Timeouts | None = None,
                         retry: RetryPolicy | None = None) -> WebSearchResult:
        """Search the web through Ollama's web search (v0.18.0+): a local server forwards the query
        to ollama.com, signed with its own key (sign in with `ollama signin`); with host
        ollama.com the call goes there directly and needs OLLAMA_API_KEY. `max_results`: the
        service's default is 5, its limit 10."""
        from .endpoints import build_web_search_request, parse_web_search

        body = build_web_search_request(query, max_results)
        return parse_web_search(await self._web("web_search", body, timeouts=timeouts,
                                                retry=retry))

    async def web_fetch(self, url: str, *, timeouts: Timeouts | None = None,
                        retry: RetryPolicy | None = None) -> WebFetchResult:
        """Fetch one web page's title, main text and links through Ollama's web fetch (v0.18.0+),
        the same way as `web_search`."""
        from .endpoints import build_web_fetch_request, parse_web_fetch

        body = build_web_fetch_request(url)
        return parse_web_fetch(await self._web("web_fetch", body, timeouts=timeouts, retry=retry))

    async def _web(self, name: str, body: dict[str, Any], **per_call: Any) -> dict[str, Any]:
        """A web search or fetch: at ollama.com with the API key, else through the local server
        (which drops any Authorization header and signs the call itself)."""
        from .config import is_hosted_service

        if not is_hosted_service(self.host):
            return await self._needs("v0.18.0", "POST", f"/api/experimental/{name}", body,
                                     **per_call)
        if not any(header.lower() == "authorization" for header in self._headers):
            raise ValueError(
                f"{name} at {self.host} (Ollama's hosted API) needs an API key: set "
                "OLLAMA_API_KEY (create one at https://ollama.com/settings/keys) before creating "
                "the client, or pass headers={'Authorization': 'Bearer <key>'}; or point host at "
                "a local Ollama server that is signed in (`ollama signin`)"
            )
        return await self._json("POST", f"/api/{name}", body, **per_call)

    async def _needs(self, version: str, method: str, path: str, body: Any = None,
                     **per_call: Any) -> dict[str, Any]:
        """`_json` for an endpoint added in `version`: an older server's 404 says so."""
        try:
            return await self._json(method, path, body, **per_call)
        except ResponseError as exc:
            if exc.status_code == 404 and "page not found" in exc.error:
                exc.args = (f"{exc.message} ({path} is new in Ollama {version}: update the "
                            "server)",)
            raise

    async def delete(self, model: str, *, timeouts: Timeouts | None = None,
                     retry: RetryPolicy | None = None) -> None:
        """Delete a model from the server (`DELETE /api/delete`); ModelNotFoundError when it is not
        there."""
        from .endpoints import build_delete_request

        await self._unary("DELETE", "/api/delete", build_delete_request(model), model,
                          timeouts=timeouts, retry=retry)

    async def copy(self, source: str, destination: str, *, timeouts: Timeouts | None = None,
                   retry: RetryPolicy | None = None) -> None:
        """Copy a model under a new name (`POST /api/copy`); ModelNotFoundError when the source is
        missing."""
        from .endpoints import build_copy_request

        await self._unary("POST", "/api/copy", build_copy_request(source, destination), source,
                          timeouts=timeouts, retry=retry)

    async def create_blob(self, path: str | os.PathLike[str], *,
                          timeouts: Timeouts | None = None,
                          retry: RetryPolicy | None = None) -> str:
        """Upload a file as a blob (`POST /api/blobs/sha256:...`) unless the server has it; return
        its digest, for `create(files={name: digest})`."""
        file = os.fspath(path)
        digest = "sha256:" + await asyncio.to_thread(_sha256_of, file)
        if not await self.has_blob(digest, timeouts=timeouts, retry=retry):
            # A fresh file object for each attempt, closed when the attempt ends (`send`).
            fresh = lambda: open(file, "rb")  # noqa: E731, SIM115
            await self._unary("POST", f"/api/blobs/{digest}", fresh, timeouts=timeouts,
                              retry=retry)
        return digest

    async def has_blob(self, digest: str, *, timeouts: Timeouts | None = None,
                       retry: RetryPolicy | None = None) -> bool:
        """Whether the server has a blob (`HEAD /api/blobs/<digest>`)."""
        from .endpoints import check_digest

        try:
            await self._unary("HEAD", f"/api/blobs/{check_digest(digest)}", timeouts=timeouts,
                              retry=retry)
        except ResponseError as exc:
            if exc.status_code == 404:
                return False
            raise
        return True

    async def is_running(self, *, timeouts: Timeouts | None = None,
                         retry: RetryPolicy | None = None) -> bool:
        """True when an Ollama server answers at `host` (`GET /`); False when nothing listens
        there. One attempt unless `retry` says otherwise."""
        try:
            await self._unary("GET", "/", timeouts=timeouts,
                              retry=retry if retry is not None else _NO_RETRY)
        except (OllamaConnectionError, OllamaTimeoutError):
            return False
        return True

    async def _json(self, method: str, path: str, body: Any = None, model: str | None = None,
                    **per_call: Any) -> dict[str, Any]:
        data = await self._unary(method, path, body, model, **per_call)
        try:
            decoded = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise ProtocolError(f"{self.host}{path} did not answer with JSON: "
                                f"{data[:200]!r}") from None
        if not isinstance(decoded, dict):
            raise ProtocolError(f"{self.host}{path} answered a JSON {type(decoded).__name__}, "
                                "not an object")
        return decoded

    async def _unary(self, method: str, path: str, body: Any = None, model: str | None = None,
                     **per_call: Any) -> bytes:
        """A plain request/response exchange, with the same retries, phase limits and errors as the
        streams. `body` is JSON-encoded unless it is a callable (a fresh body per attempt);
        `per_call` holds the call's own timeouts and retry, and the request's num_ctx."""
        if body is not None and not callable(body):
            body = wire_json(body)
        exchange = self._exchange(path, body, model, method=method, **per_call)
        watch = exchange.watch
        try:
            resp, data = await first_success(exchange, partial(send, exchange, read_body))
            resp.release()
        except BaseException as exc:
            if watch is not None:
                error = exc if isinstance(exc, OllamaError) else None
                watch.failed(exchange.attempts, error, 0, abandoned=error is None)
            raise
        finally:
            if exchange.watchdog is not None:
                exchange.watchdog.cancel()
            exchange.close_response()
        if watch is not None:
            answer = _answer_facts(data)
            watch.finished(exchange.attempts, 0, None, answer[1], answer[0] or model, None)
        return data


class NativeBackend:
    """Ollama's native `/api/chat` over aiohttp, as a backend object (no retries of its own: the
    client above retries). `AsyncOllama()` without a backend runs the same code without this
    wrapper."""

    def __init__(self, host: str | None = None, **client_options: Any) -> None:
        self._client = AsyncOllama(host, retry=_NO_RETRY, **client_options)

    @property
    def host(self) -> str:
        return self._client.host

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        options = {key: value for key, value in request.body.items()
                   if key not in ("model", "messages", "stream")}
        async with self._client.chat(request.model, request.messages, **options) as stream:
            async for chunk in stream:
                yield chunk

    async def aclose(self) -> None:
        await self._client.aclose()


async def _continue_generate(request: bytes, exchange: Exchange) -> Continuation | str:
    """How a generate stream that failed mid-reply goes on: the raw `request` (as first sent) with
    the partial reply appended to its prompt, or why there is none (RetryPolicy.resume)."""
    reply = exchange.acc.message or Message("assistant", "")
    return generate_continuation(orjson.loads(request), reply)


def _answer_facts(data: bytes) -> tuple[str | None, Metrics | None]:
    """The model and the counters of a plain JSON answer (for the watch of an embed, say)."""
    try:
        obj = orjson.loads(data) if data else None
        if isinstance(obj, dict):
            model = obj.get("model")
            return (model if isinstance(model, str) else None), parse_metrics(obj)
    except (orjson.JSONDecodeError, ProtocolError):
        pass
    return None, None


def _output_of(format: object, repair: object) -> tuple[Any, Any]:
    """A call's `format=` resolved (`structured.py`: a type becomes its schema) and what is sent
    for it; `repair` without a format is refused."""
    if format is None:
        raise ValueError(f"repair={repair!r} needs format= (a type, 'json' or a JSON Schema "
                         "dict): it re-asks for a reply that does not fit the format")
    from .structured import resolve_format

    output = resolve_format(format)
    return output, output.wire


def _num_ctx(options: Mapping[str, Any] | None) -> int | None:
    """The context window a request asks for, when its options set one."""
    value = options.get("num_ctx") if isinstance(options, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _sha256_of(path: str) -> str:
    import hashlib

    if not os.path.isfile(path):
        raise ValueError(f"create_blob: {path!r} is not a file")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
