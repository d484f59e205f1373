"""The DynamoDB lease table of a Kinesis group and its checkpoint store.

One table per group and stream (created when missing, as the KCL does): one item per
shard with ``leaseKey`` (shard id), ``leaseOwner``, ``leaseCounter``, ``checkpoint``
(a sequence number or TRIM_HORIZON / LATEST / SHARD_END / AT_TIMESTAMP:ms /
AT_SEQUENCE_NUMBER:seq), ``parentShardIds``, ``lastCheckpointAt`` and ``lastRenewedAt``
(epoch seconds; for people and ``sluice lag``; lease expiry uses only the counter).
Every write that depends on ownership is conditional on the owner and the counter.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from sluice.config import AwsSettings
from sluice.streams.base import LeaseStore
from sluice.streams.exceptions import LeaseLostError, LeaseTableError
from sluice.streams.leases import checkpoint_position
from sluice.streams.models import TRIM_HORIZON, Lease, PartitionKey, Positions

CONDITIONAL_FAILED = "ConditionalCheckFailedException"


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore error (its class name otherwise)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", type(exc).__name__))


def lease_from_item(item: Mapping[str, Any]) -> Lease:
    """A :class:`Lease` from a DynamoDB item (resource-style, plain values)."""
    parents = item.get("parentShardIds") or []
    last = item.get("lastCheckpointAt")
    return Lease(
        lease_key=str(item["leaseKey"]),
        owner=str(item["leaseOwner"]) if item.get("leaseOwner") else None,
        counter=int(item.get("leaseCounter", 0)),
        checkpoint=str(item.get("checkpoint", TRIM_HORIZON)),
        parent_shard_ids=tuple(sorted(str(p) for p in parents)),
        last_checkpoint_at=float(last) if last is not None else None,
    )


def _deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {k: deserializer.deserialize(v) for k, v in item.items()}


class DynamoLeaseTable:
    """The lease table of one group on one stream."""

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

    def _call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except ClientError as exc:
            code = error_code(exc)
            if code == CONDITIONAL_FAILED:
                raise LeaseLostError(f"{what}: lease changed hands", code=code) from exc
            raise LeaseTableError(f"{what} on {self.table} failed", code=code) from exc
        except BotoCoreError as exc:
            raise LeaseTableError(f"{what} on {self.table} failed: {exc}") from exc

    def exists(self) -> bool:
        """True when the table exists (never creates it)."""
        from botocore.exceptions import ClientError

        try:
            self.client.describe_table(TableName=self.table)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return False
            raise LeaseTableError(f"describe {self.table}", code=error_code(exc)) from exc
        return True

    def ensure(self) -> None:
        """Create the table when it is missing and wait until it is active."""
        if self._ready:
            return
        from botocore.exceptions import ClientError

        try:
            self.client.describe_table(TableName=self.table)
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise LeaseTableError(f"describe {self.table}", code=error_code(exc)) from exc
            try:
                self.client.create_table(
                    TableName=self.table,
                    KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
                    AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
                    BillingMode="PAY_PER_REQUEST",
                )
            except ClientError as create_exc:
                if error_code(create_exc) != "ResourceInUseException":
                    raise LeaseTableError(
                        f"create {self.table}", code=error_code(create_exc)
                    ) from create_exc
            self.client.get_waiter("table_exists").wait(
                TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
            )
        self._ready = True

    def list(self) -> list[Lease]:
        self.ensure()
        leases: list[Lease] = []
        kwargs: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        while True:
            page = self._call("scan", self.client.scan, **kwargs)
            leases.extend(lease_from_item(_deserialize(i)) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(leases, key=lambda le: le.lease_key)

    def create(self, lease: Lease) -> bool:
        """Create a lease unless one exists; True when this call created it."""
        self.ensure()
        item: dict[str, Any] = {
            "leaseKey": {"S": lease.lease_key},
            "leaseCounter": {"N": str(lease.counter)},
            "checkpoint": {"S": lease.checkpoint},
            "ownerSwitchesSinceCheckpoint": {"N": "0"},
        }
        if lease.parent_shard_ids:
            item["parentShardIds"] = {"SS": list(lease.parent_shard_ids)}
        try:
            self._call(
                "create lease",
                self.client.put_item,
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(leaseKey)",
            )
        except LeaseLostError:
            return False
        return True

    def _update(
        self, what: str, lease: Lease, set_expr: str, values: dict[str, Any], condition: str
    ) -> Lease:
        values = {**values, ":one": {"N": "1"}, ":now": {"N": f"{time.time():.3f}"}}
        expr = f"SET leaseCounter = leaseCounter + :one, lastRenewedAt = :now, {set_expr}"
        answer = self._call(
            what,
            self.client.update_item,
            TableName=self.table,
            Key={"leaseKey": {"S": lease.lease_key}},
            UpdateExpression=expr.rstrip(", "),
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return lease_from_item(_deserialize(answer["Attributes"]))

    def take(self, lease: Lease, worker_id: str) -> Lease:
        """Take a lease whose counter is still the observed one (free, expired or stolen)."""
        return self._update(
            "take lease",
            lease,
            "leaseOwner = :me, ownerSwitchesSinceCheckpoint = ownerSwitchesSinceCheckpoint + :one",
            {":me": {"S": worker_id}, ":seen": {"N": str(lease.counter)}},
            "leaseCounter = :seen",
        )

    def renew(self, lease: Lease, worker_id: str) -> Lease:
        return self._update(
            "renew lease",
            lease,
            "",
            {":me": {"S": worker_id}, ":held": {"N": str(lease.counter)}},
            "leaseOwner = :me AND leaseCounter = :held",
        )

    def checkpoint(self, lease: Lease, worker_id: str, checkpoint: str) -> Lease:
        """Checkpoint a held lease; raises :class:`LeaseLostError` when it is not ours."""
        return self._update(
            "checkpoint",
            lease,
            "checkpoint = :cp, lastCheckpointAt = :now, ownerSwitchesSinceCheckpoint = :zero",
            {
                ":me": {"S": worker_id},
                ":held": {"N": str(lease.counter)},
                ":cp": {"S": checkpoint},
                ":zero": {"N": "0"},
            },
            "leaseOwner = :me AND leaseCounter = :held",
        )

    def release(self, lease: Lease, worker_id: str) -> None:
        """Give a lease up (clean shutdown) so another worker takes it at once."""
        self._call(
            "release lease",
            self.client.update_item,
            TableName=self.table,
            Key={"leaseKey": {"S": lease.lease_key}},
            UpdateExpression="REMOVE leaseOwner SET leaseCounter = leaseCounter + :one",
            ConditionExpression="leaseOwner = :me AND leaseCounter = :held",
            ExpressionAttributeValues={
                ":me": {"S": worker_id},
                ":held": {"N": str(lease.counter)},
                ":one": {"N": "1"},
            },
        )

    def set_checkpoint(self, lease_key: str, checkpoint: str) -> None:
        """Overwrite a checkpoint whoever owns the lease (replay)."""
        self.ensure()
        self._call(
            "set checkpoint",
            self.client.update_item,
            TableName=self.table,
            Key={"leaseKey": {"S": lease_key}},
            UpdateExpression=(
                "SET checkpoint = :cp, lastCheckpointAt = :now, "
                "leaseCounter = if_not_exists(leaseCounter, :zero) + :one"
            ),
            ExpressionAttributeValues={
                ":cp": {"S": checkpoint},
                ":now": {"N": f"{time.time():.3f}"},
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
            },
        )

    def last_renewed(self) -> dict[str, float]:
        """``lastRenewedAt`` per lease (epoch seconds), for liveness shown to people."""
        self.ensure()
        out: dict[str, float] = {}
        page = self._call("scan", self.client.scan, TableName=self.table, ConsistentRead=True)
        for raw in page.get("Items", []):
            item = _deserialize(raw)
            value = item.get("lastRenewedAt")
            if isinstance(value, Decimal | int | float):
                out[str(item["leaseKey"])] = float(value)
        return out


class DynamoCheckpointStore:
    """The :class:`~sluice.streams.base.CheckpointStore` of a Kinesis group: lease checkpoints."""

    def __init__(self, table: LeaseStore) -> None:
        self.table = table

    def load(self, partitions: Sequence[PartitionKey]) -> dict[PartitionKey, int | None]:
        by_key = {lease.lease_key: lease for lease in self.table.list()}
        out: dict[PartitionKey, int | None] = {}
        for tp in partitions:
            lease = by_key.get(tp.partition)
            out[tp] = None if lease is None else checkpoint_position(lease.checkpoint)
        return out

    def save(self, positions: Positions) -> None:
        for tp, last in positions.items():
            self.table.create(Lease(tp.partition, None, 0, TRIM_HORIZON))
            self.table.set_checkpoint(tp.partition, str(last))
