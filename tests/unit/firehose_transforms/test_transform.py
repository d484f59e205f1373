"""The transform Lambda: recorded sample events, the response contract, drops and
failures, KPL deaggregation, the 6 MB response limit, and property tests."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firehose_transforms import lambda_function
from firehose_transforms.base import KPL_MAGIC, Transformer, build_response, source_shape
from firehose_transforms.exceptions import TransformError
from firehose_transforms.models import TransformResult
from tests.unit.firehose_transforms import builders as b

EVENTS = Path(__file__).resolve().parents[2] / "events"


@pytest.fixture(autouse=True, params=["orjson", "json"])
def json_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every transform test runs with both JSON backends."""
    from firehose_transforms import jsonio

    if request.param == "orjson" and jsonio._ORJSON is None:
        pytest.skip("orjson is not installed")
    jsonio.use_stdlib(request.param == "json")
    yield request.param
    jsonio.use_stdlib(False)


@pytest.fixture
def transformer() -> Transformer:
    return b.transformer()


def _pad(size: int) -> dict[str, str]:
    """Metadata of about ``size`` characters (values are at most 1024 characters)."""
    return {f"pad{i}": "x" * 1000 for i in range(max(1, size // 1000))}


def _load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def _payload(entry: dict[str, Any]) -> bytes:
    key = "kafkaRecordValue" if "kafkaRecordValue" in entry else "data"
    return base64.b64decode(entry[key], validate=True)


def _rows(entry: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _payload(entry).decode().splitlines()]


def _error(entry: dict[str, Any]) -> str:
    return str(json.loads(_payload(entry))["errorCode"])


class TestRecordedEvents:
    def test_direct_put(self, transformer: Transformer) -> None:
        event = _load("firehose-direct-put.json")
        out = transformer.handle(event)["records"]
        assert [r["recordId"] for r in out] == [r["recordId"] for r in event["records"]]
        assert [r["result"] for r in out] == ["Ok", "Dropped", "Dropped", "ProcessingFailed"]
        row = _rows(out[0])[0]
        assert row["card_number"] == "411111******1111"
        assert row["merchant_name"] == "Corner Bakery"
        assert row["merchant_country"] == "DE"
        assert row["currency"] == "EUR"
        assert row["ingested_at"] == "2026-01-31T09:30:01.000000Z"
        assert out[0]["metadata"] == {
            "partitionKeys": {"event_type": "financial-transaction", "dt": "2025-11-22"}
        }
        assert _error(out[3]) == "undecodable"

    def test_kinesis_source_with_kpl_aggregate(self, transformer: Transformer) -> None:
        event = _load("firehose-kinesis-source.json")
        out = transformer.handle(event)["records"]
        assert [r["result"] for r in out] == ["Ok", "Ok", "ProcessingFailed"]
        # the aggregate held the first event again (dropped as a duplicate) and a new one
        assert [row["event_id"][-2:] for row in _rows(out[1])] == ["04"]
        assert all("data" in r and "kafkaRecordValue" not in r for r in out)

    def test_msk_source_answers_with_kafka_record_value(self, transformer: Transformer) -> None:
        event = _load("firehose-msk-source.json")
        out = transformer.handle(event)["records"]
        assert all("kafkaRecordValue" in r and "data" not in r for r in out)
        assert [r["result"] for r in out] == ["Ok"] + ["ProcessingFailed"] * 5
        assert [_error(r) for r in out[1:]] == [
            "negative_claim_amount",
            "negative_claim_amount",
            "loss_date_after_report_date",
            "unknown_currency",
            "undecodable",
        ]
        row = _rows(out[0])[0]
        assert row["claimant_national_id"].startswith("hmac-sha256:")
        assert row["reported_at"] == "2026-01-30T16:04:12.000000Z"

    def test_lambda_handler_entry_point(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("SLUICE_PII_HMAC_KEY", b.HMAC_KEY)
        lambda_function.get_transformer.cache_clear()
        try:
            out = lambda_function.lambda_handler(_load("firehose-msk-source.json"), None)
        finally:
            lambda_function.get_transformer.cache_clear()
        assert out["records"][0]["result"] == "Ok"

    @pytest.mark.parametrize(
        ("name", "shape"),
        [
            ("firehose-direct-put.json", "direct_put"),
            ("firehose-kinesis-source.json", "kinesis"),
            ("firehose-msk-source.json", "msk"),
        ],
    )
    def test_source_shape_is_recognised(self, name: str, shape: str) -> None:
        assert source_shape(_load(name)) == shape


class TestDropsAndFailures:
    def test_duplicates_within_the_batch_are_dropped(self, transformer: Transformer) -> None:
        tx = b.transaction()
        out = transformer.handle(
            b.direct_put_event([b.as_json(tx), b.as_avro(tx), b.as_json(b.transaction())])
        )
        assert [r["result"] for r in out["records"]] == ["Ok", "Dropped", "Ok"]

    def test_an_event_id_of_a_failed_record_does_not_drop_its_retry(
        self, transformer: Transformer
    ) -> None:
        # The first record fails as a whole (its aggregate holds a bad event): the same
        # event in a later record must still be delivered, not dropped as a duplicate.
        good = b.transaction()
        bad = b.as_avro_unchecked(b.transaction(), amount=Decimal("-1.0000"))
        aggregate = b.kpl_aggregate([b.as_avro(good), bad])
        out = transformer.handle(b.kinesis_event([aggregate, b.as_avro(good)]))["records"]
        assert [r["result"] for r in out] == ["ProcessingFailed", "Ok"]
        assert _error(out[0]) == "negative_amount"

    def test_test_events_are_dropped(self, transformer: Transformer) -> None:
        out = transformer.handle(
            b.direct_put_event(
                [
                    b.as_json(b.transaction(metadata={"test": "true"})),
                    b.as_avro(b.claim(source="test-suite")),
                ]
            )
        )
        assert [r["result"] for r in out["records"]] == ["Dropped", "Dropped"]

    def test_dropped_and_failed_records_carry_no_partition_keys(
        self, transformer: Transformer
    ) -> None:
        out = transformer.handle(
            b.direct_put_event([b"{}", b.as_json(b.transaction(metadata={"test": "1"}))])
        )
        assert all("metadata" not in r for r in out["records"])

    @pytest.mark.parametrize(
        ("payload", "code"),
        [
            (b"", "undecodable"),
            (b"\x00\x00\x00\x00", "undecodable"),
            (b"\x00\x00\x00\x99\x99garbage", "undecodable"),
            (b"{not json", "undecodable"),
            (b"[1, 2]", "undecodable"),
            (b'{"event_type": 5}', "unknown_event_type"),
            (b'{"event_type": "payroll"}', "unknown_event_type"),
            (b'{"event_type": "insurance-claim"}', "invalid_event"),
            (KPL_MAGIC + b"x" * 40, "undecodable"),
        ],
    )
    def test_undecodable_records_fail_with_a_reason(
        self, transformer: Transformer, payload: bytes, code: str
    ) -> None:
        out = transformer.handle(b.direct_put_event([payload]))["records"]
        assert out[0]["result"] == "ProcessingFailed"
        assert _error(out[0]) == code

    def test_truncated_avro_is_undecodable(self, transformer: Transformer) -> None:
        data = b.as_avro(b.transaction())[:-5]
        out = transformer.handle(b.direct_put_event([data]))["records"]
        assert _error(out[0]) == "undecodable"

    def test_data_that_is_not_base64_fails_only_that_record(self, transformer: Transformer) -> None:
        event = b.direct_put_event([b.as_json(b.transaction()), b""])
        event["records"][1]["data"] = "%%% not base64"
        out = transformer.handle(event)["records"]
        assert [r["result"] for r in out] == ["Ok", "ProcessingFailed"]

    def test_aggregate_with_two_event_types_fails(self, transformer: Transformer) -> None:
        aggregate = b.kpl_aggregate([b.as_avro(b.transaction()), b.as_avro(b.claim())])
        out = transformer.handle(b.kinesis_event([aggregate]))["records"]
        assert _error(out[0]) == "mixed_event_types"

    def test_aggregate_gives_several_ndjson_lines_under_one_record_id(
        self, transformer: Transformer
    ) -> None:
        events = [b.transaction() for _ in range(5)]
        aggregate = b.kpl_aggregate([b.as_avro(e) for e in events])
        out = transformer.handle(b.kinesis_event([aggregate]))["records"]
        assert len(out) == 1
        assert [r["event_id"] for r in _rows(out[0])] == [e["event_id"] for e in events]
        assert _payload(out[0]).endswith(b"\n")

    def test_aggregate_of_only_test_events_is_dropped(self, transformer: Transformer) -> None:
        aggregate = b.kpl_aggregate([b.as_avro(b.transaction(metadata={"test": "true"}))] * 2)
        out = transformer.handle(b.kinesis_event([aggregate]))["records"]
        assert out[0]["result"] == "Dropped"

    def test_kpl_aggregate_with_bad_digest_is_undecodable(self, transformer: Transformer) -> None:
        aggregate = bytearray(b.kpl_aggregate([b.as_avro(b.transaction())]))
        aggregate[-1] ^= 0xFF
        out = transformer.handle(b.kinesis_event([bytes(aggregate)]))["records"]
        assert _error(out[0]) == "undecodable"


class TestEventContract:
    def test_not_an_event_raises_so_firehose_retries(self, transformer: Transformer) -> None:
        with pytest.raises(TransformError):
            transformer.handle({"hello": "world"})

    def test_repeated_record_id_raises(self, transformer: Transformer) -> None:
        event = b.direct_put_event([b"a", b"b"])
        event["records"][1]["recordId"] = event["records"][0]["recordId"]
        with pytest.raises(TransformError):
            transformer.handle(event)

    def test_empty_batch_gives_empty_records(self, transformer: Transformer) -> None:
        assert transformer.handle(b.direct_put_event([])) == {"records": []}

    def test_dt_is_the_utc_arrival_date(self, transformer: Transformer) -> None:
        event = b.direct_put_event([b.as_json(b.transaction())], arrival_ms=1_767_225_599_999)
        out = transformer.handle(event)["records"]
        assert out[0]["metadata"]["partitionKeys"]["dt"] == "2025-12-31"


class TestResponseLimit:
    def test_records_past_the_limit_fail_with_a_reason_instead_of_vanishing(self) -> None:
        transformer = b.transformer(transform_max_response_bytes=20_000)
        events = [b.transaction(metadata=_pad(1500)) for _ in range(30)]
        response = transformer.handle(b.direct_put_event([b.as_json(e) for e in events]))
        out = response["records"]
        assert len(out) == 30
        assert len(json.dumps(response)) <= 20_000
        results = [r["result"] for r in out]
        assert "Ok" in results and "ProcessingFailed" in results
        first_failed = results.index("ProcessingFailed")
        assert all(r == "Ok" for r in results[:first_failed])
        assert {_error(r) for r in out[first_failed:]} == {"response_size_limit"}

    def test_default_budget_keeps_the_response_under_6_mb(self) -> None:
        transformer = b.transformer()
        events = [b.transaction(metadata=_pad(9000)) for _ in range(700)]
        response = transformer.handle(b.direct_put_event([b.as_json(e) for e in events]))
        assert len(response["records"]) == 700
        assert len(json.dumps(response)) < 6 * 1024 * 1024

    def test_too_many_records_for_even_failures_raises(self) -> None:
        results = [TransformResult(record_id=f"r{i}", result="Dropped") for i in range(200)]
        with pytest.raises(TransformError):
            build_response(results, "direct_put", max_bytes=2_000)


# --------------------------------------------------------------------------- properties

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def _mutated_event(draw: st.DrawFn) -> bytes:
    """A valid event with some fields replaced by arbitrary JSON values."""
    event = draw(st.sampled_from([b.transaction, b.claim]))()
    for name in draw(st.lists(st.sampled_from(sorted(event)), max_size=3)):
        event[name] = draw(_json_values)
    return json.dumps(event).encode()


_payloads = st.one_of(
    _mutated_event(),
    st.binary(max_size=64),
    st.builds(lambda: b.as_json(b.transaction())),
    st.builds(lambda: b.as_avro(b.claim())),
    st.builds(lambda: b.as_json(b.claim(claim_amount="-1.00"))),
    st.builds(lambda: KPL_MAGIC + b"\x00" * 20),
    st.just(b.as_json(b.transaction(event_id="11111111-1111-4111-8111-111111111111"))),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    payloads=st.lists(_payloads, max_size=25),
    shape=st.sampled_from(["direct_put", "kinesis", "msk"]),
    ids=st.data(),
)
def test_any_batch_gives_exactly_one_result_per_record_id(
    payloads: list[bytes], shape: str, ids: st.DataObject
) -> None:
    builder = {"direct_put": b.direct_put_event, "kinesis": b.kinesis_event, "msk": b.msk_event}[
        shape
    ]
    event = builder(payloads)
    record_ids = ids.draw(
        st.lists(
            st.text(min_size=1, max_size=40),
            min_size=len(payloads),
            max_size=len(payloads),
            unique=True,
        )
    )
    for record, record_id in zip(event["records"], record_ids, strict=True):
        record["recordId"] = record_id
    response = b.transformer().handle(event)
    out = response["records"]
    assert [r["recordId"] for r in out] == record_ids
    data_key = "kafkaRecordValue" if shape == "msk" else "data"
    for entry in out:
        assert entry["result"] in ("Ok", "Dropped", "ProcessingFailed")
        base64.b64decode(entry[data_key], validate=True)
        if entry["result"] == "Ok":
            assert set(entry["metadata"]["partitionKeys"]) == {"event_type", "dt"}
            for line in base64.b64decode(entry[data_key]).decode().splitlines():
                assert json.loads(line)["event_id"]


@settings(max_examples=30, deadline=None)
@given(
    limit=st.integers(min_value=3_000, max_value=40_000),
    count=st.integers(min_value=0, max_value=12),
)
def test_response_never_exceeds_the_budget(limit: int, count: int) -> None:
    results = [
        TransformResult(
            record_id=f"id-{i}",
            result="Ok",
            data=b"x" * (i * 700),
            partition_keys={"event_type": "financial-transaction", "dt": "2026-01-01"},
        )
        for i in range(count)
    ]
    response = build_response(results, "kinesis", max_bytes=limit)
    assert [r["recordId"] for r in response["records"]] == [r.record_id for r in results]
    assert len(json.dumps(response)) <= limit


@settings(max_examples=60, deadline=None)
@given(
    record_id=st.text(max_size=30),
    data=st.binary(max_size=50),
    result=st.sampled_from(["Ok", "Dropped", "ProcessingFailed"]),
    dt=st.text(max_size=12),
    shape=st.sampled_from(["direct_put", "kinesis", "msk"]),
)
def test_entry_size_is_exactly_the_serialized_size(
    record_id: str, data: bytes, result: str, dt: str, shape: str
) -> None:
    from firehose_transforms.base import entry_size, result_entry

    keys = {"event_type": "insurance-claim", "dt": dt} if result == "Ok" else None
    item = TransformResult(record_id=record_id, result=result, data=data, partition_keys=keys)  # type: ignore[arg-type]
    assert entry_size(item, shape) == len(json.dumps(result_entry(item, shape))) + 2  # type: ignore[arg-type]


_more_payloads = st.one_of(
    _payloads,
    st.builds(lambda: b.as_json(b.transaction(source="test-load"))),
    st.builds(lambda: b.as_json(b.claim(metadata={"test": "YES"}))),
    st.builds(lambda: b.kpl_aggregate([b.as_json(b.transaction()), b.as_avro(b.transaction())])),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    payloads=st.lists(_more_payloads, max_size=25),
    shape=st.sampled_from(["direct_put", "kinesis", "msk"]),
    budget=st.sampled_from([None, 2_000, 6_000, 20_000]),
)
def test_handle_equals_transform_then_build_response(
    payloads: list[bytes], shape: str, budget: int | None
) -> None:
    """The one-pass handler answers exactly as the three steps do, within any budget."""
    from firehose_transforms.base import parse_event

    builder = {"direct_put": b.direct_put_event, "kinesis": b.kinesis_event, "msk": b.msk_event}[
        shape
    ]
    event = builder(payloads)
    transformer = (
        b.transformer() if budget is None else b.transformer(transform_max_response_bytes=budget)
    )
    try:
        expected: Any = build_response(
            transformer.transform(parse_event(event)[1]),
            source_shape(event),
            max_bytes=transformer._max_response,
        )
    except TransformError as exc:
        expected = ("raises", str(exc))
    try:
        got: Any = transformer.handle(event)
    except TransformError as exc:
        got = ("raises", str(exc))
    assert got == expected
