"""Reading log files: merged in timestamp order, or followed like ``tail -F``.

Poll-based (no inotify dependency): a followed file survives rotation (supervisord renames
``broker.log`` to ``broker.log.1`` and opens a new one), truncation, deletion, and files
that appear later (a pool scaled up). Memory stays bounded: files are streamed in chunks
and merged lazily, never loaded whole.
"""

from __future__ import annotations

import heapq
import itertools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from broker.log_records import LogRecord, parse_line

#: Bytes read from a file at a time.
READ_CHUNK_BYTES = 64 * 1024
#: A line longer than this is cut into pieces of this size (the rest shows as raw lines).
MAX_LINE_BYTES = 1024 * 1024
#: How often a follower looks for new lines, rotated and new files.
FOLLOW_POLL_S = 0.2
#: Most records a follower hands over at once (the output is flushed after each batch).
MAX_BATCH_RECORDS = 1000
#: Log files ``seawall logs`` never reads by default: supervisord's own log is not JSON.
EXCLUDED_NAMES = frozenset({"supervisord.log"})


class LogFile:
    """One log file, read from where it was left, reopened when it is replaced or truncated."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.source = str(path)
        self._handle: BinaryIO | None = None
        self._identity: tuple[int, int] | None = None
        self._partial = b""

    @property
    def is_open(self) -> bool:
        return self._handle is not None

    def open(self, at_end: bool = False) -> bool:
        """Open the file (at its end for a follower); False if it does not exist (yet)."""
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return False
        stat = os.fstat(handle.fileno())
        self._handle, self._identity, self._partial = handle, (stat.st_dev, stat.st_ino), b""
        if at_end:
            handle.seek(0, os.SEEK_END)
        return True

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._handle = None

    def lines(self, final: bool) -> Iterator[str]:
        """Complete lines written since the last call, streamed in chunks.

        ``final`` also yields a last line that has no newline yet (the file is read once);
        a follower keeps it until the rest of it arrives.
        """
        handle = self._handle
        if handle is None:
            return
        while chunk := handle.read(READ_CHUNK_BYTES):
            pieces = (self._partial + chunk).split(b"\n")
            self._partial = pieces.pop()
            for piece in pieces:
                yield _decode(piece)
            while len(self._partial) >= MAX_LINE_BYTES:
                yield _decode(self._partial[:MAX_LINE_BYTES])
                self._partial = self._partial[MAX_LINE_BYTES:]
        if final and self._partial:
            yield _decode(self._partial)
            self._partial = b""

    def records(self, final: bool) -> Iterator[LogRecord]:
        for line in self.lines(final):
            yield parse_line(line, self.source)

    def changed_on_disk(self) -> str | None:
        """``"replaced"``, ``"truncated"``, ``"gone"`` or None: what happened to the path since open."""
        if self._handle is None:
            return None
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return "gone"
        if (stat.st_dev, stat.st_ino) != self._identity:
            return "replaced"
        if stat.st_size < self._handle.tell():
            return "truncated"
        return None

    def rewind(self) -> None:
        if self._handle is not None:
            self._handle.seek(0)
        self._partial = b""


def _decode(line: bytes) -> str:
    return line.rstrip(b"\r").decode("utf-8", errors="replace")


@dataclass
class LogSources:
    """The files to read: paths named on the command line, and directories whose ``*.log``
    files are read (looked at again while following, so new files join)."""

    paths: list[Path] = field(default_factory=list)
    directories: list[Path] = field(default_factory=list)

    def current_paths(self) -> list[Path]:
        found = list(self.paths)
        for directory in self.directories:
            found += sorted(path for path in directory.glob("*.log")
                            if path.name not in EXCLUDED_NAMES and path.is_file())
        unique: dict[Path, Path] = {}  # a file named twice (or through a symlink) is read once
        for path in found:
            unique.setdefault(path.resolve(), path)
        return list(unique.values())


def _merge_key(last_seen: dict[str, float]) -> Callable[[LogRecord], float]:
    """Sort key of a record: its timestamp; a raw line sorts with the line before it in its file."""

    def key(record: LogRecord) -> float:
        if record.timestamp is not None:
            last_seen[record.source] = record.timestamp.timestamp()
        return last_seen.get(record.source, float("-inf"))

    return key


def merged_records(files: list[LogFile], final: bool = True) -> Iterator[LogRecord]:
    """Every line of ``files`` (already open), interleaved in timestamp order.

    Each file is assumed in order (a process writes its own lines in order); a stable
    k-way merge keeps equal times in file order and holds one line per file in memory.
    """
    last_seen: dict[str, float] = {}
    return heapq.merge(*(log_file.records(final) for log_file in files), key=_merge_key(last_seen))


class Follower:
    """``tail -F`` over several files: yields new records in arrival order, forever."""

    def __init__(self, sources: LogSources, files: list[LogFile] | None = None,
                 poll_s: float = FOLLOW_POLL_S, sleep: Callable[[float], None] = time.sleep) -> None:
        self.sources = sources
        self.poll_s = poll_s
        self._sleep = sleep
        self._files: dict[Path, LogFile] = {log_file.path: log_file for log_file in files or []}
        for path in sources.current_paths():
            if path not in self._files:
                log_file = self._files[path] = LogFile(path)
                log_file.open(at_end=True)  # present at start: only what comes next

    def poll(self) -> Iterator[LogRecord]:
        """The records written since the last poll, across every file: one pass, streamed."""
        for path in self.sources.current_paths():
            if path not in self._files:
                self._files[path] = LogFile(path)  # appeared since: read from its start
        for log_file in self._files.values():
            yield from self._poll_file(log_file)

    def _poll_file(self, log_file: LogFile) -> Iterator[LogRecord]:
        if not log_file.is_open:
            if log_file.open():
                yield from log_file.records(final=False)
            return
        yield from log_file.records(final=False)
        change = log_file.changed_on_disk()
        if change == "truncated":
            log_file.rewind()
            yield from log_file.records(final=False)
        elif change in ("replaced", "gone"):
            yield from log_file.records(final=True)  # what was written before the rename
            log_file.close()
            if change == "replaced" and log_file.open():
                yield from log_file.records(final=False)

    def batches(self) -> Iterator[list[LogRecord]]:
        """Non-empty lists of new records (at most MAX_BATCH_RECORDS each), forever; sleeps
        ``poll_s`` after a poll that found nothing."""
        while True:
            records = self.poll()
            found = False
            while batch := list(itertools.islice(records, MAX_BATCH_RECORDS)):
                found = True
                yield batch
            if not found:
                self._sleep(self.poll_s)

    def close(self) -> None:
        for log_file in self._files.values():
            log_file.close()
