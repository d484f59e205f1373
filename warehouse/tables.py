"""The column specs of the target tables (the same columns as ``sql/001_initial.sql``)."""

from __future__ import annotations

from warehouse.models import Column, ColumnKind, TableSpec, TargetTable

K = ColumnKind

_ENVELOPE: tuple[Column, ...] = (
    Column("event_id", K.UUID, nullable=False, max_length=36),
    Column("event_type", K.TEXT, nullable=False, max_length=64),
    Column("schema_version", K.INT, nullable=False),
    Column("occurred_at", K.TIMESTAMP, nullable=False),
    Column("ingested_at", K.TIMESTAMP),
    Column("source", K.TEXT, max_length=256),
    Column("tenant_id", K.TEXT, nullable=False, max_length=128),
    Column("metadata", K.JSON),
)

FINANCIAL_TRANSACTIONS = TableSpec(
    table=TargetTable.FINANCIAL_TRANSACTIONS,
    columns=(
        *_ENVELOPE,
        Column("transaction_id", K.TEXT, nullable=False, max_length=128),
        Column("account_id", K.TEXT, nullable=False, max_length=128),
        Column("amount", K.DECIMAL, nullable=False),
        Column("currency", K.TEXT, nullable=False, max_length=3),
        Column("transaction_type", K.TEXT, max_length=64),
        Column("channel", K.TEXT, max_length=64),
        Column("status", K.TEXT, max_length=64),
        Column("card_number", K.TEXT, max_length=32),
        Column("merchant_name", K.TEXT, max_length=512),
        Column("merchant_mcc", K.TEXT, max_length=8),
        Column("merchant_country", K.TEXT, max_length=2),
    ),
)

INSURANCE_CLAIMS = TableSpec(
    table=TargetTable.INSURANCE_CLAIMS,
    columns=(
        *_ENVELOPE,
        Column("claim_id", K.TEXT, nullable=False, max_length=128),
        Column("policy_id", K.TEXT, nullable=False, max_length=128),
        Column("policyholder_id", K.TEXT, max_length=128),
        Column("line_of_business", K.TEXT, max_length=64),
        Column("loss_date", K.DATE),
        Column("reported_at", K.TIMESTAMP),
        Column("claim_amount", K.DECIMAL, nullable=False),
        Column("currency", K.TEXT, nullable=False, max_length=3),
        Column("status", K.TEXT, max_length=64),
        Column("cause_of_loss", K.TEXT, max_length=256),
        Column("claimant_national_id", K.TEXT, max_length=128),
        Column("loss_location_country", K.TEXT, max_length=2),
        Column("loss_location_region", K.TEXT, max_length=128),
        Column("loss_location_postal_code", K.TEXT, max_length=32),
    ),
)

TABLE_SPECS: dict[TargetTable, TableSpec] = {
    TargetTable.FINANCIAL_TRANSACTIONS: FINANCIAL_TRANSACTIONS,
    TargetTable.INSURANCE_CLAIMS: INSURANCE_CLAIMS,
}


def spec_for(table: TargetTable | str) -> TableSpec:
    """The :class:`TableSpec` of ``table``."""
    return TABLE_SPECS[TargetTable(table)]
