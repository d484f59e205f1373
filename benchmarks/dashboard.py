"""Memory of ``sluice dashboard`` over 10,000 page refreshes (RSS stays flat).

Against the local stack (``sluice stack up`` first; settings from ``.sluice/stack.env``
or ``SLUICE_STACK_ENV``): a Kafka topic with a backlog and a group that committed part
of it, and a Prometheus endpoint in this process whose counters move. The dashboard
runs as its own process, sampling as fast as it can (``--refresh 0.05``) with a short
history (``SLUICE_DASHBOARD_HISTORY_S``, default 5 s here: 100 points per series) so
every ring fills early, and reconciling every 5 s. The benchmark then fetches
``/api/data`` (what the page polls) ``--refreshes`` times and reads the process's RSS
from /proc.

Figures: RSS after the first sample, at the first refresh after every ring is full
(the baseline) and at the end; the ratio end / baseline (flat: about 1.0), and the
target: end < 150 MB.

    python benchmarks/dashboard.py [--refreshes 10000] [--partitions 8]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

from deploy.local.base import free_port
from ingest_api.metrics import ApiMetrics
from sluice.config import KafkaSettings

TARGET_MB = 150.0


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def backlog(kafka: KafkaSettings, topic: str, group: str, partitions: int, count: int) -> None:
    """A topic with ``count`` records and ``group`` committed halfway on each partition."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(kafka.client_config())
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(15)
    producer = Producer({**kafka.client_config(), "enable.idempotence": False, "linger.ms": 0})
    for i in range(count):
        producer.produce(topic, key=f"k{i}", value=b"x" * 64, partition=i % partitions)
        producer.flush(10)  # one batch per record: right end offsets on the local broker
    consumer = Consumer({**kafka.client_config(), "group.id": group, "enable.auto.commit": False})
    half = count // partitions // 2
    consumer.commit(
        offsets=[TopicPartition(topic, p, half) for p in range(partitions)], asynchronous=False
    )
    consumer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--refreshes", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--records", type=int, default=400)
    args = parser.parse_args()

    kafka = KafkaSettings()
    topic, group = f"bench-dash-{uuid.uuid4().hex[:8]}", f"bench-dash-{uuid.uuid4().hex[:8]}"
    backlog(kafka, topic, group, args.partitions, args.records)

    api = ApiMetrics()
    metrics_port = free_port()
    from prometheus_client import start_http_server

    start_http_server(metrics_port, addr="127.0.0.1", registry=api.registry)
    stop = threading.Event()

    def traffic() -> None:
        while not stop.wait(0.01):
            api.accept("financial-transaction", 7)
            api.reject("financial-transaction", "schema_invalid")

    threading.Thread(target=traffic, daemon=True).start()

    port = free_port()
    env = dict(os.environ)
    env.setdefault("SLUICE_DASHBOARD_HISTORY_S", "5")
    env.setdefault("SLUICE_DASHBOARD_RECONCILE_EVERY_S", "5")
    sluice = str(Path(sys.executable).with_name("sluice"))
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [
                sluice,
                "dashboard",
                "--port",
                str(port),
                "--group",
                group,
                "--backend",
                "kafka",
                "--stream",
                topic,
                "--refresh",
                "0.05",
                "--metrics",
                f"http://127.0.0.1:{metrics_port}/metrics",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            return run(proc, port, args.refreshes, args.partitions)
        finally:
            stop.set()
            proc.send_signal(signal.SIGINT)
            proc.wait(20)
            if proc.returncode not in (0, 130, -signal.SIGINT):
                log.seek(0)
                print(log.read().decode(errors="replace")[-2000:], file=sys.stderr)


def run(proc: subprocess.Popen[bytes], port: int, refreshes: int, partitions: int) -> int:
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(timeout=30)
    deadline = time.monotonic() + 60
    while True:
        try:
            if client.get(f"{url}/healthz").json()["samples"] > 0:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("the dashboard did not start")
        time.sleep(0.2)
    first = rss_mb(proc.pid)
    full = int(float(os.environ.get("SLUICE_DASHBOARD_HISTORY_S", "5")) / 0.05)
    baseline, baseline_at, baseline_samples = first, 0, 0
    started = time.perf_counter()
    size = 0
    for n in range(1, refreshes + 1):
        data = client.get(f"{url}/api/data").json()
        size = max(size, len(str(data)))
        if not baseline_at and data["samples"] >= full:
            baseline, baseline_at, baseline_samples = rss_mb(proc.pid), n, data["samples"]
    elapsed = time.perf_counter() - started
    end = rss_mb(proc.pid)
    (entry,) = data["groups"]
    points = max(len(p["points"]) for p in entry["partitions"])
    assert len(entry["partitions"]) == partitions, entry["partitions"]
    print(f"refreshes            {refreshes} in {elapsed:.1f} s ({refreshes / elapsed:.0f}/s)")
    print(f"dashboard samples    {data['samples']} ({baseline_samples} at the baseline)")
    print(f"points shown         {points} per series (the last history_s seconds)")
    print(f"largest answer       {size / 1024:.0f} KiB")
    print(f"lag shown            {entry['lag']['total_lag_records']} records")
    print(f"RSS first sample     {first:.1f} MiB")
    if not baseline_at:
        raise SystemExit(f"the rings never filled ({data['samples']} samples < {full})")
    print(f"RSS at {baseline_at:<6} (base) {baseline:.1f} MiB (rings full)")
    print(f"RSS at {refreshes:<6}        {end:.1f} MiB")
    print(f"ratio end / base     {end / baseline:.3f}")
    ok = end < TARGET_MB
    print(f"target               < {TARGET_MB:.0f} MiB: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
