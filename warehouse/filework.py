"""The loader's file work: fetch a zone file, gunzip, validate and encode its lines.

It runs in the loader's own process (a prefetch thread) or in worker processes started
through a forkserver. A worker never outlives the loader: see :func:`init_worker`.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
import time

from sluice.errors import ManifestError
from sluice.zone import gunzip
from sluice.zonestore import Zone
from warehouse.models import ManifestEntry, TargetTable
from warehouse.rows import EncodedBatch, encode_file

log = logging.getLogger(__name__)

_worker_zone: Zone | None = None
"""The zone of this worker process (set once by :func:`init_worker`)."""


PR_SET_PDEATHSIG = 1


def init_worker(zone: Zone, loader_pid: int) -> None:
    """Start a file worker: it must not outlive the loader.

    A worker's parent is the forkserver, which exits when the loader does; the kernel
    kills the worker when its parent dies (``PR_SET_PDEATHSIG``, Linux), and a watch
    thread covers the other systems (and the race before the call): once the loader's
    process is gone, the worker exits at once.
    """
    global _worker_zone
    _worker_zone = zone
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError) as exc:
        log.debug("PR_SET_PDEATHSIG is not available: %s", exc)
    parent = os.getppid()
    threading.Thread(
        target=_watch_parent, args=(parent, loader_pid), name="sluice-parent-watch", daemon=True
    ).start()


def _watch_parent(parent: int, loader_pid: int) -> None:
    while True:
        if os.getppid() != parent or not _alive(loader_pid):
            os._exit(1)
        time.sleep(0.5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_and_encode_in_worker(table: TargetTable, entry: ManifestEntry) -> EncodedBatch | None:
    """:func:`read_and_encode` with the zone this worker was started with."""
    assert _worker_zone is not None, "worker started without its zone"
    return read_and_encode(_worker_zone, table, entry)


def read_and_encode(zone: Zone, table: TargetTable, entry: ManifestEntry) -> EncodedBatch | None:
    """Fetch one zone file, decompress it, validate and encode its lines.

    ``None`` when an optional (``mandatory: false``) file is missing. Runs in a worker
    process when the loader has several.
    """
    try:
        data = gunzip(zone.read(entry.url), entry.url)
    except ManifestError:
        if entry.mandatory:
            raise
        return None
    return encode_file(table, data, source=entry.url)
