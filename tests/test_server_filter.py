"""Server-side filters on a subscription: real server, real files, real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from logtv.client.app import WatchApp
from logtv.client.connection import Event, Gap, Lines, LogClient, Reply, Stats
from logtv.server import filters, hub
from logtv.server.filters import (
    MAX_FILTER_LENGTH,
    MAX_FILTERED_CHARS,
    FilterError,
    compile_filter,
    parse_severity,
)
from logtv.server.server import LogServer
from logtv.server.watcher import SourceUpdate
from tests.conftest import Peer, write_lines

Line = tuple[str, int, str]


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.02)


def frame_lines(message: dict[str, Any]) -> list[Line]:
    """(source, seq, text) of a line frame, in either form, with or without ``seqs``."""
    if message["type"] == "raw_log":
        return [(message["log_source"], message["seq"], message["raw_line"])]
    if message["type"] == "raw_logs":
        first, texts = message["seq"], message["lines"]
        seqs = message.get("seqs") or range(first, first + len(texts))
        return [(message["log_source"], seq, line) for seq, line in zip(seqs, texts, strict=True)]
    return []


async def collect(peer: Peer, count: int, timeout: float = 10.0) -> list[Line]:
    """The next ``count`` lines a peer gets; fails on a gap (filtered lines are not gaps)."""
    found: list[Line] = []
    deadline = time.monotonic() + timeout
    while len(found) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"got {len(found)} of {count} lines: {found[-3:]}")
        message = await peer.recv(remaining)
        assert message["type"] != "gap", message
        found.extend(frame_lines(message))
    assert len(found) == count, found
    return found


async def nothing_more(peer: Peer, seconds: float = 0.5) -> None:
    """No line, gap or error arrives within ``seconds`` (stats may)."""
    assert [m for m in await peer.quiet(seconds) if m["type"] != "source"] == []


async def one_file(tmp_path: Path, start_server, **options: Any) -> tuple[LogServer, Path]:  # type: ignore[no-untyped-def]
    log = tmp_path / "app.log"
    log.write_text("")
    return await start_server({"app": log}, **options), log


MIXED = [f"{'ERROR' if i % 3 == 0 else 'ok'} line {i}" for i in range(1, 31)]
ERRORS = [(i, text) for i, text in enumerate(MIXED, 1) if text.startswith("ERROR")]


# -- compiling ---------------------------------------------------------------------------------


def test_compile_refuses_what_re2_cannot_do() -> None:
    """Backreferences, lookaround, bad syntax and over-long patterns are refused as bad_filter."""
    for pattern in [r"(a)\1", "(?=a)b", "(?<!a)b", "(", "a" * (MAX_FILTER_LENGTH + 1)]:
        with pytest.raises(FilterError) as caught:
            compile_filter(pattern)
        assert caught.value.code == "bad_filter"
    with pytest.raises(FilterError, match="backreferences"):
        compile_filter(r"(a)\1")
    with pytest.raises(FilterError, match="too much memory"):
        compile_filter(r"\pL{1000}")


def test_compile_refuses_costly_and_whole_text_patterns() -> None:
    """Too big a program, and anchors that would see the joined chunk as one text, are refused."""
    with pytest.raises(FilterError, match="too complex"):
        compile_filter("(.*a.{30}){30}c")
    assert compile_filter(r"\pL+") is not None  # a Unicode class is big, but not too big
    for pattern, said in [
        (r"\Afoo", r"\A is not supported"),
        (r"foo\z", r"\z is not supported"),
        (r"a\Cb", r"\C"),
        ("(?-m)^a", "multi-line"),
        ("(?i-m:a)", "multi-line"),
    ]:
        with pytest.raises(FilterError, match=re2.escape(said)):
            compile_filter(pattern)
    assert compile_filter(r"\\A") is not None  # a backslash and an A: fine


PATTERN_PARTS = ["a", "b", ".", "^", "$", "a*", "[ab]", r"\b", "(a|b)", "b+", "x?", " ", r"\s"]
PATTERN_PARTS += ["[^a]", r"\w+", "é", "a{2}", r"\B", "(?:ab)?", r"\d"]


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.sampled_from(PATTERN_PARTS), min_size=1, max_size=4),
    ignore_case=st.booleans(),
    lines=st.lists(st.text(alphabet="abAé 1\t", max_size=8), min_size=1, max_size=10),
    piece=st.sampled_from([4, 64, 256 * 1024]),
)
def test_one_search_per_chunk_is_the_same_as_one_per_line(
    parts: list[str], ignore_case: bool, lines: list[str], piece: int
) -> None:
    """Searching a chunk's lines joined (in pieces of any size) picks what line by line would."""
    pattern = ("(?i)" if ignore_case else "") + "".join(parts)
    line_filter = compile_filter(pattern)
    assert line_filter is not None
    search = re2.compile(pattern).search
    saved = filters.PIECE_CHARS
    filters.PIECE_CHARS = piece
    try:
        assert line_filter.select(lines, None) == [i for i, x in enumerate(lines) if search(x)]
    finally:
        filters.PIECE_CHARS = saved


def test_a_filter_looks_at_a_long_lines_start_only() -> None:
    """A match past the first MAX_FILTERED_CHARS characters of a line does not count."""
    line_filter = compile_filter("needle")
    assert line_filter is not None
    early = "needle" + "x" * MAX_FILTERED_CHARS
    late = "x" * MAX_FILTERED_CHARS + "needle"
    assert line_filter.select([early, late, "needle"], None) == [0, 2]


def test_severity_select_with_missing_severities() -> None:
    """Lines past a short severity list's end, or marked above 7, have none: they pass."""
    line_filter = compile_filter(None, "err")
    assert line_filter is not None
    assert line_filter.select(["a", "b", "c", "d"], [2, 6]) == [0, 2, 3]
    assert line_filter.select(["a", "b", "c"], [4, 8, 3]) == [1, 2]  # 8: the hub's "none"
    assert line_filter.select(["a", "b"], None) == [0, 1]


def test_severity_names_and_numbers() -> None:
    """Syslog names (with `error` for err) and 0-7 give the severity; anything else is refused."""
    assert parse_severity("warning") == 4
    assert parse_severity("ERROR") == parse_severity("err") == 3
    assert parse_severity(0) == 0 and parse_severity("7") == 7
    for bad in ["loud", 8, -1, True, None, "4.0", 2.0]:
        with pytest.raises(FilterError) as caught:
            parse_severity(bad)
        assert caught.value.code == "bad_severity"


def test_no_filter_and_debug_are_unfiltered() -> None:
    """An empty pattern and min_severity debug (the least severe) filter nothing: None."""
    assert compile_filter(None) is None
    assert compile_filter("") is None
    assert compile_filter(None, "debug") is None
    assert compile_filter("x") == compile_filter("x")  # equal filters are one to the hub


# -- on the wire -------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [False, True])
async def test_only_matching_lines_arrive_with_their_seq(
    tmp_path, start_server, connect_peer, batch
):
    """A filtered subscription gets only matching lines, each with its real seq, and no gap."""
    server, log = await one_file(tmp_path, start_server)
    peer = await connect_peer(server)
    await peer.subscribe("app", filter="^ERROR", batch=batch)
    write_lines(log, MIXED)
    got = await collect(peer, len(ERRORS))
    assert got == [("app", seq, text) for seq, text in ERRORS]
    kinds = {m["type"] for m in peer.seen if frame_lines(m)}
    assert kinds == ({"raw_logs"} if batch else {"raw_log"})
    if batch:
        assert all("seqs" in m for m in peer.seen if m["type"] == "raw_logs")
    await nothing_more(peer)


async def test_different_filters_on_one_source_and_an_unfiltered_client(
    tmp_path, start_server, connect_peer
):
    """Two filters and no filter on one source: each client gets exactly its lines, in order."""
    server, log = await one_file(tmp_path, start_server)
    errors = await connect_peer(server)
    await errors.subscribe("app", filter="ERROR", batch=True)
    evens = await connect_peer(server)
    await evens.subscribe("app", filter=r"[02468]$")
    same_as_errors = await connect_peer(server)
    await same_as_errors.subscribe("app", filter="ERROR")
    everything = await connect_peer(server)
    await everything.subscribe("app", batch=True)
    write_lines(log, MIXED)
    all_lines = [("app", seq, text) for seq, text in enumerate(MIXED, 1)]
    assert await collect(everything, len(MIXED)) == all_lines
    assert all("seqs" not in m for m in everything.seen)  # the plain form, unchanged
    wanted_errors = [line for line in all_lines if "ERROR" in line[2]]
    assert await collect(errors, len(wanted_errors)) == wanted_errors
    assert await collect(same_as_errors, len(wanted_errors)) == wanted_errors
    wanted_evens = [line for line in all_lines if line[2][-1] in "02468"]
    assert await collect(evens, len(wanted_evens)) == wanted_evens
    for peer in (errors, evens, same_as_errors, everything):
        await nothing_more(peer, 0.3)


async def test_all_with_a_filter(tmp_path, start_server, connect_peer):
    """A filter on `all` applies to every source's lines."""
    auth, ufw = tmp_path / "auth.log", tmp_path / "ufw.log"
    auth.write_text("")
    ufw.write_text("")
    server = await start_server({"auth": auth, "ufw": ufw})
    peer = await connect_peer(server)
    await peer.subscribe("all", filter="203\\.0\\.113\\.", batch=True)
    write_lines(auth, ["Failed password from 198.51.100.1", "Failed password from 203.0.113.5"])
    write_lines(ufw, ["[UFW BLOCK] SRC=203.0.113.9", "[UFW BLOCK] SRC=192.0.2.7"])
    got = sorted(await collect(peer, 2))
    assert got == [
        ("auth", 2, "Failed password from 203.0.113.5"),
        ("ufw", 1, "[UFW BLOCK] SRC=203.0.113.9"),
    ]
    await nothing_more(peer)


async def test_backlog_replay_is_filtered(tmp_path, start_server, connect_peer):
    """A filtered backlog replays the N newest buffered lines that match, and only those."""
    log = tmp_path / "app.log"
    write_lines(log, MIXED)
    server = await start_server({"app": log})
    for batch in (False, True):
        peer = await connect_peer(server)
        ack = await peer.subscribe("app", backlog=5, filter="^ERROR", batch=batch)
        assert ack["seq"] == {"app": 17}
        wanted = [("app", seq, text) for seq, text in ERRORS if seq > 17]
        assert await collect(peer, 5) == wanted
        await nothing_more(peer, 0.3)
    peer = await connect_peer(server)
    ack = await peer.subscribe("app", backlog=100, filter="^ERROR")
    assert ack["seq"] == {"app": 2}  # fewer matches than asked for: all of them, no gap
    assert await collect(peer, len(ERRORS)) == [("app", seq, text) for seq, text in ERRORS]


async def test_backlog_for_all_with_a_filter(tmp_path, start_server, connect_peer):
    """For `all`, a filtered backlog is the N newest matching lines across the sources."""
    old, new = tmp_path / "old.log", tmp_path / "new.log"
    write_lines(old, ["ERROR old 1", "ok old", "ERROR old 2"])
    new.write_text("")
    server = await start_server({"old": old, "new": new})
    write_lines(new, ["ERROR new 1", "ok new", "ERROR new 2"])
    await wait_for(lambda: server.hub is not None and server.hub.sources["new"].seq == 3)
    peer = await connect_peer(server)
    ack = await peer.subscribe("all", backlog=3, filter="ERROR", batch=True)
    assert ack["seq"] == {"old": 2, "new": 0}
    got = await collect(peer, 3)
    assert got == [("old", 3, "ERROR old 2"), ("new", 1, "ERROR new 1"), ("new", 3, "ERROR new 2")]
    await nothing_more(peer, 0.3)


async def test_since_resumes_across_filtered_lines(tmp_path, start_server, connect_peer):
    """A resume with `since` gets the matching lines after it: none repeated, none lost."""
    server, log = await one_file(tmp_path, start_server)
    peer = await connect_peer(server)
    await peer.subscribe("app", filter="^ERROR")
    write_lines(log, MIXED[:10])
    first = await collect(peer, 3)  # seq 3, 6, 9
    assert [seq for _, seq, _ in first] == [3, 6, 9]
    await peer.connection.close()
    write_lines(log, MIXED[10:])
    await wait_for(lambda: server.hub is not None and server.hub.sources["app"].seq == 30)
    again = await connect_peer(server)
    await again.subscribe("app", since=first[-1][1], filter="^ERROR", batch=True)
    wanted = [("app", seq, text) for seq, text in ERRORS if seq > 9]
    assert await collect(again, len(wanted)) == wanted
    await nothing_more(again)


async def test_client_resume_after_many_filtered_lines_shows_no_gap(tmp_path, start_server):
    """The client's position follows stats past filtered lines: a resume reports no gap.

    The server keeps only 5 lines; 40 non-matching lines go by, then the connection drops.
    Resuming from the last matching line would find it long gone (a not_buffered gap); the
    client resumes from where stats said it got to instead.
    """
    server, log = await one_file(tmp_path, start_server, backlog=5)
    client = LogClient(server.url, sources=["app"], line_filter="^ERROR", max_backoff=0.5)
    events: list[Event] = []

    async def read() -> None:
        async for event in client.events():
            events.append(event)

    reader = asyncio.create_task(read())
    try:
        await wait_for(lambda: any(isinstance(e, Reply) for e in events), what="the ack")
        write_lines(log, ["ERROR first", *[f"ok {i}" for i in range(40)]])
        await wait_for(
            lambda: any(isinstance(e, Stats) and e.sources["app"][0] == 41 for e in events),
            what="stats after the lines",
        )
        assert client.position.seq["app"] == 41
        before = len(events)
        connection = client._connection
        assert connection is not None
        await connection.close()
        await wait_for(
            lambda: sum(isinstance(e, Reply) and e.kind == "subscribed" for e in events) == 2,
            what="the resubscribe",
        )
        write_lines(log, ["ok again", "ERROR second"])
        await wait_for(
            lambda: any(isinstance(e, Lines) and e.lines == ["ERROR second"] for e in events),
            what="the second match",
        )
        lines = [e for e in events if isinstance(e, Lines)]
        assert [(e.last_seq, e.lines) for e in lines] == [
            (1, ["ERROR first"]),
            (43, ["ERROR second"]),
        ]
        assert not any(isinstance(e, Gap) for e in events[before:])
    finally:
        await client.close()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


async def test_hostile_pattern_does_not_stall_others(tmp_path, start_server, connect_peer):
    """`(a+)+$` against a 60 KiB line: an unfiltered client still gets every line after it."""
    server, log = await one_file(tmp_path, start_server)
    hostile = await connect_peer(server)
    await hostile.subscribe("app", filter="(a+)+$")
    plain = await connect_peer(server)
    await plain.subscribe("app", batch=True)
    long_line = "a" * (60 * 1024) + "!"
    write_lines(log, [long_line] * 5 + ["after 1", "after 2 aaa"])
    got = await collect(plain, 7, timeout=20)
    assert [text for _, _, text in got] == [long_line] * 5 + ["after 1", "after 2 aaa"]
    assert await collect(hostile, 1, timeout=20) == [("app", 7, "after 2 aaa")]


async def test_overlapping_subscriptions_send_what_either_lets_through(
    tmp_path, start_server, connect_peer
):
    """`all` with one filter and `app` with another: a line goes once if either matches."""
    server, log = await one_file(tmp_path, start_server)
    peer = await connect_peer(server)
    assert peer.hello["filter"] is True
    await peer.subscribe("all", filter="^ERROR")
    ack = await peer.subscribe("app", filter="5$")
    assert ack["seq"] == {}  # already covered by `all`
    write_lines(log, MIXED)
    wanted = [
        ("app", seq, text)
        for seq, text in enumerate(MIXED, 1)
        if text.startswith("ERROR") or text.endswith("5")
    ]
    assert await collect(peer, len(wanted)) == wanted
    await nothing_more(peer, 0.3)


async def test_subscribing_again_replaces_the_filter(tmp_path, start_server, connect_peer):
    """A second subscribe to the same source changes its filter from then on, replaying nothing."""
    server, log = await one_file(tmp_path, start_server)
    peer = await connect_peer(server)
    await peer.subscribe("app", filter="^ERROR")
    write_lines(log, ["ERROR a", "ok b"])
    assert await collect(peer, 1) == [("app", 1, "ERROR a")]
    await wait_for(lambda: server.hub is not None and server.hub.sources["app"].seq == 2)
    assert (await peer.subscribe("app", filter="^ok"))["seq"] == {}
    write_lines(log, ["ERROR c", "ok d"])
    assert await collect(peer, 1) == [("app", 4, "ok d")]
    assert (await peer.subscribe("app"))["seq"] == {}  # no filter: every line again
    write_lines(log, ["ERROR e", "ok f"])
    assert await collect(peer, 2) == [("app", 5, "ERROR e"), ("app", 6, "ok f")]


async def test_client_warns_when_the_server_cannot_filter(tmp_path, start_server, monkeypatch):
    """Against a server whose hello lacks `filter` (an older one), the client says so."""
    original = hub.Hub.hello

    def old_hello(self, allowed=None):  # type: ignore[no-untyped-def]
        message = json.loads(original(self, allowed))
        del message["filter"]
        return json.dumps(message).encode()

    monkeypatch.setattr(hub.Hub, "hello", old_hello)
    server, _ = await one_file(tmp_path, start_server)
    client = LogClient(server.url, sources=["app"], line_filter="x", reconnect=False)
    replies: list[Reply] = []
    events = client.events()
    try:
        async for event in events:
            if isinstance(event, Reply):
                replies.append(event)
                if event.kind == "subscribed":
                    break
    finally:
        await client.close()
        await events.aclose()
    assert replies[0].error == "filter_unsupported"
    assert replies[0].detail is not None and "cannot filter" in replies[0].detail


async def test_truly_costly_filter_is_cut_off_and_others_keep_flowing(
    tmp_path, start_server, connect_peer
):
    """A pattern that is slow in RE2 too, on 60 KiB lines: the unfiltered client gets them all.

    The filtered client gets no line (none matches); whether its filter ran out of budget and
    it was closed depends on the machine's speed, so either outcome is accepted.
    """
    server, log = await one_file(tmp_path, start_server)
    costly = await connect_peer(server)
    await costly.subscribe("app", filter="(.*a.{25}){8}c")
    plain = await connect_peer(server)
    await plain.subscribe("app", batch=True)
    noise = "ab" * (30 * 1024)
    write_lines(log, [noise] * 20 + ["after"])
    got = await collect(plain, 21, timeout=30)
    assert [text for _, _, text in got][-1] == "after"
    try:
        assert [m for m in await costly.quiet(0.5) if frame_lines(m)] == []
    except ConnectionClosed as closed:
        assert closed.rcvd is not None and closed.rcvd.code == 1008


async def test_filter_over_budget_closes_its_clients(
    tmp_path, start_server, connect_peer, monkeypatch
):
    """A filter that overruns its time budget closes its clients (1008); others go on."""
    monkeypatch.setattr(hub, "FILTER_BUDGET", 0.0)  # any search overruns: no timing involved
    server, log = await one_file(tmp_path, start_server)
    filtered = await connect_peer(server)
    await filtered.subscribe("app", filter="ERROR")
    by_severity = await connect_peer(server)  # no pattern: nothing to time
    await by_severity.subscribe("app", min_severity="err")
    plain = await connect_peer(server)
    await plain.subscribe("app")
    write_lines(log, ["ERROR one", "two"])
    assert [t for _, _, t in await collect(plain, 2)] == ["ERROR one", "two"]
    assert [t for _, _, t in await collect(by_severity, 2)] == ["ERROR one", "two"]
    with pytest.raises(ConnectionClosed) as caught:
        for _ in range(100):
            assert frame_lines(await filtered.recv()) == []
    assert caught.value.rcvd is not None
    assert (caught.value.rcvd.code, caught.value.rcvd.reason) == (1008, "filter too costly")
    write_lines(log, ["three"])
    assert await collect(plain, 1) == [("app", 3, "three")]


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"filter": "(a)\\1"}, "bad_filter"),
        ({"filter": "(?=x)y"}, "bad_filter"),
        ({"filter": "[unclosed"}, "bad_filter"),
        ({"filter": "x" * (MAX_FILTER_LENGTH + 1)}, "bad_filter"),
        ({"filter": "(.*a.{30}){30}c"}, "bad_filter"),
        ({"filter": "\\Astart"}, "bad_filter"),
        ({"filter": "\ud800"}, "bad_filter"),
        ({"filter": 12}, "bad_filter"),
        ({"filter": ["a"]}, "bad_filter"),
        ({"min_severity": "loud"}, "bad_severity"),
        ({"min_severity": 9}, "bad_severity"),
        ({"min_severity": True}, "bad_severity"),
        ({"min_severity": {"a": 1}}, "bad_severity"),
    ],
)
async def test_bad_filters_get_an_error_and_no_subscription(
    tmp_path, start_server, connect_peer, options, code
):
    """A bad filter or severity gets an error reply; nothing is subscribed; the link stays up."""
    server, log = await one_file(tmp_path, start_server)
    peer = await connect_peer(server)
    await peer.send({"type": "subscribe", "log_source": "app", **options})
    error = await peer.expect("error")
    assert error["error"] == code and error["detail"]
    write_lines(log, ["not for us"])
    await wait_for(lambda: server.hub is not None and server.hub.sources["app"].seq == 1)
    await nothing_more(peer, 0.3)
    await peer.subscribe("app", filter="fine")  # the connection still works
    write_lines(log, ["fine now"])
    assert await collect(peer, 1) == [("app", 2, "fine now")]


async def test_min_severity_keeps_severe_lines_and_lines_without_one(
    tmp_path, start_server, connect_peer
):
    """min_severity keeps lines at least that severe; lines with no severity (files) pass."""
    server, _ = await one_file(tmp_path, start_server)
    assert server.hub is not None
    hub = server.hub
    warnings = await connect_peer(server)
    await warnings.subscribe("app", min_severity="warning", batch=True)
    errors_with_text = await connect_peer(server)
    await errors_with_text.subscribe("app", min_severity=3, filter="disk")
    everything = await connect_peer(server)
    await everything.subscribe("app")
    texts = ["emerg disk", "err disk", "warning net", "notice disk", "debug disk", "info"]
    hub.publish(
        [SourceUpdate("app", texts, [], "following", time.time(), severities=[0, 3, 4, 5, 7, 6])]
    )
    hub.publish([SourceUpdate("app", ["no severity disk"], [], "following", time.time())])
    assert [t for _, _, t in await collect(everything, 7)] == [*texts, "no severity disk"]
    assert await collect(warnings, 4) == [
        ("app", 1, "emerg disk"),
        ("app", 2, "err disk"),
        ("app", 3, "warning net"),
        ("app", 7, "no severity disk"),
    ]
    assert await collect(errors_with_text, 3) == [
        ("app", 1, "emerg disk"),
        ("app", 2, "err disk"),
        ("app", 7, "no severity disk"),
    ]
    await nothing_more(warnings, 0.3)
    await nothing_more(errors_with_text, 0.1)


async def test_stats_stay_unfiltered(tmp_path, start_server, connect_peer):
    """A filtered client's stats count every line of the source, not only those it got."""
    server, log = await one_file(tmp_path, start_server)
    peer = await connect_peer(server)
    await peer.subscribe("app", filter="^ERROR")
    write_lines(log, MIXED)
    await collect(peer, len(ERRORS))
    deadline = time.monotonic() + 5
    while True:
        stats = await peer.expect("stats", timeout=max(0.01, deadline - time.monotonic()))
        if stats["sources"]["app"]["seq"] == len(MIXED):
            break


# -- the viewers -------------------------------------------------------------------------------


def test_tail_filter_end_to_end(tmp_path: Path, serve_process) -> None:
    """`logtv tail --filter` prints only the matching lines; a bad pattern exits 2 at once."""
    log = tmp_path / "app.log"
    log.write_text("")
    server = serve_process("--source", f"app={log}")
    server.wait_listening()
    command = [sys.executable, "-m", "logtv", "tail", f"127.0.0.1:{server.port}"]
    tail = subprocess.Popen(
        [*command, "--json", "--backlog", "0", "--filter", "^ERROR"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert tail.stderr is not None and tail.stdout is not None
        assert "connected to" in tail.stderr.readline()
        time.sleep(0.5)  # let the subscribe reach the server before the lines are written
        write_lines(log, MIXED)
        got = [json.loads(tail.stdout.readline()) for _ in ERRORS]
        assert [(o["seq"], o["raw_line"]) for o in got] == ERRORS
    finally:
        tail.terminate()
        tail.wait(5)
    bad = subprocess.run(
        [*command, "--filter", "(a)\\1"], capture_output=True, text=True, timeout=30
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("logtv: error: --filter: backreferences are not supported")
    bad = subprocess.run(
        [*command, "--min-severity", "loud"], capture_output=True, text=True, timeout=30
    )
    assert bad.returncode == 2 and "--min-severity" in bad.stderr


async def test_watch_filter_shows_matching_lines_and_unfiltered_counts(tmp_path, start_server):
    """`logtv watch --filter`: the pane has only matching lines; the sidebar counts them all."""
    server, log = await one_file(tmp_path, start_server)
    client = LogClient(server.url, sources=None, line_filter="^ERROR")
    app = WatchApp(client)
    async with app.run_test(size=(100, 30)) as pilot:
        deadline = time.monotonic() + 5
        while not (app.rows and all(r.acked for r in app.rows.values())):
            assert time.monotonic() < deadline, "subscribed"
            await pilot.pause(0.05)
        write_lines(log, MIXED)
        deadline = time.monotonic() + 10
        while not (len(app.scrollback) == len(ERRORS) and app.rows["app"].seq == len(MIXED)):
            assert time.monotonic() < deadline, (len(app.scrollback), app.rows["app"].seq)
            await pilot.pause(0.05)
        assert [e.text for e in app.scrollback.iter_shown()] == [t for _, t in ERRORS]
        assert app.lines_lost == 0
        assert "30" in app.source_list.render().plain
