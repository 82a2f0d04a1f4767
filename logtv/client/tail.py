"""`logtv tail`: the stream as plain text lines (or JSON objects) on stdout, for pipes and scripts.

Lines are printed through the shared sanitiser, so a log line can never drive the terminal; the
exact data is still available with ``--json`` (inside JSON strings) or ``--raw`` (only into a pipe
or file). Gaps, file events and connection trouble go to stderr, so stdout stays pure data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import stat
import sys
from collections.abc import Sequence
from typing import TextIO

from logtv.client.connection import (
    Connected,
    Disconnected,
    Event,
    Gap,
    Lines,
    LogClient,
    Notice,
    Reply,
    Restarted,
)
from logtv.sanitize import sanitize

__all__ = ["run_tail"]


def _format_lines(
    event: Lines,
    *,
    as_json: bool,
    raw: bool,
    terminal: bool = False,
    host: str | None = None,
    label: str | None = None,
) -> str:
    """The lines as text: ``SOURCE | LINE`` (``label/SOURCE`` with a label), or JSON objects.

    ``host`` (the server's address as given) goes into every JSON object beside ``log_source``.
    """
    if as_json:
        # Into a terminal, JSON strings must not carry C1 controls, DEL or bidi overrides raw
        # (JSON itself escapes only C0): ASCII-only output with DEL escaped too.
        where: dict[str, str] = {} if host is None else {"host": host}
        text = "".join(
            json.dumps(
                {
                    "type": "raw_log",
                    **where,
                    "log_source": event.source,
                    "seq": seq,
                    "timestamp": event.timestamp,
                    "raw_line": line,
                },
                ensure_ascii=terminal,
            )
            + "\n"
            for seq, line in event.numbered()
        )
        return text.replace("\x7f", "\\u007f") if terminal else text
    tag = event.source if label is None else f"{label}/{event.source}"
    prefix = f"{sanitize(tag)} | "
    clean = (lambda line: line) if raw else sanitize
    return "".join(prefix + clean(line) + "\n" for line in event.lines)


async def run_tail(
    client: LogClient | Sequence[LogClient],
    *,
    as_json: bool = False,
    raw: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Print events until the clients stop (or stdout's reader goes away); return the exit code.

    With several clients (one per server) each line is tagged ``host/source``, and a server that
    refuses us stops only its own stream.
    """
    clients = [client] if isinstance(client, LogClient) else list(client)
    out = out or sys.stdout
    err = err or sys.stderr
    watcher = asyncio.create_task(_close_when_reader_leaves(out, clients))
    try:
        return await _print_events(clients, out, err, as_json=as_json, raw=raw)
    finally:
        watcher.cancel()


async def _close_when_reader_leaves(out: TextIO, clients: list[LogClient]) -> None:
    """Like GNU `tail -f`: notice that a pipe's reader exited even while no line arrives."""
    try:
        fd = out.fileno()
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return
    except (OSError, ValueError):
        return
    poller = select.poll()
    poller.register(fd, 0)  # no events asked for: only POLLERR/POLLHUP are reported
    while not poller.poll(0):
        await asyncio.sleep(0.5)
    for client in clients:
        with contextlib.suppress(Exception):
            await client.close()


async def _print_events(
    clients: list[LogClient], out: TextIO, err: TextIO, *, as_json: bool, raw: bool
) -> int:
    try:
        terminal = out.isatty()
    except (AttributeError, ValueError):
        terminal = False
    many = len(clients) > 1
    labels = [client.target for client in clients]
    # Bounded, so that a slow stdout still slows the reading of every connection.
    queue: asyncio.Queue[tuple[int, Event | Exception | None]] = asyncio.Queue(256)

    async def pump(index: int, client: LogClient) -> None:
        try:
            async for event in client.events():
                await queue.put((index, event))
        except Exception as exc:  # handed over, raised where it would have been with one server
            await queue.put((index, exc))
            return
        await queue.put((index, None))

    tasks = [asyncio.create_task(pump(i, c)) for i, c in enumerate(clients)]
    alive = set(range(len(clients)))
    code = 0
    try:
        while alive:
            index, event = await queue.get()
            if index not in alive:
                continue
            if event is None:
                alive.discard(index)
                continue
            if isinstance(event, Exception):
                raise event
            said = f"logtv: {sanitize(clients[index].target)}: " if many else "logtv: "
            if isinstance(event, Connected) and many:
                labels[index] = clients[index].name or event.host
            stop = _print_event(
                event,
                out,
                err,
                said,
                as_json=as_json,
                raw=raw,
                terminal=terminal,
                host=clients[index].target,
                label=labels[index] if many else None,
            )
            if stop == 2:  # our own request was refused: the same on every server
                for client in clients:
                    await client.close()
                return 2
            if stop:
                tasks[index].cancel()
                alive.discard(index)
                code = stop
        return code
    finally:
        for task in tasks:
            task.cancel()


def _print_event(
    event: Event,
    out: TextIO,
    err: TextIO,
    said: str,
    *,
    as_json: bool,
    raw: bool,
    terminal: bool,
    host: str,
    label: str | None,
) -> int:
    """Print one event; return 0 to go on, 1 when this server's stream ends, 2 to stop all."""
    if isinstance(event, Lines):
        out.write(
            _format_lines(
                event, as_json=as_json, raw=raw, terminal=terminal, host=host, label=label
            )
        )
        out.flush()
    elif isinstance(event, Gap):
        if as_json:
            out.write(
                json.dumps(
                    {
                        "type": "gap",
                        "host": host,
                        "log_source": event.source,
                        "from_seq": event.from_seq,
                        "to_seq": event.to_seq,
                        "reason": event.reason,
                    }
                )
                + "\n"
            )
            out.flush()
        count = event.to_seq - event.from_seq + 1
        print(
            f"{said}{count:,} lines of {sanitize(event.source)} not received ({event.reason})",
            file=err,
        )
    elif isinstance(event, Notice):
        print(f"{said}{sanitize(event.source)}: {event.event} ({event.state})", file=err)
    elif isinstance(event, Connected):
        print(f"{said}connected to {sanitize(event.host)} ({event.server})", file=err)
    elif isinstance(event, Restarted):
        print(f"{said}the server restarted; lines written meanwhile may be missing", file=err)
    elif isinstance(event, Reply) and event.kind == "error":
        print(f"{said}server says: {sanitize(event.detail or event.error or '')}", file=err)
        if event.error in (  # our request
            "unknown_source",
            "bad_field",
            "forbidden",
            "bad_filter",
            "bad_severity",
        ):
            return 2
    elif isinstance(event, Disconnected):
        # A refused token, origin or host will not be accepted on a retry: say so and stop.
        refused = event.status in (401, 403)
        retry = f"; retrying in {event.retry_in:g}s" if event.retry_in is not None else ""
        print(f"{said}{sanitize(event.error)}{'' if refused else retry}", file=err)
        if event.retry_in is None or refused:
            return 1
    return 0
