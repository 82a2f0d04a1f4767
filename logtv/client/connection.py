"""A reconnecting protocol-v1 client, as an async iterator of events. No Textual in here.

Both viewers (`logtv tail` and `logtv watch`) use it. It keeps the position reached in every
source, so that after a dropped connection it resubscribes with ``since`` and the server replays
exactly what was missed (or says, with a gap, what it no longer has). When the server restarted
(a new ``epoch``), positions mean nothing any more: it says so with a :class:`Restarted` event.

With a server-side filter, lines arrive with holes in their seqs; those holes are not gaps (the
server sends a ``gap`` for lines it failed to deliver). The position then also advances with
``stats``, so that a resume does not ask again for lines the filter already passed over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from logtv.client.ssh import SshTarget, open_tunnel, parse_ssh_url
from logtv.config import DEFAULT_PORT
from logtv.protocol import ALL, PATH

__all__ = [
    "Connected",
    "Disconnected",
    "Event",
    "Gap",
    "Lines",
    "LogClient",
    "Notice",
    "Reply",
    "Restarted",
    "SourceInfo",
    "Stats",
    "normalize_url",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SourceInfo:
    name: str
    state: str
    seq: int


@dataclass(frozen=True, slots=True)
class Connected:
    """The server said hello."""

    host: str
    server: str
    epoch: str
    sources: tuple[SourceInfo, ...]


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection failed or closed; ``retry_in`` seconds until the next try (None: never)."""

    error: str
    retry_in: float | None
    ever_connected: bool
    #: The HTTP status when the server refused the handshake (401: token, 403: origin/host).
    status: int | None = None


@dataclass(frozen=True, slots=True)
class Restarted:
    """The server restarted since we last saw it: lines written meanwhile may be missing."""

    previous_epoch: str
    epoch: str


@dataclass(frozen=True, slots=True)
class Lines:
    """Lines of one source; line ``i`` has seq ``seqs[i]``, or ``first_seq + i`` without seqs."""

    source: str
    first_seq: int
    lines: list[str]
    timestamp: str
    #: The seq of each line when they are not consecutive (a filtered subscription's batch).
    seqs: list[int] | None = None

    @property
    def last_seq(self) -> int:
        return self.seqs[-1] if self.seqs else self.first_seq + len(self.lines) - 1

    def numbered(self) -> Iterable[tuple[int, str]]:
        """Each line with its seq."""
        if self.seqs is not None:
            return zip(self.seqs, self.lines, strict=False)
        return enumerate(self.lines, self.first_seq)


@dataclass(frozen=True, slots=True)
class Gap:
    """Lines of a source this client will not get."""

    source: str
    from_seq: int
    to_seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class Notice:
    """Something happened to a source's file (rotated, truncated, appeared, vanished, state)."""

    source: str
    state: str
    event: str


@dataclass(frozen=True, slots=True)
class Stats:
    """Every source's last seq and line rate, about once a second while lines flow."""

    sources: dict[str, tuple[int, float]]


@dataclass(frozen=True, slots=True)
class Reply:
    """An ack (``subscribed``/``unsubscribed``) or an ``error`` from the server."""

    kind: str
    source: str | None = None
    error: str | None = None
    detail: str | None = None
    #: For ``subscribed``: per source, the seq after which every line (or a gap) will follow.
    starts: dict[str, int] = field(default_factory=dict)


Event = Connected | Disconnected | Restarted | Lines | Gap | Notice | Stats | Reply


def normalize_url(target: str) -> str:
    """Accept ``HOST:PORT``, ``HOST``, ``[::1]:PORT`` or a ``ws://``/``wss://`` URL."""
    if "://" not in target:
        target = "ws://" + target
    parts = urlsplit(target)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"unsupported scheme {parts.scheme!r}: use ws://, wss:// or ssh://")
    if not parts.hostname:
        raise ValueError(f"no host in {target!r}")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError(f"bad port in {target!r}") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    path = parts.path if parts.path not in ("", "/") else PATH
    return f"{parts.scheme}://{host}:{port}{path}"


@dataclass
class _Position:
    """How far this client got in each source, within one server epoch."""

    epoch: str | None = None
    seq: dict[str, int] = field(default_factory=dict)

    def advance(self, source: str, seq: int) -> None:
        if seq > self.seq.get(source, 0):
            self.seq[source] = seq


class LogClient:
    """Connect, subscribe, yield events; reconnect with backoff and resume where it stopped."""

    def __init__(
        self,
        url: str,
        *,
        sources: Iterable[str] | None = (ALL,),
        backlog: int = 0,
        line_filter: str | None = None,
        min_severity: str | None = None,
        batch: bool = True,
        token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        reconnect: bool = True,
        max_backoff: float = 10.0,
        open_timeout: float = 10.0,
        name: str | None = None,
    ) -> None:
        #: For ``ssh://`` targets: the tunnel's far end; the WebSocket URL is then its loopback.
        self.ssh: SshTarget | None = parse_ssh_url(url) if url.startswith("ssh://") else None
        self.url = self.ssh.url if self.ssh else normalize_url(url)
        #: The address as the user gave it (``web1:8765``), or the hosts file's name for it,
        #: for labels and ``tail --json``.
        self.target = name or url
        #: A hosts-file name: the label of this server's lines, instead of its hello host name.
        self.name = name
        #: What to subscribe to after every (re)connect; None: each source the server has,
        #: one by one (so that a viewer can then drop any of them).
        self.subscriptions: list[str] | None = (
            None if sources is None else list(dict.fromkeys(sources))
        )
        #: Asked for every source: one that appears later (a syslog sender) is subscribed too.
        self.follow_new = sources is None
        self.backlog = backlog
        self.batch = batch
        self.token = token
        self.ssl_context = ssl_context
        self.reconnect = reconnect
        self.max_backoff = max_backoff
        self.open_timeout = open_timeout
        #: Server-side filter sent with every subscribe: a regular expression (RE2 syntax)
        #: and a minimum syslog severity; None: not filtered.
        self.line_filter = line_filter
        self.min_severity = min_severity
        self.position = _Position()
        self._connection: ClientConnection | None = None
        self._closed = False
        self._had_session = False

    async def subscribe(self, source: str) -> None:
        """Start receiving a source now (and after every reconnect)."""
        if self.subscriptions is None:
            self.subscriptions = []
        if source not in self.subscriptions:
            self.subscriptions.append(source)
        await self._send(self._subscribe_message(source))

    def _subscribe_message(self, source: str) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "subscribe", "log_source": source, "batch": self.batch}
        if self.line_filter is not None:
            message["filter"] = self.line_filter
        if self.min_severity is not None:
            message["min_severity"] = self.min_severity
        return message

    @property
    def filtered(self) -> bool:
        return self.line_filter is not None or self.min_severity is not None

    async def unsubscribe(self, source: str) -> None:
        """Stop receiving a source."""
        if self.subscriptions is not None and source in self.subscriptions:
            self.subscriptions.remove(source)
        await self._send({"type": "unsubscribe", "log_source": source})

    async def close(self) -> None:
        """Stop for good; the event iterator ends."""
        self._closed = True
        if self._connection is not None:
            await self._connection.close()

    async def _send(self, message: dict[str, Any]) -> None:
        if self._connection is not None:
            try:
                await self._connection.send(json.dumps(message))
            except ConnectionClosed:
                pass  # the reconnect resubscribes

    async def events(self) -> AsyncIterator[Event]:
        """Every event until :meth:`close`, or the first failure when ``reconnect`` is off."""
        backoff = 0.5
        ever_connected = False
        while not self._closed:
            error = ""
            status = None
            # wss:// always verifies: the given context (say, one trusting --ca), or the system's.
            tls = (self.ssl_context or True) if self.url.startswith("wss:") else None
            try:
                headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
                async with contextlib.AsyncExitStack() as stack:
                    # Over ssh: a new ssh per attempt, speaking to the remote's own loopback.
                    sock = (
                        await stack.enter_async_context(open_tunnel(self.ssh)) if self.ssh else None
                    )
                    connection = await stack.enter_async_context(
                        connect(
                            self.ssh.ws_url if self.ssh else self.url,
                            sock=sock,
                            additional_headers=headers,
                            ssl=tls,
                            compression=None,
                            max_size=None,
                            open_timeout=self.open_timeout,
                            user_agent_header=None,
                        )
                    )
                    self._connection = connection
                    async for event in self._session(connection):
                        if isinstance(event, Connected):
                            ever_connected = True
                            backoff = 0.5
                        yield event
                    error = _close_reason(connection)
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                error = _describe(exc)
                if isinstance(exc, InvalidStatus):
                    status = exc.response.status_code
            except InvalidURI as exc:
                error = str(exc)
                self._closed = True
            except ConnectionClosed as exc:
                error = _describe(exc)
            finally:
                self._connection = None
            if self._closed:
                return
            retry_in = backoff if self.reconnect else None
            yield Disconnected(error, retry_in, ever_connected, status)
            if retry_in is None:
                return
            await asyncio.sleep(retry_in)
            backoff = min(backoff * 2, self.max_backoff)

    async def _session(self, connection: ClientConnection) -> AsyncIterator[Event]:
        first = json.loads(await connection.recv())
        if not isinstance(first, dict) or first.get("type") != "hello":
            raise InvalidHandshake("the server did not say hello: is it a logtv server?")
        hello = _parse_hello(first)
        yield hello
        if self.filtered and first.get("filter") is not True:
            yield Reply(
                "error",
                error="filter_unsupported",
                detail="this server cannot filter (an older logtv): every line will come",
            )
        position = self.position
        resuming = position.epoch == hello.epoch
        if position.epoch is not None and not resuming:
            yield Restarted(position.epoch, hello.epoch)
            position.seq.clear()
        position.epoch = hello.epoch
        for info in hello.sources:
            if not resuming:
                position.seq[info.name] = info.seq
        if self.subscriptions is None:
            self.subscriptions = [info.name for info in hello.sources]
        first_session = not self._had_session
        self._had_session = True
        # Sources whose ack came in this session: from then on, stats show how far we got.
        acked: set[str] = set()
        for source in self.subscriptions:
            message = self._subscribe_message(source)
            if resuming:
                since = dict(position.seq) if source == ALL else position.seq.get(source, 0)
                message["since"] = since
            elif first_session and self.backlog:
                # Only the first time: after a restart the new server's backlog would repeat
                # lines we already showed.
                message["backlog"] = self.backlog
            await connection.send(json.dumps(message))
        async for frame in connection:
            event = _parse(frame)
            if event is None:
                continue
            if isinstance(event, Lines):
                position.advance(event.source, event.last_seq)
            elif isinstance(event, Gap):
                position.advance(event.source, event.to_seq)
            elif isinstance(event, Reply) and event.kind == "subscribed":
                position.seq.update(event.starts)
                acked.update(event.starts)
            elif isinstance(event, Stats) and self.filtered:
                # Every line up to a stats frame's seq came before it (or was filtered out).
                for name in acked.intersection(event.sources):
                    position.advance(name, event.sources[name][0])
            elif isinstance(event, Notice) and event.event == "appeared":
                await self._follow_appeared(connection, event.source)
            yield event

    async def _follow_appeared(self, connection: ClientConnection, source: str) -> None:
        """Subscribe to a source that appeared, from its first buffered line, if we want all."""
        if not self.follow_new or self.subscriptions is None or source in self.subscriptions:
            return
        self.subscriptions.append(source)
        message = self._subscribe_message(source)
        message["since"] = 0  # what it said before our subscribe arrived is in its buffer
        await connection.send(json.dumps(message))


def _parse_hello(message: dict[str, Any]) -> Connected:
    sources = tuple(
        SourceInfo(str(s.get("name")), str(s.get("state")), int(s.get("seq", 0)))
        for s in message.get("sources", [])
        if isinstance(s, dict)
    )
    return Connected(
        host=str(message.get("host", "?")),
        server=str(message.get("server", "?")),
        epoch=str(message.get("epoch", "")),
        sources=sources,
    )


def _parse(frame: str | bytes) -> Event | None:
    message = json.loads(frame)
    kind = message.get("type")
    if kind == "raw_logs":
        seqs = message.get("seqs")
        return Lines(
            message["log_source"],
            message["seq"],
            message["lines"],
            message["timestamp"],
            seqs if isinstance(seqs, list) and len(seqs) == len(message["lines"]) else None,
        )
    if kind == "raw_log":
        return Lines(
            message["log_source"], message["seq"], [message["raw_line"]], message["timestamp"]
        )
    if kind == "gap":
        return Gap(message["log_source"], message["from_seq"], message["to_seq"], message["reason"])
    if kind == "source":
        return Notice(message["name"], message["state"], message["event"])
    if kind == "stats":
        return Stats(
            {name: (int(s["seq"]), float(s["rate"])) for name, s in message["sources"].items()}
        )
    if kind in ("subscribed", "unsubscribed"):
        starts = message.get("seq")
        return Reply(
            kind,
            source=message.get("log_source"),
            starts=dict(starts) if isinstance(starts, dict) else {},
        )
    if kind == "error":
        return Reply("error", error=message.get("error"), detail=message.get("detail"))
    return None  # a newer server's message we do not know: ignore it, as the protocol allows


def _close_reason(connection: ClientConnection) -> str:
    code = connection.close_code
    reason = connection.close_reason
    if code is None:
        return "connection lost"
    return f"closed by server ({code}{': ' + reason if reason else ''})"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is `logtv serve` running there?)"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionClosed):
        return f"connection closed ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"TLS: the server's certificate is not trusted ({exc.verify_message}); "
            "give its certificate or CA with --ca FILE"
        )
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        body = exc.response.body or b""
        said = body[:200].decode("utf-8", "replace").strip().removeprefix("logtv: ")
        if status == 401:
            return f"HTTP 401: {said or 'a token is needed'} (--token-file FILE or LOGTV_TOKEN)"
        return f"HTTP {status}: {said or 'the server refused the connection'}"
    text = str(exc) or type(exc).__name__
    return text
