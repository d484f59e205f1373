"""The schema registry boundary: the :class:`SchemaRegistry` protocol and its pure logic.

A registry assigns the ids written in front of every Avro body (a Confluent schema id,
or a Glue schema version UUID) and stores the schema text under a name (a Confluent
subject ``<topic>-value``, a Glue schema named after the stream). Implementations do
I/O only (``catalogue``, ``glue``, ``confluent``); everything else is here:

- :class:`SchemaResolver` maps a wire id to the catalogue version it was written with
  (by the Avro Parsing Canonical Form fingerprint of the registry's text) and a
  catalogue version to the header the API writes, each looked up once and kept in a
  bounded cache; ids the registry says do not exist are remembered for a while too.
- :func:`register_catalogue` registers every version in order, refusing a version
  that breaks the compatibility level before the registry is asked (moto's Glue and
  confluent-kafka's ``MockSchemaRegistryClient`` do not check compatibility; AWS Glue
  and Confluent do, and their refusals are reported the same way).

Failure kinds: :class:`~schemas.registry.exceptions.RegistryUnavailableError` is
retryable; :class:`~schemas.exceptions.UnknownSchemaIdError` (the id does not exist, or
names a schema this build's catalogue does not have) is fatal.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from fastavro.schema import fingerprint, to_parsing_canonical_form

from schemas.catalogue import SchemaCatalogue
from schemas.compatibility import CompatibilityLevel, check
from schemas.exceptions import SchemaError, UnknownSchemaIdError
from schemas.framing import Framing, WireId, confluent_header, glue_header
from schemas.models import SchemaVersion
from schemas.registry.config import RegistryKind
from schemas.registry.exceptions import RegistrationRefusedError, SchemaNotRegisteredError
from schemas.registry.models import RegisteredSchema, RegistrationResult, RegistrationStatus

logger = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")

Naming = Callable[[str], str]
"""Event type -> subject (Confluent) or schema name (Glue)."""

#: The level ``make check`` runs ``sluice schemas check`` at; registries are set to it.
ENFORCED_LEVEL = CompatibilityLevel.FULL_TRANSITIVE


class SchemaRegistry(Protocol):
    """Where schema ids come from. Implementations do I/O only, and none in ``__init__``.

    Every method raises :class:`~schemas.registry.exceptions.RegistryUnavailableError`
    when the registry cannot be asked.
    """

    @property
    def kind(self) -> RegistryKind:
        """Which registry this is."""
        ...

    @property
    def framing(self) -> Framing:
        """The framing whose header carries this registry's ids."""
        ...

    def fetch(self, wire_id: WireId) -> RegisteredSchema:
        """The schema registered under ``wire_id``.

        Raises:
            UnknownSchemaIdError: the registry has no such id.
        """
        ...

    def find(self, name: str, definition: str) -> WireId | None:
        """The id of ``definition`` under ``name``; None when it is not registered."""
        ...

    def set_compatibility(self, name: str, level: CompatibilityLevel) -> None:
        """Set the compatibility level of ``name`` (where ``name`` exists or can be set)."""
        ...

    def register(self, name: str, definition: str, level: CompatibilityLevel) -> WireId:
        """Register ``definition`` as the next version under ``name`` (created with
        ``level`` when new); the id of the registered version.

        Raises:
            RegistrationRefusedError: the registry refused it (its reason in the message).
        """
        ...


def definition_of(sv: SchemaVersion) -> str:
    """The schema text registered for a catalogue version (the ``.avsc`` document)."""
    return json.dumps(sv.schema, separators=(",", ":"), ensure_ascii=False)


def fingerprint_of(definition: str) -> str:
    """SHA-256 of the Parsing Canonical Form of a schema text (the registries' identity).

    Raises:
        SchemaError: the text is not an Avro schema.
    """
    try:
        document = json.loads(definition)
        return str(fingerprint(to_parsing_canonical_form(document), "SHA-256"))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise SchemaError(f"registry schema is not valid Avro JSON: {exc}") from exc


def stream_naming(names: Callable[[str], str], *, suffix: str = "") -> Naming:
    """A naming that appends ``suffix`` to the stream name of each event type
    (``-value`` gives Confluent's TopicNameStrategy; none gives Glue's default, the
    transport name)."""

    def name(event_type: str) -> str:
        return f"{names(event_type)}{suffix}"

    return name


class SchemaResolver:
    """Wire ids <-> catalogue versions through a registry, cached.

    Args:
        registry: where ids come from.
        catalogue: the versions this build can read and write.
        naming: event type -> subject or schema name.
        cache_size: wire ids remembered (and, separately, as many misses).
        miss_ttl: seconds an id the registry does not know is answered from memory.
        compress: Glue only: zlib-compress the bodies written (compression byte 5).
    """

    def __init__(
        self,
        registry: SchemaRegistry,
        catalogue: SchemaCatalogue,
        naming: Naming,
        *,
        cache_size: int = 1024,
        miss_ttl: float = 60.0,
        compress: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        if compress and registry.framing is not Framing.GLUE:
            raise ValueError("only the Glue framing has compression")
        self.registry = registry
        self.catalogue = catalogue
        self.naming = naming
        self.cache_size = cache_size
        self.miss_ttl = miss_ttl
        self.compress = compress
        self._clock = clock
        self._by_fingerprint = {sv.fingerprint: sv for sv in catalogue}
        self._writers: dict[WireId, SchemaVersion] = {}
        self._misses: dict[WireId, float] = {}
        self._headers: dict[tuple[str, int], bytes] = {}
        self._ids: dict[tuple[str, int], WireId] = {}
        # Hits read the dicts without it; inserts and evictions (misses only) take it.
        self._lock = threading.Lock()
        self.lookups = 0
        """Registry calls made (fetch or find): what the cache saves."""

    @property
    def framing(self) -> Framing:
        """The framing the registry's ids travel in."""
        return self.registry.framing

    # -- reading ---------------------------------------------------------------------

    def writer(self, wire_id: WireId) -> SchemaVersion:
        """The catalogue version a value framed with ``wire_id`` was written with.

        Raises:
            UnknownSchemaIdError: the registry has no such id, or its schema is not in
                this build's catalogue (fatal).
            RegistryUnavailableError: the registry cannot be asked now (retryable).
        """
        sv = self._writers.get(wire_id)
        if sv is not None:
            return sv
        return self._resolve(wire_id)

    def _resolve(self, wire_id: WireId) -> SchemaVersion:
        until = self._misses.get(wire_id)
        if until is not None:
            if self._clock() < until:
                raise UnknownSchemaIdError(
                    f"unknown schema id {wire_id}: the {self.registry.kind} registry has none"
                )
            with self._lock:
                self._misses.pop(wire_id, None)
        self.lookups += 1
        try:
            registered = self.registry.fetch(wire_id)
            sv = self._by_fingerprint.get(fingerprint_of(registered.definition))
        except (UnknownSchemaIdError, SchemaError) as exc:
            self._remember_miss(wire_id)
            if isinstance(exc, UnknownSchemaIdError):
                raise
            raise UnknownSchemaIdError(
                f"unknown schema id {wire_id}: the {self.registry.kind} registry's schema "
                f"is unusable: {exc.message}"
            ) from exc
        if sv is None:
            self._remember_miss(wire_id)
            where = f"{registered.name} v{registered.version}" if registered.name else "it"
            raise UnknownSchemaIdError(
                f"unknown schema id {wire_id}: the {self.registry.kind} registry's schema "
                f"({where}) is not a version in this build's catalogue; deploy readers with "
                "that version first"
            )
        with self._lock:
            _bounded_put(self._writers, wire_id, sv, self.cache_size)
        return sv

    def _remember_miss(self, wire_id: WireId) -> None:
        if self.miss_ttl > 0:
            with self._lock:
                until = self._clock() + self.miss_ttl
                _bounded_put(self._misses, wire_id, until, self.cache_size)

    # -- writing ---------------------------------------------------------------------

    def wire_id(self, sv: SchemaVersion) -> WireId:
        """The id the registry assigned to a catalogue version (looked up once).

        Raises:
            SchemaNotRegisteredError: the registry does not hold it.
            RegistryUnavailableError: the registry cannot be asked now.
        """
        key = (sv.event_type, sv.version)
        found = self._ids.get(key)
        if found is not None:
            return found
        name = self.naming(sv.event_type)
        self.lookups += 1
        found = self.registry.find(name, definition_of(sv))
        if found is None:
            raise SchemaNotRegisteredError(
                f"{self.registry.kind} registry has no {sv.event_type} v{sv.version} under "
                f"{name!r}; run `sluice schemas register`"
            )
        with self._lock:
            self._ids[key] = found
            # Values this process writes are read back without asking the registry again.
            _bounded_put(self._writers, found, sv, self.cache_size)
        return found

    def header(self, sv: SchemaVersion) -> bytes:
        """The frame header for values of ``sv`` (Glue: with the compression byte)."""
        key = (sv.event_type, sv.version)
        header = self._headers.get(key)
        if header is None:
            wire_id = self.wire_id(sv)
            header = (
                glue_header(wire_id, compressed=self.compress)
                if isinstance(wire_id, uuid.UUID)
                else confluent_header(wire_id)
            )
            self._headers[key] = header
        return header

    def frame_body(self, header: bytes, body: bytes | bytearray) -> bytes:
        """``header`` + ``body``, the body zlib-compressed when this resolver compresses."""
        if self.compress:
            return header + zlib.compress(bytes(body))
        return header + bytes(body)

    def require(self, versions: Iterable[SchemaVersion] | None = None) -> None:
        """Look up every version (default: the whole catalogue) now; fail naming every
        version the registry lacks. For startup: a missing version fails there, not on
        the first event that needs it.

        Raises:
            SchemaNotRegisteredError: one or more versions are not registered.
            RegistryUnavailableError: the registry cannot be asked now.
        """
        missing: list[str] = []
        for sv in versions if versions is not None else self.catalogue:
            try:
                self.header(sv)
            except SchemaNotRegisteredError:
                missing.append(f"{sv.event_type} v{sv.version} (as {self.naming(sv.event_type)!r})")
        if missing:
            raise SchemaNotRegisteredError(
                f"the {self.registry.kind} registry lacks {', '.join(missing)}; "
                "run `sluice schemas register`"
            )


def _bounded_put(cache: dict[K, V], key: K, value: V, size: int) -> None:
    """Insert, evicting the oldest entries beyond ``size`` (insertion order); callers
    hold the resolver's lock."""
    cache[key] = value
    while len(cache) > size:
        del cache[next(iter(cache))]


# -- registration ----------------------------------------------------------------------


def register_catalogue(
    registry: SchemaRegistry,
    catalogue: SchemaCatalogue,
    naming: Naming,
    *,
    level: CompatibilityLevel = ENFORCED_LEVEL,
    dry_run: bool = False,
    event_types: Iterable[str] | None = None,
) -> list[RegistrationResult]:
    """Register every version of every event type, oldest first; idempotent.

    A version already registered (same canonical schema under the same name) is
    ``existing``. Every version is checked at ``level`` against the earlier ones (the
    previous one, or all of them for the ``_TRANSITIVE`` levels) before the registry is
    asked, then a new one is registered; unless ``dry_run``, each name's compatibility
    is set to ``level`` (a new Glue schema gets it at creation).
    ``dry_run`` asks the registry what exists and registers nothing.

    Raises:
        RegistrationRefusedError: a version breaks ``level``, or the registry refused
            it; names the schema, the version and the reason. Versions before it stay
            registered (a rerun continues from there).
    """
    results: list[RegistrationResult] = []
    kind = registry.kind.value
    for event_type in event_types if event_types is not None else catalogue.event_types():
        name = naming(event_type)
        versions = catalogue.versions(event_type)
        if not dry_run:  # also on a rerun: a level changed by hand is set back
            registry.set_compatibility(name, level)
        for index, sv in enumerate(versions):
            definition = definition_of(sv)
            # Checked even when already registered: a registry set to a laxer level (or
            # the catalogue itself) must not let a break through on a rerun.
            earlier = versions[:index] if level.transitive else versions[max(0, index - 1) : index]
            problems = [
                f"v{old.version}: {problem}"
                for old in earlier
                for problem in check(sv.schema, old.schema, level)
            ]
            if problems:
                reason = f"incompatible at {level.value}: " + "; ".join(problems)
                raise RegistrationRefusedError(
                    f"{kind} registry: {name} ({event_type}) version {sv.version} refused: "
                    f"{reason}",
                    event_type=event_type,
                    version=sv.version,
                    registry=kind,
                    reason=reason,
                )
            existing = registry.find(name, definition)
            if existing is not None:
                results.append(
                    RegistrationResult(
                        event_type, sv.version, name, RegistrationStatus.EXISTING, existing
                    )
                )
                continue
            if dry_run:
                results.append(
                    RegistrationResult(
                        event_type, sv.version, name, RegistrationStatus.WOULD_REGISTER, None
                    )
                )
                continue
            try:
                wire_id = registry.register(name, definition, level)
            except RegistrationRefusedError as exc:
                raise RegistrationRefusedError(
                    f"{kind} registry: {name} ({event_type}) version {sv.version} refused: "
                    f"{exc.reason}",
                    event_type=event_type,
                    version=sv.version,
                    registry=kind,
                    reason=exc.reason,
                ) from exc
            logger.info("registered %s v%d under %s: %s", event_type, sv.version, name, wire_id)
            results.append(
                RegistrationResult(
                    event_type, sv.version, name, RegistrationStatus.REGISTERED, wire_id
                )
            )
    return results
