"""A load server for the benchmarks: realistic `/api/chat` NDJSON at next to no cost to itself.

Raw asyncio (no framework): replies are precomputed bytes, one HTTP chunk per NDJSON line. Runs in
its own process on 127.0.0.1: `python -m benchmarks.server PORT CHUNKS MODE` (CHUNKS lines per
reply). The modes are the read patterns a client sees:

- `batch`: a whole reply in one write, so the client reads many lines per read.
- `flush`: one write per line with a turn of the loop between lines, as Ollama flushes per token,
  at a pace the client may not keep up with (then a read brings several lines).
- `lockstep`: exactly one line per read. Each line is written only once the client has read every
  byte before it, as the kernel reports the client socket's receive queue (Linux sock_diag). The
  pace is the client's own, so the pattern is the same for every client however slow it is, under
  valgrind too. Where sock_diag is not available it is `flush` paced at 2 ms a line, and
  `GET /stats` says `"lockstep": false`.
- `idle`: the head and the first line, then nothing until the client closes: open streams at rest.

`GET /stats` answers what the server did: lines written, and in lockstep how many of them had to
wait for the client to read the one before (evidence that the pacing was the client's).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
import time

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


def expected_thinking(chunks: int) -> str:
    return "".join(f" t{i}" for i in range(max(1, chunks // 10)))


HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n")
SHOW = orjson.dumps({"modelfile": "", "parameters": "", "template": "{{ .Prompt }}",
                     "details": {"family": "qwen3", "format": "gguf"},
                     "model_info": {"general.architecture": "qwen3", "qwen3.context_length": 40960},
                     "capabilities": ["completion", "tools", "thinking"]})
STATS = {"lines": 0, "waited": 0, "lockstep": False}


class ReceiveQueue:
    """How many bytes the client has not yet read from its socket: the kernel's answer (Linux
    sock_diag, one exact lookup of the client's socket by its address pair)."""

    _DIAG, _BY_FAMILY, _REQUEST = 4, 20, 1  # NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST

    def __init__(self) -> None:
        self.netlink = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, self._DIAG)

    def of(self, client: tuple[str, int], server: tuple[str, int]) -> int:
        sockid = (struct.pack("!HH", client[1], server[1]) + socket.inet_aton(client[0])
                  + bytes(12) + socket.inet_aton(server[0]) + bytes(12)
                  + struct.pack("=III", 0, 0xFFFFFFFF, 0xFFFFFFFF))
        request = struct.pack("=BBBxI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0xFFFFFFFF) + sockid
        self.netlink.send(struct.pack("=IHHII", 16 + len(request), self._BY_FAMILY, self._REQUEST,
                                      0, 0) + request)
        answer = self.netlink.recv(65536)
        if struct.unpack_from("=H", answer, 4)[0] != self._BY_FAMILY:
            raise OSError("sock_diag found no such socket")
        # nlmsghdr (16), then inet_diag_msg: family..retrans (4), sockid (48), expires, rqueue
        return int(struct.unpack_from("=I", answer, 16 + 4 + 48 + 4)[0])


class Connection(asyncio.Protocol):
    def __init__(self, framed: list[bytes], mode: str, queue: ReceiveQueue | None) -> None:
        self.framed = framed
        self.mode = mode
        self.queue = queue
        self.whole = b"".join(framed)
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.ends: tuple[tuple[str, int], tuple[str, int]] = (("", 0), ("", 0))
        self.busy = False
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.ends = sock.getpeername(), sock.getsockname()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

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

    async def read_by_client(self) -> None:
        """Lockstep: return once the client has read every byte written so far."""
        assert self.transport is not None and self.queue is not None
        client, server = self.ends
        started = time.perf_counter()
        waited = False
        while not self.transport.is_closing():
            try:
                if not self.queue.of(client, server):
                    break
            except OSError:  # the client's socket is gone: nothing left to wait for
                break
            waited = True
            if time.perf_counter() - started < 3e-4:  # a fast client reads within microseconds
                await asyncio.sleep(0)
            else:  # a slow one (under valgrind): every 0.1 ms, as the loop's timers are per ms;
                time.sleep(1e-4)  # noqa: ASYNC251 - blocking on purpose (one stream at a time)
        STATS["waited"] += waited

    async def respond(self, path: str) -> None:
        transport = self.transport
        assert transport is not None
        if path.startswith("/api/show"):
            transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            b"Content-Length: %d\r\n\r\n%s" % (len(SHOW), SHOW))
        elif path.startswith("/stats"):
            stats = orjson.dumps(STATS)
            transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            b"Content-Length: %d\r\n\r\n%s" % (len(stats), stats))
        elif self.mode == "idle":
            transport.write(HEAD + self.framed[0])
            await self.closed  # at rest until the client goes
            return
        else:
            transport.write(HEAD)
            if self.mode == "batch":
                transport.write(self.whole)
                STATS["lines"] += len(self.framed)
            for chunk in () if self.mode == "batch" else self.framed:
                if self.queue is not None:
                    await self.read_by_client()
                if transport.is_closing():
                    return
                transport.write(chunk)
                STATS["lines"] += 1
                # let this line leave on its own, as a per-token flush does
                await asyncio.sleep(2e-3 if self.mode == "lockstep" and self.queue is None else 0)
            transport.write(b"0\r\n\r\n")
        self.busy = False
        if self.buffer:
            self.next_request()


async def serve(port: int, chunks: int, mode: str = "flush") -> None:
    if mode not in ("batch", "flush", "lockstep", "idle"):
        raise SystemExit(f"unknown mode {mode!r}")
    framed = [b"%x\r\n%s\r\n" % (len(line), line) for line in reply_lines(chunks)]
    queue = None
    if mode == "lockstep":
        try:
            queue = ReceiveQueue()
            STATS["lockstep"] = True
        except OSError as exc:  # not Linux, or netlink refused: paced by time instead
            print(f"lockstep unavailable ({exc}): pacing lines 2 ms apart", file=sys.stderr)
    server = await asyncio.get_running_loop().create_server(
        lambda: Connection(framed, mode, queue), "127.0.0.1", port, backlog=4096)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] if sys.argv[3:] else "flush"))
