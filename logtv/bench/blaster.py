"""The bench's ceiling: a server that does no work, so the clients are all that is measured.

It speaks just enough of each client mode (a ``hello`` for the logtv modes, nothing for
``plain``), sends warm-up frames until the runner writes ``go`` on its stdin, then sends every
client the same pre-encoded frames for lines 1..N (encoded once, before ``go``, with the
protocol's own encoders) as fast as the sockets take them. Whatever rate the clients reach here
is the most the bench could show for any server on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence

from logtv.bench.lines import line, warmup_line
from logtv.protocol import encode_batch, encode_line, format_timestamp

__all__ = ["encode_frames", "main"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
BATCH_LINES = 1000
SEND_CHUNK = 1 << 20
WARMUP_SECONDS = 0.05
#: However it is left running, it ends by itself after this long (s).
LIFETIME = 900.0


def _frame(payload: bytes) -> bytes:
    """An unmasked final text frame."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 1 << 16:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + payload


def encode_frames(mode: str, texts: Sequence[str], first_seq: int = 1) -> bytes:
    """The lines as one byte string of WebSocket frames, in ``mode``'s framing."""
    stamp = format_timestamp(time.time())
    if mode == "plain":
        payloads = [text.encode() for text in texts]
    elif mode == "line":
        payloads = [
            encode_line('"bench"', text, stamp, seq) for seq, text in enumerate(texts, first_seq)
        ]
    else:
        payloads = [
            encode_batch('"bench"', texts[i : i + BATCH_LINES], stamp, first_seq + i)
            for i in range(0, len(texts), BATCH_LINES)
        ]
    return b"".join(map(_frame, payloads))


class Blaster:
    """The server: connections, warm-up until ``go``, then the blob to everyone."""

    def __init__(self, mode: str, count: int) -> None:
        self.mode = mode
        now = time.monotonic_ns() // 1000
        texts = [line(seq, now).decode().rstrip("\n") for seq in range(1, count + 1)]
        self.blob = encode_frames(mode, texts)
        self.writers: list[asyncio.StreamWriter] = []
        self.go = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        key = b""
        for header in head.split(b"\r\n"):
            name, _, value = header.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        if self.mode != "plain":
            writer.write(_frame(json.dumps({"type": "hello", "protocol": 1}).encode()))
        self.writers.append(writer)
        drain = asyncio.create_task(_discard(reader))
        try:
            while not self.go.is_set():
                writer.write(encode_frames(self.mode, [warmup_line().decode().rstrip("\n")]))
                try:
                    await asyncio.wait_for(self.go.wait(), WARMUP_SECONDS)
                except TimeoutError:
                    pass
            view = memoryview(self.blob)
            for start in range(0, len(view), SEND_CHUNK):
                writer.write(view[start : start + SEND_CHUNK])
                await writer.drain()
            await drain
        except (ConnectionError, OSError):
            pass
        finally:
            drain.cancel()
            writer.close()


async def _discard(reader: asyncio.StreamReader) -> None:
    while await reader.read(1 << 16):
        pass


async def _serve(mode: str, count: int) -> None:
    blaster = Blaster(mode, count)
    server = await asyncio.start_server(blaster.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"event": "listening", "url": f"ws://127.0.0.1:{port}/"}), flush=True)
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), LIFETIME)
        blaster.go.set()
        # Until stdin ends (the runner ends it, or it is killed), and never past LIFETIME.
        await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), LIFETIME)
    except TimeoutError:
        pass
    server.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m logtv.bench.blaster")
    parser.add_argument("--mode", choices=("batch", "line", "plain"), required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args.mode, args.count))
    except KeyboardInterrupt:
        pass
    os._exit(0)  # the executor thread may still block on stdin


if __name__ == "__main__":
    sys.exit(main())
