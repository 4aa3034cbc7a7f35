"""Run by tests/test_hostile.py in a process of its own: lower the file descriptor limit, use
every descriptor left, then make a request, and print what the error says."""

import asyncio
import os
import resource
import socket

from ollama_stream import AsyncOllama, OllamaConnectionError, RetryPolicy


async def main() -> None:
    async with AsyncOllama("http://127.0.0.1:9", retry=RetryPolicy(base_delay=0)) as client:
        await client.is_running()  # the session and its loop exist before the limit bites
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 4, hard))
        held = []
        try:
            while True:
                held.append(socket.socket())
        except OSError:
            pass
        try:
            await client.chat("qwen3", [{"role": "user", "content": "hi"}]).result()
        except OllamaConnectionError as exc:
            print(f"{type(exc).__name__}|{exc.retryable}|{exc.attempts}|{exc.failures[0]}|{exc}")
        finally:
            for sock in held:
                sock.close()


asyncio.run(main())
