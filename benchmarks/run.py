"""Run every benchmark the same way and write docs/benchmarks.md.

    python -m benchmarks.run            # the full run (the page says how long it took)
    python -m benchmarks.run --quick    # fewer streams and rounds, for a look
    python -m benchmarks.run --smoke    # seconds: every part of the harness once, tiny

The load server and every client run in processes of their own. Two measures of CPU per chunk:

- Instructions (the headline): each client runs under valgrind's callgrind, one stream at a time,
  for 1 and for N streams, instrumented over the streaming phase only; the difference divided by
  the chunks of the N - 1 extra streams is the cost of a chunk, imports and setup cancelled out.
  Instruction counts hardly move with the load of a shared machine. Without valgrind the page
  says so and keeps to CPU time.
- CPU time, interleaved: each round runs every client in turn, so a change of load hits them all
  alike, and a ratio is the median of the per-round ratios.

Bytecode caching is on for the child processes (cold start would otherwise measure compiling).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import pickle
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from benchmarks import report
from benchmarks.client import Callgrind
from benchmarks.structured import objects_cost

ROOT = Path(__file__).resolve().parent.parent
CHUNKS = 2000
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
ENV["PYTHONPATH"] = str(ROOT)
PUBLIC = "ollama_stream (public readany)"
RESUME = "ollama_stream resume=True"  # what a resumable stream costs while nothing fails
# label -> (client in benchmarks.client, extra environment)
CLIENTS: dict[str, tuple[str, dict[str, str]]] = {
    "floor": ("floor", {}),
    "ollama_stream": ("ollama_stream", {}),
    PUBLIC: ("ollama_stream", {"OLLAMA_STREAM_PUBLIC_READS": "1"}),
    RESUME: ("ollama_stream resume=True", {}),
    "Ollama (blocking)": ("Ollama (blocking)", {}),
    "ollama-python": ("ollama-python", {}),
    # LiteLLM's pool holds 500 connections per host unless told: as many as the others' pools
    "litellm": ("litellm", {"AIOHTTP_CONNECTOR_LIMIT": "2000",
                            "AIOHTTP_CONNECTOR_LIMIT_PER_HOST": "2000"}),
}
BATCHED, LOCKSTEP = "batched", "one line per read"


def has(module: str) -> bool:
    try:
        importlib.metadata.version(module)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(mode: str, chunks: int = CHUNKS) -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "benchmarks.server", str(port), str(chunks),
                               mode], env=ENV, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.kill()
        server.wait()


def server_stats(url: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(url + "/stats", timeout=10) as answer:
        stats: dict[str, Any] = orjson.loads(answer.read())
        return stats


def run_client(label: str, url: str, streams: int, concurrency: int, chunks: int = CHUNKS,
               *extra: str, wrapper: tuple[str, ...] = (),
               env: dict[str, str] | None = None) -> dict[str, Any]:
    name, own = CLIENTS[label]
    out = subprocess.run([*wrapper, sys.executable, "-m", "benchmarks.client", name, url,
                          str(streams), str(concurrency), str(chunks), *extra],
                         env={**ENV, **own, **(env or {})}, capture_output=True, text=True,
                         cwd=ROOT, timeout=3600)
    if out.returncode:
        raise RuntimeError(f"{label} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = orjson.loads(out.stdout.strip().splitlines()[-1])
    return result


# -- instructions ----------------------------------------------------------------------------------

def callgrind_run(label: str, url: str, streams: int, chunks: int, out: Path) -> int:
    """Instructions of one client process's streaming phase (the whole process where client
    requests cannot be made on this machine: the difference of two runs cancels the rest)."""
    toggle = Callgrind().usable
    wrapper = ("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
               f"--instr-atstart={'no' if toggle else 'yes'}")
    # PYTHONHASHSEED: the same dict layouts in every run
    result = run_client(label, url, streams, 1, chunks, wrapper=wrapper,
                        env={"PYTHONHASHSEED": "0"})
    assert result["callgrind_toggled"] == toggle, result
    for line in out.read_text().splitlines():
        if line.startswith(("totals:", "summary:")) and int(line.split()[1]):
            return int(line.split()[1])
    raise RuntimeError(f"no instruction count in {out}")


def instructions(labels: list[str], mode: str, extra_streams: dict[str, int], chunks: int,
                 keep: Path) -> dict[str, dict[str, Any]]:
    """Instructions per chunk of each client in one read pattern: (I(N) - I(1)) / ((N - 1) x
    chunks), one stream at a time."""
    results = {}
    with serving("batch" if mode == BATCHED else "lockstep", chunks) as url:
        for label in labels:
            n = 1 + extra_streams[label]
            slug = label.replace(" ", "_").replace("(", "").replace(")", "")
            files = keep / f"{mode[:5]}.{slug}.1", keep / f"{mode[:5]}.{slug}.{n}"
            one, many = (callgrind_run(label, url, count, chunks, file)
                         for count, file in zip((1, n), files, strict=True))
            results[label] = {"per_chunk": (many - one) / ((n - 1) * chunks), "streams": n,
                              "files": files}
            print(f"instructions {mode:18} {label:32} {results[label]['per_chunk']:10.0f}",
                  flush=True)
        stats = server_stats(url)
    for row in results.values():
        row["server"] = stats
    return results


def profile(files_n: tuple[Path, Path], chunks: int, streams: int) -> dict[str, float]:
    """Self instructions per chunk of each C function (callgrind_annotate), N streams minus 1."""
    def costs(path: Path) -> dict[str, int]:
        out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100",
                              str(path)], capture_output=True, text=True, check=True).stdout
        found: dict[str, int] = {}
        for line in out.splitlines():
            parts = line.split(None, 2)
            if len(parts) == 3 and parts[0].replace(",", "").isdigit() and ":" in parts[2]:
                where, _, rest = parts[2].partition(" [")
                function = where.rsplit(":", 1)[1].split("'")[0]
                if function.startswith("0x"):  # no symbols: name the library instead
                    function = f"{Path(rest.rstrip(']')).name.split('.')[0]} (no symbols)"
                found[function] = found.get(function, 0) + int(parts[0].replace(",", ""))
        return found

    one, many = (costs(path) for path in files_n)
    per = (streams - 1) * chunks
    return {name: (cost - one.get(name, 0)) / per for name, cost in many.items()}


# -- CPU time, interleaved -------------------------------------------------------------------------

def timed(scenarios: list[tuple[str, str, int, int, int]], labels: list[str],
          ) -> dict[tuple[str, str], dict[str, Any]]:
    """Every round runs every client in turn; a ratio is the median of the per-round ratios."""
    results: dict[tuple[str, str], dict[str, Any]] = {}
    for scenario, mode, streams, concurrency, rounds in scenarios:
        here = [label for label in labels
                if not (label == "Ollama (blocking)" and concurrency > 100)  # a thread per stream
                and not (label == "litellm" and concurrency > 10)]  # ~1 ms per chunk
        runs: dict[str, list[dict[str, Any]]] = {label: [] for label in here}
        with serving(mode) as url:
            for _ in range(rounds):
                for label in here:
                    count = max(1, streams // 10) if label == "litellm" else streams
                    run = run_client(label, url, count, concurrency)
                    run["streams"] = count
                    runs[label].append(run)
        for label in here:
            cpu = [r["cpu_us_per_chunk"] for r in runs[label]]
            ratios = [r["cpu_us_per_chunk"] / f["cpu_us_per_chunk"]
                      for r, f in zip(runs[label], runs["floor"], strict=True)]
            results[(scenario, label)] = {
                "cpu": statistics.median(cpu), "x_floor": statistics.median(ratios),
                "wall": statistics.median(r["wall_s"] for r in runs[label]),
                "rss": statistics.median(r["peak_rss_kib"] for r in runs[label]),
                "streams": runs[label][0]["streams"], "concurrency": concurrency,
                "rounds": rounds, "runs": runs[label]}
            print(f"time {scenario:34} {label:32} {results[(scenario, label)]['cpu']:8.2f} us/chunk"
                  f" {results[(scenario, label)]['x_floor']:5.2f}x", flush=True)
    return results


def idle_memory(labels: list[str], streams: int, rounds: int) -> dict[str, dict[str, float]]:
    """KiB of RSS per open stream at rest (its first chunk read), `streams` open at once."""
    runs: dict[str, list[float]] = {label: [] for label in labels}
    with serving("idle") as url:
        for _ in range(rounds):
            for label in labels:
                runs[label].append(run_client(label, url, streams, streams, CHUNKS,
                                              "--idle")["kib_per_idle_stream"])
    floor = runs["floor"]
    return {label: {"kib": statistics.median(values),
                    "x_floor": statistics.median(v / f for v, f in zip(values, floor, strict=True))}
            for label, values in runs.items()}


# -- cold start and import -------------------------------------------------------------------------

COLD = {
    "ollama_stream": "from ollama_stream import AsyncOllama\nimport asyncio\n"
                     "async def main():\n    async with AsyncOllama(URL) as c:\n"
                     "        async for ch in c.chat('qwen3', "
                     "[{'role': 'user', 'content': 'hi'}]):\n"
                     "            print(ch.thinking or ch.content, flush=True); return\n"
                     "asyncio.run(main())",
    "ollama-python": "from ollama import AsyncClient\nimport asyncio\n"
                     "async def main():\n"
                     "    async for p in await AsyncClient(host=URL).chat(model='qwen3', "
                     "messages=[{'role': 'user', 'content': 'hi'}], stream=True):\n"
                     "        print(p.message.thinking or p.message.content, flush=True); return\n"
                     "asyncio.run(main())",
    "floor": "import aiohttp, orjson, asyncio\n"
             "async def main():\n    async with aiohttp.ClientSession() as s:\n"
             "        async with s.post(URL + '/api/chat', data=b'{}') as r:\n"
             "            async for data in r.content.iter_any():\n"
             "                print(orjson.loads(data.split(b'\\n')[0])['message'], "
             "flush=True); return\n"
             "asyncio.run(main())",
    "litellm": "import asyncio, litellm\n"
               "async def main():\n"
               "    r = await litellm.acompletion(model='ollama_chat/qwen3', api_base=URL, "
               "messages=[{'role': 'user', 'content': 'hi'}], stream=True)\n"
               "    async for p in r:\n        print(p, flush=True); return\nasyncio.run(main())",
}


def cold_start(names: list[str], url: str, repeats: int) -> dict[str, float]:
    """Seconds from process start to the first chunk printed (median; rounds interleaved)."""
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats + 1):  # the first round warms the bytecode cache and is dropped
        for name in names:
            started = time.perf_counter()
            child = subprocess.Popen([sys.executable, "-c", f"URL = {url!r}\n" + COLD[name]],
                                     env=ENV, stdout=subprocess.PIPE, text=True, cwd=ROOT)
            assert child.stdout is not None
            child.stdout.readline()
            if round_:
                times[name].append(time.perf_counter() - started)
            child.kill()
            child.wait()
    return {name: statistics.median(values) for name, values in times.items()}


def import_time(statement: str, repeats: int) -> float:
    """Seconds a fresh interpreter takes to run `statement`, minus an empty interpreter (median)."""
    def once(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=ENV, check=True, cwd=ROOT)
        return time.perf_counter() - started

    once(statement)
    return statistics.median(once(statement) - once("pass") for _ in range(repeats))


def import_added(statement: str, baseline: str, repeats: int) -> float:
    """Seconds of import work `statement` adds over `baseline`: the self time (-X importtime) of
    every module the first imports and the second does not (median). Far steadier than timing
    whole interpreters."""
    def modules(code: str) -> dict[str, int]:
        out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=ENV,
                             capture_output=True, text=True, check=True, cwd=ROOT).stderr
        found = {}
        for line in out.splitlines():
            if line.startswith("import time:") and "|" in line and "self [us]" not in line:
                self_us, _, name = line[len("import time:"):].split("|")
                found[name.strip()] = int(self_us)
        return found

    modules(statement)
    base = set(modules(baseline))
    return statistics.median(sum(us for name, us in modules(statement).items() if name not in base)
                             for _ in range(repeats)) / 1e6


# -- the decoder alone -----------------------------------------------------------------------------

def decoder_ratio(repeats: int) -> dict[str, float]:
    """The read loop's decoding (`NDJSONDecoder.split`, then orjson.loads line by line) against a
    bare split + loads loop over the same lines, the whole reply at once and one line per read
    (best of interleaved rounds)."""
    from benchmarks.server import reply_lines
    from ollama_stream.protocol import NDJSONDecoder

    lines = reply_lines(CHUNKS)
    data = b"".join(lines)
    loads = orjson.loads

    def bare_whole() -> None:
        for line in data.split(b"\n"):
            if line:
                loads(line)

    def ours_whole() -> None:
        for line in NDJSONDecoder().split(data):
            loads(line)

    def bare_lines() -> None:
        for line in lines:
            loads(line)

    def ours_lines() -> None:
        split = NDJSONDecoder().split
        for data in lines:
            for line in split(data):
                loads(line)

    functions = {"bare_whole": bare_whole, "ours_whole": ours_whole, "bare_lines": bare_lines,
                 "ours_lines": ours_lines}
    best = dict.fromkeys(functions, float("inf"))
    # interleaved, so a noisy moment hits every variant alike; the best of each
    for _ in range(repeats):
        for name, fn in functions.items():
            best[name] = min(best[name], timeit.timeit(fn, number=5))
    results = {name: seconds / 5 / len(lines) * 1e6 for name, seconds in best.items()}
    results["ratio_whole"] = results["ours_whole"] / results["bare_whole"]
    results["ratio_lines"] = results["ours_lines"] / results["bare_lines"]
    return results


# -- the run ---------------------------------------------------------------------------------------

# What each size of run does: rounds, how much smaller the streams are, how many extra streams each
# client runs under callgrind (fast clients, ollama-python, LiteLLM), and the reply of those runs.
PLANS: dict[str, dict[str, Any]] = {
    "full": {"rounds": 5, "scale": 1, "extra": (10, 4, 1), "lockstep_extra": (4, 2),
             "cg_chunks": CHUNKS, "memory_rounds": 3, "repeats": 7, "decoder": 40},
    "quick": {"rounds": 2, "scale": 5, "extra": (2, 1, 1), "lockstep_extra": (2, 1),
              "cg_chunks": CHUNKS, "memory_rounds": 1, "repeats": 3, "decoder": 10},
    "smoke": {"rounds": 1, "scale": 50, "extra": (1, 1, 1), "lockstep_extra": (1, 1),
              "cg_chunks": 100, "memory_rounds": 1, "repeats": 1, "decoder": 1},
}
FAST = ("floor", "ollama_stream", PUBLIC, "Ollama (blocking)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer streams and rounds")
    size.add_argument("--smoke", action="store_true", help="every part once, tiny (for CI)")
    parser.add_argument("--no-valgrind", action="store_true", help="skip the instruction counts")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--facts", help="also save the run's facts here, for `python -m "
                        "benchmarks.report FACTS OUT` to render the page again")
    args = parser.parse_args()
    started = time.perf_counter()
    kind = "smoke" if args.smoke else "quick" if args.quick else "full"
    plan = PLANS[kind]
    rounds, scale = plan["rounds"], plan["scale"]
    labels = [label for label in CLIENTS
              if label != "litellm" or (has("litellm") and kind != "smoke")]
    valgrind = shutil.which("valgrind") if not args.no_valgrind else None
    scenarios = [  # name, server mode, streams, concurrency, rounds
        (f"{BATCHED}, concurrency 1", "batch", max(2, 40 // scale), 1, rounds),
        (f"{LOCKSTEP}, concurrency 1", "lockstep", max(1, 5 // scale), 1, rounds),
        ("concurrency 10", "flush", max(10, 40 // scale), 10, rounds),
        ("concurrency 100", "flush", max(100, 200 // scale), 100, max(1, min(rounds, 3))),
        ("1,000 streams", "flush", 1000 // scale, 1000 // scale, 1),
    ]
    if kind == "smoke":
        scenarios = scenarios[:2]
    counts: dict[str, dict[str, dict[str, Any]]] = {}
    profiles: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="callgrind.") as keep:
        if valgrind:
            fast, slow, litellm = plan["extra"]
            for mode in (BATCHED, LOCKSTEP):
                if mode == LOCKSTEP:
                    fast, slow = plan["lockstep_extra"]
                here = [label for label in labels
                        if label not in ("litellm", RESUME) or mode == BATCHED]
                if kind == "smoke":
                    here = ["floor", "ollama_stream"] if mode == BATCHED else []
                extra = {label: fast if label in FAST else litellm if label == "litellm" else slow
                         for label in here}
                if here:
                    counts[mode] = instructions(here, mode, extra, plan["cg_chunks"], Path(keep))
                profiles[mode] = {
                    label: profile(counts[mode][label]["files"], plan["cg_chunks"],
                                   counts[mode][label]["streams"])
                    for label in FAST if label in counts.get(mode, {})}
        results = timed(scenarios, labels)
    memory_labels = labels if kind != "smoke" else ["floor", "ollama_stream"]
    memory = idle_memory(memory_labels, 1000 // scale, plan["memory_rounds"])
    names = [n for n in ("floor", "ollama_stream", "ollama-python", "litellm") if n in labels]
    with serving("flush") as url:
        cold = cold_start(names, url, max(1, rounds))
    repeats = plan["repeats"]
    imports = {
        "aiohttp + orjson": import_time("import aiohttp, orjson", repeats),
        "ollama_stream": import_time("import ollama_stream", repeats),
        "ollama (ollama-python)": import_time("import ollama", repeats),
    }
    if "litellm" in labels:
        imports["litellm"] = import_time("import litellm", min(repeats, 3))
    added = import_added("import ollama_stream", "import aiohttp, orjson", repeats)
    decoder = decoder_ratio(plan["decoder"])
    steps = subprocess.run([sys.executable, "-m", "benchmarks.profile_hot_path",
                            str(max(1, 25 // scale))], env=ENV, capture_output=True, text=True,
                           check=True, cwd=ROOT).stdout
    structured = objects_cost(2 if kind != "full" else 7)
    facts = report.Facts(
        kind=kind, minutes=(time.perf_counter() - started) / 60, machine=machine(),
        versions=versions(), valgrind=valgrind_version() if valgrind else None,
        labels=labels, counts=counts, profiles=profiles, timed=results, scenarios=scenarios,
        memory=memory, memory_streams=1000 // scale, cold=cold, imports=imports, added=added,
        decoder=decoder, steps=steps, chunks=CHUNKS, cg_chunks=plan["cg_chunks"],
        structured=structured)
    if args.facts:
        Path(args.facts).write_bytes(pickle.dumps(facts))
    Path(args.out).write_text(report.render(facts))
    print(f"wrote {args.out} in {facts.minutes:.1f} minutes")


def valgrind_version() -> str:
    return subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip()


def versions() -> str:
    names = ["aiohttp", "orjson", "ollama", "httpx", "pydantic", "litellm"]
    found = []
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found.append(f"{name} {importlib.metadata.version(name)}")
    return ", ".join(found)


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({model or platform.processor()}), "
            f"Python {platform.python_version()}")


if __name__ == "__main__":
    main()
