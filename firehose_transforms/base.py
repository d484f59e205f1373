"""The pure transform: Firehose event in, Firehose response out.

Per record: decode (base64; KPL deaggregation through :mod:`sluice.streams.kpl`, an
aggregate failing its digest check being decoded whole, so it fails as
``undecodable``; framed Avro, Confluent or Glue, or JSON) ->
drop test events -> clean and mask (:func:`firehose_transforms.clean.to_row`, which also
checks the business rules) -> drop duplicates within the invocation by ``event_id`` ->
one :class:`~firehose_transforms.models.TransformResult` per ``recordId``.

Contract kept here (property-tested in ``tests/unit/firehose_transforms``):

- every input ``recordId`` appears exactly once in the response, in input order, with
  ``result`` ``Ok``, ``Dropped`` or ``ProcessingFailed`` and base64 data (``data``, or
  ``kafkaRecordValue`` for the MSK source shape);
- ``Ok`` records carry ``metadata.partitionKeys`` = ``{"event_type", "dt"}``; their data
  is NDJSON rows, one line per event (a KPL-aggregated record gives several lines);
- the serialized response stays under the Lambda 6 MB limit: records that would cross
  it are answered ``ProcessingFailed`` with reason ``response_size_limit``, so Firehose
  writes them to the error prefix with their raw data instead of losing them;
- a record is never lost silently: every failure carries a reason code and a message.

A KPL-aggregated record has one result: if any of its events fails, the whole record is
``ProcessingFailed`` (the aggregate goes to the error prefix unchanged and can be
replayed); if all its events are dropped, it is ``Dropped``.
"""

from __future__ import annotations

import binascii
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from firehose_transforms import jsonio
from firehose_transforms.clean import is_test_event, reject, to_row
from firehose_transforms.config import TransformSettings
from firehose_transforms.exceptions import RecordRejected, TransformError
from firehose_transforms.models import (
    InputRecord,
    Reason,
    SourceShape,
    TransformResult,
)
from schemas import codec
from schemas.config import PiiSettings
from schemas.exceptions import ValidationError
from schemas.registry.base import SchemaResolver
from sluice.errors import RetryableError, SluiceError
from sluice.streams import kpl

logger = logging.getLogger(__name__)

KPL_MAGIC = kpl.MAGIC

_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    SluiceError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    EOFError,
    OverflowError,
    AttributeError,
)
"""What the codec and fastavro raise on bytes that are not a valid event."""

_RESPONSE_ENVELOPE = len('{"records": []}')

_FRAMED = (b"\x00", b"\x03")
"""First bytes of framed Avro: the Confluent magic byte, the Glue header version."""


# --------------------------------------------------------------------------- input


def source_shape(event: Mapping[str, Any]) -> SourceShape:
    """Which source the invocation came from: ``msk``, ``kinesis`` or ``direct_put``."""
    if "sourceMSKArn" in event:
        return "msk"
    if "sourceKinesisStreamArn" in event:
        return "kinesis"
    records = event.get("records") or []
    first = records[0] if records and isinstance(records[0], Mapping) else {}
    if "kafkaRecordValue" in first or "mskRecordMetadata" in first:
        return "msk"
    if "kinesisRecordMetadata" in first:
        return "kinesis"
    return "direct_put"


def data_field(shape: SourceShape) -> str:
    """The name of the payload field in records of ``shape`` (input and output)."""
    return "kafkaRecordValue" if shape == "msk" else "data"


def parse_event(event: Mapping[str, Any]) -> tuple[SourceShape, list[InputRecord]]:
    """The invocation's records, source-independent.

    Raises:
        TransformError: the event is not a Firehose transformation event (no
            ``records`` list, a record without ``recordId``, a repeated ``recordId``).
            The invocation then fails and Firehose retries it.
    """
    if not isinstance(event, Mapping) or not isinstance(event.get("records"), list):
        raise TransformError("not a Firehose transformation event: no records list")
    shape = source_shape(event)
    field = data_field(shape)
    records: list[InputRecord] = []
    seen: set[str] = set()
    for raw in event["records"]:
        if type(raw) is not dict and not isinstance(raw, Mapping):
            raise TransformError("a record of the event is not an object")
        record_id = raw.get("recordId")
        if type(record_id) is not str:
            raise TransformError("a record of the event has no recordId")
        if record_id in seen:
            raise TransformError(f"recordId {record_id[:64]!r} appears twice in the event")
        seen.add(record_id)
        arrival = raw.get("approximateArrivalTimestamp")
        records.append(
            InputRecord(
                record_id,
                _b64decode(raw.get(field)),
                arrival if type(arrival) is int else _arrival_ms(arrival),
            )
        )
    return shape, records


def _b64decode(value: Any) -> bytes | None:
    # Firehose always sends valid base64; non-alphabet characters are skipped (as
    # base64.b64decode does by default) and a wrong length yields None.
    if type(value) is not str:
        return None
    try:
        return binascii.a2b_base64(value)
    except (binascii.Error, ValueError):
        return None


def _arrival_ms(value: Any) -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    return 0


# --------------------------------------------------------------------------- decoding


def decode_payload(
    payload: bytes, *, validate_json: bool = False, registry: SchemaResolver | None = None
) -> dict[str, Any]:
    """One event from its wire form: framed Avro (Confluent, first byte 0, or Glue
    Schema Registry, first byte 3) or JSON.

    Avro is decoded with the writer schema its header names, resolved by ``registry``
    (default: the process's, ``SLUICE_SCHEMA_REGISTRY``), so it is valid against the
    schema by construction. A JSON object is returned as parsed; with
    ``validate_json`` it is first validated and normalised by the codec.

    Raises:
        RecordRejected: ``undecodable`` (not Avro/JSON, unknown schema id, truncated),
            ``unknown_event_type``, or with ``validate_json`` the reason of the schema
            violation (field paths and codes only, never values).
        RetryableError: the schema registry cannot be asked now; the invocation fails
            and Firehose retries it (the record is not failed).
    """
    if payload[:1] in _FRAMED:
        try:
            decoded = codec.decode(payload, registry=registry)
        except RetryableError:
            raise
        except _DECODE_ERRORS as exc:
            raise reject(
                Reason.UNDECODABLE, f"not a valid framed Avro event ({_kind(exc)})"
            ) from exc
        record = decoded.record
        record.setdefault("event_type", decoded.event_type)
        return record
    try:
        obj = jsonio.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise reject(Reason.UNDECODABLE, "neither framed Avro nor valid JSON") from exc
    if not isinstance(obj, dict):
        raise reject(Reason.UNDECODABLE, "JSON value is not an object")
    event_type = obj.get("event_type")
    if not isinstance(event_type, str):
        raise reject(Reason.UNKNOWN_EVENT_TYPE, "JSON event has no event_type")
    if not validate_json:
        return obj
    try:
        record = codec.parse_event(event_type, obj, allow_server_fields=True)
    except ValidationError as exc:
        problems = "; ".join(f"{e.field or '<event>'}: {e.code}" for e in exc.errors[:5])
        raise reject(_validation_reason(exc), f"JSON event breaks the schema: {problems}") from exc
    except _DECODE_ERRORS as exc:
        raise reject(
            Reason.UNKNOWN_EVENT_TYPE, f"cannot validate JSON event ({_kind(exc)})"
        ) from exc
    record.setdefault("event_type", event_type)
    return record


_FIELD_REASONS: Mapping[tuple[str, str], Reason] = {
    ("claim_amount", "out_of_range"): Reason.NEGATIVE_CLAIM_AMOUNT,
    ("amount", "out_of_range"): Reason.NEGATIVE_AMOUNT,
    ("currency", "invalid_format"): Reason.UNKNOWN_CURRENCY,
    ("currency", "invalid_enum"): Reason.UNKNOWN_CURRENCY,
}


def _validation_reason(exc: Any) -> Reason:
    """The business reason of a schema violation, so JSON and Avro input fail alike
    (a negative claim amount is ``negative_claim_amount`` whichever the wire format)."""
    for error in exc.errors:
        reason = _FIELD_REASONS.get((error.field, error.code))
        if reason is not None:
            return reason
    return Reason.INVALID_EVENT


def _kind(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    return f"{type(exc).__name__}: {code}" if isinstance(code, str) else type(exc).__name__


# --------------------------------------------------------------------------- transform

_DAY_MS = 86_400_000
_KeyInfo = tuple[str, str, int, Mapping[str, str]]


class Transformer:
    """The transform with its settings bound; :meth:`handle` is the whole invocation.

    Args:
        settings: cleaning settings (test-source prefixes, response budget...); read
            from the environment when omitted.
        pii: the PII settings (``SLUICE_PII_HMAC_KEY``); read from the environment
            when omitted.
        registry: resolves the schema ids of framed Avro; the process's registry
            (``SLUICE_SCHEMA_REGISTRY``) when omitted.
    """

    def __init__(
        self,
        settings: TransformSettings | None = None,
        *,
        pii: PiiSettings | None = None,
        registry: SchemaResolver | None = None,
    ) -> None:
        self._registry = registry
        self._settings = settings or TransformSettings()
        key = (pii or PiiSettings()).pii_hmac_key
        self._hmac_key: str | None = key.get_secret_value() if key else None
        self._test_sources = self._settings.test_source_prefixes()
        self._max_response = self._settings.transform_max_response_bytes
        self._validate_json = self._settings.transform_validate_json
        self._partition_keys: dict[tuple[str, int], _KeyInfo] = {}

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Answer one Firehose transformation event (the Lambda handler's body).

        Equal to ``build_response(self.transform(parse_event(event)[1]), shape,
        max_bytes=...)``, done in one pass: the response entry of a one-event ``Ok``
        record is built straight from its row, and the size bound of
        :func:`build_response` is summed on the way. Only when that bound exceeds the
        budget is the invocation answered by the general path (the transform is
        deterministic, so it gives the same results).

        Raises:
            TransformError: see :func:`parse_event`.
        """
        if not isinstance(event, Mapping) or not isinstance(event.get("records"), list):
            raise TransformError("not a Firehose transformation event: no records list")
        shape = source_shape(event)
        field = data_field(shape)
        dumps_line = jsonio.dumps_line
        a2b, b2a = binascii.a2b_base64, binascii.b2a_base64
        single_row, key_info = self._single_row, self._key_info
        entries: list[dict[str, Any]] = []
        append = entries.append
        record_ids: set[str] = set()
        seen: set[str] = set()
        bound = _RESPONSE_ENVELOPE
        for raw in event["records"]:
            if type(raw) is not dict and not isinstance(raw, Mapping):
                raise TransformError("a record of the event is not an object")
            record_id = raw.get("recordId")
            if type(record_id) is not str:
                raise TransformError("a record of the event has no recordId")
            if record_id in record_ids:
                raise TransformError(f"recordId {record_id[:64]!r} appears twice in the event")
            record_ids.add(record_id)
            arrival = raw.get("approximateArrivalTimestamp")
            if type(arrival) is not int:
                arrival = _arrival_ms(arrival)
            value = raw.get(field)
            data: bytes | None = None
            if type(value) is str:  # as _b64decode
                try:
                    data = a2b(value)
                except (binascii.Error, ValueError):
                    data = None
            out: dict[str, Any] | TransformResult
            if data is not None and not data.startswith(KPL_MAGIC):
                out = single_row(record_id, data, seen)
            else:
                out = self._one(InputRecord(record_id, data, arrival), seen)
            if isinstance(out, TransformResult):
                append(result_entry(out, shape))
                bound += (
                    4 * (len(out.data) // 3 + 1)
                    + 6 * len(record_id)
                    + 160
                    + _keys_bound(out.partition_keys)
                )
            else:
                line = dumps_line(out)
                event_type, dt, keys_bound = key_info(out["event_type"], arrival)[:3]
                append(
                    {
                        "recordId": record_id,
                        "result": "Ok",
                        field: b2a(line, newline=False).decode("ascii"),
                        "metadata": {"partitionKeys": {"event_type": event_type, "dt": dt}},
                    }
                )
                bound += 4 * (len(line) // 3 + 1) + 6 * len(record_id) + 160 + keys_bound
        if bound <= self._max_response:
            return {"records": entries}
        _, records = parse_event(event)
        return build_response(self.transform(records), shape, max_bytes=self._max_response)

    def transform(self, records: Sequence[InputRecord]) -> list[TransformResult]:
        """One result per input record, in order (duplicates judged across the batch)."""
        seen: set[str] = set()
        return [self._one(record, seen) for record in records]

    def _one(self, record: InputRecord, seen: set[str]) -> TransformResult:
        data = record.data
        if data is not None and not data.startswith(KPL_MAGIC):
            return self._single(record, data, seen)
        try:
            if data is None:
                raise reject(Reason.UNDECODABLE, "record data is missing or not base64")
            rows: list[dict[str, Any]] = []
            ids: set[str] = set()
            drop: Reason | None = None
            for payload in kpl.user_payloads(data):
                event = decode_payload(
                    payload, validate_json=self._validate_json, registry=self._registry
                )
                if is_test_event(event, self._test_sources):
                    drop = drop or Reason.TEST_EVENT
                    continue
                row = to_row(event, hmac_key=self._hmac_key)
                event_id = row["event_id"]
                if event_id in seen or event_id in ids:
                    drop = drop or Reason.DUPLICATE
                    continue
                ids.add(event_id)
                rows.append(row)
        except RecordRejected as exc:
            return TransformResult(
                record_id=record.record_id,
                result="ProcessingFailed",
                data=_error_data(exc.code, exc.message),
                reason=Reason(exc.code),
                message=exc.message,
            )
        if not rows:
            reason = drop or Reason.TEST_EVENT
            return TransformResult(
                record_id=record.record_id,
                result="Dropped",
                reason=reason,
                message="test event" if reason is Reason.TEST_EVENT else "duplicate event_id",
            )
        event_type = rows[0]["event_type"]
        if any(row["event_type"] != event_type for row in rows):
            message = "aggregated record holds events of more than one type"
            return TransformResult(
                record_id=record.record_id,
                result="ProcessingFailed",
                data=_error_data(Reason.MIXED_EVENT_TYPES.value, message),
                reason=Reason.MIXED_EVENT_TYPES,
                message=message,
            )
        seen.update(ids)
        return TransformResult(
            record_id=record.record_id,
            result="Ok",
            data=rows_to_ndjson(rows),
            partition_keys=self._keys(event_type, record.arrival_ms),
            rows=len(rows),
        )

    def _single(self, record: InputRecord, data: bytes, seen: set[str]) -> TransformResult:
        """The common case: one event per record (the same rules as :meth:`_one`)."""
        out = self._single_row(record.record_id, data, seen)
        if isinstance(out, TransformResult):
            return out
        return TransformResult(
            record_id=record.record_id,
            result="Ok",
            data=jsonio.dumps_line(out),
            partition_keys=self._keys(out["event_type"], record.arrival_ms),
            rows=1,
        )

    def _single_row(
        self, record_id: str, data: bytes, seen: set[str]
    ) -> dict[str, Any] | TransformResult:
        """The row of a one-event record (its ``event_id`` is then counted as seen), or
        the record's ``Dropped`` / ``ProcessingFailed`` result."""
        try:
            event = decode_payload(data, validate_json=self._validate_json, registry=self._registry)
            if is_test_event(event, self._test_sources):
                return TransformResult(
                    record_id=record_id,
                    result="Dropped",
                    reason=Reason.TEST_EVENT,
                    message="test event",
                )
            row = to_row(event, hmac_key=self._hmac_key)
        except RecordRejected as exc:
            return TransformResult(
                record_id=record_id,
                result="ProcessingFailed",
                data=_error_data(exc.code, exc.message),
                reason=Reason(exc.code),
                message=exc.message,
            )
        event_id = row["event_id"]
        if event_id in seen:
            return TransformResult(
                record_id=record_id,
                result="Dropped",
                reason=Reason.DUPLICATE,
                message="duplicate event_id",
            )
        seen.add(event_id)
        return row

    def _keys(self, event_type: str, arrival_ms: int) -> Mapping[str, str]:
        """The partition keys (one shared, never mutated mapping per type and day)."""
        return self._key_info(event_type, arrival_ms)[3]

    def _key_info(self, event_type: str, arrival_ms: int) -> _KeyInfo:
        """``(event_type, dt, _keys_bound(keys), keys)`` of the record's partition keys
        (memoised per type and day)."""
        day = arrival_ms // _DAY_MS
        info = self._partition_keys.get((event_type, day))
        if info is None:
            dt = datetime.fromtimestamp(day * 86_400, UTC).date().isoformat()
            keys = MappingProxyType({"event_type": event_type, "dt": dt})
            info = (event_type, dt, _keys_bound(keys), keys)
            self._partition_keys[(event_type, day)] = info
        return info


def rows_to_ndjson(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Rows as NDJSON bytes: compact JSON, UTF-8, ``\\n`` after every line."""
    line = jsonio.dumps_line
    return b"".join(line(row) for row in rows)


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _error_data(code: str, message: str) -> bytes:
    return _ENCODER.encode({"errorCode": code, "errorMessage": message}).encode("utf-8")


# --------------------------------------------------------------------------- output

_OVERFLOW_MESSAGE = "response would exceed the Lambda 6 MB limit"
_OVERFLOW_DATA = _error_data(Reason.RESPONSE_SIZE_LIMIT.value, _OVERFLOW_MESSAGE)


def result_entry(result: TransformResult, shape: SourceShape) -> dict[str, Any]:
    """One response record of the Firehose data-transformation contract."""
    entry: dict[str, Any] = {
        "recordId": result.record_id,
        "result": result.result,
        data_field(shape): binascii.b2a_base64(result.data, newline=False).decode("ascii"),
    }
    if result.partition_keys is not None:
        entry["metadata"] = {"partitionKeys": dict(result.partition_keys)}
    return entry


def overflow_result(result: TransformResult) -> TransformResult:
    """``result`` answered ``ProcessingFailed`` because the response is full."""
    return TransformResult(
        record_id=result.record_id,
        result="ProcessingFailed",
        data=_OVERFLOW_DATA,
        reason=Reason.RESPONSE_SIZE_LIMIT,
        message=_OVERFLOW_MESSAGE,
    )


def _json_len(text: str) -> int:
    """Length of ``json.dumps(text)`` (computed without dumping for plain ASCII)."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return len(text) + 2
    return len(json.dumps(text))


_PK_LENGTHS: dict[tuple[tuple[str, str], ...], int] = {}


def entry_size(result: TransformResult, shape: SourceShape) -> int:
    """Bytes ``result``'s response entry takes in ``json.dumps`` of the response
    (default separators, as the Lambda runtime serializes), plus 2 for the ``, ``
    between entries. Equal to ``len(json.dumps(result_entry(result, shape))) + 2``."""
    size = (
        len('{"recordId": , "result": "", "": ""}, ')
        + _json_len(result.record_id)
        + len(result.result)
        + len(data_field(shape))
        + 4 * ((len(result.data) + 2) // 3)
    )
    keys = result.partition_keys
    if keys is not None:
        items = tuple(keys.items())
        pk = _PK_LENGTHS.get(items)
        if pk is None:
            pk = len(json.dumps(dict(items)))
            if len(_PK_LENGTHS) > 10_000:
                _PK_LENGTHS.clear()
            _PK_LENGTHS[items] = pk
        size += len(', "metadata": {"partitionKeys": }') + pk
    return size


def _keys_bound(keys: Mapping[str, str] | None) -> int:
    if keys is None:
        return 0
    return sum(6 * (len(k) + len(v)) + 8 for k, v in keys.items())


def build_response(
    results: Sequence[TransformResult], shape: SourceShape, *, max_bytes: int
) -> dict[str, Any]:
    """The Lambda response ``{"records": [...]}`` for ``results``, within ``max_bytes``.

    Room for every record's smallest answer (a ``response_size_limit`` failure) is
    reserved first; then records keep their real answer, in order, while it fits.

    Raises:
        TransformError: even all-failures would not fit (the invocation holds too many
            records; Firehose never sends that many within its 6 MB request limit).
    """
    # Fast path: an upper bound of the whole response (base64 of all data, record ids
    # escaped at worst 6 characters per character, generous per-entry overhead).
    bound = _RESPONSE_ENVELOPE + sum(
        4 * (len(r.data) // 3 + 1) + 6 * len(r.record_id) + 160 + _keys_bound(r.partition_keys)
        for r in results
    )
    if bound <= max_bytes:
        return {"records": [result_entry(r, shape) for r in results]}
    overflow_data = 4 * ((len(_OVERFLOW_DATA) + 2) // 3)
    fixed = len('{"recordId": , "result": "ProcessingFailed", "": ""}, ') + len(data_field(shape))
    minimal = [fixed + overflow_data + _json_len(r.record_id) for r in results]
    room = max_bytes - _RESPONSE_ENVELOPE - sum(minimal)
    if room < 0:
        raise TransformError(f"{len(results)} records cannot be answered within {max_bytes} bytes")
    entries: list[dict[str, Any]] = []
    for result, small in zip(results, minimal, strict=True):
        extra = entry_size(result, shape) - small
        if extra <= room:
            room -= max(extra, 0)
            entries.append(result_entry(result, shape))
        else:
            logger.warning(
                "record %s answered ProcessingFailed: response size limit", result.record_id
            )
            entries.append(result_entry(overflow_result(result), shape))
    return {"records": entries}
