"""The commands as a user runs them: `logtv serve` and `logtv tail` as real subprocesses."""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import write_lines

PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


def drop_file_capabilities() -> None:
    """In the child: root without the capabilities that let it read any file (so 0 means no)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_logtv(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logtv", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def assert_one_error_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("logtv: error: "), result.stderr
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--source", "a=/tmp/x", "--source", "a=/tmp/y"], ["duplicate", "'a'"]),
        (["--source", "bad name=/tmp/x"], ["invalid source name"]),
        (["--source", "all=/tmp/x"], ["reserved"]),
        (["--source", "nopath"], ["NAME=PATH"]),
        (["--source", "a=/tmp/x", "--client-buffer", "12Q"], ["client-buffer"]),
        (["--source", "a=/tmp/x", "--client-buffer", "64K"], ["at least 1M"]),
        (["--source", "a=/tmp/x", "--port", "70000"], ["port"]),
    ],
)
def test_bad_arguments_are_one_error_line(args: list[str], words: list[str]) -> None:
    """Each bad option gets one `logtv: error:` line naming it, exit code 2, no traceback."""
    assert_one_error_line(run_logtv("serve", *args), *words)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("port = [", ["not valid TOML"]),
        ('colour = "red"', ["unknown setting 'colour'"]),
        ("port = 'x'", ["port has the wrong type"]),
        ("[sources.a]\nfile = '/x'", ["[sources.a] needs path"]),
        ("[sources.'no way']\npath = '/x'", ["invalid source name"]),
    ],
)
def test_bad_config_is_one_error_line(tmp_path: Path, text: str, words: list[str]) -> None:
    """A bad TOML config gets one error line that names the problem, exit code 2."""
    config = tmp_path / "logtv.toml"
    config.write_text(text)
    assert_one_error_line(run_logtv("serve", "--config", str(config)), *words)


def test_fifo_and_directory_sources_are_refused(tmp_path: Path) -> None:
    """A FIFO or a directory named as a source is refused at start, never opened."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert_one_error_line(run_logtv("serve", "--source", f"p={fifo}"), "not a regular file")
    assert_one_error_line(run_logtv("serve", "--source", f"d={tmp_path}"), "directory")


def test_port_in_use_is_one_error_line(tmp_path: Path) -> None:
    """A port already taken is reported in one line, exit code 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_logtv("serve", "--port", str(port), "--source", f"a={tmp_path / 'a.log'}")
    assert_one_error_line(result, "address already in use", str(port))


def test_config_file_and_flag_override(tmp_path: Path, serve_process) -> None:
    """Sources and options come from the TOML file; flags override it."""
    log = tmp_path / "a.log"
    write_lines(log, [f"l{i}" for i in range(10)])
    config = tmp_path / "logtv.toml"
    config.write_text(f'backlog = 3\nport = 1\n[sources.app]\npath = "{log}"\n')
    server = serve_process("--config", str(config))  # the fixture's --port 0 overrides port = 1
    server.wait_listening()
    url = f"http://127.0.0.1:{server.port}/healthz"
    health = json.loads(urllib.request.urlopen(url, timeout=5).read())
    assert health == {"sources": [{"name": "app", "state": "following", "seq": 3}], "clients": 0}


async def test_sigterm_closes_clients_with_1001_and_exits_0(tmp_path: Path, serve_process) -> None:
    """SIGTERM closes every client with 1001 (going away) and the server exits 0 within 2 s."""
    log = tmp_path / "a.log"
    log.write_text("")
    server = serve_process("--source", f"a={log}")
    url = server.wait_listening()
    async with connect(url, open_timeout=5) as client:
        await asyncio.wait_for(client.recv(), 5)  # hello
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(client.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    code = await asyncio.to_thread(server.process.wait, 5)
    assert code == 0
    assert time.monotonic() - started < 2.0
    assert any("listening on ws://127.0.0.1:" in line for line in server.stderr)


async def test_unreadable_file_is_a_state_and_retried(tmp_path: Path) -> None:
    """Permission denied shows the source as unreadable, then it is followed once readable."""
    log = tmp_path / "secret.log"
    log.write_text("one\n")
    log.chmod(0)
    process = subprocess.Popen(
        [sys.executable, "-m", "logtv", "serve", "--port", "0", "--source", f"secret={log}"],
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        preexec_fn=drop_file_capabilities if os.geteuid() == 0 else None,
    )
    try:
        assert process.stderr is not None
        url = ""
        for _ in range(50):
            line = await asyncio.to_thread(process.stderr.readline)
            if line.startswith("listening on "):
                url = line.split()[-1]
                break
        assert url
        async with connect(url, open_timeout=5) as client:
            hello = json.loads(await asyncio.wait_for(client.recv(), 5))
            assert hello["sources"][0]["state"] == "unreadable"
            await client.send(json.dumps({"type": "subscribe", "log_source": "secret"}))
            log.chmod(0o644)
            write_lines(log, ["two"])
            got: list[str] = []
            deadline = time.monotonic() + 10
            while len(got) < 2 and time.monotonic() < deadline:
                message = json.loads(await asyncio.wait_for(client.recv(), 10))
                if message["type"] == "raw_log":
                    got.append(message["raw_line"])
            assert got == ["one", "two"]
    finally:
        process.terminate()
        process.wait(5)


def tail_process(url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "logtv", "tail", url, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def read_stdout_lines(process: subprocess.Popen[str], count: int, timeout: float = 10) -> list[str]:
    assert process.stdout is not None
    os.set_blocking(process.stdout.fileno(), True)
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < count and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
    return lines


def test_tail_prints_escaped_lines(tmp_path: Path, serve_process) -> None:
    """`logtv tail` prints `SOURCE | LINE` with control characters escaped, never raw."""
    log = tmp_path / "a.log"
    write_lines(log, ["old"])
    server = serve_process("--source", f"app={log}")
    server.wait_listening()
    tail = tail_process(f"127.0.0.1:{server.port}", "--backlog", "1")
    try:
        assert read_stdout_lines(tail, 1) == ["app | old"]
        write_lines(log, ["\x1b[2J\x1b[1;1Hgotcha\x07", "plain [bold]markup[/bold]"])
        got = read_stdout_lines(tail, 2)
        assert got == ["app | ^[[2J^[[1;1Hgotcha^G", "app | plain [bold]markup[/bold]"]
        assert "\x1b" not in "".join(got)
    finally:
        tail.terminate()
        tail.wait(5)


def test_tail_json_keeps_exact_data(tmp_path: Path, serve_process) -> None:
    """`logtv tail --json` prints one JSON object per line with the exact text."""
    log = tmp_path / "a.log"
    log.write_text("")
    server = serve_process("--source", f"app={log}")
    server.wait_listening()
    tail = tail_process(f"127.0.0.1:{server.port}", "app", "--json", "--backlog", "0")
    try:
        time.sleep(1.0)
        write_lines(log, ["esc \x1b[31m red", "ünïcode"])
        objects = [json.loads(line) for line in read_stdout_lines(tail, 2)]
        assert [o["raw_line"] for o in objects] == ["esc \x1b[31m red", "ünïcode"]
        assert [o["seq"] for o in objects] == [1, 2]
        assert all(o["log_source"] == "app" for o in objects)
    finally:
        tail.terminate()
        tail.wait(5)


def test_tail_reconnects_after_server_restart(tmp_path: Path, serve_process) -> None:
    """When the server goes away and comes back on the same port, tail reconnects on its own."""
    log = tmp_path / "a.log"
    log.write_text("")
    first = serve_process("--source", f"app={log}")
    first.wait_listening()
    port = first.port
    tail = tail_process(f"127.0.0.1:{port}", "--backlog", "0")
    try:
        time.sleep(1.0)
        write_lines(log, ["before"])
        assert read_stdout_lines(tail, 1) == ["app | before"]
        first.process.terminate()
        first.process.wait(5)
        second = serve_process("--source", f"app={log}")
        second.process.kill()  # we need that exact port: restart it explicitly
        second.process.wait(5)
        restarted = subprocess.Popen(
            [sys.executable, "-m", "logtv", "serve", "--port", str(port), "--source", f"app={log}"],
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        try:
            time.sleep(2.5)  # the tail's backoff brings it back within a few seconds
            write_lines(log, ["after"])
            assert read_stdout_lines(tail, 1, timeout=15) == ["app | after"]
        finally:
            restarted.terminate()
            restarted.wait(5)
    finally:
        tail.terminate()
        _, err = tail.communicate(timeout=5)
    assert "restarted" in err


def test_tail_into_closed_pipe_ends_quietly(tmp_path: Path, serve_process) -> None:
    """`logtv tail | head -1` ends without a traceback when head exits."""
    log = tmp_path / "a.log"
    write_lines(log, [f"l{i}" for i in range(50)])
    server = serve_process("--source", f"app={log}")
    server.wait_listening()
    result = subprocess.run(
        f"{sys.executable} -m logtv tail 127.0.0.1:{server.port} --backlog 50 | head -n 1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.stdout == "app | l0\n"
    assert "Traceback" not in result.stderr


def test_tail_unknown_source_exits(tmp_path: Path, serve_process) -> None:
    """Asking tail for a source the server does not have says so and exits 2."""
    log = tmp_path / "a.log"
    log.write_text("")
    server = serve_process("--source", f"app={log}")
    server.wait_listening()
    result = run_logtv("tail", f"127.0.0.1:{server.port}", "nope")
    assert result.returncode == 2
    assert "no such source" in result.stderr


def test_json_into_a_terminal_escapes_c1_del_and_bidi() -> None:
    """`--json` written to a terminal is ASCII: C1 controls, DEL and bidi overrides are escaped."""
    from logtv.client.connection import Lines
    from logtv.client.tail import _format_lines

    event = Lines("app", 1, ["csi \x9b2J del \x7f rlo \u202e é"], "2026-12-04T06:00:00.000000Z")
    to_terminal = _format_lines(event, as_json=True, raw=False, terminal=True)
    assert all(32 <= ord(ch) < 127 for ch in to_terminal.rstrip("\n"))
    assert json.loads(to_terminal)["raw_line"] == event.lines[0]
    to_pipe = _format_lines(event, as_json=True, raw=False, terminal=False)
    assert json.loads(to_pipe)["raw_line"] == event.lines[0] and "é" in to_pipe


def test_flag_source_replaces_the_config_path(tmp_path: Path, serve_process) -> None:
    """A --source naming a source of the config file replaces that source's path."""
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    write_lines(first, ["from the file"])
    write_lines(second, ["from the flag", "and another"])
    config = tmp_path / "logtv.toml"
    config.write_text(f'[sources.app]\npath = "{first}"\n')
    server = serve_process("--config", str(config), "--source", f"app={second}")
    server.wait_listening()
    url = f"http://127.0.0.1:{server.port}/healthz"
    health = json.loads(urllib.request.urlopen(url, timeout=5).read())
    assert health["sources"] == [{"name": "app", "state": "following", "seq": 2}]


def test_empty_size_is_one_error_line() -> None:
    """An empty size flag is a usage error, not a traceback."""
    assert_one_error_line(run_logtv("serve", "--source", "a=/tmp/x", "--max-line", ""), "max-line")


def test_tail_sigterm_exits_0(tmp_path: Path, serve_process) -> None:
    """SIGTERM ends `logtv tail` quietly with exit code 0."""
    log = tmp_path / "a.log"
    log.write_text("")
    server = serve_process("--source", f"app={log}")
    server.wait_listening()
    tail = tail_process(f"127.0.0.1:{server.port}")
    time.sleep(1.5)
    tail.send_signal(signal.SIGTERM)
    _, err = tail.communicate(timeout=10)
    assert tail.returncode == 0 and "Traceback" not in err


def test_tail_refused_request_exits_2(tmp_path: Path, serve_process) -> None:
    """A subscribe the server refuses (backlog out of range) ends tail with the reason, exit 2."""
    log = tmp_path / "a.log"
    log.write_text("")
    server = serve_process("--source", f"app={log}")
    server.wait_listening()
    result = run_logtv("tail", f"127.0.0.1:{server.port}", "--backlog", "999999")
    assert result.returncode == 2
    assert "backlog" in result.stderr


async def test_sigterm_does_not_wait_for_a_stuck_client(tmp_path: Path, serve_process) -> None:
    """A client that stopped reading (its socket full) does not keep the server from exiting."""
    log = tmp_path / "a.log"
    log.write_text("")
    server = serve_process("--source", f"a={log}")
    url = server.wait_listening()
    async with connect(url, open_timeout=5, max_queue=1) as client:
        await asyncio.wait_for(client.recv(), 5)
        await client.send(json.dumps({"type": "subscribe", "log_source": "a"}))
        client.transport.pause_reading()  # like a stopped process
        write_lines(log, ["x" * 200] * 50_000)
        await asyncio.sleep(1.0)
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(server.process.wait, 10)
        assert code == 0
        assert time.monotonic() - started < 3.0
        client.transport.abort()
