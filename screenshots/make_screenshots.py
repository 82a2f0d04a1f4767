"""Drive the real `logtv watch` against real demo servers and save SVG screenshots here.

Run from the repository root:  python screenshots/make_screenshots.py
The demo generator is seeded, so the content is realistic and much the same from run to run
(timestamps are the real clock's).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from logtv.client.app import WatchApp
from logtv.client.connection import LogClient
from logtv.demo import demo_server

HERE = Path(__file__).resolve().parent
SIZE = (120, 35)


async def wait_until(pilot, predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        await pilot.pause(0.1)


async def main() -> None:
    logging.getLogger("logtv").setLevel(logging.CRITICAL)  # the app owns the screen
    async with demo_server(seed=42, rate=4.0) as server:
        app = WatchApp(LogClient(server.url, sources=None, backlog=3), fps=30)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: len(app.scrollback) > 120)
            await pilot.pause(1.2)
            app.save_screenshot("main.svg", str(HERE))
            await pilot.press("slash", *"invalid|block", "enter")
            await pilot.pause(1.2)
            app.save_screenshot("filtered.svg", str(HERE))
            await pilot.press("escape", "question_mark")
            await pilot.pause(0.5)
            app.save_screenshot("help.svg", str(HERE))
    await fleet()
    for name in ("main.svg", "filtered.svg", "help.svg", "fleet.svg"):
        print(HERE / name)


async def fleet() -> None:
    """Two boxes in one viewer: host rows, one collapsed, lines tagged host/source."""
    async with (
        demo_server(seed=42, rate=3.0, host="web1") as web1,
        demo_server(seed=7, rate=3.0, host="db1") as db1,
    ):
        clients = [
            LogClient(server.url, sources=None, backlog=3, name=name)
            for name, server in (("web1", web1), ("db1", db1))
        ]
        app = WatchApp(clients, fps=30)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: len(app.scrollback) > 120)
            await pilot.press("tab", "down", "down", "down", "down", "down", "down", "down")
            await pilot.press("left", "tab")  # the cursor on db1's rows: collapse db1
            await pilot.pause(1.2)
            app.save_screenshot("fleet.svg", str(HERE))


if __name__ == "__main__":
    asyncio.run(main())
