"""The Warehouse contract on the in-memory implementation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.warehouse.contract import WarehouseContract
from warehouse.memory import MemoryWarehouse


@pytest.fixture(params=["memory"])
def warehouse(request: pytest.FixtureRequest) -> Iterator[MemoryWarehouse]:
    wh = MemoryWarehouse("contract")
    wh.migrate()
    yield wh
    wh.close()


class TestMemoryWarehouse(WarehouseContract):
    pass
