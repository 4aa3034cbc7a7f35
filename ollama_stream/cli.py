"""The `ollama-stream` command (also `python -m ollama_stream`), built on the public API only.

    ollama-stream demo                      the whole flow against a built-in FakeOllama, no Ollama
                                            needed
    ollama-stream chat -m qwen3 "Hello"     stream one reply from the Ollama at OLLAMA_HOST
    ollama-stream chat -m qwen3             an interactive session (/exit, /clear, /think LEVEL;
                                            Ctrl-C stops a reply)
    ollama-stream pull MODEL                download a model with a live progress bar
    ollama-stream models | ps | show MODEL | version
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, TextIO

import orjson

from . import (
    AsyncOllama,
    ChatChunk,
    ChatResult,
    Message,
    ModelNotFoundError,
    Ollama,
    OllamaConnectionError,
    OllamaError,
    OllamaTimeoutError,
    Progress,
    RetryPolicy,
    Settings,
    __version__,
    client_for,
)

DEFAULT_MODEL = "qwen3"
EXIT_ERROR, EXIT_USAGE, EXIT_CONNECTION, EXIT_NOT_FOUND, EXIT_TIMEOUT, EXIT_INTERRUPTED = (
    1, 2, 3, 4, 5, 130)
THINK_CHOICES: dict[str, bool | str] = {"on": True, "off": False, "low": "low", "medium": "medium",
                                        "high": "high", "max": "max"}


class Style:
    """ANSI styling, off when the output is not a terminal or NO_COLOR is set."""

    def __init__(self, stream: TextIO) -> None:
        self.on = stream.isatty() and not os.environ.get("NO_COLOR")
        self.tty = stream.isatty()

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.on else text

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def start_dim(self) -> str:
        return "\x1b[2m" if self.on else ""

    def reset(self) -> str:
        return "\x1b[0m" if self.on else ""

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def cyan(self, text: str) -> str:
        return self._wrap("36", text)


class ReplyPrinter:
    """Prints one reply as it streams: thinking dimmed under a "Thinking" header, the answer apart
    from it, tool calls, and a one-line summary. The async and the blocking paths feed it the same
    chunks."""

    def __init__(self, out: TextIO, style: Style, *, hide_thinking: bool = False,
                 quiet: bool = False, as_json: bool = False) -> None:
        self.out, self.style = out, style
        self.hide_thinking, self.quiet, self.as_json = hide_thinking, quiet, as_json
        self.started = time.perf_counter()
        self.first_token: float | None = None
        self.section = ""

    def chunk(self, chunk: ChatChunk) -> None:
        out, style = self.out, self.style
        if self.as_json:
            out.write(orjson.dumps(chunk.raw).decode() + "\n")
            out.flush()
            return
        if self.first_token is None and (chunk.content or chunk.thinking):
            self.first_token = time.perf_counter() - self.started
        if chunk.thinking and not self.hide_thinking:
            if self.section != "thinking":
                out.write(style.start_dim() + "Thinking\n")  # dim until the thinking section ends
                self.section = "thinking"
            out.write(chunk.thinking)
        if chunk.content:
            if self.section == "thinking":
                out.write(style.reset() + "\n\n")
            self.section = "answer"
            out.write(chunk.content)
        for call in chunk.tool_calls:
            if self.section == "thinking":
                out.write(style.reset())
            if self.section:
                out.write("\n")
            self.section = "tool"
            out.write(style.cyan(f"-> tool call {call.name}"
                                 f"({orjson.dumps(call.arguments).decode()})") + "\n")
        out.flush()

    def done(self, result: ChatResult | ChatChunk | None) -> None:
        if self.as_json:
            return
        if self.section == "thinking":
            self.out.write(self.style.reset())
        if self.section in ("answer", "thinking"):
            self.out.write("\n")
        if result is not None and not self.quiet:
            self.out.write(self.style.dim(summary(result, self.first_token)) + "\n")
        self.out.flush()


def summary(result: ChatResult | ChatChunk, first_token: float | None) -> str:
    metrics = result.metrics
    parts = []
    if metrics is not None and metrics.eval_count is not None:
        parts.append(f"{metrics.eval_count} tokens")
    if metrics is not None and metrics.tokens_per_second is not None:
        parts.append(f"{metrics.tokens_per_second:.1f} tokens/s")
    if first_token is not None:
        parts.append(f"first token in {first_token:.2f}s")
    if result.done_reason and result.done_reason != "stop":
        parts.append(f"stopped: {result.done_reason}")
    return "[" + ", ".join(parts) + "]"


async def render(stream: Any, out: TextIO, style: Style, **printer: Any) -> ChatResult:
    """Stream a ChatStream to `out` and return its result."""
    print_reply = ReplyPrinter(out, style, **printer)
    async for chunk in stream:
        print_reply.chunk(chunk)
    result: ChatResult = await stream.result()
    print_reply.done(result)
    return result


def _parse_options(pairs: Sequence[str]) -> dict[str, Any] | None:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--option takes key=value, got {pair!r}")
        try:
            options[key] = orjson.loads(value)
        except orjson.JSONDecodeError:
            options[key] = value
    return options or None


class ChatSetup:
    """What a chat needs, from the arguments and the environment (the arguments win)."""

    def __init__(self, args: argparse.Namespace) -> None:
        settings = Settings.from_env()
        self.hide = args.hide_thinking or settings.hide_thinking
        self.think: bool | str | None = THINK_CHOICES[args.think] if args.think else settings.think
        self.options = _parse_options(args.option)
        self.format = args.format
        self.model = args.model or settings.model or DEFAULT_MODEL
        self.client, self.name = client_for(self.model, host=args.host or settings.host,
                                            provider=settings.provider)
        self.history: list[Message] = [Message("system", args.system)] if args.system else []

    def request(self) -> dict[str, Any]:
        return {"think": self.think, "format": self.format, "options": self.options}


async def cmd_chat(args: argparse.Namespace) -> int:
    setup = ChatSetup(args)
    prompt = args.prompt if args.prompt is not None else sys.stdin.read().strip()
    setup.history.append(Message("user", prompt))
    async with setup.client as client:
        await render(client.chat(setup.name, setup.history, **setup.request()), sys.stdout,
                     Style(sys.stdout), hide_thinking=setup.hide, quiet=args.quiet,
                     as_json=args.json)
    return 0


def interactive_chat(args: argparse.Namespace) -> int:
    """The interactive session, on the blocking client: input() keeps readline's line editing in the
    main thread, and Ctrl-C during a reply stops that reply (its connection is closed) and keeps the
    session."""
    with contextlib.suppress(ImportError):  # not on every platform
        import readline  # noqa: F401 - importing it gives input() line editing and history
    setup = ChatSetup(args)
    out, style = sys.stdout, Style(sys.stdout)
    async_client = setup.client
    with Ollama(async_client.host, backend=async_client.backend) as client:
        out.write(style.dim(f"Chatting with {setup.model} at {client.host}. /exit to quit, "
                            "/clear to forget, /think LEVEL to change thinking, Ctrl-C to stop a "
                            "reply.\n"))
        while True:
            try:
                line = input(style.bold(">>> ")).strip()
            except (EOFError, KeyboardInterrupt):
                out.write("\n")
                return 0
            if not line:
                continue
            if line in ("/exit", "/quit", "/bye"):
                return 0
            if line == "/clear":
                setup.history = [m for m in setup.history if m.role == "system"]
                out.write(style.dim("History cleared.\n"))
                continue
            if line.startswith("/think"):
                level = line.partition(" ")[2].strip()
                if level not in THINK_CHOICES:
                    out.write(f"/think takes one of {', '.join(THINK_CHOICES)}\n")
                    continue
                setup.think = THINK_CHOICES[level]
                out.write(style.dim(f"Thinking: {level}\n"))
                continue
            setup.history.append(Message("user", line))
            print_reply = ReplyPrinter(out, style, hide_thinking=setup.hide, quiet=args.quiet)
            stream = client.chat(setup.name, setup.history, **setup.request())
            try:
                for chunk in stream:
                    print_reply.chunk(chunk)
                result = stream.result()
            except KeyboardInterrupt:
                stream.close()  # closes the response: the server stops generating
                print_reply.done(None)
                out.write(style.dim("[stopped]\n"))
                setup.history.pop()  # the unanswered question leaves the history
                continue
            except OllamaError as exc:
                print_reply.done(None)
                sys.stderr.write(f"ollama-stream: {describe(exc)}\n")
                setup.history.pop()
                continue
            print_reply.done(result)
            setup.history.append(result.message)


# -- pull, models, ps, show, version ---------------------------------------------------------------

def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def human_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class PullProgress:
    """A live progress bar per layer (bytes, speed, ETA), redrawn in place on a terminal; on a pipe,
    one line per status and one per finished layer."""

    WIDTH = 24

    def __init__(self, out: TextIO, style: Style) -> None:
        self.out, self.style = out, style
        self.layers: dict[str, tuple[float, int]] = {}  # digest -> (first seen, completed then)
        self.open_line = False
        self.finished: set[str] = set()

    def line(self, progress: Progress) -> None:
        if not progress.digest or not progress.total:
            self._end_bar()
            self.out.write(progress.status + "\n")
            self.out.flush()
            return
        now = time.monotonic()
        started, base = self.layers.setdefault(progress.digest, (now, progress.completed or 0))
        completed = progress.completed or 0
        fraction = progress.fraction or 0.0
        elapsed = now - started
        speed = (completed - base) / elapsed if elapsed > 0 else 0.0
        eta = (progress.total - completed) / speed if speed > 0 else None
        filled = int(fraction * self.WIDTH)
        bar = "█" * filled + "░" * (self.WIDTH - filled)
        text = (f"{progress.status}  {bar} {fraction:4.0%}  "
                f"{human_bytes(completed)}/{human_bytes(progress.total)}  {human_bytes(speed)}/s"
                + (f"  ETA {human_duration(eta)}" if eta is not None else ""))
        if self.style.tty:
            self.out.write("\r\x1b[2K" + text)
            self.open_line = True
            if completed >= progress.total:
                self._end_bar()
        elif completed >= progress.total and progress.digest not in self.finished:
            self.finished.add(progress.digest)
            self.out.write(text + "\n")
        self.out.flush()

    def _end_bar(self) -> None:
        if self.open_line:
            self.out.write("\n")
            self.open_line = False


def _client(args: argparse.Namespace) -> AsyncOllama:
    return AsyncOllama(args.host or Settings.from_env().host)


async def cmd_pull(args: argparse.Namespace) -> int:
    progress = PullProgress(sys.stdout, Style(sys.stdout))
    async with _client(args) as client:
        async for line in client.pull(args.model, insecure=args.insecure):
            progress.line(line)
    return 0


async def cmd_models(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        models = (await client.list()).models
    rows = [(m.name, human_bytes(m.size), _ago(m.modified_at)) for m in models]
    _table(["NAME", "SIZE", "MODIFIED"], rows)
    return 0


async def cmd_ps(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        models = (await client.ps()).models
    rows = []
    for m in models:
        gpu = m.size_vram / m.size if m.size else 0.0
        processor = "100% GPU" if gpu >= 0.999 else "100% CPU" if gpu <= 0.001 else f"{gpu:.0%} GPU"
        rows.append((m.name, human_bytes(m.size), processor, str(m.context_length or ""),
                     _until(m.expires_at)))
    _table(["NAME", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"], rows)
    return 0


async def cmd_show(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        info = await client.show(args.model)
    out = sys.stdout
    architecture = info.model_info.get("general.architecture", info.details.family)
    context = next((v for k, v in info.model_info.items() if k.endswith(".context_length")), None)
    rows = [("architecture", architecture), ("parameters", info.details.parameter_size),
            ("context length", context), ("quantization", info.details.quantization_level)]
    out.write("  Model\n")
    for name, value in rows:
        if value not in (None, ""):
            out.write(f"    {name:<20}{value}\n")
    if info.capabilities:
        out.write("\n  Capabilities\n" + "".join(f"    {c}\n" for c in info.capabilities))
    if info.parameters.strip():
        out.write("\n  Parameters\n"
                  + "".join(f"    {line}\n" for line in info.parameters.strip().splitlines()))
    if info.system.strip():
        out.write("\n  System\n    " + info.system.strip().replace("\n", "\n    ") + "\n")
    return 0


async def cmd_version(args: argparse.Namespace) -> int:
    print(f"ollama-stream {__version__}")
    async with AsyncOllama(args.host or Settings.from_env().host,
                           retry=RetryPolicy(max_attempts=1)) as client:
        try:
            print(f"ollama server {await client.version()} at {client.host}")
        except OllamaConnectionError:
            print(f"no Ollama server at {client.host} (start one with `ollama serve`)")
    return 0


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    for row in [tuple(header), *rows]:
        sys.stdout.write("  ".join(str(cell).ljust(width)
                                   for cell, width in zip(row, widths, strict=True))
                         .rstrip() + "\n")


_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$")


def _parse_time(text: str) -> datetime | None:
    """RFC 3339 with 0..9 fractional digits (Ollama sends nanoseconds); None when it is not one."""
    match = _RFC3339.match(text.strip())
    if match is None:
        return None
    date, clock, fraction, zone = match.groups()
    micro = (fraction or "").ljust(6, "0")[:6]
    offset = "+00:00" if zone in (None, "Z") else zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"
    return datetime.fromisoformat(f"{date}T{clock}.{micro}{offset}")


def _ago(text: str) -> str:
    when = _parse_time(text)
    if when is None:
        return text
    seconds = (datetime.now(timezone.utc) - when.astimezone(timezone.utc)).total_seconds()
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


def _until(text: str) -> str:
    when = _parse_time(text)
    if when is None:
        return text
    seconds = (when.astimezone(timezone.utc) - datetime.now(timezone.utc)).total_seconds()
    return "forever" if seconds > 10 * 365 * 86400 else f"{human_duration(seconds)} from now"


# -- the demo --------------------------------------------------------------------------------------

def get_weather(city: str) -> dict[str, Any]:
    """Get the current weather in a city.

    Args:
        city: The city's name.
    """
    return {"city": city, "temperature_c": 22, "sky": "clear"}


async def cmd_demo(args: argparse.Namespace) -> int:
    from .testing import FakeOllama

    out, style = sys.stdout, Style(sys.stdout)
    async with FakeOllama(chunk_delay=args.delay) as fake, AsyncOllama(fake.url) as client:
        out.write(style.bold("ollama-stream demo")
                  + style.dim(f"  (a built-in FakeOllama at {fake.url}; "
                              "no Ollama needed)\n\n"))
        model = "qwen3"
        history: list[Message] = [Message("user", "Why is the sky blue?")]
        fake.queue_reply(
            thinking="The user asks about the sky's colour. Rayleigh scattering: shorter "
                     "wavelengths scatter more.",
            content="Sunlight scatters off air molecules, and blue light, with its shorter "
                    "wavelength, scatters far more than red. So blue reaches your eyes from every "
                    "direction of the sky.",
        )
        out.write(style.bold(">>> Why is the sky blue?\n"))
        result = await render(client.chat(model, history, think=True), out, style)
        history.append(result.message)

        question = "And what's the weather in Tokyo right now?"
        history.append(Message("user", question))
        out.write("\n" + style.bold(f">>> {question}\n"))
        fake.queue_reply(thinking="I need live data: call get_weather for Tokyo.",
                         tool_calls=[{"name": "get_weather", "arguments": {"city": "Tokyo"}}])
        fake.queue_reply(thinking="The tool says 22 C and clear.",
                         content="It's 22 °C with clear skies in Tokyo right now.")
        loop = client.chat_with_tools(model, history, tools=[get_weather], think=True)
        print_reply = ReplyPrinter(out, style)
        async for event in loop:
            if isinstance(event, ChatChunk):
                print_reply.chunk(event)
                # the end of a round: its summary, then a fresh printer for the next one
                if event.done:
                    print_reply.done(event)
                    print_reply = ReplyPrinter(out, style)
            else:
                out.write(style.cyan(f"<- {event.name} returned {event.content}") + "\n")
        history = loop.messages
        out.write("\n" + style.dim(f"{len(history)} messages in the history, ready for the next "
                                   "turn. Try it on a real model: ollama-stream chat -m qwen3 "
                                   "\"Hello\"") + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ollama-stream",
                                     description="Stream from Ollama's native API.")
    parser.add_argument("--host", default=None,
                        help="Ollama's address (default: OLLAMA_HOST or 127.0.0.1:11434)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"ollama-stream {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    chat = sub.add_parser("chat",
                          help="stream a reply (one-shot with a prompt or stdin, else interactive)")
    chat.add_argument("prompt", nargs="?",
                      help="the prompt; read from stdin when piped; none = interactive")
    chat.add_argument("-m", "--model", default=None,
                      help=f"the model (default: MODEL, else {DEFAULT_MODEL}); "
                           "provider/model routes via LiteLLM")
    chat.add_argument("--think", choices=list(THINK_CHOICES), help="thinking: on, off or a level")
    chat.add_argument("--hide-thinking", action="store_true", help="do not print the thinking")
    chat.add_argument("--system", help="a system prompt")
    chat.add_argument("--format", choices=["json"], help="structured output")
    chat.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                      help="a model option")
    chat.add_argument("--quiet", action="store_true", help="no summary line")
    chat.add_argument("--json", action="store_true", help="print each chunk as one NDJSON line")
    chat.set_defaults(run=cmd_chat)

    demo = sub.add_parser("demo", help="the whole flow against a built-in FakeOllama")
    demo.add_argument("--delay", type=float, default=0.02, help="seconds between streamed tokens")
    demo.set_defaults(run=cmd_demo)

    pull = sub.add_parser("pull", help="download a model, with a progress bar")
    pull.add_argument("model")
    pull.add_argument("--insecure", action="store_true", help="allow an insecure registry")
    pull.set_defaults(run=cmd_pull)

    sub.add_parser("models", help="list the models on the server").set_defaults(run=cmd_models)
    sub.add_parser("ps", help="list the models loaded in memory").set_defaults(run=cmd_ps)
    show = sub.add_parser("show", help="a model's details")
    show.add_argument("model")
    show.set_defaults(run=cmd_show)
    sub.add_parser("version",
                   help="this SDK's and the server's versions").set_defaults(run=cmd_version)
    return parser


def describe(exc: OllamaError) -> str:
    """The one line a person sees for an error."""
    if isinstance(exc, ModelNotFoundError) and exc.model:
        return (f"model {exc.model!r} not found at {exc.url or 'the server'} ({exc.error}). "
                f"Pull it first: ollama-stream pull {exc.model}")
    return str(exc)


def exit_code(exc: OllamaError) -> int:
    if isinstance(exc, OllamaConnectionError):
        return EXIT_CONNECTION
    if isinstance(exc, ModelNotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(exc, OllamaTimeoutError):
        return EXIT_TIMEOUT
    return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.run is cmd_chat and args.prompt is None and sys.stdin.isatty():
            return interactive_chat(args)
        code: int = asyncio.run(args.run(args))
        return code
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return EXIT_INTERRUPTED
    except OllamaError as exc:
        if args.debug:
            raise
        sys.stderr.write(f"ollama-stream: {describe(exc)}\n")
        return exit_code(exc)
    except (ValueError, TypeError, ImportError) as exc:
        if args.debug:
            raise
        sys.stderr.write(f"ollama-stream: {exc}\n")
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
