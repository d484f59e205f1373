"""The dashboard's bounded history and counter rates (pure)."""

from __future__ import annotations

import pytest

from sluice.dashboard.config import MAX_POINTS, DashboardSettings
from sluice.dashboard.history import History, Series, counter_rates


def test_series_keeps_the_newest_points_in_order() -> None:
    series = Series(capacity=3, fields=2)
    for i in range(5):
        series.add(float(i), (i * 10, i * 100))
    assert len(series) == 3
    assert series.points() == [[2.0, 20.0, 200.0], [3.0, 30.0, 300.0], [4.0, 40.0, 400.0]]
    assert series.points(since=3.0) == [[3.0, 30.0, 300.0], [4.0, 40.0, 400.0]]
    assert series.last() == [4.0, 40.0, 400.0]


def test_series_refuses_a_sample_of_the_wrong_shape() -> None:
    series = Series(capacity=2, fields=2)
    with pytest.raises(ValueError, match="expected 2 values"):
        series.add(0.0, (1.0,))
    with pytest.raises(ValueError, match="at least one point"):
        Series(capacity=0, fields=1)


def test_history_drops_the_series_updated_longest_ago() -> None:
    history = History(capacity=4, max_series=2)
    history.add("a", 0.0, (1.0,))
    history.add("b", 1.0, (1.0,))
    history.add("a", 2.0, (2.0,))  # a is now the most recent
    history.add("c", 3.0, (1.0,))
    assert len(history) == 2
    assert history.get("b") is None
    assert history.get("a") is not None and len(history.get("a") or ()) == 2


def test_counter_rates_per_second_and_across_a_reset() -> None:
    assert counter_rates(None, {"x": 5.0}, 2.0) == {}
    assert counter_rates({"x": 1.0}, {"x": 5.0}, 0.0) == {}
    assert counter_rates({"x": 1.0, "gone": 3.0}, {"x": 5.0, "new": 1.0}, 2.0) == {"x": 2.0}
    assert counter_rates({"x": 100.0}, {"x": 4.0}, 2.0) == {"x": 2.0}  # restarted process


def test_points_per_series_follow_history_and_refresh_with_a_ceiling() -> None:
    assert DashboardSettings(dashboard_history_s=3600, dashboard_refresh_s=2).points() == 1800
    assert DashboardSettings(dashboard_history_s=86_400, dashboard_refresh_s=0.1).points() == (
        MAX_POINTS
    )
