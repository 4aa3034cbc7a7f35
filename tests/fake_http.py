"""Plain HTTP helpers for the tests that hold FakeOllama to Ollama's wire facts: one request with
aiohttp (status, headers, raw body), NDJSON lines, and a raw-socket read that keeps the HTTP
chunk framing, so that "one chunk per line" can be checked."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ollama_stream.testing import FakeOllama

USER = [{"role": "user", "content": "Why is the sky blue?"}]
JSON_UTF8 = "application/json; charset=utf-8"


async def request(fake: FakeOllama, method: str, path: str, body: Any = None, *,
                  data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with lower-case names, raw body)."""
    kwargs: dict[str, Any] = ({"data": data} if data is not None
                              else {} if body is None else {"json": body})
    async with (aiohttp.ClientSession() as session,
                session.request(method, f"{fake.url}{path}", **kwargs) as response):
        headers = {key.lower(): value for key, value in response.headers.items()}
        return response.status, headers, await response.read()


async def post(fake: FakeOllama, path: str, body: Any = None, *,
               data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    return await request(fake, "POST", path, body, data=data)


async def error_of(fake: FakeOllama, path: str, body: Any = None, *,
                   data: bytes | None = None) -> tuple[int, str, str]:
    """(status, Content-Type, the error's text) of an answer that must be `{"error": ...}`
    without a trailing newline."""
    status, headers, raw = await post(fake, path, body, data=data)
    assert not raw.endswith(b"\n"), raw
    decoded = json.loads(raw)
    assert list(decoded) == ["error"], decoded
    return status, headers.get("content-type", ""), decoded["error"]


def lines(raw: bytes) -> list[dict[str, Any]]:
    """NDJSON: every line one JSON object, the body ending with a newline."""
    assert raw.endswith(b"\n"), raw[-80:]
    return [json.loads(line) for line in raw.splitlines()]


async def stream(fake: FakeOllama, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    status, headers, raw = await post(fake, path, body)
    assert status == 200, raw
    assert headers["content-type"] == "application/x-ndjson"
    return lines(raw)


def joined(chunks: list[dict[str, Any]], field: str) -> str:
    return "".join(chunk["message"].get(field, "") for chunk in chunks)


async def raw_exchange(fake: FakeOllama, path: str, body: dict[str, Any]) -> tuple[bytes, bytes]:
    """POST over a bare socket: (the response head, the raw chunked body as sent)."""
    url = urlsplit(fake.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    payload = json.dumps(body).encode()
    writer.write(f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json"
                 f"\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                 + payload)
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def http_chunks(body: bytes) -> list[bytes]:
    """The chunks of a chunked body, in order (the last, empty one left out)."""
    chunks = []
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        chunks.append(body[:size])
        assert body[size:size + 2] == b"\r\n"
        body = body[size + 2:]
    return chunks
