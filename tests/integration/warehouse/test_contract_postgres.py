"""The Warehouse contract on the real PostgreSQL of the local stack."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.warehouse.contract import WarehouseContract
from warehouse.postgres import PostgresWarehouse

pytestmark = pytest.mark.integration


@pytest.fixture(params=["postgres"])
def warehouse(pg_warehouse: PostgresWarehouse) -> PostgresWarehouse:
    return pg_warehouse


class TestPostgresWarehouse(WarehouseContract):
    pass


def test_schema_version_of_an_empty_schema_is_zero(stack: object, pg_schema_factory: Any) -> None:
    wh = PostgresWarehouse(stack.warehouse_dsn, schema=pg_schema_factory("empty"))  # type: ignore[attr-defined]
    try:
        assert wh.schema_version() == 0
        assert wh.migrate() == [1]
        assert wh.schema_version() == 1
    finally:
        wh.close()


def test_unreachable_warehouse_is_a_retryable_error() -> None:
    from warehouse.exceptions import WarehouseUnavailableError

    wh = PostgresWarehouse("postgresql://postgres@127.0.0.1:1/none", schema="x", connect_timeout=1)
    with pytest.raises(WarehouseUnavailableError) as info:
        wh.schema_version()
    assert info.value.retryable
