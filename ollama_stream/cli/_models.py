"""The model commands, named as the `ollama` command names them: pull, push, list (ls, models),
ps, show, stop, rm, cp, create, version."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import (
    AsyncOllama,
    ModelNotFoundError,
    OllamaConnectionError,
    ProgressStream,
    RetryPolicy,
    Settings,
    __version__,
)
from . import _modelfile
from ._chat import CLI_RETRY
from ._render import (
    EXIT_NOT_FOUND,
    PullProgress,
    Style,
    _ago,
    _table,
    _until,
    human_bytes,
    render_show,
)


def _client(args: argparse.Namespace) -> AsyncOllama:
    return AsyncOllama(args.host or Settings.from_env().host, retry=CLI_RETRY)


async def _follow(stream: ProgressStream) -> None:
    progress = PullProgress(sys.stdout, Style(sys.stdout))
    async for line in stream:
        progress.line(line)


async def cmd_pull(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        await _follow(client.pull(args.model, insecure=args.insecure))
    return 0


async def cmd_push(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        await _follow(client.push(args.model, insecure=args.insecure))
    return 0


async def cmd_stop(args: argparse.Namespace) -> int:
    """Unload a model from memory now, as `ollama stop MODEL` does."""
    async with _client(args) as client:
        await client.unload(args.model)
    return 0


def _missing(exc: ModelNotFoundError, model: str, host: str) -> int:
    sys.stderr.write(f"ollama-stream: model {model!r} not found at {host} ({exc.error}); "
                     "`ollama-stream list` shows the models there\n")
    return EXIT_NOT_FOUND


async def cmd_rm(args: argparse.Namespace) -> int:
    """Delete each model named; one missing is said and the rest are still deleted (exit 4)."""
    code = 0
    async with _client(args) as client:
        for model in args.models:
            try:
                await client.delete(model)
            except ModelNotFoundError as exc:
                code = _missing(exc, model, client.host)
                continue
            print(f"deleted '{model}'")
    return code


async def cmd_cp(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        try:
            await client.copy(args.source, args.destination)
        except ModelNotFoundError as exc:
            return _missing(exc, args.source, client.host)
    print(f"copied '{args.source}' to '{args.destination}'")
    return 0


def create_plan(args: argparse.Namespace) -> _modelfile.CreatePlan:
    """What `create` sends: from a Modelfile (-f, else ./Modelfile) as `ollama create` reads it,
    or --from a model; --system and --quantize on top."""
    if args.from_ is not None:
        plan = _modelfile.CreatePlan({"from_": args.from_})
    elif args.file is None and not Path("Modelfile").is_file():
        raise ValueError("create needs a Modelfile: -f PATH (there is no ./Modelfile), or "
                         "--from MODEL to start from a model")
    else:
        plan = _modelfile.read(args.file or "Modelfile")
    if args.system is not None:
        plan.arguments["system"] = args.system
    if args.quantize is not None:
        plan.arguments["quantize"] = args.quantize
    return plan


async def cmd_create(args: argparse.Namespace) -> int:
    """Create the model; the local files the Modelfile names are uploaded as blobs first."""
    plan = create_plan(args)
    async with _client(args) as client:
        for group, paths in (("files", plan.files), ("adapters", plan.adapters)):
            if paths:
                digests = {}
                for path in paths:
                    print(f"copying file {path}")
                    digests[path.name] = await client.create_blob(path)
                plan.arguments[group] = digests
        await _follow(client.create(args.model, **plan.arguments))
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
    render_show(info, sys.stdout)
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
