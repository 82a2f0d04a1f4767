"""`logtv bench --tty`: what a viewer costs a thin link, measured in a real pseudo-terminal.

Every byte a terminal program writes crosses the SSH link. This runs the real `logtv watch` (and
`tail -f` as the baseline) in a 120x35 pty against a real `logtv serve`, appends ~108-byte
auth.log lines at a fixed rate, counts every byte the viewer writes, and feeds them to a terminal
emulator (pyte) to check what is on screen: how stale the newest visible line is, and how long
a key press takes to show. Nothing here asserts a speed; it prints figures.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from logtv.bench.procs import cpu_seconds

try:
    import pyte
except ImportError:  # pragma: no cover - pyte comes with the "bench" and "test" extras
    pyte = None  # type: ignore[assignment]

__all__ = ["TtyResult", "main", "measure_viewer"]

COLUMNS, ROWS = 120, 35
_MARK = re.compile(r"#(\d{7})")


def bench_line(seq: int) -> bytes:
    """A ~108-byte auth.log line whose seq is near the start, so it is on screen uncropped."""
    return (
        b"Dec  4 06:00:01 web1 sshd[%05d]: #%07d Failed password for invalid user admin "
        b"from 203.0.113.7 port 52114 ssh2\n" % (10000 + seq % 50000, seq)
    )


@dataclass
class TtyResult:
    """What one viewer did with one workload."""

    viewer: str
    rate: float
    log_bytes: int = 0
    tty_bytes: int = 0
    idle_bytes_per_s: float = 0.0
    cpu_percent: float = 0.0
    staleness_ms: list[float] = field(default_factory=list)
    final_ms: float | None = None
    key_ms: float | None = None

    @property
    def ratio(self) -> float:
        return self.tty_bytes / self.log_bytes if self.log_bytes else 0.0

    def staleness(self, quantile: float) -> float:
        if not self.staleness_ms:
            return 0.0
        ordered = sorted(self.staleness_ms)
        return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


class _Pty:
    """A program in a pseudo-terminal; a thread counts its output and keeps an emulated screen."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.process = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
        os.close(slave)
        self.master = master
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.lock = threading.Lock()
        self.bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                self.bytes += len(data)
                self.stream.feed(data)

    def text(self) -> str:
        with self.lock:
            return "\n".join(self.screen.display)

    def send(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(3)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(3)
        self._thread.join(2)
        os.close(self.master)


def _newest_on_screen(text: str) -> int:
    marks = _MARK.findall(text)
    return max(map(int, marks)) if marks else 0


def _wait(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def measure_viewer(
    name: str, argv: list[str], log: Path, *, rate: float, seconds: float, env: dict[str, str]
) -> TtyResult:
    """Run one viewer in a pty while lines arrive at ``rate``; return what it cost."""
    result = TtyResult(name, rate)
    term = _Pty(argv, env)
    try:
        _wait(lambda: term.bytes > 0, 10)
        time.sleep(2.0)  # start-up drawn and settled
        # Idle: nothing arrives, nothing is pressed.
        before = term.bytes
        time.sleep(2.0)
        result.idle_bytes_per_s = (term.bytes - before) / 2.0
        # The flow: lines at a fixed rate, with the screen sampled every 50 ms.
        written_at: dict[int, float] = {}
        count = int(rate * seconds)
        bytes_before, cpu_before = term.bytes, cpu_seconds([term.process.pid])
        start = time.monotonic()
        next_sample = start
        with open(log, "ab", buffering=0) as handle:
            for seq in range(1, count + 1):
                due = start + (seq - 1) / rate
                while (now := time.monotonic()) < due:
                    if now >= next_sample:
                        newest = _newest_on_screen(term.text())
                        last = seq - 1
                        if newest < last and newest in written_at:
                            result.staleness_ms.append((now - written_at[newest + 1]) * 1000)
                        else:
                            result.staleness_ms.append(0.0)
                        next_sample += 0.05
                    time.sleep(min(due - now, 0.005))
                payload = bench_line(seq)
                handle.write(payload)
                written_at[seq] = time.monotonic()
                result.log_bytes += len(payload)
        last_write = time.monotonic()
        seen_last = _wait(lambda: _newest_on_screen(term.text()) >= count, 5)
        result.final_ms = (time.monotonic() - last_write) * 1000 if seen_last else None
        elapsed = time.monotonic() - start
        result.tty_bytes = term.bytes - bytes_before
        result.cpu_percent = 100 * (cpu_seconds([term.process.pid]) - cpu_before) / elapsed
        if name.startswith("logtv"):
            result.key_ms = _key_latency(term, log, rate)
    finally:
        term.close()
    return result


def _key_latency(term: _Pty, log: Path, rate: float) -> float | None:
    """Press `?` while lines keep arriving; time until the help screen is drawn."""
    stop = threading.Event()

    def keep_writing() -> None:
        with open(log, "ab", buffering=0) as handle:
            seq = 9_000_000
            while not stop.is_set():
                handle.write(bench_line(seq))
                seq += 1
                time.sleep(1 / rate)

    writer = threading.Thread(target=keep_writing, daemon=True)
    writer.start()
    try:
        time.sleep(0.5)
        pressed = time.monotonic()
        term.send(b"?")
        shown = _wait(lambda: "logtv watch: keys" in term.text(), 5)
        latency = (time.monotonic() - pressed) * 1000 if shown else None
        term.send(b"\x1b")
        return latency
    finally:
        stop.set()
        writer.join(2)


def _start_server(log: Path) -> tuple[subprocess.Popen[str], int]:
    server = subprocess.Popen(
        [sys.executable, "-m", "logtv", "serve", "--port", "0", "--source", f"auth={log}"],
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert server.stderr is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        line = server.stderr.readline()
        match = re.search(r"listening on ws://[^:]+:(\d+)/", line)
        if match:
            threading.Thread(target=server.stderr.read, daemon=True).start()  # keep draining
            return server, int(match.group(1))
    server.kill()
    raise RuntimeError("logtv serve did not start")


def run(rates: Sequence[float], seconds: float, fps: float | None) -> list[TtyResult]:
    """Every viewer at every rate, each on a fresh file and a fresh server."""
    results = []
    env = {
        **os.environ,
        "TERM": "xterm-256color",
        "COLUMNS": str(COLUMNS),
        "LINES": str(ROWS),
        "SSH_CONNECTION": "192.0.2.1 50000 192.0.2.2 22",  # the viewer's frugal default
    }
    env.pop("TEXTUAL", None)
    with tempfile.TemporaryDirectory(prefix="logtv-tty-") as tmp:
        for rate in rates:
            for viewer in ("tail -f", "logtv watch"):
                log = Path(tmp) / f"auth-{rate:g}-{viewer.split()[0]}.log"
                log.write_bytes(b"")
                if viewer == "tail -f":
                    tail = shutil.which("tail") or "tail"
                    results.append(
                        measure_viewer(
                            viewer,
                            [tail, "-n0", "-f", str(log)],
                            log,
                            rate=rate,
                            seconds=seconds,
                            env=env,
                        )
                    )
                    continue
                server, port = _start_server(log)
                try:
                    argv = [sys.executable, "-m", "logtv", "watch", f"127.0.0.1:{port}"]
                    argv += ["--backlog", "0"] + (["--fps", str(fps)] if fps else [])
                    results.append(
                        measure_viewer(viewer, argv, log, rate=rate, seconds=seconds, env=env)
                    )
                finally:
                    server.terminate()
                    server.wait(5)
    return results


def report(results: Sequence[TtyResult]) -> str:
    header = (
        f"{'viewer':<12} {'lines/s':>7} {'tty/log bytes':>13} {'CPU %':>6} "
        f"{'stale p50':>9} {'stale max':>9} {'last line':>9} {'key':>7} {'idle B/s':>8}"
    )
    rows = [header, "-" * len(header)]
    for r in results:
        final = f"{r.final_ms:.0f} ms" if r.final_ms is not None else "never"
        key = f"{r.key_ms:.0f} ms" if r.key_ms is not None else "-"
        rows.append(
            f"{r.viewer:<12} {r.rate:>7g} {r.ratio:>13.2f} {r.cpu_percent:>6.1f} "
            f"{r.staleness(0.5):>6.0f} ms {r.staleness(1.0):>6.0f} ms {final:>9} {key:>7} "
            f"{r.idle_bytes_per_s:>8.0f}"
        )
    rows.append(
        f"({COLUMNS}x{ROWS} pty, TERM=xterm-256color, SSH_CONNECTION set; 'stale' = age of the "
        "oldest line not yet on screen, sampled every 50 ms)"
    )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    if pyte is None:
        print("logtv: error: bench --tty needs pyte: pip install 'logtv[bench]'", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="logtv bench --tty")
    parser.add_argument("--rates", default="100,1000", help="lines per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of lines per run")
    parser.add_argument("--fps", type=float, help="pass --fps to logtv watch")
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",") if r]
    print(report(run(rates, args.seconds, args.fps)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
