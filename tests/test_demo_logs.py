"""The demo log generator: realistic formats, documentation-only addresses, determinism,
rotation/truncation on schedule, no lines lost, the brute-force burst, and a prompt stop.

Everything runs against real files under ``tmp_path``; a fake clock moves in step with the
simulated time so that timestamps can be checked exactly.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from logtv.demo_logs import HOST, SOURCE_FILES, DemoLogs, make_line

START = datetime(2026, 12, 4, 6, 0, 1, tzinfo=UTC)  # a single-digit day: "Dec  4"
DOCUMENTATION = [
    ipaddress.ip_network(net)
    for net in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
]

SYSLOG = re.compile(
    r"^(?P<stamp>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<host>\S+) "
    r"(?P<program>[\w./-]+)(\[\d+\])?: (?P<message>.+)$"
)
KERNEL = re.compile(r"^\[ *(?P<uptime>\d+\.\d{6})\] (?P<text>\S.*)$")
UFW = re.compile(
    r"^\[UFW (?P<action>BLOCK|ALLOW)\] IN=eth0 OUT= MAC=(?:[0-9a-f]{2}:){13}[0-9a-f]{2} "
    r"SRC=(?P<src>\S+) DST=(?P<dst>\S+) LEN=\d+ "
    r"(?:TOS=0x00 PREC=0x00 TTL=\d+ ID=\d+(?: DF)?|TC=0 HOPLIMIT=\d+ FLOWLBL=\d+) "
    r"PROTO=(?:TCP SPT=\d+ DPT=\d+ WINDOW=\d+ RES=0x00 SYN URGP=0|UDP SPT=\d+ DPT=\d+ LEN=\d+)$"
)
NGINX = re.compile(
    r"^(?P<ip>\S+) - (?P<user>\S+) \[(?P<stamp>\d\d/[A-Z][a-z]{2}/\d{4}(?::\d\d){3} [+-]\d{4})\] "
    r'"(?P<method>[A-Z]+) (?P<path>/\S*) HTTP/1\.[01]" (?P<status>[1-5]\d\d) (?P<bytes>\d+) '
    r'"(?P<referer>[^"]*)" "(?P<agent>[^"]+)"$'
)
PROGRAMS = {  # the programs each syslog-style file may name
    "auth": set("sshd sudo CRON systemd-logind".split()),
    "syslog": set(
        "CRON systemd systemd-networkd systemd-timesyncd systemd-resolved rsyslogd dbus-daemon"
        " snapd postfix/qmgr postfix/smtpd".split()
    ),
}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class Follower:
    """Reads the files after every step like a tailer would, keeping every line it sees.

    It checks, at every step, that files only grow by whole lines, that a rotated file went to
    ``.1`` with everything read so far as its prefix, and that the lines it finds add up to what
    ``advance()`` says it wrote (fewer only in a step where a truncation threw some away).
    """

    def __init__(self, directory: Path, *, seed: int, rate: float = 1.0) -> None:
        self.clock = Clock()
        self.demo = DemoLogs(directory, seed=seed, rate=rate, clock=self.clock)
        self.lines: dict[str, list[str]] = {name: [] for name in SOURCE_FILES}
        self.state = {name: (0, "") for name in SOURCE_FILES}
        self.rotations = self.truncations = self.written = 0
        self.demo.create_files()
        self.history = self._read()[1]

    def step(self, seconds: float) -> None:
        self.clock.now += timedelta(seconds=seconds)
        written = self.demo.advance(seconds)
        truncated, seen = self._read()
        assert seen <= written if truncated else seen == written
        self.written += written

    def run(self, seconds: float, step: float = 5.0) -> Follower:
        for _ in range(round(seconds / step)):
            self.step(step)
        return self

    def _read(self) -> tuple[bool, int]:
        truncated, seen = False, 0
        for name, path in self.demo.paths.items():
            old_inode, old = self.state[name]
            inode, new = path.stat().st_ino, path.read_text(encoding="utf-8")
            assert new == "" or new.endswith("\n"), f"{path.name} ends in a partial line"
            if old_inode and inode != old_inode:  # rotated by rename, a new file created
                rotated = path.with_name(path.name + ".1")
                assert rotated.stat().st_ino == old_inode
                before = rotated.read_text(encoding="utf-8")
                assert before.startswith(old)
                chunks = [before[len(old) :], new]
                self.rotations += 1
            elif new.startswith(old):
                chunks = [new[len(old) :]]
            else:  # truncated in place (same inode), then appended to
                chunks, truncated = [new], True
                self.truncations += 1
            for chunk in chunks:
                self.lines[name] += chunk.splitlines()
                seen += chunk.count("\n")
            self.state[name] = (inode, new)
        return truncated, seen


@pytest.fixture(scope="module")
def long_run(tmp_path_factory: pytest.TempPathFactory) -> Follower:
    """2,000 simulated seconds of every source, followed step by step."""
    return Follower(tmp_path_factory.mktemp("demo"), seed=2026).run(2000)


def _syslog_time(stamp: str) -> datetime:
    return datetime.strptime(f"{START.year} {stamp}", "%Y %b %d %H:%M:%S").replace(tzinfo=UTC)


def test_every_line_matches_the_format_it_imitates(long_run: Follower) -> None:
    """Every line of every source parses with a strict regex of its real-world format."""
    earliest, latest = START - timedelta(minutes=5), long_run.clock.now
    for source, lines in long_run.lines.items():
        assert len(lines) > 50, source
        last_time, last_uptime = earliest, 0.0
        for line in lines:
            if source == "nginx":
                match = NGINX.match(line)
                assert match, line
                when = datetime.strptime(match["stamp"], "%d/%b/%Y:%H:%M:%S %z")
            else:
                match = SYSLOG.match(line)
                assert match and match["host"] == HOST, line
                when = _syslog_time(match["stamp"])
                if source in ("kern", "ufw"):
                    kernel = KERNEL.match(match["message"])
                    assert match["program"] == "kernel" and kernel, line
                    assert source == "kern" or UFW.match(kernel["text"]), line
                    assert float(kernel["uptime"]) >= last_uptime, line
                    last_uptime = float(kernel["uptime"])
                else:
                    assert match["program"] in PROGRAMS[source], line
            assert last_time <= when <= latest, line  # timestamps from the clock, in order
            last_time = when


def test_every_address_is_from_the_documentation_ranges(long_run: Follower) -> None:
    """Anything shaped like an IP address parses and lies in 192.0.2/24, 198.51.100/24,
    203.0.113/24 or 2001:db8::/32; both families occur."""
    families: Counter[int] = Counter()
    for line in (line for lines in long_run.lines.values() for line in lines):
        # an address never follows "/": that is a version (Chrome/131.0.0.0)
        v4 = re.findall(r"(?<![\d./])\d+(?:\.\d+){3}(?![\d.])", line)
        v6 = [token for token in re.findall(r"[0-9A-Fa-f:]+", line) if "::" in token]
        for token in v4 + v6:
            address = ipaddress.ip_address(token)  # raises if malformed
            assert any(address in net for net in DOCUMENTATION), line
            families[address.version] += 1
    assert families[4] > 1000 and families[6] > 20


def test_the_mix_is_realistic(long_run: Follower) -> None:
    """ufw is mostly BLOCK with some ALLOW, UDP and IPv6; nginx mostly 2xx/3xx, some 404 and
    the odd 5xx; auth has publickey and password logins, sudo and PAM sessions."""
    ufw = [
        UFW.match(KERNEL.match(SYSLOG.match(x)["message"])["text"]) for x in long_run.lines["ufw"]
    ]
    actions = Counter(m["action"] for m in ufw)
    assert actions["BLOCK"] > 0.6 * len(ufw) and actions["ALLOW"] > 0
    assert any("PROTO=UDP" in m[0] for m in ufw) and any(":" in m["src"] for m in ufw)
    statuses = Counter(NGINX.match(line)["status"][0] for line in long_run.lines["nginx"])
    assert statuses["2"] + statuses["3"] > 0.8 * statuses.total()
    assert statuses["4"] > 0 and 0 < statuses["5"] < 0.05 * statuses.total()
    auth = "\n".join(long_run.lines["auth"])
    needles = ("Accepted publickey for ", "Accepted password for ", "COMMAND=/usr/")
    needles += ("pam_unix(sudo:session): session opened for user root(uid=0) by ",)
    needles += ("pam_unix(cron:session): session opened", "session closed for user")
    for needle in needles:
        assert needle in auth
    rate = long_run.written / 2000
    assert 1.5 < rate < 8, f"{rate:.1f} lines/s at rate 1"


def test_rotation_by_rename_and_exactly_one_truncation(long_run: Follower) -> None:
    """Files get rotated to .1 (a new inode at the old path) and exactly one is truncated in
    place; the follower found every line advance() reported, except those the truncation took."""
    kinds = Counter(kind for _, kind, _ in long_run.demo.maintenance)
    assert kinds["rotate"] >= 3 and kinds["truncate"] == 1
    assert long_run.rotations == kinds["rotate"] and long_run.truncations == 1
    for _, kind, source in long_run.demo.maintenance:
        path = long_run.demo.paths[source]
        if kind == "rotate":
            rotated = path.with_name(path.name + ".1")
            assert rotated.exists() and rotated.stat().st_ino != path.stat().st_ino


def test_no_line_is_lost_when_nothing_is_truncated(tmp_path: Path) -> None:
    """Until the truncation, every line ever written (history included) is in a file or a .1."""
    follower = Follower(tmp_path, seed=5).run(230, step=1.0)
    rotated = Counter(source for _, kind, source in follower.demo.maintenance if kind == "rotate")
    assert "truncate" not in {kind for _, kind, _ in follower.demo.maintenance}
    assert rotated and max(rotated.values()) == 1  # so no .1 has been replaced yet
    on_disk = sum(len(path.read_text(encoding="utf-8").splitlines()) for path in tmp_path.iterdir())
    assert on_disk == follower.history + follower.written == sum(map(len, follower.lines.values()))


def _contents(directory: Path) -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(directory.iterdir())}


def test_same_seed_and_clock_give_identical_files(tmp_path: Path) -> None:
    """Two runs with one seed and one clock sequence write byte-identical files; another seed
    does not."""
    for run, seed in (("a", 7), ("b", 7), ("c", 8)):
        Follower(tmp_path / run, seed=seed).run(400, step=0.5)
    first, second, other = (_contents(tmp_path / run) for run in "abc")
    assert first == second and len(first) > len(SOURCE_FILES)  # some .1 files too
    assert all(first[name] != other.get(name) for name in SOURCE_FILES.values())


def test_make_line_is_pure_and_deterministic() -> None:
    """make_line() gives the same line for the same seed, of the right format, without files."""
    for source in SOURCE_FILES:
        lines = [make_line(source, random.Random(seed), START) for seed in (1, 1, 2)]
        assert lines[0] == lines[1]
        assert (NGINX if source == "nginx" else SYSLOG).match(lines[0]), lines[0]
        assert ("04/Dec/2026:06:00:01" if source == "nginx" else "Dec  4 06:00:01") in lines[0]


def test_another_host_name_is_in_every_syslog_style_line(tmp_path: Path) -> None:
    """DemoLogs(host=…) writes that box's name where syslog puts the host (a fleet's demo)."""
    demo = DemoLogs(tmp_path, seed=3, rate=4.0, host="db1", clock=Clock())
    demo.create_files()
    demo.advance(60)
    for name, file in SOURCE_FILES.items():
        if name == "nginx":
            continue
        lines = (tmp_path / file).read_text().splitlines()
        assert lines and all(SYSLOG.match(line)["host"] == "db1" for line in lines), name  # type: ignore[index]


def test_a_brute_force_burst_comes_from_one_address(tmp_path: Path) -> None:
    """Within ten simulated minutes one address tries many invalid users within two minutes,
    each attempt logged as Invalid user, Failed password and Connection closed [preauth]."""
    follower = Follower(tmp_path, seed=11).run(600)
    attempts: dict[str, list[datetime]] = defaultdict(list)
    for line in follower.lines["auth"]:
        if match := re.search(r"Invalid user (\S+) from (\S+) port (\d+)$", line):
            attempts[match[2]].append(_syslog_time(SYSLOG.match(line)["stamp"]))

    def busiest_two_minutes(times: list[datetime]) -> int:
        return max(sum(t <= u < t + timedelta(minutes=2) for u in times) for t in times)

    ip, times = max(attempts.items(), key=lambda item: busiest_two_minutes(item[1]))
    assert busiest_two_minutes(times) >= 15
    auth = "\n".join(follower.lines["auth"])
    peer = rf"{re.escape(ip)} port \d+"
    failed = re.findall(rf"Failed password for invalid user \S+ from {peer} ssh2", auth)
    closed = re.findall(rf"Connection closed by invalid user \S+ {peer} \[preauth\]", auth)
    assert min(len(failed), len(closed)) >= len(times) - 3  # the last ones may still be due
    assert any(f"SRC={ip} " in line for line in follower.lines["ufw"])  # then the firewall drops it


async def test_run_writes_live_lines_and_stops_promptly(tmp_path: Path) -> None:
    """run() keeps writing lines stamped with the real time and returns soon after stop is set."""
    demo, stop = DemoLogs(tmp_path, seed=3, rate=20), asyncio.Event()
    task = asyncio.create_task(demo.run(stop, tick=0.05))
    await asyncio.sleep(0.3)
    before = sum(len(p.read_text().splitlines()) for p in demo.paths.values())
    await asyncio.sleep(0.7)
    stop.set()
    await asyncio.wait_for(task, timeout=0.5)
    assert sum(len(p.read_text().splitlines()) for p in demo.paths.values()) > before
    stamp = NGINX.match(demo.paths["nginx"].read_text().splitlines()[-1])["stamp"]
    when = datetime.strptime(stamp, "%d/%b/%Y:%H:%M:%S %z")
    assert abs(datetime.now(UTC) - when) < timedelta(minutes=1)


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    """A rate that is not positive, or going back in time, is a ValueError."""
    with pytest.raises(ValueError):
        DemoLogs(tmp_path, rate=0)
    with pytest.raises(ValueError):
        DemoLogs(tmp_path, seed=1).advance(-1)
