"""Confluent Schema Registry through confluent-kafka's ``SchemaRegistryClient``.

Subjects follow the TopicNameStrategy of confluent-kafka's ``AvroSerializer``
(``<topic>-value``), so values written by that serializer with ids the registry
assigned (``auto.register.schemas``) are read here, and the API writes the same ids.
Unit tests pass confluent-kafka's ``MockSchemaRegistryClient``, which, unlike a real
registry, checks no compatibility.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.common._httpx_compat import httpx
from confluent_kafka.schema_registry.common.schema_registry_client import (
    ConfigCompatibilityLevel,
    ServerConfig,
)
from confluent_kafka.schema_registry.error import SchemaRegistryError

from schemas.compatibility import CompatibilityLevel
from schemas.exceptions import SchemaError, UnknownSchemaIdError
from schemas.framing import Framing, WireId
from schemas.registry.base import fingerprint_of
from schemas.registry.config import RegistryKind
from schemas.registry.exceptions import RegistrationRefusedError, RegistryUnavailableError
from schemas.registry.models import RegisteredSchema

_INCOMPATIBLE = 409
_INVALID = 422


class ConfluentRegistry:
    """One Confluent Schema Registry. The client is made on first use (or passed in)."""

    def __init__(
        self, url: str | None = None, *, client: Any = None, basic_auth: str | None = None
    ):
        if client is None and not url:
            raise ValueError("a Confluent registry needs SLUICE_SCHEMA_REGISTRY_URL or a client")
        self._url = url
        self._client = client
        self._basic_auth = basic_auth

    @property
    def kind(self) -> RegistryKind:
        """``confluent``."""
        return RegistryKind.CONFLUENT

    @property
    def framing(self) -> Framing:
        """Confluent: 32-bit schema ids."""
        return Framing.CONFLUENT

    def client(self) -> Any:
        """The ``SchemaRegistryClient`` (made on first use)."""
        if self._client is None:
            conf: dict[str, Any] = {"url": self._url}
            if self._basic_auth:
                conf["basic.auth.user.info"] = self._basic_auth
            self._client = SchemaRegistryClient(conf)
        return self._client

    def _call(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.client(), operation)(*args, **kwargs)
        except SchemaRegistryError as exc:
            if exc.http_status_code in (404, _INCOMPATIBLE, _INVALID):
                raise
            raise RegistryUnavailableError(
                f"Schema Registry {operation} failed: HTTP {exc.http_status_code} "
                f"(code {exc.error_code})"
            ) from exc
        except httpx.TransportError as exc:
            raise RegistryUnavailableError(
                f"Schema Registry unreachable ({type(exc).__name__})"
            ) from exc

    def fetch(self, wire_id: WireId) -> RegisteredSchema:
        """``GET /schemas/ids/{id}``."""
        if not isinstance(wire_id, int):
            raise UnknownSchemaIdError(
                f"schema version id {wire_id} is a Glue id; Confluent ids are integers"
            )
        try:
            schema = self._call("get_schema", wire_id)
        except SchemaRegistryError as exc:
            raise UnknownSchemaIdError(
                f"unknown schema id {wire_id}: Schema Registry answered {exc.error_message}"
            ) from exc
        return RegisteredSchema(wire_id, schema.schema_str)

    def find(self, name: str, definition: str) -> WireId | None:
        """The id of this definition under subject ``name``; None when absent.

        ``POST /subjects/{subject}`` (lookup) first, then, on a miss, the subject's
        versions compared by canonical fingerprint, so a producer's differently
        formatted copy of the same schema counts as registered.
        """
        try:
            found = self._call("lookup_schema", name, Schema(definition, "AVRO"))
        except SchemaRegistryError as exc:
            if exc.http_status_code != 404:
                raise RegistryUnavailableError(
                    f"Schema Registry lookup failed: {exc.error_message}"
                ) from exc
        else:
            return int(found.schema_id)
        wanted = fingerprint_of(definition)
        try:
            versions = self._call("get_versions", name)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return None
            raise RegistryUnavailableError(
                f"Schema Registry versions failed: {exc.error_message}"
            ) from exc
        for number in versions:
            try:
                registered = self._call("get_version", name, number)
            except SchemaRegistryError:
                continue  # deleted meanwhile
            try:
                if fingerprint_of(registered.schema.schema_str) == wanted:
                    return int(registered.schema_id)
            except SchemaError:
                continue  # not an Avro schema: not the one wanted
        return None

    def set_compatibility(self, name: str, level: CompatibilityLevel) -> None:
        """``PUT /config/{subject}`` (the mock client accepts and ignores it)."""
        config = ServerConfig(compatibility=ConfigCompatibilityLevel(level.value))
        self._call("set_config", subject_name=name, config=config)

    def register(self, name: str, definition: str, level: CompatibilityLevel) -> WireId:
        """``POST /subjects/{subject}/versions``; a 409 is the registry's refusal."""
        try:
            return int(self._call("register_schema", name, Schema(definition, "AVRO")))
        except SchemaRegistryError as exc:
            reason = f"HTTP {exc.http_status_code}: {exc.error_message}"
            raise RegistrationRefusedError(reason, reason=reason) from exc
