"""``sluice dashboard`` in a real headless Chromium over the local stack (Kinesis).

A backlog is produced and partly consumed (the page shows the group lagging by the
right number of records, the same figures ``sluice lag --json`` prints); a
``sluice consume`` process catches up (OK); it is killed with SIGKILL and more events
arrive (STOPPED: no live member, lag above zero, commits not moving). A screenshot
of every step is saved under the test's temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from consumers.api import ConsumerContext, build_consumer, build_sink
from deploy.local.base import free_port
from tests.integration.consumers.consumer_support import make_events, put_kinesis

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SLUICE = str(Path(sys.executable).with_name("sluice"))
ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = "/usr/bin/chromium"
# Short leases so a killed member's shard is seen without a live owner within seconds.
FAST_ENV = {
    "SLUICE_CONSUMER_LEASE_DURATION_S": "3",
    "SLUICE_CONSUMER_LEASE_RENEW_INTERVAL_S": "0.5",
    "SLUICE_CONSUMER_LEASE_TAKE_INTERVAL_S": "0.5",
    "SLUICE_CONSUMER_IDLE_READ_INTERVAL_S": "0.2",
    "SLUICE_CONSUMER_BATCH_MAX_WAIT_S": "0.3",
    "SLUICE_CONSUMER_SINK": "noop",
}


def _chromium() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if shutil.which("apt-get") is None:
        pytest.skip("no Chromium here and no apt-get to install Debian's chromium")
    pytest.fail(
        "Chromium missing: `make test` installs Debian's chromium (apt-get install chromium)"
    )


def _env(stack: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env.update(stack.env)
    env["SLUICE_STACK_ENV"] = str(stack.env_file.parent / "unused-by-tests.env")
    env.update(FAST_ENV)
    env["COLUMNS"] = "80"
    return env


def _wait(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


@pytest.fixture
def dashboard(stack: Any, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start ``sluice dashboard`` as a subprocess; returns its URL."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(group: str, stream: str) -> str:
        port = free_port()
        log = (tmp_path / "dashboard.log").open("ab")
        proc = subprocess.Popen(
            [
                SLUICE,
                "dashboard",
                "--port",
                str(port),
                "--group",
                group,
                "--backend",
                "kinesis",
                "--stream",
                stream,
                "--refresh",
                "0.5",
            ],
            env=_env(stack),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(tmp_path),
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}/"

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError((tmp_path / "dashboard.log").read_text(errors="replace"))
            try:
                return httpx.get(url + "healthz", timeout=1).json()["samples"] > 0
            except httpx.HTTPError:
                return False

        _wait(up, 60, "the dashboard's first sample")
        return url

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _lag_json(stack: Any, group: str, stream: str) -> dict[str, Any]:
    result = subprocess.run(
        [SLUICE, "lag", "--group", group, "--backend", "kinesis", "--stream", stream, "--json"],
        env=_env(stack),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(ROOT),
    )
    assert result.stdout, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def _figures(doc: dict[str, Any]) -> dict[str, Any]:
    """The numbers that must agree (the status needs a window of samples, so the
    dashboard's window may rightly differ from one-shot ``sluice lag``)."""
    return {
        "group": doc["group"],
        "total_lag_records": doc["total_lag_records"],
        "partitions": [
            (p["backend"], p["stream"], p["partition"], p["committed"], p["end"], p["lag_records"])
            for p in doc["partitions"]
        ],
    }


def test_dashboard_in_chromium_lagging_then_ok_then_stopped(
    stack: Any,
    stream_factory: Any,
    settings_env: Any,
    dashboard: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    for key, value in FAST_ENV.items():
        monkeypatch.setenv(key, value)
    stream = stream_factory(shards=1)
    group = f"dashboard-{uuid.uuid4().hex[:10]}"
    kinesis = stack.aws_client("kinesis")
    put_kinesis(kinesis, stream, make_events(20))

    # A first member reads one batch of 4 and leaves: 16 records behind.
    ctx = ConsumerContext.from_env(consumer_group=group, consumer_batch_max_records=4)
    first = build_consumer(
        ctx=ctx, backend="kinesis", streams=[stream], sink=build_sink("noop", ctx)
    )
    assert first.run(max_batches=1, timeout_s=60).records == 4

    url = dashboard(group, stream)
    shots: list[Path] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(url)
        box = page.locator(f'[data-group="{group}"]')

        def shown() -> tuple[str | None, str]:
            if box.count() == 0 or box.locator('[data-testid="total-records"]').count() == 0:
                return None, ""
            records = box.locator('[data-testid="total-records"]').inner_text()
            return box.get_attribute("data-status"), records

        def shot(name: str) -> None:
            path = tmp_path / f"dashboard-{name}.png"
            page.screenshot(path=str(path), full_page=True)
            shots.append(path)

        # 1. lagging: 16 records behind, not OK; the same figures as `sluice lag --json`.
        status, _ = _wait(
            lambda: shown() if shown()[1] == "16" else None, 60, "16 records of lag on the page"
        )
        assert status != "OK"
        data = httpx.get(url + "api/data", timeout=10).json()
        (entry,) = data["groups"]
        assert _figures(entry["lag"]) == _figures(_lag_json(stack, group, stream))
        assert entry["partitions"] and entry["partitions"][0]["points"], "no lag history"
        assert page.locator("svg.chart polyline").count() >= 2
        shot("lagging")

        # 2. a member catches up and stays: OK, 0 records.
        log = (tmp_path / "consumer.log").open("ab")
        consumer = subprocess.Popen(
            [SLUICE, "consume", "--backend", "kinesis", "--stream", stream, "--group", group],
            env=_env(stack),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(tmp_path),
        )
        try:
            _wait(lambda: shown() == ("OK", "0"), 90, "OK with no lag after the consumer ran")
            shot("ok")
        finally:
            # 3. the member dies without a goodbye; new events arrive.
            consumer.send_signal(signal.SIGKILL)
            consumer.wait(10)
            log.close()
        put_kinesis(kinesis, stream, make_events(10))
        _wait(lambda: shown() == ("STOPPED", "10"), 90, "STOPPED with 10 records behind")
        reason = box.locator("td", has_text="no live consumer").count()
        assert reason >= 1
        shot("stopped")
        browser.close()
    for path in shots:
        assert path.stat().st_size > 0
        print(f"screenshot: {path}")
