"""Fixtures for the warehouse integration tests: a fresh schema and bucket per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sluice.config import ZoneSettings
from sluice.zonestore import S3Zone
from warehouse.postgres import PostgresWarehouse

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_warehouse(stack: Any, pg_schema_factory: Callable[..., str]) -> Iterator[PostgresWarehouse]:
    """A migrated PostgreSQL warehouse in a schema of its own."""
    wh = PostgresWarehouse(stack.warehouse_dsn, schema=pg_schema_factory("wh"))
    wh.migrate()
    yield wh
    wh.close()


@pytest.fixture
def zone_settings(bucket_factory: Callable[..., str]) -> ZoneSettings:
    """Zone settings on a fresh bucket."""
    return ZoneSettings(s3_bucket=bucket_factory("zone"))


@pytest.fixture
def s3_zone(stack: Any) -> S3Zone:
    """The zone on the stack's moto server."""
    return S3Zone(client=stack.aws_client("s3"))
