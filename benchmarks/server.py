"""A load server for the benchmarks: realistic `/api/chat` NDJSON at next to no cost to itself.

Raw asyncio (no framework): replies are precomputed bytes, one HTTP chunk per NDJSON line, and the
loop is yielded to between lines so each line leaves in its own write, as Ollama flushes per token.
Runs in its own process on 127.0.0.1; `python -m benchmarks.server PORT CHUNKS [flush|batch]`
(CHUNKS lines per reply; `batch` writes a whole reply at once, so clients read many lines per read
and parsing dominates).
"""

from __future__ import annotations

import asyncio
import sys

import orjson

MODEL = "qwen3"


def reply_lines(chunks: int) -> list[bytes]:
    """`chunks` NDJSON lines: a tenth thinking, then content, one tool call, and the final chunk."""
    thinking = max(1, chunks // 10)
    content = max(1, chunks - thinking - 2)
    stamp = "2025-07-07T20:22:19.184789Z"
    lines = [{"model": MODEL, "created_at": stamp,
              "message": {"role": "assistant", "content": "", "thinking": f" t{i}"}, "done": False}
             for i in range(thinking)]
    lines += [{"model": MODEL, "created_at": stamp,
               "message": {"role": "assistant", "content": f" w{i}"}, "done": False}
              for i in range(content)]
    lines.append({"model": MODEL, "created_at": stamp, "message": {
        "role": "assistant", "content": "", "tool_calls": [
            {"id": "call_0000abcd", "function": {"index": 0, "name": "get_weather",
                                                 "arguments": {"city": "Tokyo"}}}]},
        "done": False})
    lines.append({"model": MODEL, "created_at": stamp,
                  "message": {"role": "assistant", "content": ""},
                  "done": True, "done_reason": "stop", "total_duration": 182242375,
                  "load_duration": 41295167, "prompt_eval_count": 26,
                  "prompt_eval_duration": 24573166, "eval_count": len(lines),
                  "eval_duration": 115959084})
    return [orjson.dumps(line) + b"\n" for line in lines]


def expected_content(chunks: int) -> str:
    thinking = max(1, chunks // 10)
    return "".join(f" w{i}" for i in range(max(1, chunks - thinking - 2)))


HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n")
SHOW = orjson.dumps({"modelfile": "", "parameters": "", "template": "{{ .Prompt }}",
                     "details": {"family": "qwen3", "format": "gguf"},
                     "model_info": {"general.architecture": "qwen3", "qwen3.context_length": 40960},
                     "capabilities": ["completion", "tools", "thinking"]})


class Connection(asyncio.Protocol):
    def __init__(self, framed: list[bytes], batch: bool) -> None:
        self.framed = framed
        self.batch = batch
        self.whole = b"".join(framed)
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self.next_request()

    def next_request(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(self.buffer) < end + 4 + length:
            return
        self.buffer = self.buffer[end + 4 + length:]
        path = head.split(" ", 2)[1]
        self.busy = True
        asyncio.get_running_loop().create_task(self.respond(path))

    async def respond(self, path: str) -> None:
        transport = self.transport
        assert transport is not None
        if path.startswith("/api/show"):
            transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            b"Content-Length: %d\r\n\r\n%s" % (len(SHOW), SHOW))
        else:
            transport.write(HEAD)
            if self.batch:
                transport.write(self.whole)
            for chunk in () if self.batch else self.framed:
                if transport.is_closing():
                    return
                transport.write(chunk)
                await asyncio.sleep(0)  # let this line leave on its own, as a per-token flush does
            transport.write(b"0\r\n\r\n")
        self.busy = False
        if self.buffer:
            self.next_request()


async def serve(port: int, chunks: int, batch: bool = False) -> None:
    framed = [b"%x\r\n%s\r\n" % (len(line), line) for line in reply_lines(chunks)]
    server = await asyncio.get_running_loop().create_server(lambda: Connection(framed, batch),
                                                           "127.0.0.1", port, backlog=2048)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:] == ["batch"]))
