"""Fewer bytes to the terminal: SGR sequences rewritten as the difference from the last state.

Textual writes every styled run as ``ESC[0m`` followed by the run's full style (``ESC[39;49m``,
``ESC[1;38;5;80;49m``), so on a colourised log pane two thirds of the bytes sent over SSH are
SGR codes that change nothing or repeat what is already set. :class:`SgrDiff` keeps the
terminal's current attributes and replaces each run of SGR sequences by the shortest sequence
that reaches the same attributes (nothing, when they are already set). Everything else passes
through untouched, so at every character and every other control sequence the terminal is in
exactly the state the original stream would have put it in. :class:`FrugalDriver` applies it
to what Textual's Linux driver writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from textual.drivers.linux_driver import LinuxDriver

__all__ = ["DEFAULT_STATE", "FrugalDriver", "SgrDiff", "State", "apply_sgr", "sgr"]

_SGR_RUN = re.compile(r"(?:\x1b\[[0-9;]*m)+")
#: A line break right before an absolute cursor move does nothing but cost bytes.
_BREAK_BEFORE_MOVE = re.compile(r"\r\n(?=\x1b\[\d+;\d+H)")
_SGR = re.compile(r"\x1b\[([0-9;]*)m")

#: Attribute codes this module models: code that sets it -> (attribute, code that clears it).
_FLAGS = {1: "bold", 2: "dim", 3: "italic", 4: "underline", 5: "blink", 7: "reverse",
          8: "conceal", 9: "strike", 53: "overline"}  # fmt: skip
_CLEAR = {"italic": 23, "underline": 24, "blink": 25, "reverse": 27, "conceal": 28,
          "strike": 29, "overline": 55}  # fmt: skip


@dataclass(frozen=True, slots=True)
class State:
    """The SGR attributes a terminal applies to the next characters it prints."""

    flags: frozenset[str] = frozenset()
    fg: str = ""  # "" is the terminal's default colour; else the codes that set it, e.g. "38;5;80"
    bg: str = ""


DEFAULT_STATE = _DEFAULT = State()


def apply_sgr(state: State | None, params: str) -> State | None:
    """The state after one SGR; None when it holds codes we do not model."""
    codes = [int(p) if p else 0 for p in params.split(";")] if params else [0]
    i = 0
    while i < len(codes):
        code = codes[i]
        if code == 0:
            state = _DEFAULT
        elif state is None:
            pass  # unknown until the next reset
        elif code in _FLAGS:
            state = replace(state, flags=state.flags | {_FLAGS[code]})
        elif code == 22:
            state = replace(state, flags=state.flags - {"bold", "dim"})
        elif code in (23, 24, 25, 27, 28, 29, 55):
            cleared = next(name for name, off in _CLEAR.items() if off == code)
            state = replace(state, flags=state.flags - {cleared})
        elif 30 <= code <= 37 or 90 <= code <= 97:
            state = replace(state, fg=str(code))
        elif 40 <= code <= 47 or 100 <= code <= 107:
            state = replace(state, bg=str(code))
        elif code == 39:
            state = replace(state, fg="")
        elif code == 49:
            state = replace(state, bg="")
        elif code in (38, 48) and i + 1 < len(codes) and codes[i + 1] in (2, 5):
            width = 3 if codes[i + 1] == 2 else 1
            if i + 1 + width >= len(codes):
                return None
            value = ";".join(str(c) for c in codes[i : i + 2 + width])
            state = replace(state, fg=value) if code == 38 else replace(state, bg=value)
            i += 1 + width
        else:
            return None
        i += 1
    return state


def _transition(current: State, target: State) -> str:
    """The shortest SGR parameters that turn ``current`` into ``target``."""
    full = ["0"] + _set_codes(_DEFAULT, target)
    diff: list[str] = []
    lost = current.flags - target.flags
    flags = current.flags
    if lost & {"bold", "dim"}:
        diff.append("22")
        flags = flags - {"bold", "dim"}
    for name in sorted(lost - {"bold", "dim"}):
        diff.append(str(_CLEAR[name]))
        flags = flags - {name}
    diff += _set_codes(replace(current, flags=flags), target)
    best = diff if len(";".join(diff)) <= len(";".join(full)) else full
    return ";".join(best) if best != ["0"] else ""


def sgr(current: State, target: State) -> str:
    """The escape sequence that changes the attributes from ``current`` to ``target``."""
    if current == target:
        return ""
    params = _transition(current, target)
    return f"\x1b[{params}m" if params else "\x1b[0m"


def _set_codes(current: State, target: State) -> list[str]:
    codes = [str(code) for code, name in _FLAGS.items() if name in target.flags - current.flags]
    if target.fg != current.fg:
        codes.append(target.fg or "39")
    if target.bg != current.bg:
        codes.append(target.bg or "49")
    return codes


class SgrDiff:
    """Rewrites a terminal output stream, remembering the attributes between calls."""

    def __init__(self) -> None:
        self.state: State | None = _DEFAULT

    def __call__(self, data: str) -> str:
        if "\x1b[" not in data:
            return data
        return _BREAK_BEFORE_MOVE.sub("", _SGR_RUN.sub(self._rewrite, data))

    def _rewrite(self, match: re.Match[str]) -> str:
        run = match.group(0)
        current = self.state
        target = current
        for params in _SGR.findall(run):
            target = apply_sgr(target, params)
        self.state = target
        if current is None or target is None:
            return run  # something we do not model: pass it on exactly as it was
        return sgr(current, target)


class FrugalDriver(LinuxDriver):
    """Textual's Linux driver, scrolling where it can and writing minimal SGR sequences."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        from logtv.client.scroller import Scroller

        super().__init__(*args, **kwargs)
        width, height = self._get_terminal_size()
        self._scroller = Scroller(width, height)

    def write(self, data: str) -> None:
        size = self._get_terminal_size()
        if size != (self._scroller.width, self._scroller.height):
            self._scroller.resize(*size)
        super().write(self._scroller(data))
