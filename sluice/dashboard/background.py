"""``sluice dashboard --background`` / ``--stop``: the page as a detached process.

The demo ends by starting one, so the page stays up after the demo returns (as the
local stack does). Its pid and URL live in ``<stack_dir>/dashboard.json``; a second
start while it runs reuses it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from sluice.errors import RetryableError

STATE_FILE = "dashboard.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running(stack_dir: Path) -> str | None:
    """The URL of the background dashboard, when one is running."""
    state = stack_dir / STATE_FILE
    if not state.is_file():
        return None
    doc = json.loads(state.read_text(encoding="utf-8"))
    return str(doc["url"]) if _alive(int(doc["pid"])) else None


def start(
    stack_dir: Path, argv: Sequence[str], host: str, port: int, timeout_s: float = 30.0
) -> str:
    """Start ``sluice dashboard ARGV`` detached (or reuse a running one); its URL."""
    url = running(stack_dir)
    if url:
        return url
    stack_dir.mkdir(parents=True, exist_ok=True)
    url = f"http://{host}:{port}/"
    with (stack_dir / "dashboard.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sluice.cli", "dashboard", "--host", host, "--port", str(port),
             *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    (stack_dir / STATE_FILE).write_text(json.dumps({"pid": proc.pid, "url": url}))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RetryableError(
                f"the dashboard exited with {proc.returncode}; see {stack_dir / 'dashboard.log'}",
                code="dashboard_exited",
            )
        try:
            if httpx.get(url + "healthz", timeout=1).status_code == 200:
                return url
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RetryableError(f"the dashboard did not answer on {url}", code="dashboard_timeout")


def stop(stack_dir: Path, timeout_s: float = 15.0) -> bool:
    """Stop the background dashboard; False when none was running."""
    state = stack_dir / STATE_FILE
    if not state.is_file():
        return False
    pid = int(json.loads(state.read_text(encoding="utf-8"))["pid"])
    state.unlink()
    if not _alive(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    return True
