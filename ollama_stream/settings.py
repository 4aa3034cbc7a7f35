"""Which client serves a model (`client_for`: the native API, or LiteLLM for other providers) and
the Settings read from the environment for the client and the CLI. Imported on first use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .backends import infer_provider, native_model_name
from .client import AsyncOllama
from .config import hide_credentials, resolve_endpoint

__all__ = ["PROVIDERS", "THINKING_VALUES", "Settings", "client_for"]


PROVIDERS = ("ollama", "litellm")
THINKING_VALUES: dict[str, bool | str] = {"low": "low", "medium": "medium", "high": "high",
                                          "max": "max", "true": True, "false": False}
_BOOLEANS = {"true": True, "1": True, "yes": True, "on": True,
             "false": False, "0": False, "no": False, "off": False}


@dataclass(frozen=True, repr=False)
class Settings:
    """Settings from the environment, validated, for the client and the CLI.

    OLLAMA_HOST (the server), OLLAMA_API_KEY (a bearer token), MODEL (e.g. `ollama/gpt-oss:20b`,
    `openai/gpt-4o`), MODEL_PROVIDER (`ollama` for the native API, `litellm` to route through
    LiteLLM; inferred from MODEL when unset), OLLAMA_THINKING (`low|medium|high|max|true|false`) and
    OLLAMA_HIDE_THINKING (`true|false`: renderers leave thinking out; the accumulated message still
    keeps it).
    """

    host: str | None = None
    api_key: str | None = None
    provider: str | None = None
    model: str | None = None
    think: bool | str | None = None
    hide_thinking: bool = False

    def __repr__(self) -> str:
        """The settings without their secrets: the API key and any password in the host."""
        host = resolve_endpoint(self.host)[0] if self.host else None
        key = "'***'" if self.api_key else "None"
        return (f"Settings(host={host!r}, api_key={key}, provider={self.provider!r}, "
                f"model={self.model!r}, think={self.think!r}, "
                f"hide_thinking={self.hide_thinking!r})")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and check the variables; a bad value raises ValueError naming the variable and what
        it allows."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip().strip("\"'").strip() or None if value is not None else None

        host = get("OLLAMA_HOST")
        if host is not None:
            try:
                url, credentials = resolve_endpoint(host)
            except (ValueError, TypeError) as exc:
                shown = hide_credentials(env["OLLAMA_HOST"])  # never a password in a message
                raise ValueError(f"OLLAMA_HOST={shown!r} is not usable: {exc}") from None
            host = host if credentials else url  # credentials stay for the client's basic auth
        provider = get("MODEL_PROVIDER")
        if provider is not None:
            provider = provider.lower()
            if provider not in PROVIDERS:
                raise ValueError(f"MODEL_PROVIDER={env['MODEL_PROVIDER']!r}: allowed values are "
                                 f"{', '.join(PROVIDERS)}")
        think: bool | str | None = None
        thinking = get("OLLAMA_THINKING")
        if thinking is not None:
            if thinking.lower() not in THINKING_VALUES:
                raise ValueError(f"OLLAMA_THINKING={env['OLLAMA_THINKING']!r}: allowed values are "
                                 f"{'|'.join(THINKING_VALUES)}")
            think = THINKING_VALUES[thinking.lower()]
        hide = get("OLLAMA_HIDE_THINKING")
        if hide is not None and hide.lower() not in _BOOLEANS:
            raise ValueError(f"OLLAMA_HIDE_THINKING={env['OLLAMA_HIDE_THINKING']!r}: allowed "
                             "values are true|false")
        return cls(host=host, api_key=get("OLLAMA_API_KEY"), provider=provider,
                   model=get("MODEL"), think=think,
                   hide_thinking=_BOOLEANS[hide.lower()] if hide else False)

    def client(self, model: str | None = None,
               **client_options: Any) -> tuple[AsyncOllama, str]:
        """`client_for` with these settings: (an AsyncOllama, the model name to pass to its
        chat)."""
        name = model or self.model
        if not name:
            raise ValueError("no model: pass one, or set MODEL (e.g. MODEL=ollama/qwen3)")
        if self.api_key and "headers" not in client_options:
            client_options["headers"] = {"Authorization": f"Bearer {self.api_key}"}
        return client_for(name, host=self.host, provider=self.provider, **client_options)


def client_for(model: str, *, host: str | None = None, api_base: str | None = None,
               provider: str | None = None, **client_options: Any) -> tuple[AsyncOllama, str]:
    """A client for `model` and the model name to pass to its `chat`.

    `ollama/NAME`, `ollama_chat/NAME` or a bare name -> the native Ollama client (prefix stripped);
    any other `provider/model` -> an AsyncOllama driving the LiteLLM backend (needs the `litellm`
    extra). `provider="litellm"` sends an Ollama model through LiteLLM too (`api_base` defaults to
    the Ollama host)::

        client, name = client_for("openai/gpt-4o")
        async with client:
            result = await client.chat(name, messages).result()
    """
    if provider is not None and provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}, got {provider!r}")
    native = native_model_name(model)
    if provider == "ollama" and native is None:
        raise ValueError(f"provider 'ollama' cannot serve {model!r}: it names the "
                         f"{infer_provider(model)!r} provider")
    if native is not None and provider != "litellm":
        return AsyncOllama(host, **client_options), native
    from .backends.litellm import LiteLLMBackend

    if native is not None and api_base is None:
        api_base = resolve_endpoint(host)[0]
    routed = f"ollama_chat/{native}" if native is not None else model
    backend = LiteLLMBackend(model=routed, api_base=api_base)
    return AsyncOllama(host, backend=backend, **client_options), model
