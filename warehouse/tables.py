"""The column specs of the target tables (the same columns as ``sql/001_initial.sql``).

Which columns a table has, and in which order, is the zone's column list
(:data:`sluice.zone.COLUMNS`); this module adds only each column's type.
"""

from __future__ import annotations

from sluice.zone import COLUMNS
from warehouse.models import Column, ColumnKind, TableSpec, TargetTable

K = ColumnKind

# name -> (kind, nullable, maximum length in bytes)
_TYPES: dict[str, tuple[ColumnKind, bool, int | None]] = {
    "event_id": (K.UUID, False, 36),
    "event_type": (K.TEXT, False, 64),
    "schema_version": (K.INT, False, None),
    "occurred_at": (K.TIMESTAMP, False, None),
    "ingested_at": (K.TIMESTAMP, True, None),
    "source": (K.TEXT, True, 256),
    "tenant_id": (K.TEXT, False, 128),
    "metadata": (K.JSON, True, None),
    "transaction_id": (K.TEXT, False, 128),
    "account_id": (K.TEXT, False, 128),
    "amount": (K.DECIMAL, False, None),
    "currency": (K.TEXT, False, 3),
    "transaction_type": (K.TEXT, True, 64),
    "channel": (K.TEXT, True, 64),
    "status": (K.TEXT, True, 64),
    "card_number": (K.TEXT, True, 32),
    "merchant_name": (K.TEXT, True, 512),
    "merchant_mcc": (K.TEXT, True, 8),
    "merchant_country": (K.TEXT, True, 2),
    "claim_id": (K.TEXT, False, 128),
    "policy_id": (K.TEXT, False, 128),
    "policyholder_id": (K.TEXT, True, 128),
    "line_of_business": (K.TEXT, True, 64),
    "loss_date": (K.DATE, True, None),
    "reported_at": (K.TIMESTAMP, True, None),
    "claim_amount": (K.DECIMAL, False, None),
    "cause_of_loss": (K.TEXT, True, 256),
    "claimant_national_id": (K.TEXT, True, 128),
    "loss_location_country": (K.TEXT, True, 2),
    "loss_location_region": (K.TEXT, True, 128),
    "loss_location_postal_code": (K.TEXT, True, 32),
}


def _spec(table: TargetTable) -> TableSpec:
    names = COLUMNS[table.event_type.value]
    return TableSpec(
        table=table,
        columns=tuple(Column(n, *_TYPES[n]) for n in names),
    )


FINANCIAL_TRANSACTIONS = _spec(TargetTable.FINANCIAL_TRANSACTIONS)
INSURANCE_CLAIMS = _spec(TargetTable.INSURANCE_CLAIMS)

TABLE_SPECS: dict[TargetTable, TableSpec] = {
    TargetTable.FINANCIAL_TRANSACTIONS: FINANCIAL_TRANSACTIONS,
    TargetTable.INSURANCE_CLAIMS: INSURANCE_CLAIMS,
}


def spec_for(table: TargetTable | str) -> TableSpec:
    """The :class:`TableSpec` of ``table``."""
    return TABLE_SPECS[TargetTable(table)]
