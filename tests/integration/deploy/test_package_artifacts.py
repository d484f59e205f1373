"""A real Lambda artifact, dependencies included, runs on the standard library alone.

`sluice package --function api` installs the manylinux2014 x86_64 wheels for CPython
3.11 (this machine's platform too), so the unpacked zip can be imported by an isolated
interpreter (`-I -S`: no site-packages, no editable install) and the Mangum handler can
answer an API Gateway HTTP API event, as the Lambda runtime would call it.
Needs the package index (pip); skipped, with pip's reason, when it cannot be reached.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from deploy import package
from deploy.package import FunctionName, PackageError

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HEALTH_EVENT = {
    "version": "2.0",
    "routeKey": "$default",
    "rawPath": "/healthz",
    "rawQueryString": "",
    "headers": {"host": "api.example"},
    "requestContext": {
        "http": {
            "method": "GET",
            "path": "/healthz",
            "protocol": "HTTP/1.1",
            "sourceIp": "192.0.2.1",
            "userAgent": "test",
        },
        "requestId": "req-1",
        "routeKey": "$default",
        "stage": "$default",
        "accountId": "000000000000",
        "apiId": "api",
        "domainName": "api.example",
        "domainPrefix": "api",
        "time": "22/Nov/2026:03:00:00 +0000",
        "timeEpoch": 0,
    },
    "isBase64Encoded": False,
}

PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import ingest_api.lambda_function as handler_module
assert handler_module.__file__.startswith(sys.argv[1]), handler_module.__file__
import confluent_kafka, fastavro, pydantic_core
assert confluent_kafka.__file__.startswith(sys.argv[1])

class Context:
    aws_request_id = "req-1"
    function_name = "sluice-test-ingest-api"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:sluice-test-ingest-api"

response = handler_module.lambda_handler(json.loads(sys.argv[2]), Context())
print(json.dumps({"status": response["statusCode"], "body": response["body"]}))
"""


def test_api_artifact_answers_an_http_api_event_without_site_packages(tmp_path: Path) -> None:
    try:
        result = package.build(FunctionName.API, tmp_path / "dist")
    except PackageError as exc:
        if exc.code == "pip_failed":
            pytest.skip(f"the Lambda wheels could not be installed: {exc}")
        raise
    assert result.requirements, "dependencies were expected in the artifact"
    assert result.unzipped_bytes < package.UNZIPPED_LIMIT_BYTES
    task = tmp_path / "task"
    with zipfile.ZipFile(result.path) as archive:
        archive.extractall(task)
    completed = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE, str(task), json.dumps(HEALTH_EVENT)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"SLUICE_STREAM_BACKEND": "kinesis", "SLUICE_AWS_REGION": "us-east-1"},
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    answer = json.loads(completed.stdout.strip().splitlines()[-1])
    assert answer["status"] == 200
    assert json.loads(answer["body"]) == {"status": "ok"}
