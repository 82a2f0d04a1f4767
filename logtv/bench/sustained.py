"""Sustained fan-out: the highest writer rate at which every one of N clients keeps up.

The throughput runs write flat out, far faster than N clients can read on a small box, so they
show how a server copes with overload (logtv drops a slow client's oldest lines, with a ``gap``).
This answers the other question: at what writer rate does every client get every line, once, in
order, with no gap, keeping pace: the last line no later than :attr:`Search.lag_limit` s after it
was written, and 99% of the lines (of the clients that time them) no later than that either?

Each probe is one :func:`~logtv.bench.scenarios.run_load` at a fixed rate for a few seconds, on
a fresh server. :func:`search` picks the rates: from a start (a fixed total, rate x clients) it
doubles after a pass or halves after a failure until the verdict changes, then bisects
(geometrically) between the best pass and the lowest failure above it. It is bounded by a probe
count, a time budget and a floor and cap on the rate. Each failed probe also records what was
saturated (:func:`bound_by`): the writer, the clients (the bench), the server, or every core.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logtv.bench.scenarios import Load, run_load
from logtv.bench.targets import StartError, Target

__all__ = [
    "FULL",
    "OTHER_CORES",
    "QUICK",
    "Probe",
    "Search",
    "bound_by",
    "find_rate",
    "search",
    "verdict",
]

#: A process at this % of one core (or more) is saturated.
SATURATED = 90.0
#: The writer must reach this share of the asked rate, or the probe measured the writer.
WRITER_SHARE = 0.95
#: More cores than this busy outside the bench's processes is worth saying (other load).
OTHER_CORES = 0.3
#: About this many clients per run parse the latency stamps (the rest only count seqs).
LATENCY_CLIENTS = 4


@dataclass(frozen=True)
class Search:
    """How :func:`search` probes; see :data:`FULL` and :data:`QUICK`."""

    #: Seconds the writer writes in each probe.
    seconds: float = 4.0
    max_probes: int = 8
    #: The first probe's rate times the clients (2,000 lines/s for 100 clients).
    start_total: float = 200_000.0
    floor: float = 100.0
    cap: float = 256_000.0
    #: Stop bisecting when the lowest failure is less than this times the best pass.
    precision: float = 1.15
    #: Seconds after the last write by which every client must have it.
    lag_limit: float = 1.0
    #: Seconds one search may take (a probe under way is finished).
    budget: float = 180.0


FULL = Search()
QUICK = Search(seconds=0.5, max_probes=2, start_total=10_000.0, budget=40.0)


@dataclass
class Probe:
    """One rate tried: the run's figures, why it failed ("" if it passed), what was saturated."""

    rate: float
    figures: dict[str, Any]
    verdict: str
    bound: str = ""

    @property
    def passed(self) -> bool:
        return not self.verdict


def _get(figures: dict[str, Any], key: str) -> float:
    value = figures.get(key)
    return float(value) if isinstance(value, int | float) else 0.0


def verdict(figures: dict[str, Any], rate: float, lag_limit: float) -> str:
    """Why a probe at ``rate`` does not count as sustained, or "" if every client kept up."""
    if figures.get("errors"):
        return "error"
    if _get(figures.get("writer") or {}, "rate") < WRITER_SHARE * rate:
        return "writer short"
    if figures.get("announced_drops"):
        return "gap"
    if figures.get("complete", 0) < figures.get("clients", 1):
        return "late"
    for key in ("lost", "duplicated", "reordered"):
        if figures.get(key):
            return key
    if figures.get("received") != figures.get("expected"):
        return "lost"
    if _get(figures.get("latency") or {}, "p99_ms") > lag_limit * 1000:
        return "slow"
    return ""


def bound_by(figures: dict[str, Any], rate: float, cores: int) -> str:
    """What was saturated in a run: the writer (short of its rate), the busiest client process
    (the bench), the server, all cores; and cores busy outside the bench ("+N other")."""
    found = []
    if _get(figures.get("writer") or {}, "rate") < WRITER_SHARE * rate:
        found.append("writer")
    if _get(figures, "client_cpu_max_percent") >= SATURATED:
        found.append("clients")
    if _get(figures, "server_cpu_percent") >= SATURATED * min(
        cores, figures.get("server_processes", 1)
    ):
        found.append("server")
    if _get(figures, "busy_cores") >= cores * SATURATED / 100:
        found.append("all cores")
    if _get(figures, "other_cores") > OTHER_CORES:
        found.append(f"+{_get(figures, 'other_cores'):.1f} other")
    return ", ".join(found) or "none"


def _nice(rate: float) -> float:
    """``rate`` to two significant digits (probe rates that read well)."""
    return float(f"{rate:.2g}")


def _bracket(probes: list[Probe]) -> tuple[float | None, float | None]:
    """The best rate that passed, and the lowest failure above it."""
    passed = [probe.rate for probe in probes if probe.passed]
    best = max(passed) if passed else None
    failed = [
        probe.rate for probe in probes if not probe.passed and (best is None or probe.rate > best)
    ]
    return best, min(failed) if failed else None


def search(measure: Callable[[float], Probe], clients: int, settings: Search) -> list[Probe]:
    """Probe rates with ``measure`` (double or halve, then bisect); every probe, in order."""
    started = time.monotonic()
    probes: list[Probe] = []

    def more() -> bool:
        return len(probes) < settings.max_probes and time.monotonic() - started < settings.budget

    rate = _nice(min(settings.cap, max(settings.floor, settings.start_total / clients)))
    while more():
        probes.append(measure(rate))
        best, failed = _bracket(probes)
        if probes[-1].verdict == "error" or (best is not None and failed is not None):
            break
        step = min(settings.cap, rate * 2) if probes[-1].passed else max(settings.floor, rate / 2)
        if step == rate:  # at the cap (or floor) already
            break
        rate = step
    while more():
        best, failed = _bracket(probes)
        if best is None or failed is None or failed < best * settings.precision:
            break
        rate = _nice(math.sqrt(best * failed))
        if not best < rate < failed:
            break
        probes.append(measure(rate))
    return probes


def summary(probes: list[Probe], clients: int) -> dict[str, Any]:
    """The search as the JSON keeps it: the sustained rate, its run, the failure above it."""
    best, failed = _bracket(probes)
    by_rate = {probe.rate: probe for probe in probes}
    return {
        "rate": best,
        "delivered": best * clients if best is not None else None,
        "tried_up_to": max((probe.rate for probe in probes), default=None),
        "best": by_rate[best].figures if best is not None else None,
        "failed": None
        if failed is None
        else {"rate": failed, "verdict": by_rate[failed].verdict, "bound": by_rate[failed].bound},
        "probes": [
            {"rate": p.rate, "verdict": p.verdict, "bound": p.bound, "figures": p.figures}
            for p in probes
        ],
    }


def find_rate(
    start: Callable[[Path], Target],
    mode: str,
    clients: int,
    settings: Search,
    workdir: Path,
    *,
    processes: int = 2,
    cores: int = 1,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """The sustained rate of the target ``start`` starts, read in ``mode`` by ``clients``."""

    def measure(rate: float) -> Probe:
        load = Load(
            clients,
            mode,
            max(1, round(rate * settings.seconds)),
            rate=rate,
            latency=True,
            latency_every=max(1, clients // LATENCY_CLIENTS),
            processes=processes,
            deadline=3 * settings.seconds + 10,
            lag_limit=settings.lag_limit,
        )
        try:
            figures = run_load(start, load, workdir)
        except (StartError, OSError) as exc:
            figures = {"errors": [str(exc)]}
        probe = Probe(rate, figures, verdict(figures, rate, settings.lag_limit))
        if not probe.passed:
            probe.bound = bound_by(figures, rate, cores)
        progress(
            f"{rate:,.0f} lines/s: "
            + (probe.verdict + f" ({probe.bound})" if probe.verdict else "ok")
        )
        return probe

    return summary(search(measure, clients, settings), clients)
