"""Run by tests/test_hostile.py in a process of its own: a blocking and an async client used in a
parent, then in a child made by os.fork(), then in the parent again; prints what each side saw."""

import asyncio
import os
import sys
import time
import warnings

from ollama_stream import AsyncOllama, Ollama
from ollama_stream.testing import FakeOllama

warnings.simplefilter("ignore", DeprecationWarning)  # "this process is multi-threaded": known
USER = [{"role": "user", "content": "hi"}]


async def ask(client: AsyncOllama) -> str:
    return (await client.chat("qwen3", USER, think=False).result()).message.content


def main() -> None:
    fake = FakeOllama().__enter__()  # its thread serves the child too (the socket is inherited)
    blocking = Ollama(fake.url)
    asynchronous = AsyncOllama(fake.url)
    print("parent", blocking.version(), asyncio.run(ask(asynchronous)), flush=True)
    pid = os.fork()
    if pid == 0:
        started = time.monotonic()
        print("child", blocking.version(), blocking.chat("qwen3", USER, think=False).result()
              .message.content, asyncio.run(ask(asynchronous)), flush=True)
        # exits normally: the clients' finalizers run at exit and must not wait for the parent's
        print(f"child-started-exit {time.monotonic() - started:.1f}", flush=True)
        sys.exit(0)
    _, status = os.waitpid(pid, 0)
    print("child-exit", os.waitstatus_to_exitcode(status), flush=True)
    print("parent-again", blocking.version(), asyncio.run(ask(asynchronous)), flush=True)
    blocking.close()
    asyncio.run(asynchronous.aclose())
    fake.__exit__(None, None, None)


main()
