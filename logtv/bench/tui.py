"""`logtv bench --tui`: how fast the viewer drains lines, and whether keys still get through.

The real `logtv watch` app runs headless (Textual's ``run_test``) against a real `logtv serve`
subprocess, while a writer process appends lines flat out or at a rate. It prints the lines per
second that reached the scrollback, the time a key press took to take effect under that load,
and the process's memory before and after the scrollback filled. Figures only, no verdicts.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from textual import events

from logtv.bench.tty import _start_server
from logtv.client.app import HelpScreen, WatchApp
from logtv.client.connection import LogClient

__all__ = ["main", "measure"]


def _rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def measure(rate: float | None, count: int, max_lines: int) -> dict[str, float]:
    """Drain ``count`` lines written at ``rate`` (None: flat out); press `?` half-way."""
    with tempfile.TemporaryDirectory(prefix="logtv-tui-") as tmp:
        log = Path(tmp) / "auth.log"
        log.write_bytes(b"")
        server, port = _start_server(log)
        try:
            app = WatchApp(
                LogClient(f"127.0.0.1:{port}", sources=None, backlog=0),
                max_lines=max_lines,
                fps=30,
            )
            async with app.run_test(size=(120, 35)) as pilot:
                while not (app.rows and all(r.acked for r in app.rows.values())):
                    await pilot.pause(0.05)
                rss_before = _rss_mb()
                writer_args = [sys.executable, "-m", "logtv.bench.writer", str(log)]
                writer_args += ["--count", str(count)] + (["--rate", str(rate)] if rate else [])
                writer = subprocess.Popen(writer_args, stdout=subprocess.DEVNULL)
                start = time.monotonic()
                key_ms = -1.0
                deadline = start + 120
                while app.lines_received < count and time.monotonic() < deadline:
                    await pilot.pause(0.02)
                    if key_ms < 0 and app.lines_received >= count // 2:
                        # Posted as the terminal driver posts it: Pilot.press would also wait
                        # for the app to go idle, which it never does under a flood.
                        pressed = time.monotonic()
                        app.post_message(events.Key("question_mark", "?"))
                        while not isinstance(app.screen, HelpScreen):
                            await asyncio.sleep(0.002)
                        key_ms = (time.monotonic() - pressed) * 1000
                        app.post_message(events.Key("escape", None))
                elapsed = time.monotonic() - start
                writer.wait(30)
                await pilot.pause(0.5)
                return {
                    "rate": rate or 0.0,
                    "lines": app.lines_received,
                    "drain_lines_per_s": app.lines_received / elapsed,
                    "key_ms": key_ms,
                    "scrollback": len(app.scrollback),
                    "rss_before_mb": rss_before,
                    "rss_after_mb": _rss_mb(),
                }
        finally:
            server.terminate()
            try:
                server.wait(8)
            except subprocess.TimeoutExpired:
                print("logtv serve did not exit in 8 s after SIGTERM", file=sys.stderr)
                server.kill()
                server.wait(5)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="logtv bench --tui")
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--rates", default="20000,0", help="lines/s, 0 for flat out")
    parser.add_argument("--max-lines", type=int, default=50_000)
    args = parser.parse_args(argv)
    print(
        f"{'writer lines/s':>14} {'drained/s':>10} {'key ms':>7} {'scrollback':>10} {'RSS MB':>13}"
    )
    for rate in (float(r) for r in args.rates.split(",")):
        result = asyncio.run(measure(rate or None, args.lines, args.max_lines))
        print(
            f"{(rate or 'flat out')!s:>14} {result['drain_lines_per_s']:>10,.0f} "
            f"{result['key_ms']:>7.0f} {result['scrollback']:>10,} "
            f"{result['rss_before_mb']:>5.0f} -> {result['rss_after_mb']:<5.0f}"
        )
    print("(headless run_test at 120x35, a real server subprocess, a writer process)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
