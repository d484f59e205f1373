"""Warehouse settings: which backend, how to reach it, the schema, Redshift COPY options.

Read from ``SLUICE_WAREHOUSE_*`` variables (and ``.sluice/stack.env``), frozen, the DSN
kept as a :class:`~pydantic.SecretStr`.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator

from sluice.config import SluiceSettings

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class WarehouseBackend(StrEnum):
    """Which warehouse implementation :func:`warehouse.factory.create_warehouse` builds."""

    POSTGRES = "postgres"
    REDSHIFT = "redshift"
    MEMORY = "memory"


class WarehouseSettings(SluiceSettings):
    """How the loader and the sinks reach the warehouse.

    ``warehouse_schema`` names the schema holding the targets, staging, audit and
    quarantine tables; tests give every test its own. The Redshift fields shape the
    ``COPY ... FROM 's3://...manifest'`` statement and are ignored by PostgreSQL.
    """

    warehouse_backend: WarehouseBackend = Field(
        default=WarehouseBackend.POSTGRES,
        description="postgres (local stand-in), redshift, or memory (tests).",
    )
    warehouse_dsn: SecretStr | None = Field(
        default=None,
        description="postgresql://user:pass@host:port/db (also used for Redshift's host/db).",
    )
    warehouse_schema: str = Field(
        default="sluice", description="Schema of the target, staging, audit and quarantine tables."
    )
    warehouse_connect_timeout: int = Field(default=10, ge=1, description="Seconds.")

    # Redshift COPY options.
    warehouse_iam_role: str | None = Field(
        default=None, description="IAM role ARN Redshift assumes to read the S3 zone."
    )
    warehouse_copy_region: str | None = Field(
        default=None, description="REGION of the S3 bucket when it differs from the cluster's."
    )
    warehouse_copy_max_errors: int = Field(
        default=100000, ge=0, description="MAXERROR: rejected lines allowed before COPY fails."
    )
    warehouse_copy_extra_options: str = Field(
        default="COMPUPDATE OFF STATUPDATE OFF",
        description="Further COPY options appended verbatim (for operators only).",
    )

    # Load jobs.
    warehouse_load_max_attempts: int = Field(
        default=5, ge=1, description="Attempts of one load job before it is marked failed."
    )
    warehouse_load_lease_seconds: float = Field(
        default=15.0,
        ge=0,
        description="Lease of a running load job; the loader renews it every third of it, "
        "so a job not renewed for this long (its loader died) is taken over.",
    )
    warehouse_load_workers: Annotated[int, Field(ge=1, le=32)] | Literal["auto"] = Field(
        default="auto",
        description="Processes that fetch and validate a manifest's files in parallel "
        "while earlier files are COPYed (1 = in the loader's process; `auto` = one per "
        "CPU up to 4, and 1 on Lambda, which has no /dev/shm).",
    )
    warehouse_follow_interval: float = Field(
        default=5.0,
        gt=0,
        description="Seconds `sluice load --follow` long-polls the queue per pass (or "
        "sleeps between passes without a queue).",
    )
    warehouse_load_queue_url: str | None = Field(
        default=None,
        description="SQS queue receiving the S3 ObjectCreated notifications of the clean "
        "prefix (`sluice load` reads it; unset: the listing sweep alone finds new files).",
    )
    warehouse_sweep_interval: float = Field(
        default=60.0,
        ge=0,
        description="Seconds between listing sweeps of the clean prefix in `sluice load "
        "--follow` (0 turns the sweep off).",
    )
    warehouse_sweep_grace_seconds: float = Field(
        default=300.0,
        ge=0,
        description="A clean object older than this that no load took is loaded by the sweep.",
    )

    @field_validator("warehouse_schema")
    @classmethod
    def _valid_schema(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError("warehouse schema must be a lower-case SQL identifier")
        return value

    def dsn(self) -> str:
        """The DSN in clear text (only at the edge, when connecting)."""
        from sluice.errors import ConfigurationError

        if self.warehouse_dsn is None:
            raise ConfigurationError(
                "SLUICE_WAREHOUSE_DSN is not set (run `sluice stack up` or export it)",
                code="warehouse_dsn_missing",
            )
        return self.warehouse_dsn.get_secret_value()
