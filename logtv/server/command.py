"""Follow a command's stdout as a source: ``--source web=command:docker logs -f web``.

Each command source has a thread of its own that starts the command, reads its stdout and stderr,
and restarts it when it exits. The lines go to the loop through the tailer's one door
(:meth:`~logtv.server.watcher.Tailer._hand_over`), like a file's, so they are numbered, buffered
and fanned out by the same code; when the loop falls behind, the door makes this thread wait, it
stops reading, and the pipe makes the command wait: memory stays bounded.

- The argument vector is exec'd directly (``shlex.split`` at config time; no shell ever runs), with
  stdin from ``/dev/null``, in a session and process group of its own.
- stdout gets the line hygiene of files (:class:`~logtv.server.follower.LineSplitter`); an
  unfinished last line is flushed after ``flush_after`` seconds, or when the command exits.
- stderr is not part of the stream: each of its lines goes to the server's log, prefixed with the
  source name.
- State: ``following`` while the command runs (event ``appeared`` when it starts), ``missing``
  when it has exited (event ``vanished``) or its program does not exist, ``unreadable`` when it
  cannot be started for another reason (event ``state``). It is restarted after 1 s, then 2, 4, …
  up to 30 s; a run that lasted 30 s resets the delay to 1 s.
- On stop, the command's process group gets SIGTERM, then SIGKILL after 1 s, and is reaped.

Two methods are the hooks for a source built on a command (:mod:`logtv.server.journal`):
:meth:`CommandFollower.spawn_argv` picks the argument vector at each start, and
:meth:`CommandFollower.deliver` turns stdout lines into what is handed over.
"""

from __future__ import annotations

import logging
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from typing import Protocol

from logtv.config import CommandSource
from logtv.server.follower import FOLLOWING, MISSING, UNREADABLE, LineSplitter

__all__ = ["CommandFollower", "HandOver"]

log = logging.getLogger(__name__)

#: Bytes read from a pipe at a time (a Linux pipe holds 64 KiB).
CHUNK = 64 << 10
#: How long the reader waits for output before it looks at the clock (partial line, stop).
POLL_SECONDS = 0.2
#: Restart delays: the first, the longest, and how long a run must last to reset it.
FIRST_DELAY = 1.0
MAX_DELAY = 30.0
RESET_AFTER = 30.0
#: Seconds between SIGTERM and SIGKILL on stop.
TERM_GRACE = 1.0


class HandOver(Protocol):
    """The tailer's door: (source name, lines, events as (index, event, state), state after
    them, and each line's syslog severity if the source knows it)."""

    def __call__(
        self,
        name: str,
        lines: list[str],
        events: list[tuple[int, str, str]],
        state: str,
        severities: list[int] | None = None,
    ) -> None: ...


class CommandFollower:
    """One command source: its child process, the thread that reads it, and the restarts."""

    def __init__(
        self,
        name: str,
        command: CommandSource,
        *,
        hand_over: HandOver,
        max_line: int,
        flush_after: float = 1.0,
        first_delay: float = FIRST_DELAY,
        max_delay: float = MAX_DELAY,
        reset_after: float = RESET_AFTER,
    ) -> None:
        self.name = name
        self.command = command
        self.state = MISSING
        self.max_line = max_line
        self.flush_after = flush_after
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.reset_after = reset_after
        #: How many times the command was started (for tests and the log).
        self.starts = 0
        self._hand_over = hand_over
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        #: When SIGTERM was sent on stop (None: not stopping).
        self._term_sent: float | None = None

    @property
    def pid(self) -> int | None:
        """The running child's process id, if one runs."""
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    def start(self) -> None:
        """Start the command and the thread that reads it."""
        self._thread = threading.Thread(
            target=self._run_forever, name=f"logtv-command-{self.name}", daemon=True
        )
        self._thread.start()

    @property
    def stopping(self) -> bool:
        """True once :meth:`terminate` was called."""
        return self._stopping.is_set()

    def spawn_argv(self) -> Sequence[str]:
        """The argument vector of the next start (a hook: the command's own by default)."""
        return self.command.argv

    def deliver(self, lines: list[str]) -> None:
        """Hand over complete stdout lines (a hook: as they are, by default)."""
        self._hand_over(self.name, lines, [], FOLLOWING)

    def terminate(self) -> None:
        """Begin stopping: no more restarts; SIGTERM to the command's process group."""
        with self._lock:
            self._stopping.set()
            process = self._process
            if self._term_sent is None:
                self._term_sent = time.monotonic()
                if process is not None and process.poll() is None:
                    _signal_group(process, signal.SIGTERM)

    def stop(self) -> None:
        """Terminate the command (SIGTERM, SIGKILL 1 s later), reap it and join the thread."""
        self.terminate()
        process = self._process
        if process is not None:
            assert self._term_sent is not None
            grace = max(0.0, self._term_sent + TERM_GRACE - time.monotonic())
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                log.warning("%s: pid %d ignored SIGTERM; killing it", self.name, process.pid)
            # The child if it ignored SIGTERM, and whatever grandchildren it left behind.
            _signal_group(process, signal.SIGKILL)
            process.wait()
        if self._thread is not None:
            self._thread.join(timeout=2)

    # -- the command's thread ---------------------------------------------------------------------

    def _run_forever(self) -> None:
        delay = self.first_delay
        while not self._stopping.is_set():
            started = time.monotonic()
            process = self._spawn()
            if process is not None:
                code = self._follow(process)
                if self._stopping.is_set():
                    return
                ran = time.monotonic() - started
                if ran >= self.reset_after:
                    delay = self.first_delay
                log.warning(
                    "%s: command %s after %.1fs; restarting in %gs",
                    self.name,
                    _describe_exit(code),
                    ran,
                    delay,
                )
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, self.max_delay)

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        """Start the command; on failure set the state, log it and return None."""
        argv = tuple(self.spawn_argv())
        problem: str | None = None
        with self._lock:
            if self._stopping.is_set():
                return None
            try:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    close_fds=True,
                    start_new_session=True,
                )
            except OSError as exc:
                state = MISSING if isinstance(exc, FileNotFoundError) else UNREADABLE
                problem = exc.strerror or str(exc)
            else:
                self._process = process
                self.starts += 1
                state = FOLLOWING
        if problem is not None:
            log.warning("%s: cannot start %s: %s", self.name, argv[0], problem)
            events = [(0, "state", state)] if state != self.state else []
            self.state = state
            self._hand_over(self.name, [], events, state)
            return None
        log.info("%s: started %s (pid %d)", self.name, self.command.cmdline, process.pid)
        self.state = FOLLOWING
        self._hand_over(self.name, [], [(0, "appeared", FOLLOWING)], FOLLOWING)
        return process

    def _follow(self, process: subprocess.Popen[bytes]) -> int:
        """Read stdout and stderr until both end; hand over the lines; return the exit code."""
        assert process.stdout is not None and process.stderr is not None
        out = LineSplitter(self.max_line)
        err = LineSplitter(self.max_line)
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ, out)
        selector.register(process.stderr, selectors.EVENT_READ, err)
        try:
            while selector.get_map():
                lines: list[str] = []
                errors: list[str] = []
                for key, _ in selector.select(POLL_SECONDS):
                    splitter: LineSplitter = key.data
                    target = lines if splitter is out else errors
                    chunk = os.read(key.fd, CHUNK)
                    if chunk:
                        splitter.split(chunk, target, time.monotonic())
                        continue
                    selector.unregister(key.fileobj)  # end of file: the last line is complete
                    if splitter.pending:
                        target.append(splitter.flush())
                now = time.monotonic()
                for splitter, target in ((out, lines), (err, errors)):
                    if splitter.pending and now - splitter.partial_since >= self.flush_after:
                        target.append(splitter.flush())
                for line in errors:
                    log.info("%s: stderr: %s", self.name, line)
                if lines:
                    self.deliver(lines)
                if self._stopping.is_set() and process.poll() is not None:
                    break  # stopped: what a leftover grandchild still writes is not ours to read
        finally:
            selector.close()
            process.stdout.close()
            process.stderr.close()
        code = process.wait()
        with self._lock:
            self._process = None
        self.state = MISSING
        self._hand_over(self.name, [], [(0, "vanished", MISSING)], MISSING)
        return code


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the command's process group (it leads one of its own); quiet if it is gone."""
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"
