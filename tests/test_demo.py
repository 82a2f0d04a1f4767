"""`logtv demo`: its lines are what the highlighter knows, and it serves and cleans up for real."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.style import Style
from websockets.asyncio.client import connect

from logtv.client import highlight as hl
from logtv.client.app import WatchApp
from logtv.client.connection import LogClient
from logtv.demo import demo_server
from logtv.demo_logs import SOURCE_FILES, make_line
from logtv.sanitize import to_text

#: Styles every line of a source must carry somewhere, as the watch highlighter applies them.
EXPECTED_STYLES: dict[str, list[Style]] = {
    "auth": [hl.TIMESTAMP, hl.HOST, hl.PROGRAM],
    "ufw": [hl.TIMESTAMP, hl.KERNEL_CLOCK, hl.UFW_TAG, hl.UFW_KEY, hl.IP],
    "kern": [hl.TIMESTAMP, hl.KERNEL_CLOCK],
    "syslog": [hl.TIMESTAMP, hl.HOST, hl.PROGRAM],
    "nginx": [hl.IP, hl.TIMESTAMP, hl.METHOD, hl.REQUEST_PATH],
}


@pytest.mark.parametrize("source", sorted(SOURCE_FILES))
def test_generated_lines_are_highlighted_as_their_format(source: str) -> None:
    """Every generated line gets the spans of the format it imitates from the watch highlighter."""
    rng = random.Random(11)
    when = datetime(2026, 12, 4, 6, 0, 0, tzinfo=UTC)
    for _ in range(300):
        text = to_text(make_line(source, rng, when))
        hl.highlight(text)
        styles = {span.style for span in text.spans}
        missing = [s for s in EXPECTED_STYLES[source] if s not in styles]
        assert not missing, (text.plain, missing)


def test_brute_force_lines_are_red_and_name_the_user() -> None:
    """The brute-force lines of the demo show `Invalid` in red and the user name as a user."""
    line = "Dec  4 06:00:01 web1 sshd[4242]: Invalid user oracle from 203.0.113.27 port 34224"
    text = to_text(line)
    hl.highlight(text)
    spans = {text.plain[s.start : s.end]: s.style for s in text.spans}
    assert spans["Invalid"] in (hl.ERROR, hl.CRITICAL)
    assert spans["oracle"] == hl.USER
    assert spans["203.0.113.27"] == hl.IP


async def test_demo_server_serves_five_sources_to_watch() -> None:
    """The in-process demo server feeds a real viewer lines from all five sources."""
    async with demo_server(seed=3, rate=20.0) as server:
        app = WatchApp(LogClient(server.url, sources=None, backlog=5))
        async with app.run_test(size=(100, 30)) as pilot:
            deadline = time.monotonic() + 15
            seen: set[str] = set()
            while time.monotonic() < deadline and seen != set(SOURCE_FILES):
                await pilot.pause(0.1)
                seen = {entry.source for entry in app.scrollback.iter_shown()}
            assert seen == set(SOURCE_FILES)
            assert app.host == "web1"


async def test_serve_only_serves_and_cleans_up_on_sigterm(tmp_path: Path) -> None:
    """`demo --serve-only` serves all five sources over the protocol; SIGTERM leaves no files."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "logtv", "demo", "--serve-only", "--rate", "20", "--seed", "1"],
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        url = ""
        for _ in range(100):
            line = await asyncio.to_thread(process.stderr.readline)
            if line.startswith("listening on "):
                url = line.split()[-1]
                break
        assert url, "no listening line"
        assert len(list(tmp_path.glob("logtv-demo-*"))) == 1
        async with connect(url, open_timeout=5) as client:
            hello = json.loads(await asyncio.wait_for(client.recv(), 5))
            assert sorted(s["name"] for s in hello["sources"]) == sorted(SOURCE_FILES)
            assert {s["state"] for s in hello["sources"]} == {"following"}
            await client.send(json.dumps({"type": "subscribe", "log_source": "all", "batch": True}))
            sources: set[str] = set()
            deadline = time.monotonic() + 20
            while sources != set(SOURCE_FILES) and time.monotonic() < deadline:
                message = json.loads(await asyncio.wait_for(client.recv(), 10))
                if message["type"] == "raw_logs":
                    sources.add(message["log_source"])
            assert sources == set(SOURCE_FILES)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 5) == 0
        assert list(tmp_path.glob("logtv-demo-*")) == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM])
def test_demo_in_a_terminal_cleans_up_when_the_terminal_goes(tmp_path: Path, signum) -> None:  # type: ignore[no-untyped-def]
    """`logtv demo` in a real pty removes its files when its terminal hangs up or on SIGTERM."""
    from logtv.bench.tty import _Pty, _wait

    env = {**os.environ, "TMPDIR": str(tmp_path), "TERM": "xterm-256color"}
    term = _Pty([sys.executable, "-m", "logtv", "demo", "--rate", "5"], env)
    try:
        assert _wait(lambda: "live" in term.text(), 20), term.text()
        assert len(list(tmp_path.glob("logtv-demo-*"))) == 1
        term.process.send_signal(signum)
        term.process.wait(10)
        assert list(tmp_path.glob("logtv-demo-*")) == []
    finally:
        term.close()
