"""Lambda handler for S3 event notifications on the zone's manifest prefix.

Each ``ObjectCreated`` record naming a ``.manifest`` under the manifest prefix is
loaded (see :mod:`warehouse.loader`); other keys are reported as skipped. When a load
ends in ``retry`` the handler raises after processing every record, so Lambda's own
retry of the asynchronous invocation runs it again (completed loads are no-ops then).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote_plus

from sluice.config import ZoneSettings
from warehouse.exceptions import WarehouseUnavailableError
from warehouse.loader import Loader, LoaderOptions
from warehouse.models import LoadState
from warehouse.zone import MANIFEST_SUFFIX, S3Zone, s3_url

log = logging.getLogger(__name__)

_LOADER: Loader | None = None


def manifest_urls_from_event(
    event: dict[str, Any], manifest_prefix: str
) -> tuple[list[str], list[str]]:
    """``(manifests to load, other object URLs)`` named by an S3 notification event."""
    wanted: list[str] = []
    other: list[str] = []
    for record in event.get("Records", []):
        s3 = record.get("s3", {})
        bucket = s3.get("bucket", {}).get("name")
        key = s3.get("object", {}).get("key")
        if not bucket or not key:
            continue
        key = unquote_plus(key)
        url = s3_url(bucket, key)
        name = str(record.get("eventName", "ObjectCreated:Put"))
        if (
            name.startswith("ObjectCreated")
            and key.startswith(manifest_prefix)
            and key.endswith(MANIFEST_SUFFIX)
        ):
            wanted.append(url)
        else:
            other.append(url)
    return list(dict.fromkeys(wanted)), other


def _default_loader() -> Loader:
    global _LOADER
    if _LOADER is None:
        from warehouse.config import WarehouseSettings
        from warehouse.factory import create_warehouse

        settings = WarehouseSettings()
        _LOADER = Loader(
            create_warehouse(settings),
            S3Zone(),
            zone_settings=ZoneSettings(),
            options=LoaderOptions.from_settings(settings),
        )
    return _LOADER


def handle_event(event: dict[str, Any], *, loader: Loader | None = None) -> dict[str, Any]:
    """Load the manifests an S3 event names; returns a JSON-safe report."""
    loader = loader or _default_loader()
    urls, other = manifest_urls_from_event(event, loader.zs.s3_manifest_prefix)
    outcomes = []
    for url in urls:
        outcome = loader.load_manifest(url)
        outcomes.append(
            outcome.as_dict()
            if outcome
            else {"manifest_url": url, "state": "already-loaded-or-running"}
        )
    report = {"loads": outcomes, "skipped": other}
    pending = [o for o in outcomes if o.get("state") == LoadState.RETRY.value]
    if pending:
        raise WarehouseUnavailableError(
            f"{len(pending)} load(s) must be retried: "
            + "; ".join(str(o.get("error")) for o in pending),
            code="load_retry",
        )
    return report


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """AWS Lambda entry point (``warehouse.lambda_function.lambda_handler``)."""
    report = handle_event(event)
    log.info(
        "loaded %d manifest(s), skipped %d object(s)", len(report["loads"]), len(report["skipped"])
    )
    return report
