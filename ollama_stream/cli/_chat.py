"""`chat` and `run` in one shot, what a chat is set up from (arguments, environment, stdin), the
model check and pull a session starts with, and `demo`."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from .. import (
    AsyncOllama,
    ChatChunk,
    Message,
    ModelNotFoundError,
    RetryPolicy,
    Settings,
    ShowResult,
    client_for,
)
from ._options import parse_options
from ._parser import DEFAULT_MODEL
from ._render import PullProgress, ReplyPrinter, Style, refused_on_loopback, render
from ._structured import format_of, printer_for

# The command's retry policy: the SDK's, except that a refused loopback connection fails at once.
CLI_RETRY = RetryPolicy(retry_if=refused_on_loopback)


def isatty(stream: TextIO | None) -> bool:
    return stream is not None and not stream.closed and stream.isatty()


def _keep_alive(text: str | None) -> float | str | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text  # a duration such as 5m, checked by the SDK


class ChatSetup:
    """What a chat needs, from the arguments and the environment (the arguments win)."""

    def __init__(self, args: argparse.Namespace) -> None:
        settings = Settings.from_env()
        hidden = args.hide_thinking or (settings.hide_thinking and not args.show_thinking)
        # thinking is shown on a terminal, and in a redirected stdout only when asked for
        self.hide = hidden or not (args.show_thinking or isatty(sys.stdout))
        self.think: bool | str | None = args.think if args.think is not None else settings.think
        self.options = parse_options(args.option)
        self.format: str | dict[str, Any] | None = format_of(args)
        self.keep_alive = _keep_alive(args.keepalive)
        self.verbose: bool = args.verbose
        # the summary line goes to stderr, and only to a terminal unless --verbose asks for it
        self.quiet: bool = args.quiet or not (args.verbose or isatty(sys.stderr))
        self.system: str | None = args.system
        self.model = args.model or settings.model or DEFAULT_MODEL
        self.host = args.host or settings.host
        self.client, self.name = client_for(self.model, host=self.host,
                                            provider=settings.provider, retry=CLI_RETRY)
        self.history: list[Message] = [Message("system", args.system)] if args.system else []

    @property
    def native(self) -> bool:
        return self.client.backend is None

    def request(self) -> dict[str, Any]:
        return {"think": self.think, "format": self.format, "options": self.options,
                "keep_alive": self.keep_alive}

    def printer(self, out: TextIO, style: Style, *, as_json: bool) -> ReplyPrinter:
        """How a reply is shown: as it streams, or with a format on a terminal as indented JSON
        once whole (`_structured`)."""
        printer = printer_for(self.format, out)
        return printer(out, style, hide_thinking=self.hide, quiet=self.quiet, as_json=as_json,
                       stats=sys.stderr, verbose=self.verbose)


def gather_prompt(words: list[str], stdin: TextIO | None) -> str | None:
    """The prompt as `ollama run` makes it: piped stdin first, then the words, joined by spaces; a
    `-` word is replaced by stdin's text instead. None when there is neither (a terminal, no
    words): the interactive session. An empty prompt is a ValueError."""
    dash = "-" in words
    piped = stdin is not None and not isatty(stdin)
    if not words and not piped:
        return None
    text = stdin.read() if stdin is not None and (dash or piped) else ""
    pieces = [text if word == "-" else word for word in words] if dash else (
        [text] if text else []) + words
    prompt = " ".join(pieces).strip()
    if not prompt:
        reasons = (["the words given are blank"] if [w for w in words if w != "-"] else []) + (
            ["stdin was empty"] if dash or piped else [])
        source = " and ".join(reasons)
        raise ValueError(f"nothing to send: {source}. Give the prompt as words (ollama-stream "
                         "chat \"Why is the sky blue?\") or pipe text in (echo ... | "
                         "ollama-stream chat -)")
    return prompt


async def ensure_model(setup: ChatSetup, *, ask: bool, insecure: bool) -> ShowResult | None:
    """The model's details, checked before anything is sent (so a session learns at its start that
    the server is down or the model missing). A missing model is pulled when `ask` (a terminal)
    and the person agrees; otherwise its ModelNotFoundError propagates. None for a LiteLLM model,
    which no Ollama server describes."""
    if not setup.native:
        return None
    async with AsyncOllama(setup.host, retry=CLI_RETRY) as client:
        try:
            info = await client.show(setup.name)
        except ModelNotFoundError:
            if not ask or not _agrees(f"model {setup.name!r} is not at {client.host}. "
                                      "Pull it now? [Y/n] "):
                raise
            progress = PullProgress(sys.stderr, Style(sys.stderr))
            async for line in client.pull(setup.name, insecure=insecure):
                progress.line(line)
            info = await client.show(setup.name)
    if setup.think and "thinking" not in info.capabilities:
        sys.stderr.write(f"warning: model {setup.name!r} does not support thinking output; "
                         "the server will refuse --think (leave it out, or --think false)\n")
    return info


def _agrees(question: str) -> bool:
    sys.stderr.write(question)
    sys.stderr.flush()
    try:
        answer = input().strip().lower()
    except EOFError:
        return False
    return answer in ("", "y", "yes")


async def cmd_chat(args: argparse.Namespace, prompt: str) -> int:
    """One reply to `prompt`, streamed to stdout."""
    setup = ChatSetup(args)
    if isatty(sys.stdin) and isatty(sys.stderr):  # a person is there to be asked about a pull
        await ensure_model(setup, ask=True, insecure=args.insecure)
    setup.history.append(Message("user", prompt))
    out = sys.stdout
    async with setup.client as client:
        stream = client.chat(setup.name, setup.history, **setup.request())
        print_reply = setup.printer(out, Style(out), as_json=args.json)
        async for chunk in stream:
            print_reply.chunk(chunk)
        print_reply.done(await stream.result())
    return 0


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
                                   "turn. Try it on a real model: ollama-stream run qwen3 "
                                   "\"Hello\"") + "\n")
    return 0
