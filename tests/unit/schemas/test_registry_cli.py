"""``sluice schemas register`` in a fresh process: what needs no registry service.

The Glue paths (register, idempotent rerun, dry run, refusal) run against moto server
in ``tests/integration/schemas/test_glue_registry_stack.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SLUICE = str(Path(sys.executable).with_name("sluice"))


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    clean["SLUICE_STACK_ENV"] = "/nonexistent/stack.env"
    clean.update(env)
    return subprocess.run(
        [SLUICE, "schemas", "register", *args],
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_catalogue_registry_holds_every_version_with_its_fixed_id() -> None:
    done = _run("--registry", "catalogue", "--json")
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["results"]
    assert [(r["event_type"], r["version"], r["status"], r["id"]) for r in results] == [
        ("financial-transaction", 1, "existing", "1001"),
        ("financial-transaction", 2, "existing", "1002"),
        ("insurance-claim", 1, "existing", "2001"),
        ("insurance-claim", 2, "existing", "2002"),
    ]
    assert json.loads(done.stdout)["level"] == "FULL_TRANSITIVE"


def test_confluent_without_a_url_is_a_configuration_error() -> None:
    done = _run("--registry", "confluent")
    assert done.returncode == 1
    assert "SLUICE_SCHEMA_REGISTRY_URL" in done.stderr
    assert "Traceback" not in done.stderr


def test_unreachable_registry_is_one_clear_line() -> None:
    done = _run("--registry", "confluent", SLUICE_SCHEMA_REGISTRY_URL="http://127.0.0.1:9")
    assert done.returncode == 1
    assert "Schema Registry unreachable" in done.stderr
    assert "Traceback" not in done.stderr
