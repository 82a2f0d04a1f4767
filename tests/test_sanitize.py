"""Tests for logtv.sanitize: hostile log lines never reach the terminal raw."""

from __future__ import annotations

import io
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.color import Color
from rich.console import Console
from rich.style import Style
from rich.text import Text

from logtv.sanitize import ESCAPE_STYLE, sanitize, segments, to_text

# Everything that must never be in a sanitized line (TAB is allowed).
FORBIDDEN = re.compile(
    r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)
RICH_SGR = re.compile(r"\x1b\[[0-9;]*m")

CVE_2021_25743 = "\x1b[2J\x1b[3J\x1b[1;1H"

# (id, hostile line, exact sanitize() output)
HOSTILE: list[tuple[str, str, str]] = [
    ("kubectl-cve-2021-25743", CVE_2021_25743, "^[[2J^[[3J^[[1;1H"),
    ("carriage-return", "real\rfake", "real^Mfake"),
    ("backspace-overwrite", "abc\b\b\bxyz", "abc^H^H^Hxyz"),
    ("bel", "ding\x07dong", "ding^Gdong"),
    ("osc-title", "\x1b]0;pwned\x07after", "^[]0;pwned^Gafter"),
    ("osc-52-clipboard", "\x1b]52;c;ZXZpbA==\x07", "^[]52;c;ZXZpbA==^G"),
    (
        "osc-8-hyperlink",
        "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\",
        "^[]8;;http://evil.example/^[\\click^[]8;;^[\\",
    ),
    ("dcs-query", "\x1bP+q544e\x1b\\", "^[P+q544e^[\\"),
    ("sgr-conceal", "\x1b[8msecret", "^[[8msecret"),
    ("c1-csi", "\x9b2J", "\\x9b2J"),
    ("c1-nel", "one\x85two", "one\\x85two"),
    ("bidi-rlo", "user\u202eexe.txt", "user\\u202eexe.txt"),
    (
        "bidi-isolates",
        "\u2066a\u2067b\u2068c\u2069\u200e\u200f\u061c",
        "\\u2066a\\u2067b\\u2068c\\u2069\\u200e\\u200f\\u061c",
    ),
    ("line-separator", "a\u2028b\u2029c", "a\\u2028b\\u2029c"),
    ("vertical-tab", "a\x0bb", "a^Kb"),
    ("form-feed", "a\x0cb", "a^Lb"),
    ("delete", "a\x7fb", "a^?b"),
    ("nul", "a\x00b", "a^@b"),
    ("line-feed", "first\nsecond", "first^Jsecond"),
    ("lone-surrogate", "bad\udcffbyte", "bad\\udcffbyte"),
    ("rich-markup", "[bold red]x[/]", "[bold red]x[/]"),
    ("rich-link-markup", "[link=http://x]y[/link]", "[link=http://x]y[/link]"),
]


@pytest.mark.parametrize(
    ("line", "expected"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE]
)
def test_sanitize_hostile_exact(line: str, expected: str) -> None:
    """Each hostile line sanitizes to exactly its expected visible-escape form."""
    assert sanitize(line) == expected
    assert not FORBIDDEN.search(sanitize(line))


@pytest.mark.parametrize(
    ("line", "expected"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE]
)
def test_to_text_hostile_plain(line: str, expected: str) -> None:
    """to_text() shows the same characters as sanitize(), with and without ansi_colors."""
    assert to_text(line).plain == expected
    assert not FORBIDDEN.search(to_text(line, ansi_colors=True).plain)
    assert not FORBIDDEN.search("".join(t for t, _ in segments(line)))


@pytest.mark.parametrize("line", [c[1] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_segments_concatenate_to_sanitize(line: str) -> None:
    """segments() runs concatenate to sanitize(), escapes flagged and nothing else."""
    segs = segments(line)
    assert "".join(t for t, _ in segs) == sanitize(line)
    for text, is_escape in segs:
        assert text
        if is_escape:
            assert text[0] in "^\\"
        else:
            assert not FORBIDDEN.search(text)


def test_segments_shape() -> None:
    """segments() merges adjacent escapes into one run and keeps data runs between them."""
    assert segments("abc\b\b\bxyz") == [("abc", False), ("^H^H^H", True), ("xyz", False)]
    assert segments("") == []
    assert segments("plain") == [("plain", False)]


@pytest.mark.parametrize(
    "line",
    [
        "plain ascii line",
        "tab\tstays",
        "replacement \ufffd char",
        "wide 日本語 and emoji 🎉🔥",
        "zero width joiner 👩\u200d💻",
        "",
    ],
)
def test_safe_text_unchanged(line: str) -> None:
    """Tabs, U+FFFD, wide CJK and emoji are data and pass through unchanged."""
    assert sanitize(line) == line
    assert to_text(line).plain == line
    assert to_text(line).spans == []


def test_safe_line_is_returned_as_is() -> None:
    """The common case (nothing to escape) returns the very same string object."""
    line = "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186"
    assert sanitize(line) is line


def test_to_text_dims_escapes() -> None:
    """to_text() styles exactly the escape runs with ESCAPE_STYLE."""
    text = to_text("real\rfake\x1b[2J")
    assert text.plain == "real^Mfake^[[2J"
    assert [(s.start, s.end, s.style) for s in text.spans] == [
        (4, 6, ESCAPE_STYLE),
        (10, 12, ESCAPE_STYLE),
    ]
    assert ESCAPE_STYLE == Style(dim=True)


@pytest.mark.parametrize("markup", ["[bold red]x[/]", "[link=http://x]y[/link]", ":smile: [/]"])
def test_markup_is_literal(markup: str) -> None:
    """Rich-markup-looking text is kept literally and produces no styles or links."""
    for ansi in (False, True):
        text = to_text(markup, ansi_colors=ansi)
        assert text.plain == markup
        assert text.spans == []


def test_ansi_red_span() -> None:
    """With ansi_colors, a red SGR is hidden and becomes a red span over the following text."""
    text = to_text("\x1b[31merror\x1b[0m ok", ansi_colors=True)
    assert text.plain == "error ok"
    assert [(s.start, s.end, s.style) for s in text.spans] == [(0, 5, Style(color="red"))]


def test_ansi_off_by_default() -> None:
    """Without ansi_colors, even harmless SGR colours are shown as escapes."""
    assert to_text("\x1b[31merror\x1b[0m ok").plain == "^[[31merror^[[0m ok"


def test_ansi_conceal_stays_visible() -> None:
    """SGR 8 (conceal) is not honoured: it stays visible and hides nothing."""
    text = to_text("\x1b[8mhidden", ansi_colors=True)
    assert text.plain == "^[[8mhidden"
    assert [(s.start, s.end, s.style) for s in text.spans] == [(0, 2, ESCAPE_STYLE)]


@pytest.mark.parametrize(
    "params", ["5", "7", "8", "9", "1;8", "31;5", "38;5", "38;5;256", "38;2;1;2"]
)
def test_ansi_disallowed_sgr_visible(params: str) -> None:
    """An SGR with any non-allow-listed or malformed parameter is shown whole, not applied."""
    line = f"\x1b[{params}mx"
    assert to_text(line, ansi_colors=True).plain == f"^[[{params}mx"


def test_ansi_cve_payload_stays_escaped() -> None:
    """With ansi_colors on, the kubectl CVE-2021-25743 payload still stays escaped."""
    text = to_text(CVE_2021_25743 + "\x1b[32mok", ansi_colors=True)
    assert text.plain == "^[[2J^[[3J^[[1;1Hok"


@pytest.mark.parametrize(
    ("line", "plain"),
    [
        ("\x1b]0;title\x07\x1b[1mbold", "^[]0;title^Gbold"),
        ("\x1b]52;c;ZXZpbA==\x07", "^[]52;c;ZXZpbA==^G"),
        ("\x1b]8;;http://e/\x1b\\l\x1b]8;;\x1b\\", "^[]8;;http://e/^[\\l^[]8;;^[\\"),
        ("\x1bP+q544e\x1b\\", "^[P+q544e^[\\"),
        ("\x9b31mc1", "\\x9b31mc1"),
        ("\x1b[38:5:1mcolon", "^[[38:5:1mcolon"),
        ("\x1b[?25lcursor", "^[[?25lcursor"),
    ],
)
def test_ansi_other_sequences_visible(line: str, plain: str) -> None:
    """With ansi_colors, OSC, DCS, C1 CSI, colon SGR and private modes all stay visible."""
    assert to_text(line, ansi_colors=True).plain == plain


def test_ansi_full_allow_list() -> None:
    """Every allow-listed SGR parameter is honoured and removed from the text."""
    line = (
        "\x1b[1;2;3;4ma\x1b[22;23;24mb\x1b[90;107mc\x1b[38;5;200;48;5;3md"
        "\x1b[38;2;1;2;3;48;2;4;5;6me\x1b[39;49mf\x1b[mg\x1b[0mh"
    )
    text = to_text(line, ansi_colors=True)
    assert text.plain == "abcdefgh"
    styles = {text.plain[s.start : s.end]: s.style for s in text.spans}
    assert styles["a"] == Style(bold=True, dim=True, italic=True, underline=True)
    assert styles["c"] == Style(color="bright_black", bgcolor="bright_white")
    assert styles["d"] == Style(color=Color.from_ansi(200), bgcolor="yellow")
    assert styles["e"] == Style(color=Color.from_rgb(1, 2, 3), bgcolor=Color.from_rgb(4, 5, 6))
    assert {"b", "f", "g", "h"}.isdisjoint(styles)


def test_ansi_escape_inside_colour_still_dim() -> None:
    """An escape inside a coloured run is both coloured and dim."""
    text = to_text("\x1b[31ma\rb", ansi_colors=True)
    assert text.plain == "a^Mb"
    assert text.get_style_at_offset(Console(), 1) == Style(color="red", dim=True)


def test_ansi_huge_parameter_is_cheap_and_visible() -> None:
    """An absurdly long SGR parameter is rejected (shown) instead of being parsed."""
    line = "\x1b[" + "9" * 10_000 + "m"
    assert to_text(line, ansi_colors=True).plain == "^[[" + "9" * 10_000 + "m"


@pytest.mark.parametrize("ansi", [False, True], ids=["plain", "ansi_colors"])
def test_rendered_output_has_only_rich_sgr(ansi: bool) -> None:
    """Rendering to_text() of every hostile line emits no escape sequence except Rich's own SGR."""
    console = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor", width=200)
    for _, line, _ in HOSTILE:
        console.print(to_text(line + "\x1b[31mred\x1b[0m", ansi_colors=ansi))
    output = console.file.getvalue()
    assert "\x1b" in output  # Rich did style something (the dim escapes)
    stripped = RICH_SGR.sub("", output)
    assert "\x1b" not in stripped
    assert not FORBIDDEN.search(stripped.replace("\n", ""))


DANGEROUS = st.sampled_from(
    [chr(c) for c in range(0x20)]
    + [chr(c) for c in range(0x7F, 0xA0)]
    + list("\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    + ["\ud800", "\udcff", "\x1b[31m", "\x1b[0m", "\x1b[8m", "\x1b]0;", "[bold]"]
)
ANY_TEXT = st.lists(st.one_of(st.characters(exclude_categories=()), DANGEROUS), max_size=60).map(
    "".join
)


@given(ANY_TEXT)
def test_property_no_forbidden_output(line: str) -> None:
    """For any text, sanitize() has no forbidden character and segments() join to sanitize()."""
    out = sanitize(line)
    assert not FORBIDDEN.search(out)
    assert "".join(t for t, _ in segments(line)) == out
    assert to_text(line).plain == out
    assert not FORBIDDEN.search(to_text(line, ansi_colors=True).plain)


@given(ANY_TEXT)
def test_property_rich_text_spans_in_bounds(line: str) -> None:
    """For any text, to_text() spans lie inside the text and escape spans cover escapes only."""
    for ansi in (False, True):
        text = to_text(line, ansi_colors=ansi)
        assert isinstance(text, Text)
        for span in text.spans:
            assert 0 <= span.start < span.end <= len(text.plain)
            if span.style == ESCAPE_STYLE:
                assert text.plain[span.start] in "^\\"
