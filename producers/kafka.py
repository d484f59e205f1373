"""Kafka (Amazon MSK) publisher on confluent-kafka.

- One librdkafka ``Producer`` per process and configuration, created on first publish
  (never in a constructor), shared by every :class:`KafkaPublisher` with the same
  settings and served by one background poll thread.
- ``acks=all``; idempotence per ``SLUICE_KAFKA_ENABLE_IDEMPOTENCE`` (without it, one
  request in flight per connection keeps per-key order); key = partition key.
- Delivery reports run on the poll thread and fill the slots of their publish call;
  the calls completed by one ``poll()`` are handed to their event loop with one
  ``loop.call_soon_threadsafe`` (one wake-up per poll, not per call or record);
  ``publish`` returns when every record was acknowledged or failed.
  ``message.timeout.ms`` equals the delivery timeout, so a dead broker yields
  per-record ``_MSG_TIMED_OUT`` failures in bounded time.
- Errors keep librdkafka's names (``_MSG_TIMED_OUT``, ``_TRANSPORT``, ...).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from producers.base import is_retryable_kafka_code
from producers.config import PublisherSettings
from producers.exceptions import PublisherClosedError
from producers.models import OutgoingRecord, PublishResult
from sluice.config import KafkaSettings
from sluice.errors import ConfigurationError

logger = logging.getLogger(__name__)

# Extra wait beyond message.timeout.ms before publish gives up on a delivery report.
_REPORT_GRACE_S = 2.0
_QUEUE_FULL_BACKOFF_S = 0.01


class _ProducerHandle:
    """A librdkafka producer with its poll thread; shared and reference-counted."""

    def __init__(self, producer: Any, poll_interval: float, key: tuple[Any, ...] | None) -> None:
        self.producer = producer
        self.key = key
        self.users = 0
        self._poll_interval = poll_interval
        self._stop = threading.Event()
        # Publish calls completed by delivery reports on the poll thread, not yet handed
        # to their event loops (only the poll thread touches this list).
        self.completed: list[_DeliveryBatch] = []
        self._thread = threading.Thread(
            target=self._poll_loop, name="sluice-kafka-poll", daemon=True
        )
        self._thread.start()
        self.poll_thread_id = self._thread.ident

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            # poll() runs delivery callbacks on this thread.
            self.producer.poll(self._poll_interval)
            if self.completed:
                self._hand_over()
        if self.completed:
            self._hand_over()

    def _hand_over(self) -> None:
        """Wake each event loop once for every publish call this poll completed."""
        completed, self.completed = self.completed, []
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for batch in completed:
            by_loop.setdefault(batch.loop, []).append(batch.done)
        for loop, futures in by_loop.items():
            try:
                loop.call_soon_threadsafe(_finish_all, futures)
            except RuntimeError:
                logger.warning("delivery reports arrived after their event loop closed")

    def shutdown(self, timeout: float) -> int:
        """Flush, stop the poll thread; returns the count still undelivered."""
        remaining = int(self.producer.flush(timeout))
        self._stop.set()
        self._thread.join(timeout=max(self._poll_interval * 4, 1.0))
        return remaining


_registry: dict[tuple[Any, ...], _ProducerHandle] = {}
_registry_lock = threading.Lock()


def _acquire(config: dict[str, Any], poll_interval: float) -> _ProducerHandle:
    key = tuple(sorted((k, str(v)) for k, v in config.items()))
    with _registry_lock:
        handle = _registry.get(key)
        if handle is None:
            from confluent_kafka import KafkaException, Producer

            try:
                # librdkafka's own log lines go to Python logging, served by poll().
                producer = Producer({**config, "logger": logging.getLogger("producers.librdkafka")})
            except KafkaException as exc:
                raise ConfigurationError(
                    f"invalid Kafka producer configuration: {exc.args[0].str()}",
                    code=exc.args[0].name(),
                ) from exc
            handle = _ProducerHandle(producer, poll_interval, key)
            _registry[key] = handle
        handle.users += 1
        return handle


def _release(handle: _ProducerHandle, timeout: float) -> int:
    with _registry_lock:
        handle.users -= 1
        last = handle.users <= 0
        if last and handle.key is not None:
            _registry.pop(handle.key, None)
    if last:
        return handle.shutdown(timeout)
    return int(handle.producer.flush(timeout))


class KafkaPublisher:
    """Publishes to Kafka topics; one :class:`PublishResult` per record, in order.

    Args:
        settings: publisher tuning (delivery timeout, idempotence, compression, ...).
        kafka_settings: the connection (bootstrap servers, security).
        producer: a ready confluent-kafka ``Producer`` (tests); not shared, not
            created by this class, but flushed and polled by it.
    """

    def __init__(
        self,
        settings: PublisherSettings | None = None,
        kafka_settings: KafkaSettings | None = None,
        *,
        producer: Any = None,
    ) -> None:
        self._settings = settings or PublisherSettings()
        self._kafka_settings = kafka_settings
        self._given_producer = producer
        self._handle: _ProducerHandle | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def settings(self) -> PublisherSettings:
        """The publisher settings in use."""
        return self._settings

    def producer_config(self) -> dict[str, Any]:
        """The full librdkafka configuration (connection + producer tuning)."""
        kafka = self._kafka_settings or KafkaSettings()
        return {**kafka.client_config(), **self._settings.kafka_producer_config()}

    def _producer(self) -> _ProducerHandle:
        with self._lock:
            if self._closed:
                raise PublisherClosedError("publish after close")
            if self._handle is None:
                if self._given_producer is not None:
                    self._handle = _ProducerHandle(
                        self._given_producer, self._settings.kafka_poll_interval_s, None
                    )
                    self._handle.users = 1
                else:
                    self._handle = _acquire(
                        self.producer_config(), self._settings.kafka_poll_interval_s
                    )
            return self._handle

    async def publish(self, stream: str, records: Sequence[OutgoingRecord]) -> list[PublishResult]:
        """Produce ``records`` to topic ``stream`` and wait for every delivery report."""
        if not records:
            return []
        from confluent_kafka import KafkaException

        handle = self._producer()
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + self._settings.publish_delivery_timeout_s
        batch = _DeliveryBatch(loop, records, stream, handle)
        produce = handle.producer.produce
        deliver = batch.deliver
        for index, record in enumerate(records):
            try:
                produce(
                    topic=stream,
                    key=record.key_bytes,
                    value=record.value,
                    headers=record.header_list(),
                    on_delivery=functools.partial(deliver, index),
                )
            except BufferError:
                # The local queue is full: wait for room, within the deadline.
                await self._produce(handle, batch, index, stream, record, deadline)
            except KafkaException as exc:
                batch.resolve(index, _failure_from_error(record, stream, exc.args[0]))
        # Reports that have already arrived (for this or earlier calls) are served here,
        # on the loop's thread, without waiting for the poll thread to be scheduled.
        handle.producer.poll(0)
        if not batch.done.done():
            await asyncio.wait(
                {batch.done}, timeout=max(deadline - time.monotonic(), 0) + _REPORT_GRACE_S
            )
        return batch.results_or_timeouts(records, stream)

    async def _produce(
        self,
        handle: _ProducerHandle,
        batch: _DeliveryBatch,
        index: int,
        stream: str,
        record: OutgoingRecord,
        deadline: float,
    ) -> None:
        from confluent_kafka import KafkaException

        while True:
            try:
                handle.producer.produce(
                    topic=stream,
                    key=record.key_bytes,
                    value=record.value,
                    headers=record.header_list(),
                    on_delivery=functools.partial(batch.deliver, index),
                )
                return
            except BufferError:
                # The local queue is full: let the poll thread drain it, within the deadline.
                if time.monotonic() >= deadline:
                    failure = PublishResult.failure(
                        record,
                        stream,
                        code="_QUEUE_FULL",
                        message="producer queue full until the delivery timeout",
                        retryable=True,
                    )
                    batch.resolve(index, failure)
                    return
                await asyncio.sleep(_QUEUE_FULL_BACKOFF_S)
            except KafkaException as exc:
                batch.resolve(index, _failure_from_error(record, stream, exc.args[0]))
                return

    async def flush(self, timeout: float | None = None) -> int:
        """Wait until the queue is delivered; returns how many messages remain."""
        handle = self._handle
        if handle is None:
            return 0
        wait = self._settings.publish_delivery_timeout_s if timeout is None else timeout
        return int(await asyncio.to_thread(handle.producer.flush, wait))

    async def ready(self, timeout: float = 2.0) -> bool:
        """True when a broker answers a metadata request within ``timeout``."""
        from confluent_kafka import KafkaException

        handle = self._producer()
        try:
            await asyncio.to_thread(handle.producer.list_topics, None, timeout)
        except KafkaException:
            return False
        return True

    async def close(self) -> None:
        """Flush what is queued (up to the delivery timeout) and release the producer."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            handle, self._handle = self._handle, None
        if handle is None:
            return
        timeout = self._settings.publish_delivery_timeout_s
        if handle.key is None:
            remaining = await asyncio.to_thread(handle.shutdown, timeout)
        else:
            remaining = await asyncio.to_thread(_release, handle, timeout)
        if remaining:
            logger.warning("%d Kafka messages were not delivered before close", remaining)


class _DeliveryBatch:
    """Results of one publish call, filled from the poll thread.

    Each record's report lands in its slot under a lock; the asyncio future ``done``
    is resolved once, when the last slot is filled: by the poll thread's hand-over
    after its ``poll()`` returns (shared with the other calls that poll completed), or
    through ``loop.call_soon_threadsafe`` when the last result came from elsewhere.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        records: Sequence[OutgoingRecord],
        stream: str,
        handle: _ProducerHandle | None = None,
    ) -> None:
        self.loop = loop
        self.loop_thread_id = threading.get_ident()  # made inside the loop, on its thread
        self.done: asyncio.Future[None] = loop.create_future()
        self._records = records
        self._stream = stream
        self._handle = handle
        self._results: list[PublishResult | None] = [None] * len(records)
        self._remaining = len(records)
        self._lock = threading.Lock()

    def deliver(self, index: int, err: Any, msg: Any) -> None:
        """librdkafka's delivery report for record ``index`` (runs where it is served)."""
        record = self._records[index]
        if err is None:
            result = PublishResult(
                event_id=record.event_id,
                status="ok",
                stream=self._stream,
                partition=msg.partition(),
                offset=msg.offset(),
            )
        else:
            result = _failure_from_error(record, self._stream, err)
        self.resolve(index, result)

    def resolve(self, index: int, result: PublishResult) -> None:
        """Record the result of record ``index`` (any thread; the first result wins)."""
        with self._lock:
            if self._results[index] is not None:
                return
            self._results[index] = result
            self._remaining -= 1
            finished = self._remaining == 0
        if finished:
            handle = self._handle
            thread_id = threading.get_ident()
            if handle is not None and thread_id == handle.poll_thread_id:
                handle.completed.append(self)  # handed over when this poll() returns
                return
            if thread_id == self.loop_thread_id:
                _finish(self.done)  # on the loop's own thread: no wake-up needed
                return
            try:
                self.loop.call_soon_threadsafe(_finish, self.done)
            except RuntimeError:
                logger.warning("delivery reports arrived after their event loop closed")

    def results_or_timeouts(
        self, records: Sequence[OutgoingRecord], stream: str
    ) -> list[PublishResult]:
        """Every slot's result; a record still without a report failed (timed out)."""
        with self._lock:
            results = list(self._results)
            # Reports arriving from now on are ignored: the caller has its answer.
            self._results = [r or _TIMED_OUT for r in self._results]
        return [
            result
            or PublishResult.failure(
                record,
                stream,
                code="_MSG_TIMED_OUT",
                message="no delivery report within the delivery timeout",
                retryable=True,
            )
            for result, record in zip(results, records, strict=True)
        ]


_TIMED_OUT = PublishResult(event_id="", status="failed", stream="")


def _finish(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _finish_all(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


def _failure_from_error(record: OutgoingRecord, stream: str, err: Any) -> PublishResult:
    name = str(err.name())
    return PublishResult.failure(
        record,
        stream,
        code=name,
        message=str(err.str()),
        retryable=is_retryable_kafka_code(name, bool(err.retriable())),
    )
