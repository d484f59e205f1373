"""AWS Glue Schema Registry through boto3's ``glue`` client.

Schemas are named after their stream (the default naming of AWS's own serializers, the
transport name) inside the registry ``SLUICE_SCHEMA_REGISTRY_NAME``; values carry the
schema version UUID in the Glue framing. Calls: ``GetSchemaVersion`` (readers),
``GetSchemaByDefinition`` (the API at startup), ``CreateRegistry``, ``CreateSchema``,
``RegisterSchemaVersion``, ``UpdateSchema`` (registration, the deploy role only).

AWS checks compatibility asynchronously: a new version is ``PENDING``, then
``AVAILABLE`` or ``FAILURE``; :meth:`GlueRegistry.register` waits for the outcome.
moto accepts every version (it does not check compatibility), which is why
:func:`~schemas.registry.base.register_catalogue` checks before registering.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from schemas.compatibility import CompatibilityLevel
from schemas.exceptions import SchemaError, UnknownSchemaIdError
from schemas.framing import Framing, WireId
from schemas.registry.base import fingerprint_of
from schemas.registry.config import RegistryKind
from schemas.registry.exceptions import RegistrationRefusedError, RegistryUnavailableError
from schemas.registry.models import RegisteredSchema
from sluice.config import AwsSettings

#: Glue's names for Schema Registry's compatibility levels.
GLUE_COMPATIBILITY: dict[CompatibilityLevel, str] = {
    CompatibilityLevel.NONE: "NONE",
    CompatibilityLevel.BACKWARD: "BACKWARD",
    CompatibilityLevel.BACKWARD_TRANSITIVE: "BACKWARD_ALL",
    CompatibilityLevel.FORWARD: "FORWARD",
    CompatibilityLevel.FORWARD_TRANSITIVE: "FORWARD_ALL",
    CompatibilityLevel.FULL: "FULL",
    CompatibilityLevel.FULL_TRANSITIVE: "FULL_ALL",
}

_NOT_FOUND = frozenset({"EntityNotFoundException"})
#: Client errors that mean "ask again later", not "this id is bad".
_RETRYABLE = frozenset(
    {
        "ThrottlingException",
        "InternalServiceException",
        "ConcurrentModificationException",
        "ServiceUnavailableException",
        "AccessDeniedException",  # a role without glue:GetSchemaVersion: fix IAM, retry
        "RequestTimeout",
    }
)


class GlueRegistry:
    """One Glue registry. The boto3 client is made on first use (or passed in)."""

    def __init__(
        self,
        registry_name: str,
        *,
        client: Any = None,
        aws: AwsSettings | None = None,
        poll_seconds: float = 0.5,
        wait_seconds: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.registry_name = registry_name
        self._client = client
        self._aws = aws
        self._poll = poll_seconds
        self._wait = wait_seconds
        self._sleep = sleep

    @property
    def kind(self) -> RegistryKind:
        """``glue``."""
        return RegistryKind.GLUE

    @property
    def framing(self) -> Framing:
        """Glue: schema version UUIDs."""
        return Framing.GLUE

    def client(self) -> Any:
        """The boto3 ``glue`` client (made on first use)."""
        if self._client is None:
            self._client = (self._aws or AwsSettings()).client("glue")
        return self._client

    def _schema_id(self, name: str) -> dict[str, str]:
        return {"RegistryName": self.registry_name, "SchemaName": name}

    def _call(self, operation: str, **params: Any) -> Any:
        try:
            return getattr(self.client(), operation)(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _RETRYABLE:
                raise RegistryUnavailableError(
                    f"Glue {operation} failed: {code}", code="registry_unavailable"
                ) from exc
            raise
        except BotoCoreError as exc:  # connection refused, timeouts, DNS
            raise RegistryUnavailableError(
                f"Glue Schema Registry unreachable ({type(exc).__name__})"
            ) from exc

    @staticmethod
    def _code(exc: ClientError) -> str:
        return str(exc.response.get("Error", {}).get("Code", ""))

    def fetch(self, wire_id: WireId) -> RegisteredSchema:
        """``GetSchemaVersion`` by schema version id."""
        if not isinstance(wire_id, uuid.UUID):
            raise UnknownSchemaIdError(
                f"schema id {wire_id} is a Confluent id; Glue names versions by UUID"
            )
        try:
            found = self._call("get_schema_version", SchemaVersionId=str(wire_id))
        except ClientError as exc:
            if self._code(exc) in _NOT_FOUND or self._code(exc) == "InvalidInputException":
                raise UnknownSchemaIdError(
                    f"unknown schema id {wire_id}: Glue Schema Registry has no such schema version"
                ) from exc
            raise RegistryUnavailableError(
                f"Glue GetSchemaVersion failed: {self._code(exc)}"
            ) from exc
        if found.get("Status") != "AVAILABLE":
            raise UnknownSchemaIdError(
                f"Glue schema version {wire_id} is {found.get('Status')}, not AVAILABLE"
            )
        name = str(found.get("SchemaArn", "")).rsplit("/", 1)[-1] or None
        return RegisteredSchema(
            wire_id, found["SchemaDefinition"], name, found.get("VersionNumber")
        )

    def find(self, name: str, definition: str) -> WireId | None:
        """The version of schema ``name`` with this definition; None when absent.

        ``GetSchemaByDefinition`` first (AWS compares canonical forms there; moto
        compares the text), then, on a miss, the versions of ``name`` compared by
        canonical fingerprint, so a producer's differently formatted copy of the same
        schema counts as registered.
        """
        try:
            found = self._call(
                "get_schema_by_definition",
                SchemaId=self._schema_id(name),
                SchemaDefinition=definition,
            )
        except ClientError as exc:
            if self._code(exc) not in _NOT_FOUND:
                raise RegistryUnavailableError(
                    f"Glue GetSchemaByDefinition failed: {self._code(exc)}"
                ) from exc
        else:
            if found.get("Status") == "AVAILABLE":
                return uuid.UUID(found["SchemaVersionId"])
        return self._find_by_fingerprint(name, fingerprint_of(definition))

    def _find_by_fingerprint(self, name: str, wanted: str) -> WireId | None:
        # GetSchema + GetSchemaVersion by number (moto has no ListSchemaVersions).
        try:
            schema = self._call("get_schema", SchemaId=self._schema_id(name))
        except ClientError as exc:
            if self._code(exc) in _NOT_FOUND:
                return None
            raise RegistryUnavailableError(f"Glue GetSchema failed: {self._code(exc)}") from exc
        for number in range(int(schema.get("LatestSchemaVersion") or 0), 0, -1):
            try:
                version = self._call(
                    "get_schema_version",
                    SchemaId=self._schema_id(name),
                    SchemaVersionNumber={"VersionNumber": number},
                )
            except ClientError as exc:
                if self._code(exc) in _NOT_FOUND:
                    continue  # deleted
                raise RegistryUnavailableError(
                    f"Glue GetSchemaVersion failed: {self._code(exc)}"
                ) from exc
            if version.get("Status") != "AVAILABLE":
                continue
            try:
                if fingerprint_of(version["SchemaDefinition"]) == wanted:
                    return uuid.UUID(version["SchemaVersionId"])
            except SchemaError:
                continue  # not an Avro schema: not the one wanted
        return None

    def set_compatibility(self, name: str, level: CompatibilityLevel) -> None:
        """``UpdateSchema`` with the level, when the schema exists (new ones get it at
        ``CreateSchema``)."""
        try:
            current = self._call("get_schema", SchemaId=self._schema_id(name))
        except ClientError as exc:
            if self._code(exc) in _NOT_FOUND:
                return
            raise
        wanted = GLUE_COMPATIBILITY[level]
        if current.get("Compatibility") != wanted:
            self._call("update_schema", SchemaId=self._schema_id(name), Compatibility=wanted)

    def register(self, name: str, definition: str, level: CompatibilityLevel) -> WireId:
        """``RegisterSchemaVersion`` (``CreateRegistry``/``CreateSchema`` when new), then
        wait until Glue decided."""
        try:
            answer = self._call(
                "register_schema_version",
                SchemaId=self._schema_id(name),
                SchemaDefinition=definition,
            )
        except ClientError as exc:
            if self._code(exc) not in _NOT_FOUND:
                raise self._refused(exc) from exc
            answer = self._create_schema(name, definition, level)
        version_id = str(answer["SchemaVersionId"])
        status = answer.get("Status") or answer.get("SchemaVersionStatus")
        deadline = time.monotonic() + self._wait
        while status == "PENDING" and time.monotonic() < deadline:
            self._sleep(self._poll)
            status = self._call("get_schema_version", SchemaVersionId=version_id).get("Status")
        if status != "AVAILABLE":
            reason = (
                f"Glue marked the new version {status} (its compatibility check at "
                f"{GLUE_COMPATIBILITY[level]} failed)"
                if status == "FAILURE"
                else f"Glue left the new version {status}"
            )
            raise RegistrationRefusedError(reason, reason=reason)
        return uuid.UUID(version_id)

    def _create_schema(self, name: str, definition: str, level: CompatibilityLevel) -> Any:
        try:
            self._call("create_registry", RegistryName=self.registry_name)
        except ClientError as exc:
            if self._code(exc) != "AlreadyExistsException":
                raise self._refused(exc) from exc
        try:
            return self._call(
                "create_schema",
                RegistryId={"RegistryName": self.registry_name},
                SchemaName=name,
                DataFormat="AVRO",
                Compatibility=GLUE_COMPATIBILITY[level],
                SchemaDefinition=definition,
            )
        except ClientError as exc:
            raise self._refused(exc) from exc

    def _refused(self, exc: ClientError) -> RegistrationRefusedError:
        error = exc.response.get("Error", {})
        reason = f"{error.get('Code', 'ClientError')}: {error.get('Message', '')}".strip()
        return RegistrationRefusedError(reason, reason=reason)
