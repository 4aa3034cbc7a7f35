"""The command in a pseudo-terminal (pexpect), as a person at a terminal meets it: the session's
slash commands, triple quotes, Ctrl-C at an idle prompt, --json in a session, the model and the
server checked when a session starts (and a missing model pulled after asking), the pull bar within
60 and 80 columns, and where thinking and the summary show."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator

import pexpect
import pytest

from ollama_stream.testing import FakeOllama

from .test_cli import free_port

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PROMPT = ">>> "


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


def spawn(*args: str, columns: int = 160) -> pexpect.spawn:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NO_COLOR", "OLLAMA_HOST", "MODEL", "MODEL_PROVIDER", "OLLAMA_THINKING",
                        "OLLAMA_HIDE_THINKING", "COLUMNS", "LINES")}
    env.update(PYTHONIOENCODING="utf-8", TERM="xterm")
    return pexpect.spawn(sys.executable, ["-m", "ollama_stream", *args], env=env,
                         encoding="utf-8", timeout=20, dimensions=(40, columns))


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    return int(child.exitstatus)


def test_ctrl_c_at_an_idle_prompt_hints_how_to_leave(fake: FakeOllama) -> None:
    child = spawn("--host", fake.url, "chat")
    child.expect(PROMPT)
    child.send("half a thought")
    child.sendcontrol("c")
    child.expect(r"Use Ctrl \+ d or /bye to exit\.")
    child.expect(PROMPT)
    child.sendline("still here")
    child.expect("You said: still here")
    assert fake.requests[-1]["messages"] == [{"role": "user", "content": "still here"}]
    child.expect(PROMPT)
    child.sendline("/bye")
    assert finish(child) == 0


def test_help_lists_the_commands_and_an_unknown_one_is_not_sent(fake: FakeOllama) -> None:
    child = spawn("--host", fake.url, "chat")
    for word in ("/?", "/help"):
        child.expect(PROMPT)
        child.sendline(word)
        child.expect("Available commands:")
        child.expect("/bye")
        child.expect('Use """ to begin a message over several lines')
    child.expect(PROMPT)
    child.sendline("/nope please")
    child.expect(r"Unknown command '/nope'\. Type /\? for help")
    child.expect(PROMPT)
    child.sendline("/set")
    child.expect(r"/set parameter NAME VALUE")
    child.expect(PROMPT)
    child.sendline("/set parameter temprature 1")
    child.expect(r"did you mean temperature\?")
    child.expect(PROMPT)
    child.sendline("/set parameter num_ctx 4096")
    child.expect("Set parameter 'num_ctx' to '4096'")
    child.expect(PROMPT)
    assert fake.requests == []  # nothing went to the model
    child.sendline("/set system Be brief.")
    child.expect("Set system message.")
    child.sendline("/show")
    child.expect("Capabilities")
    child.sendline("now a message")
    child.expect("You said: now a message")
    child.expect(PROMPT)
    sent = fake.requests[-1]
    assert sent["options"] == {"num_ctx": 4096}
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    child.sendcontrol("d")
    assert finish(child) == 0


def test_triple_quotes_make_one_message_of_several_lines(fake: FakeOllama) -> None:
    child = spawn("--host", fake.url, "chat")
    child.expect(PROMPT)
    child.sendline('"""first line')
    child.expect(r"\.\.\. ")
    child.sendline("/not a command here")
    child.expect(r"\.\.\. ")
    child.sendline('last line"""')
    child.expect("You said: first line")
    child.expect(PROMPT)
    assert fake.requests[-1]["messages"][-1]["content"] == (
        "first line\n/not a command here\nlast line")
    child.sendline('"""/etc/hosts on one line"""')
    child.expect("You said: /etc/hosts on one line")
    child.expect(PROMPT)
    child.sendline("/bye")
    assert finish(child) == 0


def test_json_works_in_a_session(fake: FakeOllama) -> None:
    child = spawn("--host", fake.url, "chat", "--json", "--think", "off")
    child.expect(PROMPT)
    child.sendline("hi")
    child.expect(PROMPT)
    lines = [ANSI.sub("", line) for line in str(child.before).splitlines()]
    child.sendline("/bye")
    assert finish(child) == 0
    chunks = [json.loads(line) for line in lines if line.startswith("{")]
    assert chunks and chunks[-1]["done"] is True
    assert "".join(c["message"]["content"] for c in chunks) == "You said: hi"


def test_a_session_checks_the_server_before_its_first_prompt() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    child = spawn("--host", url, "chat")
    assert finish(child) == 3
    screen = str(child.before)
    assert f"cannot connect to Ollama at {url}: connection refused" in screen
    assert PROMPT not in screen


def test_a_missing_model_is_offered_and_refusing_ends_the_session(fake: FakeOllama) -> None:
    child = spawn("--host", fake.url, "chat", "-m", "tinyllama")
    child.expect(r"model 'tinyllama' is not at \S+\. Pull it now\? \[Y/n\] ")
    child.sendline("n")
    assert finish(child) == 4
    assert "Pull it first: ollama-stream pull tinyllama" in str(child.before)
    assert fake.requests == [] and "tinyllama:latest" not in fake.models


def test_a_missing_model_is_pulled_when_accepted(fake: FakeOllama) -> None:
    child = spawn("--host", fake.url, "run", "tinyllama")
    child.expect(r"Pull it now\? \[Y/n\] ")
    child.sendline("")  # the default: yes
    child.expect("success")
    child.expect("Chatting with tinyllama")
    child.expect(PROMPT)
    child.sendline("hi")
    child.expect("You said: hi")
    child.expect(PROMPT)
    child.sendline("/bye")
    assert finish(child) == 0
    assert "tinyllama:latest" in fake.models


def test_run_with_a_prompt_pulls_a_missing_model_on_a_terminal(fake: FakeOllama) -> None:
    child = spawn("--host", fake.url, "run", "tinyllama", "hello")
    child.expect(r"Pull it now\? \[Y/n\] ")
    child.sendline("y")
    child.expect("You said: hello")
    assert finish(child) == 0


@pytest.mark.parametrize("columns", [60, 80])
def test_the_pull_bar_fits_the_terminal(fake: FakeOllama, columns: int) -> None:
    child = spawn("--host", fake.url, "pull", "tinyllama", columns=columns)
    assert finish(child) == 0
    screen = str(child.before)
    drawn = [ANSI.sub("", piece) for piece in re.split(r"\r\n|\r|\n", screen)]
    bars = [piece for piece in drawn if "%" in piece]
    assert bars and any("█" in piece and "100%" in piece for piece in bars)
    too_wide = [piece for piece in drawn if len(piece) >= columns]
    assert not too_wide, too_wide  # the last column stays free: nothing wraps
    assert "success" in drawn


def test_thinking_and_the_summary_show_on_a_terminal(fake: FakeOllama) -> None:
    fake.queue_reply(thinking="Reasoning shown.", content="The answer.")
    child = spawn("--host", fake.url, "chat", "--think", "hi")
    assert finish(child) == 0
    screen = ANSI.sub("", str(child.before))
    assert "Thinking\r\nReasoning shown.\r\n\r\nThe answer." in screen
    assert re.search(r"\[\d+ tokens, [\d.]+ tokens/s, first token in [\d.]+s\]", screen)
    fake.queue_reply(thinking="Reasoning hidden.", content="The answer.")
    hidden = spawn("--host", fake.url, "chat", "--think", "--hidethinking", "hi")
    assert finish(hidden) == 0
    assert "Reasoning hidden" not in str(hidden.before) and "The answer." in str(hidden.before)


def test_set_verbose_prints_the_timings_in_a_session(fake: FakeOllama) -> None:
    child = spawn("--host", fake.url, "chat")
    child.expect(PROMPT)
    child.sendline("/set verbose")
    child.expect("Set 'verbose' mode.")
    child.sendline("hi")
    child.expect(r"eval rate:\s+[\d.]+ tokens/s")
    child.expect(PROMPT)
    child.sendline("/bye")
    assert finish(child) == 0
