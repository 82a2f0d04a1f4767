"""The source list: one row per source with its toggle, colour, line count, rate and state.

With several servers the rows are grouped by server, each group under a host row that shows
whether that server is live or down. A host row is a cursor stop: Space, Enter or a click toggles
all of its sources, and it can be collapsed (``▸``, its source rows hidden, a count of its
subscribed sources shown instead) or expanded (``▾``) with ← and →.

Rendered as one Rich Text: the sidebar is a handful of rows, and the app repaints it only when a
subscription changes or (at most once a second) when the counters move, so it costs almost
nothing to send over a thin link.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.events import Click
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from logtv.client.widgets.log_view import source_colour
from logtv.sanitize import sanitize

__all__ = ["HostRow", "SourceList", "SourceRow"]


@dataclass(slots=True)
class SourceRow:
    """What the sidebar shows about one source."""

    name: str
    state: str = "following"
    #: What the user wants; ``acked`` is what the server confirmed.
    wanted: bool = False
    acked: bool = False
    seq: int = 0
    rate: float = 0.0
    #: The server's URL (the rows of several servers are keyed by server and source).
    server: str = ""
    #: Its server is not connected (shown only with several servers).
    down: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.server, self.name)


@dataclass(slots=True)
class HostRow:
    """The heading of one server's rows."""

    server: str
    label: str
    live: bool
    state: str


def _count(n: int) -> str:
    if n < 100_000:
        return f"{n:,}"
    if n < 10_000_000:
        return f"{n / 1000:.0f}k"
    return f"{n / 1_000_000:.0f}M"


class SourceList(Widget, can_focus=True):
    """Arrow keys move, Space or Enter toggles the source (or host) under the cursor.

    With host rows, ← collapses the host under the cursor and → expands it.
    """

    BINDINGS = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("space,enter", "toggle_current", "Toggle", show=False),
        Binding("left", "fold(True)", "Collapse", show=False),
        Binding("right", "fold(False)", "Expand", show=False),
    ]

    DEFAULT_CSS = """
    SourceList { width: 28; height: 1fr; padding: 0 1; border-right: tall $panel; }
    SourceList:focus { border-right: tall $accent; }
    """

    cursor: reactive[int] = reactive(0)

    class Toggled(Message):
        """The user asked to (un)subscribe a source."""

        def __init__(self, key: tuple[str, str]) -> None:
            super().__init__()
            self.key = key
            self.name = key[1]

    class HostToggled(Message):
        """The user clicked a host row: toggle all of that server's sources."""

        def __init__(self, server: str) -> None:
            super().__init__()
            self.server = server

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[SourceRow] = []
        self.hosts: list[HostRow] | None = None
        #: The servers whose source rows are hidden under their host row.
        self.collapsed: set[str] = set()
        #: What each screen line shows: a host row, or the index of a source row. The cursor
        #: is an index into it.
        self._lines: list[HostRow | int] = []

    def set_rows(self, rows: list[SourceRow], hosts: list[HostRow] | None = None) -> None:
        """The rows to show; with ``hosts``, grouped under one heading per server."""
        self.rows = rows
        self.hosts = hosts
        self._layout()

    def _layout(self) -> None:
        if self.hosts is None:
            self._lines = list(range(len(self.rows)))
        else:
            self._lines = []
            for host in self.hosts:
                self._lines.append(host)
                if host.server not in self.collapsed:
                    self._lines.extend(
                        i for i, row in enumerate(self.rows) if row.server == host.server
                    )
        self.cursor = min(self.cursor, max(0, len(self._lines) - 1))
        self.refresh()

    def _current_server(self) -> str | None:
        if not 0 <= self.cursor < len(self._lines):
            return None
        line = self._lines[self.cursor]
        return line.server if isinstance(line, HostRow) else self.rows[line].server

    def set_collapsed(self, server: str, collapsed: bool) -> None:
        """Hide (or show again) a server's source rows; the cursor stays on that server."""
        on_server = self._current_server() == server
        if collapsed:
            self.collapsed.add(server)
        else:
            self.collapsed.discard(server)
        self._layout()
        if on_server:
            for number, line in enumerate(self._lines):
                if isinstance(line, HostRow) and line.server == server:
                    self.cursor = number

    def fold_all(self) -> None:
        """Collapse every host, or expand them all when all are collapsed already."""
        servers = [host.server for host in self.hosts or []]
        collapse = not all(server in self.collapsed for server in servers)
        for server in servers:
            self.set_collapsed(server, collapse)

    def action_fold(self, collapse: bool) -> None:
        server = self._current_server()
        if self.hosts is not None and server is not None:
            self.set_collapsed(server, collapse)

    def action_move(self, step: int) -> None:
        if self._lines:
            self.cursor = (self.cursor + step) % len(self._lines)

    def action_toggle_current(self) -> None:
        if not 0 <= self.cursor < len(self._lines):
            return
        line = self._lines[self.cursor]
        if isinstance(line, HostRow):
            self.post_message(self.HostToggled(line.server))
        elif line < len(self.rows):
            self.post_message(self.Toggled(self.rows[line].key))

    def on_click(self, event: Click) -> None:
        if not 0 <= event.y < len(self._lines):
            return
        line = self._lines[event.y]
        if isinstance(line, HostRow):
            self.post_message(self.HostToggled(line.server))
        elif line < len(self.rows):
            self.cursor = event.y
            self.post_message(self.Toggled(self.rows[line].key))

    def render(self) -> Text:
        width = max(10, self.size.width)
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        for number, line in enumerate(self._lines):
            if number:
                text.append("\n")
            if isinstance(line, HostRow):
                text.append_text(self._host_text(line, width, number == self.cursor))
            else:
                text.append_text(
                    self._row_text(line, self.rows[line], width, number == self.cursor)
                )
        if not self.rows and not self.hosts:
            text.append("no sources yet", Style(dim=True))
        return text

    def _host_text(self, host: HostRow, width: int, at_cursor: bool) -> Text:
        line = Text(no_wrap=True, end="")
        collapsed = host.server in self.collapsed
        line.append("▸ " if collapsed else "▾ ", Style(dim=True))
        detail = host.state
        if collapsed:  # what the hidden rows would say: how many of its sources are on
            mine = [row for row in self.rows if row.server == host.server]
            detail = f"{sum(row.wanted for row in mine)}/{len(mine)} {host.state}"
        room = max(1, width - 2 - len(detail) - 1)
        line.append(sanitize(host.label)[:room].ljust(room), Style(bold=True, dim=not host.live))
        line.append(" " + detail, Style(color="green" if host.live else "yellow"))
        if at_cursor and self.has_focus:
            line.stylize(Style(reverse=True))
        return line

    def _row_text(self, index: int, row: SourceRow, width: int, at_cursor: bool) -> Text:
        colour = source_colour(row.name)
        if row.wanted != row.acked:
            mark, mark_style = "◌", Style(color=colour)
        elif row.acked:
            mark, mark_style = "●", Style(color=colour, bold=True)
        else:
            mark, mark_style = "○", Style(color=colour, dim=True)
        key = str(index + 1) if index < 9 else " "
        dim = row.down or row.state != "following"
        name_style = Style(color=colour, bold=row.acked, dim=dim)
        line = Text(no_wrap=True, end="")
        line.append(f"{key} ", Style(dim=True))
        line.append(mark + " ", mark_style)
        if dim:
            detail = "down" if row.down else row.state
        else:
            rate = f" {row.rate:,.0f}/s" if row.rate >= 1 else ""
            detail = _count(row.seq) + rate
        room = max(1, width - 4 - len(detail) - 1)
        line.append(sanitize(row.name)[:room].ljust(room), name_style)
        line.append(" " + detail, Style(dim=True) if not row.rate or dim else Style(bold=True))
        if self.has_focus and at_cursor:
            line.stylize(Style(reverse=True))
        elif at_cursor:
            line.stylize(Style(underline=True), 4)
        return line

    def watch_cursor(self) -> None:
        self.refresh()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
