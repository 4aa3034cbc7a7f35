"""The `ollama-stream` command as a person runs it: a real `python -m ollama_stream` subprocess with
stdin and stdout piped (not a terminal), against a FakeOllama serving from its own thread."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from ollama_stream import __version__
from ollama_stream.testing import FakeModel, FakeOllama

SUMMARY = re.compile(r"\[\d+ tokens, [\d.]+ tokens/s, first token in [\d.]+s\]")
# Variables the command reads: a developer's own settings must not leak into these tests.
OWN_SETTINGS = ("NO_COLOR", "OLLAMA_HOST", "OLLAMA_MODEL", "OLLAMA_HIDE_THINKING", "OLLAMA_API_KEY",
                "MODEL", "MODEL_PROVIDER", "OLLAMA_THINKING")


def run(*args: str, input: str = "",
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in OWN_SETTINGS}
    environ.update(PYTHONIOENCODING="utf-8", **(env or {}))
    return subprocess.run([sys.executable, "-m", "ollama_stream", *args], input=input,
                          capture_output=True, text=True, encoding="utf-8", env=environ, timeout=60,
                          check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    """A FakeOllama in a thread of its own, so that it serves while the test blocks on the
    subprocess."""
    with FakeOllama() as server:
        yield server


@pytest.fixture
def plain_fake() -> Iterator[FakeOllama]:
    """A FakeOllama whose qwen3 has no thinking capability: it answers without thinking when
    `think` is not sent (a thinking model would think, as Ollama's do since v0.12.4)."""
    with FakeOllama(models=[FakeModel("qwen3", capabilities=["completion", "tools"])]) as server:
        yield server


def chat(fake: FakeOllama, *args: str, input: str = "",
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run("--host", fake.url, "chat", *args, input=input, env=env)


def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# -- demo ------------------------------------------------------------------------------------------

def test_demo_runs_the_whole_flow_without_ollama() -> None:
    result = run("demo", "--delay", "0")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    expected_in_order = [
        "ollama-stream demo",
        ">>> Why is the sky blue?",
        "Thinking\n",
        "Rayleigh scattering: shorter wavelengths scatter more.",
        "Sunlight scatters off air molecules, and blue light",
        "So blue reaches your eyes from every direction of the sky.",
        ">>> And what's the weather in Tokyo right now?",
        "I need live data: call get_weather for Tokyo.",
        '-> tool call get_weather({"city":"Tokyo"})',
        '<- get_weather returned {"city":"Tokyo","temperature_c":22,"sky":"clear"}',
        "It's 22 °C with clear skies in Tokyo right now.",
        "6 messages in the history",
    ]
    positions = [out.find(text) for text in expected_in_order]
    assert -1 not in positions, [t for t, p in zip(expected_in_order, positions, strict=True)
                                 if p < 0]
    assert positions == sorted(positions)
    assert len(SUMMARY.findall(out)) == 3  # one per reply
    assert "\x1b" not in out  # stdout is a pipe: no ANSI styling
    assert result.stderr == ""


# -- chat ------------------------------------------------------------------------------------------

def test_one_shot_prompt_prints_the_answer_only(plain_fake: FakeOllama) -> None:
    """Redirected, stdout holds the answer and nothing else: the summary line goes to stderr, and
    there only on a terminal or with --verbose (tests/test_cli_habits.py has both)."""
    fake = plain_fake
    result = chat(fake, "hello there")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "You said: hello there\n"
    assert result.stderr == ""
    assert fake.requests[-1]["model"] == "qwen3"
    assert fake.requests[-1]["messages"] == [{"role": "user", "content": "hello there"}]
    assert "think" not in fake.requests[-1] and "options" not in fake.requests[-1]


def test_quiet_prints_no_summary(plain_fake: FakeOllama) -> None:
    result = chat(plain_fake, "--quiet", "hello there")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "You said: hello there\n"


def test_a_reply_cut_at_the_length_limit_is_noted_on_stderr(fake: FakeOllama) -> None:
    fake.queue_reply(content="one two", done_reason="length")
    result = chat(fake, "--quiet", "hello there")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "one two\n"  # stdout holds the answer only
    assert result.stderr == ("ollama-stream: the reply stopped at the length limit; raise it "
                             "with --option num_predict=N\n")


def test_think_on_prints_the_thinking_before_the_answer(fake: FakeOllama) -> None:
    fake.queue_reply(thinking="Let me consider the greeting.", content="Hi to you too.")
    result = chat(fake, "--think", "on", "--show-thinking", "hello there")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Thinking\nLet me consider the greeting.\n\nHi to you too.\n"
    assert fake.requests[-1]["think"] is True


def test_think_level_is_sent_as_a_string(fake: FakeOllama) -> None:
    result = chat(fake, "--think", "low", "--show-thinking", "hello there")
    assert result.returncode == 0, result.stderr
    assert fake.requests[-1]["think"] == "low"
    assert "The user wrote 2 words." in result.stdout  # the echo server thinks when asked to


@pytest.mark.parametrize(("flags", "env"), [
    (["--hide-thinking"], {}),
    ([], {"OLLAMA_HIDE_THINKING": "true"}),
], ids=["flag", "env"])
def test_hide_thinking_keeps_the_answer(fake: FakeOllama, flags: list[str],
                                        env: dict[str, str]) -> None:
    fake.queue_reply(thinking="Secret reasoning here.", content="The answer.")
    result = chat(fake, "--think", "on", *flags, "hello there", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "The answer.\n"
    assert fake.requests[-1]["think"] is True  # still asked for: only the printing is hidden


def test_json_prints_only_ndjson_chunks(fake: FakeOllama) -> None:
    fake.queue_reply(thinking="Hmm.", content="Raw chunks.",
                     tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    result = chat(fake, "--json", "--think", "on", "hello there")
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("\n")
    # every line, no summary, no blanks
    chunks = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(chunks) >= 4
    assert [c["done"] for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert "".join(c["message"].get("thinking", "") for c in chunks) == "Hmm."
    assert "".join(c["message"].get("content", "") for c in chunks) == "Raw chunks."
    calls = [call for c in chunks for call in c["message"].get("tool_calls", [])]
    assert [call["function"]["name"] for call in calls] == ["get_weather"]
    assert chunks[-1]["eval_count"] > 0 and chunks[-1]["done_reason"] == "stop"


def test_prompt_from_stdin(plain_fake: FakeOllama) -> None:
    fake = plain_fake
    result = chat(fake, "--quiet", input="from stdin\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "You said: from stdin\n"
    assert fake.requests[-1]["messages"] == [{"role": "user", "content": "from stdin"}]


def test_system_format_and_options_reach_the_server(fake: FakeOllama) -> None:
    fake.queue_reply(content='{"ok": true}')
    result = chat(fake, "--system", "Answer in JSON.", "--format", "json",
                  "--option", "temperature=0", "--option", 'stop=["x"]', "--option", "seed=42",
                  "-m", "llama3.2", "hello there")
    assert result.returncode == 0, result.stderr
    assert lines_of(result.stdout)[0] == '{"ok": true}'
    sent = fake.requests[-1]
    assert sent["model"] == "llama3.2"
    assert sent["messages"] == [{"role": "system", "content": "Answer in JSON."},
                                {"role": "user", "content": "hello there"}]
    assert sent["format"] == "json"
    assert sent["options"] == {"temperature": 0, "stop": ["x"], "seed": 42}


def test_format_schema_sends_the_files_schema(fake: FakeOllama, tmp_path: Any) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    path = tmp_path / "city.json"
    path.write_text(json.dumps(schema))
    result = chat(fake, "--quiet", "--hide-thinking", "--format-schema", str(path), "Where?")
    assert result.returncode == 0, result.stderr
    assert fake.requests[-1]["format"] == schema
    # a pipe gets the content as it streamed: the fake's instance of the schema, on one line
    assert json.loads(result.stdout) == {"city": "city"} and result.stdout.count("\n") == 1


@pytest.mark.parametrize(("content", "args", "error"), [
    ("{}", ["--format", "json"], "--format and --format-schema each set the format"),
    ("[1, 2]", [], "holds a JSON list, not a JSON Schema object"),
    ("{nope", [], "is not JSON"),
    (None, [], "--format-schema: cannot read"),
])
def test_format_schema_mistakes_are_usage_errors(fake: FakeOllama, tmp_path: Any,
                                                 content: str | None, args: list[str],
                                                 error: str) -> None:
    path = tmp_path / "schema.json"
    if content is not None:
        path.write_text(content)
    result = chat(fake, "--format-schema", str(path), *args, "Where?")
    assert result.returncode == 2 and error in result.stderr and "Traceback" not in result.stderr
    assert fake.requests == []


# -- errors ----------------------------------------------------------------------------------------

def test_nothing_listening_is_exit_3_with_a_hint() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run("--host", url, "chat", "hello")
    assert result.returncode == 3
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "ollama serve" in result.stderr and url in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_model_is_exit_4_with_the_pull_command(fake: FakeOllama) -> None:
    result = chat(fake, "-m", "nosuchmodel", "hello")
    assert result.returncode == 4
    assert result.stderr.rstrip().endswith("Pull it first: ollama-stream pull nosuchmodel")
    assert fake.url in result.stderr and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("ollama-stream: ")
    assert [r["model"] for r in fake.requests] == ["nosuchmodel"]  # a 404 is not retried


def test_debug_shows_the_traceback(fake: FakeOllama) -> None:
    result = run("--debug", "--host", fake.url, "chat", "-m", "nosuchmodel", "hello")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "ModelNotFoundError" in result.stderr and "ollama pull nosuchmodel" in result.stderr


def test_a_host_that_is_not_http_is_a_usage_error() -> None:
    result = run("--host", "ftp://x", "chat", "hello")
    assert result.returncode == 2
    assert "scheme" in result.stderr and "ftp" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


# -- version ---------------------------------------------------------------------------------------

def test_version_flag() -> None:
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"ollama-stream {__version__}\n"


def test_version_command_reports_the_server_too(fake: FakeOllama) -> None:
    result = run("--host", fake.url, "version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (f"ollama-stream {__version__}\n"
                             f"ollama server {fake.version} at {fake.url}\n")
    nobody = f"http://127.0.0.1:{free_port()}"
    result = run("--host", nobody, "version")
    assert result.returncode == 0
    assert result.stdout.splitlines()[1] == (f"no Ollama server at {nobody} "
                                             f"(start one with `ollama serve`)")


def test_malformed_option_is_a_usage_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "ollama_stream", "--host", "127.0.0.1:1", "chat",
                           "--option", "foo", "hi"], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "ollama-stream: --option takes key=value, got 'foo'"


def test_settings_from_the_environment_feed_the_command(fake: FakeOllama) -> None:
    result = chat(fake, "hi there", env={"MODEL": "ollama/llama3.2", "OLLAMA_THINKING": "high",
                                         "OLLAMA_HIDE_THINKING": "true"})
    assert result.returncode == 0, result.stderr
    assert fake.requests[-1]["model"] == "llama3.2" and fake.requests[-1]["think"] == "high"
    assert "Thinking" not in result.stdout and "You said: hi there" in result.stdout


def test_a_bad_setting_is_one_line_and_the_usage_code(fake: FakeOllama) -> None:
    result = chat(fake, "hi", env={"OLLAMA_THINKING": "lots"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == ("ollama-stream: OLLAMA_THINKING='lots': allowed values are "
                                     "low|medium|high|max|true|false")
