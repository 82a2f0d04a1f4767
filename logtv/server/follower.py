"""Follow one log file the way ``tail -F`` does: offsets, identity, partial lines and rotation.

Synchronous and free of watchdog: the tailer thread calls :meth:`Follower.poll` whenever an event
(or the periodic safety re-stat) says the file may have changed, and gets back the complete new
lines and what happened to the file. Every decision is made from ``stat``/``fstat`` and the bytes
themselves, so duplicate, late or missing filesystem events cannot make it lose or repeat a line.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "FOLLOWING",
    "MISSING",
    "UNREADABLE",
    "Follower",
    "LineSplitter",
    "NotRegularFile",
    "Poll",
    "open_regular",
]

log = logging.getLogger(__name__)

FOLLOWING = "following"
MISSING = "missing"
UNREADABLE = "unreadable"

#: Bytes read per ``pread``; a poll reads at most READ_BUDGET before yielding to other files.
CHUNK = 1 << 20
READ_BUDGET = 4 << 20
#: How many leading bytes identify a file, beside device and inode.
FINGERPRINT = 128
#: A backlog never reads more than this from the end of a file at start.
BACKLOG_BYTES = 8 << 20


class NotRegularFile(OSError):
    """A FIFO, device, socket or directory: reading it could block or never end."""


def open_regular(path: Path) -> int:
    """Open ``path`` for reading without ever blocking, and only if it is a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise NotRegularFile(errno.EINVAL, f"{path} is {kind}")
    return fd


class LineSplitter:
    r"""Bytes in, lines out: the line hygiene shared by files and commands.

    Splits on ``\n`` only, drops the ``\r`` of a ``\r\n``, decodes UTF-8 with U+FFFD for
    invalid bytes and cuts a line longer than ``max_line`` bytes with ``…[logtv: N bytes cut]``.
    The unfinished last line is held (at most ``max_line + 1`` bytes of it, and the count of what
    was cut) until its newline comes or the owner flushes it.
    """

    __slots__ = ("max_line", "partial", "partial_cut", "partial_since")

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self.partial = b""
        self.partial_cut = 0
        #: When bytes were last added to the partial line (the caller's clock).
        self.partial_since = 0.0

    @property
    def pending(self) -> bool:
        """True while an unfinished line is held."""
        return bool(self.partial or self.partial_cut)

    def split(self, chunk: bytes, lines: list[str], now: float) -> None:
        """Append the complete lines in ``partial + chunk``; keep the rest as the partial line."""
        last_newline = chunk.rfind(b"\n")
        if last_newline < 0:
            self.take_partial(chunk, now)
            return
        first_newline = chunk.find(b"\n")
        if self.pending:
            self.take_partial(chunk[:first_newline], now)
            lines.append(self.flush())
            body = chunk[first_newline + 1 : last_newline + 1]
        else:
            body = chunk[: last_newline + 1]
        rest = chunk[last_newline + 1 :]
        if body:
            raw_lines = body[:-1].split(b"\n")
            if max(map(len, raw_lines)) > self.max_line:
                lines.extend(self.decode(raw, 0) for raw in raw_lines)
            else:
                text = body[:-1].decode("utf-8", "replace")
                if "\r" in text:
                    text = text.replace("\r\n", "\n")
                    if text.endswith("\r"):
                        text = text[:-1]
                lines.extend(text.split("\n"))
        if rest:
            self.take_partial(rest, now)

    def take_partial(self, piece: bytes, now: float) -> None:
        """Hold an unfinished line, keeping at most ``max_line`` bytes of it (and the count cut)."""
        if not piece:
            return
        self.partial_since = now
        room = self.max_line + 1 - len(self.partial)
        if len(piece) > room:
            self.partial_cut += len(piece) - max(room, 0)
            piece = piece[: max(room, 0)]
        self.partial += piece

    def flush(self) -> str:
        line = self.decode(self.partial, self.partial_cut)
        self.partial = b""
        self.partial_cut = 0
        return line

    def decode(self, raw: bytes, cut: int) -> str:
        if raw.endswith(b"\r") and not cut:
            raw = raw[:-1]
        if len(raw) > self.max_line:
            cut += len(raw) - self.max_line
            raw = raw[: self.max_line]
        text = raw.decode("utf-8", "replace")
        if cut:
            text += f" …[logtv: {cut:,} bytes cut]"
        return text


@dataclass(slots=True)
class Poll:
    """What one look at the file found: complete lines, file events, and whether more is unread."""

    lines: list[str] = field(default_factory=list)
    #: (how many of ``lines`` came before it, event name, the file's state after it)
    events: list[tuple[int, str, str]] = field(default_factory=list)
    more: bool = False

    def note(self, event: str, state: str) -> None:
        """Record a file event at this point in the line stream."""
        self.events.append((len(self.lines), event, state))


class Follower:
    """One followed path: the open file, our offset in it, and the unfinished last line."""

    def __init__(self, path: Path, *, max_line: int = 64 * 1024, flush_after: float = 1.0) -> None:
        self.path = path
        self.max_line = max_line
        self.flush_after = flush_after
        self.state = MISSING
        #: Why the file is not being followed, for the log and the viewers.
        self.problem: str | None = None
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._fingerprint = b""
        self._offset = 0
        self._lines = LineSplitter(max_line)
        #: When the path was first seen missing while the old file was still open.
        self._gone_since: float | None = None

    @property
    def _partial(self) -> bytes:
        """The unfinished last line's bytes (as held by the splitter)."""
        return self._lines.partial

    # -- life cycle -------------------------------------------------------------------------

    def start(self, backlog: int, now: float) -> Poll:
        """Open the file at its end; return up to ``backlog`` of its last lines for the buffer."""
        result = Poll()
        if not self._open(result, now):
            return result
        assert self._fd is not None
        size = os.fstat(self._fd).st_size
        self._offset = size
        if backlog > 0 and size > 0:
            start = max(0, size - BACKLOG_BYTES)
            tail = os.pread(self._fd, size - start, start)
            if start > 0:  # the first piece is the end of a line we did not read whole
                tail = tail[tail.find(b"\n") + 1 :]
            self._lines.split(tail, result.lines, now)
            del result.lines[:-backlog]
        else:
            # Hold what follows the last newline as the partial line, so it is not lost.
            last_newline = self._last_newline(size)
            if last_newline < size:
                self._lines.take_partial(os.pread(self._fd, size - last_newline, last_newline), now)
        return result

    def close(self) -> None:
        """Release the file descriptor."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- the one entry point after start ------------------------------------------------------

    def poll(self, now: float) -> Poll:
        """Look at the file now: read what is new, notice truncation, rotation and vanishing."""
        result = Poll()
        if self._fd is None:
            if self._open(result, now):
                result.note("appeared", self.state)
                self._read(result, now)
            return result
        try:
            self._check_truncated(result, now)
            self._read(result, now)
            if not result.more:
                self._check_replaced(result, now)
        except OSError as exc:
            self._lose(UNREADABLE, f"read failed: {exc.strerror or exc}", result, now)
        held = self._lines
        if held.partial and not result.more and now - held.partial_since >= self.flush_after:
            result.lines.append(self._lines.flush())
        return result

    # -- internals ------------------------------------------------------------------------------

    def _open(self, result: Poll, now: float) -> bool:
        previous = self.state
        try:
            fd = open_regular(self.path)
        except FileNotFoundError:
            self._set_state(MISSING, "no such file", result)
            return False
        except NotRegularFile as exc:
            self._set_state(UNREADABLE, exc.strerror, result)
            return False
        except OSError as exc:
            self._set_state(UNREADABLE, exc.strerror or str(exc), result)
            return False
        info = os.fstat(fd)
        self._fd = fd
        self._identity = (info.st_dev, info.st_ino)
        self._fingerprint = os.pread(fd, FINGERPRINT, 0)
        self._offset = 0
        self._set_state(FOLLOWING, None, result)
        if previous == UNREADABLE:
            log.info("%s: readable again", self.path)
        return True

    def _set_state(self, state: str, problem: str | None, result: Poll) -> None:
        if state != self.state or problem != self.problem:
            if state == FOLLOWING:
                log.info("%s: following", self.path)
            else:
                log.warning("%s: %s (%s)", self.path, state, problem)
            if state != self.state and state == UNREADABLE:
                result.note("state", state)
        self.state = state
        self.problem = problem

    def _lose(self, state: str, problem: str, result: Poll, now: float) -> None:
        """The file is gone or unusable: keep its unfinished line, close it, wait for a new one."""
        if self._partial:
            result.lines.append(self._lines.flush())
        self.close()
        self._set_state(state, problem, result)

    def _check_truncated(self, result: Poll, now: float) -> None:
        """Truncation (``: > file``, copytruncate): the file shrank, or its first bytes changed.

        The fingerprint catches a copytruncate whose new content grew past our offset before we
        looked, which a size comparison alone would miss.
        """
        assert self._fd is not None
        size = os.fstat(self._fd).st_size
        head = os.pread(self._fd, FINGERPRINT, 0) if size else b""
        if size < self._offset or not head.startswith(self._fingerprint):
            if self._lines.pending:
                result.lines.append(self._lines.flush())
            self._offset = 0
            result.note("truncated", self.state)
            log.info("%s: truncated, reading from the start", self.path)
        self._fingerprint = head

    def _check_replaced(self, result: Poll, now: float) -> None:
        """Rotation by rename or delete: the path now names another file, or none.

        A path that is missing for less than ``flush_after`` is not yet "vanished": logrotate's
        ``create`` renames first and creates the new file a moment later, and that is a rotation.
        Meanwhile the old file stays open and is still read.
        """
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            if self._gone_since is None:
                self._gone_since = now
            elif now - self._gone_since >= self.flush_after:
                self._gone_since = None
                self._lose(MISSING, "no such file", result, now)
                result.note("vanished", self.state)
            return
        except OSError:
            return  # a transient error on the path; the open file is still good
        self._gone_since = None
        if (info.st_dev, info.st_ino) == self._identity:
            return
        # The old file was read to its end above; switch to the new one from byte 0.
        if self._partial:
            result.lines.append(self._lines.flush())
        self.close()
        if self._open(result, now):
            result.note("rotated", self.state)
            log.info("%s: rotated, following the new file", self.path)
            self._read(result, now)
        else:
            result.note("vanished", self.state)

    def _read(self, result: Poll, now: float) -> None:
        assert self._fd is not None
        budget = READ_BUDGET
        while budget > 0:
            chunk = os.pread(self._fd, CHUNK, self._offset)
            if not chunk:
                return
            self._offset += len(chunk)
            budget -= len(chunk)
            self._lines.split(chunk, result.lines, now)
            if len(chunk) < CHUNK:
                return
        result.more = True

    def _last_newline(self, size: int) -> int:
        """Offset just past the last newline before ``size`` (0 if none), reading backwards."""
        assert self._fd is not None
        position = size
        while position > 0:
            start = max(0, position - CHUNK)
            block = os.pread(self._fd, position - start, start)
            found = block.rfind(b"\n")
            if found >= 0:
                return start + found + 1
            position = start
            if size - position > self.max_line + CHUNK:
                return position
        return 0
