"""The WebSocket server: handshake checks, one handler per connection, health, shutdown.

The handler only reads the client's frames and hands them to the :class:`Hub`; all sending goes
through the hub's per-client sender tasks, over :class:`LogConnection`, which writes a whole round
of frames to the socket in one call instead of one write per frame.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import socket
from collections.abc import Sequence
from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from logtv.config import ServerConfig
from logtv.protocol import MAX_CLIENT_FRAME, PATH
from logtv.server.hub import Hub
from logtv.server.watcher import Tailer

__all__ = ["LogConnection", "LogServer"]

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0


class LogConnection(ServerConnection):
    """A server connection that sends many frames with one socket write."""

    async def send_frames(self, frames: Sequence[bytes]) -> None:
        """Send already-encoded UTF-8 JSON frames as text frames, then wait for the socket.

        ``send_context`` is websockets' documented hook for writing through its protocol object;
        going through it keeps closing, errors and flow control exactly as ``send()`` has them.
        """
        async with self.send_context():
            for frame in frames:
                self.protocol.send_text(frame)

    def send_data(self) -> None:
        """Write everything the protocol has queued in one ``transport.write``."""
        chunks = self.protocol.data_to_send()
        if all(chunks):
            if chunks:
                self.transport.write(b"".join(chunks))
            return
        # An empty chunk means "half-close": write what comes before it, then close as upstream.
        for index, data in enumerate(chunks):
            if data:
                continue
            if index:
                self.transport.write(b"".join(chunks[:index]))
            if self.transport.can_write_eof():
                try:
                    self.transport.write_eof()
                except Exception:  # pragma: no cover - as upstream: write_eof may raise anything
                    pass
            else:  # pragma: no cover - TLS transports cannot half-close
                self.transport.close()
            return

    def abort(self) -> None:
        """Drop the TCP connection at once (for a peer that no longer reads)."""
        self.transport.abort()


class LogServer:
    """A running `logtv serve`: the tailer, the hub and the WebSocket server."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.epoch = secrets.token_hex(8)
        self.hub: Hub | None = None
        self.tailer: Tailer | None = None
        self._server: Server | None = None
        self._ticker: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"ws://{host}:{self.port}{PATH}"

    async def start(self) -> None:
        """Open the files, start following them, and listen."""
        config = self.config
        hub = Hub(
            {name: "missing" for name in config.sources},
            backlog=config.backlog,
            client_buffer=config.client_buffer,
            stall_timeout=config.stall_timeout,
            host=config.name or socket.gethostname(),
            epoch=self.epoch,
        )
        tailer = Tailer(dict(config.sources), on_updates=hub.publish, max_line=config.max_line)
        self.hub, self.tailer = hub, tailer
        # Listen first, so a port in use is reported before anything else happens; no client
        # can be served before the files are opened, as nothing below awaits.
        self._server = await serve(
            self._handle,
            config.host,
            config.port,
            process_request=self._check_request,
            compression=None,
            max_size=MAX_CLIENT_FRAME,
            create_connection=LogConnection,
            logger=logging.getLogger("logtv.websockets"),
        )
        hub.seed(tailer.open(config.backlog))
        tailer.start(asyncio.get_running_loop())
        self._ticker = asyncio.create_task(self._tick_forever(hub))
        log.info("following %d sources: %s", len(config.sources), ", ".join(config.sources))

    async def stop(self) -> None:
        """Close every client with 1001 (going away), stop the watcher."""
        if self._ticker is not None:
            self._ticker.cancel()
        if self._server is not None:
            self._server.close()
            try:
                await asyncio.wait_for(self._server.wait_closed(), timeout=1.5)
            except TimeoutError:
                log.warning("some clients did not close in time; dropped them")
        if self.tailer is not None:
            await asyncio.to_thread(self.tailer.stop)

    async def _tick_forever(self, hub: Hub) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            hub.tick(TICK_SECONDS)

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.partition("?")[0]
        if path == "/healthz":
            assert self.hub is not None
            response = connection.respond(HTTPStatus.OK, json.dumps(self.hub.health()) + "\n")
            response.headers["Content-Type"] = "application/json"
            return response
        if path != PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, f"logtv serves {PATH} and /healthz\n")
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        assert self.hub is not None and isinstance(connection, LogConnection)
        peer = _peer_name(connection)
        client = self.hub.connect(connection, peer)
        try:
            async for frame in connection:
                self.hub.receive(client, frame)
        except ConnectionClosed:
            pass
        finally:
            self.hub.disconnect(client)


def _peer_name(connection: ServerConnection) -> str:
    address = connection.remote_address
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)
