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
from firehose_transforms.delivery import run_delivery, validate_options
from firehose_transforms.exceptions import (
    DeliveryConfigurationError,
    DeliveryError,
    InvocationFailed,
    TransformError,
)
from firehose_transforms.invocation import (
    EventContext,
    check_response,
    chunk_for_invocation,
    firehose_event,
    record_id,
)
from firehose_transforms.memory import MemoryObjectStore
from firehose_transforms.models import DeliveryOptions, DeliverySummary, SourceKind
from firehose_transforms.planning import partition_names, plan_batch, plan_raw_backup
from sluice.config import EventType, ZoneSettings
from sluice.streams.kinesis import to_stream_records
from sluice.streams.memory import MemoryCheckpointStore, MemorySource
from sluice.streams.models import PartitionKey, StreamRecord
from sluice.zone import RAW_CONTENT_TYPE, unframe_raw
from tests.unit.firehose_transforms import builders as b
from tests.unit.firehose_transforms.contract import ObjectStoreContract

ARRIVAL = 1_763_781_605_000
ZONE = ZoneSettings(s3_bucket="zone")


def _records(
    payloads: list[bytes], partitions: int = 2, kind: str = "kafka", stream: str = "topic"
) -> list[StreamRecord]:
    out = []
    for i, payload in enumerate(payloads):
        p = i % partitions
        partition = str(p) if kind == "kafka" else f"shardId-{p:012d}"
        out.append(
            StreamRecord(
                stream, partition, 100 + i // partitions, payload, b"k", timestamp_ms=ARRIVAL + i
            )
        )
    return out


def _source(
    records: list[StreamRecord], store: MemoryCheckpointStore | None = None
) -> MemorySource:
    logs: dict[PartitionKey, list[StreamRecord]] = {}
    for record in records:
        logs.setdefault(record.tp, []).append(record)
    return MemorySource(logs, store)


def _committed(source: MemorySource) -> dict[str, int]:
    positions = source.store.load(sorted(source.logs))
    return {tp.partition: last for tp, last in positions.items() if last is not None}


def _transformer_invoker() -> Any:
    transformer = b.transformer()
    return transformer.handle


def _run(
    source: MemorySource,
    store: MemoryObjectStore,
    *,
    kind: str = "kafka",
    invoker: Any = None,
    retries: int = 3,
    settings: DeliverySettings | None = None,
    zone: ZoneSettings = ZONE,
    **options: Any,
) -> DeliverySummary:
    opts = DeliveryOptions(
        source=SourceKind(kind),
        event_type=EventType.FINANCIAL_TRANSACTION,
        buffer_mib=options.pop("buffer_mib", 1),
        buffer_seconds=options.pop("buffer_seconds", 0),
        once=options.pop("once", True),
        stream=options.pop("stream", "topic"),
        **options,
    )
    return run_delivery(
        opts,
        source=source,
        store=store,
        invoker=invoker or _transformer_invoker(),
        zone=zone,
        settings=settings or DeliverySettings(firehose_invoke_retries=retries),
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


# --------------------------------------------------------------------------- buffering


class TestHints:
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
    outcomes = check_response(
        kind, records, response, "kafkaRecordValue" if kind == "kafka" else "data"
    )
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
            check_response("kafka", self.records, response, "data")
        assert info.value.code == code

    def test_duplicate_record_id(self) -> None:
        response = {"records": [self._ok("p0000:100"), self._ok("p0000:100")]}
        with pytest.raises(InvocationFailed) as info:
            check_response("kafka", self.records, response, "data")
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
            check_response("kafka", self.records, response, "data")
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
        failed, dropped = check_response("kafka", self.records, response, "data")
        assert failed.error_code == "Lambda.ProcessingFailedStatus"
        assert failed.error_message == "unknown_currency: currency XYZ"
        assert dropped.result == "Dropped"


# --------------------------------------------------------------------------- planning


def test_plan_groups_by_partition_and_partition_keys() -> None:
    good = [b.as_json(b.transaction()) for _ in range(4)]
    records = _records([*good, b"garbage"], partitions=2)
    event = firehose_event(EventContext(kind="kafka", stream="topic", delivery_stream="d"), records)
    outcomes = check_response("kafka", records, _transformer_invoker()(event), "kafkaRecordValue")
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
    outcomes = check_response("kafka", records, _transformer_invoker()(event), "kafkaRecordValue")
    first = plan_batch(outcomes, kind="kafka", source="t", zone=ZONE, lambda_arn="a")
    second = plan_batch(outcomes, kind="kafka", source="t", zone=ZONE, lambda_arn="a")
    assert [(p.key, p.body) for p in first] == [(p.key, p.body) for p in second]


def test_batch_with_nothing_ok_writes_no_manifest() -> None:
    records = _records([b"garbage"])
    event = firehose_event(EventContext(kind="kafka", stream="t", delivery_stream="d"), records)
    outcomes = check_response("kafka", records, _transformer_invoker()(event), "kafkaRecordValue")
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
    outcomes = check_response("kafka", records, _transformer_invoker()(event), "kafkaRecordValue")
    batch = plan_batch(outcomes, kind="kafka", source="t", zone=ZONE, lambda_arn="a")
    raw = plan_raw_backup(records, kind="kafka", source="t", zone=ZONE)
    stems = {p.key.rsplit("/", 1)[1] for p in batch if p.kind in ("clean", "error")}
    assert stems == {p.key.rsplit("/", 1)[1] for p in raw}
    again = plan_raw_backup(records, kind="kafka", source="t", zone=ZONE)
    assert [(p.key, p.body) for p in raw] == [(p.key, p.body) for p in again]


def test_raw_backup_keeps_kpl_user_records_in_subsequence_order() -> None:
    shard = "shardId-000000000000"
    users = [
        StreamRecord("s", shard, 4954, f"u{i}".encode(), timestamp_ms=ARRIVAL, sub_sequence=i)
        for i in range(3)
    ]
    later = StreamRecord("s", shard, 4960, b"later", timestamp_ms=ARRIVAL + 5)
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


def _watch_checkpoints(source: MemorySource, seen: Any) -> None:
    """Call ``seen()`` at every checkpoint, before it is saved."""
    checkpoint = source.checkpoint

    def checking(positions: Any) -> None:
        seen()
        checkpoint(positions)

    source.checkpoint = checking  # type: ignore[method-assign]


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
        source = _source(_records(payloads, partitions=2))
        store = MemoryObjectStore("zone")
        raw_at_commit: list[list[bytes]] = []
        _watch_checkpoints(source, lambda: raw_at_commit.append(sorted(_raw_records(store))))
        summary = _run(source, store, raw_backup=True)
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
        source = _source(_records(payloads, partitions=1, kind="kinesis"))
        summary = _run(source, store, kind="kinesis", invoker=broken, retries=0, raw_backup=True)
        assert seen == [summary.raw_objects]
        assert _raw_records(store) == payloads
        assert summary.failed == 3

    def test_off_by_default_writes_nothing_under_raw(self) -> None:
        payloads = [b.as_avro(b.transaction()), b"garbage"]
        store = MemoryObjectStore("zone")
        summary = _run(_source(_records(payloads)), store)
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
        store = MemoryObjectStore("zone")
        summary = _run(
            _source(_records([b.as_avro(b.transaction())])),
            store,
            raw_backup=option,
            settings=DeliverySettings(firehose_raw_backup=setting),
        )
        assert bool(summary.raw_objects) is on
        assert bool(store.list_keys("raw/")) is on

    def test_setting_is_read_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("SLUICE_FIREHOSE_RAW_BACKUP", "true")
        assert DeliverySettings().firehose_raw_backup is True
        monkeypatch.delenv("SLUICE_FIREHOSE_RAW_BACKUP")
        assert DeliverySettings().firehose_raw_backup is False

    def test_the_raw_prefix_comes_from_the_zone(self) -> None:
        store = MemoryObjectStore("zone")
        _run(
            _source(_records([b"garbage"])),
            store,
            stream="t",
            raw_backup=True,
            zone=ZoneSettings(s3_bucket="zone", s3_raw_prefix="backup/"),
        )
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
        records = _records(payloads, partitions=3)
        source = _source(records)
        store = CrashingStore("zone")
        with pytest.raises(Crash):
            _run(source, store, raw_backup=True)
        assert _committed(source) == {}
        before = {k: store.get(k) for k in store.list_keys("raw/")}
        assert len(before) == 3 and sorted(_raw_records(store)) == sorted(payloads)
        restarted = _source(records, source.store)  # a new process, the same checkpoints
        store.crash_at = None
        store.puts.clear()
        summary = _run(restarted, store, raw_backup=True)
        assert sorted(summary.raw_objects) == sorted(before)  # the same keys, rewritten
        assert {k: store.get(k) for k in store.list_keys("raw/")} == before
        assert sorted(_raw_records(store)) == sorted(payloads)
        assert _committed(restarted)


class TestRunner:
    def test_delivers_rows_and_errors_then_commits(self) -> None:
        events = [b.transaction() for _ in range(6)]
        payloads = [b.as_avro(e) for e in events] + [
            b"garbage",
            b.as_json(b.transaction(metadata={"test": "true"})),
        ]
        source = _source(_records(payloads))
        store = MemoryObjectStore("zone")
        seen_at_commit: list[list[str]] = []
        _watch_checkpoints(source, lambda: seen_at_commit.append(store.list_keys("")))
        summary = _run(source, store)
        assert (summary.records, summary.ok, summary.dropped, summary.failed) == (8, 6, 1, 1)
        assert sorted(r["event_id"] for r in _clean_rows(store)) == sorted(
            e["event_id"] for e in events
        )
        assert [e["errorCode"] for e in _errors(store)] == ["Lambda.ProcessingFailedStatus"]
        assert store.list_keys("manifests/") == []  # Firehose writes no manifest
        # every object existed before the checkpoint
        assert seen_at_commit == [store.list_keys("")]
        assert _committed(source) == {"0": 103, "1": 103}
        assert source.closed

    def test_always_failing_invocation_sends_the_batch_to_errors_after_retries(self) -> None:
        calls: list[int] = []

        def broken(event: dict[str, Any]) -> dict[str, Any]:
            calls.append(1)
            raise TransformError("boom")

        payloads = [b.as_avro(b.transaction()) for _ in range(3)]
        source = _source(_records(payloads, kind="kinesis"))
        store = MemoryObjectStore("zone")
        summary = _run(source, store, kind="kinesis", invoker=broken)
        assert len(calls) == 4  # first attempt + 3 retries
        errors = _errors(store)
        assert summary.failed == 3 and len(errors) == 3
        assert {e["errorCode"] for e in errors} == {"Lambda.FunctionError"}
        assert {e["attemptsMade"] for e in errors} == {4}
        assert sorted(base64.b64decode(e["rawData"]) for e in errors) == sorted(payloads)
        assert store.list_keys("clean/") == [] and store.list_keys("manifests/") == []
        assert _committed(source)  # nothing lost: the records are in the error prefix

    def test_invocation_that_recovers_within_the_retries_delivers(self) -> None:
        inner = _transformer_invoker()
        calls: list[int] = []

        def flaky(event: dict[str, Any]) -> Mapping[str, Any]:
            calls.append(1)
            if len(calls) < 3:
                raise RuntimeError("throttled")
            return inner(event)

        summary = _run(
            _source(_records([b.as_avro(b.transaction())])),
            MemoryObjectStore("zone"),
            invoker=flaky,
        )
        assert summary.ok == 1 and len(calls) == 3

    def test_invocation_answering_outside_the_contract_is_retried_then_errored(self) -> None:
        store = MemoryObjectStore("zone")
        _run(
            _source(_records([b.as_avro(b.transaction())])),
            store,
            invoker=lambda event: {"records": []},
            retries=1,
        )
        errors = _errors(store)
        assert [(e["errorCode"], e["attemptsMade"]) for e in errors] == [
            ("Lambda.MissingRecordId", 2)
        ]

    def test_fatal_s3_failure_stops_without_checkpoint(self) -> None:
        class NoBucket(MemoryObjectStore):
            def put(self, key: str, body: bytes, content_type: str) -> None:
                raise DeliveryConfigurationError("bucket zone does not exist")

        source = _source(_records([b.as_avro(b.transaction())]))
        with pytest.raises(DeliveryConfigurationError):
            _run(source, NoBucket("zone"))
        assert _committed(source) == {}
        assert source.closed

    def test_s3_down_rolls_back_and_rewinds_without_checkpoint(self) -> None:
        class DownStore(MemoryObjectStore):
            def put(self, key: str, body: bytes, content_type: str) -> None:
                raise DeliveryError("s3 unreachable", code="s3_unreachable")

        source = _source(_records([b.as_avro(b.transaction())]))
        rewinds: list[Any] = []
        rewind = source.rewind

        def counting(positions: Any) -> None:
            rewinds.append(dict(positions))
            rewind(positions)

        source.rewind = counting  # type: ignore[method-assign]
        summary = _run(source, DownStore("zone"), once=False, max_seconds=1.5)
        assert summary.batches == 0 and rewinds  # read again, never checkpointed
        assert _committed(source) == {}
        assert source.closed

    def test_transient_s3_failure_is_retried(self) -> None:
        class FlakyStore(MemoryObjectStore):
            failures = 2

            def put(self, key: str, body: bytes, content_type: str) -> None:
                if self.failures:
                    self.failures -= 1
                    raise DeliveryError("slow down", code="SlowDown")
                super().put(key, body, content_type)

        store = FlakyStore("zone")
        assert _run(_source(_records([b.as_avro(b.transaction())])), store).ok == 1
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
        records = _records([b.as_avro(e) for e in events], partitions=4)
        source = _source(records)
        store = CrashingStore("zone")
        with pytest.raises(Crash):
            _run(source, store)
        assert _committed(source) == {}
        written_before = set(store.objects)
        store.crash_after = None
        _run(_source(records, source.store), store)
        ids = [r["event_id"] for r in _clean_rows(store)]
        assert set(ids) == {e["event_id"] for e in events}
        assert written_before <= set(store.objects)  # the same batch rewrote the same keys
        assert len(ids) == len(events)

    def test_once_exits_when_caught_up(self) -> None:
        source = _source([])
        summary = _run(source, MemoryObjectStore("zone"), kind="kinesis")
        assert summary.batches == 0 and source.closed

    def test_max_seconds_stops_the_loop(self) -> None:
        source = _source([])
        summary = _run(source, MemoryObjectStore("zone"), once=False, max_seconds=0.5)
        assert summary.batches == 0 and source.closed

    def test_kinesis_user_records_reach_the_transform_with_their_own_keys(self) -> None:
        payloads = [b.as_avro(b.transaction()) for _ in range(3)]
        entry = {
            "Data": b.kpl_aggregate(payloads, keys=["acc-0", "acc-1", "acc-2"]),
            "SequenceNumber": "4954",
            "PartitionKey": "acc-0",
            "ApproximateArrivalTimestamp": ARRIVAL / 1000,
        }
        records = to_stream_records("s", "shardId-000000000000", entry)
        events: list[dict[str, Any]] = []
        inner = _transformer_invoker()

        def recording(event: dict[str, Any]) -> Any:
            events.append(event)
            return inner(event)

        summary = _run(
            _source(records), MemoryObjectStore("zone"), kind="kinesis", invoker=recording
        )
        assert summary.ok == 3
        (event,) = events
        meta = [r["kinesisRecordMetadata"] for r in event["records"]]
        assert [m["subsequenceNumber"] for m in meta] == [0, 1, 2]
        assert [m["sequenceNumber"] for m in meta] == ["4954"] * 3
        assert [m["partitionKey"] for m in meta] == ["acc-0", "acc-1", "acc-2"]
        assert [r["recordId"] for r in event["records"]] == [
            f"shardId-000000000000:4954:{i}" for i in range(3)
        ]


def test_kinesis_aggregates_are_split_into_user_records_as_firehose_does() -> None:
    from datetime import UTC, datetime

    payloads = [b.as_avro(b.transaction()) for _ in range(3)]
    entry = {
        "Data": b.kpl_aggregate(payloads),
        "SequenceNumber": "4954",
        "PartitionKey": "acc-1",
        "ApproximateArrivalTimestamp": datetime(2026, 1, 1, tzinfo=UTC),
    }
    shard = "shardId-000000000000"
    users = to_stream_records("s", shard, entry)
    assert [u.value for u in users] == payloads
    assert [record_id("kinesis", u) for u in users] == [f"{shard}:4954:{i}" for i in range(3)]
    assert users[0].timestamp_ms == 1_767_225_600_000
    # the digest's last byte flipped (never equal to the original, whatever it was)
    broken = dict(entry, Data=entry["Data"][:-1] + bytes([entry["Data"][-1] ^ 0xFF]))
    assert [u.value for u in to_stream_records("s", shard, broken)] == [broken["Data"]]
    plain = dict(entry, Data=b"plain")
    assert [(u.value, u.sub_sequence) for u in to_stream_records("s", shard, plain)] == [
        (b"plain", None)
    ]


def test_transient_source_errors_are_retried_then_raised() -> None:
    source = _source(_records([b.as_avro(b.transaction())], kind="kinesis"))
    poll = source.poll
    failures = {"left": 2}

    def flaky(max_records: int, timeout: float) -> list[StreamRecord]:
        if failures["left"]:
            failures["left"] -= 1
            raise DeliveryError("throttled", code="ProvisionedThroughputExceededException")
        return poll(max_records, timeout)

    source.poll = flaky  # type: ignore[method-assign]
    assert _run(source, MemoryObjectStore("zone"), kind="kinesis").ok == 1

    broken = _source([])

    def down(max_records: int, timeout: float) -> list[StreamRecord]:
        raise DeliveryError("unreachable", code="kinesis_unreachable")

    broken.poll = down  # type: ignore[method-assign]
    with pytest.raises(DeliveryError):
        _run(broken, MemoryObjectStore("zone"), kind="kinesis")
    assert broken.closed and _committed(broken) == {}
