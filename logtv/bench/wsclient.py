"""A lean WebSocket client protocol: handshake, unmasked server frames in, masked frames out.

Why not the websockets library here: the bench runs a hundred clients in two processes on a
2-core machine, and a general client's per-frame cost (frame objects, queues, a task per
message) would make the bench, not the server, the bottleneck in one-frame-per-line modes. This
one hands every complete text message of a TCP read to one callback, with one clock reading, and
otherwise only answers pings and closes. It is a client for loopback benchmarks, not a general
one: no extensions, no TLS, no subprotocols.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections.abc import Callable

__all__ = ["HandshakeError", "WsClient"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HEADER = 64 * 1024
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10

#: Called with the text messages of one TCP read and the monotonic time (ns) of that read.
OnMessages = Callable[[list[bytes], int], None]


class HandshakeError(Exception):
    """The server did not switch protocols."""


class WsClient(asyncio.Protocol):
    """One connection. ``opened`` resolves after the handshake, ``closed`` when the TCP ends."""

    def __init__(self, host: str, port: int, path: str, on_messages: OnMessages) -> None:
        self._request, self._accept = _handshake(host, port, path)
        self._on_messages = on_messages
        self._buffer = b""
        self._fragments: list[bytes] = []
        self._open = False
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.close_code: int | None = None
        self.bytes_received = 0

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self.bytes_received += len(data)
        buffer = self._buffer + data if self._buffer else data
        if not self._open:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > _MAX_HEADER:
                    self._fail(HandshakeError("response headers too long"))
                self._buffer = buffer
                return
            try:
                self._check_response(buffer[:end])
            except HandshakeError as exc:
                self._fail(exc)
                return
            self._open = True
            self.opened.set_result(None)
            buffer = buffer[end + 4 :]
        self._buffer = self._parse(buffer)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or HandshakeError("connection closed in the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    # -- sending ------------------------------------------------------------------------------

    def send_text(self, payload: bytes) -> None:
        """Send one masked text frame."""
        self._send(OP_TEXT, payload)

    def close(self, code: int = 1000) -> None:
        """Start the closing handshake; the server closes the TCP connection."""
        if self.transport is not None and not self.transport.is_closing():
            self._send(OP_CLOSE, code.to_bytes(2, "big"))

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- internals ----------------------------------------------------------------------------

    def _check_response(self, head: bytes) -> None:
        status, *headers = head.split(b"\r\n")
        if status.split(b" ", 2)[1:2] != [b"101"]:
            raise HandshakeError(f"server answered {status.decode(errors='replace')!r}")
        fields = {}
        for header in headers:
            name, _, value = header.partition(b":")
            fields[name.strip().lower()] = value.strip()
        if fields.get(b"sec-websocket-accept") != self._accept:
            raise HandshakeError("wrong Sec-WebSocket-Accept")

    def _fail(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        self.abort()

    def _parse(self, buffer: bytes) -> bytes:
        """Take every complete frame from ``buffer``; return the unfinished rest."""
        messages: list[bytes] = []
        position = 0
        size = len(buffer)
        while size - position >= 2:
            first = buffer[position]
            length = buffer[position + 1] & 0x7F
            start = position + 2
            if length == 126:
                if size - start < 2:
                    break
                length = int.from_bytes(buffer[start : start + 2], "big")
                start += 2
            elif length == 127:
                if size - start < 8:
                    break
                length = int.from_bytes(buffer[start : start + 8], "big")
                start += 8
            end = start + length
            if end > size:
                break
            position = end
            opcode = first & 0x0F
            if opcode == OP_TEXT and first & 0x80:
                messages.append(buffer[start:end])
            elif opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                self._fragments.append(buffer[start:end])
                if first & 0x80:
                    messages.append(b"".join(self._fragments))
                    self._fragments.clear()
            elif opcode == OP_PING:
                self._send(OP_PONG, buffer[start:end])
            elif opcode == OP_CLOSE:
                payload = buffer[start:end]
                self.close_code = int.from_bytes(payload[:2], "big") if payload else 1005
                self.close(self.close_code if self.close_code != 1005 else 1000)
        if messages:
            self._on_messages(messages, time.monotonic_ns())
        return buffer[position:] if position < size else b""

    def _send(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        length = len(payload)
        if length < 126:
            header = bytes((0x80 | opcode, 0x80 | length))
        elif length < 1 << 16:
            header = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
        mask = os.urandom(4)
        repeated = (mask * (length // 4 + 1))[:length]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
            length, "big"
        )
        self.transport.write(header + mask + masked)


def _handshake(host: str, port: int, path: str) -> tuple[bytes, bytes]:
    """The upgrade request, and the Sec-WebSocket-Accept value the server must answer with."""
    key = base64.b64encode(os.urandom(16))
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    request = (
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
        ).encode()
        + b"Sec-WebSocket-Key: "
        + key
        + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    return request, accept
