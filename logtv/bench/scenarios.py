"""One measured run: a fresh server, client processes, warm-up, the workload, the figures.

Every run follows the same steps, whatever the target: start the server on a new file, start
the client processes and wait until each client is connected and has received a warm-up line
(so nothing measured is lost to a subscription that was not in place yet), read the server's CPU,
start the writer (or tell the blaster to go), wait for the clients' results, read the CPU and
memory again, and end everything. Each step has a time limit; the ``finally`` ends every process
and removes the file whatever happened.

:func:`run_tail` measures ``tail -F`` on its own the same way, as the baseline that shows what
"keeping up with the writer" means on this machine.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logtv.bench.lines import SEQ_RE, WARMUP, warmup_line
from logtv.bench.procs import Child, busy_cores, cpu_seconds, machine_ticks, rss_bytes
from logtv.bench.targets import Target
from logtv.bench.tracker import Tracker

__all__ = ["Load", "percentiles", "run_load", "run_tail"]

READY_TIMEOUT = 30.0
WARMUP_INTERVAL = 0.1


@dataclass(frozen=True)
class Load:
    """What one run does: how many clients read how, and what the writer writes."""

    clients: int
    mode: str
    #: Lines the writer writes (0 with ``idle``).
    count: int
    #: Lines per second, or None for flat out.
    rate: float | None = None
    latency: bool = False
    #: With ``latency``, only every Nth client of a process parses the stamps (they cost CPU).
    latency_every: int = 1
    #: Seconds to stay connected with no writes (the idle scenario), instead of writing.
    idle: float | None = None
    processes: int = 2
    #: Longest the run may take once the writing starts.
    deadline: float = 120.0
    #: Clients give up after this long without a line (once lines have flowed): long, since an
    #: overloaded server may leave some clients waiting for seconds (see longest_silence_ns).
    quiet: float = 30.0
    #: If set, clients still short of the last line this long after the writer wrote it are
    #: stopped (what they lack counts as lost): the run then checks they kept up, not only that
    #: they caught up eventually.
    lag_limit: float | None = None


def _spawn_clients(url: str, load: Load, workdir: Path) -> list[tuple[Child, Path | None]]:
    processes = max(1, min(load.processes, load.clients))
    workers = []
    for index in range(processes):
        share = load.clients // processes + (index < load.clients % processes)
        latency_file = workdir / f"latency-{index}.bin" if load.latency else None
        argv = [
            sys.executable,
            "-m",
            "logtv.bench.client",
            "--url",
            url,
            "--mode",
            load.mode,
            "--clients",
            str(share),
            "--count",
            str(load.count),
            "--deadline",
            str(load.deadline),
            "--idle",
            str(load.quiet),
            "--ready-timeout",
            str(READY_TIMEOUT),
        ]
        if latency_file is not None:
            argv += [
                "--latency-file",
                str(latency_file),
                "--latency-every",
                str(load.latency_every),
            ]
        if load.idle is not None:
            argv.append("--until-stop")
        with open(workdir / f"client-{index}.log", "ab") as log:
            workers.append((Child(argv, stdin=subprocess.PIPE, stderr=log), latency_file))
    return workers


def _warm_up(workers: list[Child], file: Path | None, errors: list[str]) -> None:
    """Append warm-up lines (unless the target sends its own) until every worker is ready."""
    waiting = list(workers)
    deadline = time.monotonic() + READY_TIMEOUT
    for worker in workers:
        if worker.read_event("connected", READY_TIMEOUT) is None:
            errors.append("a client process did not connect in time")
    while waiting and time.monotonic() < deadline:
        if file is not None:
            with open(file, "ab") as handle:
                handle.write(warmup_line())
        for worker in list(waiting):
            if worker.read_event("ready", WARMUP_INTERVAL / len(waiting)) is not None:
                waiting.remove(worker)
            elif not worker.alive():
                waiting.remove(worker)
                errors.append("a client process ended before it was ready")
    if waiting:
        errors.append(f"{len(waiting)} client processes not ready after {READY_TIMEOUT:g} s")


def _merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for key in (
        "clients",
        "complete",
        "received",
        "lost",
        "duplicated",
        "reordered",
        "announced_drops",
        "bytes",
        "cpu_seconds",
    ):
        merged[key] = sum(result[key] for result in results)
    firsts = [result["first_ns"] for result in results if result["first_ns"]]
    merged["client_processes"] = len(results)
    merged["cpu_seconds_max"] = max(result["cpu_seconds"] for result in results)
    merged["first_ns"] = min(firsts) if firsts else 0
    merged["last_ns"] = max((result["last_ns"] for result in results), default=0)
    merged["longest_silence_ns"] = max((r["longest_silence_ns"] for r in results), default=0)
    merged["errors"] = [e for result in results for e in result["errors"]][:5]
    merged["incomplete"] = [i for result in results for i in result.get("incomplete", [])][:5]
    merged["closed_by_server"] = [c for result in results for c in result["closed_by_server"]][:5]
    return merged


def percentiles(samples: array[int]) -> dict[str, float]:
    """p50, p99 and max of latency samples in µs, as milliseconds."""
    if not samples:
        return {}
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000  # noqa: E731
    return {"p50_ms": pick(0.50), "p99_ms": pick(0.99), "max_ms": ordered[-1] / 1000}


@dataclass(frozen=True)
class _Reading:
    """The server's CPU so far, the machine's CPU ticks, and the time: taken before and after."""

    cpu: float
    ticks: tuple[int, int]
    wall: float

    @classmethod
    def take(cls, pids: list[int]) -> _Reading:
        return cls(cpu_seconds(pids), machine_ticks(), time.monotonic())


def _feed(target: Target, load: Load, file: Path, workers: list[Child]) -> Child | None:
    """Start the workload: sit idle, tell the blaster to go, or start the writer (returned)."""
    if load.idle is not None:
        time.sleep(load.idle)
        for worker in workers:
            worker.send("stop")
        return None
    if target.name == "ceiling":
        target.child.send("go")
        return None
    argv = [sys.executable, "-m", "logtv.bench.writer", str(file), "--count", str(load.count)]
    if load.rate is not None:
        argv += ["--rate", str(load.rate)]
    return Child(argv)


def _collect(
    workers: list[Child], load: Load, errors: list[str], within: float | None = None
) -> list[dict[str, Any]]:
    """Each worker's result, within ``within`` s or the run's deadline (late ones are stopped)."""
    results = []
    deadline = time.monotonic() + (load.deadline + READY_TIMEOUT if within is None else within)
    for worker in workers:
        result = worker.read_event("result", max(0.1, deadline - time.monotonic()))
        if result is None:
            worker.send("stop")
            result = worker.read_event("result", 10)
        if result is None:
            errors.append("a client process gave no result")
        else:
            results.append(result)
    return results


def _figures(
    results: list[dict[str, Any]], load: Load, before: _Reading, after: _Reading, pids: list[int]
) -> dict[str, Any]:
    figures = _merge(results) if results else {"errors": []}
    wall = after.wall - before.wall
    figures["server_cpu_seconds"] = after.cpu - before.cpu
    figures["server_cpu_percent"] = 100 * (after.cpu - before.cpu) / wall
    figures["server_rss_bytes"] = rss_bytes(pids)
    figures["server_processes"] = len(pids)
    figures["wall_seconds"] = wall
    figures["busy_cores"] = busy_cores(before.ticks, after.ticks)
    span = (figures.get("last_ns", 0) - figures.get("first_ns", 0)) / 1e9
    figures["delivery_seconds"] = span
    if span > 0 and load.idle is None:
        figures["lines_per_second"] = figures["received"] / span
        figures["client_cpu_percent"] = 100 * figures["cpu_seconds"] / span
        figures["client_cpu_max_percent"] = 100 * figures["cpu_seconds_max"] / span
    figures["expected"] = load.count * load.clients
    return figures


def _other_cores(figures: dict[str, Any]) -> float:
    """Cores busy over the run with neither the server, the clients nor the writer: other
    processes, and kernel work no process is charged for (some of the loopback's)."""
    wall = figures.get("wall_seconds", 0.0)
    if wall <= 0:
        return 0.0
    writer = figures.get("writer") or {}
    ours = figures["server_cpu_seconds"] + figures.get("cpu_seconds", 0.0)
    return max(0.0, figures["busy_cores"] - (ours + writer.get("cpu_seconds", 0.0)) / wall)


def _latencies(paths: list[Path]) -> dict[str, float]:
    samples: array[int] = array("q")
    for path in paths:
        if path.exists():
            samples.frombytes(path.read_bytes())
    return percentiles(samples)


def run_load(start: Callable[[Path], Target], load: Load, workdir: Path) -> dict[str, Any]:
    """Start a target with ``start(file)``, run ``load`` against it, return the figures."""
    file = workdir / "bench.log"
    file.write_bytes(b"")
    errors: list[str] = []
    target: Target | None = None
    workers: list[tuple[Child, Path | None]] = []
    writer: Child | None = None
    try:
        target = start(file)
        workers = _spawn_clients(target.url, load, workdir)
        children = [worker for worker, _ in workers]
        _warm_up(children, None if target.name == "ceiling" else file, errors)
        before = _Reading.take(target.pids())
        writer = _feed(target, load, file, children)
        written, within = None, None
        if writer is not None and load.lag_limit is not None:
            written = writer.read_event("", load.deadline)
            within = load.lag_limit if written is not None else None
        results = _collect(children, load, errors, within)
        pids = target.pids()
        figures = _figures(results, load, before, _Reading.take(pids), pids)
        if writer is not None:
            figures["writer"] = written or writer.read_event("", 10) or {}
        figures["other_cores"] = _other_cores(figures)
        if load.latency:
            figures["latency"] = _latencies([path for _, path in workers if path is not None])
        figures["errors"] = figures["errors"] + errors
        return figures
    finally:
        for child in [writer] + [worker for worker, _ in workers]:
            if child is not None:
                child.end()
        if target is not None:
            target.end()
        for path in [file] + [path for _, path in workers if path is not None]:
            path.unlink(missing_ok=True)


def run_tail(count: int, workdir: Path, deadline: float = 60.0) -> dict[str, Any]:
    """``tail -n0 -F FILE`` into a pipe while the writer writes ``count`` lines flat out."""
    file = workdir / "tail.log"
    file.write_bytes(b"")
    tail = Child(["tail", "-n0", "-F", str(file)])
    writer: Child | None = None
    tracker = Tracker(count)
    try:
        assert tail.process.stdout is not None
        fd = tail.process.stdout.fileno()
        warm_until = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < warm_until:
            with open(file, "ab") as handle:
                handle.write(warmup_line())
            if select.select([fd], [], [], WARMUP_INTERVAL)[0] and WARMUP in os.read(fd, 1 << 16):
                break
        writer = Child(
            [sys.executable, "-m", "logtv.bench.writer", str(file), "--count", str(count)]
        )
        stop_at = time.monotonic() + deadline
        partial = b""
        while not tracker.done and time.monotonic() < stop_at:
            if not select.select([fd], [], [], 0.5)[0]:
                if tracker.received and time.monotonic_ns() - tracker.last_ns > 5e9:
                    break
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            data, _, partial = (partial + chunk).rpartition(b"\n")
            tracker.add(list(map(int, SEQ_RE.findall(data))), time.monotonic_ns())
        written = writer.read_event("", 10) or {}
        span = (tracker.last_ns - tracker.first_ns) / 1e9
        return {
            "received": tracker.received,
            "lost": max(0, tracker.lost),
            "duplicated": tracker.duplicated,
            "reordered": tracker.reordered,
            "lines_per_second": tracker.received / span if span > 0 else 0.0,
            "writer": written,
            "expected": count,
        }
    finally:
        if writer is not None:
            writer.end()
        tail.end()
        file.unlink(missing_ok=True)
