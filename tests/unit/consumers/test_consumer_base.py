from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from consumers.base import (
    BatchAssembler,
    BatchProcessor,
    CheckpointTracker,
    RetryPolicy,
    bisect,
    dead_letter_headers,
    ensure_forward,
)
from consumers.exceptions import (
    CheckpointNotForwardError,
    DeadLetterError,
    SinkUnavailableError,
)
from consumers.memory import MemoryDeadLetters, MemorySink
from consumers.models import Batch, CommitStep, DeadLetter, DecodedRecord
from consumers.runner import BatchConsumer
from sluice.errors import FatalError, RetryableError
from sluice.streams.exceptions import NoAssignmentError
from sluice.streams.memory import MemoryCheckpointStore, MemorySource
from sluice.streams.models import PartitionKey
from tests.unit.consumers.consumer_fakes import ids, json_decoder, logs, make_record

TP0 = PartitionKey("t", "0")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def processor(
    sink: MemorySink, dlq: MemoryDeadLetters | None = None, **policy: float
) -> tuple[BatchProcessor, list[float]]:
    sleeps: list[float] = []

    def sleep(seconds: float) -> bool:
        sleeps.append(seconds)
        return True

    proc = BatchProcessor(
        sink,
        dlq or MemoryDeadLetters(),
        policy=RetryPolicy(**policy),  # type: ignore[arg-type]
        decoder=json_decoder,
        sleep=sleep,
    )
    return proc, sleeps


def batch(*offsets: int, partition: str = "0") -> Batch:
    return Batch(tuple(make_record(o, partition) for o in offsets))


# ---------------------------------------------------------------- checkpoint bookkeeping


def test_checkpoint_that_does_not_move_forward_raises() -> None:
    ensure_forward({TP0: 4}, {TP0: 5})
    with pytest.raises(CheckpointNotForwardError):
        ensure_forward({TP0: 4}, {TP0: 4})
    with pytest.raises(CheckpointNotForwardError):
        ensure_forward({TP0: 4}, {TP0: 3})


def test_tracker_seeds_marks_and_forgets() -> None:
    tracker = CheckpointTracker()
    tracker.seed({TP0: 9, PartitionKey("t", "1"): None})
    assert tracker.committed == {TP0: 9}
    with pytest.raises(CheckpointNotForwardError):
        tracker.mark({TP0: 9})
    tracker.mark({TP0: 10})
    tracker.forget([TP0])
    tracker.mark({TP0: 1})
    assert tracker.committed == {TP0: 1}


def test_batch_spans_and_stable_id() -> None:
    b = Batch((make_record(3), make_record(4), make_record(7, "1")))
    assert b.first_offsets() == {TP0: 3, PartitionKey("t", "1"): 7}
    assert b.last_offsets() == {TP0: 4, PartitionKey("t", "1"): 7}
    again = Batch((make_record(7, "1"), make_record(3), make_record(4)))
    assert b.batch_id == again.batch_id
    assert b.batch_id != batch(3, 4, 5).batch_id


# ---------------------------------------------------------------- batch assembly


def test_assembler_full_at_max_records() -> None:
    clock = Clock()
    a = BatchAssembler(3, 10.0, clock)
    a.add([make_record(0), make_record(1)])
    assert not a.ready()
    assert a.capacity() == 1
    a.add([make_record(2)])
    assert a.ready()
    assert len(a.take()) == 3
    assert a.pending == 0


def test_assembler_due_at_max_wait() -> None:
    clock = Clock()
    a = BatchAssembler(100, 2.0, clock)
    a.start()
    clock.now = 1.5
    assert not a.ready()
    assert a.time_left() == pytest.approx(0.5)
    clock.now = 2.0
    assert a.ready()
    assert len(a.take()) == 0


def test_assembler_drop_on_revoke() -> None:
    a = BatchAssembler(100, 2.0, Clock())
    a.add([make_record(0, "0"), make_record(0, "1"), make_record(1, "0")])
    dropped = a.drop([TP0])
    assert [r.offset for r in dropped] == [0, 1]
    assert a.pending == 1


# ---------------------------------------------------------------- retry and DLQ planning


def test_backoff_is_capped_exponential() -> None:
    p = RetryPolicy(base_delay_s=0.5, max_delay_s=3.0)
    assert [p.delay(a) for a in (0, 1, 2, 3, 4)] == [0.0, 0.5, 1.0, 2.0, 3.0]


def test_bisect_halves() -> None:
    recs = [json_decoder(make_record(o)) for o in range(5)]
    left, right = bisect(recs)
    assert len(left) == 3
    assert len(right) == 2


def test_dead_letter_headers_carry_origin_and_reason() -> None:
    record = make_record(42, "3", "payments")
    headers = dead_letter_headers(DeadLetter(record, "DataError", "x" * 5000, 4))
    assert headers["dlq-source-stream"] == "payments"
    assert headers["dlq-source-partition"] == "3"
    assert headers["dlq-source-offset"] == "42"
    assert headers["dlq-error-class"] == "DataError"
    assert len(headers["dlq-error-message"]) == 1000
    assert headers["dlq-attempts"] == "4"
    assert headers["event_type"] == "x"  # original headers kept


# ---------------------------------------------------------------- processing


def test_happy_batch_commits_sink_then_checkpoint() -> None:
    sink = MemorySink()
    proc, sleeps = processor(sink)
    saved: list[dict[PartitionKey, int]] = []

    def checkpoint(positions: object) -> None:
        assert sink.commits == 1  # the sink committed before the checkpoint moved
        saved.append(dict(positions))  # type: ignore[call-overload]

    outcome = proc.process(batch(0, 1, 2), checkpoint)
    assert saved == [{TP0: 2}]
    assert proc.last_steps == [
        CommitStep.SINK_COMMIT,
        CommitStep.DEAD_LETTERS,
        CommitStep.CHECKPOINT,
    ]
    assert outcome.written == 3
    assert outcome.rollbacks == 0
    assert sleeps == []


def test_sink_failing_once_rolls_back_and_retries_without_loss() -> None:
    failures = [RetryableError("connection reset")]
    sink = MemorySink(fail=lambda recs: failures.pop() if failures else None)
    proc, sleeps = processor(sink, base_delay_s=0.1)
    outcome = proc.process(batch(0, 1, 2), lambda p: None)
    assert sink.rollbacks == 1
    assert sorted(sink.rows) == ["t-0-0", "t-0-1", "t-0-2"]
    assert outcome.rollbacks == 1
    assert sleeps == [0.1]
    # the retried transaction carries the same batch id
    assert sink.batch_ids[0] == sink.batch_ids[1]


def test_sink_failing_transiently_every_time_raises_without_checkpoint() -> None:
    sink = MemorySink(fail=lambda recs: RetryableError("down"))
    proc, _ = processor(sink, attempts=3)
    saved: list[object] = []
    with pytest.raises(SinkUnavailableError):
        proc.process(batch(0, 1), saved.append)
    assert saved == []
    assert sink.rollbacks == 3
    assert sink.rows == {}


def poison(*event_ids: str):  # type: ignore[no-untyped-def]
    def fail(records: Sequence[DecodedRecord]) -> Exception | None:
        if set(ids(records)) & set(event_ids):
            return FatalError("value out of range", code="22003")
        return None

    return fail


def test_poison_record_is_isolated_and_dead_lettered_and_batch_goes_on() -> None:
    sink = MemorySink(fail=poison("t-0-5"))
    dlq = MemoryDeadLetters()
    proc, _ = processor(sink, dlq, attempts=2, record_attempts=2)
    saved: list[object] = []
    outcome = proc.process(batch(*range(8)), saved.append)
    assert sorted(sink.rows) == sorted(f"t-0-{i}" for i in range(8) if i != 5)
    assert [letter.record.offset for letter in dlq.letters] == [5]
    letter = dlq.letters[0]
    assert letter.error_class == "FatalError"
    assert "value out of range" in letter.message
    # 2 batch writes + 3 halvings (8->4->2->1) + 1 retry alone
    assert letter.attempts == 6
    assert saved == [{TP0: 7}]
    assert outcome.dead_letters == (letter,)


def test_two_poison_records_in_different_halves() -> None:
    sink = MemorySink(fail=poison("t-0-0", "t-0-6"))
    dlq = MemoryDeadLetters()
    proc, _ = processor(sink, dlq, attempts=1, record_attempts=1)
    proc.process(batch(*range(7)), lambda p: None)
    assert sorted(letter.record.offset for letter in dlq.letters) == [0, 6]
    assert len(sink.rows) == 5


def test_undecodable_record_goes_to_dlq_with_decode_error() -> None:
    sink = MemorySink()
    dlq = MemoryDeadLetters()
    proc, _ = processor(sink, dlq)
    bad = make_record(1)
    bad = type(bad)(bad.stream, bad.partition, 1, b"\x00not json", None, {}, None)
    proc.process(Batch((make_record(0), bad, make_record(2))), lambda p: None)
    assert [letter.error_class for letter in dlq.letters] == ["DecodeError"]
    assert dlq.letters[0].attempts == 1
    assert sorted(sink.rows) == ["t-0-0", "t-0-2"]


def test_batch_of_only_undecodable_records_still_checkpoints() -> None:
    sink = MemorySink()
    dlq = MemoryDeadLetters()
    proc, _ = processor(sink, dlq)
    bad = type(make_record(0))("t", "0", 0, b"\xff", None, {}, None)
    saved: list[object] = []
    proc.process(Batch((bad,)), saved.append)
    assert saved == [{TP0: 0}]
    assert sink.commits == 0


def test_dead_letter_failure_blocks_the_checkpoint() -> None:
    sink = MemorySink(fail=poison("t-0-1"))
    dlq = MemoryDeadLetters(fail_times=1)
    proc, _ = processor(sink, dlq, attempts=1, record_attempts=1)
    saved: list[object] = []
    with pytest.raises(DeadLetterError):
        proc.process(batch(0, 1), saved.append)
    assert saved == []


def test_transient_failure_while_isolating_gives_up_the_batch() -> None:
    calls = {"n": 0}

    def fail(records: Sequence[DecodedRecord]) -> Exception | None:
        calls["n"] += 1
        return FatalError("bad row") if calls["n"] == 1 else RetryableError("gone")

    proc, _ = processor(MemorySink(fail=fail), attempts=1)
    with pytest.raises(SinkUnavailableError):
        proc.process(batch(0, 1, 2, 3), lambda p: None)


def test_interrupted_backoff_rolls_back_and_raises() -> None:
    from consumers.exceptions import ConsumerInterrupted

    sink = MemorySink(fail=lambda r: RetryableError("down"))
    proc = BatchProcessor(sink, MemoryDeadLetters(), decoder=json_decoder, sleep=lambda s: False)
    with pytest.raises(ConsumerInterrupted):
        proc.process(batch(0), lambda p: None)
    assert sink.rollbacks == 1


# ---------------------------------------------------------------- the run loop


def consumer(
    source: MemorySource,
    sink: MemorySink,
    dlq: MemoryDeadLetters | None = None,
    max_records: int = 4,
) -> BatchConsumer:
    proc = BatchProcessor(
        sink, dlq or MemoryDeadLetters(), decoder=json_decoder, policy=RetryPolicy(base_delay_s=0.0)
    )
    c = BatchConsumer(source, proc, max_records=max_records, max_wait_s=0.05, poll_slice_s=0.01)
    proc._sleep = c.wait
    return c


def test_run_until_caught_up_reaches_every_record_once_and_closes() -> None:
    source = MemorySource(logs(2, 7))
    sink = MemorySink()
    summary = consumer(source, sink).run(until_caught_up=True, timeout_s=10)
    assert len(sink.rows) == 14
    assert summary.records == 14
    assert source.closed
    assert source.store.load([TP0]) == {TP0: 6}


def test_restart_resumes_from_checkpoint() -> None:
    store = MemoryCheckpointStore()
    sink = MemorySink()
    consumer(MemorySource(logs(1, 10), store), sink, max_records=3).run(max_batches=2, timeout_s=10)
    assert store.load([TP0]) == {TP0: 5}
    sink2 = MemorySink()
    consumer(MemorySource(logs(1, 10), store), sink2, max_records=3).run(
        until_caught_up=True, timeout_s=10
    )
    assert sorted(sink2.rows) == [f"t-0-{i}" for i in range(6, 10)]


def test_unavailable_sink_rewinds_and_a_later_pass_commits() -> None:
    down = {"left": 4}

    def fail(records: Sequence[DecodedRecord]) -> Exception | None:
        if down["left"] > 0:
            down["left"] -= 1
            return RetryableError("warehouse restarting")
        return None

    source = MemorySource(logs(1, 3))
    sink = MemorySink(fail=fail)
    c = consumer(source, sink)
    summary = c.run(until_caught_up=True, timeout_s=10)
    assert summary.rewinds == 1
    assert sorted(sink.rows) == ["t-0-0", "t-0-1", "t-0-2"]
    assert source.checkpoints[-1] == {TP0: 2}


def test_stop_finishes_the_batch_in_hand_and_closes() -> None:
    source = MemorySource(logs(1, 100))
    sink = MemorySink()
    c = consumer(source, sink, max_records=10)
    original = source.poll

    def poll_then_stop(max_records: int, timeout_s: float) -> list:  # type: ignore[type-arg]
        c.stop()
        return original(max_records, timeout_s)

    source.poll = poll_then_stop  # type: ignore[method-assign]
    c.run()
    assert len(sink.rows) == 10
    assert source.store.load([TP0]) == {TP0: 9}
    assert source.closed


def test_revoke_commits_pending_records_of_revoked_partitions() -> None:
    source = MemorySource(logs(2, 3))
    sink = MemorySink()
    c = consumer(source, sink, max_records=100)
    c.assembler.add(source.poll(100, 0))
    c.handle_revoke([TP0])
    assert sorted(sink.rows) == ["t-0-0", "t-0-1", "t-0-2"]
    assert source.store.load([TP0]) == {TP0: 2}
    assert c.assembler.pending == 3


def test_revoke_rolls_back_when_the_sink_is_down() -> None:
    source = MemorySource(logs(1, 3))
    sink = MemorySink(fail=lambda r: RetryableError("down"))
    c = consumer(source, sink, max_records=100)
    c.processor.policy = RetryPolicy(attempts=1, base_delay_s=0)
    c.assembler.add(source.poll(100, 0))
    c.handle_revoke([TP0])
    assert sink.rows == {}
    assert source.store.load([TP0]) == {TP0: None}
    assert c.assembler.pending == 0


class _Unassigned:
    """A member that never gets a partition (a stuck or full group)."""

    def __init__(self) -> None:
        self.closed = False

    def poll(self, max_records: int, timeout_s: float) -> list[Any]:
        return []

    def checkpoint(self, positions: Any) -> None:
        raise AssertionError("nothing to checkpoint")

    def rewind(self, positions: Any) -> None:
        return None

    def caught_up(self) -> bool:
        return False

    def assignment(self) -> frozenset[PartitionKey]:
        return frozenset()

    def waiting_reason(self) -> str:
        return "Kafka group g on topic(s) t: no partition assigned (group state: STABLE)"

    def close(self) -> None:
        self.closed = True


def _unassigned_consumer(timeout_s: float) -> tuple[BatchConsumer, _Unassigned]:
    source = _Unassigned()
    processor = BatchProcessor(MemorySink(), MemoryDeadLetters())
    consumer = BatchConsumer(
        source, processor, max_wait_s=0.05, poll_slice_s=0.01, assignment_timeout_s=timeout_s
    )
    return consumer, source


def test_until_caught_up_without_assignment_fails_naming_group_topic_and_state() -> None:
    consumer, source = _unassigned_consumer(0.3)
    with pytest.raises(NoAssignmentError) as info:
        consumer.run(until_caught_up=True, timeout_s=30)
    assert "group g" in info.value.message and "topic(s) t" in info.value.message
    assert "STABLE" in info.value.message
    assert source.closed


def test_a_running_member_without_assignment_logs_it_periodically(
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumer, _ = _unassigned_consumer(0.2)
    with caplog.at_level("WARNING", logger="consumers.runner"):
        summary = consumer.run(timeout_s=1.0)
    assert summary.batches == 0
    said = [r.getMessage() for r in caplog.records if "no partition assigned" in r.getMessage()]
    assert 2 <= len(said) <= 6  # about every 0.2 s after the first 0.2 s, not every poll


def test_assembler_is_full_at_its_byte_limit_and_due_at_its_interval() -> None:
    now = [0.0]
    assembler = BatchAssembler(1000, 60.0, lambda: now[0], max_bytes=100)
    assembler.add([make_record(0)._replace(value=b"x" * 60)])
    assert not assembler.ready() and assembler.capacity() > 0
    assembler.add([make_record(1)._replace(value=b"x" * 60)])
    assert assembler.ready() and assembler.capacity() == 0  # size hint reached
    assert len(assembler.take()) == 2
    assembler.add([make_record(2)._replace(value=b"x")])
    now[0] = 59.9
    assert not assembler.ready()
    now[0] = 60.0
    assert assembler.ready()  # interval from the first record, even with no new data
