"""Schema registries: where the schema ids on the wire come from.

``SLUICE_SCHEMA_REGISTRY`` picks one: ``catalogue`` (the fixed ids of
``schemas.catalogue.SCHEMA_IDS``, the default), ``glue`` (AWS Glue Schema Registry) or
``confluent`` (Confluent Schema Registry). :func:`resolver_from_settings` builds a
:class:`SchemaResolver` for it; :func:`default_resolver` is the one the codec uses when
it is given none, built once per process (ids are immutable, so a cache never goes
stale). See ``docs/schemas.md``.
"""

from __future__ import annotations

from functools import cache

from schemas.registry.base import (
    ENFORCED_LEVEL,
    Naming,
    SchemaRegistry,
    SchemaResolver,
    definition_of,
    register_catalogue,
    stream_naming,
)
from schemas.registry.config import RegistryKind, RegistrySettings
from schemas.registry.exceptions import (
    RegistrationRefusedError,
    RegistryUnavailableError,
    SchemaNotRegisteredError,
)
from schemas.registry.models import RegisteredSchema, RegistrationResult, RegistrationStatus
from sluice.config import AwsSettings, StreamSettings

__all__ = [
    "ENFORCED_LEVEL",
    "RegisteredSchema",
    "RegistrationRefusedError",
    "RegistrationResult",
    "RegistrationStatus",
    "RegistryKind",
    "RegistrySettings",
    "RegistryUnavailableError",
    "SchemaNotRegisteredError",
    "SchemaRegistry",
    "SchemaResolver",
    "default_resolver",
    "definition_of",
    "naming_for",
    "register_catalogue",
    "registry_from_settings",
    "resolver_from_settings",
    "stream_naming",
]


def naming_for(kind: RegistryKind, streams: StreamSettings | None = None) -> Naming:
    """The subject / schema name of each event type for ``kind``: Glue names schemas
    after the stream, Confluent subjects are ``<topic>-value``."""
    names = (streams or StreamSettings()).name_for
    return stream_naming(names, suffix="-value" if kind is RegistryKind.CONFLUENT else "")


def registry_from_settings(
    settings: RegistrySettings | None = None, *, aws: AwsSettings | None = None
) -> SchemaRegistry:
    """The registry ``SLUICE_SCHEMA_REGISTRY`` names (no network call is made here)."""
    settings = settings or RegistrySettings()
    if settings.schema_registry is RegistryKind.GLUE:
        from schemas.registry.glue import GlueRegistry

        return GlueRegistry(settings.schema_registry_name, aws=aws or AwsSettings())
    if settings.schema_registry is RegistryKind.CONFLUENT:
        from sluice.errors import ConfigurationError

        if not settings.schema_registry_url:
            raise ConfigurationError(
                "SLUICE_SCHEMA_REGISTRY=confluent needs SLUICE_SCHEMA_REGISTRY_URL",
                code="schema_registry_url_missing",
            )
        from schemas.registry.confluent import ConfluentRegistry

        auth = settings.schema_registry_basic_auth
        return ConfluentRegistry(
            settings.schema_registry_url,
            basic_auth=auth.get_secret_value() if auth is not None else None,
        )
    from schemas import catalogue
    from schemas.registry.catalogue import CatalogueRegistry

    return CatalogueRegistry(catalogue())


def resolver_from_settings(
    settings: RegistrySettings | None = None,
    *,
    registry: SchemaRegistry | None = None,
    streams: StreamSettings | None = None,
) -> SchemaResolver:
    """A resolver over the shipped catalogue and the configured (or given) registry."""
    from schemas import catalogue

    settings = settings or RegistrySettings()
    registry = registry or registry_from_settings(settings)
    return SchemaResolver(
        registry,
        catalogue(),
        naming_for(registry.kind, streams),
        cache_size=settings.schema_registry_cache_size,
        miss_ttl=settings.schema_registry_miss_ttl_seconds,
        compress=settings.schema_registry_compression and registry.kind is RegistryKind.GLUE,
    )


@cache
def default_resolver() -> SchemaResolver:
    """The process's resolver from the settings, built on first use
    (``default_resolver.cache_clear()`` forgets it)."""
    return resolver_from_settings()
