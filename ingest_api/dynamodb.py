"""The DynamoDB stores of the ingest API: idempotency records and shared token buckets.

Both tables are created by ``sluice stack up`` locally (moto) and by Terraform on AWS:

- idempotency (``SLUICE_API_IDEMPOTENCY_TABLE``): hash key ``id`` (S); attributes
  ``status`` (``IN_PROGRESS`` | ``COMPLETED``), ``fingerprint``, ``answer`` (JSON),
  ``expiration`` (N, epoch seconds; the table's TTL attribute) and
  ``in_progress_expiration`` (N). A claim is one conditional ``PutItem``, the same
  condition as Powertools' idempotency: no item, or an expired one, or an
  ``IN_PROGRESS`` one whose bound passed. DynamoDB's TTL deletes expired items within
  days, so expiry is also checked in the condition and on read.
- token buckets (``SLUICE_API_RATE_LIMIT_TABLE``): hash key ``key_id`` (S);
  ``tokens`` (N) and ``updated`` (N, epoch seconds). See :class:`DynamoTokenBuckets`.

boto3 calls run in a worker thread (``asyncio.to_thread``); the client is made on
first use, never in a constructor.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any, Generic, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from ingest_api.exceptions import StoreUnavailable
from ingest_api.idempotency import (
    COMPLETED,
    IN_PROGRESS,
    Claim,
    StoredRecord,
    existing_claim,
)
from ingest_api.ratelimit import BucketState, refill
from sluice.config import AwsSettings

CLAIM_CONDITION = (
    "attribute_not_exists(#id) OR #expiration <= :now"
    " OR (#status = :in_progress AND #in_progress_expiration <= :now)"
)


class _Client:
    """A boto3 DynamoDB client made on first use (thread-safe), or the one passed in."""

    def __init__(self, client: Any | None, aws: AwsSettings | None) -> None:
        self._client = client
        self._aws = aws
        self._lock = threading.Lock()

    def get(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3
                    from botocore.config import Config

                    aws = self._aws or AwsSettings()
                    config = Config(
                        retries={"max_attempts": 2, "mode": "standard"},
                        connect_timeout=2,
                        read_timeout=2,
                        max_pool_connections=32,
                        # requests are built here from fixed shapes; botocore's
                        # validation of them costs CPU on every call of the hot path
                        parameter_validation=False,
                    )
                    self._client = boto3.client("dynamodb", config=config, **aws.client_kwargs())
        return self._client


T = TypeVar("T")
R = TypeVar("R")


class _TurnBatcher(Generic[T, R]):
    """Gathers the calls made in one event-loop turn into one blocking ``run(items)`` call.

    ``run`` runs in a worker thread and returns one result per item, in order (an
    exception instance in place of a result fails that item only). Concurrent requests
    thus share one DynamoDB round trip instead of one each.
    """

    def __init__(self, run: Callable[[list[T]], list[R | BaseException]]) -> None:
        self._run = run
        self._pending: list[tuple[T, asyncio.Future[R]]] | None = None

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        if self._pending is None:
            self._pending = []
            loop.call_soon(self._flush, loop)
        self._pending.append((item, future))
        return await future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._pending = self._pending or [], None
        loop.create_task(self._execute(batch))

    async def _execute(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await asyncio.to_thread(self._run, [item for item, _ in batch])
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _record(item: Mapping[str, Any] | None) -> StoredRecord | None:
    if not item:
        return None
    answer = item.get("answer", {}).get("S")
    return StoredRecord(
        status=item["status"]["S"],
        fingerprint=item["fingerprint"]["S"],
        expiration=float(item["expiration"]["N"]),
        in_progress_expiration=float(item.get("in_progress_expiration", {"N": "0"})["N"]),
        answer=json.loads(answer) if answer else None,
    )


class DynamoIdempotencyStore:
    """:class:`~ingest_api.idempotency.IdempotencyStore` on a DynamoDB table.

    Args:
        table: the table name.
        ttl_s: how long a completed answer is kept.
        in_progress_s: how long an ``IN_PROGRESS`` claim blocks others.
        client: a boto3 DynamoDB client (tests); made from ``aws`` on first use otherwise.
        aws: endpoint, region and credentials.
        clock: wall-clock seconds.
    """

    backend = "dynamodb"

    def __init__(
        self,
        table: str,
        ttl_s: float,
        in_progress_s: float,
        *,
        client: Any | None = None,
        aws: AwsSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = table
        self.ttl_s = ttl_s
        self.in_progress_s = in_progress_s
        self._client = _Client(client, aws)
        self._clock = clock
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._claims: _TurnBatcher[tuple[str, str], Claim] = _TurnBatcher(self._claim_many)
        self._completions: _TurnBatcher[tuple[str, str, Mapping[str, Any]], None] = _TurnBatcher(
            self._complete_many
        )

    def _claim_item(self, key: str, fingerprint: str, now: float) -> dict[str, Any]:
        return {
            "TableName": self.table,
            "Item": {
                "id": {"S": key},
                "status": {"S": IN_PROGRESS},
                "fingerprint": {"S": fingerprint},
                "expiration": {"N": str(int(now + self.ttl_s))},
                "in_progress_expiration": {"N": repr(now + self.in_progress_s)},
            },
            "ConditionExpression": CLAIM_CONDITION,
            "ExpressionAttributeNames": {
                "#id": "id",
                "#expiration": "expiration",
                "#status": "status",
                "#in_progress_expiration": "in_progress_expiration",
            },
            "ExpressionAttributeValues": {
                ":now": {"N": repr(now)},
                ":in_progress": {"S": IN_PROGRESS},
            },
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def _claim_many(self, items: list[tuple[str, str]]) -> list[Claim | BaseException]:
        """Claims of one loop turn: one conditional ``PutItem`` each, sent concurrently.

        (``TransactWriteItems`` would take a whole turn in one call, but it is all or
        nothing across unrelated events, costs twice the write units, and moto copies
        every table per transaction, which makes it unusable on the local stack.)
        """

        def one(item: tuple[str, str]) -> Claim | BaseException:
            try:
                return self._claim(*item)
            except StoreUnavailable as exc:
                return exc

        if len(items) == 1:
            return [one(items[0])]
        return list(self._pool().map(one, items))

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        max_workers=16, thread_name_prefix="sluice-idempotency"
                    )
        return self._executor

    def _claim(self, key: str, fingerprint: str) -> Claim:
        client = self._client.get()
        for _ in range(3):
            now = self._clock()
            try:
                client.put_item(**self._claim_item(key, fingerprint, now))
                return Claim("claimed", fingerprint)
            except Exception as exc:
                if _error_code(exc) != "ConditionalCheckFailedException":
                    raise StoreUnavailable(
                        f"idempotency table {self.table}: {_error_code(exc) or type(exc).__name__}"
                    ) from exc
                item = getattr(exc, "response", {}).get("Item")
            if not item:
                item = client.get_item(
                    TableName=self.table, Key={"id": {"S": key}}, ConsistentRead=True
                ).get("Item")
            found = existing_claim(_record(item), self._clock())
            if found is not None:
                return found
            # the record ended between the write and the read: claim again
        raise StoreUnavailable(f"idempotency table {self.table}: the claim kept racing")

    async def claim(self, key: str, fingerprint: str) -> Claim:
        """See :meth:`~ingest_api.idempotency.IdempotencyStore.claim` (batched per loop turn)."""
        return await self._claims.submit((key, fingerprint))

    def _complete_many(
        self, items: list[tuple[str, str, Mapping[str, Any]]]
    ) -> list[BaseException | None]:
        """Answers of one loop turn: ``BatchWriteItem`` of 25 puts at a time."""
        now = self._clock()
        requests = {
            key: {
                "PutRequest": {
                    "Item": {
                        "id": {"S": key},
                        "status": {"S": COMPLETED},
                        "fingerprint": {"S": fingerprint},
                        "answer": {"S": json.dumps(answer, separators=(",", ":"))},
                        "expiration": {"N": str(int(now + self.ttl_s))},
                        "in_progress_expiration": {"N": "0"},
                    }
                }
            }
            for key, fingerprint, answer in items
        }
        pending = list(requests.values())
        client = self._client.get()
        try:
            for _ in range(5):
                if not pending:
                    break
                chunk, pending = pending[:25], pending[25:]
                answer = client.batch_write_item(RequestItems={self.table: chunk})
                pending += answer.get("UnprocessedItems", {}).get(self.table, [])
        except (BotoCoreError, ClientError) as exc:
            failure = StoreUnavailable(
                f"idempotency table {self.table}: {_error_code(exc) or type(exc).__name__}"
            )
            return [failure for _ in items]
        if pending:
            left = StoreUnavailable(f"idempotency table {self.table}: writes left unprocessed")
            return [left for _ in items]
        return [None for _ in items]

    async def complete(self, key: str, fingerprint: str, answer: Mapping[str, Any]) -> None:
        """See :meth:`~ingest_api.idempotency.IdempotencyStore.complete` (batched per loop
        turn)."""
        await self._completions.submit((key, fingerprint, answer))

    def _release(self, key: str, fingerprint: str) -> None:
        try:
            self._client.get().delete_item(
                TableName=self.table,
                Key={"id": {"S": key}},
                ConditionExpression="#status = :in_progress AND #fingerprint = :fingerprint",
                ExpressionAttributeNames={"#status": "status", "#fingerprint": "fingerprint"},
                ExpressionAttributeValues={
                    ":in_progress": {"S": IN_PROGRESS},
                    ":fingerprint": {"S": fingerprint},
                },
            )
        except Exception as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return  # not ours any more
            raise StoreUnavailable(
                f"idempotency table {self.table}: {_error_code(exc) or type(exc).__name__}"
            ) from exc

    async def release(self, key: str, fingerprint: str) -> None:
        """See :meth:`~ingest_api.idempotency.IdempotencyStore.release`."""
        await asyncio.to_thread(self._release, key, fingerprint)

    async def close(self) -> None:
        """Stop the worker threads (the client's connection pool closes with the process)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None


class DynamoTokenBuckets:
    """Token buckets shared by every process, one DynamoDB item per key.

    A process takes tokens in leases (several at once, see
    :class:`~ingest_api.ratelimit.LeasedRateLimiter`), so the table is read and written
    once per lease, not once per request. Taking is optimistic: read the item, refill
    it (:func:`~ingest_api.ratelimit.refill`), write it back on condition that
    ``updated`` did not change; a lost race is retried.
    """

    backend = "dynamodb"

    def __init__(
        self,
        table: str,
        *,
        client: Any | None = None,
        aws: AwsSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = table
        self._client = _Client(client, aws)
        self._clock = clock

    def _take(
        self, key_id: str, rate: float, capacity: float, wanted: float
    ) -> tuple[float, float]:
        client = self._client.get()
        try:
            for _ in range(5):
                now = self._clock()
                item = client.get_item(
                    TableName=self.table, Key={"key_id": {"S": key_id}}, ConsistentRead=True
                ).get("Item")
                state = (
                    BucketState(float(item["tokens"]["N"]), float(item["updated"]["N"]))
                    if item
                    else None
                )
                granted, after = refill(state, rate, capacity, now, wanted)
                condition: dict[str, Any]
                if item:
                    condition = {
                        "ConditionExpression": "#updated = :old",
                        "ExpressionAttributeNames": {"#updated": "updated"},
                        "ExpressionAttributeValues": {":old": item["updated"]},
                    }
                else:
                    condition = {"ConditionExpression": "attribute_not_exists(key_id)"}
                try:
                    client.put_item(
                        TableName=self.table,
                        Item={
                            "key_id": {"S": key_id},
                            "tokens": {"N": str(Decimal(repr(after.tokens)))},
                            "updated": {"N": repr(after.updated)},
                        },
                        **condition,
                    )
                except Exception as exc:
                    if _error_code(exc) == "ConditionalCheckFailedException":
                        continue
                    raise
                return granted, 0.0 if granted else max(0.0, (1.0 - after.tokens) / rate)
        except StoreUnavailable:
            raise
        except Exception as exc:
            raise StoreUnavailable(
                f"rate-limit table {self.table}: {_error_code(exc) or type(exc).__name__}"
            ) from exc
        raise StoreUnavailable(f"rate-limit table {self.table}: the update kept racing")

    async def take(
        self, key_id: str, rate: float, capacity: float, wanted: float
    ) -> tuple[float, float]:
        """Take up to ``wanted`` tokens: ``(granted, seconds until one token is there)``."""
        return await asyncio.to_thread(self._take, key_id, rate, capacity, wanted)
