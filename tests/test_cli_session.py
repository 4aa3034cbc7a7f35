"""The command's model commands as subprocesses, and the interactive session driven in a
pseudo-terminal (pexpect), checking what the screen shows."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pexpect
import pytest

from ollama_stream.testing import FakeOllama

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


def environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NO_COLOR", "OLLAMA_HOST", "MODEL", "MODEL_PROVIDER", "OLLAMA_THINKING",
                        "OLLAMA_HIDE_THINKING")}
    env.update(PYTHONIOENCODING="utf-8", TERM="xterm", **extra)
    return env


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ollama_stream", *args], capture_output=True,
                          text=True, encoding="utf-8", env=environ(), timeout=60,
                          stdin=subprocess.DEVNULL)


def spawn(*args: str, ignore_sigint: bool = False) -> pexpect.spawn:
    """The command in a pseudo-terminal; with SIGINT ignored as a shell's background job has it
    when asked (otherwise the default, whatever the suite itself was started with)."""
    disposition = signal.SIG_IGN if ignore_sigint else signal.SIG_DFL
    child = pexpect.spawn(sys.executable, ["-m", "ollama_stream", *args], env=environ(),
                          encoding="utf-8", timeout=20, dimensions=(40, 160),
                          preexec_fn=lambda: signal.signal(signal.SIGINT, disposition))
    return child


# -- model commands as a script sees them (stdout is a pipe) ---------------------------------------

def test_pull_prints_statuses_and_finished_layers(fake: FakeOllama) -> None:
    result = run("--host", fake.url, "pull", "tinyllama")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "pulling manifest" and lines[-1] == "success"
    layers = [line for line in lines if "100%" in line]
    assert layers and all(
        re.match(r"pulling [0-9a-f]{12}  █+ 100%  [\d.]+ [KMG]?B/[\d.]+ [KMG]?B", ln)
        for ln in layers)
    assert "\r" not in result.stdout and "\x1b" not in result.stdout
    assert "verifying sha256 digest" in lines and "writing manifest" in lines


def test_pull_of_an_unknown_model_is_one_line(fake: FakeOllama) -> None:
    result = run("--host", fake.url, "pull", "no-such-model")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(
        "ollama-stream: the server reported an error mid-stream: pull model manifest")


def test_models_ps_show(fake: FakeOllama) -> None:
    models = run("--host", fake.url, "models")
    assert models.returncode == 0, models.stderr
    header, *rows = models.stdout.splitlines()
    assert header.split() == ["NAME", "SIZE", "MODIFIED"]
    assert any(row.startswith("qwen3:latest ") for row in rows)
    assert all(re.search(r"\d+(\.\d)? [KMG]?B\s+(\d+ (days|hours|minutes) ago|just now)$", row)
               for row in rows)

    assert run("--host", fake.url, "ps").stdout.split() == ["NAME", "SIZE", "PROCESSOR", "CONTEXT",
                                                            "UNTIL"]
    subprocess.run([sys.executable, "-m", "ollama_stream", "--host", fake.url, "chat", "-m",
                    "llama3.2", "hi"], capture_output=True, env=environ(), timeout=60, check=True,
                   stdin=subprocess.DEVNULL)
    ps = run("--host", fake.url, "ps").stdout.splitlines()
    assert len(ps) == 2 and ps[1].startswith("llama3.2:latest") and "from now" in ps[1]

    show = run("--host", fake.url, "show", "qwen3")
    assert show.returncode == 0, show.stderr
    assert "  Model\n" in show.stdout and re.search(r"    architecture\s+\S+", show.stdout)
    assert "  Capabilities\n    completion\n    tools\n    thinking\n" in show.stdout
    missing = run("--host", fake.url, "show", "nope")
    assert missing.returncode == 4 and "ollama-stream pull nope" in missing.stderr


# -- in a terminal ---------------------------------------------------------------------------------

def test_pull_redraws_one_bar_per_layer_in_a_terminal(fake: FakeOllama) -> None:
    child = spawn("--host", fake.url, "pull", "tinyllama")
    child.expect(pexpect.EOF)
    screen = child.before.replace("\r\n", "\n")
    assert "\r\x1b[2K" in screen  # redrawn in place
    final_lines = [ANSI.sub("", line.split("\r")[-1]) for line in screen.split("\n")]
    assert any("100%" in line and "/s" in line for line in final_lines)
    assert final_lines[-2].strip() == "success" or "success" in final_lines[-1]


def test_interactive_session(fake: FakeOllama) -> None:
    fake.queue_reply(content="First answer.")
    fake.queue_reply(thinking="Deep thought.", content="Second answer.")
    child = spawn("--host", fake.url, "chat", "-m", "qwen3")
    child.expect("Chatting with qwen3")
    child.expect(">>> ")
    child.sendline("hello there")
    child.expect("First answer.")
    child.expect(r"\[\d+ tokens, [\d.]+ tokens/s, first token in [\d.]+s\]")
    child.expect(">>> ")
    child.sendline("/think on")
    child.expect("Thinking: on")
    child.sendline("and now?")
    child.expect("Thinking")
    child.expect("Deep thought.")
    child.expect("Second answer.")
    child.expect(">>> ")
    assert fake.requests[-1]["think"] is True
    assert [m["role"] for m in fake.requests[-1]["messages"]] == ["user", "assistant", "user"]
    child.sendline("/clear")
    child.expect("History cleared.")
    child.sendline("fresh start")
    child.expect("You said: fresh start")
    child.expect(">>> ")
    assert [m["content"] for m in fake.requests[-1]["messages"]] == ["fresh start"]
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


@pytest.mark.parametrize("ignore_sigint", [False, True], ids=["default", "started-ignoring-it"])
def test_ctrl_c_stops_the_reply_and_keeps_the_session(fake: FakeOllama,
                                                      ignore_sigint: bool) -> None:
    fake.queue_reply(content="word " * 400, chunk_delay=0.01)
    child = spawn("--host", fake.url, "chat", ignore_sigint=ignore_sigint)
    child.expect(">>> ")
    child.sendline("talk for a long time")
    child.expect("word word word")
    child.sendcontrol("c")
    child.expect(r"\[stopped\]")
    child.expect(">>> ")
    for _ in range(100):  # the server saw the connection close
        if fake.disconnects:
            break
        child.expect(pexpect.TIMEOUT, timeout=0.05)
    assert fake.disconnects == 1
    child.sendline("still there?")
    child.expect("You said: still there\\?")
    child.expect(">>> ")
    # the stopped turn left
    assert [m["content"] for m in fake.requests[-1]["messages"]] == ["still there?"]
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_colour_in_a_terminal_unless_no_color(fake: FakeOllama) -> None:
    fake.queue_reply(thinking="Hmm.", content="Done.")
    child = spawn("--host", fake.url, "chat", "--think", "on", "quick")
    child.expect(pexpect.EOF)
    assert "\x1b[2mThinking" in child.before  # dimmed thinking header
    fake.queue_reply(thinking="Hmm.", content="Done.")
    env = environ(NO_COLOR="1")
    plain = pexpect.spawn(sys.executable, ["-m", "ollama_stream", "--host", fake.url, "chat",
                                           "--think", "on", "quick"], env=env, encoding="utf-8",
                          timeout=20)
    plain.expect(pexpect.EOF)
    assert "\x1b[" not in plain.before and "Thinking" in plain.before


def test_structured_output_is_printed_indented_on_a_terminal(fake: FakeOllama,
                                                              tmp_path: Any) -> None:
    fake.queue_reply(thinking="Two fields.", content='{"city": "Oslo", "geo": [59.9, 10.7]}')
    child = spawn("--host", fake.url, "chat", "--think", "on", "--format", "json", "Where?")
    child.expect(pexpect.EOF)
    screen = ANSI.sub("", child.before.replace("\r\n", "\n"))
    assert 'Thinking\nTwo fields.\n\n{\n  "city": "Oslo",\n  "geo": [\n    59.9,\n' in screen
    assert re.search(r"\]\n\}\n\[\d+ tokens", screen)  # then the summary
    path = tmp_path / "schema.json"
    path.write_text('{"type": "object", "properties": {"n": {"type": "integer"}}}')
    fake.queue_reply(content="not JSON")
    child = spawn("--host", fake.url, "chat", "--quiet", "--format-schema", str(path), "N?")
    child.expect(pexpect.EOF)
    screen = ANSI.sub("", child.before.replace("\r\n", "\n"))
    assert "not JSON" in screen and "the reply is not valid JSON" in screen
