"""docs/benchmarks.md from the facts of one `python -m benchmarks.run`: every figure on the page
comes from that run; nothing is typed by hand, and a target is judged by the figures beside it."""

from __future__ import annotations

import importlib.metadata
import statistics
from dataclasses import dataclass
from typing import Any

from benchmarks.structured import report_lines, target_row

PUBLIC = "ollama_stream (public readany)"
BLOCKING = "Ollama (blocking)"
BATCHED, LOCKSTEP = "batched", "one line per read"


@dataclass
class Facts:
    kind: str
    minutes: float
    machine: str
    versions: str
    valgrind: str | None
    labels: list[str]
    counts: dict[str, dict[str, dict[str, Any]]]  # pattern -> client -> per_chunk, streams, ...
    profiles: dict[str, dict[str, dict[str, float]]]  # pattern -> client -> function -> Ir/chunk
    timed: dict[tuple[str, str], dict[str, Any]]
    scenarios: list[tuple[str, str, int, int, int]]
    memory: dict[str, dict[str, float]]
    memory_streams: int
    cold: dict[str, float]
    imports: dict[str, float]
    added: float
    decoder: dict[str, float]
    steps: str
    chunks: int
    cg_chunks: int
    structured: dict[str, Any] | None = None  # benchmarks.structured.objects_cost()


def render(facts: Facts) -> str:
    command = "python -m benchmarks.run" + {"full": "", "quick": " --quick",
                                            "smoke": " --smoke"}[facts.kind]
    reduced = ("" if facts.kind == "full" else " A reduced run, with fewer streams and rounds: "
               "its figures are rougher than a full run's.")
    lines = ["# Benchmarks", "",
             f"Produced by `{command}` in **{facts.minutes:.0f} minutes**; every figure below is "
             f"its output, nothing here is typed by hand.{reduced}", "",
             f"Machine: {facts.machine}. Versions: ollama_stream "
             f"{importlib.metadata.version('ollama-stream')}, {facts.versions}"
             + (f", {facts.valgrind}" if facts.valgrind else "") + ". The machine is shared: "
             "instruction counts are the headline, since they hardly move with its load; times "
             "are medians of interleaved rounds.", "",
             f"Every client streams the same `/api/chat` replies of {facts.chunks:,} NDJSON lines "
             "(a tenth thinking, then content, a tool call, a final chunk with metrics), one HTTP "
             "chunk per line, from a load server in its own process, and checks what it "
             "accumulated. The *floor* is raw aiohttp + orjson through aiohttp's public API doing "
             "the same work: it splits lines, decodes each, accumulates content, thinking and tool "
             "calls, and finds `done`. `ollama_stream` drains aiohttp's reader buffer directly "
             f"(the guarded fast path, on for this aiohttp); `{PUBLIC}` is the same client with "
             "`OLLAMA_STREAM_PUBLIC_READS=1`, reading through `readany()` only. `Ollama "
             "(blocking)` is the blocking client, one thread per concurrent stream.", ""]
    lines += _instructions(facts)
    lines += _times(facts)
    lines += _memory(facts)
    lines += _cold(facts)
    lines += _decoder(facts)
    if facts.structured is not None:
        lines += report_lines(facts.structured)
    lines += _targets(facts)
    lines += _profile(facts)
    return "\n".join(lines) + "\n"


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _instructions(facts: Facts) -> list[str]:
    lines = ["## Instructions per chunk", ""]
    if not facts.counts:
        return [*lines, "valgrind was not found on this machine (or `--no-valgrind` was given), "
                "so no instructions were counted: the targets below are judged on CPU time "
                "instead, which moves with the load of the machine. Install valgrind "
                "(`apt-get install valgrind`) for the headline figures.", ""]
    batched, flush = facts.counts.get(BATCHED, {}), facts.counts.get(LOCKSTEP, {})
    lines += ["Each client under callgrind, one stream at a time, instrumented over its streaming "
              "phase only: (instructions for N streams - for 1 stream) / ((N - 1) x "
              f"{facts.cg_chunks:,} chunks), so imports, setup and the warm-up cancel out. "
              "*Batched*: the server writes each reply whole, so a read brings many lines. *One "
              "line per read*: the server writes each line only once the client has read the one "
              "before (it asks the kernel for the client socket's unread bytes), as a slow Ollama "
              "flushing tokens gives every client, at the client's own pace.", "",
              "| client | batched: instructions / chunk | x floor | one line per read: "
              "instructions / chunk | x floor |", "|---|---|---|---|---|"]
    for label in facts.labels:
        row = []
        for counts in (batched, flush):
            mine, floor = counts.get(label), counts.get("floor")
            if mine is None:
                row += ["not measured", ""]
                continue
            ratio = mine["per_chunk"] / floor["per_chunk"] if floor else None
            row += [f"{mine['per_chunk']:,.0f}", _ratio(ratio)]
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    lines.append("")
    notes = []
    for pattern, counts in ((BATCHED, batched), (LOCKSTEP, flush)):
        if counts:
            runs = ", ".join(f"{label} {row['streams']}" for label, row in counts.items())
            notes.append(f"N for {pattern}: {runs}")
    stats = next(iter(flush.values()))["server"] if flush else None
    if stats is not None:
        notes.append(
            f"one line per read: the server wrote {stats['lines']:,} lines, each once the client "
            f"had read every byte before it, and {stats['waited']:,} of them had to wait for that "
            "read" if stats["lockstep"] else
            "one line per read: the kernel could not be asked for the client's unread bytes "
            "(no sock_diag here), so lines were paced 2 ms apart instead, and a read may have "
            "brought more than one")
    if "litellm" in facts.labels and "litellm" not in flush:
        notes.append("LiteLLM is counted batched only: at two orders of magnitude above the "
                     "floor per chunk, per-read costs do not show in it, and a line-per-read run "
                     "of it under callgrind would take most of an hour")
    return [*lines, "Runs: " + "; ".join(notes) + ".", ""]


def _times(facts: Facts) -> list[str]:
    lines = ["## CPU time per chunk", "",
             "The client process's user+sys time over its streaming phase, divided by the lines "
             "received: the median of the rounds, each round running every client in turn; *x "
             "floor* and *x ollama-python* are the medians of the per-round ratios. One line per "
             "read, the time includes the kernel's work of waking the client for each line, which "
             "every client pays alike (and the blocking client twice: its loop thread, then the "
             "reader's thread). The concurrency runs use a server that writes each line as soon "
             "as it can, a turn of its loop between lines: there a read brings one line or "
             "several.", ""]
    for scenario, _, _, _, _ in facts.scenarios:
        present = [(label, facts.timed[(scenario, label)]) for label in facts.labels
                   if (scenario, label) in facts.timed]
        if not present:
            continue
        reference = facts.timed.get((scenario, "ollama-python"))
        rounds = present[0][1]["rounds"]
        lines += [f"### {scenario}" + (f" ({rounds} rounds)" if rounds > 1 else " (one round)"),
                  "", "| client | streams | CPU µs / chunk | x floor | x ollama-python | wall s "
                  "| peak RSS MiB |", "|---|---|---|---|---|---|---|"]
        for label, row in present:
            vs_ref = _ratio(median_ratio(row["runs"], reference["runs"])) if reference else ""
            lines.append(f"| {label} | {row['streams']} | {row['cpu']:.2f} | "
                         f"{row['x_floor']:.2f} | {vs_ref} | {row['wall']:.2f} | "
                         f"{row['rss'] / 1024:.0f} |")
        lines.append("")
    return lines


def median_ratio(runs: list[dict[str, Any]], reference: list[dict[str, Any]]) -> float:
    """The median of the per-round ratios of two clients' CPU per chunk."""
    return statistics.median(r["cpu_us_per_chunk"] / f["cpu_us_per_chunk"]
                             for r, f in zip(runs, reference, strict=True))


def _memory(facts: Facts) -> list[str]:
    lines = ["## Memory per idle open stream", "",
             f"{facts.memory_streams:,} streams open at once, each with its first chunk read and "
             "then at rest (the server sends nothing more): the process's RSS then, minus its RSS "
             "before opening them, divided by the streams; the median of the rounds. The blocking "
             "client opens its streams one after another from one thread.", "",
             "| client | KiB per idle stream | x floor |", "|---|---|---|"]
    for label in facts.labels:
        row = facts.memory.get(label)
        if row is not None:
            lines.append(f"| {label} | {row['kib']:.1f} | {row['x_floor']:.2f} |")
    return [*lines, ""]


def _cold(facts: Facts) -> list[str]:
    lines = ["## Cold start and import", "",
             "Cold start: process start to the first chunk printed (median, rounds interleaved). "
             "Import: a fresh interpreter running the import, minus an empty interpreter "
             "(median).", "", "| client | cold start ms |", "|---|---|"]
    lines += [f"| {name} | {seconds * 1000:.0f} |" for name, seconds in facts.cold.items()]
    lines += ["", "| import | ms |", "|---|---|"]
    lines += [f"| {name} | {seconds * 1000:.0f} |" for name, seconds in facts.imports.items()]
    return [*lines, "", "Those whole-interpreter times swing by tens of milliseconds from run to "
            "run here. What `import ollama_stream` adds over `import aiohttp, orjson` is measured "
            "instead with `-X importtime`: the self time of every module it loads that they do "
            f"not, **{facts.added * 1000:.1f} ms** (median).", ""]


def _decoder(facts: Facts) -> list[str]:
    d = facts.decoder
    return ["## The decoder alone", "",
            "The read loop's decoding, `NDJSONDecoder.split` and then `orjson.loads` line by line, "
            f"against a bare split + loads loop over the same {facts.chunks:,} lines (best of "
            "interleaved rounds). A whole reply at once, both do the same work: the difference is "
            "the decoder's own bookkeeping (a partial line kept, over-long lines refused, blank "
            "lines skipped). One line per read, it also pays a Python call and a one-item list "
            "per read.", "",
            "| input | bare loop µs / line | decoder µs / line | ratio |", "|---|---|---|---|",
            f"| the whole reply at once | {d['bare_whole']:.3f} | {d['ours_whole']:.3f} | "
            f"{d['ratio_whole']:.2f} |",
            f"| one line per read | {d['bare_lines']:.3f} | {d['ours_lines']:.3f} | "
            f"{d['ratio_lines']:.2f} |", ""]


def _mark(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _targets(facts: Facts) -> list[str]:
    rows: list[str] = []
    missed: list[str] = []

    def target(name: str, measured: str, ok: bool) -> None:
        rows.append(f"| {name} | {measured} | {_mark(ok)} |")
        if not ok:
            missed.append(name)

    def counted(pattern: str, label: str, other: str) -> float | None:
        counts = facts.counts.get(pattern, {})
        if label in counts and other in counts:
            return float(counts[label]["per_chunk"] / counts[other]["per_chunk"])
        return None

    def timed(pattern: str, label: str, other: str) -> float | None:
        row, ref = (facts.timed.get((f"{pattern}, concurrency 1", x)) for x in (label, other))
        if row is None or ref is None:
            return None
        return float(row["x_floor"]) if other == "floor" else median_ratio(row["runs"],
                                                                            ref["runs"])

    def judged(name: str, pattern: str, label: str, limit: float, other: str = "floor",
               below: bool = False, on_time_too: bool = False) -> None:
        by_count, by_time = counted(pattern, label, other), timed(pattern, label, other)
        if by_count is None and by_time is None:
            return
        time_text = f"CPU time {by_time:.2f}x" if by_time is not None else "no time measured"
        values = [v for v in (by_count, by_time if on_time_too or by_count is None else None)
                  if v is not None]
        measured = (f"{by_count:.2f}x in instructions, {time_text}" if by_count is not None
                    else f"{time_text} (no instruction counts)")
        target(name, measured, all(v < limit if below else v <= limit for v in values))

    judged("batched, through aiohttp's public API: ≤ 1.2x the equal-work floor", BATCHED, PUBLIC,
           1.2)
    judged("batched, the fast path: below the floor (faster than a hand-written aiohttp loop)",
           BATCHED, "ollama_stream", 1.0, below=True)
    judged("one line per read, the fast path: ≤ 1.2x the floor", LOCKSTEP, "ollama_stream", 1.2)
    for pattern in (BATCHED, LOCKSTEP):
        judged(f"the blocking client within 1.15x of the async one ({pattern}; in instructions "
               "and in CPU time, since its cost is mostly the kernel's)", pattern, BLOCKING, 1.15,
               other="ollama_stream", on_time_too=True)
    judged(f"≤ 1/5 of ollama-python's CPU per chunk ({BATCHED})", BATCHED, "ollama_stream", 0.2,
           other="ollama-python")
    # One line per read, the cost of a read (the kernel's, aiohttp's) is most of every client's
    # cost per chunk, the floor's too: there the comparison is the floor's, not a fixed fifth.
    ours_share, floor_share = (counted(LOCKSTEP, label, "ollama-python")
                               for label in ("ollama_stream", "floor"))
    if ours_share is not None and floor_share is not None:
        target(f"≤ the floor's share of ollama-python's CPU per chunk ({LOCKSTEP}, where a read "
               "costs every client alike)", f"{ours_share:.2f}x in instructions (the floor: "
               f"{floor_share:.2f}x)", ours_share <= floor_share * 1.05)
    for scenario, _, _, concurrency, _ in facts.scenarios:
        ours = facts.timed.get((scenario, "ollama_stream"))
        if concurrency > 1 and ours is not None:
            target(f"CPU time per chunk ≤ 1.5x the floor ({scenario})",
                   f"{ours['x_floor']:.2f}x", ours["x_floor"] <= 1.5)
    ours_memory, floor_memory = facts.memory.get("ollama_stream"), facts.memory.get("floor")
    if ours_memory is not None and floor_memory is not None:
        target(f"≤ 18 KiB per idle open stream at {facts.memory_streams:,} streams",
               f"{ours_memory['kib']:.1f} KiB (the floor: {floor_memory['kib']:.1f})",
               ours_memory["kib"] <= 18)
    target("import adds ≤ 15 ms over aiohttp + orjson (-X importtime)",
           f"{facts.added * 1000:.1f} ms", facts.added * 1000 <= 15)
    if "ollama-python" in facts.cold:
        target("cold start no slower than ollama-python",
               f"{facts.cold['ollama_stream'] * 1000:.0f} vs "
               f"{facts.cold['ollama-python'] * 1000:.0f} ms",
               facts.cold["ollama_stream"] <= facts.cold["ollama-python"])
    target("decoder within 1.3x of a bare split + orjson.loads loop (the whole reply)",
           f"{facts.decoder['ratio_whole']:.2f}x", facts.decoder["ratio_whole"] <= 1.3)
    if facts.structured is not None:
        row = target_row(facts.structured)
        rows.append(row)
        if "not met" in row:
            missed.append("objects() per chunk stays flat")
    lines = ["## Targets", "",
             "Judged on instructions where they were counted, the CPU time ratio beside (the same "
             "read pattern, concurrency 1); the blocking client on both.", "",
             "| target | measured | |", "|---|---|---|", *rows, ""]
    if missed:
        lines += ["Not met: " + "; ".join(missed) + ". The profile below shows where the "
                  "instructions go.", ""]
    else:
        lines += ["Every target holds in this run.", ""]
    return lines


def _profile(facts: Facts) -> list[str]:
    lines = ["## Where the instructions go", "",
             "From the callgrind runs above (callgrind_annotate, N streams minus 1): the self "
             "instructions per chunk of the C functions whose cost differs most between two "
             "clients. Python code shows as the interpreter's functions: "
             "`_PyEval_EvalFrameDefault` is bytecode, `_PyFrame_*` and `initialize_locals` are "
             "calls, `_PyObject_Malloc` / `_PyObject_Free` allocation, `*_traverse`, "
             "`visit_*` and `gc_collect_main` the garbage collector.", ""]
    pairs = [(pattern, "floor", "ollama_stream", PUBLIC) for pattern in (BATCHED, LOCKSTEP)]
    pairs += [(pattern, "ollama_stream", BLOCKING, None) for pattern in (BATCHED, LOCKSTEP)]
    for pattern, base, mine, third in pairs:
        clients = facts.profiles.get(pattern, {})
        left, right = clients.get(base), clients.get(mine)
        extra = clients.get(third) if third else None
        if not left or not right:
            continue
        names = sorted(set(left) | set(right) | set(extra or ()),
                       key=lambda n: -max(abs(right.get(n, 0) - left.get(n, 0)),
                                          abs((extra or {}).get(n, 0) - left.get(n, 0))))[:12]
        header = f"| function | {base} | {mine} |" + (f" {third} |" if extra else "")
        lines += [f"### {pattern}: {mine} against {base}", "", header,
                  "|---|---|---|" + ("---|" if extra else "")]
        for name in names:
            cells = [left.get(name, 0), right.get(name, 0)] + ([extra.get(name, 0)]
                                                                if extra else [])
            lines.append(f"| `{name}` | " + " | ".join(f"{c:,.0f}" for c in cells) + " |")
        totals = [sum(left.values()), sum(right.values())] + ([sum(extra.values())]
                                                              if extra else [])
        lines += ["| all | " + " | ".join(f"{t:,.0f}" for t in totals) + " |", ""]
    lines += ["### ollama_stream's own steps, in-process", "",
              "Each step of the hot path timed alone over the same reply "
              "(`python -m benchmarks.profile_hot_path`, run by this command):", "",
              facts.steps.strip(), ""]
    return lines


def main() -> None:
    """Render the page again from the facts a run saved (`--facts`), without measuring anew."""
    import argparse
    import pickle
    from pathlib import Path

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("facts", help="the file a run wrote with --facts")
    parser.add_argument("out", help="the page to write")
    args = parser.parse_args()
    facts = pickle.loads(Path(args.facts).read_bytes())  # our own file, from our own run
    Path(args.out).write_text(render(facts))


if __name__ == "__main__":
    main()
