"""The source list: one row per source with its toggle, colour, line count, rate and state.

With several servers the rows are grouped by server, each group under a host row that shows
whether that server is live or down (a host row is not a cursor stop; clicking it toggles all of
its sources).

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
    """Arrow keys move, Space or Enter toggles the source under the cursor."""

    BINDINGS = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("space,enter", "toggle_current", "Toggle", show=False),
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
        #: What each screen line shows: a host row, or the index of a source row.
        self._lines: list[HostRow | int] = []

    def set_rows(self, rows: list[SourceRow], hosts: list[HostRow] | None = None) -> None:
        """The rows to show; with ``hosts``, grouped under one heading per server."""
        self.rows = rows
        self.hosts = hosts
        if hosts is None:
            self._lines = list(range(len(rows)))
        else:
            self._lines = []
            for host in hosts:
                self._lines.append(host)
                self._lines.extend(i for i, row in enumerate(rows) if row.server == host.server)
        self.cursor = min(self.cursor, max(0, len(rows) - 1))
        self.refresh()

    def action_move(self, step: int) -> None:
        if self.rows:
            self.cursor = (self.cursor + step) % len(self.rows)

    def action_toggle_current(self) -> None:
        if self.rows:
            self.post_message(self.Toggled(self.rows[self.cursor].key))

    def on_click(self, event: Click) -> None:
        if not 0 <= event.y < len(self._lines):
            return
        line = self._lines[event.y]
        if isinstance(line, HostRow):
            self.post_message(self.HostToggled(line.server))
        elif line < len(self.rows):
            self.cursor = line
            self.post_message(self.Toggled(self.rows[line].key))

    def render(self) -> Text:
        width = max(10, self.size.width)
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        for number, line in enumerate(self._lines):
            if number:
                text.append("\n")
            if isinstance(line, HostRow):
                text.append_text(self._host_text(line, width))
            else:
                text.append_text(self._row_text(line, self.rows[line], width))
        if not self.rows and not self.hosts:
            text.append("no sources yet", Style(dim=True))
        return text

    def _host_text(self, host: HostRow, width: int) -> Text:
        line = Text(no_wrap=True, end="")
        room = max(1, width - len(host.state) - 1)
        line.append(sanitize(host.label)[:room].ljust(room), Style(bold=True, dim=not host.live))
        line.append(" " + host.state, Style(color="green" if host.live else "yellow"))
        return line

    def _row_text(self, index: int, row: SourceRow, width: int) -> Text:
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
        if self.has_focus and index == self.cursor:
            line.stylize(Style(reverse=True))
        elif index == self.cursor:
            line.stylize(Style(underline=True), 4)
        return line

    def watch_cursor(self) -> None:
        self.refresh()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
