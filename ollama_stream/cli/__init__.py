"""The `ollama-stream` command (also `python -m ollama_stream`), built on the public API only.

    ollama-stream demo                      the whole flow against a built-in FakeOllama, no Ollama
                                            needed
    ollama-stream chat -m qwen3 "Hello"     stream one reply from the Ollama at OLLAMA_HOST
    ollama-stream chat -m qwen3             an interactive session (/exit, /clear, /think LEVEL;
                                            Ctrl-C stops a reply)
    ollama-stream pull MODEL                download a model with a live progress bar
    ollama-stream models | ps | show MODEL | stop MODEL | version
    ollama-stream fake-server [--port N]    a FakeOllama standing in for Ollama until Ctrl-C
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from .. import OllamaError, __version__
from ._chat import DEFAULT_MODEL, THINK_CHOICES, cmd_chat, cmd_demo, interactive_chat
from ._fake import add_fake_server
from ._models import cmd_models, cmd_ps, cmd_pull, cmd_show, cmd_stop, cmd_version
from ._render import EXIT_INTERRUPTED, EXIT_USAGE, describe, exit_code
from ._structured import add_format_schema


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
    add_format_schema(chat)
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
    stop = sub.add_parser("stop", help="unload a model from memory now")
    stop.add_argument("model")
    stop.set_defaults(run=cmd_stop)
    show = sub.add_parser("show", help="a model's details")
    show.add_argument("model")
    show.set_defaults(run=cmd_show)
    sub.add_parser("version",
                   help="this SDK's and the server's versions").set_defaults(run=cmd_version)
    add_fake_server(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.run is cmd_chat and args.prompt is None and sys.stdin.isatty():
            return interactive_chat(args)
        if getattr(args, "blocking", False):  # a command that runs no event loop of its own
            blocking: int = args.run(args)
            return blocking
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
