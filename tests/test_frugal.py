"""The frugal output layer: what reaches the terminal is shorter, and the screen is the same.

Every check feeds Textual-style output to one terminal emulator (pyte) and the rewritten output
to another, and compares every cell's character and attributes.
"""

from __future__ import annotations

import random

import pyte
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import set_cell_size

from logtv.client.frugal import DEFAULT_STATE, SgrDiff, apply_sgr, sgr
from logtv.client.scroller import Scroller

W, H = 40, 12


def screen_of(*chunks: str, width: int = W, height: int = H) -> list[list[tuple]]:
    screen = pyte.Screen(width, height)
    stream = pyte.Stream(screen)
    for chunk in chunks:
        stream.feed(chunk)
    return [
        [
            (c.data, c.fg, c.bg, c.bold, c.italics, c.underscore, c.reverse, c.strikethrough)
            for c in (screen.buffer[y][x] for x in range(width))
        ]
        for y in range(height)
    ]


SGR_PARAMS = st.sampled_from(
    ["", "0", "1", "2", "3", "4", "7", "9", "22", "23", "24", "27", "31", "32", "39", "49",
     "1;31", "0;33", "38;5;80", "48;5;17", "38;2;1;2;3", "94", "104", "1;38;5;80;49", "39;49"]
)  # fmt: skip
TOKENS = st.one_of(
    SGR_PARAMS.map(lambda p: f"\x1b[{p}m"),
    st.text(alphabet="abc xyz:[]#", min_size=1, max_size=8),
    st.tuples(st.integers(1, H), st.integers(1, W - 10)).map(lambda rc: f"\x1b[{rc[0]};{rc[1]}H"),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(TOKENS, max_size=60))
def test_sgr_diff_keeps_every_cell(tokens: list[str]) -> None:
    """Rewriting SGR runs as differences never changes what any cell shows."""
    stream = "".join(tokens)
    rewritten = SgrDiff()(stream)
    assert screen_of(rewritten) == screen_of(stream)
    assert len(rewritten) <= len(stream) + 8


def test_sgr_diff_drops_textual_resets() -> None:
    """Textual's reset-then-restyle pairs shrink to the attributes that change."""
    textual = "\x1b[36;49mDec  4\x1b[0m\x1b[39;49m \x1b[0m\x1b[35;49mweb1\x1b[0m"
    assert SgrDiff()(textual) == "\x1b[36mDec  4\x1b[0m \x1b[35mweb1\x1b[0m"


def test_transitions() -> None:
    """Turning bold off and colour on is one short sequence; dim and bold share code 22."""
    bold_red = apply_sgr(DEFAULT_STATE, "1;31")
    dim = apply_sgr(DEFAULT_STATE, "2")
    assert bold_red is not None and dim is not None
    assert sgr(bold_red, DEFAULT_STATE) == "\x1b[0m"
    assert sgr(DEFAULT_STATE, bold_red) == "\x1b[1;31m"
    assert sgr(bold_red, dim) in ("\x1b[22;2;39m", "\x1b[0;2m")
    assert apply_sgr(DEFAULT_STATE, "58;5;1") is None  # not modelled: passed on untouched


def pane_row(text: str, colour: int) -> str:
    """One pane row as Textual writes it: styled runs, each followed by a reset."""
    tag, _, rest = text.partition(" ")
    padded = set_cell_size(rest, W - 16)  # exactly the pane's width, wide characters included
    return f"\x1b[1;{colour}m{tag:<5}\x1b[0m\x1b[39;49m {padded}\x1b[0m"


def sidebar_row(y: int, sources: list[str]) -> str:
    label = sources[y] if y < len(sources) else ""
    return f"\x1b[2m{label:<9}\x1b[0m\x1b[34m▎\x1b[0m"


def full_frame(lines: list[str], sources: list[str]) -> str:
    rows = []
    for y in range(H):
        text = lines[y] if y < len(lines) else ""
        body = pane_row(text, 31 + y % 6) if text else " " * (W - 10)
        rows.append(f"\x1b[{y + 1};1H{sidebar_row(y, sources)}{body}")
    return "\r\n".join(rows) + "\x1b[1;1H"


def pane_frame(lines: list[str]) -> str:
    """Textual's update after the pane scrolled: every pane row again, from column 11."""
    rows = []
    for y in range(H):
        text = lines[y] if y < len(lines) else ""
        body = pane_row(text, 31 + hash(text) % 6) if text else " " * (W - 10)
        rows.append(f"\x1b[{y + 1};11H{body}")
    return "\r\n".join(rows) + "\x1b[1;1H"


def test_scroller_scrolls_and_keeps_the_screen() -> None:
    """A pane that moved up by k rows goes out as a scroll plus the new rows, same screen."""
    rng = random.Random(5)
    sources = ["auth", "ufw", "kern"]
    lines = [f"auth line {i} " + "x" * rng.randrange(20) for i in range(H)]
    scroller = Scroller(W, H)
    original: list[str] = []
    rewritten: list[str] = []
    first = full_frame(lines, sources)
    original.append(first)
    rewritten.append(scroller(first))
    scrolled = 0
    for step in range(40):
        k = rng.choice([1, 1, 2, 3, 5])
        lines = lines[k:] + [f"ufw new {step}.{j} " + "y" * rng.randrange(25) for j in range(k)]
        frame = pane_frame(lines)
        out = scroller(frame)
        original.append(frame)
        rewritten.append(out)
        if "r\x1b[" in out:
            scrolled += 1
            assert len(out) < len(frame)
        assert screen_of(*rewritten) == screen_of(*original), f"step {step}"
    assert scrolled >= 30


def test_scroller_leaves_unsure_frames_alone() -> None:
    """A frame with a sequence the model does not follow goes out as it came (SGR aside)."""
    scroller = Scroller(W, H)
    frame = full_frame([f"auth {i}" for i in range(H)], ["a"])
    scroller(frame)
    odd = "\x1b[2J" + pane_frame([f"auth {i + 1}" for i in range(H)])
    assert scroller(odd) == SgrDiff()(odd) or "\x1b[2J" in scroller(odd)
    # After a clear the model is unknown: the next frame cannot be scrolled either.
    later = pane_frame([f"auth {i + 2}" for i in range(H)])
    assert "r\x1b[" not in scroller(later)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.booleans()), min_size=1, max_size=25))
def test_scroller_matches_plain_output_for_any_sequence(steps: list[tuple[int, bool]]) -> None:
    """Whatever mix of scrolls, sidebar changes and wide characters, the screens agree."""
    sources = ["auth", "ufw"]
    lines = [f"auth l{i} 日本" for i in range(H)]
    scroller = Scroller(W, H)
    original = [full_frame(lines, sources)]
    rewritten = [scroller(original[0])]
    for n, (k, sidebar_changes) in enumerate(steps):
        lines = lines[k:] + [f"kern n{n}.{j} ü" for j in range(k)]
        frame = pane_frame(lines)
        if sidebar_changes:
            sources = [*sources, f"s{n}"][-4:]
            frame += "".join(f"\x1b[{y + 1};1H{sidebar_row(y, sources)}" for y in range(4))
        original.append(frame)
        rewritten.append(scroller(frame))
    assert screen_of(*rewritten) == screen_of(*original)


def run_viewer_in_pty(url: str, log, frugal: bool) -> tuple[list[str], int]:  # type: ignore[no-untyped-def]
    """Real `logtv watch` in a 120x35 pty while lines arrive; its final screen and bytes."""
    import os
    import sys
    import time

    from logtv.bench.tty import _Pty, _wait, bench_line

    env = {**os.environ, "TERM": "xterm-256color", "LOGTV_FRUGAL": "1" if frugal else "0"}
    env["SSH_CONNECTION"] = "192.0.2.1 1 192.0.2.2 22"
    term = _Pty([sys.executable, "-m", "logtv", "watch", url, "--backlog", "0"], env)
    try:
        assert _wait(lambda: "live" in term.text(), 15), term.text()
        time.sleep(1.0)
        base = 1000 if frugal else 2000
        with open(log, "ab", buffering=0) as handle:
            for i in range(1, 13):
                handle.write(bench_line(base + i))
                time.sleep(0.15 if i % 3 else 0.02)
        time.sleep(3.5)  # every frame and the once-a-second counters have settled
        with term.lock:
            display = list(term.screen.display)
        return display, term.bytes
    finally:
        term.close()


def test_real_viewer_draws_the_same_screen_with_fewer_bytes(tmp_path, serve_process) -> None:  # type: ignore[no-untyped-def]
    """In a real pty, the frugal output shows the same final screen as Textual's own, for less."""
    import re

    screens = []
    for frugal in (False, True):
        log = tmp_path / f"auth-{frugal}.log"
        log.write_text("")
        server = serve_process("--name", "box", "--source", f"auth={log}")
        url = server.wait_listening().replace("ws://", "").replace("/logs/live", "")
        screens.append(run_viewer_in_pty(url, log, frugal=frugal))
    (plain, plain_bytes), (frugal_screen, frugal_bytes) = screens
    digits = re.compile(r"\d")  # the runs differ in their line numbers only
    assert [digits.sub("#", r) for r in frugal_screen] == [digits.sub("#", r) for r in plain]
    assert "Failed password" in "".join(frugal_screen)
    assert frugal_bytes < plain_bytes
