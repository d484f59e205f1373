"""The ingest path without HTTP: validate, mask, stamp, encode, publish, remember, record.

:class:`IngestService` turns client JSON into :class:`~ingest_api.models.EventOutcome`
objects. It never raises for a bad event or a failing broker: a bad event is
``rejected`` with its field errors, an event the broker did not acknowledge within
``api_publish_timeout_s`` is ``failed`` (retryable). The HTTP layer only maps outcomes
to status codes.

Events newly ``accepted`` are recorded in the :class:`~ingest_api.base.AcceptedLog`
after the broker's acknowledgement and before the answer; a replayed answer
(idempotency) is not recorded again, and a log that cannot be written is counted and
logged but never turns an accepted event into an error.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from ingest_api.auth import Principal
from ingest_api.base import AcceptedLog, accepted_entry
from ingest_api.body import canonical_json, dump_json
from ingest_api.config import ApiSettings
from ingest_api.exceptions import AcceptedLogError, FieldIssue, StoreUnavailable
from ingest_api.idempotency import (
    Claim,
    Coalescer,
    IdempotencyCache,
    IdempotencyStore,
    MemoryIdempotencyStore,
    Replay,
)
from ingest_api.metrics import ApiMetrics
from ingest_api.models import EventOutcome
from producers.base import Publisher, build_outgoing_record
from producers.models import OutgoingRecord, PublishResult
from schemas import codec, pii, rules
from schemas.exceptions import CodecError, FieldError, PiiError, ValidationError
from schemas.registry import SchemaNotRegisteredError, SchemaResolver, default_resolver
from sluice.config import StreamSettings
from sluice.errors import RetryableError, SluiceError

logger = logging.getLogger(__name__)
T = TypeVar("T")

_CANONICAL_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")

# Codes of rejections and failures decided here (the codec adds its field codes).
INVALID_EVENT = "validation_failed"
NOT_AN_OBJECT = "invalid_type"
TENANT_FORBIDDEN = "tenant_forbidden"
IDEMPOTENCY_CONFLICT = "idempotency_conflict"
IDEMPOTENCY_IN_PROGRESS = "idempotency_in_progress"
STORE_UNAVAILABLE = "store_unavailable"
UNENCODABLE = "unencodable"
PUBLISH_TIMEOUT = "publish_timeout"
PUBLISH_FAILED = "publish_failed"
BROKER_UNAVAILABLE = "broker_unavailable"

Masker = Callable[[str, dict[str, Any]], dict[str, Any]]
"""Masks the PII of a validated event (``event_type``, record) -> record."""


class PublisherHolder:
    """The process's publisher: created on first use (or at startup), closed at shutdown.

    Args:
        factory: builds the publisher; must not open connections itself.
        publisher: an already built publisher (tests); the factory is then not used.
    """

    def __init__(
        self,
        factory: Callable[[], Publisher] | None = None,
        publisher: Publisher | None = None,
    ) -> None:
        if factory is None and publisher is None:
            raise ValueError("PublisherHolder needs a factory or a publisher")
        self._factory = factory
        self._publisher = publisher

    @property
    def started(self) -> bool:
        """True once a publisher exists."""
        return self._publisher is not None

    def get(self) -> Publisher:
        """The publisher, built now if it does not exist yet."""
        if self._publisher is None:
            assert self._factory is not None
            self._publisher = self._factory()
        return self._publisher

    async def close(self, timeout: float) -> int:
        """Flush (within ``timeout``) and close; returns records left undelivered."""
        publisher, self._publisher = self._publisher, None
        if publisher is None:
            return 0
        try:
            left = await asyncio.wait_for(publisher.flush(timeout), timeout + 1.0)
        except TimeoutError:
            left = -1
        await publisher.close()
        if left:
            logger.warning("publisher closed with %s record(s) not flushed", left)
        return left


class PublishCoalescer:
    """Publishes what concurrent requests hand over in one event-loop turn as one call.

    Requests that reach the publish step in the same turn of the loop share one
    ``publisher.publish`` call per stream (their records in arrival order), which saves
    the per-call cost of the publisher (and, on Kinesis, PutRecords round trips). Each
    caller gets exactly the results of its own records. A caller that stops waiting
    (its time bound passed) leaves the shared call running for the others.

    Time bounds are kept per shared call: one timer for all its callers, due at the
    earliest of their deadlines; when it fires, callers still waiting get
    :class:`TimeoutError`.
    """

    def __init__(self, holder: PublisherHolder) -> None:
        self._holder = holder
        self._pending: dict[str, _Pending] = {}
        self._running: set[asyncio.Task[None]] = set()

    async def publish(
        self, stream: str, records: Sequence[OutgoingRecord], timeout: float | None = None
    ) -> list[PublishResult]:
        """The results of ``records``, in order (raises what the publisher raised).

        Raises:
            TimeoutError: ``timeout`` seconds passed before every result was known.
        """
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[PublishResult]] = [loop.create_future() for _ in records]
        pending = self._pending.get(stream)
        if pending is None:
            pending = self._pending[stream] = _Pending()
            loop.call_soon(self._start, stream)
        if timeout is not None:
            pending.deadline = min(pending.deadline, loop.time() + timeout)
        pending.items.extend(zip(records, futures, strict=True))
        if len(futures) == 1:
            return [await futures[0]]
        return list(await asyncio.gather(*futures))

    def _start(self, stream: str) -> None:
        pending = self._pending.pop(stream, None)
        if pending is not None and pending.items:
            loop = asyncio.get_running_loop()
            batch = pending.items
            timer = (
                loop.call_at(pending.deadline, _expire, batch)
                if pending.deadline != math.inf
                else None
            )
            task = loop.create_task(self._run(stream, batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            if timer is not None:
                task.add_done_callback(lambda _task: timer.cancel())

    async def _run(self, stream: str, batch: list[_Item]) -> None:
        try:
            results = await self._holder.get().publish(stream, [record for record, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except SluiceError as exc:  # a misused or misconfigured publisher: every caller sees it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException as exc:
            # Not part of the publisher's contract: callers fail (503), and it stays loud.
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def drain(self, timeout: float) -> None:
        """Wait (up to ``timeout``) for shared calls still running."""
        if self._running:
            await asyncio.wait(list(self._running), timeout=timeout)


_Item = tuple[OutgoingRecord, "asyncio.Future[PublishResult]"]


@dataclass(slots=True)
class _Pending:
    """Records handed over for one stream in this loop turn, and their earliest deadline."""

    items: list[_Item] = field(default_factory=list)
    deadline: float = math.inf


def _expire(batch: list[_Item]) -> None:
    """The time bound passed: callers still waiting get :class:`TimeoutError`."""
    for _, future in batch:
        if not future.done():
            future.set_exception(TimeoutError())


@dataclass(frozen=True, slots=True)
class Prepared:
    """A validated, masked, stamped and encoded event, ready to publish.

    ``event`` is the validated, masked record ``record`` was encoded from (the accepted
    log reads its envelope fields).
    """

    record: OutgoingRecord
    fingerprint: str
    event: Mapping[str, Any]


def fingerprint_of(event: Mapping[str, Any]) -> str:
    """A digest of what the client sent (key order does not matter)."""
    return hashlib.blake2b(canonical_json(event), digest_size=16).hexdigest()


def now_utc() -> datetime:
    """The ingest timestamp: now, UTC, microseconds."""
    return datetime.now(UTC)


class IngestService:
    """Validates and publishes events; remembers accepted answers for idempotency.

    Args:
        settings: API limits and time bounds.
        streams: stream name per event type.
        publishers: where the publisher comes from.
        metrics: counters to update.
        masker: masks PII of a validated record (``schemas.pii``).
        accepted_log: where newly accepted events are recorded (none when omitted).
        registry: the schema ids the values are framed with, looked up once per schema
            version; the process's registry (``SLUICE_SCHEMA_REGISTRY``) when omitted.
        clock: monotonic seconds (idempotency TTL).
        wall_clock: the ``ingested_at`` and ``accepted_at`` stamps (and "now" of the rules).
        window: the plausibility window of ``occurred_at`` (:mod:`schemas.rules`).
        store: the idempotency records shared by every process (in memory when omitted).
    """

    def __init__(
        self,
        settings: ApiSettings,
        streams: StreamSettings,
        publishers: PublisherHolder,
        metrics: ApiMetrics,
        masker: Masker,
        *,
        accepted_log: AcceptedLog | None = None,
        registry: SchemaResolver | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = now_utc,
        window: rules.PlausibilityWindow | None = None,
        store: IdempotencyStore | None = None,
    ) -> None:
        self.registry = registry if registry is not None else default_resolver()
        self.settings = settings
        self.streams = streams
        self.publishers = publishers
        self._coalescer = PublishCoalescer(publishers)
        self.metrics = metrics
        self._mask = masker
        self._wall_clock = wall_clock
        self._window = window or rules.PlausibilityWindow()
        self.accepted_log = accepted_log
        # None when nothing is recorded: the hot path then only tests this attribute.
        self._accepted_log = (
            accepted_log if accepted_log is not None and accepted_log.enabled else None
        )
        cache: IdempotencyCache[EventOutcome] = IdempotencyCache(
            settings.api_idempotency_ttl_s, settings.api_idempotency_max_entries
        )
        self.store: IdempotencyStore = store or MemoryIdempotencyStore(
            settings.api_idempotency_ttl_s,
            settings.api_idempotency_in_progress_s,
            clock,
            max_entries=settings.api_idempotency_max_entries,
        )
        self.idempotency: Coalescer[EventOutcome] = Coalescer(
            cache, clock, lambda outcome: outcome.accepted
        )

    # ------------------------------------------------------------------ validation

    def prepare(self, event_type: str, event: Any, principal: Principal) -> Prepared | EventOutcome:
        """Validate one client event; a :class:`Prepared` event or a rejection.

        Nothing the client sent is quoted back longer than a short, masked excerpt:
        field errors go through :func:`bounded_issues`, and ``event_id`` is echoed
        only when it is a UUID (in its canonical form).
        """
        if not isinstance(event, dict):
            return _rejected(
                None,
                NOT_AN_OBJECT,
                "an event must be a JSON object",
                (FieldIssue(NOT_AN_OBJECT, "expected a JSON object", None),),
            )
        event_id = canonical_event_id(event.get("event_id"))
        tenant = event.get("tenant_id")
        if isinstance(tenant, str) and not principal.may_send_tenant(tenant):
            return _rejected(
                event_id,
                TENANT_FORBIDDEN,
                "this API key may not send events of this tenant",
                (FieldIssue(TENANT_FORBIDDEN, "tenant not allowed for this API key", "tenant_id"),),
            )
        try:
            record = codec.parse_event(event_type, event)
        except ValidationError as exc:
            return self._invalid(event_type, event_id, exc.errors)
        broken = rules.check_event(event_type, record, window=self._window, now=self._wall_clock)
        if broken:
            return self._invalid(event_type, event_id, broken)
        try:
            record = self._mask(event_type, record)
        except PiiError as exc:
            # The codec validated the values, so this is the server's configuration.
            logger.error("event %s cannot be masked: %s", event_id, exc.code)
            return EventOutcome(
                "failed",
                event_id=event_id,
                code=exc.code,
                message="the server cannot mask this event's PII right now",
                retryable=True,
            )
        record["ingested_at"] = self._wall_clock()
        try:
            value = codec.encode(event_type, record, framed=True, registry=self.registry)
            outgoing = build_outgoing_record(event_type, record, value)
        except (RetryableError, SchemaNotRegisteredError) as exc:
            # The server's registry, not the event: answered 503, the client retries.
            logger.error("event %s: schema id lookup failed: %s", event_id, exc)
            return EventOutcome(
                "failed",
                event_id=event_id,
                code=exc.code,
                message="the server cannot look up this event's schema id right now",
                retryable=True,
            )
        except (CodecError, SluiceError) as exc:
            logger.warning("event %s could not be encoded: %s", event_id, exc.code)
            return _rejected(
                event_id,
                UNENCODABLE,
                f"the event cannot be encoded: {pii.redact_message(exc.message, 200)}",
            )
        if event.get("event_id") != outgoing.event_id:
            event = {**event, "event_id": outgoing.event_id}  # UUID case does not matter
        return Prepared(outgoing, fingerprint_of(event), record)

    def _invalid(
        self, event_type: str, event_id: str | None, errors: Sequence[FieldError]
    ) -> EventOutcome:
        issues, omitted = bounded_issues(errors, self.settings.api_max_field_errors)
        return _rejected(
            event_id,
            INVALID_EVENT,
            f"the event does not match the {event_type} schema and rules ({len(errors)} error(s))",
            issues,
            omitted,
        )

    # ------------------------------------------------------------------ publishing

    async def publish(self, event_type: str, items: Sequence[Prepared]) -> list[EventOutcome]:
        """Publish ``items`` in one call; one outcome per item, in order, within the bound."""
        if not items:
            return []
        stream = self.streams.name_for(event_type)
        records = [p.record for p in items]
        timeout = self.settings.api_publish_timeout_s
        started = time.perf_counter()
        try:
            results = await self._coalescer.publish(stream, records, timeout)
        except TimeoutError:
            logger.warning("publish to %s not acknowledged within %s s", stream, timeout)
            return [
                _failed(
                    r.event_id,
                    PUBLISH_TIMEOUT,
                    f"the broker did not acknowledge within {timeout} s",
                )
                for r in records
            ]
        except SluiceError as exc:
            logger.warning("publish to %s failed: %s", stream, exc)
            return [
                _failed(r.event_id, BROKER_UNAVAILABLE, "the broker cannot take events right now")
                for r in records
            ]
        finally:
            self.metrics.observe_publish(event_type, time.perf_counter() - started)
        return [
            _from_result(record, result) for record, result in zip(records, results, strict=True)
        ]

    async def drain(self, timeout: float) -> None:
        """Wait for publishes still in flight (at shutdown), up to ``timeout``."""
        await self._coalescer.drain(timeout)

    # ------------------------------------------------------------------ entry points

    def _key(
        self, event_type: str, prepared: Prepared, idempotency_key: str | None, principal: Principal
    ) -> str:
        """The idempotency key: ``(stream, tenant, canonical event_id)``, or
        ``(stream, API key, Idempotency-Key)`` when the header was sent.

        The stream stands for the event type (one stream per type) and keeps apart
        deployments that share a table. The tenant is part of the key, so another
        tenant reusing an ``event_id`` gets its own answer: it learns nothing about the
        owner's event and cannot block it.
        """
        stream = self.streams.name_for(event_type)
        if idempotency_key is not None:
            return dump_json(["key", stream, principal.key_id, idempotency_key]).decode()
        tenant = prepared.event.get("tenant_id")
        return dump_json(["event", stream, tenant, prepared.record.event_id]).decode()

    async def _claimed_publish(
        self,
        event_type: str,
        items: Sequence[tuple[str, Prepared]],
        replayed: set[int],
    ) -> list[EventOutcome]:
        """Claim each key in the shared store, publish the claimed events, settle the claims.

        An item whose key another process completed gets that answer (its id goes into
        ``replayed``: it was not published now), or a conflict; one in progress elsewhere
        gets ``idempotency_in_progress`` (retryable). Answers are stored before they are
        returned, so a resend to any process replays them.
        """
        try:
            claims = await self._bounded([self.store.claim(key, p.fingerprint) for key, p in items])
        except (StoreUnavailable, TimeoutError) as exc:
            logger.warning("idempotency store unavailable: %s", exc or "no answer in time")
            return [
                _failed(
                    p.record.event_id,
                    STORE_UNAVAILABLE,
                    "duplicates cannot be checked right now; send the event again",
                )
                for _, p in items
            ]
        outcomes: list[EventOutcome | None] = [None] * len(items)
        owned: list[int] = []
        for index, ((_, prepared), claim) in enumerate(zip(items, claims, strict=True)):
            if claim.state == "claimed":
                owned.append(index)
            else:
                outcome = self._from_claim(claim, prepared)
                replayed.add(id(outcome))
                outcomes[index] = outcome
        if owned:
            published = await self.publish(event_type, [items[i][1] for i in owned])
            settle = []
            for index, outcome in zip(owned, published, strict=True):
                key, prepared = items[index]
                outcomes[index] = outcome
                if outcome.accepted:
                    settle.append(self.store.complete(key, prepared.fingerprint, outcome.to_json()))
                else:
                    settle.append(self.store.release(key, prepared.fingerprint))
            settled: list[Any]
            try:
                settled = await self._bounded(settle, return_exceptions=True)
            except TimeoutError:
                settled = [TimeoutError("the idempotency store did not answer in time")]
            for result in settled:
                if isinstance(result, BaseException):
                    # The events are published (or not) already; a claim left behind
                    # expires after api_idempotency_in_progress_s.
                    logger.warning("idempotency store: a claim could not be settled: %s", result)
        final = [o for o in outcomes if o is not None]
        assert len(final) == len(items)
        return final

    async def _bounded(
        self, calls: list[Coroutine[Any, Any, T]], *, return_exceptions: bool = False
    ) -> list[Any]:
        """The results of store ``calls``, within the publish bound like the broker.

        The in-process store answers at once: its calls are awaited in turn, without
        tasks or timers (the hot path of one event stays a few awaits).
        """
        if self.store.backend == "memory":
            results: list[Any] = []
            for call in calls:
                try:
                    results.append(await call)
                except StoreUnavailable as exc:
                    if not return_exceptions:
                        for rest in calls[len(results) + 1 :]:
                            rest.close()
                        raise
                    results.append(exc)
            return results
        async with asyncio.timeout(self.settings.api_publish_timeout_s):
            return list(await asyncio.gather(*calls, return_exceptions=return_exceptions))

    @staticmethod
    def _from_claim(claim: Claim, prepared: Prepared) -> EventOutcome:
        event_id = prepared.record.event_id
        if claim.fingerprint != prepared.fingerprint:
            return _rejected(
                event_id,
                IDEMPOTENCY_CONFLICT,
                "this idempotency key (or event_id) was already used for a different event",
            )
        if claim.state == "completed" and claim.answer is not None:
            answer = claim.answer
            return EventOutcome(
                "accepted",
                event_id=event_id,
                stream=str(answer.get("stream")),
                partition_key=str(answer.get("partition_key")),
            )
        return EventOutcome(
            "failed",
            event_id=event_id,
            code=IDEMPOTENCY_IN_PROGRESS,
            message="the same event is being published by another request; send it again",
            retryable=True,
        )

    async def ingest_one(
        self,
        event_type: str,
        event: Any,
        principal: Principal,
        idempotency_key: str | None = None,
    ) -> EventOutcome:
        """Validate and publish one event (or replay its earlier answer)."""
        prepared = self.prepare(event_type, event, principal)
        if isinstance(prepared, EventOutcome):
            self._count(event_type, [prepared])
            return prepared
        key = self._key(event_type, prepared, idempotency_key, principal)

        replayed: set[int] = set()

        async def action() -> EventOutcome:
            (outcome,) = await self._claimed_publish(event_type, [(key, prepared)], replayed)
            return outcome

        replay = await self.idempotency.run(key, prepared.fingerprint, action)
        outcome = self._resolve(replay, prepared.record.event_id)
        fresh = replay.source == "fresh" and id(outcome) not in replayed
        if self._accepted_log is not None and fresh and outcome.accepted:
            self._record_accepted(event_type, [(prepared, outcome)])
        self._count(event_type, [outcome], fresh=[fresh])
        return outcome

    async def ingest_batch(
        self, event_type: str, events: Sequence[Any], principal: Principal
    ) -> list[EventOutcome]:
        """Validate every event, publish the valid ones in one call; outcomes in order."""
        outcomes: list[EventOutcome | None] = [None] * len(events)
        valid: list[tuple[int, Prepared]] = []
        for index, event in enumerate(events):
            prepared = self.prepare(event_type, event, principal)
            if isinstance(prepared, EventOutcome):
                outcomes[index] = prepared
            else:
                valid.append((index, prepared))

        keys = [self._key(event_type, p, None, principal) for _, p in valid]
        replayed: set[int] = set()

        async def action(indexes: Sequence[int]) -> list[EventOutcome]:
            return await self._claimed_publish(
                event_type, [(keys[i], valid[i][1]) for i in indexes], replayed
            )

        replays = await self.idempotency.run_many(
            [(key, p.fingerprint) for key, (_, p) in zip(keys, valid, strict=True)], action
        )
        fresh = [True] * len(events)
        for (index, prepared), replay in zip(valid, replays, strict=True):
            outcome = self._resolve(replay, prepared.record.event_id)
            outcomes[index] = outcome
            fresh[index] = replay.source == "fresh" and id(outcome) not in replayed
        final = _within_budget([o for o in outcomes if o is not None], BATCH_FIELD_ERRORS_BUDGET)
        assert len(final) == len(events)
        if self._accepted_log is not None:
            newly = [(p, final[i]) for i, p in valid if fresh[i] and final[i].accepted]
            if newly:
                self._record_accepted(event_type, newly)
        self._count(event_type, final, fresh=fresh)
        return final

    # ------------------------------------------------------------------ accepted log

    def _record_accepted(
        self, event_type: str, accepted: Sequence[tuple[Prepared, EventOutcome]]
    ) -> None:
        """Record newly accepted events; a failure is counted and logged, never raised.

        The events are on the stream already and their answer is ``accepted``: a log
        that cannot be written must not turn that answer into an error (the client's
        retry would publish a duplicate and the log would still lack the line).
        """
        log = self._accepted_log
        assert log is not None
        try:
            accepted_at = self._wall_clock()
            entries = [accepted_entry(event_type, p.event, o, accepted_at) for p, o in accepted]
            log.record(entries)
        except AcceptedLogError as exc:
            logger.error(*self._accepted_log_failed(log, exc.code, str(exc), accepted))
        except Exception as exc:  # outside the log's contract: as loud, with its trace
            logger.exception(
                *self._accepted_log_failed(log, type(exc).__name__, repr(exc), accepted)
            )

    def _accepted_log_failed(
        self,
        log: AcceptedLog,
        reason: str,
        detail: str,
        accepted: Sequence[tuple[Prepared, EventOutcome]],
    ) -> tuple[str, ...]:
        """Count the failure; the log message and its arguments (event ids, no PII)."""
        self.metrics.accepted_log_failed(log.backend, reason, len(accepted))
        return (
            "accepted log (%s) failed, %s accepted event(s) not recorded (%s): %s; event ids: %s",
            log.backend,
            str(len(accepted)),
            reason,
            detail,
            " ".join(p.record.event_id for p, _ in accepted),
        )

    # ------------------------------------------------------------------ helpers

    def _resolve(self, replay: Replay[EventOutcome], event_id: str) -> EventOutcome:
        if replay.source == "conflict":
            return _rejected(
                event_id,
                IDEMPOTENCY_CONFLICT,
                "this idempotency key (or event_id) was already used for a different event",
            )
        if replay.value is None:
            return _failed(event_id, PUBLISH_FAILED, "the event was not published; send it again")
        return replay.value

    def _count(
        self, event_type: str, outcomes: Sequence[EventOutcome], fresh: Sequence[bool] | None = None
    ) -> None:
        for position, outcome in enumerate(outcomes):
            if outcome.accepted:
                if fresh is None or fresh[position]:
                    self.metrics.accept(event_type)
            else:
                self.metrics.reject(event_type, outcome.code or "unknown")


def _rejected(
    event_id: str | None,
    code: str,
    message: str,
    errors: tuple[FieldIssue, ...] = (),
    errors_omitted: int = 0,
) -> EventOutcome:
    return EventOutcome(
        "rejected",
        event_id=event_id,
        code=code,
        message=message,
        errors=errors,
        errors_omitted=errors_omitted,
    )


#: Longest field path quoted in a field error (a map key or unknown field name is client text).
MAX_FIELD_PATH = 120
#: Field errors listed in one batch answer, over all its events (the rest are counted):
#: with at most ~1.3 KB per listed error, a batch answer stays far below 6 MB.
BATCH_FIELD_ERRORS_BUDGET = 1000


def _within_budget(outcomes: list[EventOutcome], budget: int) -> list[EventOutcome]:
    """``outcomes`` listing at most ``budget`` field errors in all (in order); the errors
    left out are added to each outcome's ``errors_omitted``."""
    if sum(len(o.errors) for o in outcomes) <= budget:
        return outcomes
    out = []
    for outcome in outcomes:
        if len(outcome.errors) > budget:
            outcome = replace(
                outcome,
                errors=outcome.errors[:budget],
                errors_omitted=outcome.errors_omitted + len(outcome.errors) - budget,
            )
        budget -= len(outcome.errors)
        out.append(outcome)
    return out


def bounded_issues(errors: Sequence[FieldError], limit: int) -> tuple[tuple[FieldIssue, ...], int]:
    """At most ``limit`` field errors, safe to answer, and how many were left out.

    Messages and field paths (which hold client-chosen map keys and field names) are
    passed through :func:`schemas.pii.redact_message`: digit runs that may be card
    numbers are masked and the text is cut short, so an answer never echoes a PAN and
    its size stays bounded whatever the body held.
    """
    shown = tuple(
        FieldIssue(
            e.code,
            pii.redact_message(e.message, 200),
            pii.redact_message(e.field, MAX_FIELD_PATH) if e.field else None,
        )
        for e in errors[:limit]
    )
    return shown, max(0, len(errors) - limit)


def canonical_event_id(value: Any) -> str | None:
    """The canonical form (lower case, dashed) of a UUID ``event_id``; ``None`` otherwise."""
    if type(value) is not str or len(value) > 45:
        return None
    if _CANONICAL_UUID.match(value):
        return value
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _failed(event_id: str | None, code: str, message: str) -> EventOutcome:
    return EventOutcome("failed", event_id=event_id, code=code, message=message, retryable=True)


def _from_result(record: OutgoingRecord, result: PublishResult) -> EventOutcome:
    if result.ok:
        return EventOutcome(
            "accepted",
            event_id=record.event_id,
            stream=result.stream,
            partition_key=record.partition_key,
        )
    logger.warning(
        "event %s not acknowledged by %s: %s", record.event_id, result.stream, result.error_code
    )
    timed_out = result.error_code in ("_MSG_TIMED_OUT", "_TIMED_OUT")
    return EventOutcome(
        "failed",
        event_id=record.event_id,
        code=PUBLISH_TIMEOUT if timed_out else PUBLISH_FAILED,
        message=f"the broker did not acknowledge the event ({result.error_code})",
        retryable=result.retryable or timed_out,
    )
