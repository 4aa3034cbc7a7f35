"""Model names as Ollama parses them (types/model/name.go): host/namespace/model:tag with the
defaults filled in, the validity rule behind "invalid model name", the short form /api/tags shows
and the full form of "... does not support tools"."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"


@dataclass(frozen=True)
class Name:
    host: str
    namespace: str
    model: str
    tag: str

    @property
    def full(self) -> str:
        """`registry.ollama.ai/library/qwen3:latest`: Go's Name.String()."""
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    @property
    def short(self) -> str:
        """`qwen3:latest`, `my-org/custom:7b`, `hf.co/u/repo:q4`: Go's DisplayShortest()."""
        if self.host.lower() != DEFAULT_HOST:
            return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"
        if self.namespace.lower() != DEFAULT_NAMESPACE:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.model}:{self.tag}"

    @property
    def key(self) -> str:
        """What the store compares: names match case-insensitively, as Ollama finds them."""
        return self.short.lower()

    @property
    def valid(self) -> bool:
        return (_valid_part(self.host, host=True) and _valid_part(self.namespace, namespace=True)
                and _valid_part(self.model) and _valid_part(self.tag))


MISSING = "!MISSING!"  # a part a separator promised but that is empty: never valid


def parse(text: str) -> Name:
    """ParseName: the parts of `text`, defaults where a part is left out."""
    host = namespace = tag = ""
    rest = text
    if rest.rfind(":") > rest.rfind("/"):
        rest, tag = _cut(rest, ":")
    if "/" not in rest:
        return Name(DEFAULT_HOST, DEFAULT_NAMESPACE, rest, tag or DEFAULT_TAG)
    rest, model = _cut(rest, "/")
    if "/" not in rest:
        namespace = rest
    else:
        rest, namespace = _cut(rest, "/")
        host = rest.split("://", 1)[-1]
    return Name(host or DEFAULT_HOST, namespace, model, tag or DEFAULT_TAG)


def _cut(text: str, sep: str) -> tuple[str, str]:
    before, _, after = text.rpartition(sep)
    return before or MISSING, after or MISSING


def _valid_part(part: str, *, host: bool = False, namespace: bool = False) -> bool:
    if not 1 <= len(part) <= (350 if host else 80):
        return False
    if not _word(part[0]):
        return False
    for char in part[1:]:
        if char in "_-" or _word(char):
            continue
        if char == "." and not namespace:
            continue
        if char == ":" and host:
            continue
        return False
    return True


def _word(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char == "_")
