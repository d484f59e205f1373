"""Build the warehouse chosen by settings; drivers are imported only when used."""

from __future__ import annotations

from typing import TYPE_CHECKING

from warehouse.config import WarehouseBackend, WarehouseSettings

if TYPE_CHECKING:
    from warehouse.base import Warehouse


def create_warehouse(settings: WarehouseSettings | None = None) -> Warehouse:
    """The :class:`~warehouse.base.Warehouse` for ``SLUICE_WAREHOUSE_BACKEND``.

    No connection is opened here; the first statement opens it.
    """
    settings = settings or WarehouseSettings()
    if settings.warehouse_backend is WarehouseBackend.REDSHIFT:
        from warehouse.redshift import RedshiftWarehouse

        return RedshiftWarehouse.from_settings(settings)
    if settings.warehouse_backend is WarehouseBackend.MEMORY:
        from warehouse.memory import MemoryWarehouse

        return MemoryWarehouse(settings.warehouse_schema)
    from warehouse.postgres import PostgresWarehouse

    return PostgresWarehouse.from_settings(settings)


def init_warehouse(settings: WarehouseSettings | None = None) -> list[int]:
    """Create or upgrade the warehouse schema (idempotent); returns versions applied now.

    Called by ``sluice stack up`` and ``sluice warehouse init``.
    """
    wh = create_warehouse(settings)
    try:
        return wh.migrate()
    finally:
        wh.close()
