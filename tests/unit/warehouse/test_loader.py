"""The loader on the memory warehouse and an in-memory zone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sluice.config import ZoneSettings
from tests.unit.warehouse.contract import ft_row, ic_row
from tests.unit.warehouse.zonefixtures import DirectoryZone, ndjson_gz, put_batch
from warehouse.config import WarehouseSettings
from warehouse.exceptions import WarehouseDataError, WarehouseUnavailableError
from warehouse.loader import Loader, LoaderOptions, auto_workers
from warehouse.memory import MemoryWarehouse
from warehouse.models import LoadState, TargetTable, load_id_for
from warehouse.zone import MemoryZone, ZoneObject, parse_manifest

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


def test_loads_every_manifest_once(wh: MemoryWarehouse, zone: MemoryZone) -> None:
    rows = [ft_row() for _ in range(5)]
    put_batch(zone, BUCKET, "financial-transaction", "b1", [rows[:3], rows[3:]])
    put_batch(zone, BUCKET, "insurance-claim", "b2", [[ic_row()]])
    loader = make_loader(wh, zone)
    summary = loader.run_once()
    assert [o.state for o in summary.outcomes] == [LoadState.COMPLETED, LoadState.COMPLETED]
    assert summary.totals()["inserted"] == 6
    assert wh.count("financial_transactions") == 5 and wh.count("insurance_claims") == 1
    assert wh.count("load_audit") == 3
    # the same manifests again: no new rows, no new audit rows (a fresh loader, too)
    assert make_loader(wh, zone).run_once().outcomes == []
    assert wh.count("financial_transactions") == 5 and wh.count("load_audit") == 3


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
    from warehouse.zone import build_manifest

    url2 = f"s3://{BUCKET}/manifests/financial-transaction/rewrite.manifest"
    zone.write(url2, build_manifest(manifest.entries))
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


def test_orphan_files_get_a_loader_manifest(wh: MemoryWarehouse, zone: MemoryZone) -> None:
    put_batch(zone, BUCKET, "financial-transaction", "b1", [[ft_row()]])
    orphan = f"s3://{BUCKET}/clean/event_type=insurance-claim/dt=2026-11-22/lost.gz"
    zone.write(orphan, ndjson_gz([ic_row()]))
    loader = make_loader(wh, zone, orphan_min_age=0)
    found = loader.orphan_files(now=datetime.now(UTC) + timedelta(hours=1))
    assert list(found) == [IC] and [e.url for e in found[IC]] == [orphan]
    summary = loader.run_once(include_orphans=True)
    assert summary.totals()["inserted"] == 2
    assert any("/loader-" in u for u in zone.objects)
    assert (
        json.loads(zone.objects[next(u for u in zone.objects if "/loader-" in u)])["entries"][0][
            "url"
        ]
        == orphan
    )


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
    loader = make_loader(wh, zone)
    put_batch(zone, BUCKET, "financial-transaction", "f1", [[ft_row()]])
    passes = []
    for summary in loader.follow(interval=0, stop=lambda: len(passes) >= 2):
        passes.append(summary)
        put_batch(zone, BUCKET, "financial-transaction", f"f{len(passes) + 1}", [[ft_row()]])
    assert [len(p.outcomes) for p in passes] == [1, 1]
    assert wh.count("financial_transactions") == 2


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
