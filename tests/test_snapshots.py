"""SVG snapshots of `logtv watch` (pytest-textual-snapshot) against a real server.

The server is a real `logtv serve` subprocess following files that the demo generator wrote with a
fixed seed and a fixed clock, so the pictures are the same on every run. Review changes in the
HTML report before running `pytest --snapshot-update`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from logtv.client.app import WatchApp
from logtv.client.connection import LogClient
from logtv.demo_logs import DemoLogs
from tests.conftest import ServerProcess

BACKLOG = 6
FIXED_CLOCK = datetime(2026, 12, 4, 6, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A server over five seeded demo files; yields its URL and the lines a viewer will get."""
    directory = tmp_path_factory.mktemp("snapshot-logs")
    logs = DemoLogs(directory, seed=4, clock=lambda: FIXED_CLOCK)
    logs.create_files()
    args = ["--name", "web1", "--backlog", "50"]
    for name, path in logs.paths.items():
        args += ["--source", f"{name}={path}"]
    server = ServerProcess(args)
    try:
        url = server.wait_listening()
        expected = sum(
            min(BACKLOG, len(path.read_text().splitlines())) for path in logs.paths.values()
        )
        yield url, expected
    finally:
        server.stop()


def viewer(url: str) -> WatchApp:
    return WatchApp(LogClient(url, sources=None, backlog=BACKLOG), fps=30)


def ready(expected: int):  # type: ignore[no-untyped-def]
    async def wait(pilot) -> None:  # type: ignore[no-untyped-def]
        app: WatchApp = pilot.app
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = app.rows.values()
            if rows and all(r.acked for r in rows) and len(app.scrollback) >= expected:
                break
            await pilot.pause(0.05)
        await pilot.pause(1.2)  # the status line repaints at most once a second

    return wait


@pytest.mark.parametrize("size", [(100, 30), (80, 24)])
def test_main_screen(snap_compare, demo_server, size) -> None:  # type: ignore[no-untyped-def]
    """The main screen: header, sources with counts, tagged and coloured lines, status, keys."""
    url, expected = demo_server
    assert snap_compare(viewer(url), terminal_size=size, run_before=ready(expected))


@pytest.mark.parametrize("size", [(100, 30), (80, 24)])
def test_help_screen(snap_compare, demo_server, size) -> None:  # type: ignore[no-untyped-def]
    """The `?` help screen lists every key."""
    url, expected = demo_server
    assert snap_compare(
        viewer(url), terminal_size=size, run_before=ready(expected), press=["question_mark"]
    )


def test_filtered_screen(snap_compare, demo_server) -> None:  # type: ignore[no-untyped-def]
    """A filter shows only matching lines, with the matches marked and the filter in the status."""
    url, expected = demo_server
    assert snap_compare(
        viewer(url),
        terminal_size=(100, 30),
        run_before=ready(expected),
        press=["slash", *"from", "enter"],
    )
