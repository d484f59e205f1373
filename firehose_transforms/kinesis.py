"""The Kinesis source (shard iterators) and the DynamoDB checkpoint store.

Each shard is read from just after its checkpointed sequence number
(``AFTER_SEQUENCE_NUMBER``), or from ``TRIM_HORIZON`` when it has none. Checkpoints go
to a small DynamoDB table (created on first use, as the KCL does with its lease table),
one item per ``(stream, shard)``, written only when the delivery calls
:meth:`KinesisSource.commit` after its S3 writes; a checkpoint never moves backwards
(conditional write).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from firehose_transforms.base import KPL_MAGIC, deaggregate
from firehose_transforms.delivery import CheckpointStore
from firehose_transforms.exceptions import (
    DeliveryConfigurationError,
    DeliveryError,
    RecordRejected,
)
from firehose_transforms.models import SourceRecord
from sluice.config import AwsSettings

logger = logging.getLogger(__name__)

_THROTTLED = frozenset(
    {"ProvisionedThroughputExceededException", "LimitExceededException", "ThrottlingException"}
)
_SEQUENCE_WIDTH = 64


@dataclass
class _Shard:
    shard_id: str
    iterator: str | None
    last: str | None
    drained: bool = False


class KinesisSource:
    """Reads every shard of one stream.

    Args:
        stream: the stream name.
        checkpoints: where positions are stored.
        client: a boto3 Kinesis client (tests); created lazily otherwise.
        aws: AWS settings for the lazy client.
        limit: ``Limit`` of each GetRecords call.
    """

    kind = "kinesis"

    def __init__(
        self,
        stream: str,
        checkpoints: CheckpointStore,
        *,
        client: Any = None,
        aws: AwsSettings | None = None,
        limit: int = 1000,
    ) -> None:
        self.name = stream
        self._checkpoints = checkpoints
        self._client = client
        self._aws = aws
        self._limit = limit
        self._shards: list[_Shard] | None = None
        self._cursor = 0

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = (self._aws or AwsSettings()).client("kinesis")
        return self._client

    def _call(self, method: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(**kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
            if code == "ResourceNotFoundException":
                raise DeliveryConfigurationError(
                    f"stream {self.name} does not exist", code=code
                ) from exc
            raise DeliveryError(f"{method} on {self.name}: {code}", code=code) from exc
        except BotoCoreError as exc:
            raise DeliveryError(
                f"{method} on {self.name}: {exc}", code="kinesis_unreachable"
            ) from exc

    def _ensure(self) -> list[_Shard]:
        if self._shards is None:
            shards: list[_Shard] = []
            token: str | None = None
            while True:
                kwargs: dict[str, Any] = (
                    {"NextToken": token} if token else {"StreamName": self.name}
                )
                page = self._call("list_shards", **kwargs)
                for shard in page.get("Shards", []):
                    shard_id = shard["ShardId"]
                    last = self._checkpoints.load(self.name, shard_id)
                    shards.append(_Shard(shard_id, self._iterator(shard_id, last), last))
                token = page.get("NextToken")
                if not token:
                    break
            self._shards = shards
        return self._shards

    def _iterator(self, shard_id: str, after: str | None) -> str | None:
        kwargs: dict[str, Any] = {"StreamName": self.name, "ShardId": shard_id}
        if after:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=after)
        else:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        iterator = self._call("get_shard_iterator", **kwargs).get("ShardIterator")
        return str(iterator) if iterator else None

    def poll(self, max_records: int, timeout: float) -> list[SourceRecord]:
        """GetRecords on each open shard in turn until records come or ``timeout`` passes."""
        shards = self._ensure()
        deadline = time.monotonic() + timeout
        while True:
            records: list[SourceRecord] = []
            for _ in range(len(shards)):
                shard = shards[self._cursor % len(shards)]
                self._cursor += 1
                if shard.iterator is None:
                    shard.drained = True
                    continue
                records.extend(self._read(shard, max_records - len(records)))
                if len(records) >= max_records:
                    break
            if records or time.monotonic() >= deadline:
                return records
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def _read(self, shard: _Shard, limit: int) -> list[SourceRecord]:
        from firehose_transforms.exceptions import DeliveryError as _DeliveryError

        try:
            page = self._call(
                "get_records", ShardIterator=shard.iterator, Limit=max(1, min(limit, self._limit))
            )
        except _DeliveryError as exc:
            if exc.code in _THROTTLED:
                logger.warning("throttled on %s/%s; backing off", self.name, shard.shard_id)
                time.sleep(0.5)
                return []
            if exc.code == "ExpiredIteratorException":
                shard.iterator = self._iterator(shard.shard_id, shard.last)
                return []
            raise
        shard.iterator = page.get("NextShardIterator")
        out: list[SourceRecord] = []
        for r in page.get("Records", []):
            out.extend(user_records(shard.shard_id, r))
        if out:
            shard.last = out[-1].position
        shard.drained = not out and int(page.get("MillisBehindLatest", 0) or 0) == 0
        return out

    def drained(self) -> bool:
        """Every shard answered an empty read at the tip of the stream."""
        return self._shards is not None and all(s.drained for s in self._shards)

    def commit(self, positions: Mapping[str, str]) -> None:
        """Checkpoint each shard's last delivered sequence number."""
        for shard_id, sequence in positions.items():
            self._checkpoints.save(self.name, shard_id, sequence)

    def close(self) -> None:
        """Nothing to release (stateless HTTP client)."""
        self._shards = None


def user_records(shard_id: str, record: Mapping[str, Any]) -> list[SourceRecord]:
    """One GetRecords record as the delivery's source records.

    A KPL aggregate is split into its user records (``subsequence`` 0, 1, ...), as
    Firehose deaggregates before it invokes the transform; each then gets its own
    result and, when it fails, its own error record with its own raw data. An
    aggregate that does not verify (bad digest) is passed on whole: the transform
    answers it ``ProcessingFailed`` (``undecodable``) and it lands in the error prefix.
    """
    data = bytes(record["Data"])
    common: dict[str, Any] = {
        "partition": shard_id,
        "position": str(record["SequenceNumber"]),
        "arrival_ms": _ms(record.get("ApproximateArrivalTimestamp")),
        "key": record.get("PartitionKey"),
    }
    if data.startswith(KPL_MAGIC):
        try:
            users = deaggregate(data)
        except RecordRejected:
            logger.warning("KPL aggregate %s does not verify; passed on whole", common["position"])
        else:
            return [SourceRecord(value=u, subsequence=i, **common) for i, u in enumerate(users)]
    return [SourceRecord(value=data, **common)]


def _ms(value: Any) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, (int, float)):
        return int(value * 1000) if value < 1e11 else int(value)
    return 0


class DynamoDBCheckpointStore:
    """Checkpoints in DynamoDB: one item per ``(stream, shard)``.

    Item: ``checkpoint_key`` (S, ``<stream>/<shard>``, hash key), ``sequence_number`` (S),
    ``sequence_sort`` (S, zero-padded to 64 digits so string order is numeric order),
    ``updated_at`` (N, epoch seconds). The table is created (on-demand capacity) on first
    use when missing.
    """

    def __init__(self, table: str, *, client: Any = None, aws: AwsSettings | None = None) -> None:
        self.table = table
        self._client = client
        self._aws = aws
        self._ready = False

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = (self._aws or AwsSettings()).client("dynamodb")
        return self._client

    def _ensure(self) -> None:
        if self._ready:
            return
        from botocore.exceptions import ClientError

        try:
            self.client.describe_table(TableName=self.table)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise _wrap(exc, "describe_table") from exc
            try:
                self.client.create_table(
                    TableName=self.table,
                    KeySchema=[{"AttributeName": "checkpoint_key", "KeyType": "HASH"}],
                    AttributeDefinitions=[
                        {"AttributeName": "checkpoint_key", "AttributeType": "S"}
                    ],
                    BillingMode="PAY_PER_REQUEST",
                )
            except ClientError as create_exc:
                if create_exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
                    raise _wrap(create_exc, "create_table") from create_exc
            self.client.get_waiter("table_exists").wait(
                TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
            )
        self._ready = True

    def load(self, stream: str, shard: str) -> str | None:
        """The stored sequence number of ``(stream, shard)``, or ``None``."""
        from botocore.exceptions import ClientError

        self._ensure()
        try:
            item = self.client.get_item(
                TableName=self.table,
                Key={"checkpoint_key": {"S": f"{stream}/{shard}"}},
                ConsistentRead=True,
            ).get("Item")
        except ClientError as exc:
            raise _wrap(exc, "get_item") from exc
        return str(item["sequence_number"]["S"]) if item else None

    def save(self, stream: str, shard: str, sequence: str) -> None:
        """Store ``sequence``; an older position than the stored one raises."""
        from botocore.exceptions import ClientError

        self._ensure()
        padded = sequence.zfill(_SEQUENCE_WIDTH)
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    "checkpoint_key": {"S": f"{stream}/{shard}"},
                    "sequence_number": {"S": sequence},
                    "sequence_sort": {"S": padded},
                    "updated_at": {"N": str(int(time.time()))},
                },
                ConditionExpression="attribute_not_exists(checkpoint_key) OR sequence_sort <= :new",
                ExpressionAttributeValues={":new": {"S": padded}},
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "ConditionalCheckFailedException":
                raise DeliveryConfigurationError(
                    f"checkpoint of {stream}/{shard} would go backwards to {sequence}",
                    code="checkpoint_regression",
                ) from exc
            raise _wrap(exc, "put_item") from exc


def _wrap(exc: Any, what: str) -> DeliveryError:
    code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return DeliveryError(f"DynamoDB {what}: {code}", code=code)
