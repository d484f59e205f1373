"""Readiness of Kinesis: ``DescribeStreamSummary`` of each event stream."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from ingest_api.base import Readiness
from sluice.config import AwsSettings

logger = logging.getLogger(__name__)

READY_STATUSES = frozenset({"ACTIVE", "UPDATING"})


class KinesisProbe:
    """Asks Kinesis for the summary of each event stream.

    Args:
        settings: endpoint and credentials.
        client: a ready boto3 Kinesis client (created lazily otherwise, with short
            timeouts and no retries so the probe answers quickly).
    """

    backend = "kinesis"

    def __init__(self, settings: AwsSettings | None = None, *, client: Any = None) -> None:
        self._settings = settings
        self._client = client

    def _kinesis(self, timeout: float) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            settings = self._settings or AwsSettings()
            config = Config(
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"max_attempts": 1, "mode": "standard"},
            )
            self._client = boto3.client("kinesis", config=config, **settings.client_kwargs())
        return self._client

    def _describe(self, streams: Sequence[str], timeout: float) -> Readiness:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self._kinesis(timeout)
        for name in streams:
            try:
                summary = client.describe_stream_summary(StreamName=name)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "ClientError")
                return Readiness(False, self.backend, f"stream {name}: {code}")
            except BotoCoreError as exc:
                logger.info("kinesis readiness: %s", exc)
                return Readiness(
                    False, self.backend, f"endpoint did not answer: {type(exc).__name__}"
                )
            status = summary["StreamDescriptionSummary"]["StreamStatus"]
            if status not in READY_STATUSES:
                return Readiness(False, self.backend, f"stream {name} is {status}")
        return Readiness(True, self.backend)

    async def check(self, streams: Sequence[str], timeout: float) -> Readiness:
        """Ready when every stream is ACTIVE (or UPDATING) and answered within ``timeout``."""
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self._describe, streams, timeout), timeout + 0.5
            )
        except TimeoutError:
            return Readiness(False, self.backend, f"no answer within {timeout} s")

    async def close(self) -> None:
        """Drop the client."""
        self._client = None
