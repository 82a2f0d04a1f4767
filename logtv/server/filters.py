"""Server-side line filters for a subscription, compiled so that no pattern can stall the hub.

The broadcaster runs every filter on the event loop, for every chunk of lines, so a filter must
take time linear in the line's length whatever the pattern is. Python's ``re`` backtracks
(``(a+)+$`` against a long line of ``a`` never ends), so patterns are compiled with RE2
(google-re2): linear time, memory capped by ``max_mem``, and a clear refusal for what only a
backtracking engine can do (backreferences, lookaround).

A chunk's lines are joined with newlines and searched as one text, in multi-line mode with
``never_nl`` (so ``^`` and ``$`` are each line's start and end, and no match spans two lines):
the cost is one call into RE2 per matching line, not per line, which matters for the usual
filter that keeps few lines. That needs RE2's own match call (``re2._re2``): the wrapper's
``search`` builds a match object and maps offsets in Python, several times slower.

Linear is not yet cheap: when RE2's DFA gives up on a pattern such as ``(.*a.{25}){8}c`` it
falls back to an NFA whose cost per character grows with the compiled program. So the pattern's
length and its program size are bounded, a filter looks at no more than the first
:data:`MAX_FILTERED_CHARS` of a line, and :meth:`LineFilter.select` stops at a deadline, which
the hub uses to hold each filter to a time budget.

Severity follows syslog: 0 (emerg) is the most severe, 7 (debug) the least. ``min_severity``
keeps lines at least that severe; lines that carry no severity (file and command sources) pass.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import re2
from re2 import _re2

__all__ = [
    "MAX_FILTERED_CHARS",
    "MAX_FILTER_LENGTH",
    "MAX_FILTER_MEMORY",
    "MAX_PROGRAM_SIZE",
    "PIECE_CHARS",
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
#: Largest compiled RE2 program accepted (``\pL+`` is about 1,200; ``.{1000}`` 8,000): the
#: NFA's cost per character grows with it.
MAX_PROGRAM_SIZE = 2000
#: Lines are searched in pieces of about this many characters, with a deadline check after each.
PIECE_CHARS = 256 * 1024
#: A filter looks at this many characters of a line at most (the rest of a longer line is not
#: searched), so that one line's cost is bounded whatever ``--max-line`` is.
MAX_FILTERED_CHARS = 64 * 1024
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
    options.never_capture = True  # only "does it match" is wanted: no groups to track
    options.never_nl = True  # a match never crosses the newline between two joined lines
    return options


_UNANCHORED = _re2.RE2.Anchor.UNANCHORED


@dataclass(frozen=True, slots=True)
class LineFilter:
    """What one subscription lets through: lines matching ``pattern`` and severe enough.

    Equal filters (same pattern, same minimum) are one filter to the hub: it evaluates each
    distinct filter once per chunk, whatever the number of clients that share it.
    """

    pattern: str | None
    min_severity: int | None
    #: The compiled RE2 program (multi-line, so that ``^`` and ``$`` are each line's ends).
    program: Any = field(default=None, compare=False, repr=False)

    def select(
        self, lines: Sequence[str], severities: Sequence[int] | None, deadline: float = float("inf")
    ) -> list[int] | None:
        """The indices of the lines that pass, in order; None if ``deadline`` came first.

        ``deadline`` is a :func:`time.perf_counter` time, checked after each piece of at most
        :data:`PIECE_CHARS` characters.
        """
        floor = self.min_severity
        if floor is not None and severities is not None:
            # Lines without a severity pass: past the list's end (defensively), or marked as
            # having none with a value above debug's 7 (the hub's NO_SEVERITY, when lines with
            # and without one are held together).
            count = len(severities)
            candidates = [
                i
                for i in range(len(lines))
                if i >= count or severities[i] <= floor or severities[i] > 7
            ]
        else:
            candidates = list(range(len(lines)))
        if self.program is None or not candidates:
            return candidates
        picked: list[int] = []
        if (
            len(candidates) == len(lines)
            and sum(map(len, lines)) <= PIECE_CHARS
            and max(map(len, lines)) <= MAX_FILTERED_CHARS
        ):
            self._search(list(lines), candidates, picked)  # the common case: one piece
            return None if time.perf_counter() > deadline else picked
        clock = time.perf_counter
        texts: list[str] = []
        indices: list[int] = []
        size = 0
        for i in candidates:
            line = lines[i]
            if len(line) > MAX_FILTERED_CHARS:
                line = line[:MAX_FILTERED_CHARS]
            texts.append(line)
            indices.append(i)
            size += len(line) + 1
            if size >= PIECE_CHARS:
                self._search(texts, indices, picked)
                if clock() > deadline:
                    return None
                texts, indices, size = [], [], 0
        if texts:
            self._search(texts, indices, picked)
            if clock() > deadline:
                return None
        return picked

    def _search(self, texts: list[str], indices: list[int], picked: list[int]) -> None:
        """Append to ``picked`` the indices of the texts that match, in one pass over them all.

        The texts are joined with newlines and searched as one buffer: a call into RE2 per
        matching line (plus one), not per line, which is what makes a rare match cheap.
        """
        joined = "\n".join(texts)
        if joined.isascii():
            data = joined.encode("ascii")
            lengths: Iterable[int] = map(len, texts)
        else:
            encoded = [text.encode("utf-8", "replace") for text in texts]
            data = b"\n".join(encoded)
            lengths = map(len, encoded)
        starts = list(itertools.accumulate(lengths, lambda at, n: at + n + 1, initial=0))
        match = self.program.Match
        end = len(data)
        last = len(texts) - 1
        position = 0
        while True:
            found = match(_UNANCHORED, data, position, end)[0][0]
            if found < 0:
                return
            line = bisect.bisect_right(starts, found) - 1
            picked.append(indices[line])
            if line >= last:
                return
            position = starts[line + 1]


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
    program = None
    if pattern is not None:
        if len(pattern) > MAX_FILTER_LENGTH:
            raise FilterError("bad_filter", f"filter is longer than {MAX_FILTER_LENGTH} characters")
        _refuse_text_anchors(pattern)
        try:
            encoded = ("(?m)" + pattern).encode("utf-8")
        except UnicodeEncodeError:
            raise FilterError(
                "bad_filter", "filter: not valid Unicode (a lone surrogate)"
            ) from None
        program = _re2.RE2(encoded, _options())
        if not program.ok():
            raise FilterError("bad_filter", _describe(program.error()))
        size = program.ProgramSize()
        if size > MAX_PROGRAM_SIZE:
            raise FilterError(
                "bad_filter",
                f"filter: the pattern is too complex (RE2 program size {size}, at most "
                f"{MAX_PROGRAM_SIZE}; repeat less, or use fewer Unicode classes)",
            )
    if program is None and floor is None:
        return None
    return LineFilter(pattern, floor, program)


def _refuse_text_anchors(pattern: str) -> None:
    """Refuse what would see the joined lines as one text: ``\\A``, ``\\z``, ``\\C``, ``(?-m)``.

    ``^`` and ``$`` already mean the start and end of each line. A flag group is recognised
    outside character classes only roughly (a ``(?`` inside ``[...]`` is refused too).
    """
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            escaped = pattern[i + 1 : i + 2]
            if escaped in ("A", "z"):
                raise FilterError(
                    "bad_filter",
                    f"filter: \\{escaped} is not supported (^ and $ match at each line's "
                    "start and end)",
                )
            if escaped == "C":
                raise FilterError("bad_filter", "filter: \\C (any byte) is not supported")
            i += 2
            continue
        if pattern.startswith("(?", i):
            flags = pattern[i + 2 : i + 2 + 16].split(")")[0].split(":")[0]
            if "-" in flags and "m" in flags.split("-", 1)[1]:
                raise FilterError(
                    "bad_filter", "filter: turning off multi-line mode ((?-m)) is not supported"
                )
        i += 1


def _describe(said: object) -> str:
    text = said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)
    if "invalid escape sequence: \\" in text and text[-1:].isdigit():
        return f"filter: backreferences are not supported ({text})"
    if "invalid perl operator: (?" in text and any(op in text for op in ("(?=", "(?!", "(?<")):
        return f"filter: lookahead and lookbehind are not supported ({text})"
    if "too large" in text:
        return "filter: the pattern needs too much memory (make it simpler)"
    return f"filter: not a valid regular expression ({text})"
