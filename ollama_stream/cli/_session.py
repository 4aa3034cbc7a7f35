"""The interactive session, as `ollama run` has it: `>>> ` prompts with line editing, triple
quotes for a message over several lines, slash commands (`/?` lists them; an unknown one is said
to be unknown, never sent to the model), Ctrl-C to stop a reply and, at an idle prompt, a hint on
how to leave.

It runs on the blocking client: input() keeps readline's line editing in the main thread, and
Ctrl-C during a reply stops that reply (its connection is closed) and keeps the session."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import TextIO

from .. import Message, Ollama, OllamaError
from ._chat import ChatSetup, ensure_model
from ._options import add_option
from ._parser import THINK_CHOICES
from ._render import Style, describe, render_show

HELP = """Available commands:
  /set            set session variables (/set alone lists them)
  /show           the model's details
  /think [LEVEL]  thinking on, or off|low|medium|high|max
  /clear          forget the conversation (a system prompt stays)
  /bye            leave (also /exit, Ctrl-D)
  /?, /help       this help

Use \"\"\" to begin a message over several lines, and \"\"\" to end it.
Ctrl-C stops a reply; Ctrl-D leaves.
"""

SET_HELP = """Available commands:
  /set parameter NAME VALUE  a model option (e.g. /set parameter num_ctx 8192)
  /set system TEXT           the system prompt
  /set think [LEVEL]         thinking on, or at a level
  /set nothink               thinking off
  /set format json           JSON output
  /set noformat              plain output
  /set verbose               Ollama's timings after each reply
  /set quiet                 no summary line after a reply
"""

LEAVE_HINT = "Use Ctrl + d or /bye to exit."


class Session:
    """One conversation: its settings, its history, and the commands that change them."""

    def __init__(self, args: argparse.Namespace, setup: ChatSetup, client: Ollama,
                 out: TextIO) -> None:
        self.args, self.setup, self.client, self.out = args, setup, client, out
        self.style = Style(out)
        self.pending: list[str] | None = None  # the lines so far of a message in triple quotes

    def say(self, text: str) -> None:
        self.out.write(text if text.endswith("\n") else text + "\n")
        self.out.flush()

    def read(self) -> str | None:
        """The next message to send, after running any commands typed; None to leave."""
        while True:
            prompt = "... " if self.pending is not None else self.style.bold(">>> ")
            try:
                line = input(prompt)
            except EOFError:
                self.say("")
                return None
            except KeyboardInterrupt:  # an idle prompt: the typing is dropped, the session stays
                self.pending = None
                self.say("\n" + LEAVE_HINT)
                continue
            if self.pending is not None:
                before, closed = line.removesuffix('"""'), line.endswith('"""')
                self.pending.append(before)
                if not closed:
                    continue
                message, self.pending = "\n".join(self.pending).strip(), None
            elif line.lstrip().startswith('"""'):
                rest = line.lstrip()[3:]
                if rest.endswith('"""'):
                    message = rest[:-3].strip()
                else:
                    self.pending = [rest]
                    continue
            else:
                message = line.strip()
                if message.startswith("/"):
                    if self.command(message):
                        return None
                    continue
            if message:
                return message

    def command(self, line: str) -> bool:
        """Run a slash command; True when it ends the session."""
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if word in ("/bye", "/exit", "/quit"):
            return True
        if word in ("/?", "/help"):
            self.say(SET_HELP if rest in ("set", "/set") else HELP)
        elif word == "/clear":
            self.setup.history = [m for m in self.setup.history if m.role == "system"]
            self.say(self.style.dim("History cleared."))
        elif word == "/think":
            self.think(rest or "on")
        elif word == "/set":
            self.set(rest)
        elif word == "/show":
            if not self.setup.native:
                self.say(f"/show needs an Ollama model; {self.setup.model} goes through LiteLLM")
            else:
                render_show(self.client.show(self.setup.name), self.out)
        else:
            self.say(f"Unknown command '{word}'. Type /? for help")
        return False

    def think(self, level: str) -> None:
        if level.lower() not in THINK_CHOICES:
            self.say(f"/think takes one of {', '.join(THINK_CHOICES)}")
            return
        self.setup.think = THINK_CHOICES[level.lower()]
        self.say(self.style.dim(f"Thinking: {level}"))

    def set(self, rest: str) -> None:
        what, _, value = rest.partition(" ")
        value = value.strip()
        setup = self.setup
        if what == "":
            self.say(SET_HELP)
        elif what == "think":
            self.think(value or "on")
        elif what == "nothink":
            self.think("off")
        elif what == "verbose":
            setup.verbose, setup.quiet = True, False
            self.say("Set 'verbose' mode.")
        elif what == "quiet":
            setup.verbose, setup.quiet = False, True
            self.say("Set 'quiet' mode.")
        elif what == "format" and value == "json":
            setup.format = "json"
            self.say("Set format to 'json' mode.")
        elif what == "noformat":
            setup.format = None
            self.say("Disabled format.")
        elif what == "system" and value:
            setup.history = [m for m in setup.history if m.role != "system"]
            setup.history.insert(0, Message("system", value))
            self.say("Set system message.")
        elif what == "parameter" and len(value.split(None, 1)) == 2:
            name, text = value.split(None, 1)
            options = dict(setup.options or {})
            try:
                add_option(options, name, text, where="/set parameter")
            except ValueError as exc:
                self.say(str(exc))
                return
            setup.options = options
            self.say(f"Set parameter '{name}' to '{text}'")
        else:
            self.say(f"Unknown command '/set {rest}'. Type /? set for help")

    def send(self, message: str) -> None:
        setup = self.setup
        setup.history.append(Message("user", message))
        print_reply = setup.printer(self.out, self.style, as_json=self.args.json)
        stream = self.client.chat(setup.name, setup.history, **setup.request())
        try:
            for chunk in stream:
                print_reply.chunk(chunk)
            result = stream.result()
        except KeyboardInterrupt:
            stream.close()  # closes the response: the server stops generating
            print_reply.done(None)
            self.say(self.style.dim("[stopped]"))
            setup.history.pop()  # the unanswered question leaves the history
            return
        except OllamaError as exc:
            print_reply.done(None)
            sys.stderr.write(f"ollama-stream: {describe(exc)}\n")
            setup.history.pop()
            return
        print_reply.done(result)
        setup.history.append(result.message)


def interactive_chat(args: argparse.Namespace) -> int:
    """The session: the server and the model are checked first (a missing model is offered for
    pulling), then one message after another until /bye or Ctrl-D."""
    with contextlib.suppress(ImportError):  # not on every platform
        import readline  # noqa: F401 - importing it gives input() line editing and history
    # Ctrl-C must stop a reply even when the shell started us with SIGINT ignored (a background
    # job, nohup): the session's own handling needs Python's default handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    setup = ChatSetup(args)
    asyncio.run(ensure_model(setup, ask=True, insecure=args.insecure))
    out = sys.stdout
    # setup.host, not the client's resolved URL: credentials in it stay for basic auth
    with Ollama(setup.host, backend=setup.client.backend, retry=setup.client.retry) as client:
        session = Session(args, setup, client, out)
        session.say(session.style.dim(
            f"Chatting with {setup.model} at {client.host}. /? for help, /bye to leave, "
            '""" for several lines, Ctrl-C to stop a reply.'))
        while (message := session.read()) is not None:
            session.send(message)
    return 0
