"""The catalogue as a registry: ids from ``schemas.catalogue.SCHEMA_IDS``, no I/O.

Today's behaviour and the default: values in the Confluent framing with the fixed ids
1001, 1002, 2001, 2002. It holds exactly the catalogue; it cannot register anything
else (a new version gets its id by appending to ``SCHEMA_IDS``).
"""

from __future__ import annotations

from schemas.catalogue import SchemaCatalogue
from schemas.compatibility import CompatibilityLevel
from schemas.exceptions import SchemaError, UnknownSchemaIdError
from schemas.framing import Framing, WireId
from schemas.registry.base import definition_of, fingerprint_of
from schemas.registry.config import RegistryKind
from schemas.registry.exceptions import RegistrationRefusedError
from schemas.registry.models import RegisteredSchema


class CatalogueRegistry:
    """A read-only registry over a :class:`~schemas.catalogue.SchemaCatalogue`."""

    def __init__(self, catalogue: SchemaCatalogue) -> None:
        self._catalogue = catalogue
        self._by_fingerprint = {sv.fingerprint: sv for sv in catalogue}

    @property
    def kind(self) -> RegistryKind:
        """``catalogue``."""
        return RegistryKind.CATALOGUE

    @property
    def framing(self) -> Framing:
        """Confluent: the fixed ids are 32-bit integers."""
        return Framing.CONFLUENT

    def fetch(self, wire_id: WireId) -> RegisteredSchema:
        """The catalogue version with schema id ``wire_id``."""
        if not isinstance(wire_id, int):
            raise UnknownSchemaIdError(
                f"schema version id {wire_id} is a Glue id; the catalogue has integer ids only"
            )
        try:
            sv = self._catalogue.by_id(wire_id)
        except SchemaError:
            raise UnknownSchemaIdError(f"unknown schema id {wire_id}") from None
        return RegisteredSchema(wire_id, definition_of(sv), sv.event_type, sv.version)

    def find(self, name: str, definition: str) -> WireId | None:
        """The fixed id of the catalogue version with that canonical schema."""
        sv = self._by_fingerprint.get(fingerprint_of(definition))
        return None if sv is None else sv.schema_id

    def set_compatibility(self, name: str, level: CompatibilityLevel) -> None:
        """Nothing to set: ``sluice schemas check`` is the catalogue's compatibility gate."""

    def register(self, name: str, definition: str, level: CompatibilityLevel) -> WireId:
        """Refused: catalogue ids come from ``SCHEMA_IDS``, never from registration."""
        found = self.find(name, definition)
        if found is not None:
            return found
        reason = "the catalogue assigns ids from schemas.catalogue.SCHEMA_IDS only"
        raise RegistrationRefusedError(f"catalogue registry: {reason}", reason=reason)
