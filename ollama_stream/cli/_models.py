"""The model commands: pull, models, ps, show, stop, version."""

from __future__ import annotations

import argparse
import sys

from .. import (
    AsyncOllama,
    OllamaConnectionError,
    RetryPolicy,
    Settings,
    __version__,
)
from ._render import PullProgress, Style, _ago, _table, _until, human_bytes


def _client(args: argparse.Namespace) -> AsyncOllama:
    return AsyncOllama(args.host or Settings.from_env().host)


async def cmd_pull(args: argparse.Namespace) -> int:
    progress = PullProgress(sys.stdout, Style(sys.stdout))
    async with _client(args) as client:
        async for line in client.pull(args.model, insecure=args.insecure):
            progress.line(line)
    return 0


async def cmd_stop(args: argparse.Namespace) -> int:
    """Unload a model from memory now, as `ollama stop MODEL` does."""
    async with _client(args) as client:
        await client.unload(args.model)
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
    out = sys.stdout
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
