"""The syslog receiver end to end: `logger` and rsyslogd into a real server and a real client."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from logtv.cli import main
from logtv.client.app import WatchApp
from logtv.client.connection import LogClient
from logtv.config import (
    ConfigError,
    ServerConfig,
    TokenGrant,
    config_from_mapping,
    parse_syslog_allow,
    parse_syslog_url,
)
from logtv.server.server import LogServer
from logtv.server.syslog_parse import source_name
from tests.conftest import Peer

README = Path(__file__).resolve().parents[1] / "README.md"
HOST = socket.gethostname()
#: logger's RFC 3164 messages carry the host name up to its first dot.
SHORT_HOST = HOST.split(".")[0]
BOTH = (parse_syslog_url("udp://127.0.0.1:0"), parse_syslog_url("tcp://127.0.0.1:0"))


def port_of(server: LogServer, scheme: str) -> int:
    """The bound port of the server's syslog socket of this scheme."""
    url = next(url for url in server.syslog_urls if url.startswith(scheme))
    return int(url.rsplit(":", 1)[1])


async def run(*argv: str) -> None:
    """Run a program to its end (bounded), failing the test if it fails."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0, (argv, out, err)


async def logger(port: int, *options: str, message: str) -> None:
    """util-linux logger sending one message to 127.0.0.1:port."""
    await run("logger", "--server", "127.0.0.1", "--port", str(port), *options, "--", message)


def send_udp(port: int, data: bytes, source: str = "127.0.0.1") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.sendto(data, ("127.0.0.1", port))


async def source_event(peer: Peer, timeout: float = 5.0) -> dict[str, Any]:
    """The next ``source`` frame."""
    return await peer.expect("source", timeout)


async def wait_for(predicate: Any, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_logger_udp_rfc3164_appears_then_streams(start_server, connect_peer):
    """A UDP RFC 3164 message makes its source appear to an `all` subscriber, then its line
    arrives as a syslog file would hold it, with its severity; hello lists it afterwards."""
    server = await start_server({}, syslog=BOTH)
    peer = await connect_peer(server)
    assert peer.hello["sources"] == []
    await peer.subscribe("all")
    port = port_of(server, "udp")
    await logger(port, "--udp", "--rfc3164", "-t", "myapp", "-p", "auth.warning", message="hi")
    name = source_name("myapp", SHORT_HOST)
    event = await source_event(peer)
    assert event == {"type": "source", "name": name, "state": "following", "event": "appeared"}
    [(source, seq, line)] = await peer.lines(1)
    assert (source, seq) == (name, 1)
    assert re.fullmatch(rf"\w{{3}} [ \d]\d \d\d:\d\d:\d\d {SHORT_HOST} myapp: hi", line), line
    assert server.hub.sources[name].ring[-1].severities == [4]
    later = await connect_peer(server)
    assert later.hello["sources"] == [{"name": name, "state": "following", "seq": 1}]


async def test_logger_tcp_rfc5424_octet_counted_and_backlog(start_server, connect_peer):
    """Octet-counted RFC 5424 and LF-framed RFC 3164 over TCP give lines that a client
    subscribing by name later gets from the backlog, with the normal seq."""
    server = await start_server({}, syslog=BOTH)
    hub = server.hub
    port = port_of(server, "tcp")
    for i in range(3):
        await logger(
            port, "--tcp", "--rfc5424", "--octet-count", "-t", "db", "-p", "daemon.err",
            message=f"line {i}",
        )  # fmt: skip
    name = source_name("db", HOST)
    await wait_for(lambda: name in hub.sources and hub.sources[name].seq == 3, "three lines")
    await logger(port, "--tcp", "--rfc3164", "-t", "lf", message="framed by LF")
    framed = source_name("lf", SHORT_HOST)
    await wait_for(lambda: framed in hub.sources and hub.sources[framed].seq == 1, "an LF frame")
    peer = await connect_peer(server)
    ack = await peer.subscribe(name, backlog=2)
    assert ack["seq"] == {name: 1}
    lines = await peer.lines(2, source=name)
    assert [seq for _, seq, _ in lines] == [2, 3]
    # logger adds structured data of its own: it is kept, before the message.
    assert lines[0][2].endswith(f' {HOST} db: [timeQuality tzKnown="1" isSynced="0"] line 1')
    ring = hub.sources[name].ring  # lines that came within one hold window share a chunk
    assert [severity for chunk in ring for severity in chunk.severities or ()] == [3, 3, 3]
    assert hub.sources[framed].ring[-1].lines[0].endswith(f" {SHORT_HOST} lf: framed by LF")


async def test_allow_list_drops_other_senders(start_server, connect_peer, caplog):
    """With an allow list, datagrams and connections from other addresses are dropped and
    logged; a sender inside the list (127.0.0.2) is received."""
    caplog.set_level(logging.WARNING, logger="logtv.server.syslog")
    server = await start_server({}, syslog=BOTH, syslog_allow=(parse_syslog_allow("127.0.0.2"),))
    peer = await connect_peer(server)
    await peer.subscribe("all")
    udp, tcp = port_of(server, "udp"), port_of(server, "tcp")
    await logger(udp, "--udp", "-t", "outsider", message="dropped")
    reader, writer = await asyncio.open_connection("127.0.0.1", tcp)
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed at once
    writer.close()
    send_udp(udp, b"<13>Oct 11 22:14:15 web9 insider: kept", source="127.0.0.2")
    reader, writer = await asyncio.open_connection("127.0.0.1", tcp, local_addr=("127.0.0.2", 0))
    writer.write(b"<13>Oct 11 22:14:15 web9 insider: over tcp\n")
    await writer.drain()
    lines = await peer.lines(2)
    assert [line for _, _, line in lines] == [
        "Oct 11 22:14:15 web9 insider: kept",
        "Oct 11 22:14:15 web9 insider: over tcp",
    ]
    writer.close()
    assert set(server.hub.sources) == {"insider@web9"}
    assert "syslog: dropped 1 messages or connections from outside --syslog-allow" in caplog.text


async def test_garbage_and_huge_messages(start_server, connect_peer):
    """Bytes that are no syslog become a user.notice line from the sender's address; a message
    over max-line is cut with the marker, and the TCP stream stays in step after it."""
    server = await start_server({}, syslog=BOTH, max_line=1024)
    peer = await connect_peer(server)
    await peer.subscribe("all")
    send_udp(port_of(server, "udp"), b"\xff\xfe\x00garbage\x1b[2J")
    [(source, _, line)] = await peer.lines(1)
    assert source == "syslog@127.0.0.1"
    assert line.endswith(" 127.0.0.1 \ufffd\ufffd\x00garbage\x1b[2J")
    assert server.hub.sources[source].ring[-1].severities == [5]
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server, "tcp"))
    huge = b"<13>Oct 11 22:14:15 h big: " + b"x" * 200_000
    writer.write(b"%d %s" % (len(huge), huge) + b"<13>Oct 11 22:14:15 h big: after\n")
    await writer.drain()
    first, second = await peer.lines(2, source="big@h")
    head, marker = first[2].split(" \u2026")
    assert len(head.encode()) == 1024 - len("<13>")  # the frame's first max-line bytes
    assert marker == f"[logtv: {len(huge) - 1024:,} bytes cut]"
    assert second[2] == "Oct 11 22:14:15 h big: after"
    writer.close()


async def test_clash_and_overflow(start_server, connect_peer, tmp_path):
    """A sender whose name a configured source has goes to ``syslog:NAME``; past
    syslog-max-sources, new senders share ``syslog-overflow``."""
    app = tmp_path / "app.log"
    app.write_text("")
    server = await start_server({"app@web1": app}, syslog=BOTH, syslog_max_sources=2)
    peer = await connect_peer(server)
    await peer.subscribe("all")
    port = port_of(server, "udp")
    for tag, host in (("app", "web1"), ("a", "h"), ("b", "h"), ("c", "h"), ("a", "h")):
        send_udp(port, f"<13>Oct 11 22:14:15 {host} {tag}: hi".encode())
        await peer.lines(1)
    assert list(server.hub.sources) == ["app@web1", "syslog:app@web1", "a@h", "syslog-overflow"]
    overflow = [
        line for chunk in server.hub.sources["syslog-overflow"].ring for line in chunk.lines
    ]
    assert overflow == ["Oct 11 22:14:15 h b: hi", "Oct 11 22:14:15 h c: hi"]
    assert server.hub.sources["a@h"].seq == 2
    assert server.hub.sources["app@web1"].seq == 0


async def test_tcp_connections_are_bounded(start_server, connect_peer, monkeypatch):
    """Past the connection limit a new TCP connection is closed; the others keep working."""
    monkeypatch.setattr("logtv.server.syslog.MAX_CONNECTIONS", 2)
    server = await start_server({}, syslog=BOTH)
    peer = await connect_peer(server)
    await peer.subscribe("all")
    port = port_of(server, "tcp")
    writers = []
    for i in range(2):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"<13>t%d: hello\n" % i)
        writers.append(writer)
        await peer.lines(1)
    reader, extra = await asyncio.open_connection("127.0.0.1", port)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writers[0].write(b"<13>t0: still here\n")
    [(_, seq, line)] = await peer.lines(1)
    assert line.endswith("t0: still here") and seq == 2
    for writer in [*writers, extra]:
        writer.close()


async def test_one_iteration_is_one_publish(start_server, monkeypatch):
    """Messages received in one loop iteration reach the hub in one publish call, one update
    per source, each line with its severity."""
    server = await start_server({}, syslog=BOTH)
    calls: list[list[Any]] = []
    publish = server.hub.publish

    def recording(updates: list[Any]) -> None:
        calls.append(updates)
        publish(updates)

    monkeypatch.setattr(server.hub, "publish", recording)
    for data in (
        b"<11>Oct 11 22:14:15 h a: 1",
        b"<12>Oct 11 22:14:15 h b: 2",
        b"<13>Oct 11 22:14:15 h a: 3",
    ):
        server.syslog.receive(data, "127.0.0.1")
    await wait_for(lambda: calls, "the publish")
    [updates] = calls
    assert [(u.name, u.lines, u.severities) for u in updates] == [
        ("a@h", ["Oct 11 22:14:15 h a: 1", "Oct 11 22:14:15 h a: 3"], [3, 5]),
        ("b@h", ["Oct 11 22:14:15 h b: 2"], [4]),
    ]


async def test_token_limited_clients_never_see_syslog_sources(start_server, connect_peer, tmp_path):
    """A client whose token is limited to some sources is not told of syslog sources; a client
    with the main token is."""
    app = tmp_path / "app.log"
    app.write_text("")
    main_token, ops_token = "m" * 32, "o" * 32
    grant = TokenGrant("ops", ops_token, frozenset({"app"}))
    server = await start_server({"app": app}, syslog=BOTH, token=main_token, tokens=(grant,))
    limited = await connect_peer(
        server, additional_headers={"Authorization": f"Bearer {ops_token}"}
    )
    everything = await connect_peer(
        server, additional_headers={"Authorization": f"Bearer {main_token}"}
    )
    for peer in (limited, everything):
        await peer.subscribe("all")
    send_udp(port_of(server, "udp"), b"<13>Oct 11 22:14:15 h secret: x")
    assert (await source_event(everything))["name"] == "secret@h"
    await everything.lines(1)
    assert [m for m in await limited.quiet(0.3) if m["type"] != "stats"] == []


async def test_stop_closes_the_sockets(start_server):
    """After stop, the syslog ports are free again."""
    server = await start_server({}, syslog=BOTH)
    udp, tcp = port_of(server, "udp"), port_of(server, "tcp")
    await server.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", udp))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", tcp))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("http://127.0.0.1:514", "must look like udp://HOST:PORT"),
        ("udp://127.0.0.1", "must look like udp://HOST:PORT"),
        ("tcp://example.com:514", "is not an IP address"),
        ("udp://127.0.0.1:70000", "the port must be from 0 to 65535"),
    ],
)
def test_bad_syslog_urls(text: str, problem: str):
    """A listener that is not udp:// or tcp:// with an IP address and a port is refused."""
    with pytest.raises(ConfigError, match=problem):
        parse_syslog_url(text)


def test_settings_are_checked():
    """Off loopback needs an allow list; bad networks, bounds and the reserved name are refused;
    the config file takes the same settings."""
    everywhere = (parse_syslog_url("udp://0.0.0.0:5514"),)
    with pytest.raises(ConfigError, match="without --syslog-allow: syslog has no authentication"):
        ServerConfig(syslog=everywhere).validated()
    ServerConfig(syslog=everywhere, syslog_allow=(parse_syslog_allow("10.0.0.0/8"),)).validated()
    with pytest.raises(ConfigError, match="must be an address or network"):
        parse_syslog_allow("10.0.0.0/33")
    with pytest.raises(ConfigError, match="syslog-max-sources must be from 1 to 10000"):
        ServerConfig(syslog_max_sources=0).validated()
    with pytest.raises(ConfigError, match="kept for syslog senders"):
        ServerConfig(syslog=BOTH, sources={"syslog-overflow": Path("/x")}).validated()
    with pytest.raises(ConfigError, match="syslog-allow is for --syslog"):
        ServerConfig(syslog_allow=(parse_syslog_allow("10.0.0.1"),)).validated()
    with pytest.raises(ConfigError, match="is given twice"):
        ServerConfig(syslog=(parse_syslog_url("udp://127.0.0.1:5514"),) * 2).validated()
    config = config_from_mapping(
        {"syslog": ["udp://[::1]:5514"], "syslog-allow": ["::1"], "syslog-max-sources": 5},
        origin="f.toml",
    )
    assert [listen.url for listen in config.syslog] == ["udp://[::1]:5514"]
    assert config.syslog_max_sources == 5
    with pytest.raises(ConfigError, match="syslog must be a list of strings"):
        config_from_mapping({"syslog": [514]}, origin="f.toml")


def test_command_line_errors(capsys):
    """`logtv serve` reports a bad flag or a syslog port in use as one error line, exit 2."""
    assert main(["serve", "--port", "0", "--syslog", "udp://0.0.0.0:5514"]) == 2
    assert (
        "logtv: error: refusing to receive syslog on udp://0.0.0.0:5514" in capsys.readouterr().err
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        url = f"udp://127.0.0.1:{taken.getsockname()[1]}"
        assert main(["serve", "--port", "0", "--syslog", url]) == 2
    err = capsys.readouterr().err
    assert f"logtv: error: cannot listen on {url} for syslog: address already in use" in err


def test_serve_prints_the_syslog_addresses(serve_process, tmp_path):
    """A syslog-only `logtv serve` from a config file prints each bound syslog address."""
    config = tmp_path / "logtv.toml"
    config.write_text('syslog = ["udp://127.0.0.1:0", "tcp://[::1]:0"]\n')
    process = serve_process("--config", str(config))
    process.wait_listening()
    deadline = time.monotonic() + 10
    while sum("syslog: listening on" in line for line in process.stderr) < 2:
        assert time.monotonic() < deadline, process.stderr
        time.sleep(0.05)
    printed = [line.split()[-1] for line in process.stderr if "syslog: listening on" in line]
    assert re.fullmatch(r"udp://127\.0\.0\.1:[1-9]\d*", printed[0])
    assert re.fullmatch(r"tcp://\[::1\]:[1-9]\d*", printed[1])


def _readme_rsyslog_action() -> str:
    """The omfwd action of the README's forwarding snippet."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r'^action\(type="omfwd".*?\)$', text, re.MULTILINE | re.DOTALL)
    assert match, "README has no rsyslog omfwd action"
    return match.group()


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_rsyslog_forwards_with_the_original_host_and_tag(
    start_server, connect_peer, tmp_path
):
    """A real rsyslogd with the README's forwarding action relays `logger` messages (and one
    from another host) over octet-counted TCP, keeping each message's host and tag."""
    server = await start_server({}, syslog=BOTH)
    peer = await connect_peer(server)
    await peer.subscribe("all")
    action = _readme_rsyslog_action()
    action = re.sub(r'target="[^"]*"', 'target="127.0.0.1"', action)
    action = re.sub(r'port="[^"]*"', f'port="{port_of(server, "tcp")}"', action)
    rsyslog_port = _free_udp_port()
    (tmp_path / "work").mkdir()
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(
        f'global(workDirectory="{tmp_path / "work"}")\n'
        'module(load="imudp")\n'
        f'input(type="imudp" address="127.0.0.1" port="{rsyslog_port}")\n'
        f"{action}\n"
    )
    rsyslogd = await asyncio.create_subprocess_exec(
        "/usr/sbin/rsyslogd", "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslogd.pid"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        # rsyslogd gives no sign when its input is ready: probe until a message comes through.
        probes = source_name("probe", SHORT_HOST)
        for attempt in range(100):
            await logger(rsyslog_port, "--udp", "--rfc3164", "-t", "probe", message=f"{attempt}")
            if probes in server.hub.sources:
                break
            await asyncio.sleep(0.1)
        await wait_for(lambda: probes in server.hub.sources, "rsyslogd to forward")
        await logger(
            rsyslog_port, "--udp", "--rfc5424", "-t", "fleetapp", "-p", "auth.warning",
            message="through rsyslog",
        )  # fmt: skip
        send_udp(rsyslog_port, b"<30>Dec  4 10:00:00 web7 nginx[81]: from another host")
        wanted = {source_name("fleetapp", SHORT_HOST), source_name("fleetapp", HOST), "nginx@web7"}
        got: dict[str, str] = {}
        for _ in range(1000):  # the probes that were still on their way come first
            if len(got) == 2:
                break
            for source, _, line in await peer.lines(1):
                if source in wanted:
                    got[source] = line
        assert got["nginx@web7"] == "Dec  4 10:00:00 web7 nginx[81]: from another host"
        [fleet] = [line for source, line in got.items() if source.startswith("fleetapp@")]
        # rsyslog forwards an RFC 5424 message's APP-NAME as a tag without a colon.
        assert re.search(rf" ({HOST}|{SHORT_HOST}) fleetapp through rsyslog$", fleet), fleet
        [name] = [source for source in got if source.startswith("fleetapp@")]
        # Probes and the message may share a chunk (one hold window): the last line is ours.
        assert (server.hub.sources[name].ring[-1].severities or [])[-1] == 4
        assert server.hub.sources["nginx@web7"].ring[-1].severities == [6]
    finally:
        if rsyslogd.returncode is None:
            rsyslogd.terminate()
            try:
                await asyncio.wait_for(rsyslogd.wait(), 5)
            except TimeoutError:
                rsyslogd.kill()
                await rsyslogd.wait()


async def test_watch_adds_a_row_and_streams_a_sender_that_appears(start_server):
    """A viewer of every source gets a sidebar row for a new syslog sender and all its lines."""
    server = await start_server({}, syslog=BOTH)
    app = WatchApp(LogClient(server.url, sources=None))
    async with app.run_test(size=(100, 30)) as pilot:
        deadline = time.monotonic() + 5
        while app.client_server.client.subscriptions is None and time.monotonic() < deadline:
            await pilot.pause(0.05)
        port = port_of(server, "udp")
        await logger(port, "--udp", "--rfc3164", "-t", "cron", message="first")
        await logger(port, "--udp", "--rfc3164", "-t", "cron", message="second")
        key = (app.client_server.key, f"cron@{SHORT_HOST}")

        def messages() -> list[str]:
            texts = [entry.text for entry in app.scrollback.iter_shown()]
            return [t.rsplit(": ", 1)[-1] for t in texts if "cron" in t and "—" not in t]

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (
            key in app.rows and app.rows[key].acked and len(messages()) >= 2
        ):
            await pilot.pause(0.05)
        assert key in app.rows and app.rows[key].wanted and app.rows[key].acked
        assert messages() == ["first", "second"]
