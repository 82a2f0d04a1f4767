"""`logtv bench`: every scenario against logtv (and a ``--vs`` peer, and the ceiling), one table.

The scenarios, in the order they run:

1. baselines: the writer alone, flat out; ``tail -F`` alone on the same kind of file;
2. throughput: for each client count, the writer writes ``--lines`` flat out while every
   client reads every line (logtv batched and per-line; the peer in its one mode);
3. the ceiling: the same clients against the blaster, a server that does no work;
4. latency: ``--rate`` lines/s for ``--duration`` seconds to the largest client count;
5. idle: the largest client count connected for ``--duration`` seconds with no writes;
6. sustained fan-out (alone with ``--sustained``): for 10 and 100 clients (or ``--clients``),
   the highest paced writer rate every client keeps up with (see :mod:`logtv.bench.sustained`).

Throughput is all delivered lines over the time from the first delivered line to the last.
Nothing here asserts a speed; the tests only check the bench runs and counts lines right.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from logtv.bench import report, sustained
from logtv.bench.procs import Child, busy_cores, machine_ticks
from logtv.bench.report import peer_name
from logtv.bench.scenarios import Load, run_load, run_tail
from logtv.bench.targets import StartError, Target, start_blaster, start_logtv, start_peer

__all__ = ["Options", "main", "options_from", "run"]

FULL: dict[str, Any] = {"clients": [1, 10, 100], "lines": 200_000, "rate": 1000.0, "duration": 10.0}
QUICK: dict[str, Any] = {"clients": [1, 10], "lines": 2_000, "rate": 500.0, "duration": 1.5}
#: Client counts of the sustained fan-out search, unless ``--clients`` says.
SUSTAINED_CLIENTS = {"full": [10, 100], "quick": [10]}
#: Seconds of margin, plus this many delivered lines per second assumed, bound a throughput run.
DEADLINE_BASE, DEADLINE_RATE = 30.0, 100_000

Starter = Callable[[Path], Target]


@dataclass(frozen=True)
class Options:
    """What to run; see ``logtv bench --help``."""

    clients: list[int]
    lines: int
    rate: float
    duration: float
    quick: bool = False
    vs: str | None = None
    #: The peer's URL template (default ``ws://127.0.0.1:{port}/``); see ``targets.peer_url``.
    vs_url: str | None = None
    processes: int = 2
    json: str | None = None
    #: Run only the sustained fan-out search.
    sustained: bool = False
    #: Run only the latency runs (at ``rate``, to the largest client count).
    latency_only: bool = False
    sustained_clients: list[int] | None = None


def _blaster(mode: str, lines: int, _workdir: Path) -> Target:
    """A Starter for the ceiling runs: the blaster needs no file."""
    return start_blaster(mode, lines)


def options_from(args: argparse.Namespace) -> Options:
    """Quick or full defaults, then whatever the command line gave."""
    base = QUICK if args.quick else FULL
    return Options(
        clients=args.clients or base["clients"],
        lines=args.lines or base["lines"],
        rate=args.rate or base["rate"],
        duration=args.duration or base["duration"],
        quick=args.quick,
        vs=args.vs,
        vs_url=getattr(args, "vs_url", None),
        processes=args.processes or 2,
        json=args.json,
        sustained=bool(getattr(args, "sustained", False)),
        latency_only=bool(getattr(args, "latency", False)),
        sustained_clients=args.clients or SUSTAINED_CLIENTS["quick" if args.quick else "full"],
    )


def _progress(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def _labelled(label: str, text: str) -> None:
    _progress(f"{label}: {text}")


def _attempt(label: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one measurement; a target that cannot start is reported, not fatal."""
    _progress(label)
    try:
        return work()
    except (StartError, OSError) as exc:
        _progress(f"{label}: failed: {exc}")
        return {"errors": [str(exc)]}


def _writer_alone(count: int, workdir: Path) -> dict[str, Any]:
    file = workdir / "writer.log"
    child = Child([sys.executable, "-m", "logtv.bench.writer", str(file), "--count", str(count)])
    try:
        return child.read_event("", 60) or {"errors": ["the writer gave no result"]}
    finally:
        child.end()
        file.unlink(missing_ok=True)


class _Bench:
    """One bench run: its temporary directory, its targets and the results gathered so far."""

    def __init__(self, options: Options, workdir: Path) -> None:
        self.options = options
        self.workdir = workdir
        self.peer = peer_name(options.vs) if options.vs else None
        self.biggest = max(options.clients)
        self.runs: list[dict[str, Any]] = []

    def logtv(self, file: Path) -> Target:
        return start_logtv(file, self.workdir)

    def vs(self, file: Path) -> Target:
        assert self.options.vs is not None and self.peer is not None
        return start_peer(self.peer, self.options.vs, file, self.workdir, self.options.vs_url)

    def record(self, scenario: str, target: str, load: Load, start: Starter) -> None:
        label = f"{scenario}, {load.clients} clients, {load.mode}, {target}"
        figures = _attempt(label, lambda: run_load(start, load, self.workdir))
        self.runs.append(
            {"scenario": scenario, "target": target, "clients": load.clients, "mode": load.mode}
            | figures
        )

    def _load(self, clients: int, mode: str, count: int, **extra: Any) -> Load:
        deadline = DEADLINE_BASE + count * clients / DEADLINE_RATE
        return Load(
            clients, mode, count, processes=self.options.processes, deadline=deadline, **extra
        )

    def throughput(self) -> None:
        lines = self.options.lines
        for clients in self.options.clients:
            for mode in ("batch", "line"):
                self.record("throughput", "logtv", self._load(clients, mode, lines), self.logtv)
            if self.peer:
                self.record("throughput", self.peer, self._load(clients, "plain", lines), self.vs)

    def ceiling(self) -> None:
        lines = self.options.lines
        for mode in ("batch", "line") + (("plain",) if self.peer else ()):
            load = self._load(self.biggest, mode, lines)
            self.record("ceiling", "ceiling", load, functools.partial(_blaster, mode, lines))

    def latency(self) -> None:
        options = self.options
        count = max(1, int(options.rate * options.duration))
        targets: list[tuple[str, str, Starter]] = [("logtv", "batch", self.logtv)]
        if not options.quick:
            targets.append(("logtv", "line", self.logtv))
        if self.peer:
            targets.append((self.peer, "plain", self.vs))
        for target, mode, start in targets:
            load = self._load(self.biggest, mode, count, rate=options.rate, latency=True)
            self.record("latency", target, replace(load, deadline=options.duration + 30), start)

    def idle(self) -> None:
        targets: list[tuple[str, str, Starter]] = [("logtv", "batch", self.logtv)]
        if self.peer:
            targets.append((self.peer, "plain", self.vs))
        for target, mode, start in targets:
            load = self._load(self.biggest, mode, 0, idle=self.options.duration)
            self.record("idle", target, load, start)

    def sustained(self) -> list[dict[str, Any]]:
        options = self.options
        settings = sustained.QUICK if options.quick else sustained.FULL
        targets: list[tuple[str, str, Starter]] = [
            ("logtv", "batch", self.logtv),
            ("logtv", "line", self.logtv),
        ]
        if self.peer:
            targets.append((self.peer, "plain", self.vs))
        found = []
        for clients in options.sustained_clients or SUSTAINED_CLIENTS["full"]:
            for target, mode, start in targets:
                label = f"sustained, {clients} clients, {mode}, {target}"
                _progress(label)
                search = sustained.find_rate(
                    start,
                    mode,
                    clients,
                    settings,
                    self.workdir,
                    processes=options.processes,
                    cores=os.cpu_count() or 1,
                    progress=partial(_labelled, label),
                )
                found.append({"target": target, "mode": mode, "clients": clients} | search)
        return found


def _machine(quick: bool) -> dict[str, Any]:
    """The machine, and how busy other processes keep it (measured before the bench starts)."""
    before = machine_ticks()
    time.sleep(0.3 if quick else 1.0)
    return {
        "cores": os.cpu_count() or 1,
        "busy_cores_before": busy_cores(before, machine_ticks()),
        "python": sys.version.split()[0],
    }


def run(options: Options) -> dict[str, Any]:
    """Every scenario, in order; the results as one dict (what ``--json`` writes)."""
    results: dict[str, Any] = {"options": asdict(options), "machine": _machine(options.quick)}
    with tempfile.TemporaryDirectory(prefix="logtv-bench-") as tmp:
        bench = _Bench(options, Path(tmp))
        if options.latency_only:
            bench.latency()
            results["runs"] = bench.runs
            results["sustained"] = []
            return results
        if not options.sustained:
            results["writer"] = _attempt(
                "writer alone", lambda: _writer_alone(options.lines, bench.workdir)
            )
            results["tail"] = _attempt(
                "tail -F alone", lambda: run_tail(options.lines, bench.workdir)
            )
            bench.throughput()
            bench.ceiling()
            bench.latency()
            bench.idle()
        results["runs"] = bench.runs
        results["sustained"] = bench.sustained()
    return results


def main(args: argparse.Namespace) -> int:
    """Run the bench and print the table (or write the JSON); 0 unless nothing could run."""
    options = options_from(args)
    results = run(options)
    if options.json != "-":
        print(report.render(results), end="", flush=True)
    if options.json:
        text = report.to_json(results)
        if options.json == "-":
            print(text)
        else:
            Path(options.json).write_text(text + "\n")
    return 0
