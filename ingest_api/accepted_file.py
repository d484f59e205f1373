"""The ``file`` accepted log: NDJSON appended to one file, shared by several processes.

Invariants:

- The file is opened with ``O_APPEND``: every write lands at the end of the file as it
  is at that moment, whichever process (uvicorn worker) writes.
- A request's lines are written with one ``os.write``. On a local filesystem Linux
  holds the file's lock for the whole write, so the lines of concurrent writers never
  interleave. (Not on NFS/EFS, where ``O_APPEND`` is not atomic: keep one file per
  host there.)
- Nothing is buffered in Python: when :meth:`FileAcceptedLog.record` returns, the lines
  are in the kernel, so a crash of the process after the ``202`` loses none of them.
  The kernel writes them to disk later (no ``fsync`` per request): a crash of the
  machine can lose the last seconds.
- The path is opened again when the file was moved or removed (log rotation), like
  :class:`logging.handlers.WatchedFileHandler`: one ``stat`` per write.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from ingest_api.base import ndjson
from ingest_api.exceptions import AcceptedLogError
from ingest_api.models import AcceptedEntry

OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
FILE_MODE = 0o640


class FileAcceptedLog:
    """Appends one NDJSON line per accepted event to :attr:`path`.

    Args:
        path: the file; created when missing (its directory must exist).
    """

    backend = "file"
    enabled = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self._name = os.fspath(path)
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        # True when a failed write stopped inside a line: the next write starts with a
        # newline so that the torn line does not swallow the next good one.
        self._torn = False
        self._lock = threading.Lock()

    def open(self) -> None:
        """Open (or create) the file now, so that a bad path is refused at startup.

        Raises:
            AcceptedLogError: the file cannot be opened for appending.
        """
        with self._lock:
            try:
                self._open()
            except OSError as exc:
                raise _error(self.path, exc) from exc

    def record(self, entries: Sequence[AcceptedEntry]) -> None:
        """Append the lines of ``entries`` with one write.

        Raises:
            AcceptedLogError: the file cannot be opened or written (``code``: the errno
                name, e.g. ``ENOSPC``).
        """
        if not entries:
            return
        data = ndjson(entries)
        with self._lock:
            try:
                fd = self._current()
                self._write(fd, b"\n" + data if self._torn else data)
            except OSError as exc:
                raise _error(self.path, exc) from exc

    def close(self) -> None:
        """Close the file (idempotent); a later ``record`` opens it again."""
        with self._lock:
            fd, self._fd, self._identity = self._fd, None, None
            if fd is not None:
                os.close(fd)

    def _current(self) -> int:
        """The open descriptor, opened again when the path names another file now."""
        fd = self._fd
        if fd is not None:
            try:
                st = os.stat(self._name)
            except FileNotFoundError:
                pass
            else:
                if (st.st_dev, st.st_ino) == self._identity:
                    return fd
        return self._open()

    def _open(self) -> int:
        fd = os.open(self._name, OPEN_FLAGS, FILE_MODE)
        st = os.fstat(fd)
        old, self._fd, self._identity = self._fd, fd, (st.st_dev, st.st_ino)
        self._torn = False
        if old is not None:
            os.close(old)
        return fd

    def _write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        done = 0
        try:
            while done < len(data):
                # One call writes everything on a local disk; a short write only
                # happens when the disk fills or a signal interrupts, and the rest
                # follows right after (no longer atomic, but complete).
                written = os.write(fd, view[done:])
                if written <= 0:
                    raise OSError(errno.EIO, "write returned no progress")
                done += written
        except OSError:
            if done:
                self._torn = True
            raise
        self._torn = False


def _error(path: Path, exc: OSError) -> AcceptedLogError:
    code = errno.errorcode.get(exc.errno, type(exc).__name__) if exc.errno else type(exc).__name__
    reason = exc.strerror or str(exc)
    return AcceptedLogError(f"cannot append to the accepted log {path}: {reason}", code=code)
