"""Bounded history for the dashboard (pure): fixed-size rings, so memory stays constant.

A :class:`Series` preallocates its arrays once; :class:`History` holds at most
``max_series`` of them and drops the one updated longest ago when a new key comes (a
partition that vanished, say), so neither the number of points nor the number of
series grows with uptime.
"""

from __future__ import annotations

import math
from array import array
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence


class Series:
    """A ring of ``capacity`` samples, each a time and ``fields`` floats."""

    __slots__ = ("_next", "_size", "_times", "_values", "capacity", "fields")

    def __init__(self, capacity: int, fields: int) -> None:
        if capacity < 1 or fields < 1:
            raise ValueError("a series needs at least one point and one field")
        self.capacity = capacity
        self.fields = fields
        self._times = array("d", [math.nan]) * capacity
        self._values = array("d", [math.nan]) * (capacity * fields)
        self._next = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, at: float, values: Sequence[float]) -> None:
        """Append one sample, overwriting the oldest when full."""
        if len(values) != self.fields:
            raise ValueError(f"expected {self.fields} values, got {len(values)}")
        i = self._next
        self._times[i] = at
        base = i * self.fields
        for k, v in enumerate(values):
            self._values[base + k] = float(v)
        self._next = (i + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)

    def points(self, since: float | None = None) -> list[list[float]]:
        """``[[t, v1, ...], ...]`` oldest first (only ``t >= since`` when given)."""
        start = (self._next - self._size) % self.capacity
        out: list[list[float]] = []
        for n in range(self._size):
            i = (start + n) % self.capacity
            t = self._times[i]
            if since is not None and t < since:
                continue
            base = i * self.fields
            out.append([t, *self._values[base : base + self.fields]])
        return out

    def last(self) -> list[float] | None:
        """The newest sample, or ``None``."""
        if not self._size:
            return None
        i = (self._next - 1) % self.capacity
        base = i * self.fields
        return [self._times[i], *self._values[base : base + self.fields]]


class History:
    """Series by key, at most ``max_series`` of them (least recently updated go first)."""

    def __init__(self, capacity: int, *, max_series: int = 512) -> None:
        self.capacity = capacity
        self.max_series = max_series
        self._series: OrderedDict[Hashable, Series] = OrderedDict()

    def __len__(self) -> int:
        return len(self._series)

    def add(self, key: Hashable, at: float, values: Sequence[float]) -> None:
        """Append a sample to ``key``'s series (created on first use)."""
        series = self._series.get(key)
        if series is None:
            while len(self._series) >= self.max_series:
                self._series.popitem(last=False)
            series = self._series[key] = Series(self.capacity, len(values))
        else:
            self._series.move_to_end(key)
        series.add(at, values)

    def get(self, key: Hashable) -> Series | None:
        """The series of ``key``, if any."""
        return self._series.get(key)


def counter_rates(
    previous: Mapping[str, float] | None, current: Mapping[str, float], seconds: float
) -> dict[str, float]:
    """Per-second rates of counters between two readings.

    A counter that went down was reset (its process restarted): its new value is the
    increase since then, as Prometheus' ``rate()`` reads it. No previous reading, or no
    time between them, gives no rate.
    """
    if previous is None or seconds <= 0:
        return {}
    out = {}
    for name, value in current.items():
        before = previous.get(name)
        if before is None:
            continue
        increase = value - before if value >= before else value
        out[name] = increase / seconds
    return out
