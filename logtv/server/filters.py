"""Server-side line filters for a subscription, compiled so that no pattern can stall the hub.

The broadcaster runs every filter on the event loop, for every chunk of lines, so a filter must
take time linear in the line's length whatever the pattern is. Python's ``re`` backtracks
(``(a+)+$`` against a long line of ``a`` never ends), so patterns are compiled with RE2
(google-re2): linear time, memory capped by ``max_mem``, and a clear refusal for what only a
backtracking engine can do (backreferences, lookaround). A pattern is also limited in length.

Severity follows syslog: 0 (emerg) is the most severe, 7 (debug) the least. ``min_severity``
keeps lines at least that severe; lines that carry no severity (file and command sources) pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import re2

__all__ = [
    "MAX_FILTER_LENGTH",
    "MAX_FILTER_MEMORY",
    "SEVERITY_NAMES",
    "FilterError",
    "LineFilter",
    "compile_filter",
    "parse_severity",
]

#: Longest pattern accepted, in characters.
MAX_FILTER_LENGTH = 1000
#: Memory RE2 may use for one compiled pattern (and its DFA cache), in bytes.
MAX_FILTER_MEMORY = 2 << 20
#: Syslog severity names and their numbers (``error`` is an alias of ``err``).
SEVERITY_NAMES: dict[str, int] = {
    "emerg": 0,
    "alert": 1,
    "crit": 2,
    "err": 3,
    "error": 3,
    "warning": 4,
    "notice": 5,
    "info": 6,
    "debug": 7,
}


class FilterError(ValueError):
    """A pattern or severity that cannot be used; ``code`` goes into the protocol's error reply."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def parse_severity(value: object) -> int:
    """A severity as its number: a syslog name (``warning``), or 0–7 as an integer or digit."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 7:
        return value
    if isinstance(value, str):
        name = value.strip().lower()
        if name in SEVERITY_NAMES:
            return SEVERITY_NAMES[name]
        if name in tuple("01234567"):
            return int(name)
    shown = repr(value)[:40]
    raise FilterError(
        "bad_severity",
        f"min_severity must be 0-7 or one of emerg, alert, crit, err, warning, notice, info, "
        f"debug, not {shown}",
    )


def _options() -> re2.Options:
    options = re2.Options()
    options.max_mem = MAX_FILTER_MEMORY
    options.log_errors = False  # a refused pattern is the client's mistake, not a server error
    return options


@dataclass(frozen=True, slots=True)
class LineFilter:
    """What one subscription lets through: lines matching ``pattern`` and severe enough.

    Equal filters (same pattern, same minimum) are one filter to the hub: it evaluates each
    distinct filter once per chunk, whatever the number of clients that share it.
    """

    pattern: str | None
    min_severity: int | None
    compiled: re2._Regexp | None = field(default=None, compare=False, repr=False)

    def select(self, lines: Sequence[str], severities: Sequence[int] | None) -> list[int]:
        """The indices of the lines that pass, in order."""
        search = None if self.compiled is None else self.compiled.search
        floor = self.min_severity
        if floor is None or severities is None:
            if search is None:
                return list(range(len(lines)))
            return [i for i, line in enumerate(lines) if search(line)]
        return [
            i
            for i, (line, severity) in enumerate(zip(lines, severities, strict=False))
            if severity <= floor and (search is None or search(line))
        ]


def compile_filter(pattern: object, min_severity: object = None) -> LineFilter | None:
    """Check and compile a subscription's filter; None when it asks for nothing to be filtered.

    Raises :class:`FilterError` (``bad_filter`` or ``bad_severity``) with one clear sentence.
    """
    if pattern is not None and not isinstance(pattern, str):
        raise FilterError("bad_filter", "filter must be a string (a regular expression)")
    floor = None if min_severity is None else parse_severity(min_severity)
    if floor == 7:
        floor = None  # debug is the least severe: every line passes
    if pattern == "":
        pattern = None
    compiled = None
    if pattern is not None:
        if len(pattern) > MAX_FILTER_LENGTH:
            raise FilterError("bad_filter", f"filter is longer than {MAX_FILTER_LENGTH} characters")
        try:
            compiled = re2.compile(pattern, _options())
        except re2.error as exc:
            raise FilterError("bad_filter", _describe(exc)) from None
    if compiled is None and floor is None:
        return None
    return LineFilter(pattern, floor, compiled)


def _describe(exc: Exception) -> str:
    said = exc.args[0] if exc.args else exc
    text = said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)
    if "invalid escape sequence: \\" in text and text[-1:].isdigit():
        return f"filter: backreferences are not supported ({text})"
    if "invalid perl operator: (?" in text and any(op in text for op in ("(?=", "(?!", "(?<")):
        return f"filter: lookahead and lookbehind are not supported ({text})"
    if "too large" in text:
        return "filter: the pattern needs too much memory (make it simpler)"
    return f"filter: not a valid regular expression ({text})"
