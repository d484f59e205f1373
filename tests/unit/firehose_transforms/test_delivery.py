"""The local delivery with in-memory boundaries: buffering, invocation and retries,
the contract check, planning, write-then-checkpoint, crash and replay."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Mapping
from typing import Any

import pytest

from firehose_transforms.config import DeliverySettings
from firehose_transforms.delivery import (
    DeliveryBuffer,
    DeliveryRunner,
    EventContext,
    check_response,
    chunk_for_invocation,
    firehose_event,
    last_positions,
    partition_names,
    plan_batch,
    plan_raw_backup,
    validate_options,
)
from firehose_transforms.exceptions import (
    DeliveryConfigurationError,
    DeliveryError,
    InvocationFailed,
    TransformError,
)
from firehose_transforms.memory import MemoryCheckpointStore, MemoryObjectStore, MemorySource
from firehose_transforms.models import DeliveryOptions, SourceKind, SourceRecord
from sluice.config import EventType, ZoneSettings
from sluice.zone import RAW_CONTENT_TYPE, unframe_raw
from tests.unit.firehose_transforms import builders as b
from tests.unit.firehose_transforms.contract import (
    CheckpointStoreContract,
    ObjectStoreContract,
    SourceContract,
)

ARRIVAL = 1_763_781_605_000
ZONE = ZoneSettings(s3_bucket="zone")


def _records(payloads: list[bytes], partitions: int = 2, kind: str = "kafka") -> list[SourceRecord]:
    out = []
    for i, payload in enumerate(payloads):
        p = i % partitions
        label = f"p{p:04d}" if kind == "kafka" else f"shardId-{p:012d}"
        out.append(SourceRecord(label, str(100 + i // partitions), ARRIVAL + i, payload, key="k"))
    return out


def _transformer_invoker() -> Any:
    transformer = b.transformer()
    return transformer.handle


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _runner(
    source: MemorySource,
    store: MemoryObjectStore,
    *,
    invoker: Any = None,
    retries: int = 3,
    **options: Any,
) -> DeliveryRunner:
    opts = DeliveryOptions(
        source=SourceKind(source.kind),
        event_type=EventType.FINANCIAL_TRANSACTION,
        buffer_mib=options.pop("buffer_mib", 1),
        buffer_seconds=options.pop("buffer_seconds", 0),
        once=options.pop("once", True),
        idle_seconds=options.pop("idle_seconds", 0.0),
        **options,
    )
    return DeliveryRunner(
        opts,
        source=source,
        store=store,
        invoker=invoker or _transformer_invoker(),
        zone=ZONE,
        settings=DeliverySettings(firehose_invoke_retries=retries),
        sleep=lambda _s: None,
    )


def _clean_rows(store: MemoryObjectStore) -> list[dict[str, Any]]:
    rows = []
    for key in store.list_keys("clean/"):
        rows.extend(json.loads(line) for line in gzip.decompress(store.get(key)).splitlines())
    return rows


def _errors(store: MemoryObjectStore) -> list[dict[str, Any]]:
    out = []
    for key in store.list_keys("errors/"):
        out.extend(json.loads(line) for line in gzip.decompress(store.get(key)).splitlines())
    return out


# --------------------------------------------------------------------------- contracts


class TestMemoryObjectStore(ObjectStoreContract):
    @pytest.fixture
    def store(self) -> MemoryObjectStore:
        return MemoryObjectStore("zone")


class TestMemoryCheckpointStore(CheckpointStoreContract):
    @pytest.fixture
    def checkpoints(self) -> MemoryCheckpointStore:
        return MemoryCheckpointStore()


# --------------------------------------------------------------------------- buffering


class TestBuffer:
    def test_flushes_at_the_size_hint(self) -> None:
        buffer = DeliveryBuffer(max_bytes=100, interval=300)
        buffer.add(_records([b"x" * 60]), now=0)
        assert not buffer.due(0)
        buffer.add(_records([b"x" * 60]), now=1)
        assert buffer.due(1)

    def test_flushes_on_the_interval_even_without_new_data(self) -> None:
        buffer = DeliveryBuffer(max_bytes=10**6, interval=60)
        buffer.add(_records([b"x"]), now=100)
        assert not buffer.due(159)
        assert buffer.due(160)

    def test_empty_buffer_is_never_due(self) -> None:
        assert not DeliveryBuffer(max_bytes=1, interval=0).due(10**9)

    def test_poll_wait_never_passes_the_interval(self) -> None:
        buffer = DeliveryBuffer(max_bytes=10**6, interval=10)
        assert buffer.wait(now=0, ceiling=0.5) == 0.5
        buffer.add(_records([b"x"]), now=100)
        assert buffer.wait(now=109.8, ceiling=0.5) == pytest.approx(0.2)
        assert buffer.wait(now=200, ceiling=0.5) == 0.0

    def test_take_empties(self) -> None:
        buffer = DeliveryBuffer(max_bytes=10, interval=1)
        buffer.add(_records([b"abc"]), now=0)
        assert len(buffer.take()) == 1
        assert (buffer.records, buffer.size, buffer.started) == ([], 0, None)

    @pytest.mark.parametrize(("mib", "seconds"), [(0, 10), (129, 10), (5, -1), (5, 901)])
    def test_hints_out_of_range_are_refused(self, mib: int, seconds: int) -> None:
        with pytest.raises(DeliveryConfigurationError):
            validate_options(
                DeliveryOptions(
                    SourceKind.KAFKA,
                    EventType.INSURANCE_CLAIM,
                    buffer_mib=mib,
                    buffer_seconds=seconds,
                )
            )

    @pytest.mark.parametrize(("mib", "seconds"), [(1, 0), (128, 900)])
    def test_hints_at_the_limits_are_accepted(self, mib: int, seconds: int) -> None:
        validate_options(
            DeliveryOptions(
                SourceKind.KAFKA, EventType.INSURANCE_CLAIM, buffer_mib=mib, buffer_seconds=seconds
            )
        )


def test_chunks_respect_the_processor_buffer_and_keep_order() -> None:
    records = _records([b"x" * 1000] * 10)
    chunks = chunk_for_invocation(records, max_bytes=3000)
    assert [r for c in chunks for r in c] == records
    assert all(sum(len(r.value) + 400 for r in c) <= 3000 for c in chunks)
    assert (
        chunk_for_invocation(_records([b"x" * 10_000]), max_bytes=100)[0][0].value == b"x" * 10_000
    )


def test_last_positions_are_numeric_maxima_per_partition() -> None:
    records = [
        SourceRecord("p0000", "9", 0, b""),
        SourceRecord("p0000", "10", 0, b""),
        SourceRecord("p0001", "3", 0, b""),
    ]
    assert last_positions(records) == {"p0000": "10", "p0001": "3"}


# --------------------------------------------------------------------------- events, response check


@pytest.mark.parametrize("kind", ["kafka", "kinesis"])
def test_firehose_event_has_the_source_shape_and_round_trips(kind: str) -> None:
    records = _records([b.as_avro(b.transaction())], kind=kind)
    event = firehose_event(EventContext(kind=kind, stream="s", delivery_stream="d"), records)
    entry = event["records"][0]
    if kind == "kafka":
        assert "sourceMSKArn" in event and "kafkaRecordValue" in entry
        assert entry["mskRecordMetadata"] == {
            "offset": "100",
            "partitionId": "0",
            "approximateArrivalTimestamp": ARRIVAL,
        }
    else:
        assert "sourceKinesisStreamArn" in event and "data" in entry
        assert entry["kinesisRecordMetadata"]["shardId"] == "shardId-000000000000"
    response = _transformer_invoker()(event)
    outcomes = check_response(records, response, "kafkaRecordValue" if kind == "kafka" else "data")
    assert [o.result for o in outcomes] == ["Ok"]


class TestResponseCheck:
    records = _records([b"a", b"b"])

    def _ok(self, record_id: str) -> dict[str, Any]:
        return {
            "recordId": record_id,
            "result": "Ok",
            "data": "e30K",
            "metadata": {
                "partitionKeys": {"event_type": "financial-transaction", "dt": "2026-01-01"}
            },
        }

    @pytest.mark.parametrize(
        ("response", "code"),
        [
            ({}, "Lambda.InvalidOutput"),
            ({"records": "x"}, "Lambda.InvalidOutput"),
            (
                {
                    "records": [
                        {
                            "recordId": "p0000:100",
                            "result": "Ok",
                            "data": "e30K",
                            "metadata": {"partitionKeys": {"event_type": "t", "dt": "d"}},
                        }
                    ]
                },
                "Lambda.MissingRecordId",
            ),
            (
                {"records": [{"recordId": "nope", "result": "Ok", "data": ""}]},
                "Lambda.InvalidRecordId",
            ),
        ],
    )
    def test_contract_violations_fail_the_invocation(self, response: Any, code: str) -> None:
        with pytest.raises(InvocationFailed) as info:
            check_response(self.records, response, "data")
        assert info.value.code == code

    def test_duplicate_record_id(self) -> None:
        response = {"records": [self._ok("p0000:100"), self._ok("p0000:100")]}
        with pytest.raises(InvocationFailed) as info:
            check_response(self.records, response, "data")
        assert info.value.code == "Lambda.DuplicatedRecordId"

    @pytest.mark.parametrize(
        "bad",
        [
            {"result": "Maybe", "data": ""},
            {"result": "Ok", "data": "!!"},
            {"result": "Ok", "data": "e30K"},
            {"result": "Dropped"},
        ],
    )
    def test_bad_entries_fail_the_invocation(self, bad: dict[str, Any]) -> None:
        response = {"records": [{"recordId": "p0000:100", **bad}, self._ok("p0001:100")]}
        with pytest.raises(InvocationFailed) as info:
            check_response(self.records, response, "data")
        assert info.value.code == "Lambda.InvalidOutput"

    def test_processing_failed_reason_is_kept(self) -> None:
        data = base64.b64encode(
            b'{"errorCode":"unknown_currency","errorMessage":"currency XYZ"}'
        ).decode()
        response = {
            "records": [
                {"recordId": "p0000:100", "result": "ProcessingFailed", "data": data},
                {"recordId": "p0001:100", "result": "Dropped", "data": ""},
            ]
        }
        failed, dropped = check_response(self.records, response, "data")
        assert failed.error_code == "Lambda.ProcessingFailedStatus"
        assert failed.error_message == "unknown_currency: currency XYZ"
        assert dropped.result == "Dropped"


# --------------------------------------------------------------------------- planning


def test_plan_groups_by_partition_and_partition_keys() -> None:
    good = [b.as_json(b.transaction()) for _ in range(4)]
    records = _records([*good, b"garbage"], partitions=2)
    event = firehose_event(EventContext(kind="kafka", stream="topic", delivery_stream="d"), records)
    outcomes = check_response(records, _transformer_invoker()(event), "kafkaRecordValue")
    planned = plan_batch(outcomes, kind="kafka", source="topic", zone=ZONE, lambda_arn="arn")
    kinds = [p.kind for p in planned]
    assert kinds == ["clean", "clean", "error"]  # no manifest: Firehose writes none
    names = partition_names(records, kind="kafka", source="topic")
    assert (names["p0000"].first, names["p0000"].last) == ("100", "102")
    assert planned[0].key.endswith(f"/{names['p0000'].stem()}.gz")
    assert planned[1].key.endswith(f"/{names['p0001'].stem()}.gz")
    assert [p.rows for p in planned[:2]] == [2, 2]
    error = json.loads(gzip.decompress(planned[2].body))
    assert base64.b64decode(error["rawData"]) == b"garbage"
    assert error["errorMessage"].startswith("undecodable: ")


def test_plan_is_deterministic() -> None:
    records = _records([b.as_json(b.transaction()) for _ in range(3)])
    event = firehose_event(EventContext(kind="kafka", stream="t", delivery_stream="d"), records)
    outcomes = check_response(records, _transformer_invoker()(event), "kafkaRecordValue")
    first = plan_batch(outcomes, kind="kafka", source="t", zone=ZONE, lambda_arn="a")
    second = plan_batch(outcomes, kind="kafka", source="t", zone=ZONE, lambda_arn="a")
    assert [(p.key, p.body) for p in first] == [(p.key, p.body) for p in second]


def test_batch_with_nothing_ok_writes_no_manifest() -> None:
    records = _records([b"garbage"])
    event = firehose_event(EventContext(kind="kafka", stream="t", delivery_stream="d"), records)
    outcomes = check_response(records, _transformer_invoker()(event), "kafkaRecordValue")
    assert [
        p.kind for p in plan_batch(outcomes, kind="kafka", source="t", zone=ZONE, lambda_arn="a")
    ] == ["error"]


def test_raw_backup_plan_holds_every_record_per_partition_in_source_order() -> None:
    payloads = [b.as_avro(b.transaction()), b"garbage", b"", b.as_json(b.transaction())] * 2
    records = _records(payloads, partitions=2, kind="kinesis")
    planned = plan_raw_backup(list(reversed(records)), kind="kinesis", source="s", zone=ZONE)
    assert [p.kind for p in planned] == ["raw", "raw"]
    assert [p.content_type for p in planned] == [RAW_CONTENT_TYPE] * 2
    names = partition_names(records, kind="kinesis", source="s")
    assert planned[0].key == f"raw/2025/11/22/03/{names['shardId-000000000000'].stem()}.gz"
    assert planned[0].key.startswith("raw/2025/11/22/03/s-1-2025-11-22-03-20-05-")
    assert planned[1].key.endswith(f"/{names['shardId-000000000001'].stem()}.gz")
    bodies = [unframe_raw(gzip.decompress(p.body)) for p in planned]
    assert bodies == [payloads[0::2], payloads[1::2]]
    assert [p.rows for p in planned] == [4, 4]


def test_raw_backup_names_match_the_clean_and_error_names_of_the_batch() -> None:
    payloads = [b.as_json(b.transaction()), b"garbage", b.as_json(b.transaction()), b"x"]
    records = _records(payloads, partitions=2)
    event = firehose_event(EventContext(kind="kafka", stream="t", delivery_stream="d"), records)
    outcomes = check_response(records, _transformer_invoker()(event), "kafkaRecordValue")
    batch = plan_batch(outcomes, kind="kafka", source="t", zone=ZONE, lambda_arn="a")
    raw = plan_raw_backup(records, kind="kafka", source="t", zone=ZONE)
    stems = {p.key.rsplit("/", 1)[1] for p in batch if p.kind in ("clean", "error")}
    assert stems == {p.key.rsplit("/", 1)[1] for p in raw}
    again = plan_raw_backup(records, kind="kafka", source="t", zone=ZONE)
    assert [(p.key, p.body) for p in raw] == [(p.key, p.body) for p in again]


def test_raw_backup_keeps_kpl_user_records_in_subsequence_order() -> None:
    users = [
        SourceRecord("shardId-000000000000", "4954", ARRIVAL, f"u{i}".encode(), subsequence=i)
        for i in range(3)
    ]
    later = SourceRecord("shardId-000000000000", "4960", ARRIVAL + 5, b"later")
    records = [later, users[2], users[0], users[1]]
    (planned,) = plan_raw_backup(records, kind="kinesis", source="s", zone=ZONE)
    assert unframe_raw(gzip.decompress(planned.body)) == [b"u0", b"u1", b"u2", b"later"]
    names = partition_names(records, kind="kinesis", source="s")
    assert planned.key.endswith(f"/{names['shardId-000000000000'].stem()}.gz")
    assert (names["shardId-000000000000"].first, names["shardId-000000000000"].last) == (
        "4954",
        "4960",
    )


def test_raw_backup_plan_of_an_empty_batch_is_empty() -> None:
    assert plan_raw_backup([], kind="kafka", source="t", zone=ZONE) == []


# --------------------------------------------------------------------------- the runner


def _raw_records(store: MemoryObjectStore) -> list[bytes]:
    out: list[bytes] = []
    for key in store.list_keys("raw/"):
        out.extend(unframe_raw(gzip.decompress(store.get(key))))
    return out


class TestRawBackup:
    def test_every_source_record_is_backed_up_before_the_checkpoint(self) -> None:
        events = [b.transaction() for _ in range(4)]
        dup = b.as_avro(events[0])
        payloads = [
            *(b.as_avro(e) for e in events),
            dup,  # Dropped (duplicate)
            b.as_json(b.transaction(metadata={"test": "true"})),  # Dropped (test event)
            b"garbage",  # ProcessingFailed
            b.as_json(b.transaction(currency="XYZ")),  # ProcessingFailed
        ]
        source = MemorySource(_records(payloads, partitions=2), kind="kafka", name="topic")
        store = MemoryObjectStore("zone")
        raw_at_commit: list[list[bytes]] = []
        commit = source.commit

        def checking_commit(positions: Mapping[str, str]) -> None:
            raw_at_commit.append(sorted(_raw_records(store)))
            commit(positions)

        source.commit = checking_commit  # type: ignore[method-assign]
        summary = _runner(source, store, raw_backup=True).run()
        assert (summary.ok, summary.dropped, summary.failed) == (4, 2, 2)
        assert raw_at_commit == [sorted(payloads)]
        assert sorted(_raw_records(store)) == sorted(payloads)
        assert summary.raw_objects == store.list_keys("raw/")
        assert len(summary.raw_objects) == 2
        assert all(store.content_types[k] == RAW_CONTENT_TYPE for k in summary.raw_objects)
        assert summary.as_dict()["raw_objects"] == summary.raw_objects

    def test_the_backup_is_written_before_the_transform_runs(self) -> None:
        store = MemoryObjectStore("zone")
        seen: list[list[str]] = []

        def broken(event: dict[str, Any]) -> dict[str, Any]:
            seen.append(store.list_keys("raw/"))
            raise TransformError("boom")

        payloads = [b.as_avro(b.transaction()) for _ in range(3)]
        source = MemorySource(_records(payloads, partitions=1), kind="kinesis", name="s")
        summary = _runner(source, store, invoker=broken, retries=0, raw_backup=True).run()
        assert seen == [summary.raw_objects]
        assert _raw_records(store) == payloads
        assert summary.failed == 3

    def test_off_by_default_writes_nothing_under_raw(self) -> None:
        payloads = [b.as_avro(b.transaction()), b"garbage"]
        source = MemorySource(_records(payloads), kind="kafka", name="t")
        store = MemoryObjectStore("zone")
        summary = _runner(source, store).run()
        assert summary.records == 2
        assert store.list_keys("raw/") == [] and summary.raw_objects == []
        assert store.list_keys("clean/") and store.list_keys("errors/")

    @pytest.mark.parametrize(
        ("option", "setting", "on"),
        [(None, False, False), (None, True, True), (False, True, False), (True, False, True)],
    )
    def test_the_option_overrides_the_setting(
        self, option: bool | None, setting: bool, on: bool
    ) -> None:
        source = MemorySource(_records([b.as_avro(b.transaction())]), kind="kafka", name="t")
        store = MemoryObjectStore("zone")
        runner = DeliveryRunner(
            DeliveryOptions(
                SourceKind.KAFKA, EventType.FINANCIAL_TRANSACTION, once=True, raw_backup=option
            ),
            source=source,
            store=store,
            invoker=_transformer_invoker(),
            zone=ZONE,
            settings=DeliverySettings(firehose_raw_backup=setting),
            sleep=lambda _s: None,
        )
        runner.run()
        assert runner.raw_backup is on
        assert bool(store.list_keys("raw/")) is on

    def test_setting_is_read_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("SLUICE_FIREHOSE_RAW_BACKUP", "true")
        assert DeliverySettings().firehose_raw_backup is True
        monkeypatch.delenv("SLUICE_FIREHOSE_RAW_BACKUP")
        assert DeliverySettings().firehose_raw_backup is False

    def test_the_raw_prefix_comes_from_the_zone(self) -> None:
        source = MemorySource(_records([b"garbage"]), kind="kafka", name="t")
        store = MemoryObjectStore("zone")
        runner = DeliveryRunner(
            DeliveryOptions(
                SourceKind.KAFKA, EventType.FINANCIAL_TRANSACTION, once=True, raw_backup=True
            ),
            source=source,
            store=store,
            invoker=_transformer_invoker(),
            zone=ZoneSettings(s3_bucket="zone", s3_raw_prefix="backup/"),
            sleep=lambda _s: None,
        )
        runner.run()
        (key,) = store.list_keys("backup/")
        assert key.startswith("backup/2025/11/22/03/t-1-")
        assert store.list_keys("raw/") == []

    def test_crash_mid_batch_then_restart_rewrites_the_same_raw_keys(self) -> None:
        class Crash(BaseException):
            pass

        class CrashingStore(MemoryObjectStore):
            crash_at: str | None = "clean/"

            def put(self, key: str, body: bytes, content_type: str) -> None:
                if self.crash_at is not None and key.startswith(self.crash_at):
                    raise Crash  # the process dies after the backup, before the output
                super().put(key, body, content_type)

        payloads = [b.as_avro(b.transaction()) for _ in range(8)] + [b"garbage"]
        source = MemorySource(_records(payloads, partitions=3), kind="kafka", name="t")
        store = CrashingStore("zone")
        with pytest.raises(Crash):
            _runner(source, store, raw_backup=True).run()
        assert source.committed == {}
        before = {k: store.get(k) for k in store.list_keys("raw/")}
        assert len(before) == 3 and sorted(_raw_records(store)) == sorted(payloads)
        source.crash()
        store.crash_at = None
        store.puts.clear()
        summary = _runner(source, store, raw_backup=True).run()
        assert sorted(summary.raw_objects) == sorted(before)  # the same keys, rewritten
        assert {k: store.get(k) for k in store.list_keys("raw/")} == before
        assert sorted(_raw_records(store)) == sorted(payloads)
        assert source.committed


class TestRunner:
    def test_delivers_rows_and_errors_then_commits(self) -> None:
        events = [b.transaction() for _ in range(6)]
        payloads = [b.as_avro(e) for e in events] + [
            b"garbage",
            b.as_json(b.transaction(metadata={"test": "true"})),
        ]
        source = MemorySource(_records(payloads), kind="kafka", name="topic")
        store = MemoryObjectStore("zone")
        seen_at_commit: list[list[str]] = []
        commit = source.commit

        def checking_commit(positions: Mapping[str, str]) -> None:
            seen_at_commit.append(store.list_keys(""))
            commit(positions)

        source.commit = checking_commit  # type: ignore[method-assign]
        summary = _runner(source, store).run()
        assert (summary.records, summary.ok, summary.dropped, summary.failed) == (8, 6, 1, 1)
        assert sorted(r["event_id"] for r in _clean_rows(store)) == sorted(
            e["event_id"] for e in events
        )
        assert [e["errorCode"] for e in _errors(store)] == ["Lambda.ProcessingFailedStatus"]
        assert store.list_keys("manifests/") == []  # Firehose writes no manifest
        # every object existed before the checkpoint
        assert seen_at_commit == [store.list_keys("")]
        assert source.committed == {"p0000": "103", "p0001": "103"}
        assert source.closed

    def test_always_failing_invocation_sends_the_batch_to_errors_after_retries(self) -> None:
        calls: list[int] = []

        def broken(event: dict[str, Any]) -> dict[str, Any]:
            calls.append(1)
            raise TransformError("boom")

        payloads = [b.as_avro(b.transaction()) for _ in range(3)]
        source = MemorySource(_records(payloads), kind="kinesis", name="stream")
        store = MemoryObjectStore("zone")
        summary = _runner(source, store, invoker=broken).run()
        assert len(calls) == 4  # first attempt + 3 retries
        errors = _errors(store)
        assert summary.failed == 3 and len(errors) == 3
        assert {e["errorCode"] for e in errors} == {"Lambda.FunctionError"}
        assert {e["attemptsMade"] for e in errors} == {4}
        assert sorted(base64.b64decode(e["rawData"]) for e in errors) == sorted(payloads)
        assert store.list_keys("clean/") == [] and store.list_keys("manifests/") == []
        assert source.committed  # nothing lost: the records are in the error prefix

    def test_invocation_that_recovers_within_the_retries_delivers(self) -> None:
        inner = _transformer_invoker()
        calls: list[int] = []

        def flaky(event: dict[str, Any]) -> Mapping[str, Any]:
            calls.append(1)
            if len(calls) < 3:
                raise RuntimeError("throttled")
            return inner(event)

        source = MemorySource(_records([b.as_avro(b.transaction())]), kind="kafka", name="t")
        store = MemoryObjectStore("zone")
        summary = _runner(source, store, invoker=flaky).run()
        assert summary.ok == 1 and len(calls) == 3

    def test_invocation_answering_outside_the_contract_is_retried_then_errored(self) -> None:
        source = MemorySource(_records([b.as_avro(b.transaction())]), kind="kafka", name="t")
        store = MemoryObjectStore("zone")
        _runner(source, store, invoker=lambda event: {"records": []}, retries=1).run()
        errors = _errors(store)
        assert [(e["errorCode"], e["attemptsMade"]) for e in errors] == [
            ("Lambda.MissingRecordId", 2)
        ]

    def test_s3_failure_stops_without_checkpoint(self) -> None:
        class DownStore(MemoryObjectStore):
            def put(self, key: str, body: bytes, content_type: str) -> None:
                raise DeliveryError("s3 unreachable", code="s3_unreachable")

        source = MemorySource(_records([b.as_avro(b.transaction())]), kind="kafka", name="t")
        with pytest.raises(DeliveryError):
            _runner(source, DownStore("zone")).run()
        assert source.committed == {}
        assert source.closed

    def test_transient_s3_failure_is_retried(self) -> None:
        class FlakyStore(MemoryObjectStore):
            failures = 2

            def put(self, key: str, body: bytes, content_type: str) -> None:
                if self.failures:
                    self.failures -= 1
                    raise DeliveryError("slow down", code="SlowDown")
                super().put(key, body, content_type)

        source = MemorySource(_records([b.as_avro(b.transaction())]), kind="kafka", name="t")
        store = FlakyStore("zone")
        assert _runner(source, store).run().ok == 1
        assert len(_clean_rows(store)) == 1

    def test_crash_mid_batch_and_restart_loses_nothing_and_rewrites_the_same_keys(self) -> None:
        class Crash(BaseException):
            pass

        class CrashingStore(MemoryObjectStore):
            crash_after: int | None = 1

            def put(self, key: str, body: bytes, content_type: str) -> None:
                if self.crash_after is not None and len(self.puts) >= self.crash_after:
                    raise Crash  # the process dies between two writes of one batch
                super().put(key, body, content_type)

        events = [b.transaction() for _ in range(10)]
        source = MemorySource(
            _records([b.as_avro(e) for e in events], partitions=4), kind="kafka", name="t"
        )
        store = CrashingStore("zone")
        with pytest.raises(Crash):
            _runner(source, store).run()
        assert source.committed == {}
        written_before = set(store.objects)
        source.crash()
        store.crash_after = None
        _runner(source, store).run()
        ids = [r["event_id"] for r in _clean_rows(store)]
        assert set(ids) == {e["event_id"] for e in events}
        assert written_before <= set(store.objects)  # the same batch rewrote the same keys
        assert len(ids) == len(events)

    def test_interval_flush_happens_while_the_stream_is_idle(self) -> None:
        clock = FakeClock()
        source = MemorySource(_records([b.as_avro(b.transaction())]), kind="kafka", name="t")
        store = MemoryObjectStore("zone")
        runner = DeliveryRunner(
            DeliveryOptions(
                SourceKind.KAFKA, EventType.FINANCIAL_TRANSACTION, buffer_mib=128, buffer_seconds=60
            ),
            source=source,
            store=store,
            invoker=_transformer_invoker(),
            zone=ZONE,
            clock=clock,
        )
        polls = 0
        poll = source.poll

        def ticking_poll(max_records: int, timeout: float) -> list[SourceRecord]:
            nonlocal polls
            polls += 1
            clock.now += 10  # every poll waits 10 s; only the first returns data
            if polls == 9:
                runner.stop()
            return poll(max_records, timeout)

        source.poll = ticking_poll  # type: ignore[method-assign]
        runner.run()
        assert runner.summary.batches == 1
        # flushed by the interval (after 6 idle polls), not by the final stop
        assert store.list_keys("clean/") and polls == 9
        assert runner.metrics.records.labels("financial-transaction", "Ok")._value.get() == 1

    def test_once_exits_when_drained(self) -> None:
        source = MemorySource([], kind="kinesis", name="s")
        summary = _runner(source, MemoryObjectStore("zone")).run()
        assert summary.batches == 0 and source.closed

    def test_max_seconds_stops_the_loop(self) -> None:
        clock = FakeClock()
        source = MemorySource([], kind="kinesis", name="s")

        def slow_poll(max_records: int, timeout: float) -> list[SourceRecord]:
            clock.now += 1
            return []

        source.poll = slow_poll  # type: ignore[method-assign]
        runner = DeliveryRunner(
            DeliveryOptions(SourceKind.KINESIS, EventType.INSURANCE_CLAIM, max_seconds=5),
            source=source,
            store=MemoryObjectStore("zone"),
            invoker=_transformer_invoker(),
            zone=ZONE,
            clock=clock,
        )
        assert runner.run().batches == 0
        assert clock.now == 1005


def test_kinesis_aggregates_are_split_into_user_records_as_firehose_does() -> None:
    from datetime import UTC, datetime

    from firehose_transforms.kinesis import user_records

    payloads = [b.as_avro(b.transaction()) for _ in range(3)]
    record = {
        "Data": b.kpl_aggregate(payloads),
        "SequenceNumber": "4954",
        "PartitionKey": "acc-1",
        "ApproximateArrivalTimestamp": datetime(2026, 1, 1, tzinfo=UTC),
    }
    users = user_records("shardId-000000000000", record)
    assert [u.value for u in users] == payloads
    assert [u.record_id for u in users] == [f"shardId-000000000000:4954:{i}" for i in range(3)]
    assert users[0].arrival_ms == 1_767_225_600_000
    broken = dict(record, Data=record["Data"][:-1] + b"\x00")
    assert [u.value for u in user_records("shardId-000000000000", broken)] == [broken["Data"]]
    plain = dict(record, Data=b"plain")
    assert [(u.value, u.subsequence) for u in user_records("s", plain)] == [(b"plain", None)]


def test_revocation_delivers_the_buffer_but_not_while_closing() -> None:
    source = MemorySource(_records([b.as_avro(b.transaction())]), kind="kafka", name="t")
    store = MemoryObjectStore("zone")
    runner = _runner(source, store, buffer_seconds=900, once=False)
    runner.buffer.add(source.poll(10, 0), now=0)
    runner.on_revoke()
    assert source.committed and store.list_keys("clean/")
    runner.buffer.add(_records([b.as_avro(b.transaction())]), now=0)
    runner._closing = True
    runner.on_revoke()
    assert len(runner.buffer.records) == 1  # left for the replay after restart


class MemoryHarness:
    def __init__(self) -> None:
        self.records: list[SourceRecord] = []
        self.committed: dict[str, str] = {}

    def publish(self, values: list[bytes]) -> None:
        start = len(self.records)
        self.records.extend(
            SourceRecord(f"p{(start + i) % 3:04d}", str((start + i) // 3), ARRIVAL, v)
            for i, v in enumerate(values)
        )

    def open(self) -> MemorySource:
        return MemorySource(self.records, kind="kafka", name="t", committed=self.committed)


class TestMemorySource(SourceContract):
    @pytest.fixture
    def harness(self) -> MemoryHarness:
        return MemoryHarness()


def test_transient_source_errors_are_retried_then_raised() -> None:
    source = MemorySource(_records([b.as_avro(b.transaction())]), kind="kinesis", name="s")
    poll = source.poll
    failures = {"left": 2}

    def flaky(max_records: int, timeout: float) -> list[SourceRecord]:
        if failures["left"]:
            failures["left"] -= 1
            raise DeliveryError("throttled", code="ProvisionedThroughputExceededException")
        return poll(max_records, timeout)

    source.poll = flaky  # type: ignore[method-assign]
    store = MemoryObjectStore("zone")
    assert _runner(source, store).run().ok == 1

    broken = MemorySource([], kind="kinesis", name="s")

    def down(max_records: int, timeout: float) -> list[SourceRecord]:
        raise DeliveryError("unreachable", code="kinesis_unreachable")

    broken.poll = down  # type: ignore[method-assign]
    with pytest.raises(DeliveryError):
        _runner(broken, MemoryObjectStore("zone")).run()
    assert broken.closed and broken.committed == {}
