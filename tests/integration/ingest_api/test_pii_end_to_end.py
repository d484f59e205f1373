"""No full card number anywhere: card numbers in every string field and every map key,
in every written form, sent through the API on the real local stack (Tansu, moto,
PostgreSQL), then delivered to the S3 zone and loaded into the warehouse.

Scanned: the Kafka topics, the Kinesis streams, the DLQ topic, every object of the S3
bucket (every prefix), the warehouse tables, the accepted log and every log record. Each
placement uses its own random Luhn-valid PAN, so a PAN found anywhere is a leak (and a
chance match of 12-19 given digits is not a concern).
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from firehose_transforms.config import DeliverySettings
from firehose_transforms.delivery import run_delivery
from firehose_transforms.models import DeliveryOptions, SourceKind
from sluice.config import EventType, StreamSettings, ZoneSettings
from tests.integration.ingest_api.conftest import (
    FT,
    IC,
    auth,
    build_app,
    event,
    read_stream,
    read_topic,
)

pytestmark = pytest.mark.integration

_DOUBLED = str.maketrans("0123456789", "0246813579")
_FULLWIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))
_ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def _luhn_complete(body: str) -> str:
    """``body`` plus the check digit that makes it Luhn-valid (independent of schemas.pii)."""
    digits = body + "0"
    total = sum(int(d) for d in digits[-1::-2]) + sum(
        int(d) for d in digits[-2::-2].translate(_DOUBLED)
    )
    return body + str((10 - total % 10) % 10)


class Pans:
    """Fresh random PANs; every one handed out is remembered for the scan."""

    def __init__(self) -> None:
        self.rng = random.Random(uuid.uuid4().int)
        self.issued: list[str] = []

    def __call__(self, length: int = 16) -> str:
        prefix = self.rng.choice(["4", "51", "37", "6011"])
        body = prefix + "".join(
            self.rng.choice("0123456789") for _ in range(length - 1 - len(prefix))
        )
        pan = _luhn_complete(body)
        self.issued.append(pan)
        return pan


def _groups(pan: str, sep: str, size: int = 4) -> str:
    return sep.join(pan[i : i + size] for i in range(0, len(pan), size))


# Every written form the issue lists: separators of every kind (several in a row too)
# and non-ASCII digits.
FORMATS: dict[str, Callable[[str], str]] = {
    "plain": lambda p: p,
    "space": lambda p: _groups(p, " "),
    "dash": lambda p: _groups(p, "-"),
    "dot": lambda p: _groups(p, "."),
    "slash": lambda p: _groups(p, "/"),
    "tab": lambda p: _groups(p, "\t"),
    "nbsp": lambda p: _groups(p, "\u00a0"),
    "double_space": lambda p: _groups(p, "  "),
    "mixed": lambda p: p[:4] + " - " + p[4:8] + "./" + p[8:12] + "\u2009" + p[12:],
    "fullwidth": lambda p: p.translate(_FULLWIDTH),
    "arabic_indic": lambda p: _groups(p.translate(_ARABIC_INDIC), " "),
}


def _ft_event(pans: Pans, form: Callable[[str], str]) -> dict[str, Any]:
    return event(
        FT,
        source=f"src {form(pans())}",
        card_number=_groups(pans(), " "),
        authorization_code=form(pans(13)),
        merchant={"name": f"Shop {form(pans(19))} ltd", "mcc": "5462", "country": "DE"},
        metadata={form(pans()): form(pans(15)), f"note {form(pans(12))}": "x"},
    )


def _ic_event(pans: Pans, form: Callable[[str], str]) -> dict[str, Any]:
    return event(
        IC,
        source=f"portal {form(pans(12))}",
        cause_of_loss=f"card {form(pans())} stolen",
        claimant_national_id=f"AB{pans(12)}",
        loss_location={"country": "GB", "region": form(pans()), "postal_code": pans(16)},
        metadata={form(pans()): form(pans())},
    )


def _rejected_events(pans: Pans) -> list[tuple[str, dict[str, Any]]]:
    """Card numbers where the API must refuse the event: identifiers, codes, enums, names."""
    return [
        (FT, event(FT, account_id=pans())),
        (FT, event(FT, transaction_id=f"tx-{_groups(pans(), '-')}")),
        (FT, event(FT, tenant_id=pans())),
        (FT, event(FT, currency=pans())),
        (FT, event(FT, channel=_groups(pans(), " "))),
        (FT, event(FT, **{pans(): "unknown field named by a PAN"})),
        (FT, event(FT, card_number=pans()[:-1] + "x")),
        (IC, event(IC, claim_id=pans(), policyholder_id=pans(13))),
        (IC, event(IC, policy_id=_groups(pans(), "."))),
        (IC, event(IC, line_of_business=pans())),
    ]


# --------------------------------------------------------------------------- scanning


def _normalise(text: str) -> str:
    """Digits of any script as ASCII digits; every other character kept."""
    return "".join(
        str(unicodedata.decimal(c)) if c.isdecimal() and not c.isascii() else c for c in text
    )


def _digit_stream(text: str) -> str:
    """Only the digits and mask characters of ``text``: separators, spaces, quotes and
    letters between digits vanish, so a PAN written in any form shows as its digits."""
    return re.sub(r"[^0-9*]", "", _normalise(text))


def _texts_of_bytes(data: bytes) -> list[str]:
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return [data.decode("utf-8", "replace"), data.decode("latin-1")]


def _leaks(pans: list[str], texts: list[str]) -> list[str]:
    found = []
    for text in texts:
        stream = _digit_stream(text)
        found += [p for p in pans if p in stream]
    return sorted(set(found))


# --------------------------------------------------------------------------- the test


@pytest.fixture
def warehouse(stack: Any, pg_schema_factory: Callable[..., str]) -> Iterator[Any]:
    from warehouse.postgres import PostgresWarehouse

    wh = PostgresWarehouse(stack.warehouse_dsn, schema=pg_schema_factory("pii"))
    wh.migrate()
    yield wh
    wh.close()


def _post_all(
    client: TestClient, events: list[tuple[str, dict[str, Any]]]
) -> tuple[list[str], list[str]]:
    """Post one by one and in batches; (answer texts, ids of accepted events)."""
    answers, accepted = [], []
    for event_type, body in events:
        response = client.post(f"/v1/events/{event_type}", json=body, headers=auth())
        answers.append(response.text)
        if response.status_code == 202:
            accepted.append(body["event_id"])
    return answers, accepted


def test_no_full_card_number_anywhere(
    stack: Any,
    settings_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    topic_factory: Callable[..., str],
    stream_factory: Callable[..., str],
    bucket_factory: Callable[..., str],
    dynamodb_table_factory: Callable[..., str],
    warehouse: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from sluice.zonestore import S3Zone
    from warehouse.loader import Loader, LoaderOptions

    caplog.set_level(logging.INFO)
    for package in (
        "ingest_api",
        "firehose_transforms",
        "warehouse",
        "producers",
        "schemas",
        "sluice",
    ):
        caplog.set_level(logging.DEBUG, logger=package)
    monkeypatch.setenv("SLUICE_PII_HMAC_KEY", "pii-end-to-end-key")
    from firehose_transforms.lambda_function import get_transformer

    get_transformer.cache_clear()
    pans = Pans()
    accepted_events = [
        *((FT, _ft_event(pans, form)) for form in FORMATS.values()),
        *((IC, _ic_event(pans, form)) for form in FORMATS.values()),
    ]
    rejected_events = _rejected_events(pans)
    bucket = bucket_factory()
    zone = ZoneSettings(s3_bucket=bucket)
    accepted_log = tmp_path / "accepted.ndjson"
    answers: list[str] = []
    topics = (
        topic_factory(partitions=2, prefix="pii-ft"),
        topic_factory(partitions=2, prefix="pii-ic"),
    )
    streams = (stream_factory(shards=1, prefix="pii-ft"), stream_factory(shards=1, prefix="pii-ic"))

    for backend, names in (("kafka", topics), ("kinesis", streams)):
        app = build_app(
            backend,
            *names,
            api_accepted_log="file",
            api_accepted_log_path=str(accepted_log),
            # the same events go to both backends: each app remembers only its own
            api_idempotency_store="memory",
        )
        with TestClient(app, raise_server_exceptions=False) as client:
            texts, accepted = _post_all(client, [*accepted_events, *rejected_events])
            answers += texts
            batch = client.post(
                f"/v1/events/{FT}/batch",
                json=[body for et, body in rejected_events if et == FT],
                headers=auth(),
            )
            answers.append(batch.text)
        assert sorted(accepted) == sorted(b["event_id"] for _, b in accepted_events), answers
        assert batch.status_code == 422

    kinesis = stack.aws_client("kinesis")
    on_streams = [read_stream(kinesis, stream) for stream in streams]
    assert [len(records) for records in on_streams] == [len(FORMATS), len(FORMATS)]

    # the stream side: both backends, both event types, then the S3 zone and the warehouse
    table = dynamodb_table_factory("pii-ckpt")
    delivery = DeliverySettings(firehose_checkpoint_table=table)
    for kind, names in (("kafka", topics), ("kinesis", streams)):
        for event_type, name in zip(
            (EventType.FINANCIAL_TRANSACTION, EventType.INSURANCE_CLAIM), names, strict=True
        ):
            summary = run_delivery(
                DeliveryOptions(
                    source=SourceKind(kind),
                    event_type=event_type,
                    buffer_mib=1,
                    buffer_seconds=1,
                    once=True,
                    max_seconds=90,
                    stream=name,
                    group_id=f"g-{uuid.uuid4().hex[:8]}",
                    quiet=True,
                    raw_backup=True,
                ),
                zone=zone,
                settings=delivery,
            )
            assert summary.ok == len(FORMATS), (kind, event_type, summary)
    loader = Loader(
        warehouse,
        S3Zone(client=stack.aws_client("s3")),
        zone_settings=zone,
        options=LoaderOptions(retry_delays=(0.0,), sweep_grace=0.0),
        sleep=lambda _s: None,
    )
    assert not loader.run_once().failed

    scanned: dict[str, list[str]] = {"answers": answers}
    scanned["kafka"] = [
        text
        for topic in topics
        for m in read_topic(stack.kafka_bootstrap, topic, expected=len(FORMATS))
        for part in (m.value() or b"", m.key() or b"", *(v or b"" for _, v in m.headers() or []))
        for text in _texts_of_bytes(part)
    ]
    scanned["kinesis"] = [
        text
        for records in on_streams
        for key, data in records
        for text in [key, *_texts_of_bytes(data)]
    ]
    dlq = StreamSettings().stream_dlq
    scanned["dlq"] = (
        [
            text
            for m in read_topic(stack.kafka_bootstrap, dlq, expected=0, timeout=5)
            for text in _texts_of_bytes(m.value() or b"")
        ]
        if dlq in _topics(stack)
        else []
    )
    s3 = stack.aws_client("s3")
    keys = [
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for obj in page.get("Contents", [])
    ]
    prefixes = {key.split("/")[0] for key in keys}
    assert {"clean", "raw"} <= prefixes, prefixes
    scanned["s3"] = [
        text
        for key in keys
        for text in _texts_of_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    ]
    scanned["warehouse"] = [
        json.dumps(row, default=str, ensure_ascii=False)
        for table_name in ("financial_transactions", "insurance_claims")
        for row in _rows(stack.warehouse_dsn, warehouse.schema, table_name)
    ]
    assert len(scanned["warehouse"]) == len(accepted_events)
    scanned["accepted_log"] = [accepted_log.read_text()]
    scanned["logs"] = [caplog.text, *(r.getMessage() for r in caplog.records)]

    # the scan itself finds a PAN when one is there
    assert _leaks(pans.issued[:1], [FORMATS["arabic_indic"](pans.issued[0])]) == pans.issued[:1]
    leaks = {source: _leaks(pans.issued, texts) for source, texts in scanned.items()}
    assert leaks == {source: [] for source in scanned}
    assert all(
        scanned[s] for s in ("answers", "kafka", "kinesis", "s3", "warehouse", "accepted_log")
    )


def _topics(stack: Any) -> set[str]:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
    return set(admin.list_topics(timeout=10).topics)


def _rows(dsn: str, schema: str, table: str) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f'SELECT * FROM "{schema}"."{table}"')  # names are the test's own
        return list(cur.fetchall())
