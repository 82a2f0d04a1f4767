"""The viewer's bounded memory of lines, and the filtered view over it. No Textual in here.

A list with a moving start index gives O(1) append, O(1) random access (the pane asks for the
lines at its scroll position) and cheap eviction of the oldest lines; the list is compacted only
when half of it is dead, so memory stays flat however long the viewer runs.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = ["GAP", "LINE", "NOTICE", "Entry", "Scrollback"]

LINE, GAP, NOTICE = 0, 1, 2

_ids = itertools.count()


@dataclass(slots=True)
class Entry:
    """One row of the log pane: a log line, a gap marker or a notice."""

    kind: int
    source: str
    text: str
    received: float
    seq: int = 0
    id: int = field(default_factory=lambda: next(_ids))


class _Window:
    """A list whose front is dropped lazily."""

    __slots__ = ("items", "start")

    def __init__(self) -> None:
        self.items: list[Entry] = []
        self.start = 0

    def __len__(self) -> int:
        return len(self.items) - self.start

    def __getitem__(self, index: int) -> Entry:
        return self.items[self.start + index]

    def drop_front(self, count: int) -> None:
        self.start += count
        if self.start > 1024 and self.start * 2 > len(self.items):
            del self.items[: self.start]
            self.start = 0

    def clear(self) -> None:
        self.items.clear()
        self.start = 0

    def __iter__(self) -> Iterator[Entry]:
        return itertools.islice(self.items, self.start, None)


class Scrollback:
    """At most ``max_lines`` entries, and the subset that matches the filter."""

    def __init__(self, max_lines: int) -> None:
        self.max_lines = max_lines
        self._all = _Window()
        self._shown: _Window | None = None  # None: no filter, everything is shown
        self.pattern: re.Pattern[str] | None = None
        #: Counts everything the pane must know to redraw: appends, evictions, filter changes.
        self.version = 0
        #: Entries dropped from the front of the shown view since the pane last looked.
        self.dropped_shown = 0

    def __len__(self) -> int:
        return len(self._all)

    @property
    def shown_count(self) -> int:
        return len(self._all if self._shown is None else self._shown)

    def shown(self, index: int) -> Entry:
        return (self._all if self._shown is None else self._shown)[index]

    def iter_shown(self) -> Iterator[Entry]:
        return iter(self._all if self._shown is None else self._shown)

    def extend(self, entries: Iterable[Entry]) -> int:
        """Append entries, drop the oldest beyond the limit; return how many were appended."""
        new = list(entries)
        if not new:
            return 0
        self._all.items.extend(new)
        if self._shown is not None:
            search = self.pattern.search if self.pattern else None
            self._shown.items.extend(
                e for e in new if e.kind != LINE or search is None or search(e.text)
            )
        excess = len(self._all) - self.max_lines
        if excess > 0:
            oldest_kept = self._all[excess].id
            self._all.drop_front(excess)
            if self._shown is None:
                self.dropped_shown += excess
            else:
                drop = 0
                while drop < len(self._shown) and self._shown[drop].id < oldest_kept:
                    drop += 1
                self._shown.drop_front(drop)
                self.dropped_shown += drop
        self.version += 1
        return len(new)

    def set_filter(self, pattern: re.Pattern[str] | None) -> None:
        """Show only lines matching ``pattern`` (gap and notice rows always show)."""
        self.pattern = pattern
        if pattern is None:
            self._shown = None
        else:
            shown = _Window()
            search = pattern.search
            shown.items = [e for e in self._all if e.kind != LINE or search(e.text)]
            self._shown = shown
        self.version += 1

    def clear(self) -> None:
        self._all.clear()
        if self._shown is not None:
            self._shown.clear()
        self.version += 1
