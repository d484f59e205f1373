"""Every Lambda artifact runs the tested versions, alone, on the Lambda runtime's Python.

`sluice package` builds the three zips for CPython 3.12 (Amazon Linux 2023,
manylinux_2_28 x86_64 wheels). Each zip is unpacked into an empty directory and its
handler is imported and invoked by a fresh interpreter with no site-packages (`-I -S`),
the way the Lambda runtime calls it, with the recorded sample events of
``tests/events/`` (API Gateway REST v1 and HTTP v2, Firehose from Kinesis and from MSK,
S3 notifications for the loader, directly or carried by SQS, whichever recorded event
the loader takes) against the local stack.

The interpreter is a CPython 3.12 found on this machine (``SLUICE_TEST_LAMBDA_PYTHON``,
``python3.12`` on PATH or a pyenv install). Where none exists the artifacts are built
for the running interpreter's version instead, so the same import-and-invoke checks
still run, and the 3.12 resolution is checked by
``test_the_runtime_build_resolves_the_tested_versions``.

The distributions inside each zip (their ``*.dist-info``) must carry exactly the
versions installed in this environment, the ones ``make test`` runs.
Needs the package index (pip); skipped, with pip's reason, when it cannot be reached.
"""

from __future__ import annotations

import email.parser
import glob
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deploy import package
from deploy.package import FunctionName, PackageError, PackageResult
from ingest_api.auth import generate_key
from ingest_api.keys_ssm import SsmKeySource
from tests.unit.warehouse.contract import ft_row
from tests.unit.warehouse.zonefixtures import ndjson_gz, put_batch
from warehouse import init_warehouse
from warehouse.config import WarehouseSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = Path(__file__).resolve().parents[2] / "events"
API_KEY = "local-test-key"  # the key the recorded API Gateway events carry in X-API-Key

INVOKE = """
import json, sys, time
task, module_name, event_path = sys.argv[1:4]
sys.path.insert(0, task)
import importlib
module = importlib.import_module(module_name)
assert module.__file__.startswith(task), module.__file__
for name in ("pydantic_core", "boto3"):
    loaded = sys.modules.get(name)
    assert loaded is None or loaded.__file__.startswith(task), loaded

class Context:
    aws_request_id = "req-1"
    function_name = "sluice-test"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:sluice-test"
    def get_remaining_time_in_millis(self):
        return 60000

with open(event_path) as handle:
    event = json.load(handle)
result = module.lambda_handler(event, Context())
print(json.dumps({"python": list(sys.version_info[:2]), "result": result}, default=str))
"""


def _python_version(executable: str) -> str | None:
    try:
        completed = subprocess.run(
            [executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return None
    return completed.stdout.strip() if completed.returncode == 0 else None


def lambda_python() -> tuple[str, str]:
    """(interpreter, version) to build and invoke with: a runtime Python if one exists."""
    candidates = [os.environ.get("SLUICE_TEST_LAMBDA_PYTHON", "")]
    for version in package.LAMBDA_PYTHON_VERSIONS:
        candidates.append(shutil.which(f"python{version}") or "")
        pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
        candidates += sorted(glob.glob(str(pyenv / "versions" / f"{version}*" / "bin" / "python3")))
    for candidate in filter(None, candidates):
        version = _python_version(candidate)
        if version in package.LAMBDA_PYTHON_VERSIONS:
            return candidate, version
    return sys.executable, f"{sys.version_info.major}.{sys.version_info.minor}"


PYTHON, PYTHON_VERSION = lambda_python()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[FunctionName, PackageResult]:
    out = tmp_path_factory.mktemp("dist")
    results: dict[FunctionName, PackageResult] = {}
    started = time.monotonic()
    for function in FunctionName:
        try:
            results[function] = package.build(function, out, python_version=PYTHON_VERSION)
        except PackageError as exc:
            if exc.code == "pip_failed":
                pytest.skip(f"the Lambda wheels could not be installed: {exc}")
            raise
    print(
        f"built {len(results)} artifacts for Python {PYTHON_VERSION} ({PYTHON}) in "
        f"{time.monotonic() - started:.0f} s"
    )
    return results


def _zip_versions(path: Path) -> dict[str, str]:
    versions: dict[str, str] = {}
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.count("/") == 1 and name.endswith(".dist-info/METADATA"):
                headers = email.parser.HeaderParser().parsestr(archive.read(name).decode())
                versions[package.normalise_name(headers["Name"])] = headers["Version"]
    return versions


@pytest.mark.parametrize("function", list(FunctionName), ids=[f.value for f in FunctionName])
def test_versions_inside_the_zip_are_the_tested_ones(
    artifacts: dict[FunctionName, PackageResult], function: FunctionName
) -> None:
    result = artifacts[function]
    inside = _zip_versions(result.path)
    assert len(inside) >= 10
    tested = {name: importlib.metadata.version(name) for name in inside}
    assert inside == tested
    assert not result.warnings, result.warnings
    assert result.unzipped_bytes < package.UNZIPPED_LIMIT_BYTES
    print(
        f"{function.value}: {package.human_size(result.zipped_bytes)} zipped, "
        f"{package.human_size(result.unzipped_bytes)} unzipped, {len(inside)} distributions"
    )
    if function is FunctionName.API:
        assert inside["confluent-kafka"] == importlib.metadata.version("confluent-kafka")


def _pins(python_version: str, architecture: package.Architecture) -> dict[str, str]:
    declared = package.declared_requirements(package.PROJECT_ROOT / "pyproject.toml")
    pins: dict[str, str] = {}
    for spec in package.FUNCTIONS.values():
        _packages, external = package.package_closure(package.PROJECT_ROOT, spec.handler_module)
        requirements, _ = package.select_requirements(
            package.distributions_for(external)[0], declared
        )
        found, missing = package.pinned_requirements(
            requirements, package.marker_environment(python_version, architecture)
        )
        assert not missing
        pins.update(found)
    return pins


@pytest.mark.parametrize("architecture", list(package.Architecture), ids=str)
def test_the_runtime_build_resolves_the_tested_versions(
    tmp_path: Path, architecture: package.Architecture
) -> None:
    """pip finds a CPython 3.12 manylinux_2_28-or-older wheel of every tested version."""
    pins = _pins("3.12", architecture)
    platforms = [option for tag in architecture.platforms for option in ("--platform", tag)]
    started = time.monotonic()
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--dest",
            str(tmp_path),
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            "3.12",
            *platforms,
            *(f"{name}=={version}" for name, version in pins.items()),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if completed.returncode != 0 and "No matching distribution" not in completed.stderr:
        pytest.skip(f"the package index cannot be reached: {completed.stderr[-500:]}")
    assert completed.returncode == 0, completed.stderr[-2000:]
    print(f"{architecture}: {len(pins)} wheels resolved in {time.monotonic() - started:.0f} s")
    wheels = sorted(path.name for path in tmp_path.glob("*.whl"))
    assert len(wheels) == len(pins)
    for wheel in wheels:
        python_tag, abi_tag, platform_tag = wheel[:-4].split("-")[-3:]
        assert python_tag in {"py3", "py2.py3", "cp312"} or abi_tag == "abi3", wheel
        assert platform_tag == "any" or architecture.machine in platform_tag, wheel


@pytest.fixture(scope="module")
def unpacked(
    artifacts: dict[FunctionName, PackageResult], tmp_path_factory: pytest.TempPathFactory
) -> dict[FunctionName, Path]:
    directories: dict[FunctionName, Path] = {}
    for function, result in artifacts.items():
        task = tmp_path_factory.mktemp(f"task-{function.value}")
        with zipfile.ZipFile(result.path) as archive:
            archive.extractall(task)
        directories[function] = task
    return directories


@pytest.fixture
def invoke(
    unpacked: dict[FunctionName, Path], tmp_path: Path
) -> Callable[[FunctionName, dict[str, Any], dict[str, str]], dict[str, Any]]:
    def run(function: FunctionName, event: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        event_file = tmp_path / f"event-{function.value}.json"
        event_file.write_text(json.dumps(event), encoding="utf-8")
        module = package.FUNCTIONS[function].handler_module
        completed = subprocess.run(
            [PYTHON, "-I", "-S", "-c", INVOKE, str(unpacked[function]), module, str(event_file)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={
                "PATH": "/usr/bin:/bin",
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                **env,
            },
            check=False,
            timeout=120,
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        answer: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
        assert answer["python"] == [int(part) for part in PYTHON_VERSION.split(".")]
        return answer["result"]  # type: ignore[no-any-return]

    return run


def _event(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return data


def _stack_env(stack: Any) -> dict[str, str]:
    return {key: value for key, value in stack.env.items() if key.startswith("SLUICE_")}


@pytest.mark.parametrize(
    ("event_name", "status"),
    [
        ("apigw-rest-v1-get-healthz.json", 200),
        ("apigw-rest-v1-post-event.json", 202),
        ("apigw-rest-v1-post-batch-base64.json", 207),  # one valid, one rejected event
        ("apigw-rest-v1-post-malformed.json", 400),
        ("apigw-http-v2-post-event.json", 202),
        ("apigw-http-v2-post-batch-base64.json", 207),
        ("apigw-http-v2-post-no-key.json", 401),
    ],
)
def test_api_artifact_answers_api_gateway_events(
    invoke: Callable[..., dict[str, Any]], stack: Any, event_name: str, status: int
) -> None:
    env = {
        **_stack_env(stack),
        "SLUICE_STREAM_BACKEND": "kinesis",
        "SLUICE_API_KEY": API_KEY,
        "SLUICE_PII_HMAC_KEY": "artifact-test-hmac-key-0123456789abcdef",
    }
    response = invoke(FunctionName.API, _event(event_name), env)
    assert response["statusCode"] == status, response
    if status == 207:
        results = json.loads(response["body"])["results"]
        assert [r["status"] for r in results] == ["accepted", "rejected"]


def test_api_artifact_reads_its_keys_from_parameter_store(
    invoke: Callable[..., dict[str, Any]], stack: Any
) -> None:
    """The key source of AWS: records in Parameter Store (moto here), no key in the env."""
    path = f"/sluice-artifact-{uuid.uuid4().hex[:8]}/api-keys/"
    source = SsmKeySource(path, client=stack.aws_client("ssm"))
    event = _event("apigw-http-v2-post-event.json")
    body = json.loads(event["body"])
    new = generate_key(body["tenant_id"], ["*"])
    source.put(new.record)
    event["headers"]["x-api-key"] = new.key
    env = {
        **_stack_env(stack),
        "SLUICE_STREAM_BACKEND": "kinesis",
        "SLUICE_API_KEYS_SSM_PATH": path,
        "SLUICE_PII_HMAC_KEY": "artifact-test-hmac-key-0123456789abcdef",
    }
    env.pop("SLUICE_API_KEY", None)
    assert invoke(FunctionName.API, event, env)["statusCode"] == 202
    source.delete(new.record.key_id)
    assert invoke(FunctionName.API, event, env)["statusCode"] == 401


@pytest.mark.parametrize(
    ("event_name", "backend"),
    [("firehose-kinesis-source.json", "kinesis"), ("firehose-msk-source.json", "kafka")],
)
def test_transform_artifact_answers_firehose_events(
    invoke: Callable[..., dict[str, Any]], event_name: str, backend: str
) -> None:
    event = _event(event_name)
    env = {
        "SLUICE_STREAM_BACKEND": backend,
        "SLUICE_AWS_REGION": "us-east-1",
        "SLUICE_PII_HMAC_KEY": "artifact-test-hmac-key-0123456789abcdef",
    }
    response = invoke(FunctionName.TRANSFORM, event, env)
    records = response["records"]
    assert [r["recordId"] for r in records] == [r["recordId"] for r in event["records"]]
    assert {r["result"] for r in records} <= {"Ok", "Dropped", "ProcessingFailed"}
    assert any(r["result"] == "Ok" for r in records)


class _S3Writer:
    """What ``put_batch`` needs of a zone: ``write(url, data)``, through boto3."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def write(self, url: str, data: bytes) -> None:
        bucket, key = url.removeprefix("s3://").split("/", 1)
        self._client.put_object(Bucket=bucket, Key=key, Body=data)


@pytest.fixture
def loader_target(
    stack: Any, bucket_factory: Callable[..., str], pg_schema_factory: Callable[..., str]
) -> dict[str, Any]:
    """A fresh bucket and warehouse schema, and the loader's settings for them."""
    bucket = bucket_factory("artifact")
    schema = pg_schema_factory("artifact")
    init_warehouse(WarehouseSettings(warehouse_dsn=stack.warehouse_dsn, warehouse_schema=schema))
    env = {
        **_stack_env(stack),
        "SLUICE_S3_BUCKET": bucket,
        "SLUICE_WAREHOUSE_BACKEND": "postgres",
        "SLUICE_WAREHOUSE_SCHEMA": schema,
    }
    return {"bucket": bucket, "schema": schema, "env": env, "s3": stack.aws_client("s3")}


def _loaded_rows(stack: Any, schema: str) -> int:
    import psycopg

    with psycopg.connect(stack.warehouse_dsn) as conn:
        row = conn.execute(f"SELECT COUNT(*) FROM {schema}.financial_transactions").fetchone()
    return int(row[0]) if row else 0


@pytest.mark.skipif(
    not (EVENTS / "s3-put-manifest.json").exists(), reason="the loader is triggered through SQS"
)
def test_loader_artifact_loads_the_manifest_of_an_s3_event(
    invoke: Callable[..., dict[str, Any]], stack: Any, loader_target: dict[str, Any]
) -> None:
    bucket = loader_target["bucket"]
    manifest = put_batch(
        _S3Writer(loader_target["s3"]),
        bucket,
        "financial-transaction",
        "art",
        [[ft_row(), ft_row()]],
    )
    event = _event("s3-put-manifest.json")
    record = event["Records"][0]
    record["s3"]["bucket"]["name"] = bucket
    record["s3"]["object"]["key"] = manifest.split("/", 3)[3]
    report = invoke(FunctionName.LOADER, {"Records": [record]}, loader_target["env"])
    assert [(load["state"], load["inserted"]) for load in report["loads"]] == [("completed", 2)]
    assert _loaded_rows(stack, loader_target["schema"]) == 2


@pytest.mark.skipif(
    not (EVENTS / "sqs-s3-object-created.json").exists(), reason="the loader takes S3 events"
)
def test_loader_artifact_loads_what_an_sqs_event_names(
    invoke: Callable[..., dict[str, Any]], stack: Any, loader_target: dict[str, Any]
) -> None:
    bucket = loader_target["bucket"]
    key = f"clean/event_type=financial-transaction/dt=2026-11-22/art-{uuid.uuid4()}.gz"
    loader_target["s3"].put_object(Bucket=bucket, Key=key, Body=ndjson_gz([ft_row(), ft_row()]))
    event = _event("sqs-s3-object-created.json")
    notification = json.loads(event["Records"][0]["body"])
    notification["Records"][0]["s3"]["bucket"]["name"] = bucket
    notification["Records"][0]["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
    notification["Records"][0]["s3"]["object"]["key"] = key
    event["Records"][0]["body"] = json.dumps(notification)
    env = loader_target["env"]
    assert invoke(FunctionName.LOADER, event, env) == {"batchItemFailures": []}
    assert _loaded_rows(stack, loader_target["schema"]) == 2
    # a redelivery loads nothing twice
    assert invoke(FunctionName.LOADER, event, env) == {"batchItemFailures": []}
    assert _loaded_rows(stack, loader_target["schema"]) == 2
