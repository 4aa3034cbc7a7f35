"""The command line: every subcommand, its options and an example, in the words of the `ollama`
command beside this SDK's own (`run`, `list`/`ls`, `rm`, `cp`, `push`, `create` next to `chat` and
`models`). `--host` and `--debug` are taken before the subcommand or after it; `--think` takes a
value only from its fixed set, so that `--think "hi"` means thinking on and the prompt "hi"."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from .. import __version__
from ._structured import add_format_schema

THINK_CHOICES: dict[str, bool | str] = {
    "true": True, "false": False, "on": True, "off": False,
    "low": "low", "medium": "medium", "high": "high", "max": "max"}
DEFAULT_MODEL = "qwen3"
_SERVERLESS = ("demo", "fake-server")  # commands that talk to no server of the user's


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)


def _think(value: str) -> bool | str:
    if value.lower() not in THINK_CHOICES:
        raise argparse.ArgumentTypeError(
            f"--think takes {'|'.join(THINK_CHOICES)} (or nothing, for on); got {value!r}")
    return THINK_CHOICES[value.lower()]


def normalize(argv: Sequence[str]) -> list[str]:
    """`--think` followed by anything but one of its values becomes `--think=true`, as `ollama run
    --think` has it; words after `--` are left alone."""
    out: list[str] = []
    args = list(argv)
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            out.extend(args[index - 1:])
            break
        if arg == "--think":
            if index < len(args) and args[index].lower() in THINK_CHOICES:
                arg = f"--think={args[index]}"
                index += 1
            else:
                arg = "--think=true"
        out.append(arg)
    return out


def _common(debug_only: bool = False) -> argparse.ArgumentParser:
    """--host and --debug for a subcommand; SUPPRESS keeps a value given before the subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection")
    if not debug_only:
        group.add_argument("--host", default=argparse.SUPPRESS, metavar="URL",
                           help="Ollama's address (default: OLLAMA_HOST or 127.0.0.1:11434)")
    group.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks on errors")
    return common


def _reply_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--think", type=_think, metavar="LEVEL",
                        help=f"thinking: {'|'.join(THINK_CHOICES)}; alone, on")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--hidethinking", "--hide-thinking", dest="hide_thinking",
                       action="store_true", help="do not print the thinking")
    shown.add_argument("--show-thinking", action="store_true",
                       help="print the thinking even when stdout is not a terminal")
    parser.add_argument("--system", help="a system prompt")
    parser.add_argument("--format", choices=["json"], help="structured output")
    add_format_schema(parser)
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a model option, checked against Ollama's (e.g. num_ctx=8192)")
    parser.add_argument("--keepalive", metavar="DURATION",
                        help="how long the model stays loaded (e.g. 5m, 1h, 0)")
    stats = parser.add_mutually_exclusive_group()
    stats.add_argument("--verbose", action="store_true",
                       help="print Ollama's timings after each reply (on stderr)")
    stats.add_argument("--quiet", action="store_true", help="no summary line")
    parser.add_argument("--json", action="store_true", help="print each chunk as one NDJSON line")
    parser.add_argument("--insecure", action="store_true",
                        help="allow an insecure registry when the model is pulled")
    parser.add_argument("--nowordwrap", action="store_true",
                        help="accepted as `ollama run` has it; replies are never wrapped here")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ollama-stream", formatter_class=_Formatter,
        description="Stream from Ollama's native API; the `ollama` command's words work too.",
        epilog="examples:\n  ollama-stream demo                   (no Ollama needed)\n"
               "  ollama-stream run qwen3 \"Why is the sky blue?\"\n"
               "  ollama-stream chat -m qwen3           (an interactive session)")
    parser.add_argument("--host", default=None, metavar="URL",
                        help="Ollama's address (default: OLLAMA_HOST or 127.0.0.1:11434)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"ollama-stream {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common, quiet_common = _common(), _common(debug_only=True)

    def add(name: str, help: str, example: str, *, aliases: Sequence[str] = (),
            serverless: bool = False, **kw: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, aliases=list(aliases), description=help,
                              epilog=f"example:\n  {example}", formatter_class=_Formatter,
                              parents=[quiet_common if serverless else common], **kw)

    chat = add("chat", "stream a reply: one-shot with a prompt or piped stdin, else a session",
               'ollama-stream chat -m qwen3 "Why is the sky blue?"   (or: chat qwen3 "...")',
               usage="%(prog)s [-m MODEL] [options] [PROMPT ...]  |  %(prog)s MODEL PROMPT ...")
    chat.add_argument("words", nargs="*", metavar="PROMPT",
                      help="the prompt (its words are joined; `-` reads stdin; piped stdin comes "
                           "first); with two or more words and no -m, the first is the model")
    chat.add_argument("-m", "--model", default=None,
                      help=f"the model (default: MODEL, else {DEFAULT_MODEL}); "
                           "provider/model routes via LiteLLM")
    _reply_options(chat)
    run = add("run", "run a model, as `ollama run` does (pulls it first, asking, when missing)",
              'ollama-stream run qwen3 "Why is the sky blue?"')
    run.add_argument("model", help="the model")
    run.add_argument("words", nargs="*", metavar="PROMPT",
                     help="the prompt (none: an interactive session)")
    _reply_options(run)

    demo = add("demo", "the whole flow against a built-in FakeOllama (no Ollama needed)",
               "ollama-stream demo --delay 0", serverless=True)
    demo.add_argument("--delay", type=float, default=0.02, help="seconds between streamed tokens")

    for name, verb in (("pull", "download"), ("push", "upload")):
        transfer = add(name, f"{verb} a model, with a progress bar",
                       f"ollama-stream {name} {'qwen3' if name == 'pull' else 'you/mymodel'}")
        transfer.add_argument("model")
        transfer.add_argument("--insecure", action="store_true", help="allow an insecure registry")

    add("list", "list the models on the server", "ollama-stream list", aliases=["ls", "models"])
    add("ps", "list the models loaded in memory", "ollama-stream ps")
    add("stop", "unload a model from memory now", "ollama-stream stop qwen3").add_argument("model")
    add("show", "a model's details", "ollama-stream show qwen3").add_argument("model")
    rm = add("rm", "remove models from the server", "ollama-stream rm mymodel")
    rm.add_argument("models", nargs="+", metavar="MODEL")
    cp = add("cp", "copy a model under a new name", "ollama-stream cp qwen3 my-qwen3")
    cp.add_argument("source")
    cp.add_argument("destination")
    create = add("create", "create a model from a Modelfile (or from another model)",
                 "ollama-stream create mymodel -f ./Modelfile")
    create.add_argument("model", help="the new model's name")
    source = create.add_mutually_exclusive_group()
    source.add_argument("-f", "--file", metavar="MODELFILE",
                        help="the Modelfile (default: ./Modelfile)")
    source.add_argument("--from", dest="from_", metavar="MODEL", help="the model to start from")
    create.add_argument("--system", help="a system prompt (with --from)")
    create.add_argument("-q", "--quantize", metavar="LEVEL", help="quantize, e.g. q4_K_M")
    add("version", "this SDK's and the server's versions", "ollama-stream version")

    fake = add("fake-server", "serve a FakeOllama until Ctrl-C, to try clients without Ollama",
               "ollama-stream fake-server --port 0   (then export the OLLAMA_HOST it prints)",
               serverless=True)
    fake.add_argument("--port", type=int, default=11434,
                      help="the port (default 11434, Ollama's; 0 = any free port)")
    fake.add_argument("--bind", default="127.0.0.1",
                      help="the address to listen on (default 127.0.0.1)")
    fake.add_argument("--model", action="append", metavar="NAME",
                      help="a model it knows (repeat it; default: the fake's usual ones)")
    fake.add_argument("--delay", type=float, default=0.02,
                      help="seconds between streamed tokens (default 0.02)")
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The arguments, with a prompt's words after options gathered (`chat -m x --think hi`), and
    the model positional of `chat MODEL PROMPT...` resolved."""
    parser = build_parser()
    args, extra = parser.parse_known_args(normalize(argv))
    command = {"ls": "list", "models": "list"}.get(args.command, args.command)
    args.command = command
    if command in ("chat", "run"):
        unknown = [word for word in extra if word.startswith("-") and word != "-"]
        if not unknown:
            args.words = [*args.words, *extra]
            extra = []
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.model_from_words = False
    if command == "chat" and args.model is None and len(args.words) >= 2:
        args.model, args.words = args.words[0], args.words[1:]
        args.model_from_words = True
    if command in _SERVERLESS and args.host is not None:
        parser.error(f"{command} runs its own FakeOllama and talks to no other server: leave "
                     "--host out (fake-server listens where --bind and --port say)")
    return args
