"""The `ollama-stream` command (also `python -m ollama_stream`), built on the public API only.

    ollama-stream demo                      the whole flow against a built-in FakeOllama, no Ollama needed
    ollama-stream chat -m qwen3 "Hello"     stream one reply from the Ollama at OLLAMA_HOST
    ollama-stream chat -m qwen3             an interactive session (/exit, /clear, /think LEVEL)
    ollama-stream version                   this SDK's version and the server's
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

import orjson

from . import (
    AsyncOllama,
    ChatResult,
    ChatStream,
    Message,
    ModelNotFoundError,
    OllamaConnectionError,
    OllamaError,
    OllamaTimeoutError,
    Settings,
    __version__,
    client_for,
)

DEFAULT_MODEL = "qwen3"
EXIT_ERROR, EXIT_USAGE, EXIT_CONNECTION, EXIT_NOT_FOUND, EXIT_TIMEOUT, EXIT_INTERRUPTED = 1, 2, 3, 4, 5, 130
THINK_CHOICES: dict[str, bool | str] = {"on": True, "off": False, "low": "low", "medium": "medium",
                                        "high": "high", "max": "max"}


class Style:
    """ANSI styling, off when the output is not a terminal or NO_COLOR is set."""

    def __init__(self, stream: TextIO) -> None:
        self.on = stream.isatty() and not os.environ.get("NO_COLOR")

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.on else text

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def cyan(self, text: str) -> str:
        return self._wrap("36", text)


async def render(stream: ChatStream, out: TextIO, style: Style, *, hide_thinking: bool = False,
                 quiet: bool = False, as_json: bool = False) -> ChatResult:
    """Print a reply as it streams: thinking dimmed under a header, then the answer, then a summary."""
    started = time.perf_counter()
    first_token: float | None = None
    section = ""
    async for chunk in stream:
        if as_json:
            out.write(orjson.dumps(chunk.raw).decode() + "\n")
            out.flush()
            continue
        if first_token is None and (chunk.content or chunk.thinking):
            first_token = time.perf_counter() - started
        if chunk.thinking and not hide_thinking:
            if section != "thinking":
                out.write(style.dim("Thinking\n"))
                section = "thinking"
            out.write(style.dim(chunk.thinking))
        if chunk.content:
            if section == "thinking":
                out.write("\n\n")
            section = "answer"
            out.write(chunk.content)
        for call in chunk.tool_calls:
            if section:
                out.write("\n")
            section = "tool"
            out.write(style.cyan(f"-> tool call {call.name}({orjson.dumps(call.arguments).decode()})") + "\n")
        out.flush()
    result = await stream.result()
    if not as_json:
        if section in ("answer", "thinking"):
            out.write("\n")
        if not quiet:
            out.write(style.dim(summary(result, first_token)) + "\n")
        out.flush()
    return result


def summary(result: ChatResult, first_token: float | None) -> str:
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


async def cmd_chat(args: argparse.Namespace) -> int:
    out, style = sys.stdout, Style(sys.stdout)
    settings = Settings.from_env()
    hide = args.hide_thinking or settings.hide_thinking
    think: bool | str | None = THINK_CHOICES[args.think] if args.think else settings.think
    options = _parse_options(args.option)
    history: list[Message] = [Message("system", args.system)] if args.system else []
    prompt = args.prompt
    if prompt is None and not sys.stdin.isatty():
        prompt = sys.stdin.read().strip()
    model = args.model or settings.model or DEFAULT_MODEL
    client, name = client_for(model, host=args.host or settings.host, provider=settings.provider)
    async with client:
        def ask(messages: list[Message]) -> ChatStream:
            return client.chat(name, messages, think=think, format=args.format, options=options)

        if prompt:
            history.append(Message("user", prompt))
            await render(ask(history), out, style, hide_thinking=hide, quiet=args.quiet, as_json=args.json)
            return 0
        out.write(style.dim(f"Chatting with {model} at {client.host}. /exit to quit, /clear to forget, "
                            "/think LEVEL to change thinking.\n"))
        while True:
            try:
                line = await asyncio.to_thread(input, style.bold(">>> "))
            except EOFError:
                out.write("\n")
                return 0
            line = line.strip()
            if not line:
                continue
            if line in ("/exit", "/quit", "/bye"):
                return 0
            if line == "/clear":
                history = [m for m in history if m.role == "system"]
                out.write(style.dim("History cleared.\n"))
                continue
            if line.startswith("/think"):
                level = line.partition(" ")[2].strip()
                if level not in THINK_CHOICES:
                    out.write(f"/think takes one of {', '.join(THINK_CHOICES)}\n")
                    continue
                think = THINK_CHOICES[level]
                out.write(style.dim(f"Thinking: {level}\n"))
                continue
            history.append(Message("user", line))
            result = await render(ask(history), out, style, hide_thinking=hide, quiet=args.quiet)
            history.append(result.message)


# -- the demo ------------------------------------------------------------------------------------------

def get_weather(city: str) -> dict[str, Any]:
    """A stand-in tool for the demo: the weather in a city."""
    return {"city": city, "temperature_c": 22, "sky": "clear"}


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


async def cmd_demo(args: argparse.Namespace) -> int:
    from .testing import FakeOllama

    out, style = sys.stdout, Style(sys.stdout)
    async with FakeOllama(chunk_delay=args.delay) as fake, AsyncOllama(fake.url) as client:
        out.write(style.bold("ollama-stream demo") + style.dim(f"  (a built-in FakeOllama at {fake.url}; "
                                                               "no Ollama needed)\n\n"))
        model = "qwen3"
        history: list[Message] = [Message("user", "Why is the sky blue?")]
        fake.queue_reply(
            thinking="The user asks about the sky's colour. Rayleigh scattering: shorter wavelengths scatter more.",
            content="Sunlight scatters off air molecules, and blue light, with its shorter wavelength, scatters "
                    "far more than red. So blue reaches your eyes from every direction of the sky.",
        )
        out.write(style.bold(">>> Why is the sky blue?\n"))
        result = await render(client.chat(model, history, think=True), out, style)
        history.append(result.message)

        question = "And what's the weather in Tokyo right now?"
        history.append(Message("user", question))
        out.write("\n" + style.bold(f">>> {question}\n"))
        fake.queue_reply(thinking="I need live data: call get_weather for Tokyo.",
                         tool_calls=[{"name": "get_weather", "arguments": {"city": "Tokyo"}}])
        result = await render(client.chat(model, history, think=True, tools=[WEATHER_TOOL]), out, style)
        history.append(result.message)
        for call in result.message.tool_calls:
            value = get_weather(**call.arguments)
            out.write(style.cyan(f"<- {call.name} returned {orjson.dumps(value).decode()}") + "\n")
            history.append(Message("tool", orjson.dumps(value).decode(), tool_name=call.name,
                                   tool_call_id=call.id))
        fake.queue_reply(thinking="The tool says 22 C and clear.",
                         content="It's 22 °C with clear skies in Tokyo right now.")
        result = await render(client.chat(model, history, think=True, tools=[WEATHER_TOOL]), out, style)
        history.append(result.message)
        out.write("\n" + style.dim(f"{len(history)} messages in the history, ready for the next turn. "
                                   "Try it on a real model: ollama-stream chat -m qwen3 \"Hello\"") + "\n")
    return 0


async def cmd_version(args: argparse.Namespace) -> int:
    print(f"ollama-stream {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ollama-stream", description="Stream from Ollama's native API.")
    parser.add_argument("--host", default=None, help="Ollama's address (default: OLLAMA_HOST or 127.0.0.1:11434)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"ollama-stream {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    chat = sub.add_parser("chat", help="stream a reply (one-shot with a prompt, else interactive)")
    chat.add_argument("prompt", nargs="?", help="the prompt; read from stdin when piped; none = interactive")
    chat.add_argument("-m", "--model", default=None,
                      help=f"the model (default: MODEL, else {DEFAULT_MODEL}); provider/model routes via LiteLLM")
    chat.add_argument("--think", choices=list(THINK_CHOICES), help="thinking: on, off or a level")
    chat.add_argument("--hide-thinking", action="store_true", help="do not print the thinking")
    chat.add_argument("--system", help="a system prompt")
    chat.add_argument("--format", choices=["json"], help="structured output")
    chat.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="a model option")
    chat.add_argument("--quiet", action="store_true", help="no summary line")
    chat.add_argument("--json", action="store_true", help="print each chunk as one NDJSON line")
    chat.set_defaults(run=cmd_chat)

    demo = sub.add_parser("demo", help="the whole flow against a built-in FakeOllama")
    demo.add_argument("--delay", type=float, default=0.02, help="seconds between streamed tokens")
    demo.set_defaults(run=cmd_demo)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(run=cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = asyncio.run(args.run(args))
        return code
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return EXIT_INTERRUPTED
    except OllamaError as exc:
        if args.debug:
            raise
        code = EXIT_ERROR
        if isinstance(exc, OllamaConnectionError):
            code = EXIT_CONNECTION
        elif isinstance(exc, ModelNotFoundError):
            code = EXIT_NOT_FOUND
        elif isinstance(exc, OllamaTimeoutError):
            code = EXIT_TIMEOUT
        sys.stderr.write(f"ollama-stream: {exc}\n")
        return code
    except (ValueError, TypeError) as exc:
        if args.debug:
            raise
        sys.stderr.write(f"ollama-stream: {exc}\n")
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
