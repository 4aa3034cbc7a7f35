"""The fake's model endpoints that answer at once: `/`, `/api/version`, `/api/tags`, `/api/show`,
`/api/ps`, `/api/copy`, `/api/delete` and the blob store (`/api/blobs/:digest`)."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from aiohttp import web

from ._store import _BLOBS_DIR, _FILE_TYPES, _ModelInfo, _now, _timestamp
from ._wire import _json, _json_error, _Wire

_DIGEST = re.compile(r"^sha256[:-][0-9a-fA-F]{64}$")  # what Ollama's blob store accepts
# the long tokenizer arrays of model_info: `/api/show` empties arrays longer than 5 unless verbose,
# as Ollama does
_TOKENIZER_ARRAYS: dict[str, list[Any]] = {
    "tokenizer.ggml.tokens": ["<unk>", "<s>", "</s>", "!", '"', "#", "$", "%"],
    "tokenizer.ggml.token_type": [2, 3, 3, 1, 1, 1, 1, 1],
    "tokenizer.ggml.merges": ["\u0120 \u0120", "\u0120 t", "i n", "\u0120 a", "h e", "e r"],
}


def _go_value(value: Any) -> str:
    """A parameter value as Go's `%#v` prints it in /api/show's `parameters`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    return str(value)


def _parameter_lines(parameters: Mapping[str, Any], fmt: Callable[[str, Any], str]) -> list[str]:
    lines = []
    for key in sorted(parameters):
        values = parameters[key]
        for value in values if isinstance(values, list) else [values]:
            lines.append(fmt(key, value))
    return lines


def _expiry(expires: float) -> str:
    """`expires_at` of /api/ps; a model kept forever expires when Go's longest duration runs out."""
    if math.isinf(expires):
        longest = timedelta(microseconds=(2**63 - 1) // 1000)
        return _timestamp(datetime.now(timezone.utc) + longest)
    return _timestamp(datetime.fromtimestamp(expires, timezone.utc))


class _ModelRoutes(_Wire):
    """The model store's read, copy and delete endpoints and the blobs, mixed into FakeOllama."""

    async def _root(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return web.Response(text="Ollama is running")

    async def _version(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return _json({"version": self.version}, charset="utf-8")

    async def _tags(self, request: web.Request) -> web.StreamResponse:
        """Most recently modified first, as Ollama sorts them (ties by name)."""
        await self._record(request)
        infos = sorted(((name, self._info(name)) for name in self.models), key=lambda item: item[0])
        infos.sort(key=lambda item: item[1].modified_at, reverse=True)
        models = [{"name": name, "model": name, "modified_at": info.modified_at, "size": info.size,
                   "digest": info.digest, "details": info.details()} for name, info in infos]
        return _json({"models": models})

    async def _ps(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        models = []
        for entry in self._in_memory():
            in_memory = int(entry.info.size * 1.1) + entry.context_length * 64 * 1024
            models.append({"name": entry.name, "model": entry.name, "size": in_memory,
                           "digest": entry.info.digest, "details": entry.info.details(),
                           "expires_at": _expiry(entry.expires), "size_vram": in_memory,
                           "context_length": entry.context_length})
        return _json({"models": models})

    # -- /api/show --------------------------------------------------------------------------------

    async def _show(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_body(request)
        if isinstance(body, web.Response):
            return body
        model = body.get("model") or body.get("name")
        if not model:
            return _json_error(400, "model is required")
        if not self._knows(model):
            return _json_error(404, f"model '{model}' not found")
        canonical = self._canonical(str(model))
        info = self._info(canonical)
        parameters = _parameter_lines(info.parameters, lambda k, v: f"{k:<30} {_go_value(v)}")
        shown: dict[str, Any] = {
            "license": info.license,
            "modelfile": self._modelfile(canonical, info),
            "parameters": "\n".join(parameters),
            "template": info.template,
        }
        if info.system:
            shown["system"] = info.system
        model_info = self._model_info(info, bool(body.get("verbose")))
        shown.update(details=info.details(), model_info=model_info,
                     capabilities=info.capabilities, modified_at=info.modified_at)
        return _json(shown)

    @staticmethod
    def _modelfile(name: str, info: _ModelInfo) -> str:
        weights = info.layers[0][0].replace(":", "-")
        lines = ['# Modelfile generated by "ollama show"',
                 "# To build a new Modelfile based on this, replace FROM with:",
                 f"# FROM {name}", "", f"FROM {_BLOBS_DIR}/{weights}",
                 f'TEMPLATE """{info.template}"""']
        if info.system:
            lines.append(f'SYSTEM """{info.system}"""')
        lines += _parameter_lines(info.parameters, lambda k, v: f"PARAMETER {k} {v}")
        if info.license:
            lines.append(f'LICENSE """{info.license}"""')
        return "\n".join(lines) + "\n"

    def _model_info(self, info: _ModelInfo, verbose: bool) -> dict[str, Any]:
        arch = info.family
        model_info: dict[str, Any] = {
            "general.architecture": arch,
            "general.basename": arch,
            "general.file_type": _FILE_TYPES.get(info.quantization, 15),
            "general.parameter_count": info.parameter_count,
            "general.quantization_version": 2,
            f"{arch}.attention.head_count": 32,
            f"{arch}.block_count": 36,
            f"{arch}.context_length": info.context_length,
            f"{arch}.embedding_length": self.embedding_length,
            "tokenizer.ggml.bos_token_id": 1,
            "tokenizer.ggml.eos_token_id": 2,
            "tokenizer.ggml.model": "bert" if info.embedding else "gpt2",
        }
        if info.embedding:
            model_info[f"{arch}.pooling_type"] = 1
        for key, values in _TOKENIZER_ARRAYS.items():
            model_info[key] = list(values) if verbose else []
        return dict(sorted(model_info.items()))

    # -- /api/copy and /api/delete ----------------------------------------------------------------

    async def _copy(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_body(request)
        if isinstance(body, web.Response):
            return body
        source, destination = body.get("source"), body.get("destination")
        if not source or not isinstance(source, str):
            return _json_error(400, f'source "{source or ""}" is invalid')
        if not destination or not isinstance(destination, str):
            return _json_error(400, f'destination "{destination or ""}" is invalid')
        if not self._knows(source):
            return _json_error(404, f'model "{source}" not found')
        self._add_model(destination, dataclasses.replace(self._info(source), modified_at=_now()))
        return web.Response(status=200)

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_body(request)
        if isinstance(body, web.Response):
            return body
        model = body.get("model") or body.get("name")
        if not model or not isinstance(model, str):
            return _json_error(400, f'name "{model or ""}" is invalid')
        if not self._knows(model):
            return _json_error(404, f"model '{model}' not found")
        canonical = self._canonical(model)
        self.models.discard(canonical)
        # a loaded model stays in /api/ps until it expires, as with Ollama
        self._infos.pop(canonical, None)
        return web.Response(status=200)

    # -- /api/blobs/:digest -----------------------------------------------------------------------

    async def _head_blob(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        digest = request.match_info["digest"]
        if not _DIGEST.match(digest):
            return _json_error(400, "invalid digest format")
        # Ollama stores sha256:x as the file sha256-x
        if digest.replace("-", ":", 1) not in self.blobs:
            return _json_error(404, f'blob "{digest}" not found')
        return web.Response(status=200)

    async def _create_blob(self, request: web.Request) -> web.StreamResponse:
        data: bytes = await self._record(request, raw_body=True)
        digest = request.match_info["digest"]
        if not _DIGEST.match(digest):
            return _json_error(400, "invalid digest format")
        if digest.replace("-", ":", 1) in self.blobs:
            return web.Response(status=200)  # already there: Ollama does not read the body
        actual = f"sha256:{hashlib.sha256(data).hexdigest()}"
        if actual != digest:
            return _json_error(400, f'digest mismatch, expected "{digest}", got "{actual}"')
        self.blobs[digest] = data
        return web.Response(status=201)
