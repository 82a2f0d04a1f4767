"""Follow the systemd journal as a source: ``--source ssh=journal:ssh.service``.

Boxes without ``/var/log/auth.log`` keep their logs in journald only. A journal source runs
``journalctl --follow --output=json`` through the command sources' machinery
(:class:`~logtv.server.command.CommandFollower`: restarts with backoff, stderr to the log, the
process group stopped with the server, the tailer's one door), and uses its two hooks:

- :meth:`JournalFollower.spawn_argv` chooses where each run starts: after the cursor of the last
  entry handed over, or, with no cursor yet, with the last ``backlog`` entries, as a file's
  backlog is seeded. ``--after-cursor`` goes with ``--no-tail``, because ``--follow`` alone
  implies ``--lines=10`` and would skip what was logged while the server was down; ``--merge``
  keeps ``--follow`` from showing the latest boot only (entries logged during a shutdown, after
  the server stopped, belong to the boot before).
- :meth:`JournalFollower.deliver` turns each JSON entry into the line ``journalctl -o short``
  would print (:func:`format_entry`) with its ``PRIORITY`` as the line's severity, then writes
  the entry's cursor to ``STATE_DIR/journal-NAME.cursor``. journalctl's own ``--cursor-file``
  is not used: it writes the file only when journalctl ends by itself (not on SIGTERM), and
  then with the last entry it printed, which may still sit unread in the pipe.

``LOGTV_JOURNALCTL`` names another journalctl program; it exists for the tests.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logtv.config import CommandSource, JournalSource
from logtv.server.command import CommandFollower, HandOver
from logtv.server.follower import FOLLOWING, LineSplitter

__all__ = ["DEFAULT_SEVERITY", "JournalFollower", "JournalOptions", "format_entry", "is_cursor"]

log = logging.getLogger(__name__)

#: The severity of an entry without a valid ``PRIORITY`` (and of a line that is not JSON): info.
DEFAULT_SEVERITY = 6
#: journalctl's JSON spells a non-UTF-8 byte as a number, so an entry may be this many times
#: longer than its message; the JSON line is cut only beyond it (and the shown line at max-line).
JSON_GROWTH = 4
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_CURSOR_MAX = 1024


@dataclass(frozen=True, slots=True)
class JournalOptions:
    """What every journal source of a server shares."""

    #: Where the cursor files are kept (created when first needed, mode 0700).
    state_dir: Path
    #: Journal files to read instead of the system journal (``journalctl --directory``).
    directory: Path | None = None
    #: Entries shown at the first start, when there is no cursor yet.
    backlog: int = 200


def is_cursor(text: str) -> bool:
    """True for text shaped like a journal cursor: ``s=…;i=…;b=…`` (hex values, no spaces)."""
    if not 0 < len(text) <= _CURSOR_MAX:
        return False
    for part in text.split(";"):
        key, equals, value = part.partition("=")
        if len(key) != 1 or not key.isalpha() or not equals or not value:
            return False
        if value.strip("0123456789abcdef"):
            return False
    return True


def _text(value: Any) -> str | None:
    """A field's value as text: a string; a byte array (not UTF-8) decoded with U+FFFD; of a field
    given several times, the last value, as ``journalctl -o short`` shows it. Else None."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        return None
    if all(type(item) is int and 0 <= item <= 255 for item in value):
        return bytes(value).decode("utf-8", "replace")
    last = value[-1]
    if isinstance(last, str):
        return last
    if isinstance(last, list) and all(type(item) is int and 0 <= item <= 255 for item in last):
        return bytes(last).decode("utf-8", "replace")
    return None


def _microseconds(entry: Mapping[str, Any]) -> int | None:
    for key in ("_SOURCE_REALTIME_TIMESTAMP", "__REALTIME_TIMESTAMP"):
        text = _text(entry.get(key))
        if text is not None and text.isdigit() and 0 < len(text) <= 19:
            return int(text)
    return None


def _severity(entry: Mapping[str, Any]) -> int:
    text = _text(entry.get("PRIORITY"))
    if text is not None and len(text) == 1 and "0" <= text <= "7":
        return int(text)
    return DEFAULT_SEVERITY


def format_entry(entry: Mapping[str, Any], *, read_at: float) -> tuple[list[str], int] | None:
    """An entry as ``journalctl -o short`` prints it, and its severity (0 emerg … 7 debug).

    ``Mmm dd HH:MM:SS host ident[pid]: message`` in local time: the time the program gave
    (``_SOURCE_REALTIME_TIMESTAMP``) or journald's, else ``read_at``; no host when there is no
    ``_HOSTNAME``; ``SYSLOG_IDENTIFIER``, else ``_COMM``, else ``unknown``; ``_PID`` (the
    sender's, as journald saw it), else ``SYSLOG_PID``, else no ``[pid]``. A message of several
    lines gives several lines, the later ones indented to the message's column (trailing
    newlines dropped). A ``PRIORITY`` that is missing or not 0 to 7 counts as info (6). An entry
    without a ``MESSAGE`` is not shown (None), as journalctl does.
    """
    message = _text(entry.get("MESSAGE"))
    if message is None:
        return None
    micros = _microseconds(entry)
    moment = time.localtime(read_at if micros is None else micros // 1_000_000)
    head = f"{_MONTHS[moment.tm_mon - 1]} {time.strftime('%d %H:%M:%S', moment)} "
    host = _text(entry.get("_HOSTNAME"))
    if host:
        head += f"{host} "
    ident = _text(entry.get("SYSLOG_IDENTIFIER")) or _text(entry.get("_COMM")) or "unknown"
    pid = _text(entry.get("_PID")) or _text(entry.get("SYSLOG_PID"))
    head += f"{ident}[{pid}]: " if pid else f"{ident}: "
    first, *rest = message.rstrip("\n").split("\n")
    indent = " " * len(head)
    return [head + first, *(indent + line for line in rest)], _severity(entry)


class JournalFollower(CommandFollower):
    """One journal source: journalctl as a command, its JSON turned into lines, a cursor file."""

    def __init__(
        self,
        name: str,
        source: JournalSource,
        *,
        hand_over: HandOver,
        max_line: int,
        options: JournalOptions,
    ) -> None:
        self.source = source
        self.options = options
        self.program = os.environ.get("LOGTV_JOURNALCTL", "journalctl")
        self.cursor_path = options.state_dir / f"journal-{name}.cursor"
        #: The cursor of the last entry handed over (None: none yet, start with the backlog).
        self.cursor: str | None = None
        self._cut = LineSplitter(max_line)
        self._cursor_trouble = False
        argv = [self.program, "--follow", "--output=json", "--all", "--no-pager", "--merge"]
        if options.directory is not None:
            argv.append(f"--directory={options.directory}")
        if source.unit:
            argv.append(f"--unit={source.unit}")
        if source.priority is not None:
            argv.append(f"--priority={source.priority}")
        super().__init__(
            name,
            CommandSource(shlex.join(argv), tuple(argv)),
            hand_over=hand_over,
            max_line=JSON_GROWTH * max_line + (64 << 10),
            # Half an entry is not JSON: wait for its newline, however long the pipe takes.
            flush_after=math.inf,
        )

    def start(self) -> None:
        """Read the cursor left by the last run, then start journalctl."""
        self.cursor = self._load_cursor()
        if self.cursor is None:
            log.info(
                "%s: no journal cursor yet; starting with the last %d entries",
                self.name,
                self.options.backlog,
            )
        else:
            log.info("%s: resuming the journal after the cursor in %s", self.name, self.cursor_path)
        if shutil.which(self.program) is None:
            log.warning(
                "%s: %s is not installed (or not on PATH): the source stays missing; "
                "install systemd's journalctl to follow the journal",
                self.name,
                self.program,
            )
        super().start()

    # -- the hooks --------------------------------------------------------------------------------

    def spawn_argv(self) -> Sequence[str]:
        """journalctl's arguments, after the cursor if there is one, else with the backlog."""
        argv = list(self.command.argv)
        if self.cursor is not None:
            argv += [f"--after-cursor={self.cursor}", "--no-tail"]
        else:
            argv.append(f"--lines={self.options.backlog}")
        return argv

    def deliver(self, lines: list[str]) -> None:
        """Turn journalctl's JSON lines into shown lines and severities; hand them over; keep the
        cursor of the last entry."""
        shown: list[str] = []
        severities: list[int] = []
        cursor = None
        read_at = time.time()
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if not isinstance(entry, dict):
                log.warning(
                    "%s: journalctl printed a line that is not a JSON entry; shown as is", self.name
                )
                shown.append(self._fit(line))
                severities.append(DEFAULT_SEVERITY)
                continue
            entry_cursor = entry.get("__CURSOR")
            if isinstance(entry_cursor, str) and is_cursor(entry_cursor):
                cursor = entry_cursor
            formatted = format_entry(entry, read_at=read_at)
            if formatted is None:
                continue
            entry_lines, severity = formatted
            shown.extend(self._fit(text) for text in entry_lines)
            severities.extend([severity] * len(entry_lines))
        if self.stopping:
            return  # the loop may never take these: the cursor stays before them
        if shown:
            self._hand_over(self.name, shown, [], FOLLOWING, severities)
        if cursor is not None:
            self.cursor = cursor
            self._save_cursor(cursor)

    # -- lines and the cursor file -----------------------------------------------------------------

    def _fit(self, line: str) -> str:
        """The line cut at max-line bytes with the files' marker; valid UTF-8 whatever it held."""
        try:
            raw = line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate, from a JSON \u escape
            raw = line.encode("utf-8", "replace")
            line = raw.decode("utf-8")
        return line if len(raw) <= self._cut.max_line else self._cut.decode(raw, 0)

    def _load_cursor(self) -> str | None:
        try:
            text = self.cursor_path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            log.warning(
                "%s: cannot read the cursor %s (%s); starting with the backlog",
                self.name,
                self.cursor_path,
                getattr(exc, "strerror", None) or exc,
            )
            return None
        if not is_cursor(text):
            log.warning(
                "%s: %s does not hold a journal cursor; starting with the backlog",
                self.name,
                self.cursor_path,
            )
            return None
        return text

    def _save_cursor(self, cursor: str) -> None:
        """Replace the cursor file in one step, so a crash leaves the old cursor or the new."""
        temporary = self.cursor_path.with_name(self.cursor_path.name + ".new")
        try:
            self.cursor_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            temporary.write_text(cursor, encoding="ascii")
            os.replace(temporary, self.cursor_path)
        except OSError as exc:
            if not self._cursor_trouble:
                log.warning(
                    "%s: cannot keep the journal cursor in %s (%s); a restart will "
                    "start with the backlog again",
                    self.name,
                    self.cursor_path,
                    exc.strerror or exc,
                )
                self._cursor_trouble = True
            return
        if self._cursor_trouble:
            log.info("%s: the journal cursor is kept in %s again", self.name, self.cursor_path)
            self._cursor_trouble = False
