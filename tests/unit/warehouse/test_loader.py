"""The loader on the memory warehouse and an in-memory zone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sluice.config import ZoneSettings
from sluice.zone import parse_manifest
from sluice.zonestore import MemoryZone, ZoneObject
from tests.unit.warehouse.contract import ft_row, ic_row
from tests.unit.warehouse.zonefixtures import DirectoryZone, put_batch
from warehouse.config import WarehouseSettings
from warehouse.exceptions import WarehouseDataError, WarehouseUnavailableError
from warehouse.loader import Loader, LoaderOptions, auto_workers
from warehouse.memory import MemoryWarehouse
from warehouse.models import LoadState, TargetTable, load_id_for

FT = TargetTable.FINANCIAL_TRANSACTIONS
IC = TargetTable.INSURANCE_CLAIMS
BUCKET = "zone"


@pytest.fixture
def wh() -> MemoryWarehouse:
    w = MemoryWarehouse()
    w.migrate()
    return w


@pytest.fixture
def zone() -> MemoryZone:
    return MemoryZone()


def make_loader(wh: MemoryWarehouse, zone: Any, **opts: object) -> Loader:
    options = LoaderOptions(**{"retry_delays": (0.0, 0.0), **opts})  # type: ignore[arg-type]
    return Loader(
        wh,
        zone,
        zone_settings=ZoneSettings(s3_bucket=BUCKET),
        options=options,
        sleep=lambda s: None,
    )


def test_sweep_loads_every_clean_object_once(wh: MemoryWarehouse, zone: MemoryZone) -> None:
    rows = [ft_row() for _ in range(5)]
    put_batch(zone, BUCKET, "financial-transaction", "b1", [rows[:3], rows[3:]])
    put_batch(zone, BUCKET, "insurance-claim", "b2", [[ic_row()]])
    loader = make_loader(wh, zone, sweep_grace=0)
    summary = loader.run_once()
    # one job per target: the two financial files together
    assert [o.state for o in summary.outcomes] == [LoadState.COMPLETED, LoadState.COMPLETED]
    assert summary.totals()["inserted"] == 6
    assert wh.count("financial_transactions") == 5 and wh.count("insurance_claims") == 1
    assert wh.count("load_audit") == 3
    # again: nothing left (a fresh loader, too)
    assert make_loader(wh, zone, sweep_grace=0).run_once().outcomes == []
    assert wh.count("financial_transactions") == 5 and wh.count("load_audit") == 3


def test_sweep_waits_for_the_grace_age(wh: MemoryWarehouse, zone: MemoryZone) -> None:
    put_batch(zone, BUCKET, "insurance-claim", "b1", [[ic_row()]])
    loader = make_loader(wh, zone, sweep_grace=300)
    assert loader.pending_files() == []
    assert loader.run_once().outcomes == []
    later = datetime.now(UTC) + timedelta(minutes=6)
    assert [o.url for o in loader.pending_files(now=later)] == [
        f"s3://{BUCKET}/clean/event_type=insurance-claim/dt=2026-11-22/b1-0.gz"
    ]
    assert loader.sweep(now=later).totals()["inserted"] == 1
    assert loader.run_once(sweep=False).outcomes == []


def test_the_loader_writes_its_own_manifest(wh: MemoryWarehouse, zone: MemoryZone) -> None:
    put_batch(zone, BUCKET, "insurance-claim", "b1", [[ic_row()], [ic_row()]])
    summary = make_loader(wh, zone, sweep_grace=0).run_once()
    (outcome,) = summary.outcomes
    assert "/manifests/insurance-claim/loader-" in outcome.manifest_url
    entries = json.loads(zone.objects[outcome.manifest_url])["entries"]
    assert sorted(e["url"] for e in entries) == sorted(u for u in zone.objects if "/clean/" in u)


def test_a_bad_object_does_not_hold_back_the_others(wh: MemoryWarehouse, zone: MemoryZone) -> None:
    put_batch(zone, BUCKET, "insurance-claim", "b1", [[ic_row()], [ic_row()]])
    bad = f"s3://{BUCKET}/clean/event_type=insurance-claim/dt=2026-11-22/corrupt.gz"
    zone.write(bad, b"\x1f\x8b not gzip")
    loader = make_loader(wh, zone, sweep_grace=0)
    summary = loader.run_once()
    assert wh.count("insurance_claims") == 2
    states = [o.state for o in summary.outcomes]
    assert states.count(LoadState.FAILED) == 2  # the group, then the bad file alone
    # the bad file's own job failed for good: later sweeps leave it to `load --status`
    assert loader.pending_files() == []
    assert make_loader(wh, zone, sweep_grace=0).run_once().outcomes == []


def s3_event(*urls: str) -> str:
    records = []
    for url in urls:
        bucket, key = url[len("s3://") :].split("/", 1)
        records.append(
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1}},
            }
        )
    return json.dumps({"Records": records})


def test_notifications_are_loaded_and_deleted(wh: MemoryWarehouse, zone: MemoryZone) -> None:
    from warehouse.queue import MemoryQueue

    queue = MemoryQueue()
    put_batch(zone, BUCKET, "financial-transaction", "b1", [[ft_row()], [ft_row()]])
    urls = sorted(u for u in zone.objects if "/clean/" in u)
    queue.send(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET}))
    queue.send(s3_event(urls[0]))
    queue.send(s3_event(urls[1]))
    queue.send(s3_event(f"s3://{BUCKET}/errors/processing-failed/2026/11/22/03/x.gz"))
    loader = make_loader(wh, zone, sweep=False)
    loader.queue = queue
    summary = loader.run_once()
    assert summary.messages == 4 and summary.messages_deleted == 4 and queue.messages == []
    assert wh.count("financial_transactions") == 2
    # a redelivered notification is done without loading anything again
    queue.send(s3_event(urls[0]))
    assert loader.run_once().outcomes == [] and queue.messages == []
    assert wh.count("load_audit") == 2


def test_a_notification_whose_load_failed_stays_queued(
    wh: MemoryWarehouse, zone: MemoryZone
) -> None:
    from warehouse.queue import MemoryQueue

    queue = MemoryQueue()
    put_batch(zone, BUCKET, "financial-transaction", "b1", [[ft_row()]])
    (url,) = [u for u in zone.objects if "/clean/" in u]
    queue.send(s3_event(url))
    queue.send("not an s3 event")
    loader = make_loader(wh, zone, sweep=False, retry_delays=())
    loader.queue = queue
    wh.fail_on["merge"] = WarehouseUnavailableError("down")
    loader.run_once()
    assert len(queue.messages) == 2
    del wh.fail_on["merge"]
    loader.run_once()
    assert [m.body for m in queue.messages] == ["not an s3 event"]  # it goes to the DLQ
    assert wh.count("financial_transactions") == 1


def test_same_manifest_twice_adds_nothing(wh: MemoryWarehouse, zone: MemoryZone) -> None:
    url = put_batch(zone, BUCKET, "financial-transaction", "b1", [[ft_row()]])
    loader = make_loader(wh, zone)
    first = loader.load_manifest(url)
    assert first is not None and first.state is LoadState.COMPLETED
    assert loader.load_manifest(url) is None
    rec = wh.load_record(load_id_for(url))
    assert rec is not None and (rec.state, rec.attempts, rec.rows_inserted) == (
        LoadState.COMPLETED,
        1,
        1,
    )


def test_file_in_two_manifests_is_loaded_once(wh: MemoryWarehouse, zone: MemoryZone) -> None:
    url1 = put_batch(zone, BUCKET, "financial-transaction", "b1", [[ft_row()], [ft_row()]])
    manifest = parse_manifest(zone.read(url1))
    from sluice.zone import manifest_body

    url2 = f"s3://{BUCKET}/manifests/financial-transaction/rewrite.manifest"
    zone.write(url2, manifest_body(manifest.entries))
    loader = make_loader(wh, zone)
    loader.load_manifest(url1)
    second = loader.load_manifest(url2)
    assert second is not None and second.state is LoadState.COMPLETED
    assert (second.files_loaded, second.files_skipped) == (0, 2)
    assert wh.count("load_audit") == 2


def test_malformed_line_is_quarantined_and_the_rest_loads(
    wh: MemoryWarehouse, zone: MemoryZone
) -> None:
    good = [ft_row(), ft_row()]
    url = put_batch(
        zone,
        BUCKET,
        "financial-transaction",
        "b1",
        [[good[0], b'{"event_id": "x", broken', good[1], ft_row(amount="1.23456")]],
    )
    outcome = make_loader(wh, zone).load_manifest(url)
    assert outcome is not None and outcome.state is LoadState.COMPLETED
    assert (outcome.rows_staged, outcome.rows_rejected) == (2, 2)
    assert [(r.line_no, r.reason.split(":")[0]) for r in outcome.rejected] == [
        (2, "malformed JSON"),
        (4, "amount"),
    ]
    assert outcome.rejected[0].source.endswith("b1-0.gz")
    assert sorted(wh.event_ids(FT)) == sorted(r["event_id"] for r in good)
    assert next((q.line_no, q.raw) for q in wh.state.quarantine) == (2, '{"event_id": "x", broken')
    (audit,) = [a for a in wh.state.audit]
    assert (audit.rows_read, audit.rows_staged, audit.rows_rejected) == (4, 2, 2)


def test_transient_failure_rolls_back_and_is_retried(wh: MemoryWarehouse, zone: MemoryZone) -> None:
    url = put_batch(zone, BUCKET, "financial-transaction", "b1", [[ft_row(), ft_row()]])
    wh.fail_on["merge"] = WarehouseUnavailableError("connection lost")
    loader = make_loader(wh, zone, retry_delays=())
    first = loader.load_manifest(url)
    assert first is not None and first.state is LoadState.RETRY and first.attempt == 1
    assert wh.count("financial_transactions") == 0 and wh.state.quarantine == []
    del wh.fail_on["merge"]
    second = loader.load_manifest(url)
    assert second is not None and second.state is LoadState.COMPLETED and second.attempt == 2
    assert wh.count("financial_transactions") == 2
    outcomes = [a.outcome for a in wh.state.audit]
    assert outcomes == [LoadState.RETRY, LoadState.COMPLETED]
    assert first.load_id == second.load_id


def test_retries_within_one_run_with_backoff(wh: MemoryWarehouse, zone: MemoryZone) -> None:
    url = put_batch(zone, BUCKET, "financial-transaction", "b1", [[ft_row()]])
    slept: list[float] = []

    class Flaky:
        calls = 0

        def read(self, u: str) -> bytes:
            Flaky.calls += 1
            if Flaky.calls == 2:  # the data file, first time
                from warehouse.exceptions import ZoneReadError

                raise ZoneReadError("throttled")
            return zone.read(u)

        def list(self, bucket: str, prefix: str) -> list[ZoneObject]:
            return zone.list(bucket, prefix)

        def write(self, u: str, data: bytes) -> None:
            zone.write(u, data)

    loader = Loader(
        wh,
        Flaky(),
        zone_settings=ZoneSettings(s3_bucket=BUCKET),
        options=LoaderOptions(retry_delays=(0.25, 1.0)),
        sleep=slept.append,
    )
    outcome = loader.load_manifest(url)
    assert outcome is not None and outcome.state is LoadState.COMPLETED and outcome.attempt == 2
    assert slept == [0.25]


def test_fatal_failure_marks_failed(wh: MemoryWarehouse, zone: MemoryZone) -> None:
    url = put_batch(zone, BUCKET, "financial-transaction", "b1", [[ft_row()]])
    wh.fail_on["merge"] = WarehouseDataError("value too long")
    outcome = make_loader(wh, zone).load_manifest(url)
    assert outcome is not None and outcome.state is LoadState.FAILED and outcome.attempt == 1
    assert "value too long" in (outcome.error or "")


def test_attempts_are_bounded(wh: MemoryWarehouse, zone: MemoryZone) -> None:
    url = put_batch(zone, BUCKET, "financial-transaction", "b1", [[ft_row()]])
    wh.fail_on["merge"] = WarehouseUnavailableError("down")
    outcome = make_loader(wh, zone, max_attempts=3, retry_delays=(0, 0, 0, 0)).load_manifest(url)
    assert outcome is not None and outcome.state is LoadState.FAILED and outcome.attempt == 3


def test_missing_mandatory_file_fails_the_load(wh: MemoryWarehouse, zone: MemoryZone) -> None:
    url = put_batch(zone, BUCKET, "financial-transaction", "b1", [[ft_row()]])
    del zone.objects[parse_manifest(zone.read(url)).file_urls[0]]
    outcome = make_loader(wh, zone).load_manifest(url)
    assert outcome is not None and outcome.state is LoadState.FAILED


def test_unreadable_manifest_is_reported(wh: MemoryWarehouse, zone: MemoryZone) -> None:
    url = f"s3://{BUCKET}/manifests/insurance-claim/bad.manifest"
    zone.write(url, b"not json")
    outcome = make_loader(wh, zone).load_manifest(url)
    assert outcome is not None and outcome.state is LoadState.FAILED and outcome.table is IC


def test_crash_mid_load_leaves_nothing_and_the_next_run_loads_once(
    wh: MemoryWarehouse, zone: MemoryZone
) -> None:
    url = put_batch(zone, BUCKET, "financial-transaction", "b1", [[ft_row(), ft_row()]])

    class Crash(BaseException):
        pass

    wh.fail_on["commit"] = Crash()
    with pytest.raises(Crash):
        make_loader(wh, zone).load_manifest(url)
    assert wh.count("financial_transactions") == 0
    rec = wh.load_record(load_id_for(url))
    assert rec is not None and rec.state is LoadState.RUNNING
    del wh.fail_on["commit"]
    assert make_loader(wh, zone).load_manifest(url) is None  # lease not yet expired
    outcome = make_loader(wh, zone, lease_seconds=0).load_manifest(url)
    assert outcome is not None and outcome.state is LoadState.COMPLETED and outcome.attempt == 2
    assert wh.count("financial_transactions") == 2


@pytest.fixture
def dir_zone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DirectoryZone:
    # worker processes unpickle the zone, so they must be able to import its module
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[3]))
    return DirectoryZone(tmp_path)


def test_worker_processes_give_the_same_result(
    wh: MemoryWarehouse, dir_zone: DirectoryZone
) -> None:
    rows = [ft_row() for _ in range(30)]
    url = put_batch(
        dir_zone,
        BUCKET,
        "financial-transaction",
        "par",
        [rows[:10], [*rows[10:20], b"{broken"], rows[20:]],
    )
    loader = make_loader(wh, dir_zone, workers=2)
    try:
        outcome = loader.load_manifest(url)
        # the same worker processes serve the next manifest and see its new files
        later = put_batch(
            dir_zone, BUCKET, "financial-transaction", "later", [[ft_row()], [ft_row()]]
        )
        second = loader.load_manifest(later)
    finally:
        loader.close()
    assert outcome is not None and outcome.state is LoadState.COMPLETED
    assert (outcome.files_loaded, outcome.rows_staged, outcome.rows_rejected) == (3, 30, 1)
    assert outcome.rejected[0].line_no == 11 and outcome.rejected[0].source.endswith("par-1.gz")
    assert second is not None and (second.files_loaded, second.rows_staged) == (2, 2)
    assert wh.count("financial_transactions") == 32
    assert [a.file_url.rsplit("/", 1)[1] for a in wh.state.audit] == [
        "par-0.gz",
        "par-1.gz",
        "par-2.gz",
        "later-0.gz",
        "later-1.gz",
    ]


def test_worker_failure_rolls_back(wh: MemoryWarehouse, dir_zone: DirectoryZone) -> None:
    url = put_batch(dir_zone, BUCKET, "financial-transaction", "gone", [[ft_row()], [ft_row()]])
    dir_zone._path(parse_manifest(dir_zone.read(url)).file_urls[1]).unlink()
    loader = make_loader(wh, dir_zone, workers=2)
    try:
        outcome = loader.load_manifest(url)
    finally:
        loader.close()
    assert outcome is not None and outcome.state is LoadState.FAILED
    assert wh.count("financial_transactions") == 0


def test_a_memory_zone_is_read_in_this_process(wh: MemoryWarehouse, zone: MemoryZone) -> None:
    """Its objects live here: a worker process would read a stale copy."""
    loader = make_loader(wh, zone, workers=2)
    try:
        for name in ("one", "two"):
            url = put_batch(zone, BUCKET, "financial-transaction", name, [[ft_row()], [ft_row()]])
            outcome = loader.load_manifest(url)
            assert outcome is not None and outcome.rows_staged == 2
        assert loader._pool is None
    finally:
        loader.close()


def test_follow_runs_passes_until_stopped(wh: MemoryWarehouse, zone: MemoryZone) -> None:
    loader = make_loader(wh, zone, sweep_grace=0, sweep_interval=0)
    put_batch(zone, BUCKET, "financial-transaction", "f1", [[ft_row()]])
    passes = []
    for summary in loader.follow(interval=0, stop=lambda: len(passes) >= 2):
        passes.append(summary)
        put_batch(zone, BUCKET, "financial-transaction", f"f{len(passes) + 1}", [[ft_row()]])
    assert [len(p.outcomes) for p in passes] == [1, 1]
    assert wh.count("financial_transactions") == 2


def test_follow_waits_out_an_outage_with_backoff(
    wh: MemoryWarehouse, zone: MemoryZone, caplog: pytest.LogCaptureFixture
) -> None:
    slept: list[float] = []
    loader = make_loader(wh, zone, sweep_grace=0, sweep_interval=0, outage_backoff=(1.0, 2.0))
    loader._sleep = slept.append
    put_batch(zone, BUCKET, "financial-transaction", "f1", [[ft_row()]])
    real_jobs = wh.jobs
    down = {"left": 3}

    def flaky(states: Any) -> Any:
        if down["left"]:
            down["left"] -= 1
            raise WarehouseUnavailableError("connection refused")
        return real_jobs(states)

    wh.jobs = flaky  # type: ignore[method-assign]
    passes = []
    with caplog.at_level("WARNING", logger="warehouse.loader"):
        for summary in loader.follow(interval=0, stop=lambda: len(passes) >= 1):
            passes.append(summary)
    assert slept[:3] == [1.0, 2.0, 2.0]
    lines = [r.getMessage() for r in caplog.records if "load pass" in r.getMessage()]
    assert len(lines) == 3 and all("connection refused" in line for line in lines)
    assert wh.count("financial_transactions") == 1


def test_dead_loaders_jobs_are_taken_over_after_the_lease(
    wh: MemoryWarehouse, zone: MemoryZone
) -> None:
    url = put_batch(zone, BUCKET, "financial-transaction", "b1", [[ft_row()]])
    loader = make_loader(wh, zone, lease_seconds=60, sweep=False)
    job = loader.read_job(url)
    assert wh.claim_load(job, lease_seconds=60, max_attempts=5) == 1  # then the loader died
    assert loader.run_once().outcomes == []  # lease still held
    from warehouse.leases import job_status

    (row,) = job_status(wh, lease_seconds=60)
    assert row["status"] == "running" and row["lease_expires_at"]
    (row,) = job_status(wh, lease_seconds=0)
    assert row["status"] == "stuck"
    fast = make_loader(wh, zone, lease_seconds=0, sweep=False)
    (outcome,) = fast.run_once().outcomes
    assert outcome.state is LoadState.COMPLETED and outcome.attempt == 2
    assert job_status(wh, lease_seconds=0) == []


@pytest.mark.parametrize(
    ("configured", "cpus", "on_lambda", "expected"),
    [
        ("auto", 2, False, 2),
        ("auto", 16, False, 4),
        ("auto", None, False, 1),
        ("auto", 1, False, 1),
        ("auto", 8, True, 1),
        (3, 1, False, 3),
        (1, 16, False, 1),
        (2, 8, True, 2),
    ],
)
def test_worker_count(
    configured: int | str, cpus: int | None, on_lambda: bool, expected: int
) -> None:
    assert auto_workers(configured, cpus=cpus, on_lambda=on_lambda) == expected


def test_worker_setting_reads_auto_or_a_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_WAREHOUSE_LOAD_WORKERS", "3")
    assert WarehouseSettings().warehouse_load_workers == 3
    monkeypatch.setenv("SLUICE_WAREHOUSE_LOAD_WORKERS", "auto")
    assert WarehouseSettings().warehouse_load_workers == "auto"
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "sluice-loader")
    assert LoaderOptions.from_settings(WarehouseSettings()).workers == 1
    for bad in ("0", "33", "many"):
        monkeypatch.setenv("SLUICE_WAREHOUSE_LOAD_WORKERS", bad)
        with pytest.raises(ValueError, match=r"load_workers|load workers"):
            WarehouseSettings()


def test_the_lease_is_renewed_while_a_load_runs_and_not_after(wh: MemoryWarehouse) -> None:
    import time

    from warehouse.leases import LeaseKeeper
    from warehouse.models import LoadJob, Manifest

    url = f"s3://{BUCKET}/manifests/financial-transaction/m.manifest"
    job = LoadJob(url, FT, Manifest((), url))
    assert wh.claim_load(job, lease_seconds=60, max_attempts=5) == 1
    before = wh.load_record(job.load_id)
    assert before is not None and before.updated_at is not None
    with LeaseKeeper(wh, job.load_id, 1, 0.05):
        time.sleep(0.3)
    during = wh.load_record(job.load_id)
    assert during is not None and during.updated_at is not None
    assert during.updated_at > before.updated_at
    time.sleep(0.2)
    after = wh.load_record(job.load_id)
    assert after is not None and after.updated_at == during.updated_at  # stopped
    # another attempt owns the job now: the old keeper gives up
    assert not wh.renew_lease(job.load_id, 2)
