"""Lambda handler of the loader: SQS messages carrying S3 notifications of clean objects.

The bucket sends ``ObjectCreated`` notifications of the clean prefix to an SQS queue;
an event source mapping with ``ReportBatchItemFailures`` invokes this handler with up
to a batch of messages. The handler loads the clean objects they name (see
:meth:`warehouse.loader.Loader.handle_messages`) and answers the partial batch
response ``{"batchItemFailures": [{"itemIdentifier": <messageId>}, ...]}``: the
messages whose files are not all loaded (or that are no S3 event) come back after the
queue's visibility timeout, and after its maximum receive count go to its dead-letter
queue. Loaded files are never loaded twice (the load audit), so a redelivered message
is harmless.
"""

from __future__ import annotations

import logging
from typing import Any

from sluice.config import AwsSettings, ZoneSettings
from sluice.zonestore import S3Zone
from warehouse.exceptions import BadEventError
from warehouse.loader import Loader, LoaderOptions
from warehouse.queue import QueueMessage

log = logging.getLogger(__name__)

_LOADER: Loader | None = None


def messages_from_event(event: dict[str, Any]) -> list[QueueMessage]:
    """The SQS messages of a Lambda SQS event (``Records[].messageId/receiptHandle/body``)."""
    out: list[QueueMessage] = []
    for record in event.get("Records", []):
        if not isinstance(record, dict) or record.get("eventSource") != "aws:sqs":
            raise BadEventError("not an SQS event record (eventSource is not aws:sqs)")
        out.append(
            QueueMessage(
                str(record["messageId"]), str(record.get("receiptHandle", "")), record["body"]
            )
        )
    return out


def _default_loader() -> Loader:
    global _LOADER
    if _LOADER is None:
        from warehouse.config import WarehouseSettings
        from warehouse.factory import create_warehouse

        settings = WarehouseSettings()
        _LOADER = Loader(
            create_warehouse(settings),
            S3Zone(aws=AwsSettings()),
            zone_settings=ZoneSettings(),
            options=LoaderOptions.from_settings(settings),
            lease_warehouse=lambda: create_warehouse(settings),
        )
    return _LOADER


def handle_event(event: dict[str, Any], *, loader: Loader | None = None) -> dict[str, Any]:
    """Load what an SQS event's messages name; the partial batch response."""
    loader = loader or _default_loader()
    messages = messages_from_event(event)
    result = loader.handle_messages(messages)
    totals = result.summary.totals()
    log.info(
        "%d message(s): %d load(s), %d file(s), %d row(s) inserted; %d message(s) to retry",
        len(messages),
        totals["loads"],
        totals["files"],
        totals["inserted"],
        len(result.failed),
    )
    return {"batchItemFailures": [{"itemIdentifier": m.message_id} for m in result.failed]}


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """AWS Lambda entry point (``warehouse.lambda_function.lambda_handler``)."""
    return handle_event(event)
