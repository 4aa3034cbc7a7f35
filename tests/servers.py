"""Byte-level loopback HTTP servers for the cases FakeOllama must not be able to produce: broken
HTTP, odd content types, lines cut anywhere. Each handler gets the raw asyncio streams."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str], bytes]:
    """Read one HTTP/1.1 request: (request line, headers with lower-case names, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return lines[0].encode(), headers, body


def response_head(status: int = 200, content_type: str = "application/x-ndjson",
                  chunked: bool = True, extra: str = "") -> bytes:
    framing = "Transfer-Encoding: chunked\r\n" if chunked else "Connection: close\r\n"
    return (f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n{framing}{extra}\r\n").encode()


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """Serve `handler` on a free port of 127.0.0.1; yields the base URL."""
    tasks: set[asyncio.Task[None]] = set()
    writers: set[asyncio.StreamWriter] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        writers.add(writer)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            tasks.discard(task)
            writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for writer in list(writers):
            writer.transport.abort()  # handlers blocked on a read see EOF and return
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
