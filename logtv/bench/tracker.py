"""Per-client accounting: which of lines 1..N arrived, in what order, and how late.

Kept apart from the sockets so the rules can be tested alone. A line is *lost* if it never
arrives, *duplicated* if it arrives again, *reordered* if it arrives after a later one (it is
then no longer lost). The common case, a run of consecutive seqs, is checked with one list
comparison at C speed; only a run with a hole falls back to a loop over its seqs.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

__all__ = ["Tracker"]

#: More missing seqs than this are counted, not remembered (a client that lost most lines).
MAX_REMEMBERED_HOLES = 1_000_000


@dataclass(slots=True)
class Tracker:
    """What one client received of lines 1..``expected``."""

    expected: int
    collect_latency: bool = False
    next_seq: int = 1
    received: int = 0
    duplicated: int = 0
    reordered: int = 0
    holes: set[int] = field(default_factory=set)
    forgotten_holes: int = 0
    first_ns: int = 0
    last_ns: int = 0
    latencies_us: array[int] = field(default_factory=lambda: array("q"))

    @property
    def done(self) -> bool:
        """The last line has arrived (later lines cannot exist)."""
        return self.next_seq > self.expected

    @property
    def lost(self) -> int:
        """Lines not received (so far): the holes, and everything after the newest seq."""
        return len(self.holes) + self.forgotten_holes + (self.expected - self.next_seq + 1)

    def add(self, seqs: list[int], now_ns: int, sent_us: list[int] | None = None) -> None:
        """Account for the seqs of one read, in arrival order; ``sent_us`` for latency."""
        if not seqs:
            return
        if not self.first_ns:
            self.first_ns = now_ns
        self.last_ns = now_ns
        start = self.next_seq
        if (
            seqs[0] == start
            and seqs[-1] == start + len(seqs) - 1
            and seqs == list(range(start, start + len(seqs)))
        ):
            self.next_seq += len(seqs)
            self.received += len(seqs)
        else:
            for seq in seqs:
                self._add_one(seq)
        if sent_us is not None and self.collect_latency:
            now_us = now_ns // 1000
            self.latencies_us.extend(now_us - sent for sent in sent_us)

    def _add_one(self, seq: int) -> None:
        if seq == self.next_seq:
            self.next_seq += 1
            self.received += 1
        elif seq > self.next_seq:
            gap = seq - self.next_seq
            if len(self.holes) + gap <= MAX_REMEMBERED_HOLES:
                self.holes.update(range(self.next_seq, seq))
            else:
                self.forgotten_holes += gap
            self.next_seq = seq + 1
            self.received += 1
        elif seq in self.holes:
            self.holes.discard(seq)
            self.reordered += 1
            self.received += 1
        else:
            self.duplicated += 1
