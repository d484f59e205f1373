"""API keys in Parameter Store (moto server), rotated without restarting the API.

The contract every :class:`~ingest_api.auth.KeySource` keeps is run on the memory
source and on the SSM source against the local stack's moto server. Then the whole
path runs as separate processes: ``sluice api serve`` starts before any key exists,
``sluice api keys create --store ssm`` stores a record, the running server accepts the
key once its TTL has passed, and refuses it after ``sluice api keys revoke``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest_api.auth import KeySource, MemoryKeySource, generate_key
from ingest_api.examples import example_event
from ingest_api.exceptions import KeySourceUnavailable, KeyStoreError
from ingest_api.keys_ssm import SsmKeySource

pytestmark = pytest.mark.integration

FT = "financial-transaction"
TTL_S = 2.0
TENANT = example_event(FT)["tenant_id"]


def _path() -> str:
    return f"/sluice-test-{uuid.uuid4().hex[:10]}/api-keys/"


@pytest.fixture(params=["memory", "ssm"])
def source(request: pytest.FixtureRequest, stack: Any) -> KeySource:
    if request.param == "memory":
        return MemoryKeySource()
    return SsmKeySource(_path(), client=stack.aws_client("ssm"))


class TestKeySourceContract:
    """What every key source does."""

    def test_put_load_delete(self, source: KeySource) -> None:
        first = generate_key("t1", ["*"]).record
        second = generate_key("t2", [FT], rate_limit=5).record
        assert source.load() == []
        source.put(first)
        source.put(second)
        assert sorted(source.load(), key=lambda r: r.key_id) == sorted(
            [first, second], key=lambda r: r.key_id
        )
        assert source.delete(first.key_id) is True
        assert source.delete(first.key_id) is False
        assert source.load() == [second]

    def test_an_existing_key_id_is_refused(self, source: KeySource) -> None:
        record = generate_key("t1", ["*"], key_id="dup").record
        source.put(record)
        with pytest.raises(KeyStoreError) as caught:
            source.put(generate_key("t9", ["*"], key_id="dup").record)
        assert caught.value.code == "key_exists"
        assert [r.tenant_id for r in source.load()] == ["t1"]

    def test_more_records_than_one_page(self, source: KeySource) -> None:
        records = [generate_key(f"t{i}", ["*"]).record for i in range(23)]
        for record in records:
            source.put(record)
        assert {r.key_id for r in source.load()} == {r.key_id for r in records}


def test_ssm_records_are_secure_strings_holding_only_the_hash(stack: Any) -> None:
    ssm = stack.aws_client("ssm")
    source = SsmKeySource(_path(), client=ssm)
    new = generate_key("t1", ["*"])
    source.put(new.record)
    parameter = ssm.get_parameter(Name=source.parameter_name(new.record.key_id))["Parameter"]
    assert parameter["Type"] == "SecureString"
    assert new.key not in parameter["Value"]  # undecrypted: not even the record in clear
    decrypted = ssm.get_parameter(
        Name=source.parameter_name(new.record.key_id), WithDecryption=True
    )["Parameter"]["Value"]
    assert json.loads(decrypted)["hash"] == new.record.hash
    assert new.key not in decrypted


def test_ssm_source_leaves_out_a_parameter_that_is_not_a_record(
    stack: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ssm = stack.aws_client("ssm")
    source = SsmKeySource(_path(), client=ssm)
    good = generate_key("t1", ["*"]).record
    source.put(good)
    ssm.put_parameter(Name=f"{source.path}broken", Value="{not json", Type="SecureString")
    other = generate_key("t2", ["*"]).record
    ssm.put_parameter(
        Name=f"{source.path}not-its-id", Value=other.model_dump_json(), Type="SecureString"
    )
    assert source.load() == [good]
    assert "broken is not a key record" in caplog.text
    assert "not-its-id holds key_id" in caplog.text


def test_ssm_source_unreachable_is_a_retryable_error() -> None:
    import boto3

    client = boto3.client(
        "ssm",
        endpoint_url=f"http://127.0.0.1:{_free_port()}",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=__import__("botocore.config").config.Config(
            retries={"max_attempts": 1}, connect_timeout=1
        ),
    )
    with pytest.raises(KeySourceUnavailable) as caught:
        SsmKeySource(_path(), client=client).load()
    assert caught.value.retryable


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sluice(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sluice.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def server(settings_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """``sluice api serve`` on the stack, keys from a fresh Parameter Store path."""
    port = _free_port()
    env = {
        **os.environ,
        "SLUICE_STREAM_BACKEND": "kinesis",
        "SLUICE_API_KEYS_SSM_PATH": _path(),
        "SLUICE_API_KEYS_TTL_S": str(TTL_S),
    }
    env.pop("SLUICE_API_KEY", None)  # only Parameter Store keys
    output = tmp_path / "server.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "sluice.cli", "api", "serve", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the server exited: {output.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not start within 60 s"
            time.sleep(0.2)
        yield base, env
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _post(base: str, key: str) -> int:
    body = example_event(FT)
    body["event_id"] = str(uuid.uuid4())
    response = httpx.post(
        f"{base}/v1/events/{FT}", json=body, headers={"X-API-Key": key}, timeout=30
    )
    return response.status_code


def _until(base: str, key: str, status: int, bound_s: float) -> float:
    """Seconds until a post with ``key`` is answered ``status``; fails past ``bound_s``."""
    started = time.monotonic()
    while (last := _post(base, key)) != status:
        assert time.monotonic() - started < bound_s, f"still {last} after {bound_s} s"
        time.sleep(0.2)
    return time.monotonic() - started


def test_created_key_is_accepted_and_revoked_key_refused_without_a_restart(
    server: tuple[str, dict[str, str]],
) -> None:
    base, env = server
    unknown = generate_key(TENANT, ["*"]).key
    assert _post(base, unknown) == 401  # the server has read the (empty) path

    created = _sluice(env, "api", "keys", "create", "--tenant", TENANT, "--store", "ssm", "--json")
    assert created.returncode == 0, created.stderr
    answer = json.loads(created.stdout)
    key, key_id = answer["key"], answer["record"]["key_id"]
    assert answer["stored"] == f"{env['SLUICE_API_KEYS_SSM_PATH']}{key_id}"

    waited = _until(base, key, 202, bound_s=TTL_S + 5)
    print(f"created key accepted after {waited:.1f} s (TTL {TTL_S} s)")
    listed = _sluice(env, "api", "keys", "list")
    assert listed.returncode == 0, listed.stderr
    assert key_id in listed.stdout and key not in listed.stdout

    revoked = _sluice(env, "api", "keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    waited = _until(base, key, 401, bound_s=TTL_S + 5)
    print(f"revoked key refused after {waited:.1f} s (TTL {TTL_S} s)")
    assert _post(base, unknown) == 401

    again = _sluice(env, "api", "keys", "revoke", key_id)
    assert again.returncode == 1
    assert "no key" in again.stderr


def test_the_local_stack_serves_keys_from_moto_through_its_env_file(stack: Any) -> None:
    """`sluice stack up` writes the Parameter Store path; the CLI stores keys there."""
    path = stack.env["SLUICE_API_KEYS_SSM_PATH"]
    assert path == "/sluice-local/api-keys/"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env["SLUICE_STACK_ENV"] = str(stack.env_file)
    created = _sluice(env, "api", "keys", "create", "--tenant", TENANT, "--store", "ssm", "--json")
    assert created.returncode == 0, created.stderr
    key_id = json.loads(created.stdout)["record"]["key_id"]
    source = SsmKeySource(path, client=stack.aws_client("ssm"))
    try:
        assert key_id in {record.key_id for record in source.load()}
    finally:
        assert _sluice(env, "api", "keys", "revoke", key_id).returncode == 0
    assert key_id not in {record.key_id for record in source.load()}
