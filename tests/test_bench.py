"""`logtv bench` as a user runs it, and the rules its figures rest on; no timing is asserted.

The end-to-end test runs ``logtv bench --quick`` as a real subprocess against logtv and the
in-bench peer (:mod:`logtv.bench.peer`, so websocketd is not needed), and checks that it
finishes, prints every scenario's rows, and counts no lost, duplicated or reordered line for
logtv; a second run does only the sustained fan-out search (``python -m logtv.bench
--sustained``). Speeds vary with the machine and its load, so they are printed, never compared;
the search's rules are checked against a fake target instead.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable

import pytest

from logtv.bench.lines import LATENCY_RE, SEQ_RE, WARMUP, line, warmup_line
from logtv.bench.report import integrity, peer_name
from logtv.bench.sustained import Probe, Search, bound_by, search, verdict
from logtv.bench.tracker import Tracker

PEER = f"{sys.executable} -m logtv.bench.peer --port {{port}} --file {{file}}"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    """One `logtv bench --quick --vs PEER --json FILE` run, shared by the tests that read it."""
    json_path = tmp_path_factory.mktemp("bench") / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "logtv", "bench", "--quick", "--vs", PEER, "--json", str(json_path)],
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, json.loads(json_path.read_text())


@pytest.fixture(scope="module")
def sustained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    """One `python -m logtv.bench --quick --sustained --vs PEER --json FILE` run."""
    json_path = tmp_path_factory.mktemp("bench") / "sustained.json"
    argv = ["--quick", "--sustained", "--vs", PEER, "--json", str(json_path)]
    result = subprocess.run(
        [sys.executable, "-m", "logtv.bench", *argv],
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, json.loads(json_path.read_text())


def _table_cells(stdout: str, scenario: str, metric: str) -> list[str]:
    """The cells of the row ``metric`` in the block that starts with ``scenario``."""
    current = None
    for row in stdout.splitlines():
        cells = [cell.strip() for cell in row.split("|")]
        if len(cells) < 3:
            continue
        current = cells[0] or current
        if current == scenario and cells[1] == metric:
            return cells
    raise AssertionError(f"no row {scenario!r} / {metric!r} in:\n{stdout}")


def test_quick_bench_prints_every_scenario(quick_run: tuple[str, dict]) -> None:
    """The table has a header with both columns and rows for every scenario of a quick run."""
    stdout, _ = quick_run
    header = stdout.splitlines()[0]
    assert re.match(r"scenario\s+\| metric\s+\| logtv\s+\| peer\s+\| ratio\s+\| ceiling", header)
    for scenario, metric in [
        ("writer alone, flat out", "lines/s"),
        ("tail -F alone", "lines/s"),
        ("throughput, 1 client, batched", "lines/s"),
        ("throughput, 1 client, per-line", "lost/dup/reord"),
        ("throughput, 10 clients, batched", "server CPU, RSS"),
        ("throughput, 10 clients, per-line", "clients CPU"),
        ("latency at 500 lines/s, 10 clients, batch", "p99 ms"),
        ("idle, 10 clients connected, 1.5 s", "server CPU, RSS"),
        ("sustained fan-out, 10 clients, batched", "writer lines/s, all kept up"),
    ]:
        cells = _table_cells(stdout, scenario, metric)
        assert cells[2] not in ("", "-"), (scenario, metric, cells)
    assert re.search(
        r"\d+\.\d\dx", _table_cells(stdout, "throughput, 1 client, batched", "lines/s")[4]
    )


def test_quick_bench_logtv_delivers_every_line_in_order(quick_run: tuple[str, dict]) -> None:
    """Every logtv run reached every client with every line once, in order, and without a gap."""
    stdout, results = quick_run
    logtv_runs = [run for run in results["runs"] if run["target"] == "logtv"]
    assert {run["scenario"] for run in logtv_runs} == {"throughput", "latency", "idle"}
    for run in logtv_runs:
        assert run["errors"] == [], run
        assert (run["lost"], run["duplicated"], run["reordered"]) == (0, 0, 0), run
        assert run["announced_drops"] == 0, run
        if run["scenario"] != "idle":
            assert run["received"] == run["expected"] > 0, run
            assert run["complete"] == run["clients"], run
    for clients in (1, 10):
        for mode in ("batched", "per-line"):
            scenario = f"throughput, {clients} client{'s' * (clients > 1)}, {mode}"
            assert _table_cells(stdout, scenario, "lost/dup/reord")[2] == "0/0/0"


def test_quick_bench_peer_and_ceiling_ran(quick_run: tuple[str, dict]) -> None:
    """The peer and the blaster ceiling ran through the same workload and lost nothing."""
    _, results = quick_run
    for run in results["runs"]:
        if run["target"] in ("peer", "ceiling") and run["scenario"] != "idle":
            assert run["errors"] == [], run
            assert run["received"] == run["expected"], run
    assert results["tail"]["received"] == results["tail"]["expected"] == 2000
    assert results["writer"]["lines"] == 2000


def test_tracker_counts_lost_duplicated_reordered() -> None:
    """Holes are lost until filled late (reordered); a repeat is duplicated."""
    tracker = Tracker(6)
    tracker.add([1, 2], 10)
    assert (tracker.received, tracker.lost, tracker.done) == (2, 4, False)
    tracker.add([4, 3, 3, 6], 20)
    assert (tracker.received, tracker.lost) == (5, 1)
    assert (tracker.reordered, tracker.duplicated) == (1, 1)
    assert tracker.done and tracker.first_ns == 10 and tracker.last_ns == 20


def test_tracker_fills_a_dropped_range_from_the_middle() -> None:
    """A late line inside a dropped run splits the hole; the ends stay lost."""
    tracker = Tracker(10)
    tracker.add([1, 9, 10], 1)
    assert (tracker.lost, tracker.holes) == (7, [[2, 9]])
    tracker.add([5, 2, 8, 5], 2)
    assert (tracker.lost, tracker.reordered, tracker.duplicated) == (4, 3, 1)
    assert tracker.holes == [[3, 5], [6, 8]]


def test_tracker_latency_is_receive_minus_send() -> None:
    """Latency samples are the read time minus each line's stamp, in microseconds."""
    tracker = Tracker(2, collect_latency=True)
    tracker.add([1, 2], 5_000_000, [1000, 4000])
    assert list(tracker.latencies_us) == [4000, 1000]


def test_lines_carry_seq_and_stamp_warmups_do_not_count() -> None:
    """A bench line yields its seq and stamp to the patterns; a warm-up line yields nothing."""
    text = line(42, 123456789)
    assert text.endswith(b" #42 @123456789\n") and 90 < len(text) < 130
    assert SEQ_RE.findall(text) == [b"42"]
    assert LATENCY_RE.findall(text) == [(b"42", b"123456789")]
    warm = warmup_line()
    assert WARMUP in warm and not SEQ_RE.findall(warm)


def test_report_cells() -> None:
    """Peers are named by program or module; a gap the server announced is not counted as lost."""
    assert peer_name("websocketd --port {port} tail -n0 -F {file}") == "websocketd"
    assert peer_name(PEER) == "peer"
    figures = {"lost": 5, "duplicated": 0, "reordered": 1, "announced_drops": 3}
    assert integrity(figures) == "2/0/1 +3 gap"


def test_quick_sustained_rows_and_logtv_keeps_every_line(sustained_run: tuple[str, dict]) -> None:
    """--sustained prints only its blocks; at logtv's sustained rate every client got every line."""
    stdout, results = sustained_run
    scenarios = {row.split("|")[0].strip() for row in stdout.split("\n\n")[0].splitlines()[2:]}
    assert scenarios - {""} == {
        "sustained fan-out, 10 clients, batched",
        "sustained fan-out, 10 clients, per-line",
    }
    for label in ("batched", "per-line"):
        scenario = f"sustained fan-out, 10 clients, {label}"
        for metric in (
            "writer lines/s, all kept up",
            "delivered lines/s (x clients)",
            "p99 ms",
            "server CPU, RSS",
            "clients CPU",
        ):
            cells = _table_cells(stdout, scenario, metric)
            assert cells[2] not in ("", "-") and cells[3] not in ("", "-"), cells
        assert _table_cells(stdout, scenario, "lost/dup/reord")[2] == "0/0/0"
    searches = {(found["target"], found["mode"]): found for found in results["sustained"]}
    assert set(searches) == {("logtv", "batch"), ("logtv", "line"), ("peer", "plain")}
    for (target, _), found in searches.items():
        assert found["rate"] and 1 <= len(found["probes"]) <= 2, found
        assert found["delivered"] == found["rate"] * found["clients"] == found["rate"] * 10
        best = found["best"]
        assert best["received"] == best["expected"] > 0 and best["complete"] == 10, best
        if target == "logtv":
            assert (best["lost"], best["duplicated"], best["reordered"]) == (0, 0, 0), best
            assert best["announced_drops"] == 0 and best["errors"] == [], best
            assert best["latency"]["p99_ms"] >= best["latency"]["p50_ms"] > 0, best


def test_latency_only_run_prints_only_latency_blocks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """--latency runs the latency scenario alone (logtv batched and the peer), nothing else."""
    json_path = tmp_path / "latency.json"
    argv = ["--quick", "--latency", "--clients", "3", "--vs", PEER, "--json", str(json_path)]
    result = subprocess.run(
        [sys.executable, "-m", "logtv", "bench", *argv],
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads(json_path.read_text())["runs"]
    assert {(run["scenario"], run["mode"]) for run in runs} == {
        ("latency", "batch"),
        ("latency", "plain"),
    }
    scenario = "latency at 500 lines/s, 3 clients, batch"
    assert _table_cells(result.stdout, scenario, "lost/dup/reord")[2:4] == ["0/0/0", "0/0/0"]
    blocks = {row.split("|")[0].strip() for row in result.stdout.split("\n\n")[0].splitlines()[2:]}
    assert blocks - {""} == {"latency at 500 lines/s, 3 clients, batch"}


def _fake_target(threshold: float, tried: list[float]) -> Callable[[float], Probe]:
    def measure(rate: float) -> Probe:
        tried.append(rate)
        return Probe(rate, {}, "" if rate <= threshold else "gap")

    return measure


def test_sustained_search_doubles_then_bisects_within_its_bounds() -> None:
    """From 2,000 lines/s (100 clients) it doubles to the first failure, then bisects."""
    tried: list[float] = []
    probes = search(_fake_target(11_000, tried), 100, Search())
    assert tried[:4] == [2_000, 4_000, 8_000, 16_000]
    assert len(probes) <= 8 and all(8_000 <= rate <= 16_000 for rate in tried[4:])
    best = max(p.rate for p in probes if p.passed)
    failed = min(p.rate for p in probes if not p.passed)
    assert best <= 11_000 < failed < best * 1.15


def test_sustained_search_halves_and_stops_at_floor_and_cap() -> None:
    """A target that always fails is halved to the floor; one that never fails stops at the cap."""
    tried: list[float] = []
    search(_fake_target(0, tried), 100, Search(floor=300))
    assert tried == [2_000, 1_000, 500, 300]
    tried = []
    search(_fake_target(1e9, tried), 10, Search(cap=100_000))
    assert tried == [20_000, 40_000, 80_000, 100_000]
    tried = []
    search(_fake_target(1e9, tried), 100, Search(max_probes=3))
    assert len(tried) == 3


def test_sustained_verdict_and_bound() -> None:
    """A probe passes only if all clients got all lines in time and the writer kept its rate."""
    good = {
        "errors": [],
        "writer": {"rate": 1000.0},
        "clients": 2,
        "complete": 2,
        "received": 200,
        "expected": 200,
        "lost": 0,
        "duplicated": 0,
        "reordered": 0,
        "announced_drops": 0,
        "latency": {"p50_ms": 2.0, "p99_ms": 9.0},
    }
    assert verdict(good, 1000, 1.0) == ""
    assert verdict(good | {"writer": {"rate": 900.0}}, 1000, 1.0) == "writer short"
    assert verdict(good | {"announced_drops": 5, "lost": 5}, 1000, 1.0) == "gap"
    assert verdict(good | {"complete": 1, "lost": 7}, 1000, 1.0) == "late"
    assert verdict(good | {"reordered": 1}, 1000, 1.0) == "reordered"
    assert verdict(good | {"latency": {"p99_ms": 1500.0}}, 1000, 1.0) == "slow"
    busy = {"writer": {"rate": 1000.0}, "client_cpu_max_percent": 97.0, "server_cpu_percent": 40}
    assert bound_by(busy | {"busy_cores": 1.2}, 1000, 2) == "clients"
    assert bound_by({"server_cpu_percent": 99, "busy_cores": 2.0}, 0, 2) == "server, all cores"
    assert bound_by({"busy_cores": 1.9, "other_cores": 1.2}, 0, 2) == "all cores, +1.2 other"
    assert bound_by({"busy_cores": 1.0}, 0, 2) == "none"


def test_peer_url_templates() -> None:
    """A --vs-url fills in the port, the file and the file's MD5 (frontail's namespace)."""
    import hashlib
    from pathlib import Path

    from logtv.bench.targets import peer_url

    file = Path("/tmp/x/bench.log")
    assert peer_url(None, 4242, file) == "ws://127.0.0.1:4242/"
    url = peer_url("ws://127.0.0.1:{port}/socket.io/?EIO=3#send=40/{md5file},", 4242, file)
    digest = hashlib.md5(b"/tmp/x/bench.log").hexdigest()
    assert url == f"ws://127.0.0.1:4242/socket.io/?EIO=3#send=40/{digest},"
