"""Kinesis Data Streams publisher: PutRecords, KPL aggregation, retries of failed records.

- The boto3 client is passed in (``client=``) or created on first publish, with
  botocore's own retries off (this module decides what is retried) and timeouts
  bounded by the delivery timeout. Blocking calls run in a thread executor.
- With aggregation on (``SLUICE_KINESIS_AGGREGATION``, default on), user records are
  packed into KPL aggregated records (aws-kinesis-agg) grouped by shard (from the
  stream's shard map) or by partition key, so one entity's records go where its own
  key maps. Every user record of an aggregate gets the aggregate's result.
- Records go out in calls of at most 500 records / 5 MiB. Only entries that failed
  with a retryable code (``ProvisionedThroughputExceededException``,
  ``InternalFailure``, throttling) are sent again, after exponential backoff with full
  jitter, within the retry budget; what still fails is reported failed with its last
  error code. Nothing is dropped: every record gets exactly one result.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from producers.base import (
    MAX_BYTES_PER_RECORD,
    HashRange,
    KinesisEntry,
    RetryPolicy,
    aggregate_entries,
    classify_put_records,
    is_retryable_kinesis_code,
    next_retry_delay,
    plain_entries,
    plan_batches,
    results_in_order,
)
from producers.config import PublisherSettings
from producers.exceptions import PublisherClosedError
from producers.models import OutgoingRecord, PublishResult
from sluice.config import AwsSettings

logger = logging.getLogger(__name__)

RECORD_TOO_LARGE = "RecordTooLarge"
CALL_TIMED_OUT = "RequestTimeout"


@dataclass(slots=True)
class _Pending:
    """An entry still to be sent, with the error of its last attempt."""

    entry: KinesisEntry
    attempts: int = 0
    last_error: tuple[str, str] = ("InternalFailure", "not sent")


@dataclass(slots=True)
class _ShardMap:
    ranges: list[HashRange]
    fetched_at: float


@dataclass(slots=True)
class _CallOutcome:
    """What one PutRecords call did to its entries (indexes into the call's entries)."""

    succeeded: dict[int, tuple[str, str]] = field(default_factory=dict)
    retry: dict[int, tuple[str, str]] = field(default_factory=dict)
    failed: dict[int, tuple[str, str]] = field(default_factory=dict)


class KinesisPublisher:
    """Publishes to Kinesis streams; one :class:`PublishResult` per record, in order.

    Args:
        settings: publisher tuning (delivery timeout, aggregation, retry budget, ...).
        aws_settings: endpoint, region and credentials for the lazily created client.
        client: a ready boto3 Kinesis client (tests, or a caller that owns one).
        rng: the random source of the backoff jitter.
    """

    def __init__(
        self,
        settings: PublisherSettings | None = None,
        aws_settings: AwsSettings | None = None,
        *,
        client: Any = None,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings or PublisherSettings()
        self._aws_settings = aws_settings
        self._client = client
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._shard_maps: dict[str, _ShardMap] = {}
        self._closed = False

    @property
    def settings(self) -> PublisherSettings:
        """The publisher settings in use."""
        return self._settings

    @property
    def retry_policy(self) -> RetryPolicy:
        """Backoff and budget for failed records (never beyond the delivery timeout)."""
        s = self._settings
        return RetryPolicy(
            base_delay=s.kinesis_backoff_base_s,
            max_delay=s.kinesis_backoff_max_s,
            budget=min(s.kinesis_retry_budget_s, s.publish_delivery_timeout_s),
            max_attempts=s.kinesis_max_attempts,
        )

    def client(self) -> Any:
        """The boto3 Kinesis client (created on first use)."""
        with self._lock:
            if self._closed:
                raise PublisherClosedError("publish after close")
            if self._client is None:
                import boto3
                from botocore.config import Config

                timeout = self._settings.publish_delivery_timeout_s
                config = Config(
                    connect_timeout=min(2.0, timeout),
                    read_timeout=timeout,
                    retries={"mode": "standard", "total_max_attempts": 1},
                )
                aws = self._aws_settings or AwsSettings()
                self._client = boto3.client("kinesis", config=config, **aws.client_kwargs())
            return self._client

    # ------------------------------------------------------------------ publish

    async def publish(self, stream: str, records: Sequence[OutgoingRecord]) -> list[PublishResult]:
        """PutRecords ``records`` to ``stream``, retrying only the failed ones."""
        if not records:
            return []
        client = self.client()
        started = time.monotonic()
        deadline = started + self._settings.publish_delivery_timeout_s
        by_index: dict[int, PublishResult] = {}

        sendable: list[int] = []
        for index, record in enumerate(records):
            if record.size > MAX_BYTES_PER_RECORD:
                by_index[index] = PublishResult.failure(
                    record,
                    stream,
                    code=RECORD_TOO_LARGE,
                    message="record with its partition key is larger than 1 MiB",
                    retryable=False,
                    attempts=0,
                )
            else:
                sendable.append(index)

        entries = await self._entries(client, stream, records, sendable)
        pending = [_Pending(entry) for entry in entries]
        policy = self.retry_policy
        while pending:
            retry: list[_Pending] = []
            plan = plan_batches([p.entry.size for p in pending])
            for batch in plan.batches:
                call = [pending[i] for i in batch]
                for item in call:
                    item.attempts += 1
                outcome = await self._put_records(client, stream, call, deadline)
                for position, (shard_id, sequence) in outcome.succeeded.items():
                    item = call[position]
                    for member in item.entry.members:
                        by_index[member] = PublishResult(
                            event_id=records[member].event_id,
                            status="ok",
                            stream=stream,
                            shard_id=shard_id,
                            sequence_number=sequence,
                            attempts=item.attempts,
                        )
                for position, (code, message) in outcome.failed.items():
                    item = call[position]
                    _fail_members(by_index, records, item, stream, code, message, retryable=False)
                for position, error in outcome.retry.items():
                    item = call[position]
                    item.last_error = error
                    retry.append(item)
            if not retry:
                break
            delay = next_retry_delay(
                max(item.attempts for item in retry), time.monotonic() - started, policy, self._rng
            )
            if delay is None or time.monotonic() + delay >= deadline:
                for item in retry:
                    code, message = item.last_error
                    _fail_members(by_index, records, item, stream, code, message, retryable=True)
                break
            logger.debug(
                "retrying %d of %d Kinesis records in %.3f s", len(retry), len(pending), delay
            )
            await asyncio.sleep(delay)
            pending = retry
        return results_in_order(records, by_index, stream)

    async def _entries(
        self, client: Any, stream: str, records: Sequence[OutgoingRecord], indexes: list[int]
    ) -> list[KinesisEntry]:
        if not self._settings.kinesis_aggregation:
            return plain_entries(records, indexes)
        shard_ranges = await self._shard_ranges(client, stream)
        return aggregate_entries(records, indexes, shard_ranges)

    async def _shard_ranges(self, client: Any, stream: str) -> list[HashRange] | None:
        """The open shards' hash key ranges, cached; ``None`` when they cannot be read."""
        from botocore.exceptions import BotoCoreError, ClientError

        cached = self._shard_maps.get(stream)
        now = time.monotonic()
        if cached is not None and now - cached.fetched_at < self._settings.kinesis_shard_map_ttl_s:
            return cached.ranges
        try:
            ranges = await asyncio.wait_for(
                asyncio.to_thread(_list_open_shard_ranges, client, stream),
                timeout=min(2.0, self._settings.publish_delivery_timeout_s / 2),
            )
        except (ClientError, BotoCoreError, TimeoutError) as exc:
            # Aggregation by partition key keeps per-key order without the shard map.
            logger.debug("no shard map for %s (%s); aggregating by partition key", stream, exc)
            return None
        self._shard_maps[stream] = _ShardMap(ranges, now)
        return ranges

    async def _put_records(
        self, client: Any, stream: str, call: list[_Pending], deadline: float
    ) -> _CallOutcome:
        """One PutRecords call; whole-call errors become per-entry outcomes."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            HTTPClientError,
        )
        from botocore.exceptions import (
            ConnectionError as BotoConnectionError,
        )

        outcome = _CallOutcome()
        request = [item.entry.request_entry() for item in call]
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError
            response = await asyncio.wait_for(
                asyncio.to_thread(client.put_records, StreamName=stream, Records=request),
                timeout=remaining,
            )
        except TimeoutError:
            # The call may still land: the records are reported failed (retryable) and
            # a resend can duplicate them; the warehouse dedupes on event_id.
            error = (CALL_TIMED_OUT, "PutRecords did not answer within the delivery timeout")
            outcome.retry = dict.fromkeys(range(len(call)), error)
            return outcome
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
            message = str(exc.response.get("Error", {}).get("Message", code))
            target = outcome.retry if is_retryable_kinesis_code(code) else outcome.failed
            target.update(dict.fromkeys(range(len(call)), (code, message)))
            return outcome
        except (BotoConnectionError, HTTPClientError) as exc:
            error = (type(exc).__name__, str(exc))
            outcome.retry = dict.fromkeys(range(len(call)), error)
            return outcome
        except BotoCoreError as exc:
            outcome.failed = dict.fromkeys(range(len(call)), (type(exc).__name__, str(exc)))
            return outcome
        sorted_response = classify_put_records(response, len(call))
        outcome.succeeded = sorted_response.succeeded
        outcome.failed = sorted_response.failed
        outcome.retry = {i: sorted_response.retry_errors[i] for i in sorted_response.retry}
        return outcome

    # ------------------------------------------------------------------ lifecycle

    async def flush(self, timeout: float | None = None) -> int:
        """Nothing is buffered between calls: every publish completes before returning."""
        return 0

    async def ready(self, timeout: float = 2.0) -> bool:
        """True when the Kinesis endpoint answers ``ListStreams`` within ``timeout``."""
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client()
        try:
            await asyncio.wait_for(asyncio.to_thread(client.list_streams, Limit=1), timeout)
        except (ClientError, BotoCoreError, TimeoutError):
            return False
        return True

    async def close(self) -> None:
        """Refuse further publishing (the boto3 client holds no buffered data)."""
        with self._lock:
            self._closed = True


def _fail_members(
    by_index: dict[int, PublishResult],
    records: Sequence[OutgoingRecord],
    item: _Pending,
    stream: str,
    code: str,
    message: str,
    *,
    retryable: bool,
) -> None:
    for member in item.entry.members:
        by_index[member] = PublishResult.failure(
            records[member],
            stream,
            code=code,
            message=message,
            retryable=retryable,
            attempts=item.attempts,
        )


def _list_open_shard_ranges(client: Any, stream: str) -> list[HashRange]:
    """Hash key ranges of the stream's open shards (blocking; run in a thread)."""
    ranges: list[HashRange] = []
    kwargs: dict[str, Any] = {"StreamName": stream}
    while True:
        page = client.list_shards(**kwargs)
        for shard in page.get("Shards", []):
            if shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber"):
                continue  # closed by a reshard; takes no new records
            hash_range = shard["HashKeyRange"]
            ranges.append((int(hash_range["StartingHashKey"]), int(hash_range["EndingHashKey"])))
        token = page.get("NextToken")
        if not token:
            return sorted(ranges)
        kwargs = {"NextToken": token}
