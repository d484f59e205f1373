"""AWS Glue Schema Registry on the local stack (moto server).

* ``sluice schemas register`` (a fresh process) registers every version in moto's Glue,
  is idempotent, changes nothing with ``--dry-run``, and refuses an incompatible v3
  naming the schema, the version and the reason (moto checks no compatibility; the
  check is ours, at the level the registry is set to).
* ``sluice demo`` in a fresh process with ``SLUICE_SCHEMA_REGISTRY=glue`` on a stack of
  its own: API -> Kafka/Kinesis -> delivery -> S3 -> warehouse, consumer group,
  reconcile with nothing missing; every value on the topics is Glue-framed with a
  schema version id that moto's registry holds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from deploy.local.base import free_port, parse_env
from schemas.catalogue import AVRO_DIR
from tests.integration.conftest import LocalStack

pytestmark = pytest.mark.integration

SLUICE = str(Path(sys.executable).with_name("sluice"))
ROOT = Path(__file__).parents[3]


def _env(stack: LocalStack, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env.update(stack.env)
    env["SLUICE_STACK_ENV"] = str(stack.env_file)
    env.update(extra)
    return env


def _register(
    stack: LocalStack, registry_name: str, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SLUICE, "schemas", "register", "--registry", "glue", "--json", *args],
        env=_env(stack, SLUICE_SCHEMA_REGISTRY_NAME=registry_name),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_register_cli_against_moto_glue(stack: LocalStack) -> None:
    name = f"reg-{uuid.uuid4().hex[:8]}"
    dry = _register(stack, name, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert {r["status"] for r in json.loads(dry.stdout)["results"]} == {"would_register"}
    glue = stack.aws_client("glue")
    assert name not in [r["RegistryName"] for r in glue.list_registries()["Registries"]]

    first = _register(stack, name)
    assert first.returncode == 0, first.stderr
    results = json.loads(first.stdout)["results"]
    assert [(r["event_type"], r["version"], r["status"]) for r in results] == [
        ("financial-transaction", 1, "registered"),
        ("financial-transaction", 2, "registered"),
        ("insurance-claim", 1, "registered"),
        ("insurance-claim", 2, "registered"),
    ]
    schema = glue.get_schema(
        SchemaId={"RegistryName": name, "SchemaName": "sluice-financial-transaction"}
    )
    assert schema["Compatibility"] == "FULL_ALL"
    assert schema["LatestSchemaVersion"] == 2
    for r in results:
        version = glue.get_schema_version(SchemaVersionId=r["id"])
        assert version["VersionNumber"] == r["version"]

    again = _register(stack, name)
    assert again.returncode == 0, again.stderr
    rerun = json.loads(again.stdout)["results"]
    assert {r["status"] for r in rerun} == {"existing"}
    assert [r["id"] for r in rerun] == [r["id"] for r in results]


def test_register_cli_refuses_an_incompatible_version(stack: LocalStack, tmp_path: Path) -> None:
    """A folder whose insurance-claim v2 removes the required ``cause_of_loss`` (the
    shape of an incompatible v3; file names must have ids in the catalogue table)."""
    folder = tmp_path / "avro"
    folder.mkdir()
    for name in ("envelope.avsc", "insurance-claim.v1.avsc"):
        shutil.copy(AVRO_DIR / name, folder / name)
    broken = json.loads((AVRO_DIR / "insurance-claim.v2.avsc").read_text())
    broken["fields"] = [f for f in broken["fields"] if f["name"] != "cause_of_loss"]
    (folder / "insurance-claim.v2.avsc").write_text(json.dumps(broken))
    name = f"reg-{uuid.uuid4().hex[:8]}"
    result = _register(stack, name, "--dir", str(folder))
    assert result.returncode == 1, result.stdout + result.stderr
    refused = json.loads(result.stdout)["refused"]
    assert (refused["event_type"], refused["version"]) == ("insurance-claim", 2)
    assert "cause_of_loss" in refused["reason"] and "FORWARD" in refused["reason"]
    glue = stack.aws_client("glue")
    schema = glue.get_schema(
        SchemaId={"RegistryName": name, "SchemaName": "sluice-insurance-claim"}
    )
    assert schema["LatestSchemaVersion"] == 1  # v1 went in, the break did not

    text = _register(stack, name, "--dir", str(folder))
    assert text.returncode == 1
    plain = subprocess.run(
        [SLUICE, "schemas", "register", "--registry", "glue", "--dir", str(folder)],
        env=_env(stack, SLUICE_SCHEMA_REGISTRY_NAME=name),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert plain.returncode == 1
    assert "sluice-insurance-claim (insurance-claim) version 2 refused" in plain.stdout
    assert "cause_of_loss" in plain.stdout


def _free_ports_env() -> dict[str, str]:
    return {
        "SLUICE_STACK_KAFKA_PORT": str(free_port()),
        "SLUICE_STACK_AWS_PORT": str(free_port()),
        "SLUICE_STACK_PG_PORT": str(free_port()),
    }


def test_demo_path_with_the_glue_registry(stack_base_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env.update(_free_ports_env())
    env["SLUICE_SCHEMA_REGISTRY"] = "glue"
    env["COLUMNS"] = "200"
    try:
        demo = subprocess.run(
            [SLUICE, "demo", "--count", "30"],
            env=env,
            cwd=stack_base_dir,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-2000:]
        assert "OK: nothing missing" in demo.stdout
        stack_env = parse_env((stack_base_dir / ".sluice" / "stack.env").read_text())
        _check_topics_are_glue_framed(stack_env)
    finally:
        subprocess.run(
            [SLUICE, "stack", "down"], env=env, cwd=stack_base_dir, capture_output=True, timeout=60
        )


def _check_topics_are_glue_framed(stack_env: dict[str, str]) -> None:
    import boto3
    from confluent_kafka import Consumer, TopicPartition

    glue = boto3.client(
        "glue",
        endpoint_url=stack_env["SLUICE_AWS_ENDPOINT_URL"],
        region_name=stack_env.get("SLUICE_AWS_REGION", "us-east-1"),
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    consumer = Consumer(
        {
            "bootstrap.servers": stack_env["SLUICE_KAFKA_BOOTSTRAP_SERVERS"],
            "group.id": f"glue-check-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    values: list[Any] = []
    try:
        for topic in ("sluice-financial-transaction", "sluice-insurance-claim"):
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
            while True:
                batch = consumer.consume(500, timeout=2)
                if not batch:
                    break
                values += [m.value() for m in batch if m.error() is None]
    finally:
        consumer.close()
    assert values
    ids = {uuid.UUID(bytes=v[2:18]) for v in values}
    assert all(v[:2] == b"\x03\x00" for v in values)
    for version_id in ids:
        found = glue.get_schema_version(SchemaVersionId=str(version_id))
        assert found["Status"] == "AVAILABLE"
        assert "/sluice/sluice-" in found["SchemaArn"]


_HANDLER = (
    "import json, sys\n"
    "from firehose_transforms.lambda_function import lambda_handler\n"
    "print(json.dumps(lambda_handler(json.load(sys.stdin))))\n"
)


def test_transform_lambda_handler_resolves_glue_ids(stack: LocalStack) -> None:
    """The Lambda entry point in a fresh process, SLUICE_SCHEMA_REGISTRY=glue against the
    stack's registry (``sluice stack up`` registered the catalogue there)."""
    import base64

    import schemas
    from schemas.framing import frame
    from schemas.registry import SchemaResolver, naming_for
    from schemas.registry.config import RegistryKind
    from schemas.registry.glue import GlueRegistry

    registry = GlueRegistry("sluice", client=stack.aws_client("glue"))
    resolver = SchemaResolver(registry, schemas.catalogue(), naming_for(RegistryKind.GLUE))
    values = []
    for sv in schemas.catalogue():
        body = schemas.example_event(sv.event_type, version=sv.version)
        body["event_id"] = str(uuid.uuid4())
        record = schemas.parse_event(sv.event_type, body)
        values.append(schemas.encode(sv.event_type, record, registry=resolver))
    values.append(frame(uuid.uuid4(), values[0][18:]))  # a version id Glue does not hold
    sample = json.loads((ROOT / "tests" / "events" / "firehose-kinesis-source.json").read_text())
    template = sample["records"][0]
    sample["records"] = [
        {**template, "recordId": f"r{i}", "data": base64.b64encode(v).decode("ascii")}
        for i, v in enumerate(values)
    ]
    done = subprocess.run(
        [sys.executable, "-c", _HANDLER],
        input=json.dumps(sample),
        env=_env(stack, SLUICE_SCHEMA_REGISTRY="glue", SLUICE_PII_HMAC_KEY="integration"),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    results = [r["result"] for r in json.loads(done.stdout)["records"]]
    assert results == ["Ok"] * (len(values) - 1) + ["ProcessingFailed"]


def test_api_serve_refuses_to_start_without_its_schema_versions(stack: LocalStack) -> None:
    """``sluice api serve`` with SLUICE_SCHEMA_REGISTRY=glue and an empty registry: the
    startup fails, naming every version the API would write."""
    done = subprocess.run(
        [SLUICE, "api", "serve", "--port", str(free_port())],
        env=_env(
            stack,
            SLUICE_SCHEMA_REGISTRY="glue",
            SLUICE_SCHEMA_REGISTRY_NAME=f"empty-{uuid.uuid4().hex[:8]}",
        ),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "the glue registry lacks financial-transaction v1" in output
    assert "insurance-claim v2 (as 'sluice-insurance-claim')" in output
    assert "run `sluice schemas register`" in output
