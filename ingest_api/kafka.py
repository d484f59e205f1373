"""Readiness of Kafka: a metadata request (``list_topics``) with a short timeout.

With ``SASL_SSL``/``OAUTHBEARER`` (MSK IAM) librdkafka asks for a token through the
``oauth_cb`` callback, and callbacks of an AdminClient run only inside its ``poll()``:
an AdminClient that is never polled waits for its first token (and later for each
refresh) until the request times out. The probe polls before every request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from ingest_api.base import Readiness
from sluice.config import KafkaSettings

logger = logging.getLogger(__name__)


class KafkaProbe:
    """Asks the cluster for the metadata of the event topics.

    Args:
        settings: how to reach Kafka.
        admin: a ready ``confluent_kafka.admin.AdminClient`` (created lazily otherwise).
    """

    backend = "kafka"

    def __init__(self, settings: KafkaSettings | None = None, *, admin: Any = None) -> None:
        self._settings = settings
        self._admin = admin

    def _client(self) -> Any:
        if self._admin is None:
            from confluent_kafka.admin import AdminClient

            settings = self._settings or KafkaSettings()
            conf = settings.client_config()
            conf["socket.connection.setup.timeout.ms"] = 2000
            self._admin = AdminClient(conf)
        return self._admin

    def _list(self, streams: Sequence[str], timeout: float) -> Readiness:
        from confluent_kafka import KafkaException

        try:
            admin = self._client()
            admin.poll(0)  # serves oauth_cb: the first token and every refresh
            metadata = admin.list_topics(timeout=timeout)
        except KafkaException as exc:
            logger.info("kafka readiness: %s", exc)
            return Readiness(False, self.backend, f"broker did not answer: {exc.args[0]}")
        missing = [s for s in streams if s not in metadata.topics]
        if missing:
            return Readiness(False, self.backend, f"missing topics: {', '.join(missing)}")
        for name in streams:
            error = metadata.topics[name].error
            if error is not None:
                return Readiness(False, self.backend, f"topic {name}: {error.name()}")
        return Readiness(True, self.backend)

    async def check(self, streams: Sequence[str], timeout: float) -> Readiness:
        """Ready when the broker answers within ``timeout`` and every topic exists."""
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self._list, streams, timeout), timeout + 0.5
            )
        except TimeoutError:
            return Readiness(False, self.backend, f"no answer within {timeout} s")

    async def close(self) -> None:
        """The admin client has nothing to flush; drop it."""
        self._admin = None
