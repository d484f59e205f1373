"""Contract test of the delivery's object store, run against every implementation
(memory here; S3 in tests/integration/firehose_transforms). The stream readers'
contract is the streams layer's (tests/unit/streams/source_contract.py)."""

from __future__ import annotations

import uuid

import pytest

from firehose_transforms.delivery import ObjectStore


class ObjectStoreContract:
    """Subclasses provide a ``store`` fixture (an empty bucket)."""

    def test_put_then_get_returns_the_bytes(self, store: ObjectStore) -> None:
        store.put("clean/a/b.gz", b"\x1f\x8bdata", "application/x-ndjson")
        assert store.get("clean/a/b.gz") == b"\x1f\x8bdata"

    def test_put_overwrites(self, store: ObjectStore) -> None:
        store.put("k", b"one", "application/json")
        store.put("k", b"two", "application/json")
        assert store.get("k") == b"two"

    def test_missing_key_raises_key_error(self, store: ObjectStore) -> None:
        with pytest.raises(KeyError):
            store.get(f"missing-{uuid.uuid4().hex}")

    def test_list_keys_is_sorted_and_filtered_by_prefix(self, store: ObjectStore) -> None:
        for key in ["clean/b", "clean/a", "errors/x", "manifests/y"]:
            store.put(key, b"x", "application/json")
        assert store.list_keys("clean/") == ["clean/a", "clean/b"]
        assert store.list_keys("nothing/") == []
