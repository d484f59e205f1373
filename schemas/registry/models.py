"""Value types of the schema registry boundary."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from schemas.framing import WireId


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    """A schema as a registry holds it.

    Attributes:
        wire_id: the id the registry assigned (Confluent schema id or Glue version UUID).
        definition: the schema text the registry stores (Avro JSON).
        name: the subject (Confluent) or schema name (Glue), when the registry says.
        version: the registry's version number under ``name``, when it says.
    """

    wire_id: WireId
    definition: str
    name: str | None = None
    version: int | None = None


class RegistrationStatus(StrEnum):
    """What ``register`` did with one schema version."""

    REGISTERED = "registered"
    EXISTING = "existing"
    WOULD_REGISTER = "would_register"


@dataclass(frozen=True, slots=True)
class RegistrationResult:
    """The outcome for one catalogue version."""

    event_type: str
    version: int
    name: str
    status: RegistrationStatus
    wire_id: WireId | None
