"""Sinks shipped with the framework and the dead-letter queue over the Publisher.

- :class:`WarehouseSink`: one warehouse transaction per batch: stage the cleaned rows,
  MERGE on ``event_id``, commit. A rewritten batch changes nothing (MERGE).
- :class:`ZoneSink`: gzip NDJSON objects in the S3 zone's clean prefix, named as Firehose
  names its objects (:mod:`sluice.zone`) from the first and last offset of each partition
  in the batch, so a rewritten batch writes the same keys.
- :class:`PublisherDeadLetters`: the dead-letter queue, published through the
  :class:`~producers.base.Publisher` of the chosen backend.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from consumers.base import dead_letter_headers
from consumers.exceptions import DeadLetterError
from consumers.models import DeadLetter, DecodedRecord
from sluice.config import StreamBackend, ZoneSettings
from sluice.errors import FatalError, RetryableError
from sluice.zone import NDJSON_CONTENT_TYPE, GroupName, clean_key, gzip_bytes, ndjson

logger = logging.getLogger(__name__)

DEAD_LETTER_CONTENT_TYPE = "application/vnd.sluice.dead-letter+json"

RowBuilder = Callable[[Mapping[str, Any]], dict[str, Any]]


def default_row_builder(hmac_key: str | None = None) -> RowBuilder:
    """The transform's pure cleaning function (decoded event -> warehouse row)."""
    from firehose_transforms.clean import to_row

    def build(event: Mapping[str, Any]) -> dict[str, Any]:
        return to_row(event, hmac_key=hmac_key)

    return build


class SinkStateError(FatalError):
    """A sink method was called outside its transaction."""

    default_code = "sink_state"


class WarehouseSink:
    """Stages a batch's rows and MERGEs them in one warehouse transaction.

    ``warehouse`` is a :class:`warehouse.base.Warehouse`; rows the warehouse rejects are
    quarantined by it in the same transaction (never dropped). The batch takes the
    writers' lock on the targets first, so it runs one after the other with the loaders;
    a row whose ``event_id`` belongs to another tenant is quarantined by the MERGE, never
    merged (the warehouse's rule, the same as the loader's).
    """

    def __init__(
        self,
        warehouse: Any,
        *,
        row_builder: RowBuilder | None = None,
        source_prefix: str = "",
        owns_warehouse: bool = False,
    ) -> None:
        self.warehouse = warehouse
        self.owns_warehouse = owns_warehouse
        self._rows = row_builder
        self.source_prefix = source_prefix
        self._batch: Any = None
        self._batch_id = ""

    @property
    def rows(self) -> RowBuilder:
        if self._rows is None:
            self._rows = default_row_builder()
        return self._rows

    def begin(self, batch_id: str) -> None:
        self._batch = self.warehouse.begin()
        self._batch_id = batch_id

    def write(self, records: Sequence[DecodedRecord]) -> None:
        from warehouse.models import TargetTable

        if self._batch is None:
            raise SinkStateError("write outside a transaction")
        by_table: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for d in records:
            by_table[TargetTable.for_event_type(d.event_type)].append(self.rows(d.event))
        # the writers' lock on every target, in one statement: serialised with the
        # loaders, never a deadlock between two sinks
        self._batch.lock(list(TargetTable))
        for table, rows in sorted(by_table.items()):
            self._batch.stage(table, rows, source=f"{self.source_prefix}batch:{self._batch_id}")

    def commit(self) -> None:
        if self._batch is None:
            raise SinkStateError("commit outside a transaction")
        batch, self._batch = self._batch, None
        try:
            batch.merge()
        except BaseException:
            batch.rollback()
            raise
        batch.commit()

    def rollback(self) -> None:
        batch, self._batch = self._batch, None
        if batch is not None:
            batch.rollback()

    def close(self) -> None:
        """Close the warehouse connection when this sink opened it."""
        if self.owns_warehouse:
            self.warehouse.close()


ZONE_SINK_KIND = "consumer"
"""The ``kind`` in the identity of the zone sink's objects (see :class:`sluice.zone.GroupName`)."""


def zone_objects(
    records: Sequence[DecodedRecord], rows: RowBuilder, zone: ZoneSettings
) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """Group a batch into zone objects: key -> (event type, rows in offset order).

    One object per event type, stream, partition and arrival date, named as Firehose
    names its objects (:func:`sluice.zone.clean_key`) from the first and last offset, so a
    rewritten batch writes the same keys.
    """
    groups: dict[tuple[str, str, str, str], list[DecodedRecord]] = defaultdict(list)
    for d in records:
        ts = d.record.timestamp_ms or 0
        dt = datetime.fromtimestamp(ts / 1000, tz=UTC).strftime("%Y-%m-%d")
        groups[(d.event_type, d.record.stream, d.record.partition, dt)].append(d)
    out: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    for (event_type, stream, partition, dt), items in sorted(groups.items()):
        items.sort(key=lambda d: d.record.offset)
        name = GroupName(
            kind=ZONE_SINK_KIND,
            source=stream,
            partition=partition,
            first=str(items[0].record.offset),
            last=str(items[-1].record.offset),
            first_arrival_ms=items[0].record.timestamp_ms or 0,
        )
        out[clean_key(zone, event_type, dt, name)] = (event_type, [rows(d.event) for d in items])
    return out


class ZoneSink:
    """Writes each batch as gzip NDJSON objects into the S3 zone's clean prefix (no
    manifest: the loader finds them through S3 notifications and its sweep)."""

    def __init__(
        self,
        *,
        zone: ZoneSettings | None = None,
        s3_client: Any = None,
        row_builder: RowBuilder | None = None,
    ) -> None:
        self.zone = zone or ZoneSettings()
        self._s3 = s3_client
        self._rows = row_builder
        self._pending: list[DecodedRecord] | None = None
        self.written: list[str] = []

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            from sluice.config import AwsSettings

            self._s3 = AwsSettings().client("s3")
        return self._s3

    def begin(self, batch_id: str) -> None:
        self._pending = []

    def write(self, records: Sequence[DecodedRecord]) -> None:
        if self._pending is None:
            raise SinkStateError("write outside a transaction")
        self._pending.extend(records)

    def commit(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        if self._pending is None:
            raise SinkStateError("commit outside a transaction")
        pending, self._pending = self._pending, None
        rows = self._rows or default_row_builder()
        objects = zone_objects(pending, rows, self.zone)
        bucket = self.zone.s3_bucket
        try:
            for key, (_event_type, items) in objects.items():
                self.s3.put_object(
                    Bucket=bucket,
                    Key=key,
                    Body=gzip_bytes(ndjson(items)),
                    ContentType=NDJSON_CONTENT_TYPE,
                )
                self.written.append(key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
            raise RetryableError(f"writing the S3 zone failed: {code}", code=code) from exc
        except BotoCoreError as exc:
            raise RetryableError(f"writing the S3 zone failed: {exc}") from exc

    def rollback(self) -> None:
        self._pending = None


def dead_letter_record(letter: DeadLetter, backend: StreamBackend | str) -> Any:
    """The :class:`~producers.models.OutgoingRecord` of a dead letter (pure).

    Kafka carries the original value and the reason in headers. Kinesis has no headers,
    so the value becomes a JSON envelope of the headers and the base64 original value.
    """
    from producers.models import OutgoingRecord

    record = letter.record
    headers = dead_letter_headers(letter)
    event_id = headers.get("event_id") or f"{record.stream}/{record.partition}/{record.offset}"
    key = (record.key or b"").decode(
        "utf-8", errors="replace"
    ) or f"{record.stream}/{record.partition}"
    if StreamBackend(backend) is StreamBackend.KINESIS:
        envelope = {"headers": headers, "value_b64": base64.b64encode(record.value).decode()}
        value = json.dumps(envelope, separators=(",", ":")).encode()
        headers = {**headers, "content-type": DEAD_LETTER_CONTENT_TYPE}
    else:
        value = record.value
    return OutgoingRecord(
        event_id=event_id,
        event_type=headers.get("event_type", "dead-letter"),
        partition_key=key,
        value=value,
        headers=headers,
    )


class PublisherDeadLetters:
    """The dead-letter queue: publishes letters through a Publisher, synchronously."""

    def __init__(self, publisher: Any, stream: str, backend: StreamBackend | str) -> None:
        self.publisher = publisher
        self.stream = stream
        self.backend = StreamBackend(backend)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.published = 0

    def _run(self, coro: Any) -> Any:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coro)

    def send(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        records = [dead_letter_record(letter, self.backend) for letter in letters]
        try:
            results = self._run(self.publisher.publish(self.stream, records))
        except (RetryableError, FatalError) as exc:
            raise DeadLetterError(f"dead-letter publish failed: {exc}", code=exc.code) from exc
        failed = [r for r in results if not r.ok]
        if failed:
            raise DeadLetterError(
                f"{len(failed)} of {len(records)} dead letters not acknowledged "
                f"({failed[0].error_code})",
                code=failed[0].error_code,
            )
        self.published += len(records)
        logger.warning("%d records dead-lettered to %s", len(records), self.stream)

    def close(self) -> None:
        if self._loop is not None:
            self._run(self.publisher.close())
            self._loop.close()
            self._loop = None
