"""Records/s through the consumer framework (no-op sink) against a bare confluent-kafka loop.

Both run in the same process against the same topic, each with a fresh consumer group:

- baseline: ``consume(500)`` in a loop with a synchronous offset commit per batch;
- framework: ``BatchConsumer`` with batches of 500, a no-op sink, synchronous commits
  after the sink, the dead-letter path idle (pass-through decoder);
- framework + Avro: the framework with the schemas codec decoding every record, against
  the bare loop decoding every record with the same codec call.

Rounds alternate which loop runs first; the headline figure is the median of the
per-round ratios (the two loops of a round see about the same machine load).
The broker comes from ``SLUICE_KAFKA_BOOTSTRAP_SERVERS`` (or ``.sluice/stack.env``):
run ``sluice stack up`` first. Target: framework / baseline >= 0.5.

    python benchmarks/consume.py [--records 50000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from typing import Any

from consumers.base import BatchProcessor, RetryPolicy, passthrough_decoder
from consumers.config import ConsumerSettings
from consumers.memory import MemoryDeadLetters, NoopSink
from consumers.models import BatchOutcome
from consumers.runner import BatchConsumer
from sluice.config import KafkaSettings
from sluice.streams.kafka import KafkaSource

BATCH = 500


def produce(kafka: KafkaSettings, topic: str, count: int) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    import schemas

    admin = AdminClient(kafka.client_config())
    admin.create_topics([NewTopic(topic, 4, 1)])[topic].result(15)
    body = schemas.parse_event(
        "financial-transaction", schemas.example_event("financial-transaction")
    )
    producer = Producer({**kafka.client_config(), "linger.ms": 20, "enable.idempotence": False})
    for i in range(count):
        body = {**body, "event_id": str(uuid.uuid4())}
        producer.produce(
            topic, key=f"acc-{i % 64}", value=schemas.encode("financial-transaction", body)
        )
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(60)


def bare_loop(kafka: KafkaSettings, topic: str, count: int, *, avro: bool = False) -> float:
    from confluent_kafka import Consumer

    from schemas.codec import decode

    consumer = Consumer(
        {
            **kafka.client_config(),
            "group.id": f"bench-bare-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    seen = 0
    started: float | None = None
    try:
        while seen < count:
            messages = consumer.consume(num_messages=BATCH, timeout=1.0)
            good = [m for m in messages if m.error() is None]
            if not good:
                continue
            if started is None:
                started = time.perf_counter()
            if avro:
                for m in good:
                    decode(m.value())
            seen += len(good)
            consumer.commit(asynchronous=False, offsets=_next_offsets(good))
    finally:
        consumer.close()
    assert started is not None
    return seen / (time.perf_counter() - started)


def _next_offsets(messages: list[Any]) -> list[Any]:
    from confluent_kafka import TopicPartition

    last: dict[tuple[str, int], int] = {}
    for m in messages:
        last[(m.topic(), m.partition())] = m.offset()
    return [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]


class StopAt:
    def __init__(self, count: int) -> None:
        self.count = count
        self.seen = 0
        self.started: float | None = None
        self.finished: float | None = None
        self.consumer: BatchConsumer | None = None

    def batch_done(self, outcome: BatchOutcome) -> None:
        if self.started is None:
            self.started = time.perf_counter() - outcome.duration_s
        self.seen += outcome.records
        if self.seen >= self.count and self.finished is None:
            # Timed like the bare loop: up to the last committed batch, not the close.
            self.finished = time.perf_counter()
            if self.consumer is not None:
                self.consumer.stop()

    def batch_failed(self, error: BaseException) -> None:
        raise error


def framework(kafka: KafkaSettings, topic: str, count: int, *, avro: bool) -> float:
    from consumers.base import decode_record

    settings = ConsumerSettings(
        consumer_group=f"bench-fw-{uuid.uuid4().hex[:8]}", consumer_batch_max_records=BATCH
    )
    source = KafkaSource([topic], options=settings.reader_options(), kafka=kafka)
    processor = BatchProcessor(
        NoopSink(),
        MemoryDeadLetters(),
        policy=RetryPolicy(),
        decoder=decode_record if avro else passthrough_decoder("financial-transaction"),
    )
    observer = StopAt(count)
    consumer = BatchConsumer(
        source, processor, max_records=BATCH, max_wait_s=1.0, observer=observer
    )
    observer.consumer = consumer
    source.on_assigned = processor.tracker.seed
    source.on_revoked = consumer.handle_revoke
    consumer.run(timeout_s=600)
    assert observer.started is not None
    assert observer.finished is not None
    return observer.seen / (observer.finished - observer.started)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.rounds < 3:
        parser.error("--rounds must be at least 3 (best and median of several rounds)")
    kafka = KafkaSettings()
    topic = f"bench-consume-{uuid.uuid4().hex[:8]}"
    print(f"producing {args.records} records to {topic} on {kafka.kafka_bootstrap_servers} ...")
    produce(kafka, topic, args.records)
    plain = paired_rounds(kafka, topic, args.records, args.rounds, avro=False)
    avro = paired_rounds(kafka, topic, args.records, args.rounds, avro=True)
    plain_ratio = report("no-op sink", "bare confluent-kafka loop", plain)
    report("Avro decoding", "bare loop + the same codec decode", avro)
    print(f"ratio, no-op sink, median of rounds: {plain_ratio:.2f} (target >= 0.5)")
    return 0 if plain_ratio >= 0.5 else 1


def paired_rounds(
    kafka: KafkaSettings, topic: str, count: int, rounds: int, *, avro: bool
) -> list[tuple[float, float]]:
    """(bare, framework) records/s per round; odd rounds run the framework first."""
    out = []
    for rnd in range(rounds):
        if rnd % 2 == 0:
            bare = bare_loop(kafka, topic, count, avro=avro)
            fw = framework(kafka, topic, count, avro=avro)
        else:
            fw = framework(kafka, topic, count, avro=avro)
            bare = bare_loop(kafka, topic, count, avro=avro)
        out.append((bare, fw))
    return out


def report(what: str, baseline: str, rounds: list[tuple[float, float]]) -> float:
    """Print the rounds and medians; returns the median of the per-round ratios."""
    ratios = [fw / bare for bare, fw in rounds]
    bare_median = statistics.median(b for b, _ in rounds)
    fw_median = statistics.median(f for _, f in rounds)
    print(f"{what}:")
    for i, (bare, fw) in enumerate(rounds, start=1):
        print(
            f"  round {i}: {baseline} {bare:>9,.0f}/s   framework {fw:>9,.0f}/s   "
            f"ratio {fw / bare:.2f}"
        )
    print(
        f"  medians: {baseline} {bare_median:,.0f} records/s, framework {fw_median:,.0f} "
        f"records/s; ratio median of rounds {statistics.median(ratios):.2f}, "
        f"best {max(ratios):.2f}"
    )
    return statistics.median(ratios)


if __name__ == "__main__":
    raise SystemExit(main())
