"""Create what the pipeline needs on the local stack; every step is idempotent."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from sluice.config import AwsSettings, KafkaSettings
from sluice.errors import FatalError, RetryableError

_log = logging.getLogger(__name__)


def ensure_topics(kafka: KafkaSettings, names: Iterable[str], partitions: int) -> list[str]:
    """Create missing Kafka topics; returns the names that were created."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient(kafka.client_config())
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [n for n in names if n not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in wanted],
        operation_timeout=10,
    )
    created: list[str] = []
    for name, future in futures.items():
        try:
            future.result(timeout=15)
            created.append(name)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise FatalError(
                f"could not create topic {name}: {error.str()}", code=error.name()
            ) from exc
    return created


def ensure_streams(
    aws: AwsSettings, names: Iterable[str], shards: int, client: Any = None
) -> list[str]:
    """Create missing Kinesis streams and wait until each is ACTIVE."""
    kinesis = client or aws.client("kinesis")
    existing = set(_list_streams(kinesis))
    created: list[str] = []
    for name in names:
        if name in existing:
            continue
        try:
            kinesis.create_stream(StreamName=name, ShardCount=shards)
            created.append(name)
        except kinesis.exceptions.ResourceInUseException:
            pass
    for name in names:
        _wait_stream_active(kinesis, name)
    return created


def _list_streams(kinesis: Any) -> list[str]:
    names: list[str] = []
    kwargs: dict[str, Any] = {}
    while True:
        page = kinesis.list_streams(**kwargs)
        names.extend(page.get("StreamNames", []))
        if not page.get("HasMoreStreams") or not names:
            return names
        kwargs = {"ExclusiveStartStreamName": names[-1]}


def _wait_stream_active(kinesis: Any, name: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
            "StreamStatus"
        ]
        if status == "ACTIVE":
            return
        if time.monotonic() > deadline:
            raise RetryableError(f"Kinesis stream {name} is still {status} after {timeout:.0f} s")
        time.sleep(0.1)


def ensure_bucket(aws: AwsSettings, bucket: str, client: Any = None) -> bool:
    """Create the S3 bucket if missing; True when it was created."""
    from botocore.exceptions import ClientError

    s3 = client or aws.client("s3")
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in {"404", "NoSuchBucket", "NotFound"}:
            raise FatalError(f"cannot check bucket {bucket}: {exc}", code="s3_error") from exc
    else:
        return False
    try:
        s3.create_bucket(Bucket=bucket)
    except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        return False
    return True


def ensure_glue_schemas(aws: AwsSettings, registry_name: str | None = None) -> list[str]:
    """Register every catalogue version in the Glue Schema Registry (moto's locally)
    under the stream names, as ``sluice schemas register --registry glue`` does; the
    ``schema version`` of each one registered now (none on a rerun)."""
    from schemas import catalogue
    from schemas.registry import (
        RegistrationStatus,
        RegistryKind,
        RegistrySettings,
        naming_for,
        register_catalogue,
    )
    from schemas.registry.glue import GlueRegistry

    registry = GlueRegistry(registry_name or RegistrySettings().schema_registry_name, aws=aws)
    results = register_catalogue(registry, catalogue(), naming_for(RegistryKind.GLUE))
    return [f"{r.name} v{r.version}" for r in results if r.status is RegistrationStatus.REGISTERED]


LOAD_QUEUE_VISIBILITY_SECONDS = 30
LOAD_QUEUE_MAX_RECEIVES = 5


def ensure_load_queue(
    aws: AwsSettings,
    bucket: str,
    clean_prefix: str,
    *,
    s3_client: Any = None,
    sqs_client: Any = None,
) -> str:
    """The loader's notification path, as the Terraform builds it on AWS: an SQS queue
    (with a dead-letter queue after 5 receives) that the bucket notifies of every
    ``ObjectCreated`` under the clean prefix. Returns the queue URL (idempotent)."""
    import json

    s3 = s3_client or aws.client("s3")
    sqs = sqs_client or aws.client("sqs")
    name = f"{bucket}-loads"
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": LOAD_QUEUE_MAX_RECEIVES}
    )
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(LOAD_QUEUE_VISIBILITY_SECONDS),
            "RedrivePolicy": redrive,
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    wanted = {
        "Id": "sluice-clean-objects",
        "QueueArn": arn,
        "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": clean_prefix}]}},
    }
    current = s3.get_bucket_notification_configuration(Bucket=bucket)
    configs = current.get("QueueConfigurations", [])
    if not any(c.get("QueueArn") == arn for c in configs):
        s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={
                "QueueConfigurations": [*configs, wanted],
                "TopicConfigurations": current.get("TopicConfigurations", []),
                "LambdaFunctionConfigurations": current.get("LambdaFunctionConfigurations", []),
            },
        )
    return str(url)


def ensure_warehouse() -> None:
    """Create or migrate the warehouse tables (``sluice warehouse init``)."""
    import warehouse

    warehouse.init_warehouse()


def ensure_dynamodb_table(
    aws: AwsSettings,
    table: str,
    hash_key: str,
    *,
    ttl_attribute: str | None = None,
    client: Any = None,
) -> bool:
    """Create an on-demand DynamoDB table keyed by ``hash_key`` (S) if missing, with its
    TTL attribute turned on; True when it was created."""
    dynamodb = client or aws.client("dynamodb")
    try:
        dynamodb.describe_table(TableName=table)
        return False
    except dynamodb.exceptions.ResourceNotFoundException:
        pass
    try:
        dynamodb.create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": hash_key, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": hash_key, "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except dynamodb.exceptions.ResourceInUseException:
        return False
    dynamodb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 0.2})
    if ttl_attribute:
        dynamodb.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute},
        )
    return True


def ensure_api_tables(aws: AwsSettings, idempotency_table: str, rate_limit_table: str) -> list[str]:
    """The ingest API's idempotency table (key ``id``, TTL ``expiration``) and token-bucket
    table (key ``key_id``); returns the names created."""
    created = []
    if ensure_dynamodb_table(aws, idempotency_table, "id", ttl_attribute="expiration"):
        created.append(idempotency_table)
    if ensure_dynamodb_table(aws, rate_limit_table, "key_id"):
        created.append(rate_limit_table)
    return created
