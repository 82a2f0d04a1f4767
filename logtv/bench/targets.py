"""The servers under test, started fresh for every scenario: logtv, a ``--vs`` peer, the blaster.

Each is a :class:`Target`: a :class:`~logtv.bench.procs.Child` with the URL its clients use and
the client mode that reads it. ``logtv serve`` is started exactly as a user would start it, as
``python -m logtv serve --port 0 --source bench=FILE``, and its URL is read from its
``listening on ws://…`` line. Its stderr goes to a file, not a pipe, so a chatty server can never
block on a pipe nobody reads.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from logtv.bench.procs import Child, descendants

__all__ = ["StartError", "Target", "free_port", "start_blaster", "start_logtv", "start_peer"]

START_TIMEOUT = 15.0
_LISTENING_RE = re.compile(r"listening on (ws://\S+)")


class StartError(RuntimeError):
    """A server did not come up; the message carries what it said."""


@dataclass
class Target:
    """A running server: who it is, where to connect, and its process (group)."""

    name: str
    url: str
    child: Child
    log_path: Path | None = None

    def pids(self) -> list[int]:
        return descendants(self.child.pid)

    def end(self) -> None:
        self.child.end()

    def log_tail(self, lines: int = 10) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for peers that cannot pick one themselves)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(target: Target, ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if ready():
            return
        if not target.child.alive():
            break
        time.sleep(0.02)
    target.end()
    raise StartError(f"{what} did not start:\n{target.log_tail()}")


def start_logtv(file: Path, workdir: Path, extra: list[str] | None = None) -> Target:
    """``python -m logtv serve --port 0 --source bench=FILE``; wait for its listening line."""
    log_path = workdir / "serve.log"
    with open(log_path, "w") as log:
        child = Child(
            [sys.executable, "-m", "logtv", "serve", "--port", "0", "--source", f"bench={file}"]
            + (extra or []),
            stdout=log,
            stderr=log,
        )
    target = Target("logtv", "", child, log_path)

    def listening() -> bool:
        match = _LISTENING_RE.search(log_path.read_text(errors="replace"))
        if match:
            target.url = match.group(1)
        return bool(match)

    _wait(target, listening, "logtv serve")
    return target


def peer_url(template: str | None, port: int, file: Path) -> str:
    """The peer's URL: ``{port}``, ``{file}`` and ``{md5file}`` (the file path's MD5, which is
    how frontail names its socket.io namespace) filled in. A ``#send=TEXT`` fragment is not sent
    to the server: the bench's clients send TEXT once connected (a socket.io namespace join)."""
    md5file = hashlib.md5(str(file).encode()).hexdigest()
    return (template or "ws://127.0.0.1:{port}/").format(port=port, file=file, md5file=md5file)


def start_peer(
    name: str, template: str, file: Path, workdir: Path, url_template: str | None = None
) -> Target:
    """A ``--vs`` command with ``{port}`` and ``{file}`` filled in; wait until it accepts."""
    port = free_port()
    argv = [word.format(port=port, file=file) for word in shlex.split(template)]
    log_path = workdir / "peer.log"
    with open(log_path, "w") as log:
        child = Child(argv, stdout=log, stderr=log)
    target = Target(name, peer_url(url_template, port, file), child, log_path)

    def accepting() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    _wait(target, accepting, f"peer {argv[0]!r}")
    return target


def start_blaster(mode: str, count: int) -> Target:
    """The in-bench ceiling server (see :mod:`logtv.bench.blaster`); ``go`` on stdin starts it."""
    child = Child(
        [sys.executable, "-m", "logtv.bench.blaster", "--mode", mode, "--count", str(count)],
        stdin=subprocess.PIPE,
    )
    target = Target("ceiling", "", child)
    message = child.read_event("listening", START_TIMEOUT)
    if message is None:
        target.end()
        raise StartError("the blaster did not start")
    target.url = str(message["url"])
    return target
