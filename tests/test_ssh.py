"""The SSH transport against a real sshd on loopback, started by the test with its own keys.

The client side never reads ``~/.ssh``: ``LOGTV_SSH_COMMAND`` points ssh at a generated key and a
known_hosts file holding the test sshd's host key.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from logtv.client.app import WatchApp
from logtv.client.connection import Disconnected, LogClient
from logtv.client.ssh import SSH_COMMAND_ENV, SshTarget, parse_ssh_url, ssh_argv
from tests.conftest import write_lines
from tests.test_cli import assert_one_error_line, read_stdout_lines, run_logtv
from tests.test_watch import shown_texts, until

SSHD = Path("/usr/sbin/sshd")

needs_sshd = pytest.mark.skipif(
    not SSHD.exists() or shutil.which("ssh") is None, reason="needs openssh-server and ssh"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def keygen(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )
    return path


@dataclass
class Sshd:
    """A running test sshd, and the ssh command that trusts it and logs in with our key."""

    port: int
    user: str
    ssh_command: str
    wrong_key_command: str
    process: subprocess.Popen[str]

    def url(self, remote_port: int) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}?port={remote_port}"


@pytest.fixture
def sshd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sshd]:
    """A real sshd on 127.0.0.1 and a free port; LOGTV_SSH_COMMAND set to reach it."""
    yield from run_sshd(tmp_path, monkeypatch)


def run_sshd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sshd]:
    """Start the sshd, yield it, stop it (the body of the ``sshd`` fixtures)."""
    if not SSHD.exists() or shutil.which("ssh") is None:
        pytest.skip("needs openssh-server and ssh")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege separation directory
    keys = tmp_path / "ssh"
    keys.mkdir()
    host_key = keygen(keys / "host_key")
    client_key = keygen(keys / "client_key")
    other_key = keygen(keys / "other_key")
    (keys / "authorized_keys").write_text((keys / "client_key.pub").read_text())
    port = free_port()
    config = keys / "sshd_config"
    config.write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {host_key}\n"
        f"AuthorizedKeysFile {keys / 'authorized_keys'}\n"
        "StrictModes no\n"
        "UsePAM no\n"
        "PidFile none\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "AllowTcpForwarding yes\n"
    )
    known_hosts = keys / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {(keys / 'host_key.pub').read_text()}")
    process = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready = threading.Event()
    said: list[str] = []

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            said.append(line)
            if "Server listening" in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    base = f"ssh -F /dev/null -o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes"
    try:
        if not ready.wait(10):
            raise AssertionError("sshd did not start:\n" + "".join(said))
        command = f"{base} -i {client_key}"
        monkeypatch.setenv(SSH_COMMAND_ENV, command)
        yield Sshd(port, getpass.getuser(), command, f"{base} -i {other_key}", process)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        reader.join(5)


def ssh_children(pid: int) -> list[int]:
    """The ssh processes whose parent is ``pid`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid and comm == "ssh":
            found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Is the process there and not a zombie (whose reaping is its parent's business)?"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def tail_over_ssh(url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "logtv", "tail", url, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )


def read_stderr_until(process: subprocess.Popen[str], word: str, timeout: float = 20) -> str:
    """stderr lines until one contains ``word`` (a reader thread: the wait stays bounded)."""
    assert process.stderr is not None
    seen: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            seen.append(line)
            if word in line:
                found.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    found.wait(timeout)
    if not found.is_set():
        process.kill()
    reader.join(5)
    assert found.is_set(), "".join(seen)
    return "".join(seen)


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


# -- the address and the command line ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("ssh://box", SshTarget("box")),
        ("ssh://admin@box", SshTarget("box", "admin")),
        ("ssh://admin@box:2222?port=9000", SshTarget("box", "admin", 2222, 9000)),
        ("ssh://[::1]:22", SshTarget("::1", None, 22)),
        ("ssh://box/", SshTarget("box")),
    ],
)
def test_parse_ssh_url(url: str, target: SshTarget) -> None:
    """`ssh://[user@]box[:sshport][?port=N]` gives the box, user, ssh port and remote port."""
    assert parse_ssh_url(url) == target


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ssh://", "no host"),
        ("ssh://box/logs", "no path"),
        ("ssh://a:pw@box", "no password"),
        ("ssh://box:x", "bad ssh port"),
        ("ssh://box?port=0", "bad remote port"),
        ("ssh://box?port=abc", "bad remote port"),
        ("ssh://box?tls=1", "unknown option"),
        ("ssh://-oProxyCommand=x", "bad name"),
        ("ssh://a;b@box", "bad name"),
    ],
)
def test_bad_ssh_urls_are_refused(url: str, words: str) -> None:
    """A malformed or option-smuggling ssh:// address is a ValueError naming the problem."""
    with pytest.raises(ValueError, match=words):
        parse_ssh_url(url)


def test_ssh_argv_uses_batch_mode_and_the_override() -> None:
    """ssh gets BatchMode, ExitOnForwardFailure and -W to the remote loopback; the env overrides."""
    target = SshTarget("box", "admin", 2222, 9000)
    assert ssh_argv(target, {}) == [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "ExitOnForwardFailure=yes",
        "-p",
        "2222",
        "-l",
        "admin",
        "-W",
        "127.0.0.1:9000",
        "--",
        "box",
    ]
    argv = ssh_argv(SshTarget("box"), {SSH_COMMAND_ENV: "/opt/ssh -i 'my key' -v"})
    assert argv[:4] == ["/opt/ssh", "-i", "my key", "-v"]
    assert argv[-4:] == ["-W", "127.0.0.1:8765", "--", "box"]
    with pytest.raises(ValueError, match="cannot split"):
        ssh_argv(SshTarget("box"), {SSH_COMMAND_ENV: "ssh -i 'unclosed"})


@pytest.mark.parametrize("command", ["watch", "tail"])
def test_bad_ssh_address_or_command_is_one_error_line(command: str) -> None:
    """A bad ssh:// address or an unsplittable $LOGTV_SSH_COMMAND: one error line, exit 2."""
    result = run_logtv(command, "ssh://box?port=x")
    assert_one_error_line(result, "bad remote port 'x'")
    process = subprocess.run(
        [sys.executable, "-m", "logtv", command, "ssh://box"],
        capture_output=True,
        text=True,
        timeout=20,
        stdin=subprocess.DEVNULL,
        env={**os.environ, SSH_COMMAND_ENV: "ssh -o 'unclosed"},
    )
    assert_one_error_line(process, f"cannot split ${SSH_COMMAND_ENV}")


async def test_missing_ssh_program_is_the_connection_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A $LOGTV_SSH_COMMAND program that does not exist is a Disconnected saying so, no crash."""
    monkeypatch.setenv(SSH_COMMAND_ENV, str(tmp_path / "no-such-ssh"))
    client = LogClient("ssh://box", reconnect=False)
    events = [event async for event in client.events()]
    assert len(events) == 1 and isinstance(events[0], Disconnected)
    assert events[0].error == f"cannot run {tmp_path / 'no-such-ssh'}: No such file or directory"
    assert events[0].retry_in is None


# -- against a real sshd ------------------------------------------------------------------------


@needs_sshd
def test_tail_over_ssh_receives_lines(tmp_path: Path, serve_process, sshd: Sshd) -> None:
    """`logtv tail ssh://…` (a subprocess) prints lines of a real `logtv serve` through ssh."""
    log = tmp_path / "auth.log"
    write_lines(log, ["before"])
    server = serve_process("--source", f"auth={log}")
    server.wait_listening()
    tail = tail_over_ssh(sshd.url(server.port), "--backlog", "1")
    try:
        assert read_stdout_lines(tail, 1, timeout=20) == ["auth | before"]
        write_lines(log, ["through the tunnel"])
        assert read_stdout_lines(tail, 1) == ["auth | through the tunnel"]
        assert len(ssh_children(tail.pid)) == 1
    finally:
        stop(tail)
    assert tail.returncode == 0
    assert ssh_children(tail.pid) == []


@needs_sshd
def test_token_goes_through_the_tunnel(tmp_path: Path, serve_process, sshd: Sshd) -> None:
    """A server that wants a token: --token-file works over ssh; without it, HTTP 401 and exit."""
    log = tmp_path / "auth.log"
    write_lines(log, ["secret line"])
    token = tmp_path / "token"
    token.write_text("a-long-enough-test-token-123\n")
    server = serve_process("--source", f"auth={log}", "--token-file", str(token))
    server.wait_listening()
    tail = tail_over_ssh(sshd.url(server.port), "--backlog", "1", "--token-file", str(token))
    try:
        assert read_stdout_lines(tail, 1, timeout=20) == ["auth | secret line"]
    finally:
        stop(tail)
    refused = tail_over_ssh(sshd.url(server.port))
    try:
        _, err = refused.communicate(timeout=30)
    finally:
        stop(refused)
    assert refused.returncode == 1 and "HTTP 401" in err


@needs_sshd
def test_ctrl_c_ends_tail_and_its_ssh(tmp_path: Path, serve_process, sshd: Sshd) -> None:
    """SIGINT (Ctrl-C) to a tail over ssh exits 0 and leaves no ssh process behind."""
    log = tmp_path / "auth.log"
    write_lines(log, ["x"])
    server = serve_process("--source", f"auth={log}")
    server.wait_listening()
    tail = tail_over_ssh(sshd.url(server.port), "--backlog", "1")
    try:
        assert read_stdout_lines(tail, 1, timeout=20) == ["auth | x"]
        children = ssh_children(tail.pid)
        assert len(children) == 1
        tail.send_signal(signal.SIGINT)
        assert tail.wait(10) == 0
    finally:
        stop(tail)
    assert not any(running(pid) for pid in children)


@needs_sshd
def test_killed_tail_leaves_no_ssh(tmp_path: Path, serve_process, sshd: Sshd) -> None:
    """SIGKILL to tail (no cleanup at all): its ssh reads end-of-file and exits by itself."""
    log = tmp_path / "auth.log"
    write_lines(log, ["x"])
    server = serve_process("--source", f"auth={log}")
    server.wait_listening()
    tail = tail_over_ssh(sshd.url(server.port), "--backlog", "1")
    try:
        assert read_stdout_lines(tail, 1, timeout=20) == ["auth | x"]
        (child,) = ssh_children(tail.pid)
        tail.kill()
        tail.wait(5)
        deadline = time.monotonic() + 10
        while running(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not running(child)
    finally:
        stop(tail)


@needs_sshd
def test_wrong_key_shows_ssh_permission_denied(tmp_path: Path, serve_process, sshd: Sshd) -> None:
    """With a key sshd does not accept, ssh's own "Permission denied" reaches stderr; no hang."""
    log = tmp_path / "auth.log"
    log.write_text("")
    server = serve_process("--source", f"auth={log}")
    server.wait_listening()
    tail = tail_over_ssh(sshd.url(server.port), env={SSH_COMMAND_ENV: sshd.wrong_key_command})
    try:
        said = read_stderr_until(tail, "Permission denied")
    finally:
        stop(tail)
    line = next(line for line in said.splitlines() if "Permission denied" in line)
    assert line.startswith("logtv: ssh: ") and "(publickey)" in line
    assert "BatchMode" in line and "retrying in" in line
    assert ssh_children(tail.pid) == []


@needs_sshd
def test_unknown_host_key_is_ssh_host_key_verification_failed(tmp_path: Path, sshd: Sshd) -> None:
    """A sshd whose host key is not in known_hosts: ssh's own verification failure is shown."""
    command = sshd.ssh_command.replace("UserKnownHostsFile=", f"UserKnownHostsFile={tmp_path}/x")
    tail = tail_over_ssh(sshd.url(free_port()), env={SSH_COMMAND_ENV: command})
    try:
        said = read_stderr_until(tail, "retrying in")
    finally:
        stop(tail)
    assert said.startswith("logtv: ssh: ") and "Host key verification failed." in said
    assert "plain `ssh 127.0.0.1`" in said


@needs_sshd
def test_nothing_listening_remotely_says_so(sshd: Sshd) -> None:
    """A remote port with no `logtv serve` gives ssh's "open failed" and a hint, and retries."""
    tail = tail_over_ssh(sshd.url(free_port()))
    try:
        said = read_stderr_until(tail, "retrying in")
    finally:
        stop(tail)
    assert "open failed" in said and "is `logtv serve` listening on 127.0.0.1:" in said


@needs_sshd
def test_tail_over_ssh_reconnects_through_a_new_ssh(
    tmp_path: Path, serve_process, sshd: Sshd
) -> None:
    """The server dying and coming back on its port: tail reconnects, through a new ssh process."""
    log = tmp_path / "auth.log"
    log.write_text("")
    first = serve_process("--source", f"auth={log}")
    first.wait_listening()
    port = first.port
    tail = tail_over_ssh(sshd.url(port), "--backlog", "0")
    try:
        read_stderr_until(tail, "connected to")
        before = ssh_children(tail.pid)
        assert len(before) == 1
        write_lines(log, ["one"])
        assert read_stdout_lines(tail, 1, timeout=20) == ["auth | one"]
        first.stop()
        second = serve_process("--port", str(port), "--source", f"auth={log}")
        # serve_process puts --port 0 first; the later --port wins.
        second.wait_listening()
        read_stderr_until(tail, "connected to", timeout=30)
        after = ssh_children(tail.pid)
        assert len(after) == 1 and after != before
        write_lines(log, ["two"])
        assert read_stdout_lines(tail, 1, timeout=20) == ["auth | two"]
    finally:
        stop(tail)
    assert ssh_children(tail.pid) == []


@needs_sshd
async def test_watch_over_ssh_shows_lines(tmp_path: Path, start_server, sshd: Sshd) -> None:
    """`logtv watch ssh://…` (the app, driven by Pilot) shows the remote server's lines."""
    log = tmp_path / "auth.log"
    log.write_text("")
    server = await start_server({"auth": log}, name="box1")
    client = LogClient(sshd.url(server.port), sources=None)
    app = WatchApp([client])
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.rows.get("auth") is not None, timeout=20, what="hello")
        await until(pilot, lambda: app.rows["auth"].acked, timeout=10, what="subscribed")
        assert app.host == "box1" and app.connection_state == "live"
        write_lines(log, ["seen over ssh"])
        await until(pilot, lambda: "seen over ssh" in shown_texts(app), what="the line")
        assert len(ssh_children(os.getpid())) == 1
    deadline = time.monotonic() + 10
    while ssh_children(os.getpid()) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert ssh_children(os.getpid()) == []


@needs_sshd
async def test_watch_over_ssh_shows_the_ssh_error(tmp_path: Path, sshd: Sshd, monkeypatch) -> None:
    """With a refused key, the watch status shows ssh's own Permission denied for that host."""
    monkeypatch.setenv(SSH_COMMAND_ENV, sshd.wrong_key_command)
    client = LogClient(sshd.url(free_port()), sources=None)
    app = WatchApp([client])
    async with app.run_test(size=(120, 30)) as pilot:
        await until(
            pilot, lambda: "Permission denied" in app.connection_state, timeout=20, what="error"
        )
        assert "ssh:" in app.header_line.render().plain
