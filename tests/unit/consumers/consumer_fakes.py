"""Fakes shared by the consumer unit tests."""

from __future__ import annotations

import json
from collections.abc import Sequence

from consumers.exceptions import DecodeError
from consumers.models import DecodedRecord
from sluice.streams.models import PartitionKey, StreamRecord


def make_record(
    offset: int, partition: str = "0", stream: str = "t", event_id: str | None = None
) -> StreamRecord:
    body = {"event_id": event_id or f"{stream}-{partition}-{offset}", "event_type": "x"}
    return StreamRecord(
        stream=stream,
        partition=partition,
        offset=offset,
        value=json.dumps(body).encode(),
        key=b"k",
        headers={"event_type": "x", "content-type": "application/json"},
        timestamp_ms=1_700_000_000_000 + offset,
    )


def json_decoder(record: StreamRecord) -> DecodedRecord:
    """Decodes JSON values; a value of b'poison-decode' cannot be decoded."""
    try:
        event = json.loads(record.value)
    except ValueError as exc:
        raise DecodeError(f"not JSON: {exc}") from exc
    return DecodedRecord(record, "x", 1, event)


def logs(
    partitions: int, per_partition: int, stream: str = "t"
) -> dict[PartitionKey, list[StreamRecord]]:
    return {
        PartitionKey(stream, str(p)): [make_record(o, str(p), stream) for o in range(per_partition)]
        for p in range(partitions)
    }


def ids(records: Sequence[DecodedRecord]) -> list[str]:
    return [str(d.event["event_id"]) for d in records]
