"""The warehouse: DDL and migrations, the Warehouse protocol (PostgreSQL, Redshift,
memory), the S3-zone loader, its Lambda handler, and reconcile."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from warehouse.config import WarehouseSettings

__all__ = ["create_warehouse", "init_warehouse"]


def init_warehouse(settings: WarehouseSettings | None = None) -> None:
    """Create or upgrade the warehouse tables (idempotent; used by ``sluice stack up``)."""
    from warehouse.factory import init_warehouse as _init

    _init(settings)


def create_warehouse(settings: WarehouseSettings | None = None) -> Any:
    """The warehouse chosen by settings (see :func:`warehouse.factory.create_warehouse`)."""
    from warehouse.factory import create_warehouse as _create

    return _create(settings)
