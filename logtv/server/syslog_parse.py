r"""Syslog messages in, log lines out: RFC 3164 and RFC 5424 parsing and TCP framing, with no I/O.

Whatever a sender puts on the wire is untrusted, so every input has a defined result:

- A message is ``<PRI>`` then either RFC 5424 (``1 TIMESTAMP HOST APP PROCID MSGID SD MSG``,
  each header field possibly ``-``) or RFC 3164 (``Mmm dd hh:mm:ss HOST TAG[PID]: MSG``). A
  missing or bad PRI means user.notice (RFC 3164 4.3.3) and the whole text is the message; a
  missing timestamp means the time it was received; a missing host means the sender's address.
- The line is what a syslog file would hold: ``Mmm dd HH:MM:SS host tag[pid]: message``
  (after a host, the first word is the tag, as rsyslog reads it, colon or not).
  RFC 5424 structured data other than ``-`` is kept, in front of the message. A UTF-8 BOM at
  the start of the message is dropped; invalid UTF-8 becomes U+FFFD; trailing NUL, CR and LF
  are dropped; a line longer than ``max_line`` bytes is cut with ``…[logtv: N bytes cut]``, as
  file lines are.
- On TCP (RFC 6587) each frame is either octet-counted (``LEN SP MSG``) or ends at LF; the
  choice is made per frame, by whether it starts with a digit. A frame never holds more than
  ``max_line`` bytes: the rest is counted and skipped.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime

from logtv.protocol import SOURCE_NAME_RE

__all__ = [
    "DEFAULT_PRI",
    "FrameSplitter",
    "SyslogMessage",
    "parse_message",
    "source_name",
]

#: user.notice: what a message without a valid PRI is taken to be (RFC 3164 4.3.3).
DEFAULT_PRI = 13
#: The longest octet count read as one (a 10-digit count is over any max-line anyway).
_MAX_COUNT_DIGITS = 10
_BLANKS = b"\r\n\x00 "
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_BOM = "\ufeff"

_PRI_RE = re.compile(r"<(\d{1,3})>")
_RFC3164_TIME_RE = re.compile(
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([ 0-3]?\d) (\d\d:\d\d:\d\d) "
)
_RFC3339_RE = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)"
)
#: An RFC 3164 tag: a program name, an optional [pid], then a colon (or the [pid] and a space).
_TAG_RE = re.compile(r"([^\s\[\]:]{1,48})(?:\[([^\]\s]{1,32})\])?(:|(?<=\]) )")
#: After a host, as rsyslog reads it: the first word is the tag, with or without its colon.
_LOOSE_TAG_RE = re.compile(r"([^\s\[\]:]{1,48})(?:\[([^\]\s]{1,32})\])?(:| )")
_HEADER_WORD_RE = re.compile(r"\S{1,255}")
_ILLEGAL_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.@:-]")


@dataclass(frozen=True, slots=True)
class SyslogMessage:
    """One received message, as its parts and as the line a syslog file would hold."""

    #: ``PRI & 7``: 0 emerg … 7 debug.
    severity: int
    #: ``PRI >> 3``: 0 kern, 1 user, … 23 local7.
    facility: int
    #: The HOSTNAME field, else the sender's address.
    host: str
    #: The program's tag (RFC 5424 APP-NAME), or None when the message has none.
    tag: str | None
    #: The process id (RFC 5424 PROCID), or None.
    pid: str | None
    #: ``Mmm dd HH:MM:SS host tag[pid]: message``, cut at ``max_line`` bytes.
    line: str


def parse_message(
    data: bytes, *, sender: str, received_at: float, max_line: int, cut: int = 0
) -> SyslogMessage:
    """Parse one message; any bytes give a message (the unparsable part is the text).

    ``sender`` is the peer's address, the host when the message names none; ``received_at``
    (POSIX time) stands in for a missing timestamp; ``cut`` counts bytes the framing already
    dropped from the end of this message (they are reported in the cut marker).
    """
    text = data.decode("utf-8", "replace").rstrip("\r\n\x00")
    pri = DEFAULT_PRI
    match = _PRI_RE.match(text)
    if match and int(match.group(1)) <= 191:
        pri = int(match.group(1))
        rest = text[match.end() :]
        if rest.startswith("1 "):
            parsed = _parse_5424(rest[2:])
        else:
            parsed = _parse_3164(rest)
    else:
        parsed = _Parts(None, None, None, None, text)
    stamp = parsed.timestamp or _format_time(time.localtime(received_at))
    host = _clean_word(parsed.host) or sender
    tag = _clean_word(parsed.tag)
    pid = _clean_word(parsed.pid)
    message = parsed.message
    colon = ":" if parsed.colon else ""
    if tag is None:
        line = f"{stamp} {host} {message}"
    elif pid is None:
        line = f"{stamp} {host} {tag}{colon} {message}"
    else:
        line = f"{stamp} {host} {tag}[{pid}]{colon} {message}"
    return SyslogMessage(pri & 7, pri >> 3, host, tag, pid, _cut(line, max_line, cut))


def source_name(tag: str | None, host: str) -> str:
    """The source a message goes to: ``tag@host``, legal under the source name rules.

    Characters a source name may not hold become ``_``; the tag is cut to 31 characters and
    the whole to 64; a tag that is missing (or has nothing usable) is ``syslog``.
    """
    program = _ILLEGAL_NAME_CHARS.sub("_", (tag or "").replace("@", "_"))
    program = program.lstrip("_.@:-")[:31] or "syslog"
    where = _ILLEGAL_NAME_CHARS.sub("_", host.replace("@", "_")) or "unknown"
    name = f"{program}@{where}"[:64]
    assert SOURCE_NAME_RE.match(name), name
    return name


class FrameSplitter:
    """A TCP stream in, messages out: octet-counted or LF-ended frames, each bounded.

    Holds at most ``max_line`` bytes of an unfinished frame; beyond that the frame's bytes are
    counted and skipped, and the frame comes out with that count. A chunk is scanned with an
    offset and trimmed once, so many small frames in one read cost no copying per frame.
    """

    __slots__ = ("max_line", "_buffer", "_skip", "_skip_to_lf", "_cut_frame", "_skip_counted")

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._buffer = bytearray()
        #: Bytes still to skip of an octet-counted frame that was too long.
        self._skip = 0
        #: Skipping an LF-ended frame that was too long, up to its LF.
        self._skip_to_lf = False
        #: The head of a frame being skipped, emitted when its end is found.
        self._cut_frame: bytes | None = None
        self._skip_counted = 0

    @property
    def buffered(self) -> int:
        """Bytes held of an unfinished frame."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[tuple[bytes, int]]:
        """The frames completed by ``chunk``, each as (its bytes, how many bytes were cut)."""
        frames: list[tuple[bytes, int]] = []
        buffer = self._buffer
        buffer += chunk
        position, end = 0, len(buffer)
        while position < end:
            if self._cut_frame is not None:
                position = self._skip_rest(position, frames)
                if self._cut_frame is not None:
                    break
                continue
            while position < end and buffer[position] in _BLANKS:
                position += 1  # blank lines between frames (an LF after an octet-counted frame)
            if position == end:
                break
            taken = self._take_frame(position, frames)
            if taken is None:
                break
            position = taken
        del buffer[:position]
        return frames

    def finish(self) -> list[tuple[bytes, int]]:
        """At the end of the stream: what is left, as a last frame (even if unfinished)."""
        frames: list[tuple[bytes, int]] = []
        if self._cut_frame is not None:
            frames.append((self._cut_frame, self._skip_counted + len(self._buffer)))
        elif self._buffer.strip(_BLANKS):
            frames.append((bytes(self._buffer.strip(_BLANKS)), 0))
        self._buffer.clear()
        self._cut_frame = None
        self._skip = 0
        self._skip_to_lf = False
        return frames

    def _take_frame(self, start: int, frames: list[tuple[bytes, int]]) -> int | None:
        """Take the frame at ``start``; the position after it, or None if it is not complete."""
        buffer = self._buffer
        end = len(buffer)
        digits = start
        while digits < end and digits - start <= _MAX_COUNT_DIGITS and 48 <= buffer[digits] <= 57:
            digits += 1
        count = digits - start
        if count and digits == end and count <= _MAX_COUNT_DIGITS:
            return None  # the count is still arriving
        if 0 < count <= _MAX_COUNT_DIGITS and buffer[digits] == 32:  # "LEN SP MSG"
            length = int(buffer[start:digits])
            body = digits + 1
            if length <= self.max_line:
                if end < body + length:
                    return None
                if length:
                    frames.append((bytes(buffer[body : body + length]), 0))
                return body + length
            # Too long to keep: its head now (once it is here), the rest counted and skipped.
            if end < body + self.max_line:
                return None
            self._cut_frame = bytes(buffer[body : body + self.max_line])
            self._skip, self._skip_to_lf, self._skip_counted = length - self.max_line, False, 0
            return body + self.max_line
        newline = buffer.find(b"\n", start, start + self.max_line + 1)
        if newline >= 0:
            frames.append((bytes(buffer[start:newline]), 0))
            return newline + 1
        if end - start <= self.max_line:
            return None
        self._cut_frame = bytes(buffer[start : start + self.max_line])
        self._skip, self._skip_to_lf, self._skip_counted = 0, True, 0
        return start + self.max_line

    def _skip_rest(self, start: int, frames: list[tuple[bytes, int]]) -> int:
        """Skip what is left of a cut frame from ``start``; emit it once its end is found."""
        buffer = self._buffer
        if self._skip_to_lf:
            newline = buffer.find(b"\n", start)
            if newline < 0:
                self._skip_counted += len(buffer) - start
                return len(buffer)
            self._skip_counted += newline - start
            position = newline + 1
        else:
            taken = min(self._skip, len(buffer) - start)
            self._skip -= taken
            self._skip_counted += taken
            position = start + taken
            if self._skip:
                return position
        assert self._cut_frame is not None
        frames.append((self._cut_frame, self._skip_counted))
        self._cut_frame = None
        self._skip_to_lf = False
        return position


@dataclass(slots=True)
class _Parts:
    timestamp: str | None
    host: str | None
    tag: str | None
    pid: str | None
    message: str
    #: The tag ended with a colon (a tag without one is shown without one, as it came).
    colon: bool = True


def _parse_3164(rest: str) -> _Parts:
    """``Mmm dd hh:mm:ss HOST TAG[PID]: MSG`` (each of timestamp, host and tag may be absent)."""
    timestamp: str | None = None
    match = _RFC3164_TIME_RE.match(rest)
    if match:
        month, day, clock = match.groups()
        timestamp = f"{month} {int(day):2d} {clock}"
        rest = rest[match.end() :]
    else:
        stamp = _RFC3339_RE.match(rest)  # what rsyslog's RFC 3339 forward templates send
        if stamp and rest[stamp.end() : stamp.end() + 1] == " ":
            timestamp = _format_3339(stamp)
            rest = rest[stamp.end() + 1 :]
    host: str | None = None
    if timestamp is not None and not _TAG_RE.match(rest):
        # After a timestamp the next word is the host, unless it already is the tag (a local
        # message, as a program writes to /dev/log, has no host).
        word = _HEADER_WORD_RE.match(rest)
        if word and rest[word.end() : word.end() + 1] == " ":
            host = word.group()
            rest = rest[word.end() + 1 :]
    tag = pid = None
    match = (_LOOSE_TAG_RE if host is not None else _TAG_RE).match(rest)
    colon = True
    if match:
        tag, pid, colon = match.group(1), match.group(2), match.group(3) == ":"
        rest = rest[match.end() :]
        if colon and rest.startswith(" "):
            rest = rest[1:]
    return _Parts(timestamp, host, tag, pid, rest, colon)


def _parse_5424(rest: str) -> _Parts:
    """``TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]`` after ``<PRI>1 ``."""
    fields: list[str] = []
    for _ in range(5):
        word = _HEADER_WORD_RE.match(rest)
        if word is None or rest[word.end() : word.end() + 1] != " ":
            # Not RFC 5424 after all: keep all of it as the message.
            return _Parts(None, None, None, None, "1 " + " ".join([*fields, rest]))
        fields.append(word.group())
        rest = rest[word.end() + 1 :]
    stamp, host, app, procid, _msgid = (None if value == "-" else value for value in fields)
    timestamp = None
    if stamp is not None:
        match = _RFC3339_RE.fullmatch(stamp)
        timestamp = _format_3339(match) if match else None
    data, message = _split_structured_data(rest)
    if message.startswith(_BOM):
        message = message[1:]
    if data is not None:
        message = f"{data} {message}" if message else data
    return _Parts(timestamp, host, app, procid, message)


def _split_structured_data(rest: str) -> tuple[str | None, str]:
    """``-`` or ``[id k="v" …]…`` at the start of ``rest``: (the data or None, the message).

    Inside a quoted value ``\\"``, ``\\]`` and ``\\\\`` are escapes. Data that never closes is
    taken as part of the message.
    """
    if rest.startswith("-"):
        if len(rest) == 1 or rest[1] == " ":
            return None, rest[2:]
        return None, rest
    if not rest.startswith("["):
        return None, rest
    position = 0
    while position < len(rest) and rest[position] == "[":
        end = _element_end(rest, position)
        if end < 0:
            return None, rest
        position = end
    if position < len(rest) and rest[position] != " ":
        return None, rest
    return rest[:position], rest[position + 1 :]


def _element_end(text: str, start: int) -> int:
    """The index after the ``]`` that closes the SD element at ``start``; -1 if none does."""
    in_value = False
    position = start + 1
    while position < len(text):
        char = text[position]
        if in_value:
            if char == "\\":
                position += 1
            elif char == '"':
                in_value = False
        elif char == '"':
            in_value = True
        elif char == "]":
            return position + 1
        position += 1
    return -1


def _format_3339(match: re.Match[str]) -> str | None:
    """An RFC 3339 timestamp as ``Mmm dd HH:MM:SS``, in the sender's own offset (as written)."""
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    try:
        moment = datetime(year, month, day, hour, minute, min(second, 59))
    except ValueError:
        return None
    return f"{_MONTHS[moment.month - 1]} {moment.day:2d} {moment:%H:%M:%S}"


def _format_time(moment: time.struct_time) -> str:
    return f"{_MONTHS[moment.tm_mon - 1]} {moment.tm_mday:2d} {time.strftime('%H:%M:%S', moment)}"


def _clean_word(word: str | None) -> str | None:
    """A header field as shown in the line: no spaces or controls; None if nothing is left."""
    if word is None:
        return None
    cleaned = "".join(char if char.isprintable() and not char.isspace() else "_" for char in word)
    return cleaned or None


def _cut(line: str, max_line: int, cut: int) -> str:
    """The line at most ``max_line`` bytes long, with the file lines' marker if anything was cut."""
    raw = line.encode()
    if len(raw) > max_line:
        cut += len(raw) - max_line
        line = raw[:max_line].decode("utf-8", "replace")
    if cut:
        line += f" …[logtv: {cut:,} bytes cut]"
    return line
