"""Settings shared by every component: AWS endpoint, Kafka connection, stream names.

Every settings class in Sluice derives from :class:`SluiceSettings`: the values come
from ``SLUICE_*`` environment variables and, when present, from the env file written
by ``sluice stack up`` (``.sluice/stack.env`` in the working directory, or the file
named by ``SLUICE_STACK_ENV``). The environment always wins over the file. Settings
objects are frozen; secrets are ``SecretStr`` and never printed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from sluice.errors import RetryableError

DEFAULT_STACK_ENV = Path(".sluice") / "stack.env"


def stack_env_file() -> Path:
    """The env file settings fall back to: ``$SLUICE_STACK_ENV`` or ``.sluice/stack.env``."""
    named = os.environ.get("SLUICE_STACK_ENV")
    return Path(named) if named else DEFAULT_STACK_ENV


class SluiceSettings(BaseSettings):
    """Base of every settings class: ``SLUICE_`` prefix, frozen, env file fallback."""

    model_config = SettingsConfigDict(
        env_prefix="SLUICE_",
        frozen=True,
        extra="ignore",
        env_file_encoding="utf-8",
    )

    def __init__(self, **values: Any) -> None:
        # The env file is resolved per instantiation so that SLUICE_STACK_ENV set by a
        # test or by `sluice stack up` in the same process is honoured.
        env_file = stack_env_file()
        super().__init__(_env_file=env_file if env_file.is_file() else None, **values)


class StreamBackend(StrEnum):
    """Which stream carries the events."""

    KAFKA = "kafka"
    KINESIS = "kinesis"


class EventType(StrEnum):
    """The event types of the contract, as they appear in URLs and on the command line."""

    FINANCIAL_TRANSACTION = "financial-transaction"
    INSURANCE_CLAIM = "insurance-claim"


class StreamSettings(SluiceSettings):
    """Which backend, and the topic / stream name per event type.

    The same name serves as the Kafka topic and the Kinesis stream name (both allow
    ``[A-Za-z0-9._-]``).
    """

    stream_backend: StreamBackend = Field(
        default=StreamBackend.KAFKA,
        description="Which stream carries events: kafka (MSK) or kinesis.",
    )
    stream_financial_transaction: str = Field(
        default="sluice-financial-transaction",
        description="Kafka topic / Kinesis stream for financial-transaction events.",
    )
    stream_insurance_claim: str = Field(
        default="sluice-insurance-claim",
        description="Kafka topic / Kinesis stream for insurance-claim events.",
    )
    stream_dlq: str = Field(
        default="sluice-dlq",
        description="Dead-letter topic / stream for records consumers give up on.",
    )

    def name_for(self, event_type: EventType | str) -> str:
        """The topic / stream name that carries ``event_type``."""
        et = EventType(event_type)
        if et is EventType.FINANCIAL_TRANSACTION:
            return self.stream_financial_transaction
        return self.stream_insurance_claim

    def all_names(self) -> list[str]:
        """Every topic / stream the pipeline needs, DLQ included."""
        return [self.stream_financial_transaction, self.stream_insurance_claim, self.stream_dlq]


class AwsSettings(SluiceSettings):
    """How to reach AWS (or the local moto endpoint)."""

    aws_region: str = Field(default="us-east-1", description="AWS region of every client.")
    aws_endpoint_url: str | None = Field(
        default=None, description="Endpoint for every AWS service; set to the local moto server."
    )
    aws_access_key_id: SecretStr | None = Field(
        default=None, description="Access key id; unset on AWS (the role's credentials are used)."
    )
    aws_secret_access_key: SecretStr | None = Field(
        default=None,
        description="Secret access key; unset on AWS (the role's credentials are used).",
    )

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``boto3.client``; credentials only when set."""
        kwargs: dict[str, Any] = {"region_name": self.aws_region}
        if self.aws_endpoint_url:
            kwargs["endpoint_url"] = self.aws_endpoint_url
        if self.aws_access_key_id and self.aws_secret_access_key:
            kwargs["aws_access_key_id"] = self.aws_access_key_id.get_secret_value()
            kwargs["aws_secret_access_key"] = self.aws_secret_access_key.get_secret_value()
        return kwargs

    def client(self, service: str) -> Any:
        """A boto3 client for ``service``; no network call is made here."""
        import boto3  # imported at the edge only

        return boto3.client(service, **self.client_kwargs())  # type: ignore[call-overload]


class KafkaSettings(SluiceSettings):
    """How to reach Kafka (Amazon MSK, or the local Tansu broker)."""

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated host:port list of the brokers."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL", "SASL_PLAINTEXT"] = Field(
        default="PLAINTEXT", description="librdkafka security.protocol (SASL_SSL on MSK)."
    )
    kafka_sasl_mechanism: str | None = Field(
        default=None, description="librdkafka sasl.mechanism, e.g. SCRAM-SHA-512 or OAUTHBEARER."
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="SASL password.")
    kafka_client_id: str = Field(default="sluice", description="librdkafka client.id.")
    kafka_oauth_provider: Literal["msk-iam", "none"] = Field(
        default="msk-iam",
        description=(
            "Token source when SLUICE_KAFKA_SASL_MECHANISM=OAUTHBEARER: msk-iam signs a token "
            "with the process's AWS credentials (MSK IAM auth); none leaves it to librdkafka."
        ),
    )
    kafka_msk_region: str = Field(
        default="us-east-1", description="AWS region of the MSK cluster (for IAM auth tokens)."
    )

    SECRET_KEYS: ClassVar[frozenset[str]] = frozenset({"sasl.password"})

    def client_config(self) -> dict[str, Any]:
        """The librdkafka connection properties common to producers, consumers and admin."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
            "client.id": self.kafka_client_id,
        }
        if self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username:
            conf["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password:
            conf["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_sasl_mechanism == "OAUTHBEARER" and self.kafka_oauth_provider == "msk-iam":
            conf["oauth_cb"] = msk_iam_oauth_callback(self.kafka_msk_region)
        return conf


TokenProvider = Callable[[str], tuple[str, int]]


def msk_iam_oauth_callback(
    region: str, token_provider: TokenProvider | None = None
) -> Callable[[Any], tuple[str, float]]:
    """A librdkafka ``oauth_cb`` that signs MSK IAM auth tokens for ``region``.

    The token is signed with the process's AWS credentials (the Lambda or task role) by
    ``aws-msk-iam-sasl-signer-python``; librdkafka calls the callback again before the
    token expires. ``token_provider(region) -> (token, expiry_ms)`` can be passed in.
    """

    def provide(region: str) -> tuple[str, int]:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

        token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
        return str(token), int(expiry_ms)

    chosen = token_provider or provide

    def oauth_cb(_config: Any) -> tuple[str, float]:
        try:
            token, expiry_ms = chosen(region)
        except Exception as exc:  # botocore raises many kinds; librdkafka needs one
            raise RetryableError(
                f"could not sign an MSK IAM auth token for {region}: {type(exc).__name__}",
                code="msk_iam_token",
            ) from exc
        # librdkafka wants the absolute expiry in seconds since the epoch.
        return token, expiry_ms / 1000.0

    return oauth_cb


class ZoneSettings(SluiceSettings):
    """Where the S3 intermediate zone lives (written by the delivery, read by the loader)."""

    s3_bucket: str = Field(default="sluice-zone", description="Bucket of the S3 intermediate zone.")
    s3_raw_prefix: str = Field(default="raw/", description="Prefix of the raw source backup.")
    s3_clean_prefix: str = Field(
        default="clean/", description="Prefix of the cleaned NDJSON files."
    )
    s3_error_prefix: str = Field(default="errors/", description="Prefix of failed records.")
    s3_manifest_prefix: str = Field(default="manifests/", description="Prefix of load manifests.")
