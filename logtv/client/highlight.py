"""Colour syslog, auth, ufw, kernel and nginx/apache lines so the eye finds what matters.

A wall of grey log text hides the one "Failed password ... from 203.0.113.5" that matters. This
module adds Rich spans to an *already sanitized* :class:`rich.text.Text` (from
:func:`logtv.sanitize.to_text`): it never changes the characters, so visible escapes such as
``^[`` pass through untouched, and it never parses markup.

Styles are concrete :class:`rich.style.Style` objects (not theme names), so highlighting works
in any Rich or Textual context without a theme. The rules are one small table; all per-token
rules are combined into a single precompiled alternation, so a line costs one anchored header
match plus one ``finditer`` pass.
"""

from __future__ import annotations

import re

from rich.highlighter import Highlighter
from rich.style import Style
from rich.text import Span, Text

__all__ = [
    "CRITICAL",
    "ERROR",
    "HOST",
    "IP",
    "KERNEL_CLOCK",
    "LEVEL_INFO",
    "LEVEL_NOTICE",
    "LogHighlighter",
    "METHOD",
    "PID",
    "PORT",
    "PROGRAM",
    "REQUEST_PATH",
    "STATUS_2XX",
    "STATUS_3XX",
    "STATUS_4XX",
    "STATUS_5XX",
    "SUCCESS",
    "TIMESTAMP",
    "UFW_KEY",
    "UFW_TAG",
    "UFW_VALUE",
    "USER",
    "WARNING",
    "highlight",
]

# --- styles -------------------------------------------------------------------------------------

TIMESTAMP = Style(color="cyan")
HOST = Style(color="magenta")
PROGRAM = Style(color="bright_blue", bold=True)
PID = Style(color="blue")
KERNEL_CLOCK = Style(color="cyan")
CRITICAL = Style(color="red", bold=True)
ERROR = Style(color="red")
WARNING = Style(color="yellow")
SUCCESS = Style(color="green")
IP = Style(color="bright_magenta")
PORT = Style(color="magenta")
USER = Style(color="bright_cyan", bold=True)
UFW_TAG = Style(bold=True)
UFW_KEY = Style(dim=True)
UFW_VALUE = Style(color="magenta")
METHOD = Style(bold=True)
REQUEST_PATH = Style(color="bright_blue")
STATUS_2XX = Style(color="green")
STATUS_3XX = Style(color="cyan")
STATUS_4XX = Style(color="yellow")
STATUS_5XX = Style(color="red")
LEVEL_NOTICE = Style(color="bright_cyan")
LEVEL_INFO = Style(color="blue")

# --- patterns -----------------------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = rf"(?:{_OCTET}\.){{3}}{_OCTET}"
_H = r"[0-9A-Fa-f]{1,4}"
# Full 8-group form, or a form with "::" (never a bare "::"), optionally IPv4-mapped or with a
# zone. A time such as 06:00:01 or a MAC such as 00:11:43:e3:ba:c3 has neither, so never matches.
_IPV6 = (
    rf"(?:(?:{_H}:){{7}}{_H}"
    rf"|(?:{_H}(?::{_H}){{0,5}})?::(?:{_H}:){{0,4}}{_IPV4}"
    rf"|{_H}(?::{_H}){{0,6}}::(?:{_H}(?::{_H}){{0,6}})?"
    rf"|::{_H}(?::{_H}){{0,6}})"
    r"(?:%[\w.-]+)?"
)
_METHODS = "GET|HEAD|POST|PUT|DELETE|PATCH|OPTIONS|CONNECT|TRACE|PROPFIND|MKCOL|COPY|MOVE"

# Line header, matched once at the start: syslog / RFC 3339 timestamp + host + program[pid]:
# (macOS may add " (detail)" before the colon), the Apache error-log timestamp, or the nginx
# error-log timestamp + pid#tid:.
_HEADER = re.compile(
    r"(?:(?P<ts>[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d(?:\.\d+)?"
    r"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    r" (?P<host>\S+)"
    r"(?: (?P<prog>[^\s\[\]:]+)(?:\[(?P<pid>\d+)\])?(?: \([^\s()]*\))?:(?=\s|$))?"
    r"|\[(?P<ats>[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)? \d{4})\]"
    r"|(?P<nts>\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[\w+\] (?P<npid>\d+)#\d+:)"
)
_HEADER_STYLES: tuple[tuple[str, Style], ...] = (
    ("ts", TIMESTAMP),
    ("host", HOST),
    ("prog", PROGRAM),
    ("pid", PID),
    ("ats", TIMESTAMP),
    ("nts", TIMESTAMP),
    ("npid", PID),
)
# Fallback when there is no header (e.g. a prefixed syslog line): a ` program[pid]:` tag anywhere.
_TAG = re.compile(r"(?:^|(?<=\s))(?P<prog>[\w./@-]+(?:\([\w.:-]+\))?)\[(?P<pid>\d+)\]:(?=\s|$)")
_TAG_STYLES: tuple[tuple[str, Style], ...] = (("prog", PROGRAM), ("pid", PID))


def _words(*words: str) -> str:
    """Case-insensitive whole words, each branch led by a literal char class.

    Each word is a regex fragment whose first character is a plain letter. Spelling it as
    ``[Ee](?i:rror)`` rather than ``(?i:error)`` lets ``re`` skip the branch on its first char.
    """
    return "(?:" + "|".join(f"[{w[0].upper()}{w[0].lower()}](?i:{w[1:]})" for w in words) + r")\b"


# Per-token rules: (regex, {key: style}). A key is "" for the whole match, a group name for that
# group, or "<name" for the text from the start of the match up to group ``name``. All rules are
# OR-ed into one regex, tried only where no word character or "." precedes, so a rule starts at
# a word start (no leading \b needed; "sos.error" is not a word) or at punctuation. Lead each
# rule with one literal character or class where possible (see _words): ``re`` then rejects it
# on that character, which keeps the one pass fast. Matches never overlap; where two rules could
# match at one position, the first listed wins.
_RULES: tuple[tuple[str, dict[str, Style]], ...] = (
    # kernel clock [   12.345678]
    (r"\[ *\d+\.\d{6}\]", {"": KERNEL_CLOCK}),
    # [UFW BLOCK] / [UFW ALLOW] / [UFW AUDIT] ...
    (
        r"\[UFW (?:(?P<ufw_block>BLOCK)|(?P<ufw_allow>ALLOW)|[A-Z ]+)\]",
        {"": UFW_TAG, "ufw_block": CRITICAL, "ufw_allow": SUCCESS},
    ),
    # Apache [error] / [core:notice], nginx [warn] levels
    (
        r"\[(?:[\w-]+:)?(?:(?P<lv_crit>emerg|alert|crit)|(?P<lv_err>error)|(?P<lv_warn>warn)"
        r"|(?P<lv_notice>notice)|(?P<lv_info>info|debug|trace\d?))\]",
        {
            "lv_crit": CRITICAL,
            "lv_err": ERROR,
            "lv_warn": WARNING,
            "lv_notice": LEVEL_NOTICE,
            "lv_info": LEVEL_INFO,
        },
    ),
    # common/combined log format timestamp [04/Dec/2026:06:00:01 +0000]
    (r"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]", {"": TIMESTAMP}),
    # access-log request "GET /path HTTP/1.1" 200 (or any quoted junk followed by status, bytes)
    (
        rf'"(?:(?P<method>{_METHODS}) (?P<path>[^\s"]+)(?: HTTP/[\d.]+)?"'
        r'|[^"]*"(?= [1-5]\d\d (?:\d+|-)(?: |$)))'
        r"(?: (?:(?P<st2>2\d\d)|(?P<st3>3\d\d)|(?P<st4>4\d\d)|(?P<st5>5\d\d))\b)?",
        {
            "method": METHOD,
            "path": REQUEST_PATH,
            "st2": STATUS_2XX,
            "st3": STATUS_3XX,
            "st4": STATUS_4XX,
            "st5": STATUS_5XX,
        },
    ),
    # UFW / iptables fields: key dim, value coloured
    (rf"SRC=(?P<ufw_src>{_IPV6}|{_IPV4})", {"<ufw_src": UFW_KEY, "ufw_src": IP}),
    (rf"DST=(?P<ufw_dst>{_IPV6}|{_IPV4})", {"<ufw_dst": UFW_KEY, "ufw_dst": IP}),
    (r"PROTO=(?P<ufw_proto>\w+)", {"<ufw_proto": UFW_KEY, "ufw_proto": UFW_VALUE}),
    (r"[SD]PT=(?P<ufw_port>\d+)", {"<ufw_port": UFW_KEY, "ufw_port": UFW_VALUE}),
    # sshd: "Invalid user USER", "for invalid user USER from"
    (
        r"[Ii](?i:nvalid)(?P<inv_end>) user (?P<iuser>\S+)",
        {"<inv_end": ERROR, "iuser": USER},
    ),
    # sshd/pam: "for USER from", "for user USER"
    (r"for (?:user (?P<fuser>[^\s(]+)|(?P<fuser2>\S+) from\b)", {"fuser": USER, "fuser2": USER}),
    # pam "user=USER", sudo "USER=root" (not "ruser=": a word char precedes)
    (r"[uU](?:ser|SER)=(?P<kuser>[^\s;,]+)", {"kuser": USER}),
    # sudo:   USER : TTY=...
    (r"sudo(?:\[\d+\])?: +(?P<suser>[^\s:]+) :", {"suser": USER}),
    (r"port (?P<port>\d{1,5})\b", {"port": PORT}),
    # severity words
    (
        _words(
            "critical",
            "fatal",
            "panic(?:ked)?",
            "segfault",
            "out of memory",
            "possible break-in attempt",
        )
        + r"|BLOCK(?:ED)?\b",
        {"": CRITICAL},
    ),
    (
        _words("errors?", "fail(?:s|ed|ures?)?", "denied", "invalid", "refused"),
        {"": ERROR},
    ),
    (_words("warn(?:ings?)?", "deprecated"), {"": WARNING}),
    (
        _words("session opened", "accepted", "success(?:ful(?:ly)?)?", "succeeded", "opened")
        + r"|ALLOW(?:ED)?\b",
        {"": SUCCESS},
    ),
    # addresses last: the field rules above already claimed SRC=/DST= values
    (rf"(?<![:.]){_IPV6}(?![\w:]|\.\d)", {"": IP}),
    (rf"(?<!\.){_IPV4}(?!\w|\.\d)", {"": IP}),
)

# One alternation; each rule ends in an empty marker group ``_rN``, which closes last, so
# ``match.lastgroup`` names the rule that matched (a marker at the front would cost speed).
_TOKENS = re.compile(
    r"(?<![\w.])(?:"
    + "|".join(f"(?:{pattern})(?P<_r{i}>)" for i, (pattern, _) in enumerate(_RULES))
    + ")"
)

# (group, from-match-start?, style) triples; group 0 is the whole match
_Target = tuple[int | str, bool, Style]


def _targets(styles: dict[str, Style]) -> tuple[_Target, ...]:
    """Turn a rule's ``{key: style}`` into (group, before, style) triples."""
    out: list[_Target] = []
    for key, style in styles.items():
        if not key:
            out.append((0, False, style))
        elif key.startswith("<"):
            out.append((key[1:], True, style))
        else:
            out.append((key, False, style))
    return tuple(out)


_RULE_TARGETS: dict[str, tuple[_Target, ...]] = {
    f"_r{i}": _targets(styles) for i, (_, styles) in enumerate(_RULES)
}
_HEADER_TARGETS: tuple[_Target, ...] = tuple((g, False, s) for g, s in _HEADER_STYLES)
_TAG_TARGETS: tuple[_Target, ...] = tuple((g, False, s) for g, s in _TAG_STYLES)


def _apply(match: re.Match[str], targets: tuple[_Target, ...], spans: list[Span]) -> None:
    """Append a span for every participating, non-empty target of ``match``."""
    for group, before, style in targets:
        start, end = match.span(group)
        if before:
            start, end = match.start(), start
        if start < end:
            spans.append(Span(start, end, style))


def highlight(text: Text) -> None:
    """Add highlight spans to ``text`` in place; its characters are never changed."""
    plain = text.plain
    spans = text.spans
    header = _HEADER.match(plain)
    if header is not None:
        _apply(header, _HEADER_TARGETS, spans)
    else:
        tag = _TAG.search(plain)
        if tag is not None:
            _apply(tag, _TAG_TARGETS, spans)
    targets = _RULE_TARGETS
    for match in _TOKENS.finditer(plain):
        _apply(match, targets[match.lastgroup], spans)  # type: ignore[index]


class LogHighlighter(Highlighter):
    """Rich highlighter for syslog/auth/ufw/kernel/nginx/apache lines (see :func:`highlight`)."""

    def highlight(self, text: Text) -> None:
        """Highlight ``text`` in place."""
        highlight(text)
