"""Many servers in one `logtv watch` and one `logtv tail`, against real servers on loopback."""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
from pathlib import Path

import pytest

from logtv.client.app import WatchApp
from logtv.client.connection import LogClient
from logtv.client.tail import run_tail
from logtv.client.targets import is_server, split_targets
from logtv.server.server import LogServer
from tests.conftest import write_lines
from tests.test_watch import screen_rows, shown_texts, until


async def two_servers(tmp_path: Path, start_server) -> tuple[LogServer, Path, LogServer, Path]:  # type: ignore[no-untyped-def]
    """Servers named web1 and db1, each following its own auth file."""
    web_log, db_log = tmp_path / "web-auth.log", tmp_path / "db-auth.log"
    web_log.write_text("")
    db_log.write_text("")
    web = await start_server({"auth": web_log}, name="web1")
    db = await start_server({"auth": db_log}, name="db1")
    return web, web_log, db, db_log


def watch(*servers: LogServer) -> WatchApp:
    return WatchApp([LogClient(s.url, sources=None) for s in servers])


def all_acked(app: WatchApp) -> bool:
    return len(app.rows) == len(app.servers) and all(r.acked for r in app.rows.values())


# -- the argument grammar ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "servers", "sources"),
    [
        (["web1"], ["web1"], []),
        (["web1", "auth", "ufw"], ["web1"], ["auth", "ufw"]),
        (["web1:8765"], ["web1:8765"], []),
        (["web1:8765", "db1:8765", "auth"], ["web1:8765", "db1:8765"], ["auth"]),
        (["auth", "web1:8765"], ["web1:8765"], ["auth"]),
        (
            ["[::1]:9000", "ws://db1", "wss://x:1/logs/live"],
            ["[::1]:9000", "ws://db1", "wss://x:1/logs/live"],
            [],
        ),
        (["a:1", "a:1", "s", "s"], ["a:1"], ["s"]),
        (["web1:8765", "app:v2"], ["web1:8765"], ["app:v2"]),
    ],
)
def test_split_targets(words: list[str], servers: list[str], sources: list[str]) -> None:
    """Ports, schemes and `@` make servers, bare words sources; one bare word alone is a server."""
    assert split_targets(words) == (servers, sources)


def test_named_hosts_are_servers() -> None:
    """`@name` parses as a server (the hosts file says which; see tests/test_hosts.py)."""
    assert is_server("@web1")
    assert split_targets(["@web1", "auth"]) == (["@web1"], ["auth"])


# -- watch ------------------------------------------------------------------------------------


async def test_watch_two_servers_tags_lines_host_slash_source(tmp_path, start_server):
    """Lines of both servers show, tagged host/source, under one host row per server."""
    web, web_log, db, db_log = await two_servers(tmp_path, start_server)
    app = watch(web, db)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: all_acked(app), what="both subscribed")
        assert list(app.rows) == [(web.url, "auth"), (db.url, "auth")]
        write_lines(web_log, ["from web"])
        await until(pilot, lambda: len(app.scrollback) == 1)
        write_lines(db_log, ["from db"])
        await until(pilot, lambda: len(app.scrollback) == 2)
        await pilot.pause(0.1)
        rows = [r.rstrip() for r in screen_rows(app.log_view) if r.strip()]
        assert rows == ["web1/auth from web", "db1/auth  from db"]
        assert app.connection_state == "2/2 live"
        sidebar = [line for line in app.source_list.render().plain.splitlines()]
        assert sidebar[0].startswith("▾ web1") and sidebar[0].endswith("live")
        assert sidebar[1].startswith("1 ● auth")
        assert sidebar[2].startswith("▾ db1") and sidebar[3].startswith("2 ● auth")


async def test_watch_a_stopped_server_is_down_while_the_other_streams(tmp_path, start_server):
    """Stopping one server marks its host and rows down; the other's lines keep arriving."""
    web, web_log, db, db_log = await two_servers(tmp_path, start_server)
    app = watch(web, db)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: all_acked(app))
        db_url = db.url
        await db.stop()
        await until(pilot, lambda: app.connection_state == "1/2 live", what="db down")
        db_row = app.rows[(db_url, "auth")]
        assert db_row.down and not db_row.acked and not app.rows[(web.url, "auth")].down
        sidebar = app.source_list.render().plain.splitlines()
        assert sidebar[2].startswith("▾ db1") and sidebar[2].endswith("down")
        assert sidebar[3].endswith("down")
        assert "1/2 live" in app.header_line.render().plain
        assert "db1 down" in app.header_line.render().plain
        assert app.message.startswith("db1: reconnecting")
        write_lines(web_log, ["still here"])
        await until(pilot, lambda: "still here" in shown_texts(app), what="web keeps streaming")


async def test_watch_toggling_a_source_on_one_server_leaves_the_other(tmp_path, start_server):
    """Key 1 unsubscribes auth on web1 only: db1's auth keeps streaming."""
    web, web_log, db, db_log = await two_servers(tmp_path, start_server)
    app = watch(web, db)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: all_acked(app))
        await pilot.press("1")
        await until(pilot, lambda: not app.rows[(web.url, "auth")].acked, what="web1 off")
        assert app.rows[(db.url, "auth")].acked
        write_lines(web_log, ["hidden"])
        write_lines(db_log, ["shown"])
        await until(pilot, lambda: shown_texts(app) == ["shown"], what="the db line")
        await asyncio.sleep(0.3)
        await pilot.pause(0.1)
        assert shown_texts(app) == ["shown"]
        await pilot.click("#sources", offset=(2, 0))  # the web1 host row: all its sources
        await until(pilot, lambda: app.rows[(web.url, "auth")].acked, what="web1 on again")


# -- tail -------------------------------------------------------------------------------------


async def tail_until(clients: list[LogClient], count: int, **options) -> tuple[list[str], str]:  # type: ignore[no-untyped-def]
    """Run tail in-process until ``count`` lines are out; return them and stderr."""
    out, err = io.StringIO(), io.StringIO()
    task = asyncio.create_task(run_tail(clients, out=out, err=err, **options))
    deadline = time.monotonic() + 10
    while len(out.getvalue().splitlines()) < count:
        assert time.monotonic() < deadline, (out.getvalue(), err.getvalue())
        assert not task.done(), (task.result(), err.getvalue())
        await asyncio.sleep(0.05)
    for client in clients:
        await client.close()
    assert await asyncio.wait_for(task, 5) == 0
    return out.getvalue().splitlines(), err.getvalue()


async def test_tail_two_servers_plain_and_json(tmp_path, start_server):
    """Plain lines are `host/source | line`; --json objects carry the address as given as host."""
    web, web_log, db, db_log = await two_servers(tmp_path, start_server)
    write_lines(web_log, ["w1"])
    write_lines(db_log, ["d1"])
    await asyncio.sleep(0.3)  # both servers have read their line before tail asks for backlog
    clients = [LogClient(s.url, sources=["all"], backlog=1) for s in (web, db)]
    lines, err = await tail_until(clients, 2)
    assert sorted(lines) == ["db1/auth | d1", "web1/auth | w1"]
    assert f"logtv: {web.url}: connected to web1" in err
    given = [f"127.0.0.1:{web.port}", f"127.0.0.1:{db.port}"]
    clients = [LogClient(target, sources=["auth"], backlog=1) for target in given]
    lines, _ = await tail_until(clients, 2, as_json=True)
    objects = sorted((json.loads(line) for line in lines), key=lambda o: o["host"])
    assert sorted(given) == [o["host"] for o in objects]
    assert {o["raw_line"] for o in objects} == {"w1", "d1"}
    assert all(o["log_source"] == "auth" for o in objects)


async def test_tail_json_has_host_with_one_server(tmp_path, start_server):
    """With one server, plain lines are as before and --json objects carry host too."""
    web, web_log, _, _ = await two_servers(tmp_path, start_server)
    write_lines(web_log, ["only"])
    await asyncio.sleep(0.3)
    target = f"127.0.0.1:{web.port}"
    lines, err = await tail_until([LogClient(target, sources=["all"], backlog=1)], 1)
    assert lines == ["auth | only"] and "logtv: connected to web1" in err
    lines, _ = await tail_until([LogClient(target, sources=["all"], backlog=1)], 1, as_json=True)
    got = json.loads(lines[0])
    assert got["host"] == target and got["log_source"] == "auth" and got["raw_line"] == "only"
    assert list(got)[:3] == ["type", "host", "log_source"]


async def test_tail_command_with_two_servers(tmp_path, start_server):
    """`logtv tail A:PORT B:PORT auth` (a real subprocess) prints the lines of both servers."""
    web, web_log, db, db_log = await two_servers(tmp_path, start_server)
    write_lines(web_log, ["w1"])
    write_lines(db_log, ["d1"])
    await asyncio.sleep(0.3)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "logtv",
        "tail",
        f"127.0.0.1:{web.port}",
        f"127.0.0.1:{db.port}",
        "auth",
        "--backlog",
        "1",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        got = [
            (await asyncio.wait_for(process.stdout.readline(), 10)).decode().rstrip("\n")
            for _ in range(2)
        ]
        assert sorted(got) == ["db1/auth | d1", "web1/auth | w1"]
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 5)
    assert process.returncode == 0
