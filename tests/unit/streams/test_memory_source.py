"""The memory reader against the readers' contract."""

from __future__ import annotations

import pytest

from sluice.streams.memory import MemoryCheckpointStore, MemorySource
from sluice.streams.models import PartitionKey, StreamRecord
from tests.unit.streams.source_contract import SourceContract


class MemoryHarness:
    def __init__(self) -> None:
        self.logs: dict[PartitionKey, list[StreamRecord]] = {
            PartitionKey("t", str(p)): [] for p in range(3)
        }
        self.store = MemoryCheckpointStore()

    def publish(self, values: list[bytes]) -> None:
        for value in values:
            tp = min(self.logs, key=lambda k: len(self.logs[k]))
            offset = len(self.logs[tp])
            self.logs[tp].append(StreamRecord("t", tp.partition, offset, value, timestamp_ms=1))

    def open(self) -> MemorySource:
        return MemorySource(self.logs, self.store)


class TestMemorySource(SourceContract):
    @pytest.fixture
    def harness(self) -> MemoryHarness:
        return MemoryHarness()
