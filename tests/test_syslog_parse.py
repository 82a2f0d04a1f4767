"""The pure syslog core: RFC 3164 and RFC 5424 messages, source names, TCP framing."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logtv.protocol import SOURCE_NAME_RE
from logtv.server.syslog_parse import FrameSplitter, parse_message, source_name

#: A fixed receive time, for messages without a timestamp.
NOW = 1_796_385_600.0


def parse(data: bytes, max_line: int = 64 << 10, cut: int = 0):  # type: ignore[no-untyped-def]
    return parse_message(data, sender="192.0.2.9", received_at=NOW, max_line=max_line, cut=cut)


def received_stamp() -> str:
    return time.strftime("%b %e %H:%M:%S", time.localtime(NOW))


def test_rfc3164_with_host_tag_and_pid():
    """A classic BSD message gives its host, tag, pid, severity and the syslog-file line."""
    message = parse(b"<38>Oct  9 22:14:15 web1 sshd[4242]: Accepted publickey for root")
    assert (message.facility, message.severity) == (4, 6)
    assert (message.host, message.tag, message.pid) == ("web1", "sshd", "4242")
    assert message.line == "Oct  9 22:14:15 web1 sshd[4242]: Accepted publickey for root"


def test_rfc3164_two_digit_day_and_no_pid():
    """A day of two digits is kept as is, and a tag without a pid has none in the line."""
    message = parse(b"<13>Dec 24 01:02:03 db1 cron: job done\n")
    assert message.line == "Dec 24 01:02:03 db1 cron: job done"
    assert message.pid is None


def test_rfc3164_without_host_uses_the_sender():
    """A local-style message (timestamp, then the tag) is taken as coming from the sender."""
    message = parse(b"<14>Oct 11 22:14:15 su[1]: 'su root' failed")
    assert (message.host, message.tag) == ("192.0.2.9", "su")
    assert message.line == "Oct 11 22:14:15 192.0.2.9 su[1]: 'su root' failed"


def test_rfc3164_with_rfc3339_timestamp():
    """A 3164-style message with an RFC 3339 timestamp (rsyslog templates) is read too."""
    message = parse(b"<30>2026-12-04T10:00:01.123456+01:00 web2 nginx: GET /")
    assert message.line == "Dec  4 10:00:01 web2 nginx: GET /"


def test_rfc3164_tag_without_colon_is_kept_as_it_came():
    """After the host the first word is the tag even without a colon (as rsyslog reads it and
    forwards RFC 5424 messages), and the line shows it as it came."""
    message = parse(b"<13>Oct 11 22:14:15 web1 fleetapp[7] through rsyslog")
    assert (message.tag, message.pid) == ("fleetapp", "7")
    assert message.line == "Oct 11 22:14:15 web1 fleetapp[7] through rsyslog"


def test_rfc3164_without_timestamp_needs_a_colon_for_a_tag():
    """Without a timestamp only a word ending in a colon is a tag; other text is all message."""
    assert parse(b"<13>some words").tag is None
    assert parse(b"<13>cron: done").line == f"{received_stamp()} 192.0.2.9 cron: done"


def test_rfc5424_full_with_structured_data_and_bom():
    """RFC 5424: header fields, structured data kept before the message, the BOM dropped."""
    data = (
        b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 77 ID47 "
        b'[exampleSDID@32473 iut="3" eventSource="App\\"l] x"][b@1 c="d"] \xef\xbb\xbfAn event'
    )
    message = parse(data)
    assert (message.facility, message.severity) == (20, 5)
    assert (message.host, message.tag, message.pid) == ("mymachine.example.com", "evntslog", "77")
    assert message.line == (
        "Oct 11 22:14:15 mymachine.example.com evntslog[77]: "
        '[exampleSDID@32473 iut="3" eventSource="App\\"l] x"][b@1 c="d"] An event'
    )


def test_rfc5424_nil_values():
    """Every NILVALUE falls back: receive time, the sender, no tag, no pid, no data."""
    message = parse(b"<11>1 - - - - - - the message")
    assert (message.host, message.tag, message.pid, message.severity) == (
        "192.0.2.9",
        None,
        None,
        3,
    )
    assert message.line == f"{received_stamp()} 192.0.2.9 the message"


def test_rfc5424_without_message():
    """A message with only a header is a line with an empty message."""
    message = parse(b"<14>1 2026-01-02T03:04:05Z h app - - -")
    assert message.line == "Jan  2 03:04:05 h app: "


def test_rfc5424_header_cut_short_is_text():
    """A version 1 that is not followed by a full header is kept as the message text."""
    message = parse(b"<14>1 2026-01-02T03:04:05Z h")
    assert message.tag is None
    assert message.line.endswith(" 192.0.2.9 1 2026-01-02T03:04:05Z h")


def test_rfc5424_unclosed_structured_data_is_message():
    """Structured data that never closes is taken as part of the message."""
    message = parse(b'<14>1 - h app - - [x a="b')
    assert message.line.endswith(' h app: [x a="b')


@pytest.mark.parametrize(
    "data",
    [b"no pri at all", b"<999>Oct 11 22:14:15 h t: x", b"<abc>text", b"", b"\x00\xff\xfe<"],
)
def test_missing_or_bad_pri_is_user_notice_and_text(data: bytes):
    """No valid PRI means user.notice and the whole input is the message (RFC 3164 4.3.3)."""
    message = parse(data)
    assert (message.facility, message.severity) == (1, 5)
    assert message.host == "192.0.2.9"
    assert message.line.startswith(f"{received_stamp()} 192.0.2.9 ")


def test_invalid_utf8_becomes_replacement_character():
    """Bytes that are not UTF-8 become U+FFFD, as in file lines."""
    message = parse(b"<13>Oct 11 22:14:15 h t: caf\xe9 \xff")
    assert message.line == "Oct 11 22:14:15 h t: caf\ufffd \ufffd"


def test_control_characters_in_host_and_tag_are_replaced():
    """Control characters in the header words become ``_``; the message keeps its own."""
    message = parse(b"<13>1 - h\x1bx t\x07g - - - bell\x07")
    assert (message.host, message.tag) == ("h_x", "t_g")
    assert message.line.endswith("h_x t_g: bell\x07")


def test_long_message_cut_like_a_file_line():
    """A line over max-line bytes is cut there, with the bytes-cut marker files get."""
    message = parse(b"<13>Oct 11 22:14:15 h t: " + b"x" * 5000, max_line=1024)
    kept, marker = message.line.split(" \u2026", 1)
    assert len(kept.encode()) == 1024
    assert marker == f"[logtv: {len('Oct 11 22:14:15 h t: ') + 5000 - 1024:,} bytes cut]"


def test_framing_cut_counts_in_the_marker():
    """Bytes the TCP framing already dropped are added to the marker's count."""
    message = parse(b"<13>Oct 11 22:14:15 h t: short", cut=7)
    assert message.line.endswith("short \u2026[logtv: 7 bytes cut]")


@pytest.mark.parametrize(
    ("tag", "host", "name"),
    [
        ("sshd", "web1", "sshd@web1"),
        (None, "web1", "syslog@web1"),
        ("my prog/x", "h", "my_prog_x@h"),
        ("a@b", "c@d", "a_b@c_d"),
        ("-dash", "::1", "dash@::1"),
        ("___", "h", "syslog@h"),
        ("t" * 80, "h" * 80, "t" * 31 + "@" + "h" * 32),
        ("caf\u00e9", "h\u00f6st", "caf_@h_st"),
    ],
)
def test_source_names_obey_the_rules(tag: str | None, host: str, name: str):
    """Tag and host make a name that the protocol's source name rules accept."""
    assert source_name(tag, host) == name
    assert SOURCE_NAME_RE.match(name)


def test_frames_octet_counted_and_lf_mixed_in_any_pieces():
    """Both framings, chosen per frame, split right whatever the read boundaries."""
    stream = b"11 <13>hello 1\n<13>two\n\n5 <13>3<13>four\r\n"
    expected = [b"<13>hello 1", b"<13>two", b"<13>3", b"<13>four\r"]
    for size in (1, 2, 3, 7, len(stream)):
        splitter = FrameSplitter(1024)
        frames = []
        for start in range(0, len(stream), size):
            frames += splitter.feed(stream[start : start + size])
        assert frames == [(frame, 0) for frame in expected], size
        assert splitter.buffered == 0


def test_octet_counted_frame_may_hold_newlines():
    """An octet-counted frame takes exactly its length, newlines included."""
    splitter = FrameSplitter(1024)
    assert splitter.feed(b"9 <13>a\nb\nc") == [(b"<13>a\nb\nc", 0)]


def test_long_frames_are_cut_and_the_stream_stays_in_step():
    """Over-long frames of both kinds keep max-line bytes, count the rest, and the next frame
    is read normally; the buffer never holds more than a frame's bound."""
    splitter = FrameSplitter(1024)
    body = b"<13>" + b"y" * 3000
    frames = splitter.feed(b"%d " % len(body) + body[:2000])
    assert splitter.buffered <= 1024
    frames += splitter.feed(body[2000:] + b"<13>" + b"z" * 5000)
    assert splitter.buffered <= 1024
    frames += splitter.feed(b"z\n6 <13>ok")
    assert frames == [
        (body[:1024], len(body) - 1024),
        (b"<13>" + b"z" * 1020, 3981),
        (b"<13>ok", 0),
    ]


def test_finish_gives_the_unfinished_last_frame():
    """At end of stream, an unterminated last frame is still a message; blanks are none."""
    splitter = FrameSplitter(1024)
    assert splitter.feed(b"<13>no newline") == []
    assert splitter.finish() == [(b"<13>no newline", 0)]
    assert splitter.feed(b"\r\n") == []
    assert splitter.finish() == []


def test_garbage_count_is_read_as_an_lf_frame():
    """Digits not followed by a space, or too many of them, are just the start of a line."""
    splitter = FrameSplitter(1024)
    assert splitter.feed(b"12abc\n99999999999 x\n0 \n") == [(b"12abc", 0), (b"99999999999 x", 0)]


def test_many_small_frames_in_one_read():
    """Ten thousand frames in one read all come out, in order, and nothing is left held."""
    stream = b"".join(b"<13>t: line %d\n" % i for i in range(10_000))
    splitter = FrameSplitter(1024)
    frames = splitter.feed(stream)
    assert [frame for frame, _ in frames] == [b"<13>t: line %d" % i for i in range(10_000)]
    assert splitter.buffered == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(1, 400), max_size=20))
def test_any_bytes_any_split_same_frames_and_bounded(stream: bytes, sizes: list[int]):
    """Any bytes split at any points give the same frames as in one read, each frame within
    max-line, the buffer within its bound, and every frame parses to a legal source name."""
    whole = FrameSplitter(256)
    expected = whole.feed(stream) + whole.finish()
    pieces = FrameSplitter(256)
    frames, position = [], 0
    for size in [*sizes, len(stream)]:
        frames += pieces.feed(stream[position : position + size])
        assert pieces.buffered <= 256 + 11
        position += size
    frames += pieces.finish()
    assert frames == expected
    for frame, cut in frames:
        assert len(frame) <= 256
        message = parse(frame, max_line=1024, cut=cut)
        assert SOURCE_NAME_RE.match(source_name(message.tag, message.host))
        assert len(message.line.split(" \u2026[logtv:")[0].encode()) <= 1024
