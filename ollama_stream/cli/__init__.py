"""The `ollama-stream` command (also `python -m ollama_stream`), built on the public API only.

    ollama-stream demo                      the whole flow against a built-in FakeOllama, no Ollama
                                            needed
    ollama-stream run qwen3 "Hello"         one reply from the Ollama at OLLAMA_HOST (also:
                                            chat -m qwen3 "Hello", chat qwen3 "Hello")
    ollama-stream run qwen3                 an interactive session (/? lists its commands)
    ollama-stream pull | push | show | stop MODEL,  rm MODEL..., cp SOURCE DESTINATION,
    ollama-stream create MODEL -f Modelfile, list (ls, models), ps, version
    ollama-stream fake-server [--port N]    a FakeOllama standing in for Ollama until Ctrl-C

Every error is one line on stderr and an exit code (docs/cli.md has the table); a closed stdout
(`| head`) ends the command quietly with 141, as a shell reports a command ended by SIGPIPE.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from .. import ModelNotFoundError, OllamaError
from ._chat import cmd_chat, cmd_demo, gather_prompt
from ._fake import serve_fake
from ._models import (
    cmd_cp,
    cmd_create,
    cmd_models,
    cmd_ps,
    cmd_pull,
    cmd_push,
    cmd_rm,
    cmd_show,
    cmd_stop,
    cmd_version,
)
from ._parser import build_parser, parse
from ._render import EXIT_INTERRUPTED, EXIT_PIPE, EXIT_USAGE, describe, exit_code
from ._session import interactive_chat

__all__ = ["build_parser", "main", "parse"]

COMMANDS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "demo": cmd_demo, "pull": cmd_pull, "push": cmd_push, "list": cmd_models, "ps": cmd_ps,
    "stop": cmd_stop, "show": cmd_show, "rm": cmd_rm, "cp": cmd_cp, "create": cmd_create,
    "version": cmd_version,
}


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "fake-server":
        return serve_fake(args)  # blocks in this thread; the server has a thread of its own
    if args.command in ("chat", "run"):
        prompt = gather_prompt(args.words, sys.stdin)
        if prompt is None:
            return interactive_chat(args)
        return asyncio.run(cmd_chat(args, prompt))
    return asyncio.run(COMMANDS[args.command](args))


def _stdout_gone() -> int:
    """The reader of stdout went away (`| head`): nothing more is written, at exit either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.command is None:  # bare `ollama-stream`
        build_parser().print_help()
        return 0
    try:
        return _dispatch(args)
    except BrokenPipeError:
        return _stdout_gone()
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return EXIT_INTERRUPTED
    except OllamaError as exc:
        if args.debug:
            raise
        words = args.words if getattr(args, "model_from_words", False) else None
        if not isinstance(exc, ModelNotFoundError) or exc.model != args.model:
            words = None
        sys.stderr.write(f"ollama-stream: {describe(exc, words=words)}\n")
        return exit_code(exc)
    except (ValueError, TypeError, ImportError) as exc:
        if args.debug:
            raise
        sys.stderr.write(f"ollama-stream: {exc}\n")
        return EXIT_USAGE
