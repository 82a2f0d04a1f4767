"""`logtv watch`: the Textual app that shows a server's sources and their lines.

The connection runs as an async worker on the app's own event loop, so events from the server are
handled by plain method calls (no thread hop). Lines are not drawn as they come: they wait in
``pending`` until the next frame of the frame budget (``--fps``), so a flood of lines costs one
repaint per frame, and an idle screen costs nothing at all.
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.style import Style
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Footer, Input, Static

from logtv.client.connection import (
    Connected,
    Disconnected,
    Event,
    Gap,
    Lines,
    LogClient,
    Notice,
    Reply,
    Restarted,
    Stats,
)
from logtv.client.frugal import FrugalDriver
from logtv.client.scrollback import GAP, LINE, NOTICE, Entry, Scrollback
from logtv.client.widgets.log_view import LogView
from logtv.client.widgets.sidebar import HostRow, SourceList, SourceRow
from logtv.sanitize import sanitize

__all__ = ["HELP_KEYS", "Rows", "WatchApp", "default_fps"]

#: Frames per second over SSH (every byte crosses the link) and on a local terminal.
SSH_FPS = 4.0
LOCAL_FPS = 30.0

HELP_KEYS: tuple[tuple[str, str], ...] = (
    ("↑ ↓ PgUp PgDn Home", "scroll the log (up pauses following)"),
    ("End, f", "follow the newest line again / pause"),
    ("Tab", "move between the source list and the log"),
    ("Space, Enter", "toggle the source (or host) under the cursor"),
    ("1 … 9", "toggle the nth source"),
    ("a", "toggle all sources"),
    ("← →", "collapse / expand the host under the cursor"),
    ("z", "collapse or expand all hosts"),
    ("/", "filter by a regular expression (Esc clears)"),
    ("n, N", "next / previous line matching the filter"),
    ("t", "show when each line was received"),
    ("w", "wrap long lines"),
    ("c", "clear the log pane"),
    ("s", "save the shown lines to a file"),
    ("?", "this help"),
    ("q", "quit"),
)


def default_fps() -> float:
    """A frugal frame rate inside SSH sessions, a smooth one on a local terminal."""
    return SSH_FPS if os.environ.get("SSH_CONNECTION") else LOCAL_FPS


@dataclass(eq=False)
class _Server:
    """One server of the view: its client, its label in tags, and how its connection is."""

    client: LogClient
    #: The tag prefix: the server's hello host name, or the address as given until it said hello.
    label: str
    host: str = ""
    live: bool = False
    state: str = ""

    @property
    def key(self) -> str:
        return self.client.url


class Rows(dict[tuple[str, str], SourceRow]):
    """The source rows keyed by (server URL, source); a bare source name finds it if unique."""

    def __missing__(self, key: object) -> SourceRow:
        if isinstance(key, str):
            found = [row for (_, name), row in self.items() if name == key]
            if len(found) == 1:
                return found[0]
        raise KeyError(key)

    def get(self, key: object, default: SourceRow | None = None) -> SourceRow | None:  # type: ignore[override]
        try:
            return self[key]  # type: ignore[index]
        except KeyError:
            return default


class HelpScreen(ModalScreen[None]):
    """The key bindings, one per row."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        text = Text("logtv watch: keys\n\n", style=Style(bold=True), end="")
        for keys, what in HELP_KEYS:
            text.append(f"  {keys:<20}", Style(bold=True))
            text.append(f"{what}\n")
        text.append("\nEsc or ? closes this help.", Style(dim=True))
        yield Static(text, id="help")


class WatchApp(App[int]):
    """A live view of one logtv server, or of several side by side (tags become host/source)."""

    CSS_PATH = "logtv.tcss"
    TITLE = "logtv"
    ENABLE_COMMAND_PALETTE = False

    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("slash", "filter", "Filter"),
        Binding("f", "toggle_follow", "Follow"),
        Binding("a", "toggle_all", "All"),
        Binding("z", "fold_hosts", "Fold hosts", show=False),
        Binding("n", "match(True)", "Next", show=False),
        Binding("N", "match(False)", "Prev", show=False),
        Binding("t", "times", "Times"),
        Binding("w", "wrap", "Wrap"),
        Binding("c", "clear", "Clear"),
        Binding("s", "save", "Save"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        *(Binding(str(n), f"toggle_nth({n - 1})", f"Toggle {n}", show=False) for n in range(1, 10)),
    ]

    def __init__(
        self,
        client: LogClient | Sequence[LogClient],
        *,
        max_lines: int = 50_000,
        fps: float | None = None,
        once: bool = False,
        save_dir: Path | None = None,
    ) -> None:
        # Over SSH: the terminal's own 16 colours and default background, so a cell costs a few
        # bytes of SGR instead of two truecolor triplets.
        frugal = bool(os.environ.get("SSH_CONNECTION"))
        super().__init__(ansi_color=frugal or None)
        if frugal:
            self.theme = "ansi-dark"
        clients = [client] if isinstance(client, LogClient) else list(client)
        #: The first server's client (the only one, usually).
        self.client = clients[0]
        self.servers = {c.url: _Server(c, c.target) for c in clients}
        self.many = len(self.servers) > 1
        self.once = once
        self.save_dir = save_dir or Path.cwd()
        self.frame_interval = 1.0 / (fps or default_fps())
        self.scrollback = Scrollback(max_lines)
        self.rows = Rows()
        self.host = ""
        self.connection_state = (
            f"0/{len(self.servers)} live" if self.many else f"connecting to {self.client.url}"
        )
        self.lines_received = 0
        self.lines_lost = 0
        self.message = ""
        self.pending: list[Entry] = []
        self._flush_scheduled = False
        self._last_flush = 0.0
        self._sidebar_timer: Timer | None = None
        self._status_timer: Timer | None = None
        self._last_status = 0.0

    def get_driver_class(self) -> type[Driver]:
        """On a real Linux terminal, the driver that scrolls and sends only SGR differences.

        ``LOGTV_FRUGAL=0`` turns it off, for a terminal that mishandles scroll regions.
        """
        driver = super().get_driver_class()
        if driver is LinuxDriver and os.environ.get("LOGTV_FRUGAL", "1") != "0":
            return FrugalDriver
        return driver

    # -- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # Kept as attributes, not queried: a query looks in the active screen, and lines keep
        # arriving while the help screen is on top.
        self.header_line = Static(id="header")
        self.source_list = SourceList(id="sources")
        self.log_view = LogView(self.scrollback, id="log")
        self.filter_box = Input(placeholder="a regular expression (Esc clears)", id="filter")
        self.status_line = Static(id="status")
        yield self.header_line
        with Horizontal(id="main"):
            yield self.source_list
            yield self.log_view
        yield self.filter_box
        yield self.status_line
        yield Footer()

    def on_resize(self) -> None:
        """A narrower sidebar on a narrow terminal (80 columns is common over SSH)."""
        self.source_list.styles.width = 20 if self.size.width < 100 else 28

    def on_mount(self) -> None:
        self.filter_box.cursor_blink = False
        self.log_view.focus()
        self._render_header()
        self._render_status()
        if self.many:
            self._set_sidebar_rows()  # the host rows, before any server said hello
        # Textual's, Rich's and our own long-lived objects go where the collector no longer
        # walks them: under a flood the oldest generation is collected every second or so,
        # and walking them all made a pause of 60-150 ms that a key press could fall into.
        gc.collect()
        gc.freeze()
        self._stream()

    def on_unmount(self) -> None:
        gc.unfreeze()  # what was frozen may be garbage once the app is gone (many apps in tests)

    # -- the connection -------------------------------------------------------------------------

    def _stream(self) -> None:
        """One worker per server: each connects, reconnects and streams on its own."""
        for server in self.servers.values():
            self.run_worker(self._stream_from(server), group="connection")

    async def _stream_from(self, server: _Server) -> None:
        # Under a flood every recv() finds a frame waiting and returns without suspending, so
        # this loop would starve the key handling; give the loop a turn every few milliseconds.
        turn = time.monotonic()
        async for event in server.client.events():
            self.handle_event(event, server)
            now = time.monotonic()
            if now - turn > 0.004:
                await asyncio.sleep(0.001)
                turn = time.monotonic()

    def _tag(self, server: _Server, source: str) -> str:
        """What the pane shows before a line: the source, or host/source with several servers."""
        return f"{server.label}/{source}" if self.many else source

    def handle_event(self, event: Event, server: _Server | None = None) -> None:
        """Apply one event of a server (the first by default) to the app's state."""
        server = server or next(iter(self.servers.values()))
        key = server.key
        if isinstance(event, Lines):
            tag = self._tag(server, event.source)
            received = time.time()
            self.pending.extend(
                Entry(LINE, tag, line, received, seq) for seq, line in event.numbered()
            )
            self.lines_received += len(event.lines)
            row = self.rows.get((key, event.source))
            if row is not None:
                row.seq = max(row.seq, event.last_seq)
            self._schedule_flush()
        elif isinstance(event, Stats):
            for name, (seq, rate) in event.sources.items():
                row = self.rows.get((key, name))
                if row is not None:
                    row.seq, row.rate = max(row.seq, seq), rate
            self._schedule_sidebar()
        elif isinstance(event, Gap):
            tag = self._tag(server, event.source)
            count = event.to_seq - event.from_seq + 1
            self.lines_lost += count
            reason = event.reason.replace("_", " ")
            text = f"… {count:,} lines of {tag} not received ({reason}) …"
            self.pending.append(Entry(GAP, tag, text, time.time()))
            self._schedule_flush()
        elif isinstance(event, Notice):
            tag = self._tag(server, event.source)
            row = self.rows.get((key, event.source))
            if row is None and event.event == "appeared":  # a new source (a syslog sender)
                row = self._add_row(server, event.source)
            if row is not None:
                row.state = event.state
                self._schedule_sidebar(now=True)
            text = f"— {tag}: {event.event} ({event.state}) —"
            self.pending.append(Entry(NOTICE, tag, text, time.time()))
            self._schedule_flush()
        elif isinstance(event, Reply):
            self._on_reply(event, server)
        elif isinstance(event, Connected):
            self._on_connected(event, server)
        elif isinstance(event, Disconnected):
            self._on_disconnected(event, server)
        elif isinstance(event, Restarted):
            text = "… the server restarted: lines written while it was down may be missing …"
            tag = server.label if self.many else "logtv"
            self.pending.append(Entry(GAP, tag, text, time.time()))
            self._schedule_flush()

    def _on_connected(self, event: Connected, server: _Server) -> None:
        server.host, server.live, server.state = event.host, True, "live"
        if self.many:
            # Two servers calling themselves the same: tell them apart by their addresses.
            taken = {s.label for s in self.servers.values() if s is not server}
            hello_name = event.host if event.host not in taken else server.client.target
            server.label = server.client.name or hello_name  # a hosts-file name stays
        else:
            self.host = event.host
        wanted = server.client.subscriptions
        rows = Rows()
        for other in self.servers.values():
            if other is not server:
                rows.update({k: r for k, r in self.rows.items() if k[0] == other.key})
                continue
            for info in event.sources:
                key = (server.key, info.name)
                row = self.rows.get(key) or SourceRow(info.name, server=server.key)
                row.state, row.seq = info.state, max(row.seq, info.seq)
                row.wanted = wanted is None or info.name in wanted
                row.acked = False
                row.down = False
                rows[key] = row
        self.rows = rows
        self._set_tag_width()
        self._update_connection_state()
        self._set_sidebar_rows()
        self._render_header()

    def _add_row(self, server: _Server, name: str) -> SourceRow:
        """A row for a source the server announced after its hello, wanted if we take all."""
        row = SourceRow(name, server=server.key, wanted=server.client.follow_new)
        self.rows[row.key] = row
        self._set_tag_width()
        self._set_sidebar_rows()
        return row

    def _set_tag_width(self) -> None:
        if self.many:
            tags = [f"{self.servers[s].label}/{n}" for s, n in self.rows]
            self.log_view.set_tag_width(tags, limit=28)
        else:
            self.log_view.set_tag_width([n for _, n in self.rows])

    def _on_disconnected(self, event: Disconnected, server: _Server) -> None:
        if self.once and not event.ever_connected:
            self.exit(
                return_code=1,
                message=f"logtv: cannot connect to {server.client.url}: {event.error}",
            )
            return
        for key, row in self.rows.items():
            if key[0] == server.key:
                row.acked = False
                row.down = self.many
        retry = f" in {event.retry_in:g}s" if event.retry_in is not None else ""
        server.live, server.state = False, f"reconnecting{retry}: {event.error}"
        if self.many:
            self.message = f"{sanitize(server.label)}: {sanitize(server.state)}"
            self._render_status()
        self._update_connection_state()
        self._render_header()
        self._schedule_sidebar(now=True)

    def _on_reply(self, event: Reply, server: _Server) -> None:
        if event.kind == "error":
            said = f"{server.label}: " if self.many else ""
            self.message = f"{said}server: {event.detail or event.error}"
            self._render_status()
            return
        row = self.rows.get((server.key, event.source or ""))
        if row is not None:
            row.acked = event.kind == "subscribed"
            self._schedule_sidebar(now=True)

    def _update_connection_state(self) -> None:
        if not self.many:
            self.connection_state = self.client_server.state
            return
        live = sum(s.live for s in self.servers.values())
        self.connection_state = f"{live}/{len(self.servers)} live"

    @property
    def client_server(self) -> _Server:
        return next(iter(self.servers.values()))

    def _set_sidebar_rows(self) -> None:
        hosts = None
        if self.many:
            hosts = [
                HostRow(
                    s.key,
                    s.label,
                    s.live,
                    "live" if s.live else "down" if s.state else "connecting",
                )
                for s in self.servers.values()
            ]
        self.source_list.set_rows(list(self.rows.values()), hosts)

    # -- the frame budget ---------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if self._flush_scheduled:
            return
        self._flush_scheduled = True
        delay = self._last_flush + self.frame_interval - time.monotonic()
        if delay > 0.001:
            self.set_timer(delay, self._flush_pending)
        else:
            self.call_later(self._flush_pending)  # quiet until now: show it on the next frame

    def _flush_pending(self) -> None:
        self._flush_scheduled = False
        self._last_flush = time.monotonic()
        if not self.pending:
            return
        entries, self.pending = self.pending, []
        self.scrollback.extend(entries)
        self.log_view.appended(entries)
        self._render_status(throttle=True)

    def _schedule_sidebar(self, now: bool = False) -> None:
        """Counters repaint at most once a second; state changes at once."""
        if now:
            if self._sidebar_timer is not None:
                self._sidebar_timer.stop()
                self._sidebar_timer = None
            self._set_sidebar_rows()
        elif self._sidebar_timer is None:
            self._sidebar_timer = self.set_timer(1.0, self._refresh_sidebar)

    def _refresh_sidebar(self) -> None:
        self._sidebar_timer = None
        self._set_sidebar_rows()

    # -- header and status --------------------------------------------------------------------

    def _render_header(self) -> None:
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        text.append("logtv", Style(bold=True))
        if self.many:
            servers = list(self.servers.values())
            every = all(s.live for s in servers)
            text.append("  ● " if every else "  ○ ", Style(color="green" if every else "yellow"))
            text.append(self.connection_state, Style(dim=not every))
            for server in servers:
                # Short: why a server is down goes to the status line.
                text.append(f"  {sanitize(server.label)}", Style(bold=True, color="cyan"))
                if not server.live:
                    text.append(" down" if server.state else " connecting", Style(color="yellow"))
            self.header_line.update(text)
            return
        if self.host:
            text.append(f"  {sanitize(self.host)}", Style(bold=True, color="cyan"))
        live = self.connection_state == "live"
        text.append("  ● " if live else "  ○ ", Style(color="green" if live else "yellow"))
        text.append(sanitize(self.connection_state), Style(dim=not live))
        self.header_line.update(text)

    def _render_status(self, throttle: bool = False) -> None:
        """The status line; while lines flow it is repainted at most once a second."""
        now = time.monotonic()
        if throttle and now - self._last_status < 1.0:
            if self._status_timer is None:
                self._status_timer = self.set_timer(
                    1.0 - (now - self._last_status), self._render_status
                )
            return
        if self._status_timer is not None:
            self._status_timer.stop()
            self._status_timer = None
        self._last_status = now
        view = self.log_view
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        text.append(f"{self.scrollback.shown_count:,} lines")
        if self.scrollback.pattern is not None:
            text.append(f" of {len(self.scrollback):,}")
        text.append(" · ")
        text.append(
            f"{self.lines_lost:,} lost",
            Style(color="yellow") if self.lines_lost else Style(dim=True),
        )
        text.append(" · ")
        if view.following:
            text.append("following", Style(color="green"))
        else:
            text.append(f"paused, {view.unseen:,} new", Style(color="yellow", bold=True))
        if self.scrollback.pattern is not None:
            text.append(
                f" · filter /{sanitize(self.scrollback.pattern.pattern)}/", Style(color="cyan")
            )
        if self.message:
            text.append(f" · {self.message}", Style(color="magenta"))
        self.status_line.update(text)

    # -- actions ------------------------------------------------------------------------------

    def on_source_list_toggled(self, message: SourceList.Toggled) -> None:
        self._toggle(message.key)

    def on_source_list_host_toggled(self, message: SourceList.HostToggled) -> None:
        """A click on a host row: all its sources on, or all off when all were on."""
        keys = [key for key in self.rows if key[0] == message.server]
        want = not all(self.rows[key].wanted for key in keys)
        for key in keys:
            if self.rows[key].wanted != want:
                self._toggle(key, want)

    def _toggle(self, key: tuple[str, str] | str, want: bool | None = None) -> None:
        """Subscribe or unsubscribe one source row (a bare name: the only row of that source)."""
        row = self.rows.get(key)
        if row is None:
            return
        row.wanted = (not row.wanted) if want is None else want
        self._schedule_sidebar(now=True)
        server = self.servers.get(row.server) or self.client_server
        if row.wanted:
            self.run_worker(server.client.subscribe(row.name), group="control")
        else:
            self.run_worker(server.client.unsubscribe(row.name), group="control")

    def action_toggle_nth(self, index: int) -> None:
        rows = list(self.rows)
        if 0 <= index < len(rows):
            self._toggle(rows[index])

    def action_toggle_all(self) -> None:
        want = not all(row.wanted for row in self.rows.values())
        for name in self.rows:
            if self.rows[name].wanted != want:
                self._toggle(name, want)

    def action_fold_hosts(self) -> None:
        """With several servers: collapse every host row, or expand them all."""
        self.source_list.fold_all()

    def action_toggle_follow(self) -> None:
        view = self.log_view
        view.following = not view.following
        self._render_status()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_times(self) -> None:
        self.log_view.show_times = not self.log_view.show_times

    def action_wrap(self) -> None:
        self.log_view.wrap = not self.log_view.wrap

    def action_clear(self) -> None:
        self.scrollback.clear()
        self.log_view.invalidate()
        self.message = "cleared"
        self._render_status()

    def action_match(self, forward: bool) -> None:
        if not self.log_view.jump_to_match(forward):
            self.message = "no more matches" if self.scrollback.pattern else "no filter: press /"
        else:
            self.message = ""
        self._render_status()

    def action_filter(self) -> None:
        box = self.filter_box
        box.add_class("visible")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.filter_box
        box.value = ""
        box.remove_class("visible")
        self._apply_filter(None)
        self.log_view.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        value = event.value
        if not value:
            self._apply_filter(None)
            return
        try:
            # Smart case, as in less and vim: lower-case patterns ignore case.
            flags = re.IGNORECASE if value == value.lower() else 0
            pattern = re.compile(value, flags)
        except re.error as exc:
            self.message = f"bad regex: {exc}"
            self._render_status()
            return
        self._apply_filter(pattern)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.input.remove_class("visible")
        self.log_view.focus()

    def on_key(self, event: object) -> None:
        key = getattr(event, "key", "")
        box = self.filter_box
        if key == "escape" and box.has_focus:
            self.action_clear_filter()

    def _apply_filter(self, pattern: re.Pattern[str] | None) -> None:
        self.scrollback.set_filter(pattern)
        self.log_view.current_match = None
        self.log_view.invalidate()
        self.message = ""
        self._render_status()

    def action_save(self) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        host = re.sub(r"[^A-Za-z0-9_.-]", "_", self.host)  # empty with several servers
        path = self.save_dir / ("-".join(filter(None, ["logtv", host, stamp])) + ".log")
        count = 0
        with open(path, "w", encoding="utf-8", errors="replace") as handle:
            for entry in self.scrollback.iter_shown():
                if entry.kind == LINE:
                    handle.write(f"{entry.source} | {entry.text}\n")
                    count += 1
        self.message = f"saved {count:,} lines to {path}"
        self._render_status()

    def on_log_view_follow_changed(self) -> None:
        self._render_status()
