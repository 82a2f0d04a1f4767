"""The WebSocket server: handshake checks, one handler per connection, health, shutdown.

The handler only reads the client's frames and hands them to the :class:`Hub`; all sending goes
through the hub's per-client sender tasks, over :class:`LogConnection`, which writes a whole round
of frames to the socket in one call instead of one write per frame.

Who may connect is decided in :mod:`logtv.server.policy` (Host, Origin, token, max clients),
called from websockets' ``process_request`` hook, before the upgrade.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import socket
import ssl
from collections.abc import Callable, Sequence
from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from logtv.config import ServerConfig, default_state_dir, is_loopback_host
from logtv.protocol import MAX_CLIENT_FRAME, PATH
from logtv.server.hub import Hub
from logtv.server.journal import JournalOptions
from logtv.server.policy import (
    Access,
    ClientSlots,
    HandshakePolicy,
    Refusal,
    exposure_warnings,
    server_tls_context,
)
from logtv.server.syslog import SyslogReceiver
from logtv.server.watcher import Tailer

__all__ = ["LogConnection", "LogServer"]

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
#: Seconds a closing peer has to answer our close frame before the TCP connection is dropped.
CLOSE_TIMEOUT = 5.0
#: The kernel's send buffer per connection (Linux doubles it). Left to autotuning, a peer that
#: stops reading pins up to 4 MB of kernel memory each, and lines held there can be neither
#: dropped nor reported with a gap; the client's own queue (--client-buffer) is the buffer.
#: 256 KiB still carries ~10 MB/s to a viewer 25 ms away.
SEND_BUFFER = 256 << 10


#: A subscriber whose transport holds more than this waits for its sender task instead.
DIRECT_WRITE_LIMIT = 64 << 10


class LogConnection(ServerConnection):
    """A server connection that sends many frames with one socket write."""

    #: What the handshake allowed (set by the server's ``process_request``).
    access: Access | None = None
    #: Called once when the TCP connection is gone (frees the connection's slot).
    on_lost: Callable[[], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            except OSError:  # pragma: no cover - not a TCP socket: leave it be
                pass

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.on_lost is not None:
            self.on_lost()
            self.on_lost = None

    async def send_frames(self, frames: Sequence[bytes]) -> None:
        """Write complete text frames (see ``protocol.frame_text``), then wait for the socket.

        The hub frames each payload once and shares the bytes among subscribers, so here they
        are written as they are, in one call. ``send_context`` (websockets' hook for writing
        from user code) still checks that the connection is open, flushes what the protocol
        itself queued (pongs, a close) and applies flow control, exactly as ``send()`` does.
        Server frames are never masked or compressed (compression is off), so the bytes are the
        same as the protocol would have made.
        """
        async with self.send_context():
            self.transport.write(b"".join(frames))

    def try_write(self, frames: Sequence[bytes]) -> bool:
        """Write frames now if the connection is open and its socket keeps up; else False.

        Synchronous on purpose: the hub calls it for each subscriber as a line comes in, and a
        socket whose buffer is filling up is left to the sender task and its flow control.
        """
        if self.protocol.state is not State.OPEN or self.transport.is_closing():
            return False
        if self.transport.get_write_buffer_size() > DIRECT_WRITE_LIMIT:
            return False
        self.transport.write(b"".join(frames))
        return True

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
        #: The syslog sockets (None without ``--syslog``).
        self.syslog: SyslogReceiver | None = None
        self._server: Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._tls: ssl.SSLContext | None = None
        self.policy = HandshakePolicy()
        self.slots = ClientSlots(config.max_clients)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        scheme = "wss" if self._tls is not None else "ws"
        return f"{scheme}://{host}:{self.port}{PATH}"

    @property
    def syslog_urls(self) -> list[str]:
        """The bound syslog sockets, ``udp://127.0.0.1:5514`` (real ports, also for port 0)."""
        return [] if self.syslog is None else list(self.syslog.urls)

    async def start(self) -> None:
        """Check the exposure rules, open the files, start following them, and listen.

        A config that would expose the logs (a non-loopback address without a token, unless
        ``insecure``) or a TLS key that cannot be used raises ConfigError before anything listens.
        """
        config = self.config = self.config.validated()
        if config.tls_cert is not None and config.tls_key is not None:
            self._tls = server_tls_context(config.tls_cert, config.tls_key)
        self.policy = HandshakePolicy(
            grants=config.grants(),
            allow_origins=config.allow_origin,
            local_host_only=is_loopback_host(config.host),
        )
        self.slots = ClientSlots(config.max_clients)
        for warning in exposure_warnings(config):
            log.warning("%s", warning)
        hub = Hub(
            {name: "missing" for name in config.sources},
            backlog=config.backlog,
            client_buffer=config.client_buffer,
            stall_timeout=config.stall_timeout,
            host=config.name or socket.gethostname(),
            epoch=self.epoch,
        )
        journal = JournalOptions(
            config.state_dir or default_state_dir(), config.journal_directory, config.backlog
        )
        tailer = Tailer(
            dict(config.sources), on_updates=hub.publish, max_line=config.max_line, journal=journal
        )
        self.hub, self.tailer = hub, tailer
        # Listen first, so a port in use is reported before anything else happens; no client
        # can be served before the files are opened, as nothing below awaits.
        self._server = await serve(
            self._handle,
            config.host,
            config.port,
            process_request=self._check_request,
            ssl=self._tls,
            # No permessage-deflate: it costs CPU and memory per client and a small frame could
            # inflate to a huge one; a client that offers it gets no extension.
            compression=None,
            max_size=MAX_CLIENT_FRAME,
            open_timeout=config.handshake_timeout,
            ping_interval=config.ping_interval or None,
            ping_timeout=config.ping_timeout,
            close_timeout=CLOSE_TIMEOUT,
            create_connection=LogConnection,
            logger=logging.getLogger("logtv.websockets"),
        )
        hub.seed(tailer.open(config.backlog))
        if config.syslog:
            self.syslog = SyslogReceiver(
                hub,
                config.syslog,
                allow=config.syslog_allow,
                max_sources=config.syslog_max_sources,
                max_line=config.max_line,
            )
            await self.syslog.start()
        tailer.start(asyncio.get_running_loop())
        self._ticker = asyncio.create_task(self._tick_forever(hub))
        if config.sources:
            log.info("following %d sources: %s", len(config.sources), ", ".join(config.sources))
        else:
            log.info("following no files: every source will come from syslog senders")

    async def stop(self) -> None:
        """Close every client with 1001 (going away), stop the watcher."""
        if self._ticker is not None:
            self._ticker.cancel()
        if self.syslog is not None:
            self.syslog.close()
        if self._server is not None:
            await self._close_connections()
        if self.tailer is not None:
            await asyncio.to_thread(self.tailer.stop)

    async def _close_connections(self) -> None:
        """Send every client a 1001 close; drop those that do not finish within 0.7 s.

        websockets' own ``Server.close()`` waits for each closing handshake as long as the
        close timeout, and longer for a peer whose socket is full; a stopped peer must not keep
        the server from exiting.
        """
        assert self._server is not None
        self._server.close(close_connections=False)
        connections = list(self._server.connections)
        closing = [asyncio.create_task(c.close(1001, "server shutting down")) for c in connections]
        if closing:
            await asyncio.wait(closing, timeout=0.7)
        for connection, task in zip(connections, closing, strict=True):
            if not task.done():
                connection.transport.abort()
                task.cancel()
        if closing:
            await asyncio.wait(closing, timeout=0.2)
        try:
            await asyncio.wait_for(self._server.wait_closed(), timeout=0.2)
        except TimeoutError:
            log.warning("some connections did not close in time")

    async def _tick_forever(self, hub: Hub) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            hub.tick(TICK_SECONDS)

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Answer /healthz and refusals here; None lets the upgrade go on (a slot is taken)."""
        assert self.hub is not None and isinstance(connection, LogConnection)
        path = request.path.partition("?")[0]
        verdict = self.policy.check(request.headers)
        if isinstance(verdict, Refusal):
            return self._refuse(connection, path, verdict)
        if path == "/healthz":
            health = self.hub.health(verdict.sources)
            response = connection.respond(HTTPStatus.OK, json.dumps(health) + "\n")
            del response.headers["Content-Type"]  # respond() set text/plain; headers append
            response.headers["Content-Type"] = "application/json"
            return response
        if path != PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, f"logtv serves {PATH} and /healthz\n")
        if not self.slots.take(connection):
            refusal = Refusal(
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"the server is full ({self.slots.limit} clients); try again later",
            )
            return self._refuse(connection, path, refusal)
        connection.on_lost = lambda: self.slots.release(connection)
        connection.access = verdict
        return None

    def _refuse(self, connection: ServerConnection, path: str, refusal: Refusal) -> Response:
        log.warning(
            "refused %s %r: %d %s",
            _peer_name(connection),
            path[:100],
            refusal.status,
            refusal.reason,
        )
        response = connection.respond(refusal.status, f"logtv: {refusal.reason}\n")
        if refusal.status == HTTPStatus.UNAUTHORIZED:
            response.headers["WWW-Authenticate"] = 'Bearer realm="logtv"'
        elif refusal.status == HTTPStatus.SERVICE_UNAVAILABLE:
            response.headers["Retry-After"] = "10"
        return response

    async def _handle(self, connection: ServerConnection) -> None:
        assert self.hub is not None and isinstance(connection, LogConnection)
        peer = _peer_name(connection)
        access = connection.access or Access()
        if access.token_name is not None:
            log.debug("connection from %s uses token %r", peer, access.token_name)
        client = self.hub.connect(connection, peer, access.sources)
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
