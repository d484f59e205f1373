"""Settings of the schema registry: which one, where, and how values are framed."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, SecretStr

from sluice.config import SluiceSettings


class RegistryKind(StrEnum):
    """Where schema ids come from."""

    CATALOGUE = "catalogue"
    GLUE = "glue"
    CONFLUENT = "confluent"


class RegistrySettings(SluiceSettings):
    """Which schema registry assigns the ids on the wire.

    ``catalogue`` (the default) keeps the fixed ids of ``schemas.catalogue.SCHEMA_IDS``
    in the Confluent framing; ``glue`` uses AWS Glue Schema Registry (its framing, with
    schema version UUIDs; the AWS endpoint and region of ``SLUICE_AWS_*``);
    ``confluent`` uses a Confluent Schema Registry at ``SLUICE_SCHEMA_REGISTRY_URL``.
    """

    schema_registry: RegistryKind = Field(
        default=RegistryKind.CATALOGUE,
        description=(
            "Source of the schema ids on the wire: catalogue (fixed ids, Confluent framing), "
            "glue (AWS Glue Schema Registry, Glue framing) or confluent (Confluent Schema "
            "Registry, Confluent framing)."
        ),
    )
    schema_registry_name: str = Field(
        default="sluice",
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9_$#.-]+$",
        description="Glue: the registry that holds the schemas (one schema per stream name).",
    )
    schema_registry_url: str | None = Field(
        default=None,
        description="Confluent: the Schema Registry URL (subjects are <topic>-value).",
    )
    schema_registry_basic_auth: SecretStr | None = Field(
        default=None,
        description="Confluent: basic auth as user:password, when the registry needs it.",
    )
    schema_registry_compression: bool = Field(
        default=False,
        description="Glue: zlib-compress the Avro body of the values the API writes.",
    )
    schema_registry_cache_size: int = Field(
        default=1024,
        ge=16,
        le=1_000_000,
        description="Schema ids / version UUIDs remembered per process (and as many misses).",
    )
    schema_registry_miss_ttl_seconds: float = Field(
        default=60.0,
        ge=0,
        le=86_400,
        description="How long an id the registry said does not exist is answered from the cache.",
    )
