"""`chat` (one-shot and interactive) and `demo`: the commands that stream replies."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from .. import (
    AsyncOllama,
    ChatChunk,
    Message,
    Ollama,
    OllamaError,
    Settings,
    client_for,
)
from ._render import ReplyPrinter, Style, describe, render
from ._structured import format_of, printer_for

DEFAULT_MODEL = "qwen3"
THINK_CHOICES: dict[str, bool | str] = {"on": True, "off": False, "low": "low", "medium": "medium",
                                        "high": "high", "max": "max"}


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
        self.format = format_of(args)
        self.printer = printer_for(self.format, sys.stdout)  # indented JSON on a terminal
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
                     as_json=args.json, printer=setup.printer)
    return 0


def interactive_chat(args: argparse.Namespace) -> int:
    """The interactive session, on the blocking client: input() keeps readline's line editing in the
    main thread, and Ctrl-C during a reply stops that reply (its connection is closed) and keeps the
    session."""
    with contextlib.suppress(ImportError):  # not on every platform
        import readline  # noqa: F401 - importing it gives input() line editing and history
    # Ctrl-C must stop a reply even when the shell started us with SIGINT ignored (a background
    # job, nohup): the session's own handling needs Python's default handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)
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
            print_reply = setup.printer(out, style, hide_thinking=setup.hide, quiet=args.quiet)
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


# -- the demo --------------------------------------------------------------------------------------


def get_weather(city: str) -> dict[str, Any]:
    """Get the current weather in a city.

    Args:
        city: The city's name.
    """
    return {"city": city, "temperature_c": 22, "sky": "clear"}


async def cmd_demo(args: argparse.Namespace) -> int:
    from ..testing import FakeOllama

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
