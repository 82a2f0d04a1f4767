"""The bench's log lines: auth.log-like text carrying a sequence number and a send time.

Every line ends in ``#SEQ @MICROS``: SEQ counts from 1 in the order the writer wrote the lines,
MICROS is ``CLOCK_MONOTONIC`` in microseconds just before the write. The monotonic clock is one
clock for every process on a Linux machine, so a client in another process subtracts it from its
own reading to get the latency. Warm-up lines carry ``#w`` instead, which the seq pattern does
not match, so they prove the pipeline is live without being counted.

The pattern is searched in whole frames (JSON or plain text) at C speed: no bench line, and no
control frame, contains ``#`` and digits followed by `` @`` anywhere else.
"""

from __future__ import annotations

import re
import time

__all__ = ["LATENCY_RE", "SEQ_RE", "WARMUP", "line", "warmup_line"]

#: A brute-force scan as auth.log shows it; the variant is picked by seq, so formatting is cheap.
_PREFIXES = tuple(
    (
        f"Dec  4 06:00:01 web1 sshd[{pid}]: {what} {user} "
        + f"from 203.0.113.{host} port {port}{end}"
    ).encode()
    for pid, user, host, port in (
        (12345, "admin", 7, 52114),
        (12351, "oracle", 19, 40022),
        (12360, "ubuntu", 88, 33011),
        (12377, "git", 142, 61544),
    )
    for what, end in (("Invalid user", ""), ("Failed password for invalid user", " ssh2"))
)

SEQ_RE = re.compile(rb"#(\d+) @")
LATENCY_RE = re.compile(rb"#(\d+) @(\d+)")
#: What marks a warm-up line in a frame.
WARMUP = b"#w @"


def line(seq: int, micros: int) -> bytes:
    """Line ``seq`` (from 1), stamped ``micros``, with its newline: one write(2) each."""
    return b"%s #%d @%d\n" % (_PREFIXES[seq & 7], seq, micros)


def warmup_line() -> bytes:
    """A line that shows a client is receiving, without counting as one of the measured lines."""
    return b"%s #w @%d\n" % (_PREFIXES[0], time.monotonic_ns() // 1000)
