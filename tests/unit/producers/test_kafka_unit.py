"""KafkaPublisher's bridge from librdkafka delivery reports to asyncio, with a fake producer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import confluent_kafka
import pytest
from confluent_kafka import KafkaError, KafkaException

from producers.config import PublisherSettings
from producers.kafka import KafkaPublisher
from sluice.config import KafkaSettings
from tests.unit.producers.contract import make_records

Report = Callable[[Any, Any], None]


class FakeMessage:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


class FakeProducer:
    """Queues delivery reports; ``poll`` (on the publisher's poll thread) delivers them."""

    def __init__(self, decide: Callable[[int], Any] | None = None, full_times: int = 0) -> None:
        self.decide = decide or (lambda n: None)
        self.full_times = full_times
        self.produced: list[dict[str, Any]] = []
        self._queue: list[tuple[Report, Any, Any]] = []
        self._lock = threading.Lock()
        self.flushed = False

    def produce(self, **kwargs: Any) -> None:
        if self.full_times:
            self.full_times -= 1
            raise BufferError("queue full")
        n = len(self.produced)
        self.produced.append(kwargs)
        outcome = self.decide(n)
        if isinstance(outcome, KafkaException):
            raise outcome
        if isinstance(outcome, str):
            return  # no report ever: the publisher's own deadline must answer
        with self._lock:
            self._queue.append((kwargs["on_delivery"], outcome, FakeMessage(n % 3, n)))

    def poll(self, timeout: float) -> int:
        with self._lock:
            queue, self._queue = self._queue, []
        for callback, err, msg in queue:
            callback(err, msg)
        if not queue:
            threading.Event().wait(min(timeout, 0.01))
        return len(queue)

    def flush(self, timeout: float) -> int:
        self.flushed = True
        self.poll(0)
        return 0


def publisher(producer: FakeProducer, timeout: float = 2.0) -> KafkaPublisher:
    settings = PublisherSettings(publish_delivery_timeout_s=timeout, kafka_poll_interval_s=0.01)
    return KafkaPublisher(settings, producer=producer)


def run_publish(pub: KafkaPublisher, count: int) -> list[Any]:
    async def go() -> list[Any]:
        try:
            return await pub.publish("topic", make_records(count))
        finally:
            await pub.close()

    return asyncio.run(go())


def test_delivery_reports_become_results_in_order() -> None:
    producer = FakeProducer()
    results = run_publish(publisher(producer), 6)
    assert [r.status for r in results] == ["ok"] * 6
    assert [r.offset for r in results] == list(range(6))
    assert producer.produced[0]["key"] == b"acct-0"
    assert ("event_id", results[0].event_id.encode()) in producer.produced[0]["headers"]
    assert producer.flushed


def test_error_reports_keep_librdkafka_codes() -> None:
    def decide(n: int) -> Any:
        if n == 1:
            return KafkaError(KafkaError._MSG_TIMED_OUT)
        if n == 2:
            return KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
        return None

    results = run_publish(publisher(FakeProducer(decide)), 4)
    assert [r.status for r in results] == ["ok", "failed", "failed", "ok"]
    assert (results[1].error_code, results[1].retryable) == ("_MSG_TIMED_OUT", True)
    assert (results[2].error_code, results[2].retryable) == ("MSG_SIZE_TOO_LARGE", False)


def test_produce_errors_fail_only_that_record() -> None:
    def decide(n: int) -> Any:
        return KafkaException(KafkaError(KafkaError._UNKNOWN_TOPIC)) if n == 0 else None

    results = run_publish(publisher(FakeProducer(decide)), 3)
    assert [r.status for r in results] == ["failed", "ok", "ok"]
    assert results[0].error_code == "_UNKNOWN_TOPIC"


def test_full_queue_waits_for_room() -> None:
    producer = FakeProducer(full_times=5)
    results = run_publish(publisher(producer), 3)
    assert [r.status for r in results] == ["ok"] * 3


def test_queue_full_until_the_deadline_is_a_retryable_failure() -> None:
    producer = FakeProducer(full_times=10**9)
    results = run_publish(publisher(producer, timeout=0.2), 2)
    assert {(r.status, r.error_code, r.retryable) for r in results} == {
        ("failed", "_QUEUE_FULL", True)
    }


def test_missing_report_never_hangs() -> None:
    producer = FakeProducer(lambda n: "never" if n == 1 else None)
    pub = publisher(producer, timeout=0.2)
    results = run_publish(pub, 3)
    assert [r.status for r in results] == ["ok", "failed", "ok"]
    assert (results[1].error_code, results[1].retryable) == ("_MSG_TIMED_OUT", True)


def test_calls_completed_together_do_not_wake_the_loop_per_call() -> None:
    producer = FakeProducer()
    pub = publisher(producer)
    wakeups: list[int] = []

    async def go() -> list[list[Any]]:
        loop = asyncio.get_running_loop()
        original = loop.call_soon_threadsafe

        def counting(callback: Any, *args: Any, **kwargs: Any) -> Any:
            wakeups.append(1)
            return original(callback, *args, **kwargs)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        try:
            return await asyncio.gather(*(pub.publish("topic", make_records(3)) for _ in range(20)))
        finally:
            loop.call_soon_threadsafe = original  # type: ignore[method-assign]
            await pub.close()

    calls = asyncio.run(go())
    assert all([r.status for r in results] == ["ok"] * 3 for results in calls)
    # Twenty calls completed by a handful of polls (on the poll thread or on the loop's
    # own thread): far fewer than one wake-up per call.
    assert len(wakeups) < 20


def test_reports_served_outside_the_poll_thread_still_resolve() -> None:
    class FlushOnly(FakeProducer):
        """Serves reports only in flush() (another thread), never in poll()."""

        def poll(self, timeout: float) -> int:
            threading.Event().wait(min(timeout, 0.01))
            return 0

        def flush(self, timeout: float) -> int:
            self.flushed = True
            return FakeProducer.poll(self, 0)

    producer = FlushOnly()
    pub = publisher(producer)

    async def go() -> list[Any]:
        task = asyncio.ensure_future(pub.publish("topic", make_records(4)))
        await asyncio.sleep(0.05)
        await pub.flush(1.0)
        try:
            return await asyncio.wait_for(task, 2.0)
        finally:
            await pub.close()

    assert [r.status for r in asyncio.run(go())] == ["ok"] * 4


def test_no_producer_is_created_before_the_first_publish() -> None:
    pub = KafkaPublisher(PublisherSettings())
    assert pub._handle is None
    asyncio.run(pub.close())


def test_publishers_with_the_same_settings_share_one_producer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    created: list[FakeProducer] = []

    def make(config: dict[str, Any]) -> FakeProducer:
        assert config["acks"] == "all"
        created.append(FakeProducer())
        return created[-1]

    monkeypatch.setattr(confluent_kafka, "Producer", make)
    settings = PublisherSettings(kafka_poll_interval_s=0.01)
    kafka = KafkaSettings(kafka_bootstrap_servers="127.0.0.1:1")
    first, second = KafkaPublisher(settings, kafka), KafkaPublisher(settings, kafka)
    other = KafkaPublisher(PublisherSettings(kafka_linger_ms=50), kafka)

    async def go() -> None:
        await first.publish("t", make_records(2))
        await second.publish("t", make_records(2))
        await other.publish("t", make_records(1))
        assert len(created) == 2
        await first.close()
        assert len(created[0].produced) == 4
        await second.close()  # the last user flushes and stops the shared producer
        assert created[0].flushed
        await other.close()

    asyncio.run(go())


@pytest.mark.parametrize("idempotence", [True, False])
def test_librdkafka_accepts_the_configuration(idempotence: bool) -> None:
    # Building a Producer validates the properties without any network call.
    config = KafkaPublisher(
        PublisherSettings(kafka_enable_idempotence=idempotence)
    ).producer_config()
    confluent_kafka.Producer(config)
