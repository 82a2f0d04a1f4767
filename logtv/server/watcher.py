"""Watch the followed files' directories and read them on a thread of their own.

Three threads meet here, and each does one thing:

- watchdog's observer thread only marks paths dirty and wakes the reader (it never reads, so a
  burst of unrelated events in ``/var/log`` cannot stall it);
- the reader thread polls the dirty :class:`Follower` objects, and every second all of them (the
  safety re-stat that catches what inotify's queue dropped, and flushes old partial lines);
- each command source (:mod:`logtv.server.command`) has a thread that reads the command's pipes,
  and so has each journal source (:mod:`logtv.server.journal`), whose command is journalctl;
- the asyncio loop gets the lines through one door, :meth:`Tailer._hand_over`, which batches all
  updates since the last hand-over into one ``call_soon_threadsafe`` call.

If the loop falls behind, the reader waits before reading more: the lines stay in the files, so
memory is bounded and nothing is lost.

A busy directory is read, not watched. inotify sends one event per ``write(2)``, and watchdog
spends about 150 µs of CPU on each (four threads hand it along), which at a thousand writes a
second is a sixth of a core. When a directory gets events at more than ``BUSY_EVENTS`` a second,
its watch is removed and the reader reads its files every ``BUSY_POLL`` seconds instead (a few
µs each); once they have been quiet for ``CALM_AFTER`` seconds, the watch is put back and the
files read once more, so a write in between is not missed. Nothing is lost either way: the
files are the record, events only say when to look.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from logtv.config import CommandSource, JournalSource, default_state_dir
from logtv.server.command import CommandFollower
from logtv.server.follower import Follower, Poll
from logtv.server.journal import JournalFollower, JournalOptions

__all__ = ["SourceUpdate", "Tailer"]

log = logging.getLogger(__name__)

#: The reader pauses while this many lines wait for the loop.
MAX_PENDING_LINES = 200_000
#: inotify events a second that make a directory busy: it is then read, not watched. They are
#: counted over BUSY_WINDOW seconds, so a flood is noticed within a tenth of a second.
BUSY_EVENTS = 300
BUSY_WINDOW = 0.1
#: How often the files of a busy directory are read.
BUSY_POLL = 0.002
#: Seconds without a new line after which a busy directory is watched again.
CALM_AFTER = 0.5


@dataclass(slots=True)
class SourceUpdate:
    """New lines and file events of one source, as read at ``read_at`` (POSIX time)."""

    name: str
    lines: list[str]
    #: (index into ``lines``, event, state after it): where each file event happened
    events: list[tuple[int, str, str]]
    state: str
    read_at: float
    #: Per line, its syslog severity (0 emerg … 7 debug) where the source knows it (journal,
    #: syslog); None for files and commands, whose lines carry none.
    severities: list[int] | None = None


class _DirtyMarker(FileSystemEventHandler):
    """Runs on the observer thread: maps an event's paths to sources and wakes the reader."""

    def __init__(self, tailer: Tailer) -> None:
        self._tailer = tailer

    def on_any_event(self, event: FileSystemEvent) -> None:
        names_by_path = self._tailer.names_by_path
        for path in (event.src_path, getattr(event, "dest_path", "")):
            if isinstance(path, bytes):
                path = os.fsdecode(path)
            names = names_by_path.get(path)
            if names:
                self._tailer.mark_dirty(names, os.path.dirname(path))


class Tailer:
    """All followed sources: the watchdog observer, the reader thread and the door to the loop."""

    def __init__(
        self,
        paths: dict[str, Path | CommandSource | JournalSource],
        *,
        on_updates: Callable[[list[SourceUpdate]], None],
        max_line: int,
        restat_interval: float = 1.0,
        observer_factory: Callable[[], BaseObserver] = Observer,
        journal: JournalOptions | None = None,
    ) -> None:
        files = {name: path for name, path in paths.items() if isinstance(path, Path)}
        self.followers = {name: Follower(path, max_line=max_line) for name, path in files.items()}
        #: Command sources: each has a thread of its own that hands over through the same door.
        self.commands = {
            name: CommandFollower(name, command, hand_over=self._hand_over_one, max_line=max_line)
            for name, command in paths.items()
            if isinstance(command, CommandSource)
        }
        journal = journal or JournalOptions(default_state_dir())
        for name, source in paths.items():
            if isinstance(source, JournalSource):
                self.commands[name] = JournalFollower(
                    name, source, hand_over=self._hand_over_one, max_line=max_line, options=journal
                )
        self.names_by_path: dict[str, tuple[str, ...]] = {}
        for name, path in files.items():
            for alias in {os.path.abspath(path), os.path.realpath(path)}:
                self.names_by_path[alias] = (*self.names_by_path.get(alias, ()), name)
        self._on_updates = on_updates
        self._restat_interval = restat_interval
        self._observer_factory = observer_factory
        self._observer: BaseObserver | None = None
        self._unwatched_dirs: set[str] = set()
        #: The watch of each watched directory, and the sources whose files are in it.
        self._watches: dict[str, ObservedWatch] = {}
        self._names_by_dir: dict[str, set[str]] = {}
        for alias, names in self.names_by_path.items():
            self._names_by_dir.setdefault(os.path.dirname(alias), set()).update(names)
        #: Events per directory since the last count; busy directories and their last new line.
        self._events: dict[str, int] = {}
        self._busy: dict[str, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._dirty: set[str] = set()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._inbox: list[SourceUpdate] = []
        self._inbox_lines = 0
        self._hand_over_scheduled = False
        self._drained = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None

    # -- life cycle -----------------------------------------------------------------------------

    def open(self, backlog: int) -> list[SourceUpdate]:
        """Open every file at its end; return the backlog lines to seed the ring buffers."""
        now = time.monotonic()
        updates = []
        for name, follower in self.followers.items():
            polled = follower.start(backlog, now)
            updates.append(self._update(name, follower, polled))
        return updates

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start watching and reading; updates reach ``on_updates`` on ``loop``."""
        self._loop = loop
        self._observer = self._start_observer()
        self._thread = threading.Thread(target=self._read_forever, name="logtv-reader", daemon=True)
        self._thread.start()
        for command in self.commands.values():
            command.start()

    def stop(self) -> None:
        """Stop the observer and the reader, close the files, terminate the commands."""
        self._stopping.set()
        self._wake.set()
        with self._lock:
            self._drained.notify_all()
        for command in self.commands.values():
            command.terminate()  # SIGTERM every command first: their grace periods overlap
        for command in self.commands.values():
            command.stop()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)
        if self._thread is not None:
            self._thread.join(timeout=2)
        for follower in self.followers.values():
            follower.close()

    def mark_dirty(self, names: tuple[str, ...], directory: str = "") -> None:
        """Ask the reader to look at these sources now (called from any thread).

        ``directory``: the watched directory whose event this is (counted to find busy ones).
        """
        with self._lock:
            self._dirty.update(names)
            if directory:
                self._events[directory] = self._events.get(directory, 0) + 1
        self._wake.set()

    # -- watching -------------------------------------------------------------------------------

    def _directories(self) -> set[str]:
        return {os.path.dirname(path) for path in self.names_by_path}

    def _start_observer(self) -> BaseObserver:
        observer = self._observer_factory()
        observer.start()
        handler = _DirtyMarker(self)
        for directory in sorted(self._directories()):
            try:
                self._watches[directory] = observer.schedule(handler, directory, recursive=False)
            except FileNotFoundError:
                log.warning("%s does not exist yet; checking it every second", directory)
                self._unwatched_dirs.add(directory)
            except OSError as exc:
                if isinstance(observer, PollingObserver):
                    raise
                log.warning("inotify is unavailable (%s); falling back to polling the files", exc)
                observer.stop()
                observer.join(timeout=2)
                self._observer_factory = PollingObserver
                return self._start_observer()
        return observer

    def _retry_unwatched(self) -> None:
        if not self._unwatched_dirs or self._observer is None:
            return
        handler = _DirtyMarker(self)
        for directory in sorted(self._unwatched_dirs):
            try:
                watch = self._observer.schedule(handler, directory, recursive=False)
            except OSError:
                continue
            self._watches[directory] = watch
            log.info("%s appeared; watching it", directory)
            self._unwatched_dirs.discard(directory)

    # -- reading (the reader thread) ------------------------------------------------------------

    def _read_forever(self) -> None:
        next_restat = time.monotonic() + self._restat_interval
        next_count = time.monotonic() + BUSY_WINDOW
        while not self._stopping.is_set():
            wait = next_restat - time.monotonic()
            if self._busy:
                wait = min(wait, BUSY_POLL)
            self._wake.wait(timeout=max(0.0, wait))
            self._wake.clear()
            with self._lock:
                dirty, self._dirty = self._dirty, set()
            now = time.monotonic()
            if now >= next_restat:
                dirty = set(self.followers)
                next_restat = now + self._restat_interval
                self._retry_unwatched()
            for directory in self._busy:
                dirty |= self._names_by_dir[directory]
            updates = []
            for name in sorted(dirty):
                follower = self.followers[name]
                polled = follower.poll(now)
                if polled.more:
                    self.mark_dirty((name,))
                if polled.lines or polled.events:
                    updates.append(self._update(name, follower, polled))
            if updates:
                self._hand_over(updates)
            if self._busy:
                self._calm_down({update.name for update in updates}, now)
            if now >= next_count:
                self._find_busy(now, now - next_count + BUSY_WINDOW)
                next_count = now + BUSY_WINDOW

    def _find_busy(self, now: float, seconds: float) -> None:
        """Stop watching the directories that had events at more than BUSY_EVENTS a second
        over the last ``seconds``: their files are read every BUSY_POLL seconds instead."""
        with self._lock:
            events, self._events = self._events, {}
        if self._observer is None or isinstance(self._observer, PollingObserver):
            return
        for directory, count in events.items():
            watch = self._watches.get(directory)
            if count <= BUSY_EVENTS * seconds or watch is None or directory in self._busy:
                continue
            try:
                self._observer.unschedule(watch)
            except (KeyError, OSError):
                continue
            del self._watches[directory]
            self._busy[directory] = now
            log.debug(
                "%s is busy (%.0f events a second): reading it, not watching",
                directory,
                count / seconds,
            )

    def _calm_down(self, with_lines: set[str], now: float) -> None:
        """Watch a busy directory again once its files have said nothing for CALM_AFTER s."""
        assert self._observer is not None
        for directory in list(self._busy):
            names = self._names_by_dir[directory]
            if not names.isdisjoint(with_lines):
                self._busy[directory] = now
                continue
            if now - self._busy[directory] < CALM_AFTER:
                continue
            del self._busy[directory]
            try:
                watch = self._observer.schedule(_DirtyMarker(self), directory, recursive=False)
            except OSError:
                self._unwatched_dirs.add(directory)
                continue
            self._watches[directory] = watch
            self.mark_dirty(tuple(names))  # what was written while the watch came back
            log.debug("%s is calm again: watching it", directory)

    def _update(self, name: str, follower: Follower, polled: Poll) -> SourceUpdate:
        return SourceUpdate(name, polled.lines, polled.events, follower.state, time.time())

    # -- the one door into the loop ---------------------------------------------------------------

    def _hand_over(self, updates: list[SourceUpdate]) -> None:
        """Queue updates for the loop; one wake-up carries everything queued since the last."""
        assert self._loop is not None
        with self._lock:
            self._inbox.extend(updates)
            self._inbox_lines += sum(len(update.lines) for update in updates)
            if not self._hand_over_scheduled:
                self._hand_over_scheduled = True
                try:
                    self._loop.call_soon_threadsafe(self._deliver)
                except RuntimeError:  # the loop is closed: we are shutting down
                    return
            while self._inbox_lines > MAX_PENDING_LINES and not self._stopping.is_set():
                self._drained.wait(timeout=0.5)

    def _hand_over_one(
        self,
        name: str,
        lines: list[str],
        events: list[tuple[int, str, str]],
        state: str,
        severities: list[int] | None = None,
    ) -> None:
        """The door as a command source's thread uses it: one source's lines and events."""
        self._hand_over([SourceUpdate(name, lines, events, state, time.time(), severities)])

    def _deliver(self) -> None:
        """On the loop: take everything the reader queued and hand it to the broadcaster."""
        with self._lock:
            updates, self._inbox = self._inbox, []
            self._inbox_lines = 0
            self._hand_over_scheduled = False
            self._drained.notify_all()
        self._on_updates(updates)
