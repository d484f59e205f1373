"""The key store over a key source: read once per TTL, rotation, revocation, outages."""

from __future__ import annotations

import pytest

from ingest_api.auth import (
    KeySource,
    MemoryKeySource,
    RefreshingKeyStore,
    generate_key,
)
from ingest_api.config import ApiSettings
from ingest_api.exceptions import KeySourceUnavailable
from ingest_api.factory import create_key_store
from ingest_api.keys_ssm import SsmKeySource


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FlakySource(MemoryKeySource):
    """A memory source that can be made unreachable."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def load(self):  # type: ignore[no-untyped-def]
        if self.down:
            raise KeySourceUnavailable("unreachable")
        return super().load()


def _store(source: KeySource, clock: Clock, **kwargs: object) -> RefreshingKeyStore:
    return RefreshingKeyStore(source, ttl_s=60, clock=clock, retry_s=1, **kwargs)  # type: ignore[arg-type]


def test_memory_source_follows_the_key_source_protocol() -> None:
    assert isinstance(MemoryKeySource(), KeySource)


def test_nothing_is_read_before_the_first_request_and_then_once_per_ttl() -> None:
    source, clock = MemoryKeySource(), Clock()
    new = generate_key("t1", ["*"])
    source.put(new.record)
    store = _store(source, clock)
    assert source.loads == 0
    assert len(store) == 1  # the source counts as one until it is read
    assert store.authenticate(new.key) is not None
    clock.now += 59
    for _ in range(5):
        assert store.authenticate(new.key) is not None
    assert source.loads == 1


def test_created_key_is_accepted_and_revoked_key_refused_after_the_ttl() -> None:
    source, clock = MemoryKeySource(), Clock()
    old, new = generate_key("t1", ["*"]), generate_key("t1", ["*"])
    source.put(old.record)
    store = _store(source, clock)
    assert store.authenticate(old.key) is not None
    source.put(new.record)
    assert store.authenticate(new.key) is None  # within the TTL: not yet read
    clock.now += 60
    assert store.authenticate(new.key) is not None
    assert source.delete(old.record.key_id)
    assert not source.delete(old.record.key_id)
    assert store.authenticate(old.key) is not None  # still within the TTL
    clock.now += 60
    assert store.authenticate(old.key) is None
    assert store.authenticate(new.key) is not None


def test_local_and_static_keys_stay_valid_beside_the_source() -> None:
    source, clock = MemoryKeySource(), Clock()
    static = generate_key("t2", ["insurance-claim"])
    store = _store(source, clock, static=[static.record], local_key="local-secret")
    principal = store.authenticate(static.key)
    assert principal is not None
    assert principal.tenant_id == "t2"
    assert store.authenticate("local-secret") is not None
    assert store.authenticate("slk_nope_nope") is None


def test_an_outage_keeps_the_last_records_for_a_bounded_time_then_answers_503() -> None:
    source, clock = FlakySource(), Clock()
    key = generate_key("t1", ["*"])
    source.put(key.record)
    store = _store(source, clock)
    assert store.authenticate(key.key) is not None
    source.down = True
    clock.now += 61
    assert store.authenticate(key.key) is not None  # stale, within 3 TTLs
    clock.now += 120
    with pytest.raises(KeySourceUnavailable) as caught:
        store.authenticate(key.key)
    assert caught.value.status == 503
    source.down = False
    clock.now += 1
    assert store.authenticate(key.key) is not None


def test_the_first_read_failing_is_a_503_never_an_open_door() -> None:
    source, clock = FlakySource(), Clock()
    source.down = True
    with pytest.raises(KeySourceUnavailable):
        _store(source, clock).authenticate("slk_a_b")


def test_memory_source_refuses_an_existing_key_id() -> None:
    source = MemoryKeySource()
    record = generate_key("t1", ["*"], key_id="same").record
    source.put(record)
    with pytest.raises(Exception, match="exists") as caught:
        source.put(record)
    assert getattr(caught.value, "code", None) == "key_exists"


def test_factory_uses_parameter_store_only_when_a_path_is_set() -> None:
    plain = create_key_store(ApiSettings(api_key="k"))
    assert not isinstance(plain, RefreshingKeyStore)
    refreshing = create_key_store(
        ApiSettings(api_keys_ssm_path="/sluice-test/api-keys/", api_keys_ttl_s=5)
    )
    assert isinstance(refreshing, RefreshingKeyStore)


@pytest.mark.parametrize("path", ["sluice/keys/", "/sluice/keys", "/", "/a b/"])
def test_a_bad_parameter_path_is_refused(path: str) -> None:
    with pytest.raises(Exception, match="SLUICE_API_KEYS_SSM_PATH"):
        SsmKeySource(path)


def test_keys_create_store_ssm_without_a_path_is_a_clear_error_in_a_fresh_process() -> None:
    import os
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if not key.startswith("SLUICE_")}
    env["SLUICE_STACK_ENV"] = "/nonexistent/stack.env"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "sluice.cli",
            "api",
            "keys",
            "create",
            "--tenant",
            "t1",
            "--store",
            "ssm",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert completed.returncode != 0
    assert "SLUICE_API_KEYS_SSM_PATH is not set" in completed.stderr
    assert "slk_" not in completed.stdout + completed.stderr  # no key shown for nothing stored
