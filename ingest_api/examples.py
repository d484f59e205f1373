"""Example events and answers, used by ``GET /v1/schemas/{event_type}`` and the OpenAPI.

Every example event here is valid against the latest schema of its type (a unit test
checks it with the codec). The card number is a Luhn-valid test number.
"""

from __future__ import annotations

import copy
from typing import Any

from sluice.config import EventType

EXAMPLE_EVENTS: dict[str, dict[str, Any]] = {
    EventType.FINANCIAL_TRANSACTION.value: {
        "event_id": "3f0c9f4e-8f2a-4c55-9a8e-2d1b6a7c9e01",
        "event_type": "financial-transaction",
        "schema_version": 2,
        "occurred_at": "2026-11-21T14:03:27.512000+00:00",
        "source": "card-switch",
        "tenant_id": "acme-bank",
        "transaction_id": "txn-000123",
        "account_id": "acc-42",
        "amount": "125.40",
        "currency": "EUR",
        "transaction_type": "PURCHASE",
        "channel": "CARD",
        "status": "SETTLED",
        "card_number": "4111 1111 1111 1111",
        "merchant": {"name": "Corner Bakery", "mcc": "5462", "country": "DE"},
        "metadata": {"terminal": "T-17"},
        "authorization_code": "A1B2C3",
        "fraud_score": 0.02,
    },
    EventType.INSURANCE_CLAIM.value: {
        "event_id": "7d1e2b3a-4c5d-4e6f-8a9b-0c1d2e3f4a5b",
        "event_type": "insurance-claim",
        "schema_version": 2,
        "occurred_at": "2026-11-20T09:15:00+00:00",
        "source": "claims-portal",
        "tenant_id": "acme-insurance",
        "claim_id": "clm-2026-0001",
        "policy_id": "pol-778",
        "policyholder_id": "ph-9912",
        "line_of_business": "AUTO",
        "loss_date": "2026-11-18",
        "reported_at": "2026-11-20T09:14:12+00:00",
        "claim_amount": "2350.00",
        "currency": "EUR",
        "status": "OPENED",
        "cause_of_loss": "rear-end collision",
        "claimant_national_id": "AB123456C",
        "loss_location": {"country": "FR", "region": "Ile-de-France", "postal_code": "75011"},
        "metadata": {"channel": "web"},
        "adjuster_id": None,
        "reserve_amount": "2000.00",
    },
}


def example_event(event_type: str) -> dict[str, Any]:
    """A fresh copy of the example event of ``event_type`` (as a client would send it)."""
    return copy.deepcopy(EXAMPLE_EVENTS[str(EventType(event_type))])
