"""Subprocesses that always end, their JSON-lines output, and their CPU and memory from /proc.

Every process the bench starts is a :class:`Child` in its own session, so ending it ends what
it started too (websocketd's ``tail`` per connection) by its process group id, never by name.
CPU is read from ``/proc/PID/stat`` (utime + stime, in clock ticks) summed over the process and
its living descendants, and memory from ``VmRSS`` in ``/proc/PID/status``, summed the same way:
a peer that forks a process per client is charged for all of them.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Sequence
from typing import IO, Any

__all__ = ["Child", "busy_cores", "cpu_seconds", "descendants", "machine_ticks", "rss_bytes"]

_TICKS = os.sysconf("SC_CLK_TCK")


class Child:
    """A subprocess in its own session, read line by line with timeouts; killed by :meth:`end`."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        stdin: int | None = subprocess.DEVNULL,
        stdout: int | IO[Any] | None = subprocess.PIPE,
        stderr: int | IO[Any] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.process = subprocess.Popen(
            self.argv,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            cwd=cwd,
            start_new_session=True,
        )
        self.pid = self.process.pid
        self._pending = b""

    def send(self, text: str) -> None:
        """Write a line to the child's stdin (ignored if it has gone)."""
        if self.process.stdin is None:
            return
        try:
            self.process.stdin.write(text.encode() + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def read_line(self, timeout: float) -> bytes | None:
        """The next stdout line within ``timeout`` s, or None (timeout, or end of output)."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line

    def read_event(self, event: str, timeout: float) -> dict[str, Any] | None:
        """The next JSON line whose ``event`` is ``event`` (others skipped), or None."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            line = self.read_line(remaining)
            if line is None:
                return None
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict) and message.get("event", event) == event:
                return message
        return None

    def alive(self) -> bool:
        return self.process.poll() is None

    def end(self, grace: float = 1.0) -> None:
        """SIGTERM the child's process group, then SIGKILL it after ``grace`` seconds."""
        for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pid, signum)
            except ProcessLookupError:
                break
            try:
                self.process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


def _read_stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from the third (state) on


def descendants(pid: int) -> list[int]:
    """``pid`` and every living process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _read_stat(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds used so far by these processes."""
    total = 0
    for pid in pids:
        fields = _read_stat(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


def rss_bytes(pids: Sequence[int]) -> int:
    """Resident memory of these processes now (VmRSS), summed."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot, from the first line of /proc/stat."""
    with open("/proc/stat") as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def busy_cores(before: tuple[int, int], after: tuple[int, int]) -> float:
    """How many cores were busy on average between two :func:`machine_ticks` readings."""
    total = after[1] - before[1]
    if total <= 0:
        return 0.0
    return (after[0] - before[0]) / total * (os.cpu_count() or 1)
