"""The fake's model store, without I/O: what a model is (family, size, layers, template), derived
from its name so that two fakes (and two runs) agree byte for byte, plus what the endpoints derive
from requests (keep_alive, embeddings, token ids) and the timestamps they write."""

from __future__ import annotations

import hashlib
import math
import random
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

DEFAULT_MODELS = ("qwen3", "llama3.2", "gpt-oss:20b", "deepseek-r1", "smollm2:135m")
DEFAULT_PULLABLE = ("tinyllama", "nomic-embed-text", "qwen3:0.6b", "all-minilm", "llama3.2:1b")
FAKE_VERSION = "0.13.0"
_TOKEN = re.compile(r"\S+\s*|\s+")


def split_tokens(text: str) -> list[str]:
    """Split text into word-sized tokens whose concatenation is the text."""
    return _TOKEN.findall(text)


def _now() -> str:
    return _timestamp(datetime.now(timezone.utc))


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
_CHAT_TEMPLATE = (
    "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    "{{- if .Tools }}<|im_start|>system\n# Tools\n{{ range .Tools }}{{ . }}\n{{ end }}"
    "<|im_end|>\n{{ end }}"
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n{{ if .Think }}<think>\n{{ end }}")
_EMBED_TEMPLATE = "{{ .Prompt }}"
_CHAT_PARAMETERS: dict[str, Any] = {"stop": ["<|im_start|>", "<|im_end|>"], "temperature": 0.6,
                                    "top_p": 0.95}
_LICENSE = "Apache License\nVersion 2.0, January 2004\nhttp://www.apache.org/licenses/"
_BLOBS_DIR = "/root/.ollama/models/blobs"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class _ModelInfo:
    """What the store knows of one model: the fields of /api/tags, /api/show and /api/ps."""

    family: str
    parameter_size: str
    quantization: str
    context_length: int
    embedding: bool
    digest: str  # the manifest's sha256, 64 hex digits, as /api/tags shows it
    modified_at: str = _BASE_MODIFIED_AT
    parent: str = ""
    system: str = ""
    template: str = _CHAT_TEMPLATE
    parameters: Mapping[str, Any] = field(default_factory=dict)
    license: str = _LICENSE

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

    @property
    def capabilities(self) -> list[str]:
        return ["embedding"] if self.embedding else ["completion", "tools", "thinking"]

    def details(self) -> dict[str, Any]:
        return {"parent_model": self.parent, "format": "gguf", "family": self.family,
                "families": [self.family], "parameter_size": self.parameter_size,
                "quantization_level": self.quantization}


def _default_info(name: str) -> _ModelInfo:
    """The info of a model the store has never seen, derived from its name (`base:tag`)."""
    base, _, tag = name.partition(":")
    base = base.rsplit("/", 1)[-1]
    embedding = "embed" in base or base in _EMBEDDING_BASES
    unknown = (re.sub(r"[^a-z0-9]", "", base.lower()) or "llama", "7.6B",
               "F16" if embedding else "Q4_K_M", 8192)
    family, parameter_size, quantization, context_length = _KNOWN_FAMILIES.get(base, unknown)
    if match := _SIZE_TAG.match(tag):
        parameter_size = f"{match.group(1)}{match.group(2).upper()}"
    return _ModelInfo(family, parameter_size, quantization, context_length, embedding,
                      _sha256(name), template=_EMBED_TEMPLATE if embedding else _CHAT_TEMPLATE,
                      parameters={} if embedding else dict(_CHAT_PARAMETERS))


@dataclass
class _Loaded:
    """A model in memory, as /api/ps lists it."""

    name: str
    info: _ModelInfo
    expires: float  # epoch seconds; inf = kept forever
    context_length: int
    order: int  # when it was last used: breaks ties between equal expiries, most recent first


def _keep_alive_seconds(value: object, default: float = 300.0) -> float:
    """`keep_alive` as Ollama reads it: a number of seconds or a Go duration ("5m", "1h30m");
    negative = forever (inf). Anything unreadable falls back to the default of 5 minutes."""
    if value is None or isinstance(value, bool):
        return default
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        parsed = _go_duration(value.strip())
        if parsed is None:
            return default
        seconds = parsed
    else:
        return default
    return math.inf if seconds < 0 else seconds


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                   "h": 3600.0}


def _go_duration(text: str) -> float | None:
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    parts = _DURATION_PART.findall(body)
    if not parts or "".join(number + unit for number, unit in parts) != body:
        return None
    return sign * sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


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
