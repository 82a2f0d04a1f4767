"""Per-client accounting: which of lines 1..N arrived, in what order, and how late.

Kept apart from the sockets so the rules can be tested alone. A line is *lost* if it never
arrives, *duplicated* if it arrives again, *reordered* if it arrives after a later one (it is
then no longer lost). The common case, a run of consecutive seqs, is checked with one list
comparison at C speed; only a run with a hole falls back to a loop over its seqs. Holes are kept
as ranges, since a server that drops lines for a slow client drops runs of them.
"""

from __future__ import annotations

import bisect
from array import array
from dataclasses import dataclass, field

__all__ = ["Tracker"]

#: More separate holes than this are counted, not remembered (a late line in them is a duplicate).
MAX_HOLES = 100_000


@dataclass(slots=True)
class Tracker:
    """What one client received of lines 1..``expected``."""

    expected: int
    collect_latency: bool = False
    next_seq: int = 1
    received: int = 0
    duplicated: int = 0
    reordered: int = 0
    #: Missing ranges [start, end), sorted and disjoint; ``_starts`` mirrors their starts.
    holes: list[list[int]] = field(default_factory=list)
    _starts: list[int] = field(default_factory=list)
    missing: int = 0
    first_ns: int = 0
    last_ns: int = 0
    #: The longest wait between two reads that brought lines (ns): a starved client shows here.
    longest_silence_ns: int = 0
    latencies_us: array[int] = field(default_factory=lambda: array("q"))

    @property
    def done(self) -> bool:
        """The last line has arrived (later lines cannot exist)."""
        return self.next_seq > self.expected

    @property
    def lost(self) -> int:
        """Lines not received (so far): the holes, and everything after the newest seq."""
        return self.missing + max(0, self.expected - self.next_seq + 1)

    def add(self, seqs: list[int], now_ns: int, sent_us: list[int] | None = None) -> None:
        """Account for the seqs of one read, in arrival order; ``sent_us`` for latency."""
        if not seqs:
            return
        if not self.first_ns:
            self.first_ns = now_ns
        elif now_ns - self.last_ns > self.longest_silence_ns:
            self.longest_silence_ns = now_ns - self.last_ns
        self.last_ns = now_ns
        start = self.next_seq
        end = start + len(seqs)
        if seqs[0] == start and seqs[-1] == end - 1 and seqs == list(range(start, end)):
            self.next_seq = end
            self.received += len(seqs)
        else:
            for seq in seqs:
                self._add_one(seq)
        if sent_us is not None and self.collect_latency:
            now_us = now_ns // 1000
            self.latencies_us.extend(now_us - sent for sent in sent_us)

    def _add_one(self, seq: int) -> None:
        if seq >= self.next_seq:
            if seq > self.next_seq:
                self.missing += seq - self.next_seq
                if len(self.holes) < MAX_HOLES:
                    self.holes.append([self.next_seq, seq])
                    self._starts.append(self.next_seq)
            self.next_seq = seq + 1
            self.received += 1
        elif self._fill(seq):
            self.reordered += 1
            self.received += 1
        else:
            self.duplicated += 1

    def _fill(self, seq: int) -> bool:
        """Take ``seq`` out of the holes; False if it was not missing."""
        index = bisect.bisect_right(self._starts, seq) - 1
        if index < 0 or seq >= self.holes[index][1]:
            return False
        start, end = self.holes[index]
        self.missing -= 1
        pieces = [[a, b] for a, b in ((start, seq), (seq + 1, end)) if a < b]
        self.holes[index : index + 1] = pieces
        self._starts[index : index + 1] = [a for a, _ in pieces]
        return True
