from __future__ import annotations

from consumers.lag import LagReport, LagWindow, evaluate, kafka_lag_records, lag_seconds, worst
from consumers.models import LagSample, LagStatus, PartitionLag


def s(at: float, committed: int | None, lag: int, last_commit: float | None = None) -> LagSample:
    return LagSample(at, committed, lag, last_commit if last_commit is not None else at)


def test_kafka_lag_records() -> None:
    assert kafka_lag_records(10, 0, 15) == 5
    assert kafka_lag_records(None, 3, 15) == 12  # no commit: from the low watermark
    assert kafka_lag_records(1, 5, 15) == 10  # below low (retention): from low
    assert kafka_lag_records(15, 0, 15) == 0


def test_lag_seconds_is_age_of_oldest_unconsumed_and_zero_when_idle() -> None:
    assert lag_seconds(3, 100.0, 130.0) == 30.0
    assert lag_seconds(0, 100.0, 130.0) == 0.0  # idle partition: zero, not stale
    assert lag_seconds(3, None, 130.0) == 0.0
    assert lag_seconds(3, 200.0, 130.0) == 0.0  # clock skew never goes negative


def test_ok_when_lag_was_zero_in_the_window() -> None:
    assert evaluate([s(0, 5, 3), s(10, 5, 0), s(20, 5, 4)], 20) is LagStatus.OK
    assert evaluate([], 0) is LagStatus.OK


def test_ok_when_lag_decreases() -> None:
    assert evaluate([s(0, 5, 30), s(10, 20, 15), s(20, 30, 5)], 20) is LagStatus.OK


def test_warning_when_commits_advance_but_lag_grows() -> None:
    assert evaluate([s(0, 5, 30), s(10, 20, 31), s(20, 30, 40)], 20) is LagStatus.WARNING


def test_warning_on_rewind() -> None:
    assert evaluate([s(0, 50, 3), s(10, 5, 1), s(20, 8, 1)], 20) is LagStatus.WARNING


def test_stalled_when_commits_stop_with_a_live_owner() -> None:
    samples = [s(0, 5, 3, 0), s(10, 5, 4, 0), s(20, 5, 6, 0)]
    assert evaluate(samples, 20, owner_alive=True) is LagStatus.STALLED


def test_stopped_when_no_live_owner() -> None:
    samples = [s(0, 5, 3, 0), s(10, 5, 4, 0)]
    assert evaluate(samples, 10, owner_alive=False) is LagStatus.STOPPED


def test_owner_unknown_uses_burrows_time_rule() -> None:
    samples = [s(100, 5, 3, 0), s(110, 5, 4, 0)]
    # 200 s since the last commit > the 10 s window and > stall_after: stopped
    assert evaluate(samples, 200, stall_after_s=60) is LagStatus.STOPPED
    recent = [s(100, 5, 3, 90), s(110, 5, 4, 90)]
    assert evaluate(recent, 110, stall_after_s=60) is LagStatus.STALLED


def test_single_sample_uses_time_since_last_commit() -> None:
    assert evaluate([s(100, 5, 3, 90)], 100, owner_alive=True) is LagStatus.OK
    assert evaluate([s(100, 5, 3, 10)], 100, owner_alive=True) is LagStatus.STALLED
    assert evaluate([s(100, 5, 3, 10)], 100, owner_alive=False) is LagStatus.STOPPED


def row(partition: str, lag: int, committed: int, owner: str | None = "m1") -> PartitionLag:
    return PartitionLag(
        "kafka", "g", "t", partition, committed, 100, lag, 1.0, None, owner, live=owner is not None
    )


def test_window_fills_statuses_and_report_totals() -> None:
    window = LagWindow(size=3)
    window.add([row("0", 10, 5), row("1", 0, 9)], 0)
    window.add([row("0", 11, 5), row("1", 0, 9)], 10)
    rows = window.add([row("0", 12, 5), row("1", 0, 9)], 20)
    assert [r.status for r in rows] == [LagStatus.STALLED, LagStatus.OK]
    report = LagReport("g", 20, tuple(rows))
    assert report.total_records == 12
    assert report.status is LagStatus.STALLED
    doc = report.to_json()
    assert doc["partitions"][0]["status"] == "STALLED"
    assert doc["total_lag_records"] == 12
    assert worst([]) is LagStatus.OK


def test_single_sample_without_commit_time_only_flags_a_missing_owner() -> None:
    unknown = LagSample(100, 5, 3, None)
    assert evaluate([unknown], 100, owner_alive=True) is LagStatus.OK
    assert evaluate([unknown], 100, owner_alive=False) is LagStatus.STOPPED


def test_window_infers_commit_times_when_the_store_keeps_none() -> None:
    window = LagWindow(size=5, stall_after_s=15)

    def r(committed: int, lag: int) -> PartitionLag:
        return PartitionLag("kafka", "g", "t", "0", committed, 100, lag, 1.0, None, "m1", live=True)

    assert window.add([r(5, 10)], 0)[0].status is LagStatus.OK
    assert window.add([r(8, 10)], 10)[0].status is LagStatus.WARNING  # lag not decreasing
    assert window.add([r(9, 4)], 20)[0].status is LagStatus.OK


def kafka_row(lag: int, *, live: bool | None, committed_at: float | None) -> PartitionLag:
    from datetime import UTC, datetime

    at = None if committed_at is None else datetime.fromtimestamp(committed_at, UTC)
    # Brokers that list no members per partition (the local Tansu) leave owner unknown;
    # liveness then comes from the group's state.
    return PartitionLag("kafka", "g", "t", "0", 5, 100, lag, 1.0, at, None, live=live)


def test_one_shot_group_without_live_member_and_lag_is_stopped() -> None:
    # a commit a second ago (with our metadata) does not make a memberless group OK
    (row_,) = LagWindow().add([kafka_row(7, live=False, committed_at=99.0)], 100.0)
    assert row_.status is LagStatus.STOPPED


def test_one_shot_group_whose_commits_carry_no_metadata_of_ours_is_still_judged() -> None:
    (row_,) = LagWindow().add([kafka_row(7, live=False, committed_at=None)], 100.0)
    assert row_.status is LagStatus.STOPPED
    (idle,) = LagWindow().add([kafka_row(0, live=False, committed_at=None)], 100.0)
    assert idle.status is LagStatus.OK  # nothing to read: no lag, not stopped


def test_live_group_is_not_stopped() -> None:
    (row_,) = LagWindow().add([kafka_row(7, live=True, committed_at=99.0)], 100.0)
    assert row_.status is LagStatus.OK


def test_memberless_group_whose_commits_just_moved_is_not_stopped_yet() -> None:
    samples = [s(0, 5, 9, 0), s(10, 8, 6, 10)]
    assert evaluate(samples, 10, owner_alive=False) is LagStatus.OK
    assert evaluate([*samples, s(20, 8, 6, 10)], 20, owner_alive=False) is LagStatus.STOPPED
