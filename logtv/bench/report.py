"""The bench's output: one side-by-side table (scenario | metric | logtv | peer | ratio | ceiling)
and the notes needed to read it, or the same results as JSON.

Formatting lives here alone so the runner only gathers numbers. Every cell is made from the
results dict the runner also writes as JSON, so the table and the JSON cannot disagree.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logtv.bench.sustained import (
    FULL,
    LATENCY_CLIENTS,
    OTHER_CORES,
    QUICK,
    SATURATED,
    WRITER_SHARE,
)

#: Shorter deliveries than this (s) are too short for a CPU percentage (ticks are 10 ms).
MIN_SPAN = 0.5

__all__ = ["Row", "notes", "peer_name", "render", "rows", "to_json"]


@dataclass
class Row:
    """One line of the table; ``values`` has one cell per column (target) name."""

    scenario: str
    metric: str
    values: dict[str, str] = field(default_factory=dict)
    ratio: str = ""
    ceiling: str = ""


def lines_per_second(figures: dict[str, Any] | None) -> str:
    if not figures or "lines_per_second" not in figures:
        return "-"
    return f"{figures['lines_per_second']:,.0f}"


def integrity(figures: dict[str, Any] | None) -> str:
    """``lost/duplicated/reordered``, and the lines the server said it dropped, if any."""
    if not figures or "lost" not in figures:
        return "-"
    lost = figures["lost"] - figures.get("announced_drops", 0)
    text = f"{lost:,}/{figures['duplicated']:,}/{figures['reordered']:,}"
    if figures.get("announced_drops"):
        text += f" +{figures['announced_drops']:,} gap"
    return text


def ratio(ours: float | None, theirs: float | None) -> str:
    if not ours or not theirs:
        return ""
    return f"{ours / theirs:.2f}x"


def render(results: dict[str, Any]) -> str:
    """The results as the table, then the notes."""
    columns, table = rows(results)
    return _text(columns, table, notes(results))


def peer_name(command: str) -> str:
    """A column name for a ``--vs`` command: its program, or the module after ``-m``."""
    words = shlex.split(command)
    if "-m" in words[:-1]:
        return words[words.index("-m") + 1].rsplit(".", 1)[-1]
    return Path(words[0]).name


def _text(columns: Sequence[str], rows: Iterable[Row], notes: Iterable[str]) -> str:
    """The table as aligned text, ``|``-separated, then the notes."""
    header = ["scenario", "metric", *columns]
    if len(columns) > 1:
        header.append("ratio")
    header.append("ceiling")
    table = [header]
    previous = None
    for row in rows:
        scenario = row.scenario if row.scenario != previous else ""
        previous = row.scenario
        cells = [scenario, row.metric, *(row.values.get(name, "-") for name in columns)]
        if len(columns) > 1:
            cells.append(row.ratio)
        cells.append(row.ceiling)
        table.append(cells)
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    numeric = range(2, len(header))
    out = []
    for index, cells in enumerate(table):
        out.append(
            " | ".join(
                cell.rjust(widths[i]) if i in numeric and index else cell.ljust(widths[i])
                for i, cell in enumerate(cells)
            ).rstrip()
        )
        if index == 0:
            out.append("-+-".join("-" * width for width in widths))
    return "\n".join(out) + "\n\n" + "\n".join(f"- {note}" for note in notes) + "\n"


def _find(results: dict[str, Any], **keys: Any) -> dict[str, Any] | None:
    return _find_in(results.get("runs", []), **keys)


def _find_in(found: list[dict[str, Any]], **keys: Any) -> dict[str, Any] | None:
    for run_ in found:
        if all(run_.get(key) == value for key, value in keys.items()):
            return run_
    return None


def _number(figures: dict[str, Any] | None, key: str) -> float | None:
    """``figures[key]``, where ``a.b`` means ``figures[a][b]``; None if missing."""
    value: Any = figures
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value if isinstance(value, int | float) else None


def _cpu(figures: dict[str, Any] | None) -> str:
    if _number(figures, "server_cpu_percent") is None:
        return "-"
    assert figures is not None
    text = f"{figures['server_cpu_percent']:.0f}% {figures['server_rss_bytes'] / 2**20:.0f} MB"
    if figures.get("server_processes", 1) > 1:
        text += f" ({figures['server_processes']} procs)"
    return text


def _clients_cpu(figures: dict[str, Any] | None) -> str:
    """The clients' CPU per line delivered, and as % of one core if the run was long enough."""
    cpu, received = _number(figures, "cpu_seconds"), _number(figures, "received")
    if cpu is None or not received:
        return "-"
    text = f"{cpu / received * 1e6:.2f} µs/line"
    percent = _number(figures, "client_cpu_percent")
    span = _number(figures, "delivery_seconds") or 0
    if percent is not None and span >= MIN_SPAN:
        text = f"{percent:.0f}%, " + text
    return text


def _keeping_up(figures: dict[str, Any] | None) -> str:
    """Lines/s each client got, beside the writer's own rate in the same run."""
    delivered, writer = _number(figures, "lines_per_second"), _number(figures, "writer.rate")
    if delivered is None or writer is None or not figures:
        return "-"
    return f"{delivered / figures['clients']:,.0f} / {writer:,.0f}"


def _seconds(figures: dict[str, Any] | None, key: str) -> str:
    value = _number(figures, key)
    return "-" if value is None else f"{value / 1e9:.2f}"


def _ms(key: str) -> Cell:
    def cell(figures: dict[str, Any] | None) -> str:
        value = _number(figures, f"latency.{key}")
        return "-" if value is None else f"{value:.1f}"

    return cell


Cell = Callable[[dict[str, Any] | None], str]
#: (metric, how to show it, the number a ratio is taken of, or "")
Metric = tuple[str, Cell, str]
THROUGHPUT: list[Metric] = [
    ("lines/s", lines_per_second, "lines_per_second"),
    ("per client / writer", _keeping_up, ""),
    ("lost/dup/reord", integrity, ""),
    ("server CPU, RSS", _cpu, ""),
    ("longest silence s", lambda f: _seconds(f, "longest_silence_ns"), "longest_silence_ns"),
    ("clients CPU", _clients_cpu, ""),
]
LATENCY: list[Metric] = [
    ("p50 ms", _ms("p50_ms"), "latency.p50_ms"),
    ("p99 ms", _ms("p99_ms"), "latency.p99_ms"),
    ("max ms", _ms("max_ms"), "latency.max_ms"),
    ("lost/dup/reord", integrity, ""),
    ("server CPU, RSS", _cpu, ""),
]
IDLE: list[Metric] = [("server CPU, RSS", _cpu, "")]


def _rate(per_client: bool) -> Cell:
    """A sustained search's writer rate (or x clients): "≥" if no probe failed, "<" the lowest
    tried if none passed."""

    def cell(search: dict[str, Any] | None) -> str:
        if not search or not search.get("probes"):
            return "-"
        times = 1 if per_client else search["clients"]
        if search["rate"] is None:
            lowest = min(probe["rate"] for probe in search["probes"])
            return f"< {lowest * times:,.0f}"
        return ("≥ " if search["failed"] is None else "") + f"{search['rate'] * times:,.0f}"

    return cell


def _best(cell: Cell) -> Cell:
    """A figures cell, of the probe at the sustained rate."""
    return lambda search: cell(search.get("best") if search else None)


def _client_load(figures: dict[str, Any] | None) -> str:
    """All client processes and the busiest one, in % of one core; "SATURATED" if the bench
    is the limit."""
    top = _number(figures, "client_cpu_max_percent")
    if top is None or not figures:
        return "-"
    text = (
        f"{figures['client_processes']} procs {figures['client_cpu_percent']:.0f}%, max {top:.0f}%"
    )
    return text + (" SATURATED" if top >= SATURATED else "")


def _busy(figures: dict[str, Any] | None) -> str:
    """Busy cores during the run, and how many of them were busy with something else."""
    if not figures or "busy_cores" not in figures:
        return "-"
    return f"{figures['busy_cores']:.2f} ({figures.get('other_cores', 0):.2f})"


def _failed(search: dict[str, Any] | None) -> str:
    if not search or not search.get("failed"):
        return "-"
    return f"{search['failed']['rate']:,.0f}: {search['failed']['verdict']}"


SUSTAINED: list[Metric] = [
    ("writer lines/s, all kept up", _rate(per_client=True), "rate"),
    ("delivered lines/s (x clients)", _rate(per_client=False), "delivered"),
    # No ratio: each target's latency is at its own sustained rate.
    ("p50 ms", _best(_ms("p50_ms")), ""),
    ("p99 ms", _best(_ms("p99_ms")), ""),
    ("lost/dup/reord", _best(integrity), ""),
    ("server CPU, RSS", _best(_cpu), ""),
    ("clients CPU", _best(_client_load), ""),
    ("busy cores (not bench)", _best(_busy), ""),
    ("next rate: failed by", _failed, ""),
    ("  saturated there", lambda s: (s.get("failed") or {}).get("bound", "-") if s else "-", ""),
]


def _block(
    scenario: str,
    metrics: list[Metric],
    ours: dict[str, Any] | None,
    peer: tuple[str, dict[str, Any] | None] | None,
    ceiling: dict[str, Any] | None = None,
) -> list[Row]:
    """One scenario's rows: each metric for logtv, the peer and the ceiling, and the ratio."""
    block = []
    for metric, cell, key in metrics:
        cells = {"logtv": cell(ours)}
        speed = ""
        if peer is not None:
            cells[peer[0]] = cell(peer[1])
            speed = ratio(_number(ours, key), _number(peer[1], key)) if key else ""
        block.append(Row(scenario, metric, cells, speed, cell(ceiling) if ceiling else ""))
    return block


def rows(results: dict[str, Any]) -> tuple[list[str], list[Row]]:
    """The table's columns (logtv, then the peer) and its rows, from the results."""
    options = results["options"]
    name = peer_name(options["vs"]) if options.get("vs") else None
    columns = ["logtv"] + ([name] if name else [])
    table = _baselines(results, name) if "writer" in results else []
    if results.get("runs"):
        table += _runs(results, name)
    for clients in options.get("sustained_clients") or []:
        theirs = _find_in(results.get("sustained", []), target=name, clients=clients)
        for mode, label in (("batch", "batched"), ("line", "per-line")):
            ours = _find_in(
                results.get("sustained", []), target="logtv", clients=clients, mode=mode
            )
            if ours is not None:
                scenario = f"sustained fan-out, {clients} client{'s' * (clients > 1)}, {label}"
                table += _block(scenario, SUSTAINED, ours, (name, theirs) if name else None)
    return columns, table


def _baselines(results: dict[str, Any], name: str | None) -> list[Row]:
    writer, tail = results.get("writer", {}), results.get("tail", {})
    blank = {name: ""} if name else {}
    return [
        Row(
            "writer alone, flat out", "lines/s", {"logtv": f"{writer.get('rate', 0):,.0f}"} | blank
        ),
        Row("tail -F alone", "lines/s", {"logtv": lines_per_second(tail)} | blank),
        Row("tail -F alone", "lost/dup/reord", {"logtv": integrity(tail)} | blank),
    ]


def _runs(results: dict[str, Any], name: str | None) -> list[Row]:
    """The throughput, ceiling, latency and idle rows."""
    options = results["options"]
    biggest = max(options["clients"])

    def peer(**keys: Any) -> tuple[str, dict[str, Any] | None] | None:
        return (name, _find(results, target=name, **keys)) if name else None

    table: list[Row] = []
    if options.get("latency_only"):
        return _latency_rows(results, peer, biggest)
    for clients in options["clients"]:
        theirs = peer(scenario="throughput", clients=clients)
        for mode, label in (("batch", "batched"), ("line", "per-line")):
            scenario = f"throughput, {clients} client{'s' * (clients > 1)}, {label}"
            ours = _find(results, scenario="throughput", target="logtv", clients=clients, mode=mode)
            ceiling = _find(results, scenario="ceiling", clients=clients, mode=mode)
            table += _block(scenario, THROUGHPUT, ours, theirs, ceiling)
    if name:
        ceiling = _find(results, scenario="ceiling", mode="plain")
        scenario = f"ceiling, {biggest} clients, plain frames (as {name} sends)"
        metrics = [THROUGHPUT[0], THROUGHPUT[-1]]
        table += _block(scenario, metrics, None, None, ceiling)
    table += _latency_rows(results, peer, biggest)
    scenario = f"idle, {biggest} clients connected, {options['duration']:g} s"
    ours = _find(results, scenario="idle", target="logtv")
    table += _block(scenario, IDLE, ours, peer(scenario="idle"))
    return table


def _latency_rows(
    results: dict[str, Any],
    peer: Callable[..., tuple[str, dict[str, Any] | None] | None],
    biggest: int,
) -> list[Row]:
    table: list[Row] = []
    for mode in ("batch", "line"):
        ours = _find(results, scenario="latency", target="logtv", mode=mode)
        if ours is not None:
            rate = results["options"]["rate"]
            scenario = f"latency at {rate:g} lines/s, {biggest} clients, {mode}"
            table += _block(scenario, LATENCY, ours, peer(scenario="latency"))
    return table


def notes(results: dict[str, Any]) -> list[str]:
    """How to read the table, with this run's machine facts."""
    machine = results["machine"]
    options = results["options"]
    found = [
        f"machine: {machine['cores']} cores, Python {machine['python']}; writer, server and "
        f"{options['processes']} client processes share them; "
        + (f"{options['lines']:,} lines per throughput run, " if results.get("runs") else "")
        + "~115-byte lines, one write(2) each",
        "lines/s = lines delivered to all clients / (last delivery - first delivery); "
        "ratio = logtv / peer (higher is better for lines/s, lower for latency); "
        "'per client / writer' = lines/s each client got / the writer's rate in the same run "
        "(equal: the server kept up with the writer)",
        "lost/dup/reord: lines a client never got without being told / got twice / got late; "
        "'+N gap' = lines logtv dropped for a slow client and announced in a gap frame "
        "(its queue is bounded by --client-buffer, 16 MiB by default)",
        "server CPU = utime+stime of the server and its children (/proc/PID/stat) over the "
        "run, % of one core; RSS = VmRSS at the end, summed over its processes",
        "ceiling = the same clients against the in-bench blaster, which does no work: the "
        "most the bench can measure here; 'clients CPU' = all client processes' CPU over the "
        "delivery time, in % of one core, and per line delivered; 'longest silence' = the "
        "longest any one client waited between two reads while lines were flowing",
    ]
    if not results.get("runs"):
        found[1:] = []
    if results.get("sustained"):
        found += _sustained_notes(results)
    if machine["busy_cores_before"] > 0.2:
        found.append(
            f"WARNING: {machine['busy_cores_before']:.1f} cores were already busy before the "
            "bench started (other processes): figures are lower than on an idle machine"
        )
    for run_ in results.get("runs", []):
        if run_.get("complete", run_["clients"]) < run_["clients"] and run_["scenario"] != "idle":
            found.append(
                f"{run_['scenario']} {run_['clients']} {run_['mode']} {run_['target']}: "
                f"{run_['clients'] - run_['complete']} clients gave up before the last line "
                "(30 s without a line); what they had not received counts as lost"
            )
        if run_.get("errors"):
            found.append(
                f"{run_['scenario']} {run_['clients']} {run_['mode']} {run_['target']}: "
                + "; ".join(map(str, run_["errors"]))
            )
    return found


def _sustained_notes(results: dict[str, Any]) -> list[str]:
    settings = QUICK if results["options"].get("quick") else FULL
    found = [
        f"sustained fan-out: each probe is a fresh server and a writer paced at one rate for "
        f"{settings.seconds:g} s; it passes if every client got every line once, in order, "
        f"with no gap ('gap'), the last one within {settings.lag_limit:g} s of its write "
        f"('late': not), p99 latency at most {settings.lag_limit:g} s ('slow': more), and the "
        f"writer reached {WRITER_SHARE:.0%} of the rate ('writer short'); the first rate is "
        f"{settings.start_total:,.0f} / clients lines/s, doubled after a pass or halved after "
        f"a failure, then bisected, at most {settings.max_probes} probes; the figures are "
        "the best passing probe's (latency from about "
        f"{LATENCY_CLIENTS} clients per run); ratio = logtv / peer",
        f"sustained 'clients CPU' = all client processes, and the busiest one, % of one "
        "core (busiest >= "
        f"{SATURATED:g}%: SATURATED, the bench not the server is the limit); 'busy cores' = "
        "the whole machine during that probe, and in () those busy with neither the server, "
        "the clients nor the writer (other processes; kernel work no process is charged "
        "for); 'saturated there' = what was at >= "
        f"{SATURATED:g}% in the lowest failed probe above: the writer (short of its rate), "
        "the busiest client process (the bench), the server, all cores; '+N other' = cores "
        "busy outside the bench then",
    ]
    others = [
        probe["figures"].get("other_cores", 0.0)
        for search in results["sustained"]
        for probe in search["probes"]
    ]
    if max(others, default=0.0) > OTHER_CORES:
        found.append(
            f"WARNING: up to {max(others):.2f} cores were busy outside the bench's processes "
            "during sustained probes: if other processes ran, the rates are lower than on an "
            "idle machine"
        )
    for search in results["sustained"]:
        tried = ", ".join(
            f"{probe['rate']:,.0f} {probe['verdict'] or 'ok'}" for probe in search["probes"]
        )
        errors = [e for probe in search["probes"] for e in probe["figures"].get("errors", [])]
        found.append(
            f"sustained {search['clients']} clients {search['mode']} {search['target']}: {tried}"
            + (f"; errors: {'; '.join(map(str, errors[:3]))}" if errors else "")
        )
    return found


def to_json(results: dict[str, Any]) -> str:
    return json.dumps(results, indent=2, sort_keys=True, default=str)
