"""The contract every CheckpointStore keeps (memory, Kafka group offsets, DynamoDB leases).

Subclasses provide ``store_factory``: a callable returning ``(store, partitions)``;
every call returns a new store object on the same group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

StoreFactory = Callable[[], tuple[Any, list[Any]]]


class CheckpointStoreContract:
    def test_nothing_processed_loads_none(self, store_factory: StoreFactory) -> None:
        store, parts = store_factory()
        assert store.load(parts) == dict.fromkeys(parts)

    def test_save_then_load(self, store_factory: StoreFactory) -> None:
        store, parts = store_factory()
        store.save({parts[0]: 41})
        loaded = store.load(parts)
        assert loaded[parts[0]] == 41
        assert loaded[parts[1]] is None

    def test_saved_checkpoints_outlive_the_store_object(self, store_factory: StoreFactory) -> None:
        store, parts = store_factory()
        store.save({parts[0]: 7, parts[1]: 9})
        again, _ = store_factory()
        assert again.load(parts) == {parts[0]: 7, parts[1]: 9}

    def test_save_may_move_backwards_for_replay(self, store_factory: StoreFactory) -> None:
        store, parts = store_factory()
        store.save({parts[0]: 100})
        store.save({parts[0]: 3})
        assert store.load(parts[:1]) == {parts[0]: 3}

    def test_partitions_are_independent(self, store_factory: StoreFactory) -> None:
        store, parts = store_factory()
        store.save({parts[0]: 5})
        store.save({parts[1]: 6})
        assert store.load(parts) == {parts[0]: 5, parts[1]: 6}
