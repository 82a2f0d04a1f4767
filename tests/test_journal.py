"""Journal sources (`--source NAME=journal:UNIT`): real journal files, journalctl, servers, clients.

journald does not run here, so the tests write real journal files with systemd-journal-remote
(the journal export format on its stdin) and serve them with ``--journal-directory``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from logtv.config import (
    ConfigError,
    JournalSource,
    ServerConfig,
    config_from_mapping,
    default_state_dir,
    parse_source,
)
from logtv.server.follower import FOLLOWING
from logtv.server.journal import (
    DEFAULT_SEVERITY,
    JournalFollower,
    JournalOptions,
    format_entry,
    is_cursor,
)
from logtv.server.server import LogServer

JOURNAL_REMOTE = next(
    (
        path
        for path in (
            "/lib/systemd/systemd-journal-remote",
            "/usr/lib/systemd/systemd-journal-remote",
        )
        if os.access(path, os.X_OK)
    ),
    "systemd-journal-remote",
)
BOOT = "6c1b2d8a0e3f4a5b9c7d8e9f0a1b2c3d"
#: 2024-12-04 08:13:20 UTC
T0 = 1733300000

needs_journal_tools = pytest.mark.skipif(
    not (shutil.which(JOURNAL_REMOTE) and shutil.which("journalctl")),
    reason="needs journalctl and systemd-journal-remote (Debian: systemd, systemd-journal-remote)",
)


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC for the test (the formatter prints local time, as journalctl does)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def entry(
    message: str | bytes | None,
    *,
    second: int = 0,
    unit: str = "ssh.service",
    priority: int | None = 6,
    ident: str | None = "sshd",
    pid: int | None = 42,
    host: str | None = "box",
    **extra: str,
) -> dict[str, str | bytes]:
    """One journal entry's fields, as a program logging through journald would leave them."""
    fields: dict[str, str | bytes] = {
        "__REALTIME_TIMESTAMP": str((T0 + second) * 1_000_000),
        "_BOOT_ID": BOOT,
        "_SYSTEMD_UNIT": unit,
    }
    for key, value in (
        ("_HOSTNAME", host),
        ("SYSLOG_IDENTIFIER", ident),
        ("_PID", pid),
        ("PRIORITY", priority),
        ("MESSAGE", message),
    ):
        if value is not None:
            fields[key] = value if isinstance(value, (str, bytes)) else str(value)
    fields.update(extra)
    return fields


def export_format(entries: list[dict[str, str | bytes]]) -> bytes:
    """The journal export format: KEY=value lines, or KEY, a 64-bit length and raw bytes."""
    out = bytearray()
    for fields in entries:
        for key, value in fields.items():
            raw = value.encode() if isinstance(value, str) else value
            if b"\n" in raw or not raw.isascii():
                out += key.encode() + b"\n" + struct.pack("<Q", len(raw)) + raw + b"\n"
            else:
                out += key.encode() + b"=" + raw + b"\n"
        out += b"\n"
    return bytes(out)


def write_journal(
    directory: Path, entries: list[dict[str, str | bytes]], file: str = "a.journal"
) -> None:
    """Append entries to a real journal file (systemd-journal-remote appends to an existing one)."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [JOURNAL_REMOTE, f"--output={directory / file}", "-"],
        input=export_format(entries),
        check=True,
        capture_output=True,
        timeout=20,
    )


def numbered(first: int, count: int, **options: object) -> list[dict[str, str | bytes]]:
    return [entry(f"m{i}", second=i, **options) for i in range(first, first + count)]  # type: ignore[arg-type]


async def wait_for(predicate, timeout: float = 10.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def severities(server: LogServer, name: str) -> list[int]:
    """The severity of each line in a source's ring buffer."""
    assert server.hub is not None
    found: list[int] = []
    for chunk in server.hub.sources[name].ring:
        assert chunk.severities is not None and len(chunk.severities) == len(chunk.lines)
        found += chunk.severities
    return found


def texts(lines: list[tuple[str, int, str]]) -> list[str]:
    return [text.rsplit(": ", 1)[-1] for _, _, text in lines]


# -- the entry formatter -------------------------------------------------------------------------


def test_format_a_full_entry(utc: None) -> None:
    """A complete entry prints as `Mmm dd HH:MM:SS host ident[pid]: message` with its PRIORITY."""
    fields = {
        "__REALTIME_TIMESTAMP": str(T0 * 1_000_000),
        "_HOSTNAME": "box",
        "SYSLOG_IDENTIFIER": "sshd",
        "_PID": "42",
        "PRIORITY": "4",
        "MESSAGE": "Failed password for root",
    }
    assert format_entry(fields, read_at=0) == (
        ["Dec 04 08:13:20 box sshd[42]: Failed password for root"],
        4,
    )


def test_format_prefers_the_programs_own_time_and_pid(utc: None) -> None:
    """_SOURCE_REALTIME_TIMESTAMP wins over journald's time; SYSLOG_PID stands in for _PID."""
    fields = {
        "__REALTIME_TIMESTAMP": str((T0 + 60) * 1_000_000),
        "_SOURCE_REALTIME_TIMESTAMP": str(T0 * 1_000_000 + 999_999),
        "SYSLOG_IDENTIFIER": "app",
        "SYSLOG_PID": "9",
        "MESSAGE": "hi",
    }
    assert format_entry(fields, read_at=0) == (["Dec 04 08:13:20 app[9]: hi"], DEFAULT_SEVERITY)
    fields["_PID"] = "8"
    assert format_entry(fields, read_at=0) == (["Dec 04 08:13:20 app[8]: hi"], DEFAULT_SEVERITY)


def test_format_missing_fields(utc: None) -> None:
    """No host is left out, no identifier falls back to _COMM then `unknown`, no pid has no [ ],
    no time is the read time, and a PRIORITY that is missing or not 0-7 is info (6)."""
    assert format_entry({"MESSAGE": "x", "_COMM": "cron"}, read_at=T0) == (
        ["Dec 04 08:13:20 cron: x"],
        6,
    )
    assert format_entry({"MESSAGE": "x", "PRIORITY": "9"}, read_at=T0) == (
        ["Dec 04 08:13:20 unknown: x"],
        6,
    )
    bad_time = {"MESSAGE": "x", "__REALTIME_TIMESTAMP": "soon", "PRIORITY": "x", "_PID": "1"}
    assert format_entry(bad_time, read_at=T0 + 3600) == (["Dec 04 09:13:20 unknown[1]: x"], 6)


def test_format_without_message_shows_nothing() -> None:
    """An entry without MESSAGE (or with one of no text form) is not shown, as journalctl does."""
    assert format_entry({"SYSLOG_IDENTIFIER": "app", "PRIORITY": "3"}, read_at=T0) is None
    assert format_entry({"MESSAGE": None}, read_at=T0) is None
    assert format_entry({"MESSAGE": {"not": "text"}}, read_at=T0) is None


def test_format_byte_array_message_is_decoded_with_replacement(utc: None) -> None:
    """A MESSAGE that is not UTF-8 (a JSON byte array) is decoded with U+FFFD for the bad bytes."""
    raw = list(b"bad \xff\xfe bytes \xc3\xa9")
    lines, _ = format_entry({"MESSAGE": raw, "_HOSTNAME": "h"}, read_at=T0) or ([], 0)
    assert lines == ["Dec 04 08:13:20 h unknown: bad \ufffd\ufffd bytes é"]


def test_format_multi_line_message_is_indented(utc: None) -> None:
    """A message of several lines gives several lines, the later ones under the message column."""
    fields = {"MESSAGE": "line one\nline two\n\n", "SYSLOG_IDENTIFIER": "app", "PRIORITY": "2"}
    lines, severity = format_entry(fields, read_at=T0) or ([], 0)
    assert lines == ["Dec 04 08:13:20 app: line one", " " * 21 + "line two"]
    assert severity == 2


def test_format_field_given_twice_shows_the_last_value(utc: None) -> None:
    """A field with several values (a JSON array) shows its last, as `journalctl -o short` does."""
    fields = {"MESSAGE": ["a", list(b"b\xff")], "SYSLOG_IDENTIFIER": ["x", "y"]}
    assert format_entry(fields, read_at=T0) == (["Dec 04 08:13:20 y: b\ufffd"], 6)


def test_is_cursor() -> None:
    """Cursors are `k=hex;k=hex…`; anything else (spaces, options, empty, huge) is not one."""
    assert is_cursor("s=30233ec59e284b68b3d0aa0319d004fb;i=6;b=6c1b;m=0;t=6286d5aca0800;x=d61f")
    for text in ("", "s=", "s=zz", "--all", "s=1 ;i=2", "s=1;;i=2", "s=" + "0" * 2000):
        assert not is_cursor(text), text


# -- config --------------------------------------------------------------------------------------


def test_parse_journal_sources() -> None:
    """`journal:UNIT`, `journal:` and `?priority=LEVEL` (a name or 0-7) parse; others do not."""
    assert parse_source("ssh=journal:ssh.service") == ("ssh", JournalSource("ssh.service"))
    assert parse_source("box=journal:") == ("box", JournalSource(""))
    assert parse_source("w=journal:?priority=warning") == ("w", JournalSource("", "warning"))
    assert parse_source("w=journal:sshd@1.service?priority=3") == (
        "w",
        JournalSource("sshd@1.service", "err"),
    )
    for spec, problem in (
        ("x=journal:a b", "not a unit name"),
        ("x=journal:-x", "not a unit name"),
        ("x=journal:ssh?prio=3", "the only option"),
        ("x=journal:ssh?priority", "the only option"),
        ("x=journal:ssh?priority=loud", "must be one of emerg"),
        ("x=journal:ssh?priority=8", "must be one of emerg"),
    ):
        with pytest.raises(ConfigError, match=problem):
            parse_source(spec)


def test_journal_config_keys(tmp_path: Path) -> None:
    """`[sources.NAME] journal = "UNIT"` with `priority`, and `state-dir`/`journal-directory`."""
    config = config_from_mapping(
        {
            "state-dir": str(tmp_path / "state"),
            "journal-directory": str(tmp_path / "journal"),
            "sources": {
                "ssh": {"journal": "ssh.service", "priority": "warning"},
                "box": {"journal": ""},
                "crit": {"journal": "", "priority": 2},
            },
        },
        origin="t.toml",
    )
    assert config.sources == {
        "ssh": JournalSource("ssh.service", "warning"),
        "box": JournalSource(""),
        "crit": JournalSource("", "crit"),
    }
    assert config.state_dir == tmp_path / "state"
    assert config.journal_directory == tmp_path / "journal"
    assert config.validated() == config


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"path": "/x", "priority": "err"}, "priority is for journal sources only"),
        ({"journal": "ssh?priority=err"}, "as a key of its own"),
        ({"journal": "ssh", "priority": "loud"}, "must be one of emerg"),
        ({"journal": "ssh", "priority": 1.5}, "wrong type"),
        ({"journal": "ssh", "priority": True}, "wrong type"),
        ({"journal": "ssh", "command": "x"}, "needs path"),
        ({"journal": "ssh", "unit": "x"}, "unknown keys"),
        ({"path": "journal:ssh"}, 'write journal = "UNIT"'),
    ],
)
def test_bad_journal_tables(table: dict[str, object], problem: str) -> None:
    """Each mistake in a journal source's table is one ConfigError naming it."""
    with pytest.raises(ConfigError, match=problem):
        config_from_mapping({"sources": {"s": table}}, origin="t.toml")


def test_state_dir_must_be_a_directory(tmp_path: Path) -> None:
    """A state-dir or journal-directory that is a file is refused; one not there yet is fine."""
    (tmp_path / "file").write_text("x")
    for key in ("state_dir", "journal_directory"):
        with pytest.raises(ConfigError, match="is not a directory"):
            ServerConfig(**{key: tmp_path / "file"}).validated()
        ServerConfig(**{key: tmp_path / "later"}).validated()


def test_default_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Cursors go to $XDG_STATE_HOME/logtv, or ~/.local/state/logtv if it is unset or relative."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_dir() == tmp_path / "logtv"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for value in ("", "relative/dir"):
        monkeypatch.setenv("XDG_STATE_HOME", value)
        assert default_state_dir() == tmp_path / "home" / ".local" / "state" / "logtv"


# -- what journalctl prints, turned into lines (the follower's hook, without a server) --------


class Captured:
    """A hand-over door that keeps what it is given."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.severities: list[int] = []

    def __call__(
        self,
        name: str,
        lines: list[str],
        events: list[tuple[int, str, str]],
        state: str,
        severities: list[int] | None = None,
    ) -> None:
        assert state == FOLLOWING and not events and severities is not None
        self.lines += lines
        self.severities += severities


def follower(tmp_path: Path, door: Captured, max_line: int = 1024) -> JournalFollower:
    options = JournalOptions(tmp_path / "state", tmp_path / "journal", backlog=7)
    return JournalFollower("j", JournalSource("ssh.service", "info"), hand_over=door,
                           max_line=max_line, options=options)  # fmt: skip


def test_deliver_not_json_cut_and_cursor(tmp_path: Path, utc: None, caplog) -> None:  # type: ignore[no-untyped-def]
    """A line that is not a JSON entry is shown as it is (info) and logged; a long message is cut
    at max-line with the files' marker; the last entry's cursor is written to the state dir."""
    caplog.set_level(logging.WARNING, logger="logtv")
    door = Captured()
    journal = follower(tmp_path, door)
    cursor = "s=ab;i=2;b=cd;m=0;t=1;x=2"
    journal.deliver(
        [
            "Hint: this is not JSON",
            "[1, 2]",
            json.dumps({"MESSAGE": "x" * 2000, "PRIORITY": "3", "__CURSOR": "s=ab;i=1"}),
            json.dumps({"PRIORITY": "3", "__CURSOR": cursor}),  # no MESSAGE: not shown
        ]
    )
    assert door.lines[:2] == ["Hint: this is not JSON", "[1, 2]"]
    assert door.lines[2].endswith(" bytes cut]") and len(door.lines[2].encode()) < 1100
    assert door.severities == [DEFAULT_SEVERITY, DEFAULT_SEVERITY, 3]
    assert caplog.text.count("not a JSON entry") == 2
    assert (tmp_path / "state" / "journal-j.cursor").read_text() == cursor
    assert journal.cursor == cursor
    assert journal.spawn_argv()[-2:] == [f"--after-cursor={cursor}", "--no-tail"]


def test_argv_without_a_cursor_starts_with_the_backlog(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    """With no cursor (or a file that holds none) journalctl starts with `--lines=BACKLOG`, and
    the unit, priority and directory are passed as single `--option=value` arguments."""
    caplog.set_level(logging.WARNING, logger="logtv")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "journal-j.cursor").write_text("--all garbage")
    journal = follower(tmp_path, Captured())
    assert journal._load_cursor() is None
    assert "does not hold a journal cursor" in caplog.text
    argv = list(journal.spawn_argv())
    assert argv[1:] == [
        "--follow",
        "--output=json",
        "--all",
        "--no-pager",
        "--merge",
        f"--directory={tmp_path / 'journal'}",
        "--unit=ssh.service",
        "--priority=info",
        "--lines=7",
    ]


def test_lone_surrogate_becomes_valid_text(tmp_path: Path) -> None:
    """A JSON string with a lone surrogate escape still gives a line that encodes as UTF-8."""
    door = Captured()
    follower(tmp_path, door).deliver([r'{"MESSAGE": "a\ud800b", "__REALTIME_TIMESTAMP": "1"}'])
    door.lines[0].encode("utf-8")
    assert door.lines[0].endswith("unknown: a?b")


# -- real journal files, a real journalctl, a real server ------------------------------------


@needs_journal_tools
def test_formatter_matches_journalctl_short(tmp_path: Path, utc: None) -> None:
    """For text entries, each line is what `journalctl -o short` prints for the same journal."""
    entries = [
        entry("plain"),
        entry("no host", host=None, second=1),
        entry("comm only", ident=None, _COMM="cron", second=2),
        entry("nobody", ident=None, pid=None, second=3),
        entry("own pid", SYSLOG_PID="7", second=4),
        entry("syslog pid", pid=None, SYSLOG_PID="7", second=4),
        entry("first\nsecond\nthird\n", second=5),
        entry("src time", second=6, _SOURCE_REALTIME_TIMESTAMP=str(T0 * 1_000_000)),
    ]
    write_journal(tmp_path / "j", entries)
    env = {**os.environ, "TZ": "UTC"}
    common = ["journalctl", f"--directory={tmp_path / 'j'}", "--no-pager", "--all"]
    short = subprocess.run(
        [*common, "-o", "short"], capture_output=True, text=True, check=True, timeout=20, env=env
    ).stdout.splitlines()
    as_json = subprocess.run(
        [*common, "-o", "json"], capture_output=True, text=True, check=True, timeout=20, env=env
    ).stdout.splitlines()
    ours = []
    for line in as_json:
        formatted = format_entry(json.loads(line), read_at=0)
        assert formatted is not None
        ours += formatted[0]
    assert ours == short


@needs_journal_tools
async def test_backlog_severities_and_following(tmp_path, start_server, connect_peer, utc):  # type: ignore[no-untyped-def]
    """At the first start the last BACKLOG entries are the source's backlog (with their
    severities, multi-line and non-UTF-8 messages handled); entries appended to the same file and
    written to a second file in the directory then arrive live."""
    journal = tmp_path / "journal"
    old = numbered(0, 5)
    old += [entry(b"caf\xe9", second=10, priority=3), entry("two\nlines", second=11, priority=2)]
    write_journal(journal, old)
    server = await start_server(
        {"box": JournalSource("")},
        backlog=4,
        state_dir=tmp_path / "state",
        journal_directory=journal,
    )
    assert server.hub is not None
    await wait_for(lambda: server.hub.sources["box"].seq == 5, what="the backlog")  # type: ignore[union-attr]
    peer = await connect_peer(server)
    assert peer.hello["sources"] == [{"name": "box", "state": "following", "seq": 5}]
    await peer.subscribe("box", backlog=100)
    # Four entries make five lines; the ring keeps the last four lines.
    backlog = await peer.lines(4, source="box")
    assert [seq for _, seq, _ in backlog] == [2, 3, 4, 5]
    assert [text for _, _, text in backlog] == [
        "Dec 04 08:13:24 box sshd[42]: m4",
        "Dec 04 08:13:30 box sshd[42]: caf\ufffd",
        "Dec 04 08:13:31 box sshd[42]: two",
        "                              lines",
    ]
    assert severities(server, "box")[-4:] == [6, 3, 2, 2]
    write_journal(journal, numbered(20, 3))
    assert texts(await peer.lines(3, source="box")) == ["m20", "m21", "m22"]
    write_journal(journal, numbered(30, 2), file="b.journal")
    assert texts(await peer.lines(2, source="box")) == ["m30", "m31"]
    assert severities(server, "box")[-2:] == [6, 6]


@needs_journal_tools
async def test_unit_and_priority_filters(tmp_path, start_server, connect_peer):  # type: ignore[no-untyped-def]
    """A unit source gets only that unit's entries; a priority source only those as severe or
    more; `journal:` gets all."""
    journal = tmp_path / "journal"
    write_journal(
        journal,
        [
            entry("ssh info", unit="ssh.service", priority=6),
            entry("cron err", unit="cron.service", priority=3, second=1),
            entry("ssh warning", unit="ssh.service", priority=4, second=2),
            entry("cron debug", unit="cron.service", priority=7, second=3),
        ],
    )
    server = await start_server(
        {
            "ssh": JournalSource("ssh.service"),
            "bad": JournalSource("", "warning"),
            "sshbad": JournalSource("ssh.service", "warning"),
            "box": JournalSource(""),
        },
        state_dir=tmp_path / "state",
        journal_directory=journal,
    )
    counts = {"ssh": 2, "bad": 2, "sshbad": 1, "box": 4}
    await wait_for(
        lambda: {name: source.seq for name, source in server.hub.sources.items()} == counts,
        what="every source's lines",
    )
    peer = await connect_peer(server)
    await peer.subscribe("all", backlog=100)
    lines = await peer.lines(sum(counts.values()))
    by_source: dict[str, list[str]] = {}
    for source, _, text in lines:
        by_source.setdefault(source, []).append(text.rsplit(": ", 1)[1])
    assert by_source == {
        "ssh": ["ssh info", "ssh warning"],
        "bad": ["cron err", "ssh warning"],
        "sshbad": ["ssh warning"],
        "box": ["ssh info", "cron err", "ssh warning", "cron debug"],
    }
    assert severities(server, "bad") == [3, 4]
    assert [m for m in await peer.quiet(0.5) if m["type"].startswith("raw_log")] == []


@needs_journal_tools
async def test_restart_resumes_from_the_cursor(tmp_path, start_server, connect_peer):  # type: ignore[no-untyped-def]
    """A restarted server sends exactly the entries written while it was down (more than the ten
    `journalctl -f` would show by itself), none it sent before, then follows on."""
    journal, state = tmp_path / "journal", tmp_path / "state"
    write_journal(journal, numbered(0, 3))
    options = {"state_dir": state, "journal_directory": journal, "backlog": 100}
    first = await start_server({"box": JournalSource("")}, **options)
    await wait_for(lambda: first.hub.sources["box"].seq == 3, what="three lines")
    write_journal(journal, numbered(3, 2))
    await wait_for(lambda: first.hub.sources["box"].seq == 5, what="two more")
    await first.stop()
    assert is_cursor((state / "journal-box.cursor").read_text())
    write_journal(journal, numbered(5, 15))  # while no server runs
    second = await start_server({"box": JournalSource("")}, **options)
    peer = await connect_peer(second)
    await peer.subscribe("box", backlog=100)
    assert texts(await peer.lines(15)) == [f"m{i}" for i in range(5, 20)]
    write_journal(journal, numbered(20, 1))
    assert texts(await peer.lines(1)) == ["m20"]
    assert [m for m in await peer.quiet(0.5) if m["type"].startswith("raw_log")] == []
    assert second.hub.sources["box"].seq == 16


async def test_missing_journalctl(tmp_path, start_server, connect_peer, monkeypatch, caplog):  # type: ignore[no-untyped-def]
    """Without journalctl the source is `missing`, with a log line that says it is not installed."""
    caplog.set_level(logging.INFO, logger="logtv")
    monkeypatch.setenv("LOGTV_JOURNALCTL", str(tmp_path / "no" / "journalctl"))
    server = await start_server({"box": JournalSource("")}, state_dir=tmp_path / "state")
    await wait_for(lambda: "cannot start" in caplog.text, what="the failed start")
    peer = await connect_peer(server)
    assert peer.hello["sources"] == [{"name": "box", "state": "missing", "seq": 0}]
    assert "journalctl is not installed" in caplog.text
    assert not (tmp_path / "state").exists()


@needs_journal_tools
async def test_serve_flags_and_config_file(tmp_path, serve_process, connect_peer):  # type: ignore[no-untyped-def]
    """`logtv serve` takes journal sources from --source and the config file, and --state-dir
    and --journal-directory from flags, and serves the journal's lines."""
    journal = tmp_path / "journal"
    write_journal(journal, [entry("from the journal", priority=3)])
    config = tmp_path / "logtv.toml"
    config.write_text('[sources.errors]\njournal = ""\npriority = "err"\n')
    server = serve_process(
        "--config", str(config),
        "--source", "ssh=journal:ssh.service",
        "--state-dir", str(tmp_path / "state"),
        "--journal-directory", str(journal),
        env={"TZ": "UTC"},
    )  # fmt: skip
    peer = await connect_peer(await asyncio.to_thread(server.wait_listening))
    assert [source["name"] for source in peer.hello["sources"]] == ["errors", "ssh"]
    await peer.subscribe("all", backlog=10)
    lines = await peer.lines(2)
    assert sorted(source for source, _, _ in lines) == ["errors", "ssh"]
    assert {text for _, _, text in lines} == {"Dec 04 08:13:20 box sshd[42]: from the journal"}
    cursors = lambda: sorted(path.name for path in (tmp_path / "state").glob("*.cursor"))  # noqa: E731
    await wait_for(lambda: len(cursors()) == 2, what="two cursor files")
    assert cursors() == ["journal-errors.cursor", "journal-ssh.cursor"]


@needs_journal_tools
async def test_journalctl_restart_resumes_in_memory(tmp_path, start_server, connect_peer):  # type: ignore[no-untyped-def]
    """When journalctl dies it is started again after the last entry handed over: the subscriber
    sees `vanished`, `appeared`, then only the new entries, with no seq skipped or repeated."""
    journal = tmp_path / "journal"
    write_journal(journal, numbered(0, 2))
    server = await start_server(
        {"box": JournalSource("")}, state_dir=tmp_path / "state", journal_directory=journal
    )
    await wait_for(lambda: server.hub.sources["box"].seq == 2, what="two lines")
    peer = await connect_peer(server)
    await peer.subscribe("box")
    follower = server.tailer.commands["box"]
    assert isinstance(follower, JournalFollower) and follower.pid is not None
    os.kill(follower.pid, 9)
    events = []
    while len(events) < 2:
        message = await peer.expect("source", timeout=10)
        events.append((message["event"], message["state"]))
    assert events == [("vanished", "missing"), ("appeared", "following")]
    write_journal(journal, numbered(2, 2))
    lines = await peer.lines(2)
    assert [(seq, text.rsplit(": ", 1)[1]) for _, seq, text in lines] == [(3, "m2"), (4, "m3")]
    assert follower.starts == 2


@needs_journal_tools
async def test_unwritable_state_dir_is_a_warning(tmp_path, start_server, connect_peer, caplog):  # type: ignore[no-untyped-def]
    """A state dir that cannot be made is logged once as a warning; the lines still flow."""
    caplog.set_level(logging.WARNING, logger="logtv")
    journal = tmp_path / "journal"
    write_journal(journal, numbered(0, 2))
    (tmp_path / "file").write_text("not a directory")
    server = await start_server(
        {"box": JournalSource("")}, state_dir=tmp_path / "file" / "state", journal_directory=journal
    )
    await wait_for(lambda: server.hub.sources["box"].seq == 2, what="two lines")
    write_journal(journal, numbered(2, 2))
    await wait_for(lambda: server.hub.sources["box"].seq == 4, what="two more")
    assert caplog.text.count("cannot keep the journal cursor") == 1


async def test_half_an_entry_waits_for_its_newline(
    tmp_path, start_server, connect_peer, monkeypatch
):  # type: ignore[no-untyped-def]
    """An entry whose JSON comes in two writes a while apart is still one entry, not two lines."""
    program = tmp_path / "journalctl"
    program.write_text(
        f"#!{sys.executable}\n"
        "import sys, time\n"
        'sys.stdout.write(\'{"MESSAGE": "hel\'); sys.stdout.flush(); time.sleep(1.5)\n'
        'sys.stdout.write(\'lo", "PRIORITY": "5"}\\n\'); sys.stdout.flush(); time.sleep(60)\n'
    )
    program.chmod(0o755)
    monkeypatch.setenv("LOGTV_JOURNALCTL", str(program))
    server = await start_server({"box": JournalSource("")}, state_dir=tmp_path / "state")
    peer = await connect_peer(server)
    await peer.subscribe("box")
    lines = await peer.lines(1)
    assert lines[0][2].endswith(" unknown: hello")
    assert severities(server, "box") == [5]
