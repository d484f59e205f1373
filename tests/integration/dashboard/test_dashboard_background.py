"""``sluice dashboard --background`` / ``--stop`` in fresh processes (what the demo uses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from deploy.local.base import free_port

SLUICE = str(Path(sys.executable).with_name("sluice"))


def _run(cwd: Path, env: dict[str, str], *argv: str) -> str:
    result = subprocess.run(
        [SLUICE, "dashboard", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.integration
def test_background_dashboard_starts_once_answers_and_stops(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env.update(
        SLUICE_DASHBOARD_PORT=str(port),
        SLUICE_STACK_ENV=str(tmp_path / "none.env"),
        SLUICE_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",  # nothing listens
        DISPLAY="",
    )
    out = _run(tmp_path, env, "--background", "--group", "g1", "--backend", "kafka", "--open")
    url = f"http://127.0.0.1:{port}/"
    assert out.strip() == f"dashboard on {url} (stop: sluice dashboard --stop)"
    state = json.loads((tmp_path / ".sluice" / "dashboard.json").read_text())
    try:
        assert httpx.get(url + "healthz", timeout=5).json()["ok"] is True
        assert "dashboard.js" in httpx.get(url, timeout=5).text
        # a second start finds the running one instead of starting another
        assert url in _run(tmp_path, env, "--background", "--group", "g1")
        again = json.loads((tmp_path / ".sluice" / "dashboard.json").read_text())
        assert again["pid"] == state["pid"]
    finally:
        assert _run(tmp_path, env, "--stop").strip() == "dashboard stopped"
    with pytest.raises(httpx.HTTPError):
        httpx.get(url + "healthz", timeout=2)
    assert _run(tmp_path, env, "--stop").strip() == "no background dashboard running"
