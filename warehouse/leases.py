"""Load job leases: renewing a running job's lease, and the status of every job.

A running job's lease is renewed every third of its length while its loader lives; a
job whose lease ran out is *stuck* (its loader died) and the next pass of any loader
takes it over.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

from sluice.errors import SluiceError
from warehouse.base import Warehouse
from warehouse.models import LoadRecord, LoadState

log = logging.getLogger(__name__)


def lease_expired(rec: LoadRecord, now: datetime, lease: timedelta) -> bool:
    """True when a running job's lease ran out (its loader stopped renewing it)."""
    return rec.updated_at is None or now - rec.updated_at >= lease


class LeaseKeeper:
    """Renews a running job's lease from a thread while the load runs (own connection).

    A renewal that fails is logged and tried again at the next tick: the lease only
    runs out if renewals keep failing for a whole lease, which is what a dead or cut-off
    loader looks like to the others.
    """

    def __init__(self, wh: Warehouse | None, load_id: str, attempt: int, every: float) -> None:
        self._wh = wh
        self._load_id = load_id
        self._attempt = attempt
        self._every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LeaseKeeper:
        if self._wh is not None:
            self._thread = threading.Thread(
                target=self._run, name=f"sluice-lease-{self._load_id}", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._every + 10)

    def _run(self) -> None:
        assert self._wh is not None
        while not self._stop.wait(self._every):
            try:
                if not self._wh.renew_lease(self._load_id, self._attempt):
                    return
            except SluiceError as exc:
                log.warning("renewing the lease of %s failed: %s", self._load_id, exc)


def job_status(
    warehouse: Warehouse, *, lease_seconds: float, now: datetime | None = None
) -> list[dict[str, object]]:
    """Every job not completed, with its status: ``running`` (lease held), ``stuck``
    (running, lease expired: its loader died; the next pass takes it over), ``retry``,
    ``ready`` or ``failed``. JSON-safe."""
    now = now or datetime.now(UTC)
    lease = timedelta(seconds=lease_seconds)
    states = [LoadState.READY, LoadState.RUNNING, LoadState.RETRY, LoadState.FAILED]
    out: list[dict[str, object]] = []
    for rec in warehouse.jobs(states):
        status = rec.state.value
        expires = None
        if rec.state is LoadState.RUNNING:
            expires = (rec.updated_at + lease).isoformat() if rec.updated_at else None
            status = "stuck" if lease_expired(rec, now, lease) else "running"
        out.append(
            {
                "status": status,
                "load_id": rec.load_id,
                "manifest_url": rec.manifest_url,
                "table": rec.table.value,
                "state": rec.state.value,
                "attempts": rec.attempts,
                "lease_expires_at": expires,
                "last_error": rec.last_error,
            }
        )
    return out
