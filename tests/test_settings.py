"""Provider routing, settings from the environment, and gpt-oss thinking levels."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from ollama_stream import AsyncOllama, Settings, client_for, infer_provider
from ollama_stream.backends import native_model_name
from ollama_stream.endpoints import build_generate_request
from ollama_stream.protocol import build_chat_request

HAS_LITELLM = importlib.util.find_spec("litellm") is not None


@pytest.mark.parametrize("model,provider,native", [
    ("qwen3", "ollama", "qwen3"),
    ("qwen3:8b", "ollama", "qwen3:8b"),
    ("ollama/gpt-oss:20b", "ollama", "gpt-oss:20b"),
    ("ollama_chat/llama3.2", "ollama", "llama3.2"),
    ("library/qwen3", "ollama", "library/qwen3"),
    ("someuser/custom-model:q4", "ollama", "someuser/custom-model:q4"),
    ("openai/gpt-4o", "openai", None),
    ("anthropic/claude-sonnet-4", "anthropic", None),
    ("gemini/gemini-2.0-flash", "gemini", None),
])
def test_infer_provider(model: str, provider: str, native: str | None) -> None:
    assert infer_provider(model) == provider
    assert native_model_name(model) == native


def test_infer_provider_rejects_empty() -> None:
    with pytest.raises(ValueError, match="model"):
        infer_provider("")


def test_client_for_native_models_strips_the_prefix() -> None:
    client, name = client_for("ollama/gpt-oss:20b", host="127.0.0.1:1234")
    assert isinstance(client, AsyncOllama) and client.backend is None
    assert name == "gpt-oss:20b" and client.host == "http://127.0.0.1:1234"


@pytest.mark.skipif(not HAS_LITELLM, reason="needs the litellm extra")
def test_client_for_other_providers_uses_litellm() -> None:
    from ollama_stream.backends.litellm import LiteLLMBackend

    client, name = client_for("openai/gpt-4o")
    assert isinstance(client.backend, LiteLLMBackend) and client.backend.model == "openai/gpt-4o"
    assert name == "openai/gpt-4o"
    routed, routed_name = client_for("qwen3", host="127.0.0.1:9", provider="litellm")
    assert isinstance(routed.backend, LiteLLMBackend)
    assert routed.backend.model == "ollama_chat/qwen3"
    assert routed.backend.api_base == "http://127.0.0.1:9"
    assert routed_name == "qwen3"


def test_client_for_checks_the_provider() -> None:
    with pytest.raises(ValueError, match="provider must be one of ollama, litellm"):
        client_for("qwen3", provider="azure")
    with pytest.raises(ValueError, match="cannot serve 'openai/gpt-4o'"):
        client_for("openai/gpt-4o", provider="ollama")


def test_settings_from_env_reads_and_validates_every_variable() -> None:
    settings = Settings.from_env({"OLLAMA_HOST": "gpu-box:11434", "OLLAMA_API_KEY": " key ",
                                  "MODEL_PROVIDER": "Ollama", "MODEL": "ollama/gpt-oss:20b",
                                  "OLLAMA_THINKING": "HIGH", "OLLAMA_HIDE_THINKING": "true"})
    assert settings == Settings(host="http://gpu-box:11434", api_key="key", provider="ollama",
                                model="ollama/gpt-oss:20b", think="high", hide_thinking=True)
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env({"OLLAMA_THINKING": "false",
                              "OLLAMA_HIDE_THINKING": "0"}).think is False


@pytest.mark.parametrize("env,message", [
    ({"MODEL_PROVIDER": "openai"}, "MODEL_PROVIDER='openai': allowed values are ollama, litellm"),
    ({"OLLAMA_THINKING": "lots"},
     "OLLAMA_THINKING='lots': allowed values are low|medium|high|max|true|false"),
    ({"OLLAMA_HIDE_THINKING": "maybe"},
     "OLLAMA_HIDE_THINKING='maybe': allowed values are true|false"),
    ({"OLLAMA_HOST": "ftp://x"}, "OLLAMA_HOST='ftp://x' is not usable"),
])
def test_bad_settings_name_the_variable_and_the_allowed_values(env: dict[str, str],
                                                               message: str) -> None:
    with pytest.raises(ValueError) as info:
        Settings.from_env(env)
    assert str(info.value).startswith(message)


def test_settings_make_a_client() -> None:
    client, name = Settings.from_env({"MODEL": "ollama/qwen3", "OLLAMA_HOST": ":1234",
                                      "OLLAMA_API_KEY": "k"}).client()
    assert name == "qwen3" and client.host == "http://127.0.0.1:1234"
    assert client._headers["Authorization"] == "Bearer k"
    with pytest.raises(ValueError, match="MODEL"):
        Settings().client()


@pytest.mark.parametrize("model", ["gpt-oss:20b", "gpt-oss", "library/gpt-oss:120b", "GPT-OSS:20b"])
def test_gpt_oss_takes_a_level_for_think_true(model: str) -> None:
    assert build_chat_request(model, [], think=True)["think"] == "medium"
    assert build_chat_request(model, [], think="high")["think"] == "high"
    assert build_chat_request(model, [], think=False)["think"] is False
    assert build_generate_request(model, "x", think=True)["think"] == "medium"


def test_other_models_keep_think_true() -> None:
    assert build_chat_request("qwen3", [], think=True)["think"] is True


def test_hide_thinking_keeps_thinking_in_the_history(monkeypatch: pytest.MonkeyPatch) -> None:
    # The renderers hide it; the accumulated message must still carry it (the spec needs it next
    # turn).
    import asyncio

    from ollama_stream.testing import FakeOllama

    async def main() -> Any:
        async with FakeOllama() as fake, AsyncOllama(fake.url) as client:
            fake.queue_reply(thinking="private", content="public")
            stream = client.chat("qwen3", [{"role": "user", "content": "hi"}], think=True)
            shown = [text async for text in stream.text()]
            return shown, stream.message

    shown, message = asyncio.run(main())
    assert shown == ["public"] and message.thinking == "private"
