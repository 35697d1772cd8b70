"""A durable on-disk spool of line protocol that could not be written to InfluxDB.

A batch that still fails after its retries is appended here (and fsync'ed)
instead of being dropped; :meth:`Spool.replay` writes it back later.

Files in the spool directory, which several processes (or containers sharing a
volume on one host) may use at once:

- ``<precision>.<token>.lp.open`` -- a segment one process appends to (one batch
  = a run of ``\\n``-terminated lines, fsync after each). Its writer holds an
  exclusive ``flock`` on it for as long as it lives;
- ``<precision>.<token>.lp`` -- a sealed segment, ready for replay. A replaying
  process holds a ``flock`` on it while it writes it back, then deletes it;
- ``rejected/`` -- batches the server refused as malformed (HTTP 400). Kept for
  people to inspect; never replayed automatically: they would fail again.

Locks, not process ids, tell what is in use: an ``.open`` segment whose lock is
free belongs to a process that died, and is sealed by the next replay. A crash
can leave a half-written last line: replay ignores a final line without its
``\\n``. Replaying a segment twice (a crash between the write and the delete)
is harmless because InfluxDB points are idempotent: the same measurement, tag
set and timestamp overwrite each other.
"""
from __future__ import annotations

import fcntl
import logging
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

PRECISIONS = ("ms", "ns")
OPEN_SUFFIX = ".lp.open"
NEW_SUFFIX = ".lp.new"
SEALED_SUFFIX = ".lp"


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive lock on ``path``, or None if it is locked elsewhere or gone.

    Checks that the name still points at the locked inode (it may have been
    renamed or deleted by its previous holder in the meantime).
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.stat(path).st_ino != os.fstat(fd).st_ino:
            raise FileNotFoundError(path)
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)
        return None
    return fd


@dataclass(frozen=True)
class SpoolStatus:
    """What is waiting in the spool: open + sealed segments, and rejected batches."""

    pending_files: int
    pending_points: int
    rejected_files: int


class Spool:
    """Append-only, fsync'ed files of line protocol, replayed oldest first."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._open: dict[str, tuple[Path, int]] = {}  # precision -> (segment, locked fd)

    # ---- writing ----------------------------------------------------------
    def append(self, precision: str, lines: list[str]) -> None:
        """Append one batch durably (write + fsync) before returning."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if not lines:
            return
        data = ("\n".join(lines) + "\n").encode("utf-8")
        with self._lock:
            if precision not in self._open:
                self._open[precision] = self._new_segment(precision)
            _, fd = self._open[precision]
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)

    def reject(self, precision: str, lines: list[str], reason: str) -> Path:
        """Keep a batch the server refused as malformed, with the server's reason, for inspection."""
        folder = self.directory / "rejected"
        folder.mkdir(exist_ok=True)
        path = folder / f"{precision}.{uuid.uuid4().hex[:16]}.lp"
        body = "".join(f"# {r}\n" for r in reason.splitlines()) + "\n".join(lines) + "\n"
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        return path

    def seal(self) -> None:
        """Close this process's open segments, and orphans of dead processes, for the next replay."""
        with self._lock:
            for path, fd in self._open.values():
                self._seal(path, fd)
            self._open.clear()
        for path in self.directory.glob(f"*{OPEN_SUFFIX}"):
            fd = _try_lock(path)
            if fd is not None:  # nobody holds it: its writer is gone
                log.info("sealing orphaned spool segment %s", path.name)
                self._seal(path, fd)

    def close(self) -> None:
        """Seal this process's segments and release their locks."""
        self.seal()

    # ---- reading ----------------------------------------------------------
    def sealed_files(self) -> list[Path]:
        """Sealed segments, oldest first."""
        files = [p for p in self.directory.glob(f"*{SEALED_SUFFIX}") if p.is_file()]
        return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))

    def status(self) -> SpoolStatus:
        """Counts for stats and dashboards (reads the files: not for the hot path)."""
        pending = [p for p in self.directory.iterdir() if p.is_file()
                   and (p.name.endswith(SEALED_SUFFIX) or p.name.endswith(OPEN_SUFFIX))]
        points = sum(len(read_lines(p)) for p in pending)
        rejected_dir = self.directory / "rejected"
        rejected = len(list(rejected_dir.iterdir())) if rejected_dir.is_dir() else 0
        return SpoolStatus(pending_files=len(pending), pending_points=points, rejected_files=rejected)

    def replay(self, write: Callable[[str, list[str]], None], batch_size: int = 5000) -> int:
        """Seal, then write every sealed segment through ``write(precision, lines)``.

        A segment is deleted only after all its chunks were written; one that
        another process is replaying is skipped. The first failure stops the
        replay and re-raises (the segment stays). Returns points replayed.
        """
        self.seal()
        replayed = 0
        for path in self.sealed_files():
            fd = _try_lock(path)
            if fd is None:
                continue
            try:
                lines = read_lines(path)
                for i in range(0, len(lines), batch_size):
                    write(path.name.split(".", 1)[0], lines[i:i + batch_size])
                path.unlink()
            finally:
                os.close(fd)
            replayed += len(lines)
            log.info("replayed %s points from %s", len(lines), path.name)
        self._fsync_dir()
        return replayed

    # ---- internals --------------------------------------------------------
    def _new_segment(self, precision: str) -> tuple[Path, int]:
        """Create, lock, then publish under the .open name (so no one sees it unlocked)."""
        token = uuid.uuid4().hex[:16]
        tmp = self.directory / f"{precision}.{token}{NEW_SUFFIX}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        path = self.directory / f"{precision}.{token}{OPEN_SUFFIX}"
        os.rename(tmp, path)
        self._fsync_dir()
        return path, fd

    def _seal(self, path: Path, fd: int) -> None:
        try:
            if os.fstat(fd).st_size == 0:
                path.unlink()
            else:
                path.rename(path.with_name(path.name[: -len(OPEN_SUFFIX)] + SEALED_SUFFIX))
            self._fsync_dir()
        finally:
            os.close(fd)

    def _fsync_dir(self) -> None:
        """Make renames and new files durable (the directory entry is data too)."""
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_lines(path: Path) -> list[str]:
    """Complete lines of a segment (a trailing partial line from a crash is dropped, with a warning)."""
    data = path.read_bytes()
    if not data:
        return []
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    tail = lines.pop()  # "" when the file ends with a newline
    if tail:
        log.warning("ignoring a partial last line (%s bytes) in %s", len(tail), path)
    return [ln for ln in lines if ln and not ln.startswith("#")]
