"""Receive syslog over UDP and TCP, so rsyslog, syslog-ng or `logger` on a fleet feed one logtv.

The sockets live on the loop that owns the hub, so a message goes from the socket to the hub
without a thread or a lock. What arrives in one loop iteration (any number of datagrams and TCP
reads) is handed to :meth:`~logtv.server.hub.Hub.publish` in one call, one
:class:`~logtv.server.watcher.SourceUpdate` per source, each line with its severity.

- Each sending host+program is a source, ``tag@host`` (:func:`~logtv.server.syslog_parse.
  source_name`), added to the hub when its first message comes (an ``appeared`` event). A name
  that a configured source already has becomes ``syslog:tag@host``; once ``max_sources`` exist,
  new senders share the ``syslog-overflow`` source (their lines still name host and tag).
- Syslog has no authentication: with an allow list, a datagram or connection from any other
  address is dropped, and the drops are logged at most every 10 s.
- Memory is bounded: at most ``max_connections`` TCP connections (more are closed at once),
  each holding at most one unfinished frame of ``max_line`` bytes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Iterable
from typing import Any

from logtv.config import SYSLOG_OVERFLOW, IPNetwork, SyslogListen
from logtv.server.hub import Hub
from logtv.server.syslog_parse import FrameSplitter, parse_message, source_name
from logtv.server.watcher import SourceUpdate

__all__ = ["SyslogListenError", "SyslogReceiver"]

log = logging.getLogger(__name__)

#: TCP connections served at once; a further one is closed as soon as it is accepted.
MAX_CONNECTIONS = 256
#: The UDP receive buffer asked of the kernel, so a burst waits there rather than being lost.
UDP_RECEIVE_BUFFER = 4 << 20
#: Seconds between two log lines about dropped senders.
DROP_LOG_INTERVAL = 10.0


class SyslogListenError(OSError):
    """A syslog socket could not be bound; ``url`` says which."""

    def __init__(self, url: str, error: OSError) -> None:
        super().__init__(error.errno, error.strerror or str(error))
        self.url = url


class _DropLog:
    """Counts what was dropped and logs it at most once every ``DROP_LOG_INTERVAL`` seconds."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.count = 0
        self.next_report = 0.0

    def note(self, sender: str) -> None:
        self.count += 1
        now = time.monotonic()
        if now >= self.next_report:
            log.warning("syslog: dropped %d %s (the last from %s)", self.count, self.what, sender)
            self.count = 0
            self.next_report = now + DROP_LOG_INTERVAL


class SyslogReceiver:
    """The syslog sockets of one server, and the sources their senders became."""

    def __init__(
        self,
        hub: Hub,
        listens: Iterable[SyslogListen],
        *,
        allow: Iterable[IPNetwork] = (),
        max_sources: int,
        max_line: int,
        max_connections: int | None = None,
    ) -> None:
        self.hub = hub
        self.listens = tuple(listens)
        self.allow = tuple(allow)
        self.max_sources = max_sources
        self.max_line = max_line
        self.max_connections = MAX_CONNECTIONS if max_connections is None else max_connections
        #: The bound sockets, as ``udp://127.0.0.1:5514`` (the real port when 0 was asked).
        self.urls: list[str] = []
        #: The sources this receiver added (the overflow one included once it exists).
        self.created: set[str] = set()
        #: ``tag@host`` -> the source its lines go to (differs on a clash or past the bound).
        self._routes: dict[str, str] = {}
        self._pending: dict[str, tuple[list[str], list[int]]] = {}
        self._flush_scheduled = False
        self._full_logged = False
        self._connections: set[_Stream] = set()
        self._servers: list[asyncio.Server] = []
        self._transports: list[asyncio.DatagramTransport] = []
        self._not_allowed = _DropLog("messages or connections from outside --syslog-allow")
        self._too_many = _DropLog(f"TCP connections over the limit of {self.max_connections}")
        self._loop = asyncio.get_running_loop()

    # -- life cycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind every socket; a socket that cannot be bound raises SyslogListenError."""
        for listen in self.listens:
            try:
                if listen.scheme == "udp":
                    sock = await self._bind_udp(listen)
                else:
                    server = await self._loop.create_server(
                        lambda: _Stream(self), listen.host, listen.port, backlog=128
                    )
                    self._servers.append(server)
                    sock = server.sockets[0]
            except OSError as exc:
                self.close()
                raise SyslogListenError(listen.url, exc) from None
            bound = SyslogListen(listen.scheme, listen.host, sock.getsockname()[1])
            self.urls.append(bound.url)
            log.debug("syslog: listening on %s", bound.url)  # the command line prints it

    async def _bind_udp(self, listen: SyslogListen) -> socket.socket:
        transport, _ = await self._loop.create_datagram_endpoint(
            lambda: _Datagrams(self), local_addr=(listen.host, listen.port)
        )
        self._transports.append(transport)
        sock: socket.socket = transport.get_extra_info("socket")
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
        except OSError:  # pragma: no cover - the kernel's own default is kept
            pass
        return sock

    def close(self) -> None:
        """Close every socket and connection; what was received is still published."""
        for transport in self._transports:
            transport.close()
        for server in self._servers:
            server.close()
        for connection in list(self._connections):
            connection.transport.abort()
        self._transports.clear()
        self._servers.clear()
        self._flush()

    # -- what arrives ----------------------------------------------------------------------------

    def allows(self, address: str) -> bool:
        """True if ``address`` may send (always, without an allow list)."""
        if not self.allow:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.allow if network.version == ip.version)

    def receive(self, data: bytes, sender: str, cut: int = 0) -> None:
        """Take one message from ``sender``; it is published with this iteration's others."""
        message = parse_message(
            data, sender=sender, received_at=time.time(), max_line=self.max_line, cut=cut
        )
        name = self._route(source_name(message.tag, message.host))
        lines, severities = self._pending.setdefault(name, ([], []))
        lines.append(message.line)
        severities.append(message.severity)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _route(self, wanted: str) -> str:
        """The source for ``tag@host``: the same, a ``syslog:`` name on a clash, or the overflow."""
        name = self._routes.get(wanted)
        if name is not None:
            return name
        name = wanted
        if name in self.hub.sources and name not in self.created:
            name = f"syslog:{wanted}"[:64]
        if name not in self.created:
            full = len(self.created) - (SYSLOG_OVERFLOW in self.created) >= self.max_sources
            if full or name in self.hub.sources:
                if full and not self._full_logged:
                    self._full_logged = True
                    log.warning(
                        "syslog: %d sources made; later senders go to %r",
                        self.max_sources,
                        SYSLOG_OVERFLOW,
                    )
                name = SYSLOG_OVERFLOW
            if name not in self.created:
                self.hub.add_source(name)
                self.created.add(name)
                log.info("syslog: new source %s", name)
        if name != SYSLOG_OVERFLOW:  # senders past the bound are not remembered: memory bounded
            self._routes[wanted] = name
        return name

    def _flush(self) -> None:
        """Hand everything received since the last flush to the hub, in one call."""
        self._flush_scheduled = False
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        read_at = time.time()
        self.hub.publish(
            [
                SourceUpdate(name, lines, [], "following", read_at, severities)
                for name, (lines, severities) in pending.items()
            ]
        )

    def refuse(self, which: str, sender: str) -> None:
        """Log (rate-limited) a sender that was dropped."""
        if which == "not_allowed":
            self._not_allowed.note(sender)
        else:
            self._too_many.note(sender)


def _sender(address: Any) -> str:
    """The peer's address as text; an IPv4-mapped IPv6 address as plain IPv4."""
    host = str(address[0]) if isinstance(address, tuple) and address else str(address)
    try:
        ip = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


class _Datagrams(asyncio.DatagramProtocol):
    """A UDP socket: one datagram is one message."""

    def __init__(self, receiver: SyslogReceiver) -> None:
        self.receiver = receiver

    def datagram_received(self, data: bytes, addr: Any) -> None:
        sender = _sender(addr)
        if not self.receiver.allows(sender):
            self.receiver.refuse("not_allowed", sender)
            return
        self.receiver.receive(data, sender)

    def error_received(self, exc: Exception) -> None:  # pragma: no cover - ICMP errors
        log.debug("syslog: udp error: %s", exc)


class _Stream(asyncio.Protocol):
    """A TCP connection: frames split by :class:`FrameSplitter`, one message each."""

    transport: asyncio.Transport

    def __init__(self, receiver: SyslogReceiver) -> None:
        self.receiver = receiver
        self.sender = ""
        self.splitter = FrameSplitter(receiver.max_line)
        self.accepted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.sender = _sender(transport.get_extra_info("peername"))
        receiver = self.receiver
        if not receiver.allows(self.sender):
            receiver.refuse("not_allowed", self.sender)
            transport.abort()
            return
        if len(receiver._connections) >= receiver.max_connections:
            receiver.refuse("too_many", self.sender)
            transport.abort()
            return
        self.accepted = True
        receiver._connections.add(self)
        log.debug("syslog: tcp connection from %s", self.sender)

    def data_received(self, data: bytes) -> None:
        if not self.accepted:
            return
        for frame, cut in self.splitter.feed(data):
            self.receiver.receive(frame, self.sender, cut)

    def eof_received(self) -> bool | None:
        if self.accepted:
            for frame, cut in self.splitter.finish():
                self.receiver.receive(frame, self.sender, cut)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.receiver._connections.discard(self)
