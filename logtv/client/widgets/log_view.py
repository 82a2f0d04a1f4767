"""The log pane: a Line-API ScrollView over the bounded scrollback, styling only visible rows.

Why not RichLog or Log: RichLog renders every line on write and jumps to the bottom while the
user reads above (textual#6311); Log passes ESC through to the terminal. Here a line is turned
into a Strip only when it scrolls into view (sanitised, highlighted, cached by entry id), lines
are appended in batches by the app's frame budget, and there are no scrollbars to repaint.
"""

from __future__ import annotations

import bisect
import itertools
import re
import time
import zlib
from collections import OrderedDict

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from logtv.client.highlight import highlight
from logtv.client.scrollback import GAP, LINE, NOTICE, Entry, Scrollback
from logtv.sanitize import sanitize, to_text

__all__ = ["SOURCE_COLOURS", "LogView", "source_colour"]

#: Distinct colours for source tags; a source keeps its colour across runs and machines.
SOURCE_COLOURS = (
    "#5fafff",
    "#ff875f",
    "#87d75f",
    "#d7af5f",
    "#af87ff",
    "#5fd7d7",
    "#ff5f87",
    "#d7d75f",
    "#87afd7",
    "#ffaf87",
)
GAP_STYLE = Style(color="black", bgcolor="yellow", bold=True)
NOTICE_STYLE = Style(dim=True, italic=True)
MATCH_STYLE = Style(reverse=True)
CURRENT_MATCH_STYLE = Style(bgcolor="yellow", color="black")
TIME_STYLE = Style(dim=True)
CACHE_ROWS = 600


def source_colour(name: str) -> str:
    """A source's colour; in a ``host/source`` tag, the source's (the same on every host)."""
    name = name.rpartition("/")[2]
    return SOURCE_COLOURS[zlib.crc32(name.encode()) % len(SOURCE_COLOURS)]


class LogView(ScrollView, can_focus=True):
    """Shows the scrollback; follows the newest line unless the user scrolled up."""

    BINDINGS = [
        Binding("up", "scroll_up", "Up", show=False),
        Binding("down", "scroll_down", "Down", show=False),
        Binding("left", "scroll_left", "Left", show=False),
        Binding("right", "scroll_right", "Right", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "scroll_home", "Top", show=False),
        Binding("end", "follow", "Follow", show=False),
    ]

    DEFAULT_CSS = """
    LogView { scrollbar-size: 0 0; }
    """

    class FollowChanged(Message):
        """Following was switched on or off (by a key or by scrolling)."""

    following: reactive[bool] = reactive(True)
    show_times: reactive[bool] = reactive(False)
    wrap: reactive[bool] = reactive(False)

    def __init__(self, scrollback: Scrollback, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.scrollback = scrollback
        self.tag_width = 6
        #: Lines that arrived while paused (shown in the status line).
        self.unseen = 0
        self.current_match: int | None = None
        self._strips: OrderedDict[int, list[Strip]] = OrderedDict()
        self._row_starts: list[int] = []
        self._rows_for: tuple[int, int] = (-1, -1)
        self._max_width = 0
        self._scrolling = False

    @property
    def allow_vertical_scroll(self) -> bool:
        """Scrollable whenever there is more to see: there is no scrollbar to ask."""
        return not self._check_disabled() and self.max_scroll_y > 0

    @property
    def allow_horizontal_scroll(self) -> bool:
        return not self._check_disabled() and self.max_scroll_x > 0

    # -- what the app calls -------------------------------------------------------------------

    def set_tag_width(self, names: list[str], limit: int = 16) -> None:
        self.tag_width = min(limit, max((len(n) for n in names), default=4))
        self.invalidate()

    def appended(self, entries: list[Entry]) -> None:
        """The app added entries to the scrollback: grow, and follow or count them."""
        dropped = self.scrollback.dropped_shown
        self.scrollback.dropped_shown = 0
        longest = max((len(e.text) for e in entries), default=0)
        self._max_width = max(self._max_width, longest + self.tag_width + 16)
        self._update_virtual_size()
        if self.following:
            self._scroll_to_end()
        else:
            self.unseen += len(entries)
            if dropped:
                self._scroll_quietly(max(0, self.scroll_y - dropped))
            self.refresh()

    def invalidate(self) -> None:
        """Styles or contents changed: forget cached rows and redraw."""
        self._strips.clear()
        self._rows_for = (-1, -1)
        self._update_virtual_size()
        if self.following:
            self._scroll_to_end()
        self.refresh()

    def jump_to_match(self, forward: bool) -> bool:
        """Scroll to the next (or previous) shown line matching the filter; pause following."""
        pattern = self.scrollback.pattern
        count = self.scrollback.shown_count
        if pattern is None or count == 0:
            return False
        start = self.current_match
        if start is None:
            start = (
                self._first_visible_index()
                if forward
                else self._first_visible_index() + self.size.height
            )
        step = 1 if forward else -1
        for index in itertools.islice(itertools.count(start + step, step), count):
            if not 0 <= index < count:
                return False
            entry = self.scrollback.shown(index)
            if entry.kind == LINE and pattern.search(entry.text):
                self.following = False
                self.current_match = index
                self._strips.clear()
                self._scroll_quietly(max(0, self._row_of(index) - self.size.height // 2))
                self.refresh()
                return True
        return False

    # -- actions ----------------------------------------------------------------------------------

    def action_follow(self) -> None:
        self.following = True
        self._scroll_to_end()

    def watch_following(self, following: bool) -> None:
        self.post_message(self.FollowChanged())
        if following:
            self.unseen = 0
            self.current_match = None
            self._scroll_to_end()

    def watch_show_times(self) -> None:
        self.invalidate()

    def watch_wrap(self) -> None:
        self.scroll_x = 0
        self.invalidate()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if not self._scrolling and self.is_mounted:
            # The user scrolled: at the bottom we follow, anywhere else we pause.
            at_end = new_value >= self.max_scroll_y
            if at_end != self.following:
                self.following = at_end

    def on_resize(self) -> None:
        self.invalidate()

    # -- geometry ---------------------------------------------------------------------------------

    def _scroll_to_end(self) -> None:
        self._scroll_quietly(self.max_scroll_y)

    def _scroll_quietly(self, y: float) -> None:
        self._scrolling = True
        try:
            self.scroll_to(y=y, animate=False, immediate=True, force=True)
        finally:
            self._scrolling = False

    def _update_virtual_size(self) -> None:
        rows = self._total_rows()
        width = self.size.width if self.wrap else max(self._max_width, self.size.width)
        self.virtual_size = Size(width, rows)

    def _content_width(self) -> int:
        return max(10, self.size.width)

    def _total_rows(self) -> int:
        if not self.wrap:
            return self.scrollback.shown_count
        self._ensure_rows()
        return self._row_starts[-1] if self._row_starts else 0

    def _ensure_rows(self) -> None:
        """Wrap mode: the first row of every shown entry (rebuilt on new content or width)."""
        key = (self.scrollback.version, self._content_width())
        if self._rows_for == key:
            return
        width = self._content_width()
        prefix = self._prefix_width()
        starts = [0]
        total = 0
        for entry in self.scrollback.iter_shown():
            total += max(1, -(-(prefix + len(entry.text)) // width))
            starts.append(total)
        self._row_starts = starts
        self._rows_for = key

    def _row_of(self, index: int) -> int:
        if not self.wrap:
            return index
        self._ensure_rows()
        return self._row_starts[index]

    def _first_visible_index(self) -> int:
        y = round(self.scroll_y)
        if not self.wrap:
            return y
        self._ensure_rows()
        return max(0, bisect.bisect_right(self._row_starts, y) - 1)

    def _prefix_width(self) -> int:
        return self.tag_width + 1 + (13 if self.show_times else 0)

    # -- rendering --------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.size.width
        base = self.rich_style
        if self.wrap:
            self._ensure_rows()
            index = bisect.bisect_right(self._row_starts, row) - 1
            if not 0 <= index < self.scrollback.shown_count:
                return Strip.blank(width, base)
            strips = self._entry_strips(index)
            sub = row - self._row_starts[index]
            strip = strips[sub] if sub < len(strips) else Strip.blank(width, base)
            return strip.crop_extend(0, width, base).apply_style(base)
        if not 0 <= row < self.scrollback.shown_count:
            return Strip.blank(width, base)
        # The pane's own colours under the line's: unstyled cells must not fall back to the
        # terminal's default background.
        strip = self._entry_strips(row)[0].crop_extend(scroll_x, scroll_x + width, base)
        return strip.apply_style(base)

    def _entry_strips(self, index: int) -> list[Strip]:
        entry = self.scrollback.shown(index)
        key = entry.id * 2 + (index == self.current_match)
        strips = self._strips.get(key)
        if strips is not None:
            self._strips.move_to_end(key)
            return strips
        text = self._entry_text(entry, index == self.current_match)
        console = self.app.console
        if self.wrap:
            lines = text.wrap(console, self._content_width(), overflow="fold", no_wrap=False)
            strips = [Strip(list(line.render(console))) for line in lines] or [Strip([])]
        else:
            text.no_wrap = True
            strips = [Strip(list(text.render(console)))]
        self._strips[key] = strips
        if len(self._strips) > CACHE_ROWS:
            self._strips.popitem(last=False)
        return strips

    def _entry_text(self, entry: Entry, is_current: bool) -> Text:
        text = Text(end="")
        if self.show_times:
            text.append(time.strftime("%H:%M:%S", time.localtime(entry.received)), TIME_STYLE)
            text.append(f".{int(entry.received * 1000) % 1000:03d} ", TIME_STYLE)
        colour = source_colour(entry.source)
        text.append(
            sanitize(entry.source)[: self.tag_width].ljust(self.tag_width),
            Style(color=colour, bold=True),
        )
        text.append(" ")
        if entry.kind == GAP:
            text.append(entry.text, GAP_STYLE)
        elif entry.kind == NOTICE:
            text.append(entry.text, NOTICE_STYLE)
        else:
            body = to_text(entry.text)
            highlight(body)
            pattern = self.scrollback.pattern
            if pattern is not None:
                _mark_matches(body, pattern, CURRENT_MATCH_STYLE if is_current else MATCH_STYLE)
            text.append_text(body)
        return text


def _mark_matches(body: Text, pattern: re.Pattern[str], style: Style) -> None:
    for match in pattern.finditer(body.plain):
        if match.end() > match.start():
            body.stylize(style, match.start(), match.end())
