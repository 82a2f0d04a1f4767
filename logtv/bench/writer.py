"""The writer process: append bench lines to a file, one write(2) each, flat out or at a rate.

A process of its own so that its CPU is not the server's nor the clients', and so that its own
rate (printed as JSON on stdout when it is done) is the ceiling every figure is read against: a
follower cannot deliver lines faster than they are written.

At a rate, line ``i`` is written at ``start + i / rate``: the schedule does not drift when one
write is late, and the writer sleeps only when it is ahead (in steps of at most 10 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Sequence

from logtv.bench.lines import line

__all__ = ["main", "write_lines"]


def write_lines(path: str, count: int, rate: float | None) -> dict[str, float]:
    """Append lines 1..count to ``path``; return what was written and how fast."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    clock = time.monotonic_ns
    written = 0
    try:
        start = clock()
        if rate is None:
            for seq in range(1, count + 1):
                written += os.write(fd, line(seq, clock() // 1000))
        else:
            interval_ns = 1e9 / rate
            for seq in range(1, count + 1):
                due = start + (seq - 1) * interval_ns
                while (ahead := due - clock()) > 0:
                    time.sleep(min(ahead / 1e9, 0.01))
                written += os.write(fd, line(seq, clock() // 1000))
        seconds = (clock() - start) / 1e9
    finally:
        os.close(fd)
    return {
        "lines": count,
        "bytes": written,
        "seconds": seconds,
        "rate": count / seconds if seconds > 0 else 0.0,
        "cpu_seconds": _cpu_seconds(),
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m logtv.bench.writer")
    parser.add_argument("file")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, help="lines per second (default: flat out)")
    args = parser.parse_args(argv)
    result = write_lines(args.file, args.count, args.rate)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
