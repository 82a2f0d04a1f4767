"""The broadcaster: sources with their seq and ring buffers, connections with their subscriptions.

Everything here runs on the asyncio loop, so nothing needs a lock. Lines come in from the tailer
in batches; each batch is encoded once per frame form (one ``raw_log`` frame per line, or one
``raw_logs`` frame for the batch) and the same bytes are queued to every subscriber.

Every client has its own bounded queue and a sender task that drains it. A client that cannot keep
up loses the oldest queued lines (and is told which, with a ``gap``); one that accepts nothing for
``stall_timeout`` is closed with 1008. Neither slows the reader or any other client.

A subscription may carry a filter (:mod:`logtv.server.filters`): each distinct filter runs once
per chunk and its lines are encoded once for every client that shares it; clients without one
keep the plain path, untouched. A filtered client gets real seqs with holes where lines did not
pass; ``stats`` stay unfiltered, and tell such a client how far it has got.

A client may be limited to some sources (its token's): it is never told of any other, not in
``hello``, ``stats``, file notices or ``/healthz``; asking for one is a ``forbidden`` error. What
a client sends is rate-limited (:class:`~logtv.server.policy.MessageLimiter`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from logtv import __version__
from logtv.protocol import (
    ALL,
    PROTOCOL_VERSION,
    ProtocolError,
    Subscribe,
    Unsubscribe,
    decode_client_frame,
    encode,
    encode_batch,
    encode_line,
    encode_picked,
    format_timestamp,
    frame_text,
)
from logtv.server.filters import FilterError, LineFilter, compile_filter
from logtv.server.policy import MessageLimiter
from logtv.server.watcher import SourceUpdate

__all__ = ["Client", "Hub", "Sink"]

#: Stands for "no severity" for a line held beside lines that have one (above debug's 7).
NO_SEVERITY = 8

log = logging.getLogger(__name__)

#: A batch frame holds at most this many lines (so one frame is never huge to parse or drop).
BATCH_LINES = 1000
#: Lines that arrive within this long of the last fan-out wait for the next one (at most this
#: long), so a steady trickle to many clients goes out as one frame per window instead of one per
#: line: at 1,000 lines/s that is a fifth of the frames, writes and client wake-ups. A line that
#: comes after a quiet spell goes out at once. Full batches never wait.
HOLD_SECONDS = 0.004
#: A sender writes at most this many bytes before it waits for the socket to drain. A client that
#: stopped reading keeps one round in its transport's buffer: this, times the clients, is memory.
SEND_ROUND_BYTES = 256 << 10
#: Seconds of the loop one distinct filter may use per stats tick (about a second); past that
#: its clients are closed with 1008, so that no pattern can take the broadcaster from the rest.
FILTER_BUDGET = 0.25


class Sink(Protocol):
    """What the hub needs of a connection: write complete WebSocket frames, and close."""

    def try_write(self, frames: Sequence[bytes]) -> bool: ...

    async def send_frames(self, frames: Sequence[bytes]) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...

    def abort(self) -> None: ...


@dataclass(slots=True)
class _Chunk:
    """Consecutive lines of one source, as read together."""

    first_seq: int
    lines: list[str]
    timestamp: str
    read_at: float
    #: Syslog severity per line (0 emerg … 7 debug), or None when the source has none.
    severities: list[int] | None = None

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.lines) - 1


@dataclass(slots=True)
class Source:
    """One source's live state: last seq, the ring buffer of recent lines, the line rate."""

    name: str
    state: str
    backlog: int
    seq: int = 0
    ring: deque[_Chunk] = field(default_factory=deque)
    ring_lines: int = 0
    lines_this_tick: int = 0
    rate: float = 0.0
    #: The name as a JSON string, encoded once for every frame of this source.
    name_json: str = ""
    #: Lines read but not yet numbered and fanned out (see HOLD_SECONDS), their severities, and
    #: when the first of them was read.
    held: list[str] = field(default_factory=list)
    held_severities: list[int] | None = None
    held_read_at: float = 0.0

    def __post_init__(self) -> None:
        self.name_json = json.dumps(self.name, ensure_ascii=False)

    def append(
        self, lines: list[str], read_at: float, severities: list[int] | None = None
    ) -> _Chunk:
        chunk = _Chunk(self.seq + 1, lines, format_timestamp(read_at), read_at, severities)
        self.seq += len(lines)
        self.lines_this_tick += len(lines)
        self.ring.append(chunk)
        self.ring_lines += len(lines)
        while self.ring and self.ring_lines - len(self.ring[0].lines) >= self.backlog:
            self.ring_lines -= len(self.ring.popleft().lines)
        return chunk

    @property
    def oldest_buffered(self) -> int:
        """Seq of the oldest line still replayable (seq + 1 when nothing is)."""
        if not self.ring or self.backlog == 0:
            return self.seq + 1
        return max(self.ring[0].first_seq, self.seq - self.backlog + 1)

    def buffered_since(self, after: int) -> Iterable[_Chunk]:
        """The buffered lines with seq > ``after``, as chunks (the first one trimmed)."""
        start = max(after + 1, self.oldest_buffered)
        for chunk in self.ring:
            if chunk.last_seq < start:
                continue
            if chunk.first_seq < start:
                skip = start - chunk.first_seq
                severities = None if chunk.severities is None else chunk.severities[skip:]
                yield _Chunk(start, chunk.lines[skip:], chunk.timestamp, chunk.read_at, severities)
            else:
                yield chunk

    def summary(self) -> dict[str, object]:
        return {"name": self.name, "state": self.state, "seq": self.seq}


@dataclass(slots=True)
class _Pending:
    """Frames queued for one client. ``source`` is None for droppable notices (stats, events)."""

    source: str | None
    first_seq: int
    last_seq: int
    frames: list[bytes]
    size: int


def _notice(message: bytes) -> _Pending:
    """A droppable frame (stats, a file event), framed once for every client that gets it."""
    frame = frame_text(message)
    return _Pending(None, 0, 0, [frame], len(frame))


class Client:
    """One connection: its subscriptions, its bounded queue and its sender task."""

    _ids = itertools.count(1)

    def __init__(
        self,
        sink: Sink,
        peer: str,
        *,
        buffer_limit: int,
        loop_time: float,
        allowed: frozenset[str] | None = None,
    ) -> None:
        self.id = next(self._ids)
        self.sink = sink
        self.peer = peer
        #: The sources this client may see (its token's); None: every source.
        self.allowed = allowed
        self.limiter = MessageLimiter(loop_time)
        #: Each subscription (a source name or ``all``) and its filter (None: every line).
        self.subscriptions: dict[str, LineFilter | None] = {}
        self.batch = False
        self.buffer_limit = buffer_limit
        self.control: deque[bytes] = deque()
        self.queue: deque[_Pending] = deque()
        self.queued_bytes = 0
        #: Lines dropped from the queue per source, as [from_seq, to_seq], not yet reported.
        self.gaps: dict[str, list[int]] = {}
        self.wake = asyncio.Event()
        #: Loop time since when the client has had output waiting (None while it has none).
        self.waiting_since: float | None = None
        self.closing = False
        self.task: asyncio.Task[None] | None = None

    def may_see(self, source: str) -> bool:
        return self.allowed is None or source in self.allowed

    def wants(self, source: str) -> bool:
        return (ALL in self.subscriptions or source in self.subscriptions) and self.may_see(source)

    def filters_for(self, source: str) -> frozenset[LineFilter] | None:
        """The filters of the subscriptions that cover a wanted source; None: it is unfiltered.

        With two (``all`` and the source itself), a line is sent when either lets it through.
        """
        filters = []
        for name in (ALL, source):
            if name in self.subscriptions:
                line_filter = self.subscriptions[name]
                if line_filter is None:
                    return None
                filters.append(line_filter)
        return frozenset(filters)

    def push_control(self, message: bytes, now: float) -> None:
        """Queue a reply (hello, ack, error): never dropped, sent before queued lines."""
        self.control.append(frame_text(message))
        self._woken(now)

    def push(self, pending: _Pending, now: float) -> None:
        """Send lines or a notice, or queue them; drop the oldest queued if over the limit.

        A client with nothing queued whose socket is keeping up gets the frames written at
        once: no queue, no wake-up of its sender, which is what keeps latency low when a line
        goes to a hundred clients. Anything queued is sent first, in order, by the sender.
        """
        if not self.queue and not self.control and not self.gaps:
            if self.sink.try_write(pending.frames):
                return
        self.queue.append(pending)
        self.queued_bytes += pending.size
        while self.queued_bytes > self.buffer_limit and len(self.queue) > 1:
            dropped = self.queue.popleft()
            self.queued_bytes -= dropped.size
            if dropped.source is not None:
                self._record_gap(dropped.source, dropped.first_seq, dropped.last_seq)
        self._woken(now)

    def _record_gap(self, source: str, first: int, last: int) -> None:
        gap = self.gaps.get(source)
        if gap is None:
            self.gaps[source] = [first, last]
        else:
            gap[1] = last

    def _woken(self, now: float) -> None:
        if self.waiting_since is None:
            self.waiting_since = now
        self.wake.set()

    def take_round(self) -> list[bytes]:
        """Everything to send next: replies, gap notices, then up to a round's worth of lines."""
        frames = list(self.control)
        self.control.clear()
        for source, (first, last) in self.gaps.items():
            frames.append(
                frame_text(
                    encode(
                        {
                            "type": "gap",
                            "log_source": source,
                            "from_seq": first,
                            "to_seq": last,
                            "reason": "slow_client",
                        }
                    )
                )
            )
        self.gaps.clear()
        size = 0
        while self.queue and size < SEND_ROUND_BYTES:
            pending = self.queue.popleft()
            self.queued_bytes -= pending.size
            size += pending.size
            frames.extend(pending.frames)
        return frames

    @property
    def has_output(self) -> bool:
        return bool(self.control or self.queue or self.gaps)

    def purge(self, keep: Iterable[str]) -> None:
        """Forget queued lines of sources no longer subscribed (after an unsubscribe)."""
        keep_set = set(keep)
        kept = deque(
            p for p in self.queue if p.source is None or p.source in keep_set or ALL in keep_set
        )
        self.queue = kept
        self.queued_bytes = sum(p.size for p in kept)
        for source in list(self.gaps):
            if source not in keep_set and ALL not in keep_set:
                del self.gaps[source]


def _push_each(
    clients: Iterable[Client],
    encode: Callable[[bool], _Pending],
    made: dict[bool, _Pending],
    now: float,
) -> None:
    """Push the same frames to each client, encoding each form (batched or not) at most once."""
    for client in clients:
        pending = made.get(client.batch)
        if pending is None:
            pending = made[client.batch] = encode(client.batch)
        client.push(pending, now)


class Hub:
    """The registry of sources and connections, and the fan-out between them."""

    def __init__(
        self,
        source_states: dict[str, str],
        *,
        backlog: int,
        client_buffer: int,
        stall_timeout: float,
        host: str,
        epoch: str,
    ) -> None:
        self.sources = {name: Source(name, state, backlog) for name, state in source_states.items()}
        self.backlog = backlog
        self.clients: dict[int, Client] = {}
        self.client_buffer = client_buffer
        self.stall_timeout = stall_timeout
        self.host = host
        self.epoch = epoch
        self._receivers: dict[str, list[Client]] | None = None
        #: Sources with held lines, the loop time of the last release, and its timer.
        self._holding: dict[str, Source] = {}
        self._released_at = float("-inf")
        self._release_timer: asyncio.TimerHandle | None = None
        self._quiet_ticks = 0
        self._loop = asyncio.get_running_loop()
        #: Loop time each distinct filter used since the last tick, and those over budget.
        self._filter_costs: dict[LineFilter, float] = {}
        self._too_costly: set[LineFilter] = set()
        #: Per source, the clients that get some of its lines, by their filters (set together
        #: with ``_receivers``, which then holds only the clients that get every line).
        self._filtered: dict[str, dict[frozenset[LineFilter], list[Client]]] = {}
        #: Closing tasks, referenced until done (the loop keeps only weak references).
        self._closing: set[asyncio.Task[None]] = set()

    # -- connections ----------------------------------------------------------------------------

    def connect(self, sink: Sink, peer: str, allowed: frozenset[str] | None = None) -> Client:
        """Register a connection, queue its hello and start its sender.

        ``allowed``: the only sources this client may know of (None: all of them).
        """
        now = self._loop.time()
        client = Client(sink, peer, buffer_limit=self.client_buffer, loop_time=now, allowed=allowed)
        self.clients[client.id] = client
        client.push_control(self.hello(allowed), now)
        client.task = asyncio.create_task(self._send_forever(client), name=f"send-{client.id}")
        log.info("client %d connected from %s (%d clients)", client.id, peer, len(self.clients))
        return client

    def disconnect(self, client: Client) -> None:
        """Forget a connection (its socket is closed or closing)."""
        if self.clients.pop(client.id, None) is None:
            return
        self._receivers = None
        if client.task is not None and client.task is not asyncio.current_task():
            client.task.cancel()
        log.info(
            "client %d (%s) disconnected (%d clients)", client.id, client.peer, len(self.clients)
        )

    def visible(self, allowed: frozenset[str] | None) -> list[Source]:
        """The sources a client limited to ``allowed`` may know of, in the configured order."""
        return [s for s in self.sources.values() if allowed is None or s.name in allowed]

    def hello(self, allowed: frozenset[str] | None = None) -> bytes:
        return encode(
            {
                "type": "hello",
                "protocol": PROTOCOL_VERSION,
                "server": f"logtv {__version__}",
                "host": self.host,
                "epoch": self.epoch,
                "sources": [source.summary() for source in self.visible(allowed)],
                "batch": True,
                "filter": True,
            }
        )

    def health(self, allowed: frozenset[str] | None = None) -> dict[str, object]:
        return {
            "sources": [source.summary() for source in self.visible(allowed)],
            "clients": len(self.clients),
        }

    # -- what clients say -------------------------------------------------------------------------

    def receive(self, client: Client, frame: str | bytes) -> None:
        """Act on one frame from a client; a bad one gets an error reply and changes nothing.

        Over the message rate a frame is not even parsed: it gets ``rate_limited``; a client that
        floods on regardless is closed with 1008.
        """
        now = self._loop.time()
        if client.closing:
            return
        if not client.limiter.allow(now):
            if client.limiter.flooding:
                client.closing = True
                log.warning(
                    "client %d (%s) sent %d messages over the rate limit; closing it",
                    client.id,
                    client.peer,
                    client.limiter.refused,
                )
                self._spawn(self._close(client, 1008, "too many messages"))
                return
            client.push_control(
                encode(
                    {
                        "type": "error",
                        "error": "rate_limited",
                        "detail": f"more than {client.limiter.rate:g} messages a second; ignored",
                    }
                ),
                now,
            )
            return
        try:
            message = decode_client_frame(frame)
            line_filter = None
            if isinstance(message, Subscribe):
                try:
                    line_filter = compile_filter(message.filter, message.min_severity)
                except FilterError as exc:
                    raise ProtocolError(exc.code, exc.detail) from None
            if not client.may_see(message.log_source) and message.log_source != ALL:
                # The same answer whether or not the source exists: its name stays unknown.
                raise ProtocolError(
                    "forbidden", f"this token may not read {message.log_source[:80]!r}"
                )
            if message.log_source != ALL and message.log_source not in self.sources:
                raise ProtocolError(
                    "unknown_source", f"no such source: {message.log_source[:80]!r}"
                )
        except ProtocolError as exc:
            client.push_control(
                encode({"type": "error", "error": exc.code, "detail": exc.detail}), now
            )
            return
        if isinstance(message, Subscribe):
            self._subscribe(client, message, line_filter, now)
            if self._too_costly:
                self._close_costly()
        else:
            self._unsubscribe(client, message, now)

    def _subscribe(
        self, client: Client, request: Subscribe, line_filter: LineFilter | None, now: float
    ) -> None:
        """Ack, then replay what was asked for, then deliver live: no overlap, no repeat.

        The ack carries, per source, the seq after which this client will get every line (or
        a gap for it), so the client knows where to resume from after a reconnect. Subscribing
        again to the same source replaces its filter from the next line on.
        """
        client.batch = client.batch or request.batch
        if request.log_source == ALL:
            targets = self.visible(client.allowed)
        else:
            targets = [self.sources[request.log_source]]
        targets = [source for source in targets if not client.wants(source.name)]
        if request.since is not None:
            since = request.since
            starts = {
                source.name: since if isinstance(since, int) else since.get(source.name, 0)
                for source in targets
            }
        elif request.backlog and line_filter is not None:
            starts = self._recent_matching(targets, request.backlog, line_filter)
        elif request.backlog:
            counts = self._recent_counts(targets, request.backlog)
            starts = {source.name: source.seq - counts.get(source.name, 0) for source in targets}
        else:
            starts = {source.name: source.seq for source in targets}
        starts = {
            name: min(max(after, 0), self.sources[name].seq) for name, after in starts.items()
        }
        client.push_control(
            encode({"type": "subscribed", "log_source": request.log_source, "seq": starts}), now
        )
        client.subscriptions[request.log_source] = line_filter
        self._receivers = None
        for source in targets:
            self._replay(client, source, starts[source.name], now)

    def _recent_counts(self, targets: list[Source], backlog: int) -> dict[str, int]:
        """How many of each source's last lines make up the ``backlog`` most recent overall.

        Never more than is buffered: a backlog asks for "up to N", so it replays what there is
        without a gap (``since`` is the request that reports lines it can no longer give).
        """
        if len(targets) == 1:
            source = targets[0]
            return {source.name: min(backlog, source.seq - source.oldest_buffered + 1)}
        newest_first = [
            ((-chunk.read_at, -chunk.first_seq, source.name, len(chunk.lines)))
            for source in targets
            for chunk in source.buffered_since(0)
        ]
        counts: dict[str, int] = {}
        remaining = backlog
        for _, _, name, size in heapq.nsmallest(len(newest_first), newest_first):
            take = min(size, remaining)
            counts[name] = counts.get(name, 0) + take
            remaining -= take
            if remaining == 0:
                break
        return counts

    def _recent_matching(
        self, targets: list[Source], backlog: int, line_filter: LineFilter
    ) -> dict[str, int]:
        """Per source, the seq after which its share of the ``backlog`` newest matching lines is.

        A filtered backlog counts lines that pass: up to N of them, from what is buffered.
        """
        filters = frozenset((line_filter,))
        starts = {source.name: source.seq for source in targets}
        newest_first = sorted(
            (
                (-chunk.read_at, -chunk.first_seq, index, chunk)
                for index, source in enumerate(targets)
                for chunk in source.buffered_since(0)
            ),
            key=lambda item: item[:3],
        )
        remaining = backlog
        for _, _, index, chunk in newest_first:
            picked = self._pick(chunk, filters, {})
            if not picked:
                continue
            take = min(len(picked), remaining)
            starts[targets[index].name] = chunk.first_seq + picked[len(picked) - take] - 1
            remaining -= take
            if remaining == 0:
                break
        return starts

    def _replay(self, client: Client, source: Source, after: int, now: float) -> None:
        if after >= source.seq:
            return
        oldest = source.oldest_buffered
        if after + 1 < oldest:
            client.push_control(
                encode(
                    {
                        "type": "gap",
                        "log_source": source.name,
                        "from_seq": after + 1,
                        "to_seq": oldest - 1,
                        "reason": "not_buffered",
                    }
                ),
                now,
            )
        filters = client.filters_for(source.name)
        for chunk in source.buffered_since(after):
            if filters is None:
                client.push(self._pending(source, chunk, client.batch), now)
                continue
            picked = self._pick(chunk, filters, {})
            if picked:
                client.push(self._pending_picked(source, chunk, picked, client.batch), now)

    def _unsubscribe(self, client: Client, request: Unsubscribe, now: float) -> None:
        client.subscriptions.pop(request.log_source, None)
        client.purge(client.subscriptions)
        self._receivers = None
        client.push_control(encode({"type": "unsubscribed", "log_source": request.log_source}), now)

    def add_source(self, name: str, state: str = "following") -> Source:
        """Add a source at run time (a syslog sender) and announce it as ``appeared``.

        From then on it is like a configured one: in ``hello``, sent to ``all`` subscribers.
        """
        assert name not in self.sources, name
        source = self.sources[name] = Source(name, state, self.backlog)
        self._receivers = None
        self._announce(source, "appeared", self._loop.time())
        return source

    def seed(self, updates: list[SourceUpdate]) -> None:
        """Fill the ring buffers with the files' last lines at start (not counted as new)."""
        self.publish(updates)
        self.release()
        for source in self.sources.values():
            source.lines_this_tick = 0

    # -- what the files say -----------------------------------------------------------------------

    def publish(self, updates: list[SourceUpdate]) -> None:
        """Take new lines and file events; lines are numbered and fanned out by :meth:`release`.

        Runs on the loop. A file event first releases the lines read before it, so every client
        sees lines and events in the order they happened.
        """
        for update in updates:
            source = self.sources[update.name]
            done = 0
            severities = update.severities
            for position, event, state in update.events:
                if position > done:
                    part = None if severities is None else severities[done:position]
                    self._hold(source, update.lines[done:position], part, update.read_at)
                    done = position
                self._release_source(source)
                source.state = state
                self._announce(source, event, self._loop.time())
            if done < len(update.lines):
                part = None if severities is None else severities[done:]
                self._hold(source, update.lines[done:], part, update.read_at)
            if update.state != source.state:
                self._release_source(source)
                source.state = update.state
                self._announce(source, "state", self._loop.time())
        if not self._holding or self._release_timer is not None:
            return
        due = self._released_at + HOLD_SECONDS
        if self._loop.time() >= due:
            self.release()
        else:
            self._release_timer = self._loop.call_at(due, self.release)

    def _hold(
        self, source: Source, lines: list[str], severities: list[int] | None, read_at: float
    ) -> None:
        if not source.held:
            source.held_read_at = read_at
            self._holding[source.name] = source
        if severities is not None or source.held_severities is not None:
            known = source.held_severities or [NO_SEVERITY] * len(source.held)
            known.extend(severities or [NO_SEVERITY] * len(lines))
            source.held_severities = known
        source.held.extend(lines)
        if len(source.held) >= BATCH_LINES:  # full batches go now; the rest may wait
            full = len(source.held) - len(source.held) % BATCH_LINES
            held_severities = source.held_severities
            self._fan_out(
                source,
                source.held[:full],
                None if held_severities is None else held_severities[:full],
                source.held_read_at,
                self._receivers_by_source(),
                self._loop.time(),
            )
            del source.held[:full]
            if held_severities is not None:
                del held_severities[:full]
            source.held_read_at = read_at
            if not source.held:
                self._release_source(source)

    def release(self) -> None:
        """Number and fan out every held line (the hold window is over)."""
        if self._release_timer is not None:
            self._release_timer.cancel()
            self._release_timer = None
        self._released_at = self._loop.time()
        for source in list(self._holding.values()):
            self._release_source(source)

    def _release_source(self, source: Source) -> None:
        self._holding.pop(source.name, None)
        if not source.held:
            return
        lines, severities = source.held, source.held_severities
        source.held, source.held_severities = [], None
        receivers = self._receivers_by_source()
        self._fan_out(source, lines, severities, source.held_read_at, receivers, self._loop.time())

    def _announce(self, source: Source, event: str, now: float) -> None:
        """Tell every client (subscribed or not) what happened to a source's file."""
        notice = _notice(
            encode({"type": "source", "name": source.name, "state": source.state, "event": event})
        )
        for client in self.clients.values():
            if client.may_see(source.name):
                client.push(notice, now)

    def _fan_out(
        self,
        source: Source,
        lines: list[str],
        severities: list[int] | None,
        read_at: float,
        receivers: dict[str, list[Client]],
        now: float,
    ) -> None:
        clients = receivers.get(source.name, ())
        # Set with ``receivers`` by _receivers_by_source (the caller's), so never stale here.
        filtered = self._filtered.get(source.name)
        for start in range(0, len(lines), BATCH_LINES):
            end = start + BATCH_LINES
            part = None if severities is None else severities[start:end]
            chunk = source.append(lines[start:end], read_at, part)
            #: The whole chunk's frames per form (batched or not), made when first needed.
            whole: dict[bool, _Pending] = {}
            _push_each(clients, partial(self._pending, source, chunk), whole, now)
            if filtered:
                self._fan_out_filtered(source, chunk, filtered, whole, now)

    def _fan_out_filtered(
        self,
        source: Source,
        chunk: _Chunk,
        filtered: dict[frozenset[LineFilter], list[Client]],
        whole: dict[bool, _Pending],
        now: float,
    ) -> None:
        """Each distinct filter runs once on the chunk; each result is encoded once per form
        (a filter that lets the whole chunk through shares the unfiltered frames)."""
        selected: dict[LineFilter, list[int]] = {}
        for filters, clients in filtered.items():
            picked = self._pick(chunk, filters, selected)
            if not picked:
                continue
            made = whole if len(picked) == len(chunk.lines) else {}
            encode = partial(self._pending_picked, source, chunk, picked)
            _push_each(clients, encode, made, now)
        if self._too_costly:
            self._close_costly()

    @staticmethod
    def _pending(source: Source, chunk: _Chunk, batch: bool) -> _Pending:
        if batch:
            payload = encode_batch(source.name_json, chunk.lines, chunk.timestamp, chunk.first_seq)
            frames = [frame_text(payload)]
        else:
            frames = [
                frame_text(encode_line(source.name_json, line, chunk.timestamp, seq))
                for seq, line in enumerate(chunk.lines, chunk.first_seq)
            ]
        return _Pending(source.name, chunk.first_seq, chunk.last_seq, frames, sum(map(len, frames)))

    def _pick(
        self, chunk: _Chunk, filters: frozenset[LineFilter], selected: dict[LineFilter, list[int]]
    ) -> list[int]:
        """The indices of a chunk's lines that any of ``filters`` lets through, in order.

        ``selected`` remembers each filter's result for this chunk, so that a filter shared by
        many clients (or by several sets of filters) runs once. Each run is charged to the
        filter; one that overruns its budget passes nothing and is marked for closing.
        """
        results = []
        for line_filter in filters:
            picked = selected.get(line_filter)
            if picked is None:
                spent = self._filter_costs.get(line_filter, 0.0)
                started = time.perf_counter()
                found = line_filter.select(
                    chunk.lines, chunk.severities, started + FILTER_BUDGET - spent
                )
                self._filter_costs[line_filter] = spent + time.perf_counter() - started
                if found is None:
                    self._too_costly.add(line_filter)
                    found = []
                picked = selected[line_filter] = found
            results.append(picked)
        if len(results) == 1:
            return results[0]
        return sorted(set().union(*results))

    def _close_costly(self) -> None:
        """Close the clients of the filters that overran their budget (1008, with the reason)."""
        costly = self._too_costly
        for client in list(self.clients.values()):
            if not client.closing and any(f in costly for f in client.subscriptions.values()):
                client.closing = True
                log.warning(
                    "client %d (%s): its filter used more than %g s in a second; closing it",
                    client.id,
                    client.peer,
                    FILTER_BUDGET,
                )
                self._spawn(self._close(client, 1008, "filter too costly"))
        costly.clear()

    def _pending_picked(
        self, source: Source, chunk: _Chunk, picked: list[int], batch: bool
    ) -> _Pending:
        """Frames for the lines at ``picked`` of a chunk, with their real seqs."""
        if len(picked) == len(chunk.lines):
            return self._pending(source, chunk, batch)
        first = chunk.first_seq
        lines = [chunk.lines[i] for i in picked]
        seqs = [first + i for i in picked]
        if batch:
            frames = [frame_text(encode_picked(source.name_json, lines, chunk.timestamp, seqs))]
        else:
            frames = [
                frame_text(encode_line(source.name_json, line, chunk.timestamp, seq))
                for seq, line in zip(seqs, lines, strict=True)
            ]
        # A drop reports a gap from the first to the last line that would have been sent.
        return _Pending(source.name, seqs[0], seqs[-1], frames, sum(map(len, frames)))

    def _receivers_by_source(self) -> dict[str, list[Client]]:
        if self._receivers is None:
            plain: dict[str, list[Client]] = {}
            filtered: dict[str, dict[frozenset[LineFilter], list[Client]]] = {}
            for name in self.sources:
                plain[name] = []
                for client in self.clients.values():
                    if not client.wants(name):
                        continue
                    filters = client.filters_for(name)
                    if filters is None:
                        plain[name].append(client)
                    else:
                        filtered.setdefault(name, {}).setdefault(filters, []).append(client)
            self._receivers = plain
            self._filtered = filtered
        return self._receivers

    # -- once a second ----------------------------------------------------------------------------

    def tick(self, interval: float) -> None:
        """Send stats while lines flow (and once after they stop); close stalled clients."""
        now = self._loop.time()
        flowing = False
        for source in self.sources.values():
            source.rate = source.lines_this_tick / interval
            flowing = flowing or source.lines_this_tick > 0
            source.lines_this_tick = 0
        self._quiet_ticks = 0 if flowing else self._quiet_ticks + 1
        self._filter_costs.clear()
        if self._quiet_ticks <= 1 and self.clients:
            # One frame per distinct set of visible sources (nearly always just one).
            frames: dict[frozenset[str] | None, _Pending] = {}
            for client in self.clients.values():
                pending = frames.get(client.allowed)
                if pending is None:
                    pending = frames[client.allowed] = self._stats(client.allowed)
                client.push(pending, now)
        for client in list(self.clients.values()):
            if (
                client.waiting_since is not None
                and not client.closing
                and now - client.waiting_since > self.stall_timeout
            ):
                self._spawn(self._close_stalled(client))

    def _stats(self, allowed: frozenset[str] | None) -> _Pending:
        return _notice(
            encode(
                {
                    "type": "stats",
                    "sources": {
                        source.name: {"seq": source.seq, "rate": round(source.rate, 1)}
                        for source in self.visible(allowed)
                    },
                }
            )
        )

    # -- sending ----------------------------------------------------------------------------------

    async def _send_forever(self, client: Client) -> None:
        try:
            while True:
                await client.wake.wait()
                client.wake.clear()
                while client.has_output:
                    frames = client.take_round()
                    await client.sink.send_frames(frames)
                    client.waiting_since = self._loop.time() if client.has_output else None
                client.waiting_since = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the connection failed: drop it, leave the others alone
            log.debug("client %d send failed: %r", client.id, exc)
            self.disconnect(client)

    def _spawn(self, closing: Coroutine[None, None, None]) -> None:
        task = asyncio.create_task(closing)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_stalled(self, client: Client) -> None:
        client.closing = True
        log.warning(
            "client %d (%s) accepted nothing for %.0f s; closing it",
            client.id,
            client.peer,
            self.stall_timeout,
        )
        await self._close(client, 1008, f"stalled: nothing accepted for {self.stall_timeout:g} s")

    async def _close(self, client: Client, code: int, reason: str) -> None:
        """Close with a code, wait a second at most for the peer, then drop the TCP connection."""
        self.disconnect(client)
        try:
            await asyncio.wait_for(client.sink.close(code, reason), timeout=1.0)
        except (TimeoutError, Exception):
            pass
        client.sink.abort()
