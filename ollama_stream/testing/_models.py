"""The fake's model endpoints that answer at once: `/`, `/api/version`, `/api/tags`, `/api/show`,
`/api/ps`, `/api/copy`, `/api/delete` and the blob store (`/api/blobs/:digest`), with the fields
and texts of Ollama v0.33 (capabilities and lengths in /api/tags since v0.30)."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from . import _names
from ._gojson import F32, go_quote, go_time
from ._gotypes import COPY, DELETE, SHOW
from ._replies import version_tuple
from ._store import _BLOBS_DIR, _FILE_TYPES, _ModelInfo, _now
from ._wire import _json, _json_error, _Wire

_DIGEST = re.compile(r"^sha256[:-][0-9a-fA-F]{64}$")  # what Ollama's blob store accepts
# the long tokenizer arrays of model_info: without `verbose` Ollama does not read arrays at all,
# and they marshal as null
_TOKENIZER_ARRAYS: dict[str, list[Any]] = {
    "tokenizer.ggml.tokens": ["<unk>", "<s>", "</s>", "!", '"', "#", "$", "%"],
    "tokenizer.ggml.token_type": [2, 3, 3, 1, 1, 1, 1, 1],
    "tokenizer.ggml.merges": ["\u0120 \u0120", "\u0120 t", "i n", "\u0120 a", "h e", "e r"],
}
_VOCAB = 151_936
_TENSOR_TYPES = {"Q4_K_M": "Q4_K", "Q4_K_S": "Q4_K", "Q5_K_M": "Q5_K", "Q5_K_S": "Q5_K",
                 "Q3_K_M": "Q3_K", "Q3_K_S": "Q3_K", "Q3_K_L": "Q3_K"}


def _go_value(value: Any) -> str:
    """A parameter value as Go's `%#v` prints it in /api/show's `parameters`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return go_quote(value)
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
        moment = datetime.now(timezone.utc) + timedelta(microseconds=(2**63 - 1) // 1000)
    else:
        moment = datetime.fromtimestamp(expires, timezone.utc)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    return go_time((moment - epoch) // timedelta(microseconds=1) * 1000)


def _tensors(info: _ModelInfo, width: int) -> list[dict[str, Any]]:
    """A few of the model's tensors (Ollama lists them all), named and shaped like llama.cpp's."""
    weights = _TENSOR_TYPES.get(info.quantization, info.quantization)
    tensors = [{"name": "token_embd.weight", "type": weights, "shape": [width, _VOCAB]}]
    for block in range(2):
        for part, kind, shape in (("attn_norm", "F32", [width]), ("attn_q", weights, [width] * 2),
                                  ("attn_k", weights, [width] * 2),
                                  ("attn_v", weights, [width] * 2),
                                  ("attn_output", weights, [width] * 2),
                                  ("ffn_norm", "F32", [width]),
                                  ("ffn_up", weights, [width, width * 3]),
                                  ("ffn_down", weights, [width * 3, width])):
            tensors.append({"name": f"blk.{block}.{part}.weight", "type": kind, "shape": shape})
    tensors.append({"name": "output_norm.weight", "type": "F32", "shape": [width]})
    return tensors


class _ModelRoutes(_Wire):
    """The model store's read, copy and delete endpoints and the blobs, mixed into FakeOllama."""

    async def _root(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return web.Response(text="Ollama is running")  # gin's c.String: text/plain; charset=utf-8

    async def _version(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return _json({"version": self.version})

    def _width(self, info: _ModelInfo) -> int:
        return info.embedding_length or self.embedding_length

    async def _tags(self, request: web.Request) -> web.StreamResponse:
        """Most recently modified first, as Ollama sorts them (ties by name); capabilities and
        the two lengths are there since v0.30.0."""
        await self._record(request)
        recent = version_tuple(self.version) >= (0, 30, 0)
        infos = sorted(((name, self._info(name)) for name in self.models), key=lambda item: item[0])
        infos.sort(key=lambda item: item[1].modified_at, reverse=True)
        models = []
        for name, info in infos:
            entry: dict[str, Any] = {
                "name": name, "model": name, "modified_at": info.modified_at, "size": info.size,
                "digest": info.digest,
                "details": info.details(self._width(info) if recent else None)}
            if recent and info.capabilities:  # omitempty
                entry["capabilities"] = list(info.capabilities)
            models.append(entry)
        return _json({"models": models})

    async def _ps(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        models = []
        for entry in self._in_memory():
            in_memory = int(entry.info.size * 1.1) + entry.context_length * 64 * 1024
            details = {**entry.info.details(), "parent_model": ""}  # PsHandler sets no parent
            models.append({"name": entry.name, "model": entry.name, "size": in_memory,
                           "digest": entry.info.digest, "details": details,
                           "expires_at": _expiry(entry.expires), "size_vram": in_memory,
                           "context_length": entry.context_length})
        return _json({"models": models})

    # -- /api/show --------------------------------------------------------------------------------

    async def _show(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request, SHOW)
        if isinstance(body, web.Response):
            return body
        model = str(body.get("model") or body.get("name") or "")
        if not model.strip():
            return _json_error(400, "model is required")
        name = _names.parse(model.strip())
        if not name.valid:
            return _json_error(400, "invalid model name")
        canonical = self._find(model.strip())
        if canonical is None:  # the name as Ollama resolved it: `nope:latest`
            return _json_error(404, f"model '{name.short}' not found")
        info = self._info(canonical)
        parameters = _parameter_lines(info.parameters, lambda k, v: f"{k:<30} {_go_value(v)}")
        shown: dict[str, Any] = {"license": info.license,
                                 "modelfile": self._modelfile(canonical, info),
                                 "parameters": "\n".join(parameters),
                                 "template": info.template, "system": info.system,
                                 "renderer": info.renderer, "parser": info.parser}
        shown = {key: value for key, value in shown.items() if value}  # omitempty
        shown.update(details=info.details(),
                     model_info=self._model_info(info, bool(body.get("verbose"))),
                     tensors=_tensors(info, self._width(info)))
        if info.capabilities:  # omitempty
            shown["capabilities"] = list(info.capabilities)
        shown["modified_at"] = info.modified_at
        if info.requires:
            shown["requires"] = info.requires
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
            f"{arch}.attention.layer_norm_rms_epsilon": F32(1e-6),
            f"{arch}.block_count": 36,
            f"{arch}.context_length": info.context_length,
            f"{arch}.embedding_length": self._width(info),
            f"{arch}.rope.freq_base": F32(1e6),
            "tokenizer.ggml.bos_token_id": 1,
            "tokenizer.ggml.eos_token_id": 2,
            "tokenizer.ggml.model": "bert" if info.embedding else "gpt2",
        }
        if info.embedding:
            model_info[f"{arch}.pooling_type"] = 1
        for key, values in _TOKENIZER_ARRAYS.items():
            model_info[key] = list(values) if verbose else None
        return dict(sorted(model_info.items()))  # a Go map: keys sorted

    # -- /api/copy and /api/delete ----------------------------------------------------------------

    async def _copy(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request, COPY)
        if isinstance(body, web.Response):
            return body
        source = str(body.get("source") or "")
        destination = str(body.get("destination") or "")
        if not _names.parse(source).valid:
            return _json_error(400, f"source {go_quote(source)} is invalid")
        if not _names.parse(destination).valid:
            return _json_error(400, f"destination {go_quote(destination)} is invalid")
        if not self._knows(source):
            return _json_error(404, f"model {go_quote(source)} not found")
        self._add_model(destination, dataclasses.replace(self._info(source), modified_at=_now()))
        return web.Response(status=200)

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request, DELETE)
        if isinstance(body, web.Response):
            return body
        model = str(body.get("model") or body.get("name") or "")
        if not model.strip():
            return _json_error(400, "model is required")
        if not _names.parse(model.strip()).valid:
            return _json_error(400, f"name {go_quote(model)} is invalid")
        canonical = self._find(model.strip())
        if canonical is None:
            return _json_error(404, f"model '{model}' not found")
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
            return _json_error(404, f"blob {go_quote(digest)} not found")
        return web.Response(status=200)

    async def _create_blob(self, request: web.Request) -> web.StreamResponse:
        data = await self._record(request)
        digest = request.match_info["digest"]
        if not _DIGEST.match(digest):
            return _json_error(400, "invalid digest format")
        if digest.replace("-", ":", 1) in self.blobs:
            return web.Response(status=200)  # already there: Ollama does not read the body
        actual = f"sha256:{hashlib.sha256(data).hexdigest()}"
        if actual != digest:
            return _json_error(400, f"digest mismatch, expected {go_quote(digest)}, "
                                    f"got {go_quote(actual)}")
        self.blobs[digest] = data
        return web.Response(status=201)
