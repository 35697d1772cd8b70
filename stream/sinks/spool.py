"""A durable on-disk spool of line protocol that could not be written to InfluxDB.

A batch that still fails after its retries is appended here (and fsync'ed)
instead of being dropped; :meth:`Spool.replay` writes it back later.

Layout of the spool directory (one directory may be shared by several processes
on one host):

- ``<precision>.<pid>.<token>.lp.open`` -- the segment this process appends to
  (append-only, one batch = a run of ``\\n``-terminated lines, fsync after each);
- ``<precision>.<pid>.<token>.lp`` -- a sealed segment, ready for replay;
- ``<precision>.<pid>.<token>.lp.replaying.<pid>`` -- a segment claimed by one
  replaying process (claims are atomic renames, so two processes never replay
  the same file at once);
- ``rejected/`` -- batches the server refused as malformed (HTTP 400). Kept for
  people to inspect; never replayed automatically because they would fail again.

A crash can leave a half-written last line in an open segment: replay ignores
a final line without its ``\\n``. Replaying a segment twice (a crash between the
write and the delete) is harmless because InfluxDB points are idempotent: the
same measurement, tag set and timestamp overwrite each other.
"""
from __future__ import annotations

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
SEALED_SUFFIX = ".lp"
CLAIM_MARK = ".lp.replaying."


def _pid_alive(pid: int) -> bool:
    """True if a process with this id runs on this host (or we may not signal it)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class SpoolStatus:
    """What is waiting in the spool: sealed + open segments, and rejected batches."""

    pending_files: int
    pending_points: int
    rejected_files: int


class Spool:
    """Append-only, fsync'ed files of line protocol, replayed in order of creation."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._open: dict[str, Path] = {}  # precision -> this process's open segment
        self._recover_orphans()

    # ---- writing ----------------------------------------------------------
    def append(self, precision: str, lines: list[str]) -> None:
        """Append one batch durably (write + flush + fsync) before returning."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if not lines:
            return
        data = ("\n".join(lines) + "\n").encode("utf-8")
        with self._lock:
            path = self._open.get(precision)
            if path is None:
                path = self.directory / f"{precision}.{os.getpid()}.{uuid.uuid4().hex[:12]}{OPEN_SUFFIX}"
                self._open[precision] = path
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            self._fsync_dir()

    def reject(self, precision: str, lines: list[str], reason: str) -> Path:
        """Keep a batch the server refused as malformed, with the server's reason, for inspection."""
        folder = self.directory / "rejected"
        folder.mkdir(exist_ok=True)
        path = folder / f"{precision}.{os.getpid()}.{uuid.uuid4().hex[:12]}.lp"
        body = "".join(f"# {r}\n" for r in reason.splitlines()) + "\n".join(lines) + "\n"
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        return path

    def seal(self) -> None:
        """Close this process's open segments so that the next replay picks them up."""
        with self._lock:
            for path in self._open.values():
                if path.exists():
                    path.rename(path.with_name(path.name[: -len(OPEN_SUFFIX)] + SEALED_SUFFIX))
            self._open.clear()
            self._fsync_dir()

    # ---- reading ----------------------------------------------------------
    def sealed_files(self) -> list[Path]:
        """Sealed segments, oldest first."""
        files = [p for p in self.directory.iterdir() if p.is_file() and p.name.endswith(SEALED_SUFFIX)]
        return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))

    def status(self) -> SpoolStatus:
        """Counts for stats and dashboards (reads the files: not for the hot path)."""
        pending = [p for p in self.directory.iterdir() if p.is_file()
                   and (p.name.endswith(SEALED_SUFFIX) or p.name.endswith(OPEN_SUFFIX) or CLAIM_MARK in p.name)]
        points = sum(len(read_lines(p)) for p in pending)
        rejected_dir = self.directory / "rejected"
        rejected = len(list(rejected_dir.iterdir())) if rejected_dir.is_dir() else 0
        return SpoolStatus(pending_files=len(pending), pending_points=points, rejected_files=rejected)

    def replay(self, write: Callable[[str, list[str]], None], batch_size: int = 5000) -> int:
        """Seal, then write every sealed segment through ``write(precision, lines)``.

        A segment is deleted only after all its chunks were written. The first
        failure stops the replay, puts the segment back and re-raises. Returns
        the number of points replayed.
        """
        self.seal()
        replayed = 0
        for path in self.sealed_files():
            claimed = path.with_name(path.name[: -len(SEALED_SUFFIX)] + f"{CLAIM_MARK}{os.getpid()}")
            try:
                path.rename(claimed)
            except FileNotFoundError:  # another process claimed it first
                continue
            precision = claimed.name.split(".", 1)[0]
            lines = read_lines(claimed)
            try:
                for i in range(0, len(lines), batch_size):
                    write(precision, lines[i:i + batch_size])
            except BaseException:
                claimed.rename(path)
                raise
            claimed.unlink()
            replayed += len(lines)
            log.info("replayed %s points from %s", len(lines), path.name)
        self._fsync_dir()
        return replayed

    # ---- internals --------------------------------------------------------
    def _recover_orphans(self) -> None:
        """Seal open segments and release claims left by processes that died on this host."""
        for p in self.directory.iterdir():
            if not p.is_file():
                continue
            name = p.name
            if name.endswith(OPEN_SUFFIX):
                pid = _pid_of(name.split(".")[1])
                if pid is not None and not _pid_alive(pid):
                    p.rename(p.with_name(name[: -len(OPEN_SUFFIX)] + SEALED_SUFFIX))
            elif CLAIM_MARK in name:
                base, _, pid_text = name.partition(CLAIM_MARK)
                pid = _pid_of(pid_text)
                if pid is not None and not _pid_alive(pid):
                    p.rename(p.with_name(base + SEALED_SUFFIX))

    def _fsync_dir(self) -> None:
        """Make renames and new files durable (the directory entry is data too)."""
        try:
            fd = os.open(self.directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)


def _pid_of(text: str) -> int | None:
    return int(text) if text.isdigit() else None


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
