"""How the command shows things on a terminal or a pipe: styles, a streamed reply, the pull
bar, tables and times, and one line per error with its exit code."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, TextIO

import orjson

from .. import (
    ChatChunk,
    ChatResult,
    ModelNotFoundError,
    OllamaConnectionError,
    OllamaError,
    OllamaTimeoutError,
    Progress,
)

EXIT_ERROR, EXIT_USAGE, EXIT_CONNECTION, EXIT_NOT_FOUND, EXIT_TIMEOUT, EXIT_INTERRUPTED = (
    1, 2, 3, 4, 5, 130)


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
        if result is not None and result.truncated:  # on stderr, even with --quiet or --json
            sys.stderr.write("ollama-stream: the reply stopped at the length limit; raise it with "
                             "--option num_predict=N\n")
            sys.stderr.flush()
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


async def render(stream: Any, out: TextIO, style: Style, *,
                 printer: type[ReplyPrinter] | None = None, **options: Any) -> ChatResult:
    """Stream a ChatStream to `out` (with a ReplyPrinter, or the `printer` given) and return its
    result."""
    print_reply = (printer or ReplyPrinter)(out, style, **options)
    async for chunk in stream:
        print_reply.chunk(chunk)
    result: ChatResult = await stream.result()
    print_reply.done(result)
    return result


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
