"""Kinesis reader: the worker source (leases in :mod:`sluice.streams.dynamodb`, decisions
in :mod:`sluice.streams.leases`), and the whole-stream and backlog scans (reconcile, the
demo, lag, replay)."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sluice.config import AwsSettings
from sluice.streams import kpl
from sluice.streams.base import LeaseStore
from sluice.streams.config import ReaderOptions
from sluice.streams.dynamodb import DynamoLeaseTable, error_code
from sluice.streams.exceptions import (
    CheckpointError,
    KinesisReadError,
    LeaseLostError,
    LeaseTableError,
    StreamNotFoundError,
)
from sluice.streams.leases import (
    AT_SEQUENCE_PREFIX,
    Observation,
    ShardInfo,
    checkpoint_position,
    expired,
    iterator_request,
    new_leases,
    observe,
    parents_finished,
    plan_take,
)
from sluice.streams.models import (
    NO_HEADERS,
    SHARD_END,
    TRIM_HORIZON,
    Lease,
    PartitionKey,
    Positions,
    StreamRecord,
)

logger = logging.getLogger(__name__)

THROTTLED = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "LimitExceededException",
}


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def to_stream_records(stream: str, shard: str, raw: Mapping[str, Any]) -> list[StreamRecord]:
    """The records of one GetRecords entry.

    A KPL aggregate gives its user records: they share its sequence number (the
    checkpoint unit) and carry their sub-sequence number and their own partition key
    and explicit hash key. Anything else, including an aggregate that does not verify,
    is one record with the entry's own keys.
    """
    seq = int(raw["SequenceNumber"])
    arrival = raw.get("ApproximateArrivalTimestamp")
    timestamp_ms = _epoch_ms(arrival)
    data = bytes(raw["Data"])
    users = kpl.deaggregate(data) if data[:4] == kpl.MAGIC else None
    if users is None:
        if data[:4] == kpl.MAGIC:
            logger.warning(
                "%s/%s %s: KPL aggregate does not verify; passed on whole", stream, shard, seq
            )
        return [
            StreamRecord(
                stream,
                shard,
                seq,
                data,
                str(raw.get("PartitionKey", "")).encode(),
                NO_HEADERS,
                timestamp_ms,
                None,
                raw.get("ExplicitHashKey"),
            )
        ]
    return [
        StreamRecord(
            stream,
            shard,
            seq,
            user.data,
            user.partition_key.encode(),
            NO_HEADERS,
            timestamp_ms,
            user.sub_sequence,
            user.explicit_hash_key,
        )
        for user in users
    ]


def _epoch_ms(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, int | float):
        return int(value * 1000) if value < 1e11 else int(value)
    return None


def list_shards(client: Any, stream: str) -> list[ShardInfo]:
    """Every shard of ``stream`` (open and closed) with its parents."""
    from botocore.exceptions import ClientError

    shards: list[ShardInfo] = []
    kwargs: dict[str, Any] = {"StreamName": stream}
    try:
        while True:
            page = client.list_shards(**kwargs)
            for shard in page.get("Shards", []):
                shards.append(
                    ShardInfo(
                        shard["ShardId"],
                        shard.get("ParentShardId"),
                        shard.get("AdjacentParentShardId"),
                        closed="EndingSequenceNumber" in shard.get("SequenceNumberRange", {}),
                    )
                )
            token = page.get("NextToken")
            if not token:
                break
            kwargs = {"NextToken": token}
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise StreamNotFoundError(
                f"stream {stream} does not exist", code=error_code(exc)
            ) from exc
        raise KinesisReadError(f"list shards of {stream}", code=error_code(exc)) from exc
    return shards


class KinesisSource:
    """One worker of a Kinesis consumer group (the same batch API as Kafka)."""

    def __init__(
        self,
        stream: str,
        *,
        options: ReaderOptions,
        aws: AwsSettings | None = None,
        kinesis_client: Any = None,
        leases: LeaseStore | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.options = options
        self._aws = aws
        self._kinesis = kinesis_client
        self.leases: LeaseStore = leases or DynamoLeaseTable(
            options.lease_table_for(stream), aws=aws
        )
        self.worker_id = options.worker_id or default_worker_id()
        self._clock = clock
        self.held: dict[str, Lease] = {}
        self._iterators: dict[str, str | None] = {}
        self._last_returned: dict[str, int] = {}
        self._ended: dict[str, int | None] = {}
        self._at_tip: set[str] = set()
        self._closed: set[str] = set()
        self._first_scan: float | None = None
        self._resume: dict[str, str] = {}
        self._next_read: dict[str, float] = {}
        self._checkpointed: dict[str, int] = {}
        self._fanout: dict[str, float] = {}
        self._observations: dict[str, Observation] = {}
        self._last_take = -1e9
        self._last_renew = -1e9
        self._all: list[Lease] = []
        self.on_assigned: Callable[[Mapping[PartitionKey, int | None]], None] | None = None
        self.on_revoked: Callable[[list[PartitionKey]], None] | None = None

    @property
    def kinesis(self) -> Any:
        if self._kinesis is None:
            self._kinesis = (self._aws or AwsSettings()).client("kinesis")
        return self._kinesis

    def _tp(self, shard: str) -> PartitionKey:
        return PartitionKey(self.stream, shard)

    def assignment(self) -> frozenset[PartitionKey]:
        return frozenset(self._tp(shard) for shard in self.held)

    def waiting_reason(self) -> str:
        """Group, stream, and who holds the leases as the table says."""
        active = [lease for lease in self._all if not lease.finished]
        owners = sorted({lease.owner for lease in active if lease.owner})
        state = (
            f"{len(active)} open shard lease(s), held by {', '.join(owners)}"
            if owners
            else f"{len(active)} open shard lease(s), none held"
        )
        table = self.options.lease_table_for(self.stream)
        return (
            f"Kinesis group {self.options.group} on stream {self.stream}: worker "
            f"{self.worker_id} holds no shard (lease table {table}: {state})"
        )

    # -- lease maintenance
    def maintain(self, *, force: bool = False) -> None:
        now = self._clock()
        if force or now - self._last_renew >= self.options.lease_renew_interval_s:
            self._renew()
            self._last_renew = now
        if force or now - self._last_take >= self.options.lease_take_interval_s:
            self._sync_and_take(now)
            self._last_take = now

    def _drop(self, shards: Iterable[str]) -> None:
        gone = [s for s in shards if s in self.held]
        if not gone:
            return
        if self.on_revoked is not None:
            self.on_revoked([self._tp(s) for s in gone])
        for shard in gone:
            self.held.pop(shard, None)
            self._iterators.pop(shard, None)
            self._ended.pop(shard, None)
            self._at_tip.discard(shard)
            self._resume.pop(shard, None)
            self._last_returned.pop(shard, None)
        logger.info("worker %s lost leases %s", self.worker_id, ", ".join(gone))

    def _renew(self) -> None:
        lost: list[str] = []
        for shard, lease in list(self.held.items()):
            try:
                self.held[shard] = self.leases.renew(lease, self.worker_id)
            except LeaseLostError:
                lost.append(shard)
        self._drop(lost)

    def _sync_and_take(self, now: float) -> None:
        leases = self.leases.list()
        known = {lease.lease_key for lease in leases}
        created = False
        shards = list_shards(self.kinesis, self.stream)
        self._closed = {shard.shard_id for shard in shards if shard.closed}
        for lease in new_leases(
            shards,
            known,
            "LATEST" if self.options.start_position == "latest" else TRIM_HORIZON,
        ):
            created = self.leases.create(lease) or created
        if created:
            leases = self.leases.list()
        self._all = leases
        if self._first_scan is None:
            self._first_scan = now
        self._observations = observe(self._observations, leases, now)
        # leases this worker believes it holds but the table says otherwise
        by_key = {lease.lease_key: lease for lease in leases}
        self._drop(
            [s for s in self.held if by_key.get(s) is None or by_key[s].owner != self.worker_id]
        )
        free = expired(
            leases,
            self._observations,
            now,
            self.options.lease_duration_s,
            worker_id=self.worker_id,
        )
        plan = plan_take(leases, self.worker_id, free, max_steal=self.options.max_leases_to_steal)
        taken: dict[PartitionKey, int | None] = {}
        for key in plan.take + plan.steal:
            try:
                lease = self.leases.take(by_key[key], self.worker_id)
            except LeaseLostError:
                continue
            logger.info("worker %s took lease %s", self.worker_id, key)
            self.held[key] = lease
            position = checkpoint_position(lease.checkpoint)
            if position is not None:
                self._checkpointed[key] = position
            else:
                self._checkpointed.pop(key, None)
            self._resume.pop(key, None)
            taken[self._tp(key)] = position
        if taken and self.on_assigned is not None:
            self.on_assigned(taken)

    def _ready(self, shard: str) -> bool:
        lease = self.held[shard]
        if lease.finished:
            return False
        by_key = {lease.lease_key: lease for lease in self._all}
        by_key.update(self.held)
        return parents_finished(lease, by_key)

    # -- reading
    def _iterator(self, shard: str) -> str | None:
        if shard not in self._iterators:
            from botocore.exceptions import ClientError

            start = self._resume.pop(shard, "") or self.held[shard].checkpoint
            request = iterator_request(start)
            try:
                answer = self.kinesis.get_shard_iterator(
                    StreamName=self.stream, ShardId=shard, **request
                )
            except ClientError as exc:
                raise KinesisReadError(f"iterator for {shard}", code=error_code(exc)) from exc
            self._iterators[shard] = answer.get("ShardIterator")
        return self._iterators[shard]

    def poll(self, max_records: int, timeout_s: float) -> list[StreamRecord]:
        from botocore.exceptions import ClientError

        self.maintain()
        out: list[StreamRecord] = []
        now = self._clock()
        idle = self.options.idle_read_interval_s
        for shard in sorted(self.held):
            if len(out) >= max_records or not self._ready(shard) or shard in self._ended:
                continue
            if now < self._next_read.get(shard, 0.0):
                continue  # GetRecords allows 5 calls/s per shard, shared by every reader
            iterator = self._iterator(shard)
            if iterator is None:
                self._ended[shard] = self._last_returned.get(shard)
                continue
            # GetRecords counts entries; a KPL aggregate holds many user records, so the
            # limit follows the user records per entry seen last on this shard.
            fanout = self._fanout.get(shard, 1.0)
            limit = max(1, min(10_000, int((max_records - len(out)) / fanout)))
            try:
                answer = self.kinesis.get_records(ShardIterator=iterator, Limit=limit)
            except ClientError as exc:
                code = error_code(exc)
                if code == "ExpiredIteratorException":
                    self._iterators.pop(shard, None)
                    if shard in self._last_returned:
                        self._resume[shard] = str(self._last_returned[shard])
                    continue
                if code in THROTTLED:
                    logger.info("get_records throttled on %s", shard)
                    self._next_read[shard] = now + max(idle, 0.2)
                    continue
                raise KinesisReadError(f"get_records on {shard}", code=code) from exc
            records = answer.get("Records", [])
            before = len(out)
            for raw in records:
                out.extend(to_stream_records(self.stream, shard, raw))
                self._last_returned[shard] = int(raw["SequenceNumber"])
            if records:
                self._fanout[shard] = max(1.0, (len(out) - before) / len(records))
            self._iterators[shard] = answer.get("NextShardIterator")
            if not records and int(answer.get("MillisBehindLatest", 0)) == 0:
                self._at_tip.add(shard)
                self._next_read[shard] = now + idle
            else:
                self._at_tip.discard(shard)
            # A closed shard ends where the iterator stops (AWS) or, for endpoints
            # that keep handing out iterators, at the first empty read.
            if answer.get("NextShardIterator") is None or (not records and shard in self._closed):
                self._ended[shard] = self._last_returned.get(shard)
        self._finish_ended_shards()
        if not out and timeout_s > 0:
            time.sleep(min(timeout_s, 0.2))
        return out

    def _finish_ended_shards(self) -> None:
        """Checkpoint SHARD_END on ended shards whose every record is checkpointed."""
        for shard, last in list(self._ended.items()):
            lease = self.held.get(shard)
            if lease is None or lease.finished:
                continue
            done = self._checkpointed.get(shard)
            if last is None or (done is not None and done >= last):
                try:
                    self.held[shard] = self.leases.checkpoint(lease, self.worker_id, SHARD_END)
                except LeaseLostError:
                    self._drop([shard])
                    continue
                logger.info("shard %s finished (SHARD_END)", shard)
                self._all = [self.held[shard] if le.lease_key == shard else le for le in self._all]

    def checkpoint(self, positions: Positions) -> None:
        for tp, last in sorted(positions.items()):
            lease = self.held.get(tp.partition)
            if lease is None:
                raise LeaseLostError(f"lease of {tp} is no longer held by this worker")
            try:
                self.held[tp.partition] = self.leases.checkpoint(lease, self.worker_id, str(last))
                self._checkpointed[tp.partition] = last
            except LeaseLostError:
                self._drop([tp.partition])
                raise
            except LeaseTableError as exc:
                raise CheckpointError(f"checkpoint of {tp}: {exc}", code=exc.code) from exc
        self._finish_ended_shards()

    def rewind(self, positions: Positions) -> None:
        for tp, first in positions.items():
            if tp.partition not in self.held:
                continue
            self._iterators.pop(tp.partition, None)
            self._ended.pop(tp.partition, None)
            self._next_read.pop(tp.partition, None)
            self._resume[tp.partition] = f"{AT_SEQUENCE_PREFIX}{first}"

    def caught_up(self) -> bool:
        """Every shard is finished, read to its tip by this worker, or held by another."""
        if not self._all:
            return False
        now = self._clock()
        # Whether another owner is alive is known only after watching its counter for
        # a lease duration; until then its shards count as not caught up.
        watched = self._first_scan is not None and (
            now - self._first_scan > self.options.lease_duration_s
        )
        free = expired(
            self._all,
            self._observations,
            now,
            self.options.lease_duration_s,
            worker_id=self.worker_id,
        )
        for lease in self._all:
            if lease.finished:
                continue
            mine = self.held.get(lease.lease_key)
            if mine is None:
                if lease.owner in (None, self.worker_id) or lease.lease_key in free or not watched:
                    return False
                continue
            if mine.finished or not self._ready(lease.lease_key):
                continue
            if lease.lease_key not in self._at_tip:
                return False
        return True

    def close(self) -> None:
        """Give every lease up so other workers take them at once."""
        for lease in list(self.held.values()):
            try:
                self.leases.release(lease, self.worker_id)
            except (LeaseLostError, LeaseTableError) as exc:
                logger.info("release %s: %s", lease.lease_key, exc)
        self.held.clear()
        self._iterators.clear()


def read_shard(
    client: Any, stream: str, shard: str, checkpoint: str, *, cap: int | None = None
) -> Iterator[list[StreamRecord]]:
    """The records of one shard after ``checkpoint`` up to its current tip, in pages.

    KPL aggregates come as their user records. Stops after ``cap`` GetRecords entries
    when given (a backlog count is then a lower bound).
    """
    from botocore.exceptions import ClientError

    try:
        answer = client.get_shard_iterator(
            StreamName=stream, ShardId=shard, **iterator_request(checkpoint)
        )
        iterator = answer.get("ShardIterator")
        entries = 0
        while iterator and (cap is None or entries < cap):
            limit = 10_000 if cap is None else min(10_000, cap - entries)
            page = client.get_records(ShardIterator=iterator, Limit=limit)
            raw = page.get("Records", [])
            entries += len(raw)
            records: list[StreamRecord] = []
            for entry in raw:
                records.extend(to_stream_records(stream, shard, entry))
            if records:
                yield records
            iterator = page.get("NextShardIterator")
            if not raw and int(page.get("MillisBehindLatest", 0) or 0) == 0:
                return
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise StreamNotFoundError(
                f"stream {stream} does not exist", code=error_code(exc)
            ) from exc
        raise KinesisReadError(f"reading {stream}/{shard}", code=error_code(exc)) from exc


def scan_streams(client: Any, streams: Sequence[str]) -> Iterator[list[StreamRecord]]:
    """Every record of ``streams`` (all shards, TRIM_HORIZON to the current tip)."""
    for stream in streams:
        for shard in list_shards(client, stream):
            yield from read_shard(client, stream, shard.shard_id, TRIM_HORIZON)


def count_backlog(
    client: Any, stream: str, shard: str, checkpoint: str, cap: int = 100_000
) -> tuple[int, float | None, bool]:
    """User records after ``checkpoint`` in a shard: (count, oldest arrival s, exact).

    Kinesis has no record counts: the backlog is read (at most ``cap`` entries) and a
    KPL aggregate counts as its user records.
    """
    count, oldest, entries = 0, None, 0
    last_seq: int | None = None
    for records in read_shard(client, stream, shard, checkpoint, cap=cap):
        if oldest is None and records[0].timestamp_ms is not None:
            oldest = records[0].timestamp_ms / 1000.0
        count += len(records)
        for record in records:
            if record.offset != last_seq:
                entries += 1
                last_seq = record.offset
    return count, oldest, entries < cap
