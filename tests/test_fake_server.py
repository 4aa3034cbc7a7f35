"""FakeOllama as a standalone server: a chosen host and port, `reset()` between tests that share
one, and the `ollama-stream fake-server` command (a real subprocess) that prints the OLLAMA_HOST
to export and serves any client until Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from typing import Any

import pytest

from ollama_stream import Ollama
from ollama_stream.testing import FakeOllama

from .fake_http import USER, post


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_chosen_port_and_host(loop_errors: list[dict[str, Any]]) -> None:
    port = free_port()
    async with FakeOllama(port=port) as fake:
        assert fake.url == f"http://127.0.0.1:{port}"
        with pytest.raises(OSError):  # the port is taken
            await FakeOllama(port=port).start()
    async with FakeOllama(host="0.0.0.0") as everywhere:  # reached on loopback
        assert everywhere.url.startswith("http://127.0.0.1:")
        status, _, _ = await post(everywhere, "/api/chat", {"model": "qwen3", "messages": USER})
        assert status == 200


def test_a_chosen_port_in_thread_mode() -> None:
    port = free_port()
    with FakeOllama(port=port) as fake, Ollama(f"127.0.0.1:{port}") as client:
        assert client.chat("qwen3", USER, think=False).result().message.content.startswith(
            "You said: ")
        assert fake.requests[-1]["model"] == "qwen3"
    with pytest.raises(OSError), FakeOllama(port=port) as one, FakeOllama(port=one.port):
        pass  # the second cannot bind


async def test_reset_forgets_queue_and_records_but_not_models(fake: FakeOllama) -> None:
    fake.queue_reply(content="never served")
    await post(fake, "/api/pull", {"model": "tinyllama", "stream": False})
    await post(fake, "/api/chat", {"model": "qwen3", "messages": USER})
    assert fake.requests and fake.received
    fake.reset()
    assert (fake.pending, fake.requests, fake.received, fake.disconnects) == (0, [], [], 0)
    assert "tinyllama:latest" in fake.models  # the model store stays


def start_fake_server(*args: str) -> tuple[subprocess.Popen[str], str]:
    """`python -m ollama_stream fake-server ARGS` and the OLLAMA_HOST it tells to export."""
    environ = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.Popen([sys.executable, "-m", "ollama_stream", "fake-server", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environ)
    assert proc.stdout is not None
    banner = proc.stdout.readline()
    export = proc.stdout.readline()
    assert export.startswith("export OLLAMA_HOST=http://127.0.0.1:"), (banner, export)
    assert proc.stdout.readline() == "Ctrl-C to stop.\n"
    return proc, export.split("=", 1)[1].strip()


@pytest.mark.timeout(60)
def test_the_fake_server_command_serves_any_client_until_ctrl_c() -> None:
    proc, host = start_fake_server("--port", "0", "--model", "qwen3", "--model", "tiny",
                                   "--delay", "0")
    try:
        with urllib.request.urlopen(f"{host}/api/tags", timeout=10) as response:
            names = [m["name"] for m in json.loads(response.read())["models"]]
        assert sorted(names) == ["qwen3:latest", "tiny:latest"]
        chat = subprocess.run([sys.executable, "-m", "ollama_stream", "chat", "--quiet", "--think",
                               "off", "hello there"], capture_output=True, text=True, timeout=30,
                              env={**os.environ, "OLLAMA_HOST": host}, check=False)
        assert chat.returncode == 0, chat.stderr
        assert chat.stdout == "You said: hello there\n"
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out == "stopped\n" and err == ""


@pytest.mark.timeout(60)
def test_the_fake_server_says_when_its_port_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "ollama_stream", "fake-server", "--port",
                                 str(port)], capture_output=True, text=True, timeout=30,
                                check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"ollama-stream: cannot listen on 127.0.0.1:{port}: ")
    assert "--port 0" in result.stderr
