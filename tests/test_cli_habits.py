"""The command as people coming from `ollama` type it, run as `python -m ollama_stream`
subprocesses with stdin and stdout piped, against a FakeOllama in a thread: options after the
subcommand, `run`/`ls`/`rm`/`cp`/`push`/`create`, `--think` alone, where the summary and the
thinking go when stdout is redirected, stdin with a prompt, `--option` checks, a closed pipe, a
refused connection, and the help."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ollama_stream import Ollama
from ollama_stream.cli import _modelfile, build_parser, parse
from ollama_stream.cli._chat import gather_prompt
from ollama_stream.cli._options import parse_options
from ollama_stream.testing import FakeModel, FakeOllama

from .test_cli import OWN_SETTINGS, free_port, run


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


def environ() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in OWN_SETTINGS}
    return {**env, "PYTHONIOENCODING": "utf-8"}


def run_many(*commands: list[str]) -> list[tuple[int, str, str]]:
    """Independent commands at once (each is mostly interpreter start-up): (code, out, err)."""
    procs = [subprocess.Popen([sys.executable, "-m", "ollama_stream", *argv], env=environ(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, encoding="utf-8")
             for argv in commands]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        results.append((proc.returncode, out, err))
    return results


# -- options where people put them -----------------------------------------------------------------

def test_host_and_debug_work_after_the_subcommand(fake: FakeOllama) -> None:
    chat, debug, listed = run_many(
        ["chat", "-m", "qwen3", "hi", "--host", fake.url, "--think", "off"],
        ["chat", "-m", "nosuchmodel", "hi", "--host", fake.url, "--debug"],
        ["list", "--host", fake.url])
    assert chat == (0, "You said: hi\n", "")
    assert debug[0] == 1 and "Traceback (most recent call last)" in debug[2]
    assert listed[0] == 0 and listed[1].startswith("NAME")


def test_every_subcommand_help_lists_the_connection_options_and_an_example() -> None:
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"run", "list", "ls", "rm", "cp", "stop", "push", "create", "chat", "models"} <= set(
        commands)
    for name, sub in commands.items():
        text = sub.format_help()
        assert re.search(r"^example:\n  ollama-stream ", text, re.M), name
        assert "--debug" in text, name
        assert ("--host URL" in text) == (name not in ("demo", "fake-server")), name
    shown = run("rm", "--help")  # as a person sees it
    assert shown.returncode == 0 and "example:\n  ollama-stream rm mymodel" in shown.stdout


def test_bare_command_prints_help() -> None:
    result = run()
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ollama-stream")
    assert "run " in result.stdout and "list (ls, models)" in result.stdout


def test_host_is_refused_where_no_server_is_talked_to() -> None:
    result = run("--host", "http://127.0.0.1:1", "demo")
    assert result.returncode == 2 and "leave --host out" in result.stderr


# -- the ollama command's words --------------------------------------------------------------------

def test_run_takes_the_model_first_and_joins_the_prompt(fake: FakeOllama) -> None:
    result = run("run", "llama3.2", "why", "is", "it", "blue?", "--host", fake.url)
    assert result.returncode == 0, result.stderr
    assert fake.requests[-1]["model"] == "llama3.2"
    assert fake.requests[-1]["messages"] == [{"role": "user", "content": "why is it blue?"}]


def test_chat_takes_a_model_as_its_first_word(fake: FakeOllama) -> None:
    result = run("chat", "llama3.2", "hello there", "--host", fake.url)
    assert result.returncode == 0, result.stderr
    assert fake.requests[-1]["model"] == "llama3.2"
    assert fake.requests[-1]["messages"][-1]["content"] == "hello there"
    one = run("chat", "hello there", "--host", fake.url)  # one word: the prompt, as before
    assert one.returncode == 0 and fake.requests[-1]["model"] == "qwen3"


def test_unquoted_words_taken_as_a_model_say_what_to_type(fake: FakeOllama) -> None:
    result = run("chat", "why", "is", "the", "sky", "blue", "--host", fake.url)
    assert result.returncode == 4
    assert len(result.stderr.splitlines()) == 1
    assert 'quote them: ollama-stream chat "why is the sky blue"' in result.stderr
    assert "ollama-stream pull why" in result.stderr


def test_list_ls_and_models_are_one_command(fake: FakeOllama) -> None:
    results = run_many(*([name, "--host", fake.url] for name in ("list", "ls", "models")))
    outputs = {out for code, out, _ in results if code == 0}
    assert len(outputs) == 1 and "qwen3:latest" in outputs.pop()


def test_cp_and_rm(fake: FakeOllama) -> None:
    copied = run("cp", "qwen3", "my-qwen", "--host", fake.url)
    assert copied.returncode == 0 and copied.stdout == "copied 'qwen3' to 'my-qwen'\n"
    assert "my-qwen:latest" in fake.models
    removed = run("rm", "my-qwen", "nope", "--host", fake.url)
    assert removed.stdout == "deleted 'my-qwen'\n" and removed.returncode == 4
    assert "model 'nope' not found" in removed.stderr and "ollama-stream list" in removed.stderr
    assert "my-qwen:latest" not in fake.models
    missing = run("cp", "nope", "other", "--host", fake.url)
    assert missing.returncode == 4 and "'nope' not found" in missing.stderr


def test_push_streams_its_progress(fake: FakeOllama) -> None:
    result = run("push", "qwen3", "--host", fake.url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "success" and any(line.startswith("pushing ") for line in lines)


def test_create_from_a_modelfile_with_a_local_gguf(fake: FakeOllama, tmp_path: Path) -> None:
    (tmp_path / "weights.gguf").write_bytes(b"GGUF" + bytes(64))
    (tmp_path / "Modelfile").write_text(
        "# a comment\nFROM ./weights.gguf\nPARAMETER temperature 0.5\n"
        'PARAMETER stop "<|end|>"\nPARAMETER stop x\nSYSTEM """You are\nbrief."""\n'
        "MESSAGE user Hi\nMESSAGE assistant Hello.\n")
    result = run("create", "mine", "-f", str(tmp_path / "Modelfile"), "--host", fake.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"copying file {tmp_path / 'weights.gguf'}"
    assert result.stdout.splitlines()[-1] == "success"
    with Ollama(fake.url) as client:
        info = client.show("mine")
    assert info.system == "You are\nbrief."
    assert re.search(r'^stop +"<\|end\|>"\nstop +"x"\ntemperature +0.5$', info.parameters)
    body = next(r.body for r in fake.received if r.path == "/api/create")
    assert body["messages"] == [{"role": "user", "content": "Hi"},
                                {"role": "assistant", "content": "Hello."}]
    assert list(body["files"]) == ["weights.gguf"]


def test_create_from_a_model(fake: FakeOllama) -> None:
    result = run("create", "brief", "--from", "qwen3", "--system", "Be brief.", "--host", fake.url)
    assert result.returncode == 0, result.stderr
    with Ollama(fake.url) as client:
        assert client.show("brief").system == "Be brief."


def test_a_bad_modelfile_is_one_line_naming_the_problem(fake: FakeOllama, tmp_path: Path) -> None:
    (tmp_path / "Modelfile").write_text("FROM qwen3\nPARAMETER temprature 0.5\n")
    result = run("create", "x", "-f", str(tmp_path / "Modelfile"), "--host", fake.url)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert "PARAMETER 'temprature' is not an option Ollama reads (did you mean temperature?" in (
        result.stderr)
    assert not any(r.path == "/api/create" for r in fake.received)


@pytest.mark.parametrize(("modelfile", "message"), [
    ("PARAMETER temperature 0.5\n", "has no FROM line"),
    ("FROM qwen3\nPARAMETER num_ctx lots\n", "PARAMETER num_ctx takes an integer, got 'lots'"),
    ("FROM qwen3\nSYSTEM \"\"\"never closed\n", "(line 2): the quoted value of SYSTEM is never"),
    ("FROM qwen3\nMESSAGE tool hi\n", "the MESSAGE role must be one of system, user, assistant"),
    ("FROM qwen3\nPROMPT hi\n", "(line 2): command must be one of FROM, LICENSE"),
    ("FROM qwen3\nDRAFT ./draft.gguf\n", "DRAFT is not supported by ollama-stream create"),
    ("FROM qwen3\nREQUIRES soon\n", "REQUIRES soon: it must be a version such as 0.14.0"),
], ids=["no-from", "type", "open-quote", "role", "command", "draft", "requires"])
def test_modelfile_mistakes_say_what_and_where(tmp_path: Path, modelfile: str,
                                                message: str) -> None:
    (tmp_path / "Modelfile").write_text(modelfile)
    with pytest.raises(ValueError) as info:
        _modelfile.read(str(tmp_path / "Modelfile"))
    assert message in str(info.value)


def test_a_modelfile_reads_as_ollamas_parser_reads_it(tmp_path: Path) -> None:
    (tmp_path / "adapter.bin").write_bytes(b"lora")
    (tmp_path / "Modelfile").write_text(
        'from llama3.2\n\n  # indented comment\nTEMPLATE """{{ .Prompt }}\n"""\n'
        "PARAMETER num_ctx 4096\nPARAMETER use_mmap false\nPARAMETER mirostat 1\n"
        'LICENSE "MIT"\nLICENSE """two\nlines"""\nADAPTER ./adapter.bin\nREQUIRES v0.14.0\n'
        "RENDERER qwen3-coder\nPARSER qwen3-coder\nMESSAGE system Be kind.\n")
    plan = _modelfile.read(str(tmp_path / "Modelfile"))
    assert plan.arguments == {
        "from_": "llama3.2", "template": "{{ .Prompt }}\n", "license": ["MIT", "two\nlines"],
        "parameters": {"num_ctx": 4096, "use_mmap": False}, "requires": "0.14.0",
        "renderer": "qwen3-coder", "parser": "qwen3-coder",
        "messages": [{"role": "system", "content": "Be kind."}]}
    assert plan.adapters == [tmp_path / "adapter.bin"] and plan.files == []


def test_create_without_a_modelfile_says_what_to_give(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "ollama_stream", "create", "x"], cwd=tmp_path,
                            capture_output=True, text=True, env=environ(), timeout=60,
                            stdin=subprocess.DEVNULL, check=False)
    assert result.returncode == 2
    assert "-f PATH (there is no ./Modelfile), or --from MODEL" in result.stderr


# -- thinking, and what a redirected stdout holds --------------------------------------------------

def test_think_alone_means_on_and_the_next_word_is_the_prompt(fake: FakeOllama) -> None:
    result = run("chat", "-m", "qwen3", "--think", "hi", "--host", fake.url)
    assert result.returncode == 0, result.stderr
    assert fake.requests[-1]["think"] is True
    assert fake.requests[-1]["messages"] == [{"role": "user", "content": "hi"}]
    level = run("run", "gpt-oss:20b", "--think", "high", "hi", "--host", fake.url)
    assert level.returncode == 0 and fake.requests[-1]["think"] == "high"
    last = run("run", "qwen3", "hi", "--think", "--host", fake.url)  # last, before an option
    assert last.returncode == 0 and fake.requests[-1]["think"] is True


def test_think_with_a_value_outside_its_set_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse(["chat", "--think=lots", "hi"])
    assert info.value.code == 2
    assert "--think takes true|false|on|off|low|medium|high|max" in capsys.readouterr().err


def test_a_redirected_stdout_holds_the_answer_only(fake: FakeOllama) -> None:
    fake.queue_reply(thinking="Secret reasoning.", content="The answer.")
    result = run("chat", "--think", "hi", "--host", fake.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "The answer.\n" and result.stderr == ""
    fake.queue_reply(thinking="Shown reasoning.", content="The answer.")
    shown = run("chat", "--think", "--show-thinking", "hi", "--host", fake.url)
    assert shown.stdout == "Thinking\nShown reasoning.\n\nThe answer.\n"
    fake.queue_reply(thinking="Hidden.", content="The answer.")
    hidden = run("chat", "--think", "--hidethinking", "hi", "--host", fake.url)
    assert hidden.returncode == 0 and hidden.stdout == "The answer.\n"


def test_verbose_prints_ollamas_timings_on_stderr(fake: FakeOllama) -> None:
    result = run("run", "qwen3", "hi", "--verbose", "--host", fake.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "You said: hi\n"
    names = [line.split(":")[0] for line in result.stderr.splitlines()]
    assert names[:2] == ["total duration", "load duration"]
    assert {"prompt eval count", "eval count", "eval rate", "first token"} <= set(names)
    assert re.search(r"^eval rate:\s+[\d.]+ tokens/s$", result.stderr, re.M)


def test_quiet_and_verbose_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["chat", "--quiet", "--verbose", "hi"])
    assert "not allowed with argument" in capsys.readouterr().err


# -- the prompt: words, stdin, `-` -----------------------------------------------------------------

def test_a_prompt_and_piped_stdin_are_joined_stdin_first(fake: FakeOllama) -> None:
    result = run("run", "qwen3", "Summarise:", "--host", fake.url, input="The text.\n")
    assert result.returncode == 0, result.stderr
    # `ollama run`'s join: stdin's content, a space, the words
    assert fake.requests[-1]["messages"][-1]["content"] == "The text.\n Summarise:"


def test_a_dash_is_replaced_by_stdin(fake: FakeOllama) -> None:
    result = run("run", "qwen3", "Translate", "-", "please", "--host", fake.url,
                 input="bonjour\n")
    assert result.returncode == 0, result.stderr
    assert fake.requests[-1]["messages"][-1]["content"] == "Translate bonjour\n please"


@pytest.mark.parametrize(("words", "stdin", "why"), [
    ([], "", "stdin was empty"), (["  "], "", "the words given are blank and stdin was empty"),
], ids=["empty-stdin", "blank-words"])
def test_an_empty_prompt_is_refused(fake: FakeOllama, words: list[str], stdin: str,
                                    why: str) -> None:
    result = run("chat", *words, "--host", fake.url, input=stdin)
    assert result.returncode == 2
    assert result.stderr.startswith(f"ollama-stream: nothing to send: {why}.")
    assert fake.requests == []


def test_a_blank_dash_is_an_empty_prompt() -> None:
    with pytest.raises(ValueError, match="nothing to send: stdin was empty"):
        gather_prompt(["-"], io.StringIO(" \n"))


# -- model options -------------------------------------------------------------------------------

def test_an_option_is_checked_against_ollamas() -> None:
    typo = run("chat", "--option", "temprature=1", "hi", "--host", "http://127.0.0.1:1")
    assert typo.returncode == 2 and len(typo.stderr.splitlines()) == 1
    assert ("'temprature' is not an option Ollama reads (did you mean temperature? the options "
            "are: draft_num_predict, frequency_penalty,") in typo.stderr
    wrong = run("chat", "--option", "num_ctx=8k", "hi", "--host", "http://127.0.0.1:1")
    assert wrong.returncode == 2
    assert wrong.stderr == "ollama-stream: --option num_ctx takes an integer, got '8k'\n"


@pytest.mark.parametrize(("option", "message"), [
    ("top_p=high", "--option top_p takes a number, got 'high'"),
    ("top_p=nan", "--option top_p takes a number, got 'nan'"),
    ("use_mmap=maybe", "--option use_mmap takes true or false, got 'maybe'"),
    ('stop=["a", 1]', "--option stop takes a list of strings"),
    ("mirostat=1", "--option mirostat: Ollama no longer reads this option"),
    ("=1", "--option takes key=value, got '=1'"),
], ids=["number", "nan", "boolean", "strings", "removed", "no-name"])
def test_each_kind_of_option_is_checked(option: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_options([option])
    assert message in str(info.value)


def test_options_reach_the_server_typed(fake: FakeOllama) -> None:
    result = run("chat", "hi", "--option", "num_ctx=8192", "--option", "top_p=0.9",
                 "--option", "stop=a", "--option", "stop=b", "--option", "use_mmap=false",
                 "--keepalive", "5m", "--host", fake.url)
    assert result.returncode == 0, result.stderr
    sent = fake.requests[-1]
    assert sent["options"] == {"num_ctx": 8192, "top_p": 0.9, "stop": ["a", "b"],
                               "use_mmap": False}
    assert sent["keep_alive"] == "5m"


# -- failures people meet --------------------------------------------------------------------------

def test_a_closed_pipe_ends_quietly_with_141(fake: FakeOllama) -> None:
    fake.queue_reply(content="word " * 5000, chunk_delay=0.001)
    proc = subprocess.Popen([sys.executable, "-m", "ollama_stream", "--host", fake.url, "chat",
                             "talk"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=environ())
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(4) == b"word"  # it is streaming; then the reader goes away (| head)
    proc.stdout.close()
    assert proc.wait(timeout=30) == 141
    assert proc.stderr.read() == b""  # no traceback, no "Exception ignored"
    proc.stderr.close()


def test_refused_on_loopback_is_one_line_after_one_attempt() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run("chat", "hi", "--host", url)
    assert result.returncode == 3 and result.stdout == ""
    assert result.stderr == (f"ollama-stream: cannot connect to Ollama at {url}: connection "
                             "refused. Start it with `ollama serve` (or try this without Ollama: "
                             "ollama-stream fake-server), or point --host / OLLAMA_HOST at it.\n")


def test_a_model_without_thinking_refuses_think_in_one_line() -> None:
    with FakeOllama(models=[FakeModel("tiny", capabilities=["completion"])]) as fake:
        result = run("run", "tiny", "hi", "--think", "--host", fake.url)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert '"tiny" does not support thinking' in result.stderr
