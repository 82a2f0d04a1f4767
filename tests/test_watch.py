"""`logtv watch` driven with Textual's Pilot against a real server on loopback."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from logtv.client.app import HelpScreen, WatchApp
from logtv.client.connection import LogClient
from logtv.client.scrollback import GAP, LINE, NOTICE
from logtv.client.widgets.log_view import LogView, source_colour
from logtv.config import ServerConfig
from logtv.server.server import LogServer
from tests.conftest import write_lines


async def until(pilot, predicate: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await pilot.pause(0.05)


def all_acked(app: WatchApp) -> bool:
    return bool(app.rows) and all(r.acked for r in app.rows.values())


def screen_rows(view: LogView) -> list[str]:
    return [view.render_line(y).text for y in range(view.size.height)]


def shown_texts(app: WatchApp) -> list[str]:
    return [e.text for e in app.scrollback.iter_shown()]


def make_app(server: LogServer, *sources: str, backlog: int = 0, **options) -> WatchApp:  # type: ignore[no-untyped-def]
    client = LogClient(server.url, sources=list(sources) or None, backlog=backlog)
    return WatchApp(client, **options)


async def two_sources(tmp_path: Path, start_server) -> tuple[LogServer, Path, Path]:  # type: ignore[no-untyped-def]
    auth, ufw = tmp_path / "auth.log", tmp_path / "ufw.log"
    auth.write_text("")
    ufw.write_text("")
    server = await start_server({"auth": auth, "ufw": ufw})
    return server, auth, ufw


async def test_lines_appear_with_their_source_tag(tmp_path, start_server):
    """New lines show in the pane, each after its source's tag in the source's colour."""
    server, auth, ufw = await two_sources(tmp_path, start_server)
    app = make_app(server)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: all_acked(app), what="subscribed")
        write_lines(auth, ["Dec  4 06:00:01 web1 sshd[1]: Accepted publickey for alice"])
        write_lines(ufw, ["Dec  4 06:00:02 web1 kernel: [UFW BLOCK] SRC=203.0.113.9"])
        await until(pilot, lambda: len(app.scrollback) == 2, what="two lines")
        await pilot.pause(0.1)
        rows = [r for r in screen_rows(app.log_view) if r.strip()]
        assert rows[0].startswith("auth Dec  4 06:00:01 web1 sshd[1]: Accepted")
        assert rows[1].startswith("ufw  Dec  4 06:00:02")
        strip = app.log_view.render_line(0)
        tag = next(seg for seg in strip if seg.text.strip())
        assert tag.text.strip() == "auth"
        assert tag.style is not None and tag.style.color is not None
        assert tag.style.color.name == source_colour("auth")
        assert app.rows["auth"].seq == 1


async def test_unsubscribing_stops_a_source(tmp_path, start_server):
    """Toggling a source off (key 2) unsubscribes it: its new lines no longer arrive."""
    server, auth, ufw = await two_sources(tmp_path, start_server)
    app = make_app(server)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: all_acked(app))
        await pilot.press("2")
        await until(pilot, lambda: not app.rows["ufw"].acked, what="ufw unsubscribed")
        write_lines(ufw, ["hidden"])
        write_lines(auth, ["shown"])
        await until(pilot, lambda: shown_texts(app) == ["shown"], what="the auth line")
        await asyncio.sleep(0.3)
        await pilot.pause(0.1)
        assert shown_texts(app) == ["shown"]
        await pilot.press("2")
        await until(pilot, lambda: app.rows["ufw"].acked, what="ufw again")
        write_lines(ufw, ["visible again"])
        await until(pilot, lambda: "visible again" in shown_texts(app))


async def test_toggle_all_and_sidebar_keys(tmp_path, start_server):
    """`a` toggles every source; Space on the sidebar toggles the source under the cursor."""
    server, auth, ufw = await two_sources(tmp_path, start_server)
    app = make_app(server, "auth")  # only auth named on the command line
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.rows and app.rows["auth"].acked)
        assert not app.rows["ufw"].wanted
        await pilot.press("a")
        await until(pilot, lambda: all_acked(app), what="all on")
        await pilot.press("a")
        await until(pilot, lambda: not any(r.acked for r in app.rows.values()), what="all off")
        await pilot.press("tab")  # focus the sidebar
        assert app.source_list.has_focus
        await pilot.press("down", "space")
        await until(pilot, lambda: app.rows["ufw"].acked and not app.rows["auth"].acked)


async def test_follow_and_pause(tmp_path, start_server):
    """Scrolling up pauses following and counts new lines; End resumes at the newest line."""
    server, auth, _ = await two_sources(tmp_path, start_server)
    app = make_app(server)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: all_acked(app))
        write_lines(auth, [f"line {i}" for i in range(100)])
        await until(pilot, lambda: len(app.scrollback) == 100)
        view = app.log_view
        await until(pilot, lambda: view.scroll_y == view.max_scroll_y)
        await pilot.press("up", "up", "up")
        assert not view.following
        paused_at = view.scroll_y
        write_lines(auth, [f"more {i}" for i in range(20)])
        await until(pilot, lambda: len(app.scrollback) == 120)
        await pilot.pause(0.1)
        assert view.scroll_y == paused_at and view.unseen == 20
        status = app.query_one("#status").render()
        assert "paused" in str(status)
        await pilot.press("end")
        assert view.following and view.scroll_y == view.max_scroll_y
        assert screen_rows(view)[-1].startswith("auth more 19")
        await pilot.press("f")
        assert not view.following


async def test_filter_with_good_and_bad_regex(tmp_path, start_server):
    """`/` filters the whole scrollback live; a bad regex says so and keeps the old filter."""
    server, auth, _ = await two_sources(tmp_path, start_server)
    app = make_app(server)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: all_acked(app))
        write_lines(auth, ["Failed password for root", "Accepted key for alice", "FAILED again"])
        await until(pilot, lambda: len(app.scrollback) == 3)
        await pilot.press("slash")
        await pilot.press(*"fail")
        assert shown_texts(app) == ["Failed password for root", "FAILED again"]  # smart case
        await pilot.press("(")
        assert "bad regex" in app.message
        assert shown_texts(app) == ["Failed password for root", "FAILED again"]
        await pilot.press("backspace", "enter")
        assert app.log_view.has_focus
        await pilot.press("n")
        assert app.log_view.current_match is not None
        await pilot.press("escape")
        assert app.scrollback.pattern is None and len(shown_texts(app)) == 3


async def test_notice_and_gap_lines_and_resume(tmp_path, start_server):
    """Rotation shows a notice; after a dropped connection the viewer resumes with since."""
    log = tmp_path / "app.log"
    log.write_text("")
    server = await start_server({"app": log}, backlog=10)
    app = make_app(server)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.rows and app.rows["app"].acked)
        write_lines(log, ["one"])
        os.rename(log, tmp_path / "app.log.1")
        write_lines(log, ["two"])
        await until(pilot, lambda: "two" in shown_texts(app), what="line after rotation")
        kinds = [(e.kind, e.text) for e in app.scrollback.iter_shown()]
        assert (NOTICE, "— app: rotated (following) —") in kinds
        # Cut the connection from the server side; write while the viewer is away.
        for client in list(server.hub.clients.values()):
            client.sink.abort()
        write_lines(log, [f"away {i}" for i in range(3)])
        await until(pilot, lambda: "away 2" in shown_texts(app), timeout=10, what="resume")
        lines = [e.text for e in app.scrollback.iter_shown() if e.kind == LINE]
        assert lines == ["one", "two", "away 0", "away 1", "away 2"]  # no loss, no repeat
        # Now more than the server buffers is written while away: a gap says how much.
        for client in list(server.hub.clients.values()):
            client.sink.abort()
        write_lines(log, [f"lost {i}" for i in range(30)])
        await until(pilot, lambda: "lost 29" in shown_texts(app), timeout=10)
        gaps = [e.text for e in app.scrollback.iter_shown() if e.kind == GAP]
        assert gaps == ["… 20 lines of app not received (not buffered) …"]
        assert app.lines_lost == 20


async def test_reconnects_after_server_restart(tmp_path, start_server):
    """When the server restarts, the viewer reconnects, marks the restart and streams again."""
    log = tmp_path / "app.log"
    log.write_text("")
    first = await start_server({"app": log})
    port = first.port
    app = make_app(first)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.rows and app.rows["app"].acked)
        write_lines(log, ["before"])
        await until(pilot, lambda: "before" in shown_texts(app))
        await first.stop()
        await until(pilot, lambda: app.connection_state.startswith("reconnecting"))
        config = ServerConfig(host="127.0.0.1", port=port, sources={"app": log})
        second = LogServer(config)
        await second.start()
        try:
            await until(pilot, lambda: app.connection_state == "live", timeout=10)
            await until(pilot, lambda: app.rows["app"].acked)
            write_lines(log, ["after"])
            await until(pilot, lambda: "after" in shown_texts(app), timeout=10)
            gaps = [e.text for e in app.scrollback.iter_shown() if e.kind == GAP]
            assert any("restarted" in g for g in gaps)
        finally:
            await second.stop()


HOSTILE = [
    "\x1b[2J\x1b[3J\x1b[1;1Hcleared",
    "real\rfake",
    "title \x1b]0;owned\x07 and clipboard \x1b]52;c;ZXZpbA==\x07",
    "[bold red]markup[/] and [link=http://x]link[/link]",
    "c1 \x9b2J and bidi \u202eesrever",
]


async def test_hostile_lines_are_shown_not_obeyed(tmp_path, start_server):
    """Escape sequences and markup in lines are drawn as visible text, never obeyed."""
    server, auth, _ = await two_sources(tmp_path, start_server)
    app = make_app(server)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: all_acked(app))
        write_lines(auth, HOSTILE)
        await until(pilot, lambda: len(app.scrollback) == len(HOSTILE))
        await pilot.pause(0.1)
        rows = [r.rstrip() for r in screen_rows(app.log_view) if r.strip()]
        assert rows == [
            "auth ^[[2J^[[3J^[[1;1Hcleared",
            "auth real^Mfake",
            "auth title ^[]0;owned^G and clipboard ^[]52;c;ZXZpbA==^G",
            "auth [bold red]markup[/] and [link=http://x]link[/link]",
            "auth c1 \\x9b2J and bidi \\u202eesrever",
        ]
        for y in range(len(HOSTILE)):
            for segment in app.log_view.render_line(y):
                assert not any(ch in segment.text for ch in "\x1b\x07\r\x9b\u202e")
                assert segment.style is None or segment.style.link is None


async def test_help_screen_and_save(tmp_path, start_server):
    """`?` opens the key help (Esc closes it); `s` saves the shown lines to a named file."""
    server, auth, _ = await two_sources(tmp_path, start_server)
    app = make_app(server, save_dir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: all_acked(app))
        write_lines(auth, ["to keep", "\x1bto keep exactly"])
        await until(pilot, lambda: len(app.scrollback) == 2)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        write_lines(auth, ["while the help is open"])  # the pane keeps updating underneath
        await until(pilot, lambda: len(app.scrollback) == 3)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("s")
        saved = list(tmp_path.glob("logtv-*.log"))
        assert len(saved) == 1 and saved[0].name in app.message
        assert saved[0].read_text() == (
            "auth | to keep\nauth | \x1bto keep exactly\nauth | while the help is open\n"
        )


async def test_once_exits_1_when_nothing_listens():
    """With --once, a server that is not there is a clear message and exit code 1."""
    client = LogClient("127.0.0.1:9", sources=None)  # the discard port: nothing listens
    app = WatchApp(client, once=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.return_code is not None, timeout=10)
    assert app.return_code == 1


async def test_times_wrap_and_clear(tmp_path, start_server):
    """`t` prefixes receive times, `w` wraps a long line over rows, `c` clears the pane."""
    server, auth, _ = await two_sources(tmp_path, start_server)
    app = make_app(server)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: all_acked(app))
        long_line = "start " + "word " * 60 + "end"
        write_lines(auth, ["short one", long_line])
        await until(pilot, lambda: len(app.scrollback) == 2)
        await pilot.pause(0.1)
        rows = [r.rstrip() for r in screen_rows(app.log_view) if r.strip()]
        assert len(rows) == 2 and not rows[1].endswith("end")  # cut at the pane's edge
        await pilot.press("t")
        await pilot.pause(0.1)
        rows = [r for r in screen_rows(app.log_view) if r.strip()]
        assert re.match(r"\d\d:\d\d:\d\d\.\d{3} auth short one", rows[0])
        await pilot.press("t", "w")
        await pilot.pause(0.1)
        rows = [r.rstrip() for r in screen_rows(app.log_view) if r.strip()]
        assert len(rows) > 3 and rows[-1].endswith("end")  # the long line over several rows
        assert "".join(rows).count("word") == 60
        await pilot.press("c")
        await pilot.pause(0.1)
        assert len(app.scrollback) == 0
        assert not any(r.strip() for r in screen_rows(app.log_view))
