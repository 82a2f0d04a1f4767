"""Command sources (`--source NAME=command:CMDLINE`): a real server, real commands, real clients."""

from __future__ import annotations

import asyncio
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import pytest

from logtv.config import (
    CommandSource,
    ConfigError,
    ServerConfig,
    config_from_mapping,
    parse_source,
)
from logtv.server.server import LogServer
from tests.conftest import write_lines

PY = shlex.quote(sys.executable)


def python(code: str) -> CommandSource:
    """A command source running ``python -c CODE`` (parsed as the --source flag would be)."""
    return parse_source(f"x=command:{PY} -c {shlex.quote(code)}")[1]  # type: ignore[return-value]


def alive(pid: int) -> bool:
    """True if the process exists and is not a zombie (read from /proc, no psutil)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return fields[0] not in ("Z", "X")


async def wait_for(predicate, timeout: float = 5.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def source_event(peer, event: str, timeout: float = 5.0) -> dict:  # type: ignore[no-untyped-def]
    """The next ``source`` frame with this event."""
    deadline = time.monotonic() + timeout
    while True:
        message = await peer.expect("source", max(0.01, deadline - time.monotonic()))
        if message["event"] == event:
            return message


async def test_lines_arrive_in_order_with_contiguous_seq(start_server, connect_peer):
    """Every line a command prints reaches the subscriber once, in order, with seq 1, 2, 3, …"""
    code = "import sys, time\nfor i in range(3000): print(f'line {i}')\nsys.stdout.flush()\n"
    code += "time.sleep(60)"
    server = await start_server({"cmd": python(code)})
    peer = await connect_peer(server)
    assert peer.hello["sources"][0]["name"] == "cmd"
    await peer.subscribe("cmd")
    lines = await peer.lines(3000, source="cmd")
    assert [seq for _, seq, _ in lines] == list(range(1, 3001))
    assert [text for _, _, text in lines] == [f"line {i}" for i in range(3000)]
    assert server.hub.sources["cmd"].state == "following"
    assert server.hub.health(None)["sources"][0]["name"] == "cmd"


async def test_replay_and_stats_as_for_files(start_server, connect_peer):
    """A command's lines are buffered for backlog and since replays and counted in stats."""
    code = "import time\nfor i in range(1, 11): print(f'n{i}', flush=True)\ntime.sleep(60)"
    server = await start_server({"cmd": python(code)}, backlog=5)
    await wait_for(lambda: server.hub.sources["cmd"].seq == 10, what="ten lines")
    late = await connect_peer(server)
    assert late.hello["sources"] == [{"name": "cmd", "state": "following", "seq": 10}]
    ack = await late.subscribe("cmd", backlog=3)
    assert ack["seq"] == {"cmd": 7}
    assert await late.lines(3) == [("cmd", 8, "n8"), ("cmd", 9, "n9"), ("cmd", 10, "n10")]
    resumed = await connect_peer(server)
    await resumed.subscribe("cmd", since=2)  # older than the ring: a gap, then what it holds
    gap = await resumed.expect("gap")
    assert (gap["from_seq"], gap["to_seq"]) == (3, 5)
    assert [seq for _, seq, _ in await resumed.lines(5)] == [6, 7, 8, 9, 10]
    stats = await resumed.expect("stats", timeout=3)
    assert stats["sources"]["cmd"]["seq"] == 10


async def test_exit_is_logged_and_the_command_restarted(start_server, connect_peer, caplog):
    """A command that exits is logged with its code, shown as missing, and started again."""
    caplog.set_level(logging.INFO, logger="logtv")
    server = await start_server({"once": python("print('hello'); raise SystemExit(3)")})
    peer = await connect_peer(server)
    await peer.subscribe("once", backlog=10)  # the first run may have printed before this
    lines = await peer.lines(3, timeout=10)
    assert lines == [("once", 1, "hello"), ("once", 2, "hello"), ("once", 3, "hello")]
    # Between the second run's line and the third's: the exit, then the restart.
    frames = [m for m in peer.seen if m["type"] != "stats"]
    second, third = (i for i, m in enumerate(frames) if m["type"] == "raw_log" and m["seq"] > 1)
    events = [(m["event"], m["state"]) for m in frames[second:third] if m["type"] == "source"]
    assert events == [("vanished", "missing"), ("appeared", "following")]
    assert caplog.text.count("exited with code 3") >= 2
    assert "restarting in 1s" in caplog.text and "restarting in 2s" in caplog.text  # it doubles


async def test_stderr_goes_to_the_log_not_the_stream(start_server, connect_peer, caplog):
    """What a command writes to stderr is logged with the source name and never streamed."""
    caplog.set_level(logging.INFO, logger="logtv")
    code = "import sys, time\nsys.stderr.write('to-stderr\\n'); sys.stderr.flush()\n"
    code += "time.sleep(0.3); print('to-stdout', flush=True); time.sleep(60)"
    server = await start_server({"mixed": python(code)})
    peer = await connect_peer(server)
    await peer.subscribe("mixed")
    assert await peer.lines(1) == [("mixed", 1, "to-stdout")]
    await wait_for(lambda: "mixed: stderr: to-stderr" in caplog.text, what="stderr in the log")
    assert [m for m in await peer.quiet(0.5) if m["type"].startswith("raw_log")] == []


async def test_shell_metacharacters_are_literal_arguments(tmp_path, start_server, connect_peer):
    """`;`, `$(…)`, `|` and quotes reach the program as arguments: no shell ever runs."""
    script = tmp_path / "argv.py"
    script.write_text("import json, sys, time\nprint(json.dumps(sys.argv[1:]), flush=True)\n")
    keep = tmp_path / "keep"
    keep.write_text("still here")
    pwned = tmp_path / "pwned"
    cmdline = (
        f"{PY} {shlex.quote(str(script))} ; rm -rf {keep} '$(touch {pwned})' `touch {pwned}` "
        f'| cat && echo "two words" > out.txt'
    )
    name, command = parse_source(f"argv=command:{cmdline}")
    server = await start_server({name: command})
    peer = await connect_peer(server)
    await peer.subscribe("argv")
    ((_, _, text),) = await peer.lines(1)
    assert json.loads(text) == [
        ";", "rm", "-rf", str(keep), f"$(touch {pwned})", "`touch", f"{pwned}`",
        "|", "cat", "&&", "echo", "two words", ">", "out.txt",
    ]  # fmt: skip
    assert keep.read_text() == "still here" and not pwned.exists()
    assert not Path("out.txt").exists()


async def test_missing_executable_is_missing_and_retried(
    tmp_path, start_server, connect_peer, caplog
):
    """A program that does not exist is logged, shown as missing and retried; files still flow."""
    caplog.set_level(logging.INFO, logger="logtv")
    log = tmp_path / "app.log"
    log.write_text("")
    gone = CommandSource("no-such-program", (str(tmp_path / "no-such-program"),))
    server = await start_server({"gone": gone, "app": log})
    peer = await connect_peer(server)
    states = {s["name"]: s["state"] for s in peer.hello["sources"]}
    assert states == {"gone": "missing", "app": "following"}
    await peer.subscribe("all")
    write_lines(log, ["still served"])
    assert await peer.lines(1) == [("app", 1, "still served")]
    await wait_for(lambda: caplog.text.count("gone: cannot start") >= 2, timeout=4, what="a retry")
    assert "No such file or directory" in caplog.text
    assert server.hub.sources["gone"].state == "missing"
    assert server.tailer.commands["gone"].starts == 0


async def test_invalid_utf8_crlf_long_and_partial_lines(start_server, connect_peer):
    """Command output gets the files' hygiene: CRLF, U+FFFD, the cut marker, partial flush."""
    code = (
        "import sys, time\nout = sys.stdout.buffer\n"
        "out.write(b'crlf\\r\\nbad \\xff\\xfe end\\r\\nlone\\rcr\\n' + b'x' * 3000 + b'\\n')\n"
        "out.write(b'partial'); out.flush(); time.sleep(60)"
    )
    server = await start_server({"raw": python(code)}, max_line=1024)
    peer = await connect_peer(server)
    await peer.subscribe("raw")
    texts = [text for _, _, text in await peer.lines(4)]
    cut = "x" * 1024 + " …[logtv: 1,976 bytes cut]"
    assert texts == ["crlf", "bad \ufffd\ufffd end", "lone\rcr", cut]
    started = time.monotonic()
    assert await peer.lines(1) == [("raw", 5, "partial")]  # flushed after about a second
    assert time.monotonic() - started < 3


async def test_stop_leaves_no_process_behind(caplog):
    """Stopping the server ends the command, a child of its own and one that ignores SIGTERM."""
    caplog.set_level(logging.INFO, logger="logtv")
    grandchild = "import subprocess, sys, time\n"
    grandchild += "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    grandchild += "print(p.pid, flush=True); time.sleep(60)"
    stubborn = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    stubborn += "print('ready', flush=True); time.sleep(60)"
    config = ServerConfig(
        host="127.0.0.1",
        port=0,
        sources={"parent": python(grandchild), "stubborn": python(stubborn)},
    )
    server = LogServer(config)
    await server.start()
    try:
        await wait_for(lambda: server.hub.sources["parent"].seq == 1, what="the grandchild's pid")
        await wait_for(lambda: server.hub.sources["stubborn"].seq == 1, what="stubborn to start")
        pids = [server.tailer.commands[name].pid for name in ("parent", "stubborn")]
        pids.append(int(server.hub.sources["parent"].ring[-1].lines[-1]))
        assert all(pid is not None and alive(pid) for pid in pids)
    finally:
        started = time.monotonic()
        await server.stop()
    assert time.monotonic() - started < 4
    await wait_for(lambda: not any(alive(pid) for pid in pids), timeout=2, what="no processes")
    assert "stubborn: pid" in caplog.text and "ignored SIGTERM" in caplog.text


def test_backoff_doubles_to_its_cap_and_resets_after_a_long_run():
    """Restart delays double up to the cap, and start again from the first after a long run."""
    from logtv.server.command import CommandFollower

    updates: list[tuple[str, list[str], list[tuple[int, str, str]], str]] = []
    delays: list[float] = []
    quick = CommandFollower(
        "quick", python("pass"), hand_over=lambda *u: updates.append(u), max_line=1024,
        first_delay=0.05, max_delay=0.2, reset_after=30,
    )  # fmt: skip
    quick._stopping.wait = lambda delay: delays.append(delay) or len(delays) >= 5  # type: ignore[method-assign]
    quick._run_forever()
    assert delays == [0.05, 0.1, 0.2, 0.2, 0.2]
    assert [e for _, _, events, _ in updates for _, e, _ in events][:2] == ["appeared", "vanished"]
    delays.clear()
    slow = CommandFollower(
        "slow", python("import time; time.sleep(0.3)"), hand_over=lambda *u: None,
        max_line=1024, first_delay=0.05, max_delay=0.2, reset_after=0.25,
    )  # fmt: skip
    slow._stopping.wait = lambda delay: delays.append(delay) or len(delays) >= 3  # type: ignore[method-assign]
    slow._run_forever()
    assert delays == [0.05, 0.05, 0.05]


def test_command_sources_in_toml_and_flags():
    """`[sources.N] command = "…"` and `--source N=command:…` give the same argv; bad ones fail."""
    config = config_from_mapping(
        {"sources": {"web": {"command": "docker logs -f 'my web'"}}}, origin="t.toml"
    )
    argv = ("docker", "logs", "-f", "my web")
    assert config.sources["web"] == CommandSource("docker logs -f 'my web'", argv)
    assert parse_source("web=command:docker logs -f 'my web'")[1] == config.sources["web"]
    assert parse_source("f=./command:odd")[1] == Path("command:odd")
    with pytest.raises(ConfigError, match="command line is empty"):
        parse_source("web=command:  ")
    with pytest.raises(ConfigError, match="cannot split"):
        parse_source("web=command:echo 'unclosed")
    with pytest.raises(ConfigError, match='write command = "…"'):
        config_from_mapping({"sources": {"web": {"path": "command:ls"}}}, origin="t.toml")
    with pytest.raises(ConfigError, match="needs path"):
        config_from_mapping({"sources": {"web": {"path": "/a", "command": "ls"}}}, origin="t")


def test_serve_process_follows_a_command_and_stops_it(serve_process, tmp_path):
    """`logtv serve --source …=command:…` streams the command; SIGTERM leaves no child behind."""
    import signal

    from websockets.sync.client import connect

    pidfile = tmp_path / "pid"
    code = f"import os, time\nopen({str(pidfile)!r}, 'w').write(str(os.getpid()))\n"
    code += "print('from the command', flush=True); time.sleep(60)"
    server = serve_process("--source", f"c=command:{PY} -c {shlex.quote(code)}")
    url = server.wait_listening()
    with connect(url, open_timeout=5) as ws:
        json.loads(ws.recv(5))
        ws.send(json.dumps({"type": "subscribe", "log_source": "c", "backlog": 10}))
        deadline = time.monotonic() + 10
        while True:
            message = json.loads(ws.recv(max(0.01, deadline - time.monotonic())))
            if message["type"] == "raw_log":
                break
        assert message["raw_line"] == "from the command"
    pid = int(pidfile.read_text())
    assert alive(pid)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(5) == 0
    deadline = time.monotonic() + 2
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(pid)
