"""The lag report as text for an 80-column terminal (pure rendering)."""

from __future__ import annotations

from datetime import UTC, datetime

from consumers.lag import LagReport
from consumers.lag_view import render_lag, short_position, status_reason
from consumers.models import LagStatus, PartitionLag

GROUP = "sluice-warehouse-consumers-eu-central-1-production"
STREAM = "sluice-financial-transaction-eu-central-1-production"
OWNER = "ip-10-0-0-1.eu-central-1.compute.internal:12345"
SEQ = 49655312345678901234567890123456789012345678901234567890


def _row(partition: str, status: LagStatus, owner: str | None, lag: int = 5) -> PartitionLag:
    return PartitionLag(
        backend="kinesis",
        group=GROUP,
        stream=STREAM,
        partition=partition,
        committed=SEQ,
        end=None,
        lag_records=lag,
        lag_seconds=12.5,
        last_commit_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        owner=owner,
        status=status,
    )


def test_long_names_stay_whole_and_every_line_fits_80_columns() -> None:
    rows = (
        _row("shardId-000000000000", LagStatus.STOPPED, None),
        _row("shardId-000000000001", LagStatus.OK, OWNER, lag=0),
    )
    lines = render_lag(LagReport(GROUP, 0.0, rows), 80)
    text = "\n".join(lines)
    assert all(len(line) <= 80 for line in lines), text
    assert f"group {GROUP}: STOPPED" in lines[0]
    assert f"kinesis stream {STREAM}" in lines
    assert f"  owner #1: {OWNER}" in lines  # too long for its column: tagged, spelled out
    assert "total lag 5 records" in text
    assert "shardId-000000000000: no live consumer, 5 behind, commits not moving" in text


def test_short_owner_names_stay_in_their_column() -> None:
    rows = (_row("0", LagStatus.WARNING, "c1@host"),)
    lines = render_lag(LagReport("g", 0.0, rows), 80)
    assert lines[4].split()[-2:] == ["WARNING", "c1@host"]
    assert not any("owner #" in line for line in lines)


def test_long_positions_keep_their_last_digits() -> None:
    assert short_position(None) == "-"
    assert short_position(123) == "123"
    assert short_position(SEQ) == "…" + str(SEQ)[-11:]


def test_reasons_follow_the_status() -> None:
    assert "caught up" in status_reason(_row("0", LagStatus.OK, None, lag=0))
    assert "not committing" in status_reason(_row("0", LagStatus.STALLED, "m"))
    assert "no live consumer" in status_reason(_row("0", LagStatus.STOPPED, None))
    assert "not shrinking" in status_reason(_row("0", LagStatus.WARNING, "m"))
