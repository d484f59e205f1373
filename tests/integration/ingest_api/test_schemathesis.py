"""Schemathesis against ``sluice api serve`` on the local stack: every check, a bounded
number of examples per operation; any finding fails the test.

The OpenAPI document promises what the answers do (statuses, bodies, headers, security);
schemathesis generates requests from it (valid and invalid, with and without the key)
and checks every answer against it. ``schemathesis.toml`` beside this file holds the
few settings that are not defaults (why each is there is written in it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.ingest_api.conftest import KEY, served_api

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_schemathesis_finds_nothing(
    stack: Any,
    settings_env: dict[str, str],
    topic_factory: Any,
    tmp_path: Path,
) -> None:
    if shutil.which("schemathesis", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("schemathesis is not installed: pip install -e '.[dev]'")
    env = {
        "SLUICE_API_KEY": KEY,
        "SLUICE_STREAM_BACKEND": "kafka",
        "SLUICE_STREAM_FINANCIAL_TRANSACTION": topic_factory(partitions=1, prefix="st-ft"),
        "SLUICE_STREAM_INSURANCE_CLAIM": topic_factory(partitions=1, prefix="st-ic"),
        "SLUICE_API_IDEMPOTENCY_STORE": "memory",
        "SLUICE_API_RATE_LIMIT_STORE": "memory",
        "SLUICE_API_BODY_READ_TIMEOUT_S": "5",
    }
    with served_api(env, tmp_path / "api.log") as base:
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "--config-file",
                str(CONFIG),
                "run",
                f"{base}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                "12",
                "--workers",
                "1",
                "--generation-deterministic",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
            env={**os.environ, "SLUICE_SCHEMATHESIS_KEY": KEY},
        )
    report = result.stdout[-12000:] + result.stderr[-3000:]
    assert result.returncode == 0, report
    assert "No issues found" in result.stdout or "passed" in result.stdout, report
