"""CPU time and memory of process trees, sampled (used by ``benchmarks/e2e.py``).

A :class:`TreeSampler` watches named roots ("stages"); at every sample it walks each
root's descendants with psutil and keeps, per process, its last CPU time (user +
system) and every RSS reading. A stage's CPU is the sum over every process ever seen
under it, minus what each process had already used when the sampler first saw it
before the start (processes of a reused stack). A process that ends between two
samples loses at most one interval of CPU: the figures are lower bounds within that.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psutil


@dataclass
class ProcessTrace:
    """What the sampler saw of one process."""

    pid: int
    stage: str
    name: str
    cpu_base_s: float
    cpu_last_s: float
    rss: list[tuple[float, int]] = field(default_factory=list)

    @property
    def cpu_s(self) -> float:
        """CPU seconds used while watched."""
        return max(self.cpu_last_s - self.cpu_base_s, 0.0)

    def rss_summary(self, start: float, end: float) -> dict[str, Any]:
        """Peak RSS, and the mean of the first and last thirds of ``start..end``.

        ``flat`` holds when the last third's mean is within 10 % (or 16 MiB) of the
        first third's: memory that grows with the events would break it on a long run.
        ``None`` for a process that did not live through both thirds.
        """
        peak = max((value for _, value in self.rss), default=0)
        third = (end - start) / 3.0
        first = [v for t, v in self.rss if t <= start + third]
        last = [v for t, v in self.rss if t >= end - third]
        mib = 1024 * 1024
        first_mean = sum(first) / len(first) if first else 0.0
        last_mean = sum(last) / len(last) if last else 0.0
        flat: bool | None = None
        if first and last:
            flat = last_mean - first_mean <= max(0.10 * first_mean, 16 * mib)
        return {
            "pid": self.pid,
            "stage": self.stage,
            "name": self.name,
            "cpu_s": round(self.cpu_s, 2),
            "peak_rss_mib": round(peak / mib, 1),
            "first_third_rss_mib": round(first_mean / mib, 1) if first else None,
            "last_third_rss_mib": round(last_mean / mib, 1) if last else None,
            "flat": flat,
        }


class TreeSampler:
    """Samples the CPU time and RSS of process trees on a background thread."""

    def __init__(self, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self._roots: dict[str, list[int]] = {}
        self._excluded: set[int] = set()
        self._traces: dict[tuple[str, int], ProcessTrace] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False

    def watch(self, stage: str, pid: int) -> None:
        """Count ``pid`` and its descendants, present and future, under ``stage``."""
        with self._lock:
            self._roots.setdefault(stage, []).append(pid)
        self.sample()

    def exclude(self, pid: int) -> None:
        """Leave ``pid`` out (the measuring side's own database session)."""
        with self._lock:
            self._excluded.add(pid)

    def start(self) -> None:
        """Mark the start (processes seen before count only from here) and sample."""
        self.sample()
        self._started = True
        self._thread = threading.Thread(target=self._loop, name="tree-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Take a last sample and stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        """Read every watched tree once."""
        now = time.monotonic()
        with self._lock:
            roots = {stage: list(pids) for stage, pids in self._roots.items()}
            excluded = set(self._excluded)
        for stage, pids in roots.items():
            for pid in pids:
                for proc in _tree(pid):
                    if proc.pid in excluded:
                        continue
                    try:
                        with proc.oneshot():
                            cpu = proc.cpu_times()
                            used = cpu.user + cpu.system
                            rss = proc.memory_info().rss
                            name = proc.name()
                    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                        continue
                    key = (stage, proc.pid)
                    with self._lock:
                        trace = self._traces.get(key)
                        if trace is None:
                            # Seen before the start: count only what it uses from now on.
                            base = used if not self._started else 0.0
                            trace = ProcessTrace(proc.pid, stage, name, base, used)
                            self._traces[key] = trace
                        trace.cpu_last_s = max(trace.cpu_last_s, used)
                        trace.rss.append((now, rss))

    def cpu_by_stage(self) -> dict[str, float]:
        """CPU seconds per stage since the start."""
        with self._lock:
            totals: dict[str, float] = {stage: 0.0 for stage in self._roots}
            for trace in self._traces.values():
                totals[trace.stage] = totals.get(trace.stage, 0.0) + trace.cpu_s
        return totals

    def memory(self, start: float, end: float, min_rss_mib: float = 20.0) -> list[dict[str, Any]]:
        """RSS summary of each process large enough to matter, by stage."""
        mib = 1024 * 1024
        with self._lock:
            traces = list(self._traces.values())
        rows = [
            t.rss_summary(start, end)
            for t in traces
            if max((v for _, v in t.rss), default=0) >= min_rss_mib * mib
        ]
        return sorted(rows, key=lambda r: (r["stage"], -r["peak_rss_mib"]))


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []
