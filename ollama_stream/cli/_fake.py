"""`fake-server`: FakeOllama as a standalone server at a fixed address, so that the quick start,
this command's `chat` and any other client (ollama-python, curl, ...) can be tried without Ollama;
it prints the OLLAMA_HOST to export and serves until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import threading

from ._render import EXIT_USAGE


def serve_fake(args: argparse.Namespace) -> int:
    """Blocks until Ctrl-C (the server runs in a thread of its own), then exits 0."""
    from ..testing import DEFAULT_MODELS, FAKE_VERSION, FakeOllama

    models = args.model or list(DEFAULT_MODELS)
    fake = FakeOllama(models=models, host=args.bind, port=args.port, chunk_delay=args.delay)
    try:
        fake.__enter__()
    except OSError as exc:
        sys.stderr.write(f"ollama-stream: cannot listen on {args.bind}:{args.port}: "
                         f"{exc.strerror or exc} (is Ollama, or another fake-server, running "
                         "there? --port 0 takes any free port)\n")
        return EXIT_USAGE
    out = sys.stdout
    try:
        out.write(f"FakeOllama (standing in for Ollama {FAKE_VERSION}) at {fake.url}, "
                  f"models: {', '.join(sorted(fake.models))}\n"
                  f"export OLLAMA_HOST={fake.url}\n"
                  "Ctrl-C to stop.\n")
        out.flush()
        stop = threading.Event()
        while not stop.wait(3600):  # a bounded wait, so that Ctrl-C is seen everywhere
            pass
    except KeyboardInterrupt:
        out.write("stopped\n")
    finally:
        fake.__exit__(None, None, None)
    return 0
