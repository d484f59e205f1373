"""``benchmarks/e2e.py`` at a tiny size, so the script cannot rot.

It runs as users run it (a fresh process) against the session's local stack
(``SLUICE_STACK_ENV``), and must load every accepted event exactly once, report the
figures in the documented JSON shape, and leave no process of its own behind, also
when interrupted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "e2e.py"
STAGES = {"simulate", "api", "delivery", "load", "postgres"}


def _env(stack: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env["SLUICE_STACK_ENV"] = str(stack.env_file)
    return env


def _processes_naming(run_id: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(run_id in part for part in proc.info["cmdline"] or ()):
            found.append(proc)
    return found


def test_a_tiny_kafka_run_loads_everything_once_and_reports_every_stage(stack: Any) -> None:
    done = subprocess.run(
        [
            sys.executable, str(SCRIPT), "--events", "300", "--backend", "kafka",
            "--api-workers", "1", "--partitions", "2", "--buffer-seconds", "1", "--json",
        ],
        env=_env(stack),
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["stack"] == "reused"
    assert set(report["machine"]) >= {"cpus", "load_avg_start", "load_avg_end"}
    (run,) = report["runs"]
    assert run["backend"] == "kafka" and run["partitions"] == 2
    assert run["api_stores"] == "memory"
    assert run["accepted"] == 300 and run["in_warehouse"] == 300
    assert run["lost"] == 0 and run["duplicated"] == 0 and run["extra"] == 0
    assert run["events_per_s"] > 0 and run["elapsed_s"] > 0
    assert run["freshness_s"] >= 0
    assert set(run["cpu_s_per_1000_events"]) >= STAGES
    assert all(value >= 0 for value in run["cpu_s_per_1000_events"].values())
    assert run["cpu_s"]["api"] > 0 and run["cpu_s"]["delivery"] > 0
    stages_with_memory = {row["stage"] for row in run["rss"]}
    assert {"api", "delivery", "load"} <= stages_with_memory
    for row in run["rss"]:
        assert row["peak_rss_mib"] > 0 and row["flat"] in (True, False, None)
    assert _processes_naming(run["run_id"]) == []


def test_an_interrupted_run_stops_every_process_it_started(stack: Any) -> None:
    bench = subprocess.Popen(
        [
            sys.executable, str(SCRIPT), "--events", "5000000", "--backend", "kafka",
            "--api-workers", "1", "--json", "--no-progress",
        ],
        env=_env(stack),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        parent = psutil.Process(bench.pid)
        deadline = time.monotonic() + 90
        children: list[psutil.Process] = []
        # Wait until the generator runs: every stage is up by then.
        while time.monotonic() < deadline and bench.poll() is None:
            children = parent.children(recursive=True)
            if any("simulate" in " ".join(c.cmdline()) for c in _alive(children)):
                break
            time.sleep(0.5)
        assert children, "the benchmark started no process"
        bench.send_signal(signal.SIGINT)
        _, err = bench.communicate(timeout=90)
        assert bench.returncode == 130, err[-2000:]
        _gone, alive = psutil.wait_procs(children, timeout=10)
        assert alive == [], [p.cmdline() for p in alive]
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for proc in procs:
        try:
            proc.cmdline()
        except psutil.Error:
            continue
        out.append(proc)
    return out


def test_a_run_that_never_completes_fails_with_the_count_and_stops_its_processes(
    stack: Any,
) -> None:
    # A 900 s delivery buffer holds every record past the 3 s allowed without new rows.
    done = subprocess.run(
        [
            sys.executable, str(SCRIPT), "--events", "200", "--backend", "kafka",
            "--api-workers", "1", "--buffer-seconds", "900", "--stall-timeout", "3",
            "--json", "--no-progress",
        ],
        env=_env(stack),
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["ok"] is False
    (run,) = report["runs"]
    assert run["ok"] is False
    assert "no new rows for 3 s with 0/200 accepted events in the warehouse" in run["error"]
    kept = done.stderr.split("logs kept in ", 1)[1].split()[0]
    assert Path(kept, "logs").is_dir() or Path(kept).is_dir()
    shutil.rmtree(Path(kept).parent, ignore_errors=True)
    leftover = [
        p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
        if "--buffer-seconds" in (p.info["cmdline"] or []) and "900" in p.info["cmdline"]
    ]
    assert leftover == []
