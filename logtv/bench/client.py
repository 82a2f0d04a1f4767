"""A client process: many WebSocket clients on one asyncio loop, one JSON result at the end.

The runner starts a few of these so that reading the frames spreads over processes (and
cores) instead of limiting the figures. It talks to the runner in JSON lines on stdout
(``connected``, ``ready``, ``result``) and listens on stdin for ``stop`` (or its end).

Two ways to read a server, chosen by ``--mode``:

- ``batch`` / ``line``: the logtv protocol: wait for ``hello``, subscribe to ``all`` (with
  ``"batch": true`` or without), read ``raw_logs`` or ``raw_log`` frames, count ``gap`` notices;
- ``plain``: a peer that sends each line as a text frame (websocketd running ``tail -F``) and
  expects nothing from the client.

Either way the seqs are read from the line text (not from the protocol's ``seq`` field), so
the same check covers every server: every line, once, in the writer's order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from array import array
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from logtv.bench.lines import LATENCY_RE, SEQ_RE, WARMUP
from logtv.bench.tracker import Tracker
from logtv.bench.wsclient import WsClient

__all__ = ["MODES", "Subscriber", "main"]

MODES = ("batch", "line", "plain")
_LINE_FRAME = b'{"type":"raw_log'
#: Clients that open their connections at the same time (a hundred at once is a SYN flood).
CONNECT_CONCURRENCY = 20
MAX_ERRORS = 5


class Subscriber:
    """One client's protocol logic on top of a :class:`WsClient`, feeding a :class:`Tracker`."""

    def __init__(self, mode: str, tracker: Tracker) -> None:
        self.mode = mode
        self.tracker = tracker
        self.ws: WsClient | None = None
        self.ready = asyncio.Event()
        self.done = asyncio.Event()
        self.announced_drops = 0
        self.errors: list[str] = []
        if tracker.done:
            self.done.set()

    def on_messages(self, messages: list[bytes], now_ns: int) -> None:
        """Every text message of one read: lines to the tracker, notices to :meth:`_control`."""
        if self.mode != "plain":
            data = []
            for message in messages:
                if message.startswith(_LINE_FRAME):
                    data.append(message)
                else:
                    self._control(message)
            if not data:
                return
        else:
            data = messages
        joined = b"\n".join(data)
        if not self.ready.is_set() and WARMUP in joined:
            self.ready.set()
        if self.tracker.collect_latency:
            found = LATENCY_RE.findall(joined)
            seqs = [int(seq) for seq, _ in found]
            self.tracker.add(seqs, now_ns, [int(sent) for _, sent in found])
        else:
            self.tracker.add(list(map(int, SEQ_RE.findall(joined))), now_ns)
        if self.tracker.done:
            self.done.set()

    def _control(self, message: bytes) -> None:
        try:
            notice = json.loads(message)
        except ValueError:
            self._error(f"not JSON: {message[:80]!r}")
            return
        kind = notice.get("type")
        if kind == "hello":
            subscribe: dict[str, Any] = {"type": "subscribe", "log_source": "all"}
            if self.mode == "batch":
                subscribe["batch"] = True
            assert self.ws is not None
            self.ws.send_text(json.dumps(subscribe).encode())
        elif kind == "gap":
            self.announced_drops += int(notice["to_seq"]) - int(notice["from_seq"]) + 1
        elif kind == "error":
            self._error(f"server error: {notice.get('code')}: {notice.get('message', '')}")

    def _error(self, text: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(text)


def _emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def _connect(
    subscriber: Subscriber,
    host: str,
    port: int,
    path: str,
    limit: asyncio.Semaphore,
    first_message: bytes = b"",
) -> None:
    loop = asyncio.get_running_loop()
    async with limit:
        try:

            def factory() -> WsClient:
                # Set before the first read: the hello may come with the handshake's answer.
                subscriber.ws = WsClient(host, port, path, subscriber.on_messages)
                return subscriber.ws

            _, protocol = await asyncio.wait_for(loop.create_connection(factory, host, port), 10)
            await asyncio.wait_for(protocol.opened, 10)
            if first_message:  # e.g. a socket.io namespace join, from the URL's #send=
                protocol.send_text(first_message)
        except Exception as exc:  # refused, timed out, or not a WebSocket server
            subscriber.ws = None
            subscriber._error(f"connect failed: {exc!r}")
            subscriber.ready.set()  # nothing to wait for: it counts as receiving nothing


async def _wait_all(events: Sequence[asyncio.Event], timeout: float) -> int:
    """Wait until every event is set or ``timeout`` passes; return how many are set."""
    deadline = time.monotonic() + timeout
    for event in events:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            await asyncio.wait_for(event.wait(), remaining)
        except TimeoutError:
            break
    return sum(event.is_set() for event in events)


def _stop_on_stdin(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        if not data or b"stop" in data:
            loop.remove_reader(fd)
            stop.set()

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Connect, wait for the warm-up, read until done (or stopped), and sum up."""
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    first_message = url.fragment.removeprefix("send=").encode() if url.fragment else b""
    # Latency parsing costs the clients CPU, so only every ``--latency-every``-th one does it.
    subscribers = [
        Subscriber(
            args.mode,
            Tracker(
                args.count,
                collect_latency=bool(args.latency_file) and index % args.latency_every == 0,
            ),
        )
        for index in range(args.clients)
    ]
    stop = asyncio.Event()
    _stop_on_stdin(stop)
    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)
    await asyncio.gather(
        *(_connect(s, host, port, path, limit, first_message) for s in subscribers)
    )
    _emit("connected", clients=sum(s.ws is not None for s in subscribers))
    ready = await _wait_all([s.ready for s in subscribers], args.ready_timeout)
    cpu_at_ready = _cpu_seconds()
    _emit("ready", clients=ready)

    stopper = asyncio.create_task(stop.wait())
    finished = asyncio.create_task(_wait_all([s.done for s in subscribers], args.deadline))
    waiting = {stopper} if args.until_stop else {stopper, finished}
    watchdog = asyncio.create_task(_idle_watch(subscribers, args.idle, stop))
    await asyncio.wait(waiting, timeout=args.deadline, return_when=asyncio.FIRST_COMPLETED)
    for task in (stopper, finished, watchdog):
        task.cancel()
    return {
        **_summary(subscribers, args.latency_file),
        "cpu_seconds": _cpu_seconds() - cpu_at_ready,
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _idle_watch(subscribers: list[Subscriber], idle: float, stop: asyncio.Event) -> None:
    """Stop when lines have flowed and then nothing arrived for ``idle`` seconds."""
    while True:
        await asyncio.sleep(min(0.2, idle))
        last = max(s.tracker.last_ns for s in subscribers)
        if last and time.monotonic_ns() - last > idle * 1e9:
            stop.set()
            return


def _summary(subscribers: list[Subscriber], latency_file: str | None) -> dict[str, Any]:
    trackers = [s.tracker for s in subscribers]
    firsts = [t.first_ns for t in trackers if t.first_ns]
    if latency_file:
        samples = array("q")
        for tracker in trackers:
            samples.extend(tracker.latencies_us)
        with open(latency_file, "wb") as handle:
            samples.tofile(handle)
    closes = [s.ws.close_code for s in subscribers if s.ws is not None and s.ws.close_code]
    for subscriber in subscribers:
        if subscriber.ws is not None:
            subscriber.ws.abort()
    return {
        "clients": len(subscribers),
        "complete": sum(t.done for t in trackers),
        "received": sum(t.received for t in trackers),
        "lost": sum(max(0, t.lost) for t in trackers),
        "duplicated": sum(t.duplicated for t in trackers),
        "reordered": sum(t.reordered for t in trackers),
        "announced_drops": sum(s.announced_drops for s in subscribers),
        "first_ns": min(firsts) if firsts else 0,
        "last_ns": max(t.last_ns for t in trackers),
        "longest_silence_ns": max(t.longest_silence_ns for t in trackers),
        "bytes": sum(s.ws.bytes_received for s in subscribers if s.ws is not None),
        "closed_by_server": closes[:MAX_ERRORS],
        "incomplete": [
            {"next_seq": t.next_seq, "received": t.received, "silence_ns": t.longest_silence_ns}
            for t in trackers
            if not t.done
        ][:MAX_ERRORS],
        "errors": [error for s in subscribers for error in s.errors][:MAX_ERRORS],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m logtv.bench.client")
    parser.add_argument("--url", required=True)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--count", type=int, required=True, help="lines each client expects")
    parser.add_argument("--latency-file", help="write every latency (µs, int64) here")
    parser.add_argument("--latency-every", type=int, default=1, help="only every Nth client's")
    parser.add_argument("--until-stop", action="store_true", help="wait for stop, not the lines")
    parser.add_argument("--ready-timeout", type=float, default=20.0)
    parser.add_argument("--deadline", type=float, default=120.0)
    parser.add_argument("--idle", type=float, default=5.0)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    _emit("result", **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
