"""Make a log line safe to show in a terminal.

Log lines are hostile input: an attacker controls SSH user names, URLs, HTTP headers... and a raw
ESC, CR, BS, C1 control or bidi override written to a terminal can clear the screen, hide or fake
text, set the window title, write the clipboard (OSC 52) or plant links (OSC 8). Every client
shows lines only through this module, which renders each such character as a *visible* escape:

* C0 controls except TAB, and DEL, in caret notation: ESC -> ``^[``, CR -> ``^M``, DEL -> ``^?``;
* C1 controls U+0080-U+009F as ``\\x9b``;
* bidi controls, U+2028/U+2029 and lone surrogates (which cannot be encoded for output at all)
  as ``\\u202e``.

Everything else, including Rich-markup-looking text such as ``[bold red]``, is data and is kept.
The module is pure (no I/O) and fast on the common case: one precompiled regex search per line.
"""

from __future__ import annotations

import re
from functools import lru_cache

from rich.color import Color
from rich.style import Style
from rich.text import Span, Text

__all__ = ["ESCAPE_STYLE", "sanitize", "segments", "to_text"]

#: Style of the visible escapes in :func:`to_text`, so they read as "not really in the line".
ESCAPE_STYLE = Style(dim=True)

# Every character that must never reach the terminal raw (TAB, U+0009, is kept as data).
_UNSAFE_CLASS = (
    r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)
_UNSAFE = re.compile(_UNSAFE_CLASS)
_UNSAFE_RUN = re.compile(_UNSAFE_CLASS + "+")


def _escape_for(code: int) -> str:
    """The visible form of one unsafe code point."""
    if code < 0x20 or code == 0x7F:
        return "^" + chr(code ^ 0x40)
    if code <= 0x9F:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


_ESCAPES: dict[int, str] = {
    code: _escape_for(code)
    for lo, hi in (
        (0x00, 0x08),
        (0x0A, 0x1F),
        (0x7F, 0x9F),
        (0x061C, 0x061C),
        (0x200E, 0x200F),
        (0x2028, 0x202E),
        (0x2066, 0x2069),
        (0xD800, 0xDFFF),
    )
    for code in range(lo, hi + 1)
}


def sanitize(line: str) -> str:
    """Return ``line`` with every unsafe character replaced by its visible escape (plain text)."""
    if _UNSAFE.search(line) is None:
        return line
    return line.translate(_ESCAPES)


def segments(line: str) -> list[tuple[str, bool]]:
    """Split the sanitized line into ``(text, is_escape)`` runs so a UI can style the escapes.

    ``"".join(t for t, _ in segments(line)) == sanitize(line)``.
    """
    if _UNSAFE.search(line) is None:
        return [(line, False)] if line else []
    out: list[tuple[str, bool]] = []
    pos = 0
    for m in _UNSAFE_RUN.finditer(line):
        start, end = m.span()
        if start > pos:
            out.append((line[pos:start], False))
        out.append((m.group().translate(_ESCAPES), True))
        pos = end
    if pos < len(line):
        out.append((line[pos:], False))
    return out


def _emit(chunk: str, parts: list[str], spans: list[Span], offset: int) -> int:
    """Append sanitized ``chunk`` to ``parts`` (escape runs get ESCAPE_STYLE spans); new offset."""
    pos = 0
    for m in _UNSAFE_RUN.finditer(chunk):
        start, end = m.span()
        if start > pos:
            parts.append(chunk[pos:start])
            offset += start - pos
        escaped = m.group().translate(_ESCAPES)
        parts.append(escaped)
        spans.append(Span(offset, offset + len(escaped), ESCAPE_STYLE))
        offset += len(escaped)
        pos = end
    if pos < len(chunk):
        parts.append(chunk[pos:])
        offset += len(chunk) - pos
    return offset


# --- opt-in SGR colours -------------------------------------------------------------------------

# Only ``ESC [ digits-and-semicolons m``; colon forms, private modes etc. never match and so
# stay visible as escapes.
_SGR = re.compile(r"\x1b\[([0-9;]*)m")

_STANDARD_NAMES = (
    "black",
    "red",
    "green",
    "yellow",
    "blue",
    "magenta",
    "cyan",
    "white",
    "bright_black",
    "bright_red",
    "bright_green",
    "bright_yellow",
    "bright_blue",
    "bright_magenta",
    "bright_cyan",
    "bright_white",
)
_STANDARD = tuple(Color.parse(name) for name in _STANDARD_NAMES)

# (foreground, background, bold, dim, italic, underline); ``None`` means "not set".
_SGRState = tuple[Color | None, Color | None, bool | None, bool | None, bool | None, bool | None]
_RESET: _SGRState = (None, None, None, None, None, None)


def _color_256(n: int) -> Color:
    """Colour ``n`` of the 256-colour palette (standard names for 0-15)."""
    return _STANDARD[n] if n < 16 else Color.from_ansi(n)


def _apply_sgr(state: _SGRState, params: str) -> _SGRState | None:
    """The state after SGR ``params``, or ``None`` if any parameter is not on the allow-list.

    An SGR that is not honoured as a whole stays in the line and is shown escaped.
    """
    if not params:
        return _RESET
    codes: list[int] = []
    for raw in params.split(";"):
        if len(raw) > 3:  # no allowed value has more digits; also keeps int() cheap
            return None
        codes.append(int(raw) if raw else 0)
    fg, bg, bold, dim, italic, underline = state
    i, n = 0, len(codes)
    while i < n:
        code = codes[i]
        if code == 0:
            fg, bg, bold, dim, italic, underline = _RESET
        elif code == 1:
            bold = True
        elif code == 2:
            dim = True
        elif code == 3:
            italic = True
        elif code == 4:
            underline = True
        elif code == 22:
            bold = dim = None
        elif code == 23:
            italic = None
        elif code == 24:
            underline = None
        elif 30 <= code <= 37:
            fg = _STANDARD[code - 30]
        elif 90 <= code <= 97:
            fg = _STANDARD[code - 90 + 8]
        elif code == 39:
            fg = None
        elif 40 <= code <= 47:
            bg = _STANDARD[code - 40]
        elif 100 <= code <= 107:
            bg = _STANDARD[code - 100 + 8]
        elif code == 49:
            bg = None
        elif code in (38, 48):
            if i + 2 < n and codes[i + 1] == 5 and codes[i + 2] <= 255:
                color = _color_256(codes[i + 2])
                i += 2
            elif i + 4 < n and codes[i + 1] == 2 and max(codes[i + 2 : i + 5]) <= 255:
                color = Color.from_rgb(*codes[i + 2 : i + 5])
                i += 4
            else:
                return None
            if code == 38:
                fg = color
            else:
                bg = color
        else:
            return None
        i += 1
    return (fg, bg, bold, dim, italic, underline)


@lru_cache(maxsize=256)
def _style_for(state: _SGRState) -> Style | None:
    """The Rich style of an SGR state (cached: logs reuse a handful of states)."""
    if state == _RESET:
        return None
    fg, bg, bold, dim, italic, underline = state
    return Style(color=fg, bgcolor=bg, bold=bold, dim=dim, italic=italic, underline=underline)


def _ansi_to_text(line: str) -> Text:
    """to_text() with allow-listed SGR sequences applied as styles instead of shown."""
    parts: list[str] = []
    spans: list[Span] = []
    offset = 0
    state = _RESET
    pos = 0

    def flush(chunk: str) -> None:
        nonlocal offset
        style = _style_for(state)
        first = len(spans)
        start = offset
        offset = _emit(chunk, parts, spans, offset)
        if style is not None and offset > start:
            # Before the escape spans of this chunk, so those stay dim on top of the colour.
            spans.insert(first, Span(start, offset, style))

    for m in _SGR.finditer(line):
        new_state = _apply_sgr(state, m.group(1))
        if new_state is None:
            continue  # not allowed: left in the data, shown as ^[[...m
        flush(line[pos : m.start()])
        state = new_state
        pos = m.end()
    flush(line[pos:])
    return Text("".join(parts), spans=spans)


def to_text(line: str, *, ansi_colors: bool = False) -> Text:
    """The sanitized line as a Rich Text, escapes styled ESCAPE_STYLE; never parses markup.

    With ``ansi_colors=True``, SGR sequences that only set colours, bold, dim, italic or underline
    (or reset them) are applied as styles and not shown; every other escape stays visible.
    """
    if _UNSAFE.search(line) is None:
        return Text(line)
    if ansi_colors and "\x1b[" in line:
        return _ansi_to_text(line)
    parts: list[str] = []
    spans: list[Span] = []
    _emit(line, parts, spans, 0)
    return Text("".join(parts), spans=spans)
