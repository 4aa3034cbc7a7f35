"""The fake's model store, without I/O: FakeModel (a model as a test describes it), what the store
derives for each model from its name unless given (so that two fakes and two runs agree byte for
byte), and the token and embedding stand-ins the endpoints derive from requests."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from . import _names
from ._gojson import go_time

DEFAULT_MODELS = ("qwen3", "llama3.2", "gpt-oss:20b", "deepseek-r1", "smollm2:135m")
DEFAULT_PULLABLE = ("tinyllama", "nomic-embed-text", "qwen3:0.6b", "all-minilm", "llama3.2:1b")
FAKE_VERSION = "0.33.0"  # the Ollama the fake emulates
CAPABILITIES = ("completion", "tools", "insert", "vision", "audio", "embedding", "thinking",
                "image")
_TOKEN = re.compile(r"\S+\s*|\s+")


def split_tokens(text: str) -> list[str]:
    """Split text into word-sized tokens whose concatenation is the text."""
    return _TOKEN.findall(text)


@dataclass(frozen=True)
class FakeModel:
    """A model for `FakeOllama(models=[...])`, next to plain names (whose details are inferred from
    the name: an embedding model if it says "embed", else completion, tools and thinking).

    `capabilities` are Ollama's (completion, tools, insert, vision, audio, embedding, thinking,
    image) and are enforced: `think` on a model without thinking, `tools` without tools, `suffix`
    without insert get the server's 400s. `context_length` and `embedding_length` show in
    /api/tags and /api/show (and the embedding length is the length of /api/embed's vectors);
    `renderer`/`parser` name Ollama's built-in ones (e.g. "qwen3.5", whose renderer trims a
    prefilled assistant message, or "deepseek3", which does not continue one); `native=True` puts
    the model on llama-server's native chat path (None: FakeOllama's `native`). Models of the
    gpt-oss family (`family="gptoss"`, inferred from the name) take think levels and cannot turn
    thinking off, as with Ollama's harmony parser."""

    name: str
    _: KW_ONLY
    capabilities: Iterable[str] | None = None
    context_length: int | None = None
    embedding_length: int | None = None
    family: str | None = None
    parameter_size: str | None = None
    quantization: str | None = None
    renderer: str | None = None
    parser: str | None = None
    native: bool | None = None
    system: str | None = None
    template: str | None = None
    requires: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _names.parse(self.name).valid:
            raise ValueError(f"FakeModel: {self.name!r} is not a valid Ollama model name")
        if self.capabilities is not None:
            caps = tuple(dict.fromkeys(self.capabilities))
            unknown = [c for c in caps if c not in CAPABILITIES]
            if unknown:
                raise ValueError(f"FakeModel {self.name!r}: unknown capabilities {unknown}; "
                                 f"Ollama's are {', '.join(CAPABILITIES)}")
            object.__setattr__(self, "capabilities", caps)


def num_ctx(options: Any) -> int | None:
    """The request's `num_ctx` option, if it sets one (a checked number: Go truncates it)."""
    value = options.get("num_ctx") if isinstance(options, dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1:
        return int(value)
    return None


def _now() -> str:
    return go_time()


_BASE_MODIFIED_AT = "2025-07-07T20:22:19.184789Z"  # modified_at of the models a fake starts with
# besides "*embed*"
_EMBEDDING_BASES = frozenset({"all-minilm", "bge-m3", "bge-large", "granite-embedding"})
# base name -> (family, parameter size, quantization, context length)
_KNOWN_FAMILIES: dict[str, tuple[str, str, str, int]] = {
    "qwen3": ("qwen3", "8.2B", "Q4_K_M", 40960),
    "llama3.2": ("llama", "3.2B", "Q4_K_M", 131072),
    "gpt-oss": ("gptoss", "20.9B", "MXFP4", 131072),
    "deepseek-r1": ("qwen3", "8.2B", "Q4_K_M", 131072),
    "smollm2": ("llama", "1.7B", "Q8_0", 8192),
    "tinyllama": ("llama", "1.1B", "Q4_0", 2048),
    "nomic-embed-text": ("nomic-bert", "137M", "F16", 2048),
    "all-minilm": ("bert", "23M", "F16", 512),
}
_BYTES_PER_PARAMETER = {"F32": 4.0, "F16": 2.0, "BF16": 2.0, "Q8_0": 1.07, "Q4_0": 0.57,
                        "Q4_K_M": 0.61, "MXFP4": 0.62}
# general.file_type, as llama.cpp numbers them
_FILE_TYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9,
               "Q2_K": 10, "Q3_K_S": 11, "Q3_K_M": 12, "Q3_K_L": 13, "Q4_K_S": 14, "Q4_K_M": 15,
               "Q5_K_S": 16, "Q5_K_M": 17, "Q6_K": 18, "BF16": 32, "MXFP4": 38}
_SIZE_TAG = re.compile(r"^(\d+(?:\.\d+)?)([bm])$", re.IGNORECASE)
# A chatml template that leaves a trailing assistant message open (`$last`), as qwen3's does:
# the model continues it (prefill) instead of starting a new turn.
_CHAT_TEMPLATE = (
    "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    "{{- if .Tools }}<|im_start|>system\n# Tools\n{{ range .Tools }}{{ . }}\n{{ end }}"
    "<|im_end|>\n{{ end }}"
    "{{- range $i, $_ := .Messages }}{{- $last := eq (len (slice $.Messages $i)) 1 -}}"
    "<|im_start|>{{ .Role }}\n{{ .Content }}{{ if not $last }}<|im_end|>\n{{ end }}"
    "{{- if and (ne .Role \"assistant\") $last }}<|im_end|>\n<|im_start|>assistant\n"
    "{{ if .Think }}<think>\n{{ end }}{{ end }}{{- end }}")
# What Ollama's harmony detection looks for: the gpt-oss family and <|start|> ... <|end|>
_HARMONY_TEMPLATE = (
    "<|start|>system<|message|>Reasoning: {{ .ThinkLevel }}<|end|>"
    "{{- range .Messages }}<|start|>{{ .Role }}<|message|>{{ .Content }}<|end|>{{ end }}"
    "<|start|>assistant")
_EMBED_TEMPLATE = "{{ .Prompt }}"
_CHAT_PARAMETERS: dict[str, Any] = {"stop": ["<|im_start|>", "<|im_end|>"], "temperature": 0.6,
                                    "top_p": 0.95}
_LICENSE = "Apache License\nVersion 2.0, January 2004\nhttp://www.apache.org/licenses/"
_BLOBS_DIR = "/root/.ollama/models/blobs"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class _ModelInfo:
    """What the store knows of one model: the fields of /api/tags, /api/show and /api/ps, and the
    behaviour its chat path has (renderer, parser, native)."""

    family: str
    parameter_size: str
    quantization: str
    context_length: int
    capabilities: tuple[str, ...]
    digest: str  # the manifest's sha256, 64 hex digits, as /api/tags shows it
    modified_at: str = _BASE_MODIFIED_AT
    parent: str = ""
    system: str = ""
    template: str = _CHAT_TEMPLATE
    parameters: Mapping[str, Any] = field(default_factory=dict)
    license: str = _LICENSE
    embedding_length: int | None = None  # None: the fake's embedding_length
    renderer: str = ""
    parser: str = ""
    native: bool | None = None  # None: the fake's `native`
    requires: str = ""

    @property
    def embedding(self) -> bool:
        return "embedding" in self.capabilities and "completion" not in self.capabilities

    @property
    def harmony(self) -> bool:
        """gpt-oss: think levels, thinking that cannot be turned off, "max" read as "high"."""
        return self.family in ("gptoss", "gpt-oss")

    @property
    def parameter_count(self) -> int:
        number, unit = float(self.parameter_size[:-1] or 0), self.parameter_size[-1:].upper()
        return int(number * (1e9 if unit == "B" else 1e6))

    @property
    def layers(self) -> list[tuple[str, int]]:
        """(digest, size) of the model's two layers: the weights and a small params layer."""
        small = 120 + int(self.digest[:2], 16)
        per_parameter = _BYTES_PER_PARAMETER.get(self.quantization, 0.6)
        weights = max(int(self.parameter_count * per_parameter), 4096)
        weights += int(self.digest[2:6], 16)
        return [(f"sha256:{_sha256(self.digest + ':model')}", weights),
                (f"sha256:{_sha256(self.digest + ':params')}", small)]

    @property
    def size(self) -> int:
        return sum(size for _, size in self.layers)

    def details(self, embedding_length: int | None = None) -> dict[str, Any]:
        """ModelDetails in Go's field order; the two lengths (v0.30) only where given, as Go
        omits zeros."""
        details: dict[str, Any] = {
            "parent_model": self.parent, "format": "gguf", "family": self.family,
            "families": [self.family], "parameter_size": self.parameter_size,
            "quantization_level": self.quantization}
        if embedding_length is not None:
            details["context_length"] = self.context_length
            details["embedding_length"] = embedding_length
        return details


def _default_info(name: str) -> _ModelInfo:
    """The info of a model the store has never seen, derived from its name (`base:tag`)."""
    parsed = _names.parse(name)
    base, tag = parsed.model, parsed.tag
    embedding = "embed" in base or base in _EMBEDDING_BASES
    unknown = (re.sub(r"[^a-z0-9]", "", base.lower()) or "llama", "7.6B",
               "F16" if embedding else "Q4_K_M", 8192)
    family, parameter_size, quantization, context_length = _KNOWN_FAMILIES.get(base, unknown)
    if match := _SIZE_TAG.match(tag):
        parameter_size = f"{match.group(1)}{match.group(2).upper()}"
    capabilities = ("embedding",) if embedding else ("completion", "tools", "thinking")
    template = (_EMBED_TEMPLATE if embedding else
                _HARMONY_TEMPLATE if family == "gptoss" else _CHAT_TEMPLATE)
    return _ModelInfo(family, parameter_size, quantization, context_length, capabilities,
                      _sha256(parsed.short), template=template,
                      parameters={} if embedding else dict(_CHAT_PARAMETERS))


def _model_info(model: FakeModel) -> _ModelInfo:
    """A FakeModel's info: what it gives, the rest derived from its name."""
    base = _default_info(model.name)
    changes: dict[str, Any] = {}
    if model.capabilities is not None:
        caps = tuple(model.capabilities)
        changes["capabilities"] = caps
        if "completion" not in caps and "embedding" in caps and base.template != _EMBED_TEMPLATE:
            changes.update(template=_EMBED_TEMPLATE, parameters={})
    for key in ("context_length", "embedding_length", "family", "parameter_size", "renderer",
                "parser", "native", "system", "template", "requires"):
        value = getattr(model, key)
        if value is not None:
            changes[key] = value
    if model.quantization is not None:
        changes["quantization"] = model.quantization
    if model.renderer is not None and model.parser is None:
        changes["parser"] = model.renderer  # Ollama's built-ins come in pairs of one name
    if model.family is not None and model.template is None and model.family == "gptoss":
        changes["template"] = _HARMONY_TEMPLATE
    return dataclasses.replace(base, **changes)


@dataclass
class _Loaded:
    """A model in memory, as /api/ps lists it."""

    name: str
    info: _ModelInfo
    expires: float  # epoch seconds; inf = kept forever
    context_length: int
    order: int  # when it was last used: breaks ties between equal expiries, most recent first


def _embedding(seed: str, length: int) -> list[float]:
    """A deterministic unit vector for `seed`."""
    rng = random.Random(int(_sha256(seed)[:16], 16))
    return _normalised([rng.gauss(0.0, 1.0) for _ in range(length)])


def _normalised(vector: list[float]) -> list[float]:
    norm = max(math.sqrt(sum(v * v for v in vector)), 1e-12)
    return [v / norm for v in vector]


def _token_ids(text: str) -> list[int]:
    """Deterministic stand-ins for token ids (for generate's `context`)."""
    return [zlib.crc32(token.encode()) % 151_000 + 1 for token in split_tokens(text)]
