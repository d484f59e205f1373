"""The Kafka topics the pipeline needs, created idempotently (``sluice topics apply``).

One topic per event type and the dead-letter topic, named by the same
``SLUICE_STREAM_*`` settings every component reads (Terraform sets them on AWS, the
local stack writes them to ``.sluice/stack.env``). MSK does not create topics on first
use (``auto.create.topics.enable=false``) and a Firehose stream with an MSK source
needs its topic when it is created, so the deploy order runs this between the
streaming module and everything else; ``sluice stack up`` runs the same function.

Existing topics are left as they are: a topic with another partition count is
reported, never changed (adding partitions moves keys to other partitions).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sluice.config import KafkaSettings
from sluice.errors import FatalError, RetryableError

# -1: the broker's default.replication.factor (3 on the MSK configuration Terraform makes).
BROKER_DEFAULT_REPLICATION = -1


class TopicsError(FatalError):
    """A topic could not be created."""

    default_code = "topic_error"


class TopicsUnavailable(RetryableError):
    """The cluster did not answer."""

    default_code = "kafka_unavailable"


@dataclass(frozen=True)
class TopicsReport:
    """What ``apply_topics`` found and did."""

    created: tuple[str, ...] = ()
    existing: Mapping[str, int] = field(default_factory=dict)
    wanted_partitions: int = 0

    @property
    def mismatched(self) -> dict[str, int]:
        """Existing topics whose partition count differs from the wanted one."""
        return {
            name: count for name, count in self.existing.items() if count != self.wanted_partitions
        }

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready description (``sluice topics apply --json``)."""
        return {
            "created": list(self.created),
            "existing": dict(self.existing),
            "partitions": self.wanted_partitions,
            "mismatched": self.mismatched,
        }


def apply_topics(
    kafka: KafkaSettings,
    names: Iterable[str],
    *,
    partitions: int,
    replication_factor: int = BROKER_DEFAULT_REPLICATION,
    admin: Any = None,
    timeout_s: float = 15.0,
) -> TopicsReport:
    """Create the missing topics of ``names``; report the existing ones.

    Raises:
        TopicsUnavailable: the cluster did not answer within ``timeout_s``.
        TopicsError: the cluster refused to create a topic (not "already exists").
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    if partitions < 1:
        raise TopicsError(f"partitions must be at least 1, got {partitions}", code="bad_partitions")
    client = admin or AdminClient(kafka.client_config())
    client.poll(0)  # serves oauth_cb (MSK IAM): the admin client's callbacks run in poll()
    try:
        metadata = client.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise TopicsUnavailable(f"the Kafka cluster did not answer: {exc.args[0]}") from exc
    wanted = list(dict.fromkeys(names))
    existing = {
        name: len(metadata.topics[name].partitions) for name in wanted if name in metadata.topics
    }
    missing = [name for name in wanted if name not in existing]
    created: list[str] = []
    raced: list[str] = []
    if missing:
        futures = client.create_topics(
            [NewTopic(name, partitions, replication_factor) for name in missing],
            operation_timeout=timeout_s,
            request_timeout=timeout_s,
        )
        for name, future in futures.items():
            try:
                future.result(timeout=timeout_s + 5)
                created.append(name)
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    raced.append(name)  # created concurrently by another caller
                    continue
                raise TopicsError(
                    f"could not create topic {name}: {error.str()}", code=error.name()
                ) from exc
    if raced:
        topics = client.list_topics(timeout=timeout_s).topics
        existing.update({name: len(topics[name].partitions) for name in raced})
    return TopicsReport(
        created=tuple(sorted(created)),
        existing=dict(sorted(existing.items())),
        wanted_partitions=partitions,
    )
