"""The hosts file (`@name`, groups) for `logtv watch` and `logtv tail`, against real servers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from logtv.client.app import WatchApp
from logtv.client.connection import LogClient
from logtv.client.hosts import NamedHost, default_hosts_path, load_hosts
from logtv.config import ConfigError
from tests.conftest import write_lines
from tests.test_cli import assert_one_error_line, read_stdout_lines, run_logtv
from tests.test_ssh import Sshd, run_sshd, stop
from tests.test_watch import screen_rows, until

EXAMPLE = """
[hosts.web1]
url = "ssh://admin@web1.example"
[hosts.web2]
url = "ssh://admin@web2.example:2222?port=9000"
[hosts.db1]
url = "db1.example:8765"
token-file = "db1.token"
[groups]
web = ["web1", "web2"]
all-boxes = ["web", "db1", "web1"]
"""


def hosts_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hosts.toml"
    path.write_text(text)
    return path


@pytest.fixture
def sshd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sshd]:
    """A real sshd on loopback, as in tests/test_ssh.py."""
    yield from run_sshd(tmp_path, monkeypatch)


def logtv_process(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "logtv", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )


# -- the file ----------------------------------------------------------------------------------


def test_hosts_and_nested_groups_expand_in_order(tmp_path: Path) -> None:
    """A host is itself; a group expands to its hosts, nested groups too, each host once."""
    hosts = load_hosts(hosts_file(tmp_path, EXAMPLE))
    assert [h.name for h in hosts.expand("@web1")] == ["web1"]
    assert [h.name for h in hosts.expand("@web")] == ["web1", "web2"]
    assert [h.name for h in hosts.expand("@all-boxes")] == ["web1", "web2", "db1"]
    assert hosts.hosts["db1"] == NamedHost(
        "db1", "db1.example:8765", token_file=tmp_path / "db1.token"
    )


def test_default_path_honours_xdg_config_home(tmp_path: Path) -> None:
    """$XDG_CONFIG_HOME/logtv/hosts.toml, else ~/.config/logtv/hosts.toml (relative XDG ignored)."""
    assert default_hosts_path({"XDG_CONFIG_HOME": str(tmp_path)}) == (
        tmp_path / "logtv" / "hosts.toml"
    )
    home = Path.home() / ".config" / "logtv" / "hosts.toml"
    assert default_hosts_path({}) == home
    assert default_hosts_path({"XDG_CONFIG_HOME": "relative/dir"}) == home


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[hosts.a\n", "not valid TOML"),
        ("[hostz.a]\nurl = 'x:1'\n", "unknown keys ['hostz']"),
        ("[hosts.a]\nurl = 'x:1'\nport = 9\n", "unknown keys ['port']"),
        ("[hosts.a]\nuri = 'x:1'\n", "needs url"),
        ("[hosts.a]\nurl = '@b'\n", "must be a server address"),
        ("[hosts.'bad name']\nurl = 'x:1'\n", "a name is letters"),
        ("[hosts.a]\nurl = 'x:1'\ntoken-file = 3\n", "token-file must be a path"),
        ("hosts = 3\n", "hosts must be tables"),
        ("[groups]\ng = 'a'\n", "must be a list of host names"),
        ("[groups]\ng = []\n", "must be a list of host names"),
        ("[groups]\ng = ['nobody']\n", "names 'nobody', which is not there"),
        ("[hosts.a]\nurl = 'x:1'\n[groups]\na = ['a']\n", "both a host and a group"),
    ],
)
def test_bad_hosts_files_are_one_sentence(tmp_path: Path, text: str, words: str) -> None:
    """Each kind of bad hosts file is a ConfigError naming the file and the problem."""
    path = hosts_file(tmp_path, text)
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")) as exc:
        load_hosts(path)
    assert str(path) in str(exc.value)


def test_group_cycles_and_unknown_names_are_errors(tmp_path: Path) -> None:
    """A group containing itself (through others) and an unknown @name are clear errors."""
    text = "[hosts.a]\nurl = 'x:1'\n[groups]\ng = ['a', 'h']\nh = ['g']\n"
    hosts = load_hosts(hosts_file(tmp_path, text))
    with pytest.raises(ConfigError, match="contains itself"):
        hosts.expand("@g")
    with pytest.raises(ConfigError, match=r"no host or group 'nope'.*it has: a, g, h"):
        hosts.expand("@nope")


def test_missing_hosts_file_is_an_error(tmp_path: Path) -> None:
    """A missing file says where it looked and how to make one."""
    with pytest.raises(ConfigError, match="no hosts file .*--hosts FILE"):
        load_hosts(tmp_path / "none.toml")


# -- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["watch", "tail"])
@pytest.mark.parametrize(
    ("text", "args", "words"),
    [
        (EXAMPLE, ["@nope"], ["no host or group 'nope'"]),
        ("[hosts.a\n", ["@a"], ["not valid TOML"]),
        ("[hosts.a]\nurl = 'x:1'\nuser = 'me'\n", ["@a"], ["unknown keys ['user']"]),
        ("[groups]\ng = ['h']\nh = ['g']\n", ["@g"], ["contains itself"]),
        ("[hosts.a]\nurl = 'ftp://x'\n", ["@a"], ["[hosts.a]", "unsupported scheme"]),
        ("[hosts.a]\nurl = 'ssh://x/y'\n", ["@a"], ["[hosts.a]", "no path"]),
        ("[hosts.a]\nurl = 'x:1'\ntoken-file = 'gone'\n", ["@a"], ["token-file of [hosts.a]"]),
        ("[hosts.a]\nurl = 'x:1'\nca = 'ca.pem'\n", ["@a"], ["ca is for wss://"]),
    ],
)
def test_hosts_file_errors_on_the_command_line(
    tmp_path: Path, command: str, text: str, args: list[str], words: list[str]
) -> None:
    """Bad names or files are one `logtv: error:` line and exit 2, for watch and tail alike."""
    path = hosts_file(tmp_path, text)
    assert_one_error_line(run_logtv(command, *args, "--hosts", str(path)), *words)


def test_missing_default_hosts_file_on_the_command_line(tmp_path: Path) -> None:
    """With no --hosts, `$XDG_CONFIG_HOME/logtv/hosts.toml` is read; missing, it is one error."""
    process = logtv_process("tail", "@web1", env={"XDG_CONFIG_HOME": str(tmp_path)})
    _, err = process.communicate(timeout=20)
    assert process.returncode == 2
    assert err.strip() == (
        f"logtv: error: no hosts file {tmp_path}/logtv/hosts.toml: create it with "
        '[hosts.NAME] url = "…", or give --hosts FILE'
    )


async def test_tail_a_group_tags_lines_with_the_host_names(tmp_path: Path, start_server) -> None:
    """`logtv tail @web auth` follows both hosts of the group; tags and JSON use the names."""
    web1_log, web2_log = tmp_path / "w1.log", tmp_path / "w2.log"
    write_lines(web1_log, ["from one"])
    write_lines(web2_log, ["from two"])
    token = tmp_path / "web2.token"
    token.write_text("s3cret-token-for-web2\n")
    # The servers call themselves something else: the hosts file's names are what is shown.
    one = await start_server({"auth": web1_log}, name="box-a")
    two = await start_server({"auth": web2_log}, name="box-b", token="s3cret-token-for-web2")
    await asyncio.sleep(0.3)
    path = hosts_file(
        tmp_path,
        f'[hosts.web1]\nurl = "127.0.0.1:{one.port}"\n'
        f'[hosts.web2]\nurl = "ws://127.0.0.1:{two.port}"\ntoken-file = "web2.token"\n'
        '[groups]\nweb = ["web1", "web2"]\n',
    )
    for as_json in (False, True):
        extra = ["--json"] if as_json else []
        tail = logtv_process("tail", "--hosts", str(path), "@web", "auth", "--backlog", "1", *extra)
        try:
            got = await asyncio.to_thread(read_stdout_lines, tail, 2)
        finally:
            stop(tail)
        if as_json:
            objects = [json.loads(line) for line in got]
            assert sorted((o["host"], o["raw_line"]) for o in objects) == [
                ("web1", "from one"),
                ("web2", "from two"),
            ]
        else:
            assert sorted(got) == ["web1/auth | from one", "web2/auth | from two"]


async def test_watch_named_hosts_show_their_names(tmp_path: Path, start_server) -> None:
    """In the TUI, named hosts head the sidebar and tag lines by their hosts-file names."""
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    for log in logs:
        log.write_text("")
    one = await start_server({"auth": logs[0]}, name="box-a")
    two = await start_server({"auth": logs[1]}, name="box-b")
    clients = [
        LogClient(one.url, sources=None, name="web1"),
        LogClient(two.url, sources=None, name="web2"),
    ]
    app = WatchApp(clients)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: len(app.rows) == 2 and all(r.acked for r in app.rows.values()))
        write_lines(logs[1], ["hello from b"])
        await until(pilot, lambda: len(app.scrollback) == 1)
        await pilot.pause(0.1)
        assert [r.rstrip() for r in screen_rows(app.log_view) if r.strip()] == [
            "web2/auth hello from b"
        ]
        sidebar = app.source_list.render().plain.splitlines()
        assert "web1" in sidebar[0] and "web2" in sidebar[2]


def test_tail_a_named_ssh_host(tmp_path: Path, serve_process, sshd: Sshd) -> None:
    """A hosts-file host with an ssh:// url is reached through ssh like one on the command line."""
    log = tmp_path / "auth.log"
    write_lines(log, ["over ssh by name"])
    server = serve_process("--source", f"auth={log}")
    server.wait_listening()
    path = hosts_file(tmp_path, f'[hosts.box]\nurl = "{sshd.url(server.port)}"\n')
    tail = logtv_process("tail", "--hosts", str(path), "@box", "--backlog", "1", "--json")
    try:
        got = read_stdout_lines(tail, 1, timeout=20)
    finally:
        stop(tail)
    assert len(got) == 1
    line = json.loads(got[0])
    assert line["host"] == "box" and line["raw_line"] == "over ssh by name"


# -- the sidebar: collapsible hosts -------------------------------------------------------------


async def test_sidebar_hosts_collapse_expand_and_toggle(tmp_path: Path, start_server) -> None:
    """← collapses a host (▸, a subscribed/total count), → expands it, Space on it toggles all."""
    paths = {name: tmp_path / f"{name}.log" for name in ("auth", "ufw", "db")}
    for path in paths.values():
        path.write_text("")
    web = await start_server({"auth": paths["auth"], "ufw": paths["ufw"]}, name="web1")
    db = await start_server({"auth": paths["db"]}, name="db1")
    app = WatchApp([LogClient(s.url, sources=None) for s in (web, db)])

    def sidebar() -> list[str]:
        """The sidebar's lines, each as its words: `▾ web1 live`, `1 ● auth 0`."""
        return [" ".join(line.split()) for line in app.source_list.render().plain.splitlines()]

    def acked(server: str) -> list[bool]:
        return [row.acked for key, row in app.rows.items() if key[0] == server]

    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: len(app.rows) == 3 and all(acked(web.url) + acked(db.url)))
        assert sidebar() == ["▾ web1 live", "1 ● auth 0", "2 ● ufw 0", "▾ db1 live", "3 ● auth 0"]
        await pilot.press("tab")  # the sidebar; its cursor is on the first host row
        await pilot.press("left")
        assert sidebar() == ["▸ web1 2/2 live", "▾ db1 live", "3 ● auth 0"]
        await pilot.press("space")  # the collapsed host: all of its sources off
        await until(pilot, lambda: acked(web.url) == [False, False], what="web1 sources off")
        assert sidebar()[0] == "▸ web1 0/2 live" and acked(db.url) == [True]
        await pilot.press("right")
        assert sidebar() == ["▾ web1 live", "1 ○ auth 0", "2 ○ ufw 0", "▾ db1 live", "3 ● auth 0"]
        await pilot.press("down", "enter")  # a source row: just that source
        await until(pilot, lambda: acked(web.url) == [True, False], what="auth on again")
        await pilot.press("down", "down", "down", "left")  # db1's source row folds its host
        assert sidebar()[3:] == ["▸ db1 1/1 live"] and app.source_list.cursor == 3
        await pilot.press("z")  # not all collapsed yet: collapse all
        assert sidebar() == ["▸ web1 1/2 live", "▸ db1 1/1 live"]
        await pilot.press("z")
        assert len(sidebar()) == 5
        await pilot.press("question_mark")
        await pilot.pause()
        help_text = str(app.screen.query_one("#help").render())
        assert "collapse / expand the host" in help_text and "collapse or expand all" in help_text


async def test_one_server_has_no_host_rows_to_fold(tmp_path: Path, start_server) -> None:
    """With one server there are no host rows: ←, → and z change nothing."""
    log = tmp_path / "auth.log"
    log.write_text("")
    server = await start_server({"auth": log})
    app = WatchApp([LogClient(server.url, sources=None)])
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.rows.get("auth") is not None and app.rows["auth"].acked)
        before = app.source_list.render().plain
        await pilot.press("tab", "left", "right", "z")
        assert app.source_list.render().plain == before and before.startswith("1 ● auth")
