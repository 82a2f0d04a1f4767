"""The follower on its own: real files under tmp_path, polled directly, no watchdog, no server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from logtv.server.follower import FOLLOWING, MISSING, UNREADABLE, Follower


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(data)


def started(path: Path, backlog: int = 0, **options: object) -> tuple[Follower, list[str]]:
    follower = Follower(path, **options)  # type: ignore[arg-type]
    return follower, follower.start(backlog, now=0.0).lines


def test_starts_at_end_with_backlog(tmp_path: Path) -> None:
    """Start-up returns the last N lines as backlog and then reads only what is new."""
    path = tmp_path / "a.log"
    path.write_text("".join(f"line {i}\n" for i in range(10)))
    follower, backlog = started(path, backlog=3)
    assert backlog == ["line 7", "line 8", "line 9"]
    assert follower.poll(1.0).lines == []
    append(path, b"line 10\n")
    assert follower.poll(1.0).lines == ["line 10"]
    follower.close()


def test_partial_line_is_held_then_completed(tmp_path: Path) -> None:
    """An unfinished last line waits for its newline, and is flushed if it stays unfinished."""
    path = tmp_path / "a.log"
    path.write_bytes(b"")
    follower, _ = started(path)
    append(path, b"hel")
    assert follower.poll(1.0).lines == []
    append(path, b"lo\nwor")
    assert follower.poll(1.2).lines == ["hello"]
    assert follower.poll(1.5).lines == []
    assert follower.poll(2.3).lines == ["wor"]  # unfinished for over a second
    append(path, b"ld\n")
    assert follower.poll(2.4).lines == ["ld"]
    follower.close()


def test_partial_line_at_start_is_not_lost(tmp_path: Path) -> None:
    """A file that ends mid-line at start-up keeps that piece and completes it later."""
    path = tmp_path / "a.log"
    path.write_bytes(b"old\nhalf a ")
    follower, backlog = started(path, backlog=5)
    assert backlog == ["old"]
    append(path, b"line\n")
    assert follower.poll(0.1).lines == ["half a line"]
    follower.close()


def test_line_hygiene(tmp_path: Path) -> None:
    """Lines end at \\n only; \\r\\n loses its \\r; other whitespace and controls are data."""
    path = tmp_path / "a.log"
    path.write_bytes(b"")
    follower, _ = started(path)
    append(
        path,
        b"crlf\r\n  spaces kept \t\n"
        b"vt\x0bff\x0cfs\x1cnel\xc2\x85ls\xe2\x80\xa8end\n"
        b"nul\x00esc\x1b[2J\n"
        b"bad \xff\xfe utf8\n"
        b"lone\rcr\n",
    )
    assert follower.poll(0.1).lines == [
        "crlf",
        "  spaces kept \t",
        "vt\x0bff\x0cfs\x1cnel\x85ls\u2028end",
        "nul\x00esc\x1b[2J",
        "bad \ufffd\ufffd utf8",
        "lone\rcr",
    ]
    follower.close()


def test_long_line_is_cut_with_marker(tmp_path: Path) -> None:
    """A line over max_line keeps max_line bytes and says how many bytes were cut."""
    path = tmp_path / "a.log"
    path.write_bytes(b"")
    follower, _ = started(path, max_line=1024)
    append(path, b"x" * 5000 + b"\nshort\n")
    lines = follower.poll(0.1).lines
    assert lines[0] == "x" * 1024 + " …[logtv: 3,976 bytes cut]"
    assert lines[1] == "short"
    follower.close()


def test_endless_line_keeps_memory_bounded(tmp_path: Path) -> None:
    """10 MB with no newline holds at most max_line bytes, then ends as one cut line."""
    path = tmp_path / "a.log"
    path.write_bytes(b"")
    follower, _ = started(path, max_line=4096)
    for _ in range(10):
        append(path, b"y" * 1_000_000)
        assert follower.poll(0.1).lines == []
        assert len(follower._partial) <= 4097
    append(path, b"\nnext\n")
    lines = follower.poll(0.2).lines
    assert lines == ["y" * 4096 + " …[logtv: 9,995,904 bytes cut]", "next"]
    follower.close()


def test_rename_rotation_reads_old_file_to_end(tmp_path: Path) -> None:
    """Lines written before a rename are read from the old file, then the new one from byte 0."""
    path = tmp_path / "a.log"
    path.write_bytes(b"")
    follower, _ = started(path)
    append(path, b"one\ntwo\n")
    os.rename(path, tmp_path / "a.log.1")
    append(tmp_path / "a.log.1", b"three (late write to the old file)\n")
    path.write_bytes(b"four\n")
    polled = follower.poll(0.1)
    assert polled.lines == ["one", "two", "three (late write to the old file)", "four"]
    assert [e for _, e, _ in polled.events] == ["rotated"]
    append(path, b"five\n")
    assert follower.poll(0.2).lines == ["five"]
    follower.close()


def test_rename_then_create_later_is_one_rotation(tmp_path: Path) -> None:
    """A poll between logrotate's rename and its create sees a rotation, not a vanished file."""
    path = tmp_path / "a.log"
    path.write_bytes(b"")
    follower, _ = started(path)
    append(path, b"old\n")
    os.rename(path, tmp_path / "a.log.1")
    assert follower.poll(0.1).lines == ["old"]
    append(tmp_path / "a.log.1", b"late\n")
    path.write_bytes(b"new\n")
    polled = follower.poll(0.5)
    assert polled.lines == ["late", "new"]
    assert [e for _, e, _ in polled.events] == ["rotated"]
    follower.close()


def test_truncation_restarts_from_zero(tmp_path: Path) -> None:
    """`: > file` (copytruncate) makes the follower read the file again from byte 0."""
    path = tmp_path / "a.log"
    path.write_bytes(b"")
    follower, _ = started(path)
    append(path, b"a\nb\nc\n")
    assert follower.poll(0.1).lines == ["a", "b", "c"]
    with open(path, "r+b") as handle:
        handle.truncate(0)
    append(path, b"d\n")
    polled = follower.poll(0.2)
    assert polled.lines == ["d"]
    assert [e for _, e, _ in polled.events] == ["truncated"]
    follower.close()


def test_truncation_then_regrowth_is_seen_by_fingerprint(tmp_path: Path) -> None:
    """A truncated file that regrew past our offset before we looked is still read from 0."""
    path = tmp_path / "a.log"
    path.write_bytes(b"")
    follower, _ = started(path)
    append(path, b"first version of the file\n")
    assert follower.poll(0.1).lines == ["first version of the file"]
    with open(path, "r+b") as handle:
        handle.truncate(0)
    append(path, b"SECOND version, written after the truncation, and longer\n")
    polled = follower.poll(0.2)
    assert [e for _, e, _ in polled.events] == ["truncated"]
    assert polled.lines == ["SECOND version, written after the truncation, and longer"]
    follower.close()


def test_deleted_then_recreated(tmp_path: Path) -> None:
    """A deleted file goes missing; a new file at the path is followed from byte 0."""
    path = tmp_path / "a.log"
    path.write_bytes(b"")
    follower, _ = started(path)
    append(path, b"before\n")
    path.unlink()
    polled = follower.poll(0.1)
    assert (polled.lines, polled.events) == (["before"], [])  # maybe a rotation in progress
    polled = follower.poll(1.2)
    assert [e for _, e, _ in polled.events] == ["vanished"]
    assert follower.state == MISSING
    path.write_bytes(b"after\n")
    polled = follower.poll(0.2)
    assert (polled.lines, polled.events, follower.state) == (
        ["after"],
        [(0, "appeared", FOLLOWING)],
        FOLLOWING,
    )
    follower.close()


def test_missing_at_start_then_appears(tmp_path: Path) -> None:
    """A file missing at start is followed from byte 0 once it exists."""
    path = tmp_path / "later.log"
    follower, backlog = started(path, backlog=10)
    assert (backlog, follower.state) == ([], MISSING)
    assert follower.poll(0.1).lines == []
    path.write_bytes(b"hello\n")
    polled = follower.poll(0.2)
    assert (polled.lines, polled.events) == (["hello"], [(0, "appeared", FOLLOWING)])
    follower.close()


def test_fifo_and_directory_are_refused_without_blocking(tmp_path: Path) -> None:
    """A FIFO or a directory is never opened for reading in a way that blocks: it is unreadable."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path):
        follower, _ = started(path)
        assert follower.state == UNREADABLE
        assert follower.problem and (
            "regular" in follower.problem or "directory" in follower.problem
        )
        follower.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_then_readable(tmp_path: Path) -> None:
    """Permission denied is a state that is retried, not a crash."""
    path = tmp_path / "secret.log"
    path.write_bytes(b"x\n")
    path.chmod(0)
    follower, _ = started(path)
    assert follower.state == UNREADABLE
    path.chmod(0o644)
    append(path, b"y\n")
    polled = follower.poll(0.1)
    assert follower.state == FOLLOWING
    assert polled.lines == ["x", "y"]
    follower.close()
