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
from typing import TextIO

from logtv.client.connection import (
    Connected,
    Disconnected,
    Gap,
    Lines,
    LogClient,
    Notice,
    Reply,
    Restarted,
)
from logtv.sanitize import sanitize

__all__ = ["run_tail"]


def _format_lines(event: Lines, *, as_json: bool, raw: bool, terminal: bool = False) -> str:
    if as_json:
        # Into a terminal, JSON strings must not carry C1 controls, DEL or bidi overrides raw
        # (JSON itself escapes only C0): ASCII-only output with DEL escaped too.
        text = "".join(
            json.dumps(
                {
                    "type": "raw_log",
                    "log_source": event.source,
                    "seq": seq,
                    "timestamp": event.timestamp,
                    "raw_line": line,
                },
                ensure_ascii=terminal,
            )
            + "\n"
            for seq, line in enumerate(event.lines, event.first_seq)
        )
        return text.replace("\x7f", "\\u007f") if terminal else text
    prefix = f"{sanitize(event.source)} | "
    clean = (lambda line: line) if raw else sanitize
    return "".join(prefix + clean(line) + "\n" for line in event.lines)


async def run_tail(
    client: LogClient,
    *,
    as_json: bool = False,
    raw: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Print events until the client stops (or stdout's reader goes away); return the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    watcher = asyncio.create_task(_close_when_reader_leaves(out, client))
    try:
        return await _print_events(client, out, err, as_json=as_json, raw=raw)
    finally:
        watcher.cancel()


async def _close_when_reader_leaves(out: TextIO, client: LogClient) -> None:
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
    with contextlib.suppress(Exception):
        await client.close()


async def _print_events(
    client: LogClient, out: TextIO, err: TextIO, *, as_json: bool, raw: bool
) -> int:
    try:
        terminal = out.isatty()
    except (AttributeError, ValueError):
        terminal = False
    async for event in client.events():
        if isinstance(event, Lines):
            out.write(_format_lines(event, as_json=as_json, raw=raw, terminal=terminal))
            out.flush()
        elif isinstance(event, Gap):
            if as_json:
                out.write(
                    json.dumps(
                        {
                            "type": "gap",
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
                f"logtv: {count:,} lines of {sanitize(event.source)} not received ({event.reason})",
                file=err,
            )
        elif isinstance(event, Notice):
            print(f"logtv: {sanitize(event.source)}: {event.event} ({event.state})", file=err)
        elif isinstance(event, Connected):
            print(f"logtv: connected to {sanitize(event.host)} ({event.server})", file=err)
        elif isinstance(event, Restarted):
            print("logtv: the server restarted; lines written meanwhile may be missing", file=err)
        elif isinstance(event, Reply) and event.kind == "error":
            print(f"logtv: server says: {sanitize(event.detail or event.error or '')}", file=err)
            if event.error in ("unknown_source", "bad_field", "forbidden"):  # our request
                await client.close()
                return 2
        elif isinstance(event, Disconnected):
            # A refused token, origin or host will not be accepted on a retry: say so and stop.
            refused = event.status in (401, 403)
            retry = f"; retrying in {event.retry_in:g}s" if event.retry_in is not None else ""
            print(f"logtv: {sanitize(event.error)}{'' if refused else retry}", file=err)
            if event.retry_in is None or refused:
                return 1
    return 0
