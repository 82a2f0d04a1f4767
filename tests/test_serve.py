"""`logtv serve` end to end: a real server, real files, real WebSocket clients on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from logtv.server import watcher
from logtv.server.watcher import SourceUpdate
from tests.conftest import write_lines


async def wait_for(predicate, timeout: float = 5.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def seqs(lines: list[tuple[str, int, str]]) -> list[int]:
    return [seq for _, seq, _ in lines]


async def test_lines_arrive_in_order_with_contiguous_seq(tmp_path, start_server, connect_peer):
    """Every appended line reaches the subscriber once, in order, with seq 1, 2, 3, …"""
    log = tmp_path / "app.log"
    log.write_text("")
    server = await start_server({"app": log})
    peer = await connect_peer(server)
    assert peer.hello["protocol"] == 1 and peer.hello["epoch"]
    assert peer.hello["sources"] == [{"name": "app", "state": "following", "seq": 0}]
    ack = await peer.subscribe("app")
    assert ack["seq"] == {"app": 0}
    write_lines(log, [f"line {i}" for i in range(2000)])
    lines = await peer.lines(2000, source="app")
    assert seqs(lines) == list(range(1, 2001))
    assert [text for _, _, text in lines] == [f"line {i}" for i in range(2000)]
    assert peer.seen[-1]["type"] == "raw_log"  # one line per frame unless batching was asked for
    assert peer.seen[-1]["timestamp"].endswith("Z")


async def test_batched_frames_when_asked(tmp_path, start_server, connect_peer):
    """A client that subscribes with batch=true gets raw_logs frames: first seq + plain lines."""
    log = tmp_path / "app.log"
    log.write_text("")
    server = await start_server({"app": log})
    peer = await connect_peer(server)
    await peer.subscribe("app", batch=True)
    write_lines(log, [f"l{i}" for i in range(5000)])
    lines = await peer.lines(5000)
    assert seqs(lines) == list(range(1, 5001))
    frames = [m for m in peer.seen if m["type"] == "raw_logs"]
    assert len(frames) < 5000 and all(len(m["lines"]) <= 1000 for m in frames)


async def test_trickle_is_held_for_one_window_then_sent_together(
    tmp_path, start_server, connect_peer
):
    """A line after quiet goes out at once; lines right behind it wait and share one frame."""
    log = tmp_path / "app.log"
    log.write_text("")
    server = await start_server({"app": log})
    peer = await connect_peer(server)
    await peer.subscribe("app", batch=True)
    await peer.quiet(0.2)
    assert server.hub is not None
    now = time.time()
    server.hub.publish([SourceUpdate("app", ["first"], [], "following", now)])
    for i in range(5):  # the same loop turn: well inside the window
        server.hub.publish([SourceUpdate("app", [f"next {i}"], [], "following", now)])
    assert server.hub.sources["app"].seq == 1  # the rest are held, not numbered yet
    first = await peer.expect("raw_logs")
    held = await peer.expect("raw_logs")
    assert (first["seq"], first["lines"]) == (1, ["first"])
    assert (held["seq"], held["lines"]) == (2, [f"next {i}" for i in range(5)])


async def test_held_lines_go_before_a_file_event(tmp_path, start_server, connect_peer):
    """Lines read before a rotation reach the client before the rotation notice."""
    log = tmp_path / "app.log"
    log.write_text("")
    server = await start_server({"app": log})
    peer = await connect_peer(server)
    await peer.subscribe("app", batch=True)
    await peer.quiet(0.2)
    assert server.hub is not None
    now = time.time()
    server.hub.publish([SourceUpdate("app", ["a"], [], "following", now)])
    server.hub.publish(
        [SourceUpdate("app", ["b", "c", "d"], [(2, "rotated", "following")], "following", now)]
    )
    kinds = []
    while len(kinds) < 3:
        message = await peer.recv()
        if message["type"] in ("raw_logs", "source"):
            kinds.append((message["type"], message.get("lines") or message.get("event")))
    assert kinds == [("raw_logs", ["a"]), ("raw_logs", ["b", "c"]), ("source", "rotated")]
    assert (await peer.expect("raw_logs"))["lines"] == ["d"]


async def test_busy_directory_is_read_not_watched_and_loses_nothing(
    tmp_path, start_server, connect_peer, monkeypatch
):
    """A flood of writes turns the watch off (lines keep coming, a rotation is followed), and
    once the files are quiet the watch is back: a single later line still arrives at once."""
    monkeypatch.setattr(watcher, "BUSY_EVENTS", 50)
    monkeypatch.setattr(watcher, "CALM_AFTER", 0.3)
    log, other = tmp_path / "app.log", tmp_path / "other.log"
    log.write_text("")
    other.write_text("")
    server = await start_server({"app": log, "other": other})
    assert server.tailer is not None
    tailer = server.tailer
    directory = os.path.dirname(os.path.abspath(log))
    peer = await connect_peer(server)
    await peer.subscribe("all", batch=True)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    written = 0
    try:
        deadline = time.monotonic() + 10
        while directory not in tailer._busy and time.monotonic() < deadline:
            for _ in range(20):  # one write(2), so one inotify event, per line
                written += 1
                os.write(fd, f"flood {written}\n".encode())
            await asyncio.sleep(0.005)
        assert directory in tailer._busy and directory not in tailer._watches
        os.write(fd, b"before rotation\n")
    finally:
        os.close(fd)
    os.rename(log, tmp_path / "app.log.1")
    write_lines(log, ["after rotation"])
    write_lines(other, ["the other file, while busy"])
    lines = await peer.lines(written + 3, timeout=15)
    app = [text for source, _, text in lines if source == "app"]
    assert app == [f"flood {i}" for i in range(1, written + 1)] + [
        "before rotation",
        "after rotation",
    ]
    assert [text for source, _, text in lines if source == "other"] == [
        "the other file, while busy"
    ]
    await wait_for(lambda: directory in tailer._watches, what="the watch to come back")
    assert not tailer._busy
    events: list[str] = []
    mark_dirty = tailer.mark_dirty

    def recording(names: tuple[str, ...], directory: str = "") -> None:
        events.append(directory)
        mark_dirty(names, directory)

    monkeypatch.setattr(tailer, "mark_dirty", recording)
    write_lines(other, ["watched again"])
    assert (await peer.lines(1))[0][2] == "watched again"
    await wait_for(lambda: directory in events, what="an inotify event for the directory")


async def test_all_versus_one_source(tmp_path, start_server, connect_peer):
    """`all` receives every source; a named subscription receives only that source."""
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text("")
    b.write_text("")
    server = await start_server({"a": a, "b": b})
    everything = await connect_peer(server)
    only_b = await connect_peer(server)
    await everything.subscribe("all")
    await only_b.subscribe("b")
    write_lines(a, ["a1", "a2"])
    write_lines(b, ["b1"])
    got = await everything.lines(3)
    assert sorted(text for _, _, text in got) == ["a1", "a2", "b1"]
    assert await only_b.lines(1) == [("b", 1, "b1")]
    assert [m for m in await only_b.quiet(0.5) if m["type"].startswith("raw_log")] == []


async def test_overlapping_subscriptions_deliver_once(tmp_path, start_server, connect_peer):
    """A client subscribed to both `all` and `a` gets each line of `a` once."""
    a = tmp_path / "a.log"
    a.write_text("")
    server = await start_server({"a": a})
    peer = await connect_peer(server)
    await peer.subscribe("a")
    await peer.subscribe("all", backlog=50)
    write_lines(a, ["x", "y"])
    assert await peer.lines(2) == [("a", 1, "x"), ("a", 2, "y")]
    assert await peer.quiet(0.5) == []


async def test_unsubscribe_stops_delivery(tmp_path, start_server, connect_peer):
    """After the unsubscribed ack no further line of that source arrives."""
    a = tmp_path / "a.log"
    a.write_text("")
    server = await start_server({"a": a})
    peer = await connect_peer(server)
    await peer.subscribe("a")
    write_lines(a, ["before"])
    assert await peer.lines(1) == [("a", 1, "before")]
    await peer.send({"type": "unsubscribe", "log_source": "a"})
    assert (await peer.expect("unsubscribed"))["log_source"] == "a"
    write_lines(a, ["after"])
    await wait_for(lambda: server.hub.sources["a"].seq == 2, what="the server to read the line")
    assert await peer.quiet(0.5) == []


async def test_backlog_and_since_replay(tmp_path, start_server, connect_peer):
    """backlog replays the newest lines, since replays after a seq, and live lines follow."""
    log = tmp_path / "app.log"
    write_lines(log, [f"old {i}" for i in range(1, 51)])
    server = await start_server({"app": log}, backlog=20)
    assert server.hub.sources["app"].seq == 20  # the ring holds the file's last 20 lines
    peer = await connect_peer(server)
    ack = await peer.subscribe("app", backlog=5)
    assert ack["seq"] == {"app": 15}
    got = await peer.lines(5)
    assert got == [("app", 16 + i, f"old {46 + i}") for i in range(5)]
    write_lines(log, ["new"])
    assert await peer.lines(1) == [("app", 21, "new")]

    resumed = await connect_peer(server)
    await resumed.subscribe("app", since=18)
    assert seqs(await resumed.lines(3)) == [19, 20, 21]


async def test_since_older_than_buffer_reports_not_buffered(tmp_path, start_server, connect_peer):
    """Lines no longer buffered are a gap with reason not_buffered, then the buffer follows."""
    log = tmp_path / "app.log"
    log.write_text("")
    server = await start_server({"app": log}, backlog=10)
    write_lines(log, [f"l{i}" for i in range(1, 31)])
    await wait_for(lambda: server.hub.sources["app"].seq == 30, what="30 lines read")
    peer = await connect_peer(server)
    await peer.send({"type": "subscribe", "log_source": "app", "since": 5})
    gap = await peer.expect("gap")
    assert (gap["from_seq"], gap["to_seq"], gap["reason"]) == (6, 20, "not_buffered")
    assert seqs(await peer.lines(10)) == list(range(21, 31))


async def test_all_backlog_takes_most_recent_across_sources(tmp_path, start_server, connect_peer):
    """backlog on `all` replays the N most recent lines over all sources, not N per source."""
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text("")
    b.write_text("")
    server = await start_server({"a": a, "b": b})
    write_lines(a, ["a1", "a2", "a3"])
    await wait_for(lambda: server.hub.sources["a"].seq == 3)
    await asyncio.sleep(0.05)
    write_lines(b, ["b1", "b2"])
    await wait_for(lambda: server.hub.sources["b"].seq == 2)
    peer = await connect_peer(server)
    await peer.send({"type": "subscribe", "log_source": "all", "backlog": 3})
    got = await peer.lines(3)
    assert sorted(text for _, _, text in got) == ["a3", "b1", "b2"]
    assert await peer.quiet(0.3) == []


def writer_thread(path: Path, count: int, rotate_at: set[int], how: str) -> threading.Thread:
    """Append ``count`` lines, rotating (rename+create) right after the given line numbers."""

    def run() -> None:
        for i in range(count):
            write_lines(path, [f"line {i}"])
            if i in rotate_at:
                os.rename(path, f"{path}.{i}")
                path.write_text("")
            if i % 100 == 0:
                time.sleep(0.002)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


async def test_rename_rotation_loses_nothing(tmp_path, start_server, connect_peer):
    """Lines written right before each rename rotation are all delivered, in order."""
    log = tmp_path / "app.log"
    log.write_text("")
    server = await start_server({"app": log})
    peer = await connect_peer(server)
    await peer.subscribe("app")
    writer = writer_thread(log, 3000, {999, 1999}, "rename")
    lines = await peer.lines(3000, timeout=20)
    writer.join()
    assert [text for _, _, text in lines] == [f"line {i}" for i in range(3000)]
    assert seqs(lines) == list(range(1, 3001))
    events = [m for m in peer.seen if m["type"] == "source"]
    assert [m["event"] for m in events].count("rotated") >= 1


async def test_truncation_and_copytruncate_lose_nothing_read(tmp_path, start_server, connect_peer):
    """After copytruncate or `: > file` the file is read again from byte 0, with a notice."""
    log = tmp_path / "app.log"
    log.write_text("")
    server = await start_server({"app": log})
    peer = await connect_peer(server)
    await peer.subscribe("app")
    write_lines(log, ["one", "two"])
    assert [t for _, _, t in await peer.lines(2)] == ["one", "two"]
    # copytruncate: copy, then truncate in place.
    (tmp_path / "app.log.1").write_bytes(log.read_bytes())
    with open(log, "r+") as handle:
        handle.truncate(0)
    write_lines(log, ["three"])
    assert [t for _, _, t in await peer.lines(1)] == ["three"]
    notice = next(m for m in peer.seen if m["type"] == "source")
    assert (notice["name"], notice["event"], notice["state"]) == ("app", "truncated", "following")
    # Plain truncation with the shell's `: > file`.
    with open(log, "w"):
        pass
    write_lines(log, ["four", "five"])
    assert [(s, t) for _, s, t in await peer.lines(2)] == [(4, "four"), (5, "five")]


async def test_missing_file_appears_later(tmp_path, start_server, connect_peer):
    """A source missing at start is announced as missing, then followed from byte 0."""
    log = tmp_path / "later.log"
    server = await start_server({"later": log})
    peer = await connect_peer(server)
    assert peer.hello["sources"][0]["state"] == "missing"
    await peer.subscribe("later")
    write_lines(log, ["first", "second"])
    notice = await peer.expect("source")
    assert (notice["event"], notice["state"]) == ("appeared", "following")
    assert [t for _, _, t in await peer.lines(2)] == ["first", "second"]


async def test_partial_line_waits_for_newline(tmp_path, start_server, connect_peer):
    """A line without its newline is not sent until the newline comes (within a second)."""
    log = tmp_path / "app.log"
    log.write_text("")
    server = await start_server({"app": log})
    peer = await connect_peer(server)
    await peer.subscribe("app")
    with open(log, "a") as handle:
        handle.write("half")
    assert await peer.quiet(0.3) == []
    with open(log, "a") as handle:
        handle.write(" and half\n")
    assert await peer.lines(1) == [("app", 1, "half and half")]


async def test_crlf_invalid_utf8_and_nul(tmp_path, start_server, connect_peer):
    """CRLF loses only its CR; invalid UTF-8 becomes U+FFFD; NUL and ESC arrive as data."""
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    server = await start_server({"app": log})
    peer = await connect_peer(server)
    await peer.subscribe("app")
    with open(log, "ab") as handle:
        handle.write(b"windows line\r\nbad \xc3\x28 byte\nnul\x00 and \x1b[2J\n")
    got = [t for _, _, t in await peer.lines(3)]
    assert got == ["windows line", "bad \ufffd( byte", "nul\x00 and \x1b[2J"]


async def test_one_megabyte_line(tmp_path, start_server, connect_peer):
    """A 1 MB line is cut at --max-line with a marker, or delivered whole when it fits."""
    log = tmp_path / "app.log"
    log.write_text("")
    cut_server = await start_server({"app": log})
    whole_server = await start_server({"app": log}, max_line=2 << 20)
    cut, whole = await connect_peer(cut_server), await connect_peer(whole_server)
    await cut.subscribe("app")
    await whole.subscribe("app")
    write_lines(log, ["z" * 1_000_000, "after"])
    (_, _, cut_line), (_, _, after) = await cut.lines(2)
    assert cut_line == "z" * 65536 + f" …[logtv: {1_000_000 - 65536:,} bytes cut]"
    assert after == "after"
    assert [len(t) for _, _, t in await whole.lines(2)] == [1_000_000, 5]


async def test_fifty_clients_at_once(tmp_path, start_server, connect_peer):
    """50 concurrent subscribers each receive every line in order."""
    log = tmp_path / "app.log"
    log.write_text("")
    server = await start_server({"app": log})
    peers = await asyncio.gather(*(connect_peer(server) for _ in range(50)))
    await asyncio.gather(*(peer.subscribe("app", batch=i % 2 == 0) for i, peer in enumerate(peers)))
    write_lines(log, [f"line {i}" for i in range(1000)])
    results = await asyncio.gather(*(peer.lines(1000, timeout=20) for peer in peers))
    for lines in results:
        assert seqs(lines) == list(range(1, 1001))
    assert server.hub.health()["clients"] == 50


def paced_writer(path: Path, total: int, per_second: int) -> None:
    """Append ``total`` 100-byte lines at about ``per_second`` lines a second."""
    line = "x" * 90
    batch = per_second // 50
    with open(path, "a", buffering=1) as handle:
        for start in range(0, total, batch):
            for i in range(start, min(start + batch, total)):
                handle.write(f"{i:08d} {line}\n")
            time.sleep(0.02)


async def test_slow_client_gets_gap_fast_client_everything(tmp_path, start_server, connect_peer):
    """A client that does not read loses its oldest lines with a gap; a fast one loses nothing."""
    log = tmp_path / "app.log"
    log.write_text("")
    server = await start_server({"app": log}, client_buffer=1 << 20)
    fast = await connect_peer(server)
    slow = await connect_peer(server, max_queue=1)
    await fast.subscribe("app", batch=True)
    await slow.subscribe("app")
    total = 100_000
    writer = threading.Thread(target=paced_writer, args=(log, total, 20_000))
    writer.start()
    got = await fast.lines(total, timeout=40)
    writer.join()
    assert seqs(got) == list(range(1, total + 1))
    assert not [m for m in fast.seen if m["type"] == "gap"]
    # Now the slow client reads: what it has is in order, and every hole is announced by a gap.
    expected_next = 1
    gaps = 0
    deadline = time.monotonic() + 30
    while expected_next <= total and time.monotonic() < deadline:
        message = await slow.recv(10)
        if message["type"] == "gap":
            assert message["reason"] == "slow_client"
            assert message["from_seq"] == expected_next
            expected_next = message["to_seq"] + 1
            gaps += 1
        elif message["type"] == "raw_log":
            assert message["seq"] == expected_next
            expected_next += 1
    assert expected_next == total + 1
    assert gaps >= 1


async def test_client_killed_mid_stream(tmp_path, start_server, connect_peer):
    """A client whose TCP connection is cut mid-stream is dropped; the others carry on."""
    log = tmp_path / "app.log"
    log.write_text("")
    server = await start_server({"app": log})
    survivor = await connect_peer(server)
    doomed = await connect_peer(server)
    await survivor.subscribe("app")
    await doomed.subscribe("app")
    write_lines(log, [f"a{i}" for i in range(500)])
    await doomed.lines(10)
    doomed.connection.transport.abort()  # like a killed process: no close frame
    write_lines(log, [f"b{i}" for i in range(500)])
    got = await survivor.lines(1000)
    assert seqs(got) == list(range(1, 1001))
    await wait_for(lambda: server.hub.health()["clients"] == 1, what="the dead client dropped")


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_message"),
        ('"hello"', "bad_message"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"log_source": "app"}', "bad_message"),
        ('{"type": "subscribe"}', "bad_field"),
        ('{"type": "subscribe", "log_source": 7}', "bad_field"),
        ('{"type": "subscribe", "log_source": "nope"}', "unknown_source"),
        ('{"type": "subscribe", "log_source": "../../etc/passwd"}', "unknown_source"),
        ('{"type": "subscribe", "log_source": "app", "backlog": -1}', "bad_field"),
        ('{"type": "subscribe", "log_source": "app", "backlog": "9"}', "bad_field"),
        ('{"type": "subscribe", "log_source": "app", "since": {"a": 1}}', "bad_field"),
        ('{"type": "unsubscribe", "log_source": "nope"}', "unknown_source"),
        ("[" * 30 + "]" * 30, "too_deep"),
        (b"\x00binary", "binary_frame"),
    ],
)
async def test_malformed_frames_get_an_error_and_keep_the_connection(
    frame, code, tmp_path, start_server, connect_peer
):
    """Each malformed frame gets an error reply naming the problem; the connection stays usable."""
    log = tmp_path / "app.log"
    log.write_text("")
    server = await start_server({"app": log})
    peer = await connect_peer(server)
    await peer.send(frame)
    error = await peer.expect("error")
    assert error["error"] == code and error["detail"]
    await peer.subscribe("app")
    write_lines(log, ["still works"])
    assert await peer.lines(1) == [("app", 1, "still works")]


async def test_oversized_client_frame_closes_with_1009(tmp_path, start_server, connect_peer):
    """A client frame over 64 KiB closes that connection with 1009; others are unaffected."""
    log = tmp_path / "app.log"
    log.write_text("")
    server = await start_server({"app": log})
    other = await connect_peer(server)
    await other.subscribe("app")
    peer = await connect_peer(server)
    await peer.send(json.dumps({"type": "subscribe", "log_source": "x" * 70_000}))
    with pytest.raises(ConnectionClosed) as closed:
        await peer.recv(5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    write_lines(log, ["fine"])
    assert await other.lines(1) == [("app", 1, "fine")]


async def test_stats_and_health(tmp_path, start_server, connect_peer):
    """stats frames report every source's seq and rate; /healthz answers with the same."""
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text("")
    b.write_text("")
    server = await start_server({"a": a, "b": b})
    peer = await connect_peer(server)
    await peer.subscribe("b")  # not subscribed to a, but still told about it
    write_lines(a, [f"{i}" for i in range(30)])
    stats = await peer.expect("stats", timeout=3)
    assert stats["sources"]["a"]["seq"] == 30 and stats["sources"]["a"]["rate"] > 0
    assert stats["sources"]["b"] == {"seq": 0, "rate": 0.0}
    response = await asyncio.to_thread(
        urllib.request.urlopen, f"http://127.0.0.1:{server.port}/healthz", timeout=5
    )
    assert response.headers.get_all("Content-Type") == ["application/json"]
    health = json.loads(response.read())
    assert health["clients"] == 1
    assert {"name": "a", "state": "following", "seq": 30} in health["sources"]


async def test_unknown_path_is_404(tmp_path, start_server):
    """Only /logs/live upgrades to a WebSocket; other paths answer 404."""
    log = tmp_path / "a.log"
    log.write_text("")
    server = await start_server({"a": log})
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://127.0.0.1:{server.port}/other", open_timeout=5):
            pass
    assert refused.value.response.status_code == 404


async def test_stalled_client_is_closed(tmp_path, start_server, connect_peer):
    """A client that accepts nothing for stall_timeout is dropped (1008); the others go on."""
    log = tmp_path / "app.log"
    log.write_text("")
    server = await start_server({"app": log}, stall_timeout=1.0, client_buffer=1 << 20)
    fast = await connect_peer(server)
    stalled = await connect_peer(server, max_queue=1)
    await fast.subscribe("app", batch=True)
    await stalled.subscribe("app", batch=True)
    stalled.connection.transport.pause_reading()  # like a SIGSTOPped process: the socket fills
    line = "s" * 200
    writer = threading.Thread(target=write_lines, args=(log, [line] * 100_000))
    writer.start()
    await fast.lines(100_000, timeout=30)
    writer.join()
    await wait_for(lambda: server.hub.health()["clients"] == 1, timeout=10, what="stall close")


async def test_backlog_larger_than_buffer_replays_what_there_is(
    tmp_path, start_server, connect_peer
):
    """A backlog beyond the buffer replays every buffered line and no gap, as for `all`."""
    log = tmp_path / "app.log"
    log.write_text("")
    server = await start_server({"app": log}, backlog=10)
    write_lines(log, [f"l{i}" for i in range(1, 31)])
    await wait_for(lambda: server.hub.sources["app"].seq == 30, what="30 lines read")
    peer = await connect_peer(server)
    ack = await peer.subscribe("app", backlog=25)
    assert ack["seq"] == {"app": 20}
    assert seqs(await peer.lines(10)) == list(range(21, 31))
    assert not [m for m in peer.seen if m["type"] == "gap"]
