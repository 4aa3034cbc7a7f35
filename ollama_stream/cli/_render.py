"""How the command shows things on a terminal or a pipe: styles, a streamed reply, the pull
bar, tables and times, and one line per error with its exit code."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, TextIO
from urllib.parse import urlsplit

import orjson

from .. import (
    ChatChunk,
    ChatResult,
    ModelNotFoundError,
    OllamaConnectionError,
    OllamaError,
    OllamaTimeoutError,
    Progress,
    ShowResult,
)

EXIT_ERROR, EXIT_USAGE, EXIT_CONNECTION, EXIT_NOT_FOUND, EXIT_TIMEOUT, EXIT_INTERRUPTED = (
    1, 2, 3, 4, 5, 130)
EXIT_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a command whose reader went away


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
    from it, tool calls, and a one-line summary (to `stats`, `out` unless given; none when `quiet`;
    Ollama's timings when `verbose`). The async and the blocking paths feed it the same chunks."""

    def __init__(self, out: TextIO, style: Style, *, hide_thinking: bool = False,
                 quiet: bool = False, as_json: bool = False, stats: TextIO | None = None,
                 verbose: bool = False) -> None:
        self.out, self.style = out, style
        self.hide_thinking, self.quiet, self.as_json = hide_thinking, quiet, as_json
        self.stats = stats if stats is not None else out
        self.verbose = verbose
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
        if not self.as_json:
            if self.section == "thinking":
                self.out.write(self.style.reset())
            if self.section in ("answer", "thinking"):
                self.out.write("\n")
        self.out.flush()
        if result is not None and result.truncated:  # on stderr, even with --quiet or --json
            sys.stderr.write("ollama-stream: the reply stopped at the length limit; raise it with "
                             "--option num_predict=N\n")
            sys.stderr.flush()
        if self.as_json:
            return
        if result is not None and (self.verbose or not self.quiet):
            stats_style = self.style if self.stats is self.out else Style(self.stats)
            text = (timings(result, self.first_token) if self.verbose
                    else summary(result, self.first_token) + "\n")
            self.stats.write(stats_style.dim(text.rstrip("\n")) + "\n")
            self.stats.flush()


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


def go_duration(nanoseconds: int | None) -> str:
    """A duration as Go prints a time.Duration (rounded to four figures): 1.234s, 56.7ms, 89µs."""
    if nanoseconds is None:
        return "-"
    for unit, size in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if nanoseconds >= size:
            return f"{nanoseconds / size:.4g}{unit}"
    return f"{nanoseconds}ns"


def timings(result: ChatResult | ChatChunk, first_token: float | None) -> str:
    """The lines `ollama run --verbose` prints after a reply (api.Metrics.Summary), and the time to
    the first token."""
    m = result.metrics
    if m is None:
        return summary(result, first_token) + "\n"
    rows = [("total duration", go_duration(m.total_duration)),
            ("load duration", go_duration(m.load_duration))]
    if m.prompt_eval_count is not None:
        rows.append(("prompt eval count", f"{m.prompt_eval_count} token(s)"))
    if m.prompt_eval_duration:
        rows.append(("prompt eval duration", go_duration(m.prompt_eval_duration)))
    if m.prompt_tokens_per_second is not None:
        rows.append(("prompt eval rate", f"{m.prompt_tokens_per_second:.2f} tokens/s"))
    if m.eval_count is not None:
        rows.append(("eval count", f"{m.eval_count} token(s)"))
    if m.eval_duration:
        rows.append(("eval duration", go_duration(m.eval_duration)))
    if m.tokens_per_second is not None:
        rows.append(("eval rate", f"{m.tokens_per_second:.2f} tokens/s"))
    if first_token is not None:
        rows.append(("first token", f"{first_token:.3f}s"))
    if result.done_reason and result.done_reason != "stop":
        rows.append(("done reason", result.done_reason))
    return "".join(f"{name + ':':<22}{value}\n" for name, value in rows)


async def render(stream: Any, out: TextIO, style: Style, **printer: Any) -> ChatResult:
    """Stream a ChatStream to `out` and return its result."""
    print_reply = ReplyPrinter(out, style, **printer)
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


def columns_of(stream: TextIO) -> int:
    """The width of the terminal `stream` writes to (COLUMNS wins when set), else 80."""
    with contextlib.suppress(ValueError):
        return max(int(os.environ["COLUMNS"]), 20) if os.environ.get("COLUMNS") else (
            os.get_terminal_size(stream.fileno()).columns or 80)
    return 80


def bar_line(status: str, fraction: float, completed: int, total: int, speed: float,
             eta: float | None, columns: int | None, widest: int = 24) -> str:
    """`status  ████░░░░  42%  sizes  speed  ETA`. With `columns` (a terminal), the fields keep
    fixed widths, so the bar keeps its length from one redraw to the next, and the line stays
    within `columns - 1` characters (the last column is left free: a line that fills it wraps on
    some terminals, and `\r` then no longer goes back to its start): when room runs short the ETA
    goes first, then the speed, then the sizes; then the bar narrows, down to none."""
    percent = f"{fraction:4.0%}"
    done, whole, rate = human_bytes(completed), human_bytes(total), human_bytes(speed)
    later = human_duration(eta) if eta is not None else ""
    if columns is None:
        tails = [f"{done}/{whole}", f"{rate}/s"] + ([f"ETA {later}"] if later else [])
        width = widest
    else:
        tails = [f"{done:>8}/{whole:<8}", f"{rate:>8}/s", f"ETA {later:>7}" if later else " " * 11]
        limit = columns - 1
        while True:
            tail = "".join("  " + t for t in tails)
            width = min(widest, limit - len(status) - 3 - len(percent) - len(tail))
            if width >= 10 or not tails:
                break
            tails.pop()
    tail = "".join("  " + t for t in tails).rstrip()
    filled = int(fraction * width) if width > 0 else 0
    bar = "█" * filled + "░" * (width - filled) + " " if width >= 5 else ""
    text = f"{status}  {bar}{percent}{tail}"
    return text if columns is None else text[:columns - 1].rstrip()


class PullProgress:
    """A live progress bar per layer (bytes, speed, ETA), redrawn in place on a terminal within its
    width; on a pipe, one line per status and one per finished layer."""

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
        elapsed = now - started
        speed = (completed - base) / elapsed if elapsed > 0 else 0.0
        eta = (progress.total - completed) / speed if speed > 0 else None
        text = bar_line(progress.status, progress.fraction or 0.0, completed, progress.total,
                        speed, eta, columns_of(self.out) if self.style.tty else None, self.WIDTH)
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


def render_show(info: ShowResult, out: TextIO) -> None:
    """A model's details as `ollama show` lays them out."""
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
    out.flush()


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


def origin(url: str) -> str:
    """scheme://host:port of a URL, without its path or any credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refused_on_loopback(error: OllamaError) -> bool | None:
    """RetryPolicy.retry_if for the command: a refused connection to this machine is not retried
    (nothing listens there, and a person waits); everything else follows the SDK's rule."""
    if (isinstance(error, OllamaConnectionError) and error.reason == "connection refused"
            and is_loopback(error.url)):
        return False
    return None


def describe(exc: OllamaError, *, words: Sequence[str] | None = None) -> str:
    """The one line a person sees for an error. `words`: the words of `chat MODEL WORDS...` when
    its first word was taken as the model."""
    if isinstance(exc, ModelNotFoundError) and exc.model:
        where = f"model {exc.model!r} not found at {exc.url or 'the server'} ({exc.error})."
        if words:
            prompt = " ".join([exc.model, *words]).replace('"', '\\"')
            return (f"{where} `chat` took its first word as the model, as it does when given "
                    f"several: to send them all as the prompt, quote them: ollama-stream chat "
                    f"\"{prompt}\"; to use that model, pull it first: ollama-stream pull "
                    f"{exc.model}")
        return f"{where} Pull it first: ollama-stream pull {exc.model}"
    if isinstance(exc, OllamaConnectionError) and exc.reason == "connection refused" and exc.url:
        tries = f" (after {exc.attempts} attempts)" if exc.attempts > 1 else ""
        return (f"cannot connect to Ollama at {origin(exc.url)}: connection refused{tries}. "
                "Start it with `ollama serve` (or try this without Ollama: ollama-stream "
                "fake-server), or point --host / OLLAMA_HOST at it.")
    return str(exc)


def exit_code(exc: OllamaError) -> int:
    if isinstance(exc, OllamaConnectionError):
        return EXIT_CONNECTION
    if isinstance(exc, ModelNotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(exc, OllamaTimeoutError):
        return EXIT_TIMEOUT
    return EXIT_ERROR
