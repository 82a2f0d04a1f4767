"""Let the terminal scroll the log pane instead of repainting it.

When a new line arrives, Textual repaints every row of the log pane, because every row moved up.
Over SSH that is the whole pane per line. This keeps a model of the screen (each cell's text and
attributes, interpreted from what Textual writes), and when a frame is mostly the previous
screen moved up by ``k`` rows, it sends a scroll instead: set a scroll region, ``k`` line feeds
at its bottom, and then only the cells that still differ (the new rows, and the sidebar cells the
scroll moved). The terminal ends up with exactly the screen Textual drew; when the model is
unsure (a sequence it does not interpret, a resize) the frame goes out as Textual wrote it.
"""

from __future__ import annotations

import re

from rich.cells import get_character_cell_size

from logtv.client.frugal import DEFAULT_STATE, SgrDiff, State, apply_sgr, sgr

__all__ = ["Scroller"]

Cell = tuple[str, State | None]  # (text, attributes); None: unknown
_UNKNOWN: Cell = ("", None)
_BLANK: Cell = (" ", DEFAULT_STATE)

_TOKEN = re.compile(
    r"\x1b\[([0-9;?<>=$]*)([@-~])"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC
    r"|\x1b[^\[\]]"  # other escapes
    r"|([^\x1b\r\n]+)"  # text
    r"|(\r)|(\n)"
)
#: CSI finals that do not change cells: modes (h, l), queries (p, c, n), keyboard (u), cursor
#: style (q), and the ones interpreted here (H: move, m: attributes).
_HARMLESS_FINALS = set("hlpcnuqt")
#: A scroll must save at least this many rows to be worth trying.
MIN_ROWS = 2


class _Unsure(Exception):
    """A cell to draw is not known: send the frame as Textual wrote it."""


class Scroller:
    """Rewrites each frame Textual writes, scrolling where that is shorter."""

    def __init__(self, width: int, height: int) -> None:
        self.sgr = SgrDiff()
        self.resize(width, height)

    def resize(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.cells: list[list[Cell]] = [[_UNKNOWN] * width for _ in range(height)]
        self.cursor = (0, 0)

    def __call__(self, frame: str) -> str:
        start_state = self.sgr.state
        interpreted = self._interpret(frame, start_state)
        passthrough = self.sgr(frame)  # also moves self.sgr.state to the frame's end state
        if interpreted is None:
            return passthrough
        new_cells, moved_rows, end_cursor, end_state, pure = interpreted
        old_cells = self.cells
        self.cells, self.cursor = new_cells, end_cursor
        if not pure or start_state is None or end_state is None:
            return passthrough
        scroll = self._find_scroll(old_cells, new_cells, moved_rows)
        if scroll is None:
            return passthrough
        try:
            optimised = self._render_scrolled(old_cells, new_cells, scroll, start_state, end_state)
        except _Unsure:
            return passthrough
        if len(optimised) >= len(passthrough):
            return passthrough
        return optimised

    # -- interpreting Textual's output ----------------------------------------------------------

    def _interpret(
        self, frame: str, state: State | None
    ) -> tuple[list[list[Cell]], list[int], tuple[int, int], State | None, bool] | None:
        """The screen after ``frame``; None (and a forgotten model) if it cannot be followed.

        ``pure`` says the frame held nothing but moves, attributes and text, so that it can be
        re-rendered from cells without losing anything.
        """
        cells = [row[:] for row in self.cells]
        row, col = self.cursor
        touched: set[int] = set()
        pure = True
        for match in _TOKEN.finditer(frame):
            params, final, text, cr, lf = match.groups()
            if text is not None:
                if not 0 <= row < self.height:
                    self._forget()
                    return None
                line = cells[row]
                touched.add(row)
                for char in text:
                    size = get_character_cell_size(char)
                    if size == 0:
                        if col > 0:
                            previous, attrs = line[col - 1]
                            line[col - 1] = (previous + char, attrs)
                        continue
                    if col + size > self.width:
                        self._forget()  # would wrap: not what Textual does
                        return None
                    line[col] = (char, state)
                    if size == 2:
                        line[col + 1] = ("", state)
                    col += size
            elif final == "H":
                parts = (params or "").split(";")
                row = int(parts[0] or 1) - 1
                col = int(parts[1] or 1) - 1 if len(parts) > 1 else 0
            elif final == "m":
                state = apply_sgr(state, params or "")
            elif final is not None:
                if final not in _HARMLESS_FINALS:
                    self._forget()
                    return None
                if params and "?" in params and params.strip("?").split(";")[0] in ("1049", "47"):
                    self._forget()  # alternate screen: cells change under us
                    return None
                pure = False
            elif cr is not None:
                col = 0
            elif lf is not None:
                row += 1
                if row >= self.height:
                    self._forget()  # the terminal itself would scroll
                    return None
            else:
                pure = False  # OSC or another escape: pass the frame on as it is
        return cells, sorted(touched), (row, col), state, pure

    def _forget(self) -> None:
        """Nothing is known about the screen any more (the next full repaint rebuilds it)."""
        self.resize(self.width, self.height)

    # -- finding the scroll -----------------------------------------------------------------------

    def _find_scroll(
        self, old: list[list[Cell]], new: list[list[Cell]], moved_rows: list[int]
    ) -> tuple[int, int, int] | None:
        """(top, bottom, k): rows top..bottom scroll up by k; None if no scroll pays."""
        changed = [r for r in moved_rows if new[r] != old[r]]
        if len(changed) < MIN_ROWS + 1:
            return None
        first, last = changed[0], changed[-1]
        # Compare only the columns this frame rewrote (the pane, not the sidebar beside it).
        left = min(
            (next((c for c, cell in enumerate(new[r]) if cell != old[r][c]), self.width))
            for r in changed
        )
        best: tuple[int, int, int] | None = None
        best_run = MIN_ROWS - 1
        for k in range(1, last - first + 1):
            run_start, run = first, 0
            for r in range(first, last - k + 1):
                source = old[r + k]
                if source[left] is _UNKNOWN or new[r][left:] != source[left:]:
                    run_start, run = r + 1, 0
                    continue
                run += 1
                if run > best_run:
                    best_run, best = run, (run_start, r + k, k)
            if best_run >= last - first:  # cannot do better than the whole block
                break
        if best is None:
            return None
        top, bottom, k = best
        if any(cell is _UNKNOWN for r in range(top, bottom + 1) for cell in old[r]):
            return None
        return best

    # -- rendering --------------------------------------------------------------------------------

    def _render_scrolled(
        self,
        old: list[list[Cell]],
        new: list[list[Cell]],
        scroll: tuple[int, int, int],
        start_state: State,
        end_state: State,
    ) -> str:
        top, bottom, k = scroll
        after = [row[:] for row in old]
        after[top : bottom + 1] = [row[:] for row in old[top + k : bottom + 1]] + [
            [_BLANK] * self.width for _ in range(k)
        ]
        parts: list[str] = []
        state = start_state
        if state != DEFAULT_STATE:  # the new blank rows take the current background
            parts.append("\x1b[0m")
            state = DEFAULT_STATE
        parts.append(f"\x1b[{top + 1};{bottom + 1}r\x1b[{bottom + 1};1H" + "\n" * k + "\x1b[r")
        for r in range(self.height):
            target, current = new[r], after[r]
            if target == current:
                continue
            c0 = next(c for c in range(self.width) if target[c] != current[c])
            c1 = next(c for c in range(self.width - 1, -1, -1) if target[c] != current[c])
            while c0 > 0 and target[c0][0] == "":
                c0 -= 1  # start at the wide character, not its second half
            parts.append(f"\x1b[{r + 1};{c0 + 1}H")
            for c in range(c0, c1 + 1):
                text, attrs = target[c]
                if attrs is None:
                    raise _Unsure
                if not text:
                    continue
                if attrs != state:
                    parts.append(sgr(state, attrs))
                    state = attrs
                parts.append(text)
        if state != end_state:
            parts.append(sgr(state, end_state))
        row, col = self.cursor
        parts.append(f"\x1b[{row + 1};{col + 1}H")
        return "".join(parts)
