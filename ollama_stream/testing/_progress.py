"""The fake's progress endpoints: `/api/pull`, `/api/push` and `/api/create`, which stream Ollama's
status lines (paced by chunk_delay) and change the model store just before their final `success`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson
from aiohttp import web

from . import _names
from ._gotypes import CREATE, PULL, PUSH
from ._state import FakeReply
from ._store import _BLOBS_DIR, _FILE_TYPES, _default_info, _ModelInfo, _now, _sha256
from ._wire import JSON_PLAIN, _json, _json_error, _Wire

# Ollama: `pull model manifest: %s` of os.ErrNotExist
_PULL_FAILURE = "pull model manifest: file does not exist"
_TRANSFER_STEPS = 4  # progress lines with `completed` per layer
_MANIFESTS_DIR = "/root/.ollama/models/manifests/registry.ollama.ai/library"


def _transfer_lines(verb: str, digest: str, total: int) -> list[dict[str, Any]]:
    """Progress of one layer: `completed` is absent until non-zero (Go's omitempty), then grows to
    `total`."""
    status = f"{verb} {digest[7:19]}"
    lines: list[dict[str, Any]] = [{"status": status, "digest": digest, "total": total}]
    lines += [{"status": status, "digest": digest, "total": total,
               "completed": total * step // _TRANSFER_STEPS}
              for step in range(1, _TRANSFER_STEPS + 1)]
    return lines


def _files_kind(files: object) -> str | None:
    """What Ollama makes of create's `files` from their names: "gguf", "safetensors", or None
    (unknown)."""
    if not isinstance(files, dict):
        return None
    for name in files:
        if name.endswith(".safetensors"):
            return "safetensors"
        if name.endswith((".gguf", ".bin")):
            return "gguf"
    return None


def _layer_digests(info: _ModelInfo, weights: str = "") -> list[str]:
    """The layers of a model's manifest, in Ollama's order: the weights (`weights`, an uploaded
    blob, when given), then the template, system prompt, license and parameters it has."""
    layers = [weights or info.layers[0][0]]
    for kind, text in (("template", info.template), ("system", info.system),
                       ("license", info.license)):
        if text:
            layers.append(f"sha256:{_sha256(f'{kind}:{text}')}")
    if info.parameters:
        params = orjson.dumps(dict(info.parameters), option=orjson.OPT_SORT_KEYS).decode()
        layers.append(f"sha256:{_sha256(f'params:{params}')}")
    return layers


class _ProgressRoutes(_Wire):
    """`/api/pull`, `/api/push` and `/api/create`, mixed into FakeOllama."""

    async def _pull(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request, PULL)
        if isinstance(body, web.Response):
            return body
        model = str(body.get("model") or body.get("name") or "").strip()
        if not model or not _names.parse(model).valid:
            return _json_error(400, "invalid model name")
        lines, pulled = self._pull_lines(model)
        return await self._progress(request, body, lines, lambda: self._add_pulled(pulled))

    def _pull_lines(self, name: str) -> tuple[list[dict[str, Any]], list[str]]:
        """Ollama's pull progress for `name`, and the names that become known if it succeeds."""
        canonical = self._find(name) or self._canonical(name)
        lines: list[dict[str, Any]] = [{"status": "pulling manifest"}]
        pullable = {known.lower() for known in self.pullable}
        if canonical not in self.models and canonical.lower() not in pullable:
            lines.append({"error": _PULL_FAILURE})
            return lines, []
        for digest, size in self._info(canonical).layers:
            lines += _transfer_lines("pulling", digest, size)
        lines += [{"status": "verifying sha256 digest"}, {"status": "writing manifest"},
                  {"status": "success"}]
        return lines, [canonical]

    def _add_pulled(self, names: Iterable[str]) -> None:
        for name in names:
            if name not in self.models:
                self._add_model(name)

    async def _push(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request, PUSH)
        if isinstance(body, web.Response):
            return body
        model = body.get("model") or body.get("name")
        if not model or not isinstance(model, str):
            return _json_error(400, "model is required")
        canonical = self._find(model) or self._canonical(model)
        lines: list[dict[str, Any]] = [{"status": "retrieving manifest"}]
        if canonical not in self.models:
            base, _, tag = canonical.partition(":")
            missing = f"open {_MANIFESTS_DIR}/{base}/{tag}: no such file or directory"
            lines += [{"status": "couldn't retrieve manifest"}, {"error": missing}]
        else:
            for digest, size in self._info(canonical).layers:
                lines += _transfer_lines("pushing", digest, size)
            lines += [{"status": "pushing manifest"}, {"status": "success"}]
        return await self._progress(request, body, lines)

    async def _create(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request, CREATE)
        if isinstance(body, web.Response):
            return body
        model = body.get("model") or body.get("name")
        if not model or not isinstance(model, str):
            return _json_error(400, "invalid model name")
        source, files = body.get("from"), body.get("files")
        if not source and files is None:
            return _json_error(400, "neither 'from' or 'files' was specified")
        weights = ""
        if files is not None and not source:
            kind = _files_kind(files)
            if kind is None:
                return _json_error(400, "unknown type")
            lines, info, weights = self._create_from_files(model, files, kind)
            pulled: list[str] = []
        else:
            lines, info, pulled = self._create_from_model(str(source))
        if info is not None:
            lines, info = self._create_layers(body, info, lines, weights)
        if info is not None:
            lines += [{"status": "writing manifest"}, {"status": "success"}]
        created = info

        def commit() -> None:
            self._add_pulled(pulled)
            if created is not None:
                self._add_model(model, created)

        return await self._progress(request, body, lines, commit)

    def _create_from_model(
        self, source: str,
    ) -> tuple[list[dict[str, Any]], _ModelInfo | None, list[str]]:
        """Ollama pulls a `from` model it does not have first, and fails with the pull's error."""
        lines: list[dict[str, Any]] = []
        pulled: list[str] = []
        canonical = self._find(source) or self._canonical(source)
        if canonical not in self.models:
            lines, pulled = self._pull_lines(source)
            if not pulled:
                return lines, None, []
        base = self._info(canonical)
        info = dataclasses.replace(base, parent=canonical, parameters=dict(base.parameters))
        return lines, info, pulled

    def _create_from_files(self, name: str, files: Mapping[str, Any],
                           kind: str) -> tuple[list[dict[str, Any]], _ModelInfo | None, str]:
        """`files` maps file names to digests of uploaded blobs (POST /api/blobs/:digest); the
        weights layer is the uploaded blob itself."""
        lines: list[dict[str, Any]] = []
        weights = ""
        for digest in files.values():
            lines.append({"status": "parsing GGUF" if kind == "gguf" else "converting model"})
            blob = self.blobs.get(str(digest))
            if blob is None:
                path = f"{_BLOBS_DIR}/{str(digest).replace(':', '-')}"
                lines.append({"error": f"open {path}: no such file or directory"})
                return lines, None, ""
            if kind == "gguf" and not blob.startswith(b"GGUF"):
                lines.append({"error": "supplied file was not in GGUF format"})
                return lines, None, ""
            weights = weights or str(digest)
        # a bare GGUF: its weights and nothing else (no template, license or parameters layer),
        # so completion is all Ollama can tell of it
        info = dataclasses.replace(_default_info(self._canonical(name)), quantization="F16",
                                   template="", license="", parameters={},
                                   capabilities=("completion",))
        return lines, info, weights

    def _create_layers(
        self, request: Mapping[str, Any], info: _ModelInfo, lines: list[dict[str, Any]],
        weights: str = "",
    ) -> tuple[list[dict[str, Any]], _ModelInfo | None]:
        """v0.33's statuses (server/create.go, manifest/layer.go): quantizing, then one line per
        layer of the new manifest, `using existing layer <digest>` for a layer the store already
        has and `creating new layer <digest>` for one it has not, then the manifest."""
        lines = list(lines)
        # what the store has: a source model's layers, or only the uploaded blobs
        known = {*self.blobs, *(() if weights else _layer_digests(info))}
        quantize = request.get("quantize") or request.get("quantization")
        if quantize:
            wanted = str(quantize).upper()
            if info.quantization not in ("F16", "F32"):
                failure = "quantization is only supported for F16 and F32 models"
                return [*lines, {"error": failure}], None
            if wanted not in _FILE_TYPES:
                return [*lines, {"error": f"unsupported quantization type {quantize}"}], None
            lines.append({"status": f"quantizing {info.quantization} model to {wanted}"})
            info = dataclasses.replace(info, quantization=wanted)
            weights = f"sha256:{_sha256(f'{weights or info.digest}:{wanted}')}"
        changes: dict[str, Any] = {}
        for key in ("template", "system", "license"):
            value = request.get(key)
            if isinstance(value, str) and value:
                changes[key] = value
        parameters = request.get("parameters")
        if isinstance(parameters, dict) and parameters:
            changes["parameters"] = {**info.parameters, **parameters}
        created = dataclasses.replace(info, **changes)
        for layer in _layer_digests(created, weights):
            verb = "using existing" if layer in known else "creating new"
            lines.append({"status": f"{verb} layer {layer}"})
        digest = _sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS).decode())
        return lines, dataclasses.replace(created, digest=digest, modified_at=_now())

    async def _progress(self, request: web.Request, body: Mapping[str, Any],
                        lines: list[dict[str, Any]],
                        commit: Callable[[], None] | None = None) -> web.StreamResponse:
        """Stream progress `lines` (paced by chunk_delay); `commit` applies the change just before
        the final `success`. With `stream: false` (waitForStream, which sets its content type
        first), Ollama answers only the last status, or a 500 with the error."""
        failed = "error" in lines[-1]
        if body.get("stream") is False:
            if failed:
                return _json_error(500, str(lines[-1]["error"]), content_type=JSON_PLAIN)
            if commit is not None:
                commit()
            return _json(lines[-1], content_type=JSON_PLAIN)
        return await self._stream(request, lines, FakeReply(), None if failed else commit)
