"""Images for chat and generate: bytes, a path, or a str that is a path or base64,
sent as plain base64.

A str is read as a path when it names an existing file or looks like one (a path separator, `~`, or
an image extension); otherwise it must be valid base64 (a `data:...;base64,` prefix is dropped).
Reading the file is the only I/O here, and it happens when the Message is built, at the caller's
request.
"""

from __future__ import annotations

import base64
import binascii
import os
import re

__all__ = ["encode_image"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic",
                    ".avif")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_MAX_PATH = 4096


def _read(path: str, shown: object) -> str:
    path = os.path.expanduser(path)
    if not os.path.exists(path):
        raise ValueError(f"image {shown!r}: no such file")
    if not os.path.isfile(path):
        raise ValueError(f"image {shown!r}: not a file")
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode("ascii")


def _is_base64(text: str) -> bool:
    if len(text) % 4 or not _BASE64.fullmatch(text):
        return False
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def encode_image(image: object) -> str:
    """One image as the plain base64 text Ollama wants."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return base64.b64encode(image).decode("ascii")
    if isinstance(image, os.PathLike):
        return _read(os.fspath(image), image)
    if not isinstance(image, str):
        raise TypeError(f"an image must be bytes, a pathlib.Path, or a str (a path or base64), "
                        f"not {type(image).__name__}")
    text = image.strip()
    if text.startswith("data:") and ";base64," in text[:200]:
        text = text.split(",", 1)[1]
        if _is_base64(text):
            return text
        raise ValueError(f"image {image[:60]!r}...: the data URL does not hold valid base64")
    short = len(text) < _MAX_PATH
    if short and text and os.path.exists(os.path.expanduser(text)):
        return _read(text, image)  # a directory raises: not a file
    if short and text.lower().endswith(IMAGE_EXTENSIONS):
        return _read(text, image)  # raises: no such file / not a file
    if text and _is_base64(text):
        return text
    if short and (os.sep in text or "/" in text or "\\" in text or text.startswith("~")):
        return _read(text, image)  # raises: no such file / not a file
    preview = image if len(image) <= 60 else image[:60] + "..."
    raise ValueError(f"image {preview!r} is neither an existing file nor valid base64")
