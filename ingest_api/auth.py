"""API keys: how they look, how they are stored (hashed), and who they let in.

A key is ``slk_<key_id>_<secret>`` (``secrets.token_urlsafe``); only
``sha256:<hex of SHA-256 of the whole key>`` is stored, with the tenant and event types
the key may send (see :class:`ApiKeyRecord`). API keys are long random strings, so a
single SHA-256 is enough to protect them at rest (no password stretching needed).

A presented key is found by its ``key_id`` and checked with
:func:`hmac.compare_digest` on the hashes (constant time). The local key
(``SLUICE_API_KEY``, written by ``sluice stack up``) may be any string; it may send
every tenant and every event type.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ingest_api.config import ApiSettings
from ingest_api.exceptions import KeyStoreError
from sluice.config import EventType

KEY_PREFIX = "slk_"
HASH_PREFIX = "sha256:"
ALL = "*"
LOCAL_KEY_ID = "local"


def hash_key(key: str) -> str:
    """The stored form of ``key``: ``sha256:<hex>``."""
    return HASH_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_id_of(key: str) -> str | None:
    """The ``key_id`` inside a ``slk_<key_id>_<secret>`` key, or ``None``."""
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    if not sep or not key_id or not secret:
        return None
    return key_id


class ApiKeyRecord(BaseModel):
    """One stored key: its hash and what it may send (the keys file format).

    ``event_types`` lists event types (``financial-transaction``, ``insurance-claim``)
    or ``"*"``; ``tenant_id`` is one tenant or ``"*"``; ``rate_limit`` is requests per
    second (``null``: the server's default, ``SLUICE_API_DEFAULT_RATE_LIMIT``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")
    hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    tenant_id: str = Field(min_length=1)
    event_types: tuple[str, ...] = Field(min_length=1)
    rate_limit: float | None = Field(default=None, gt=0)

    @field_validator("event_types")
    @classmethod
    def _known_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = {e.value for e in EventType}
        for item in value:
            if item != ALL and item not in known:
                raise ValueError(f"unknown event type {item!r}; known: {sorted(known)} or '*'")
        return value


@dataclass(frozen=True, slots=True)
class Principal:
    """Who sent a request: the key's id, tenant, allowed types and rate limit."""

    key_id: str
    tenant_id: str
    event_types: frozenset[str]
    rate_limit: float | None

    def may_send_type(self, event_type: str) -> bool:
        """True when the key may send ``event_type``."""
        return ALL in self.event_types or event_type in self.event_types

    def may_send_tenant(self, tenant_id: str) -> bool:
        """True when the key may send events of ``tenant_id``."""
        if self.tenant_id == ALL:
            return True
        # compare_digest refuses non-ASCII str: compare the UTF-8 bytes (surrogates too).
        return hmac.compare_digest(
            self.tenant_id.encode("utf-8", "surrogatepass"),
            tenant_id.encode("utf-8", "surrogatepass"),
        )


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly made key: the secret (shown once) and the record to store."""

    key: str
    record: ApiKeyRecord


def generate_key(
    tenant_id: str,
    event_types: Iterable[str],
    *,
    key_id: str | None = None,
    rate_limit: float | None = None,
) -> NewKey:
    """A new random key for ``tenant_id`` and its record (only the hash is stored)."""
    kid = key_id or secrets.token_hex(6)
    key = f"{KEY_PREFIX}{kid}_{secrets.token_urlsafe(32)}"
    record = ApiKeyRecord(
        key_id=kid,
        hash=hash_key(key),
        tenant_id=tenant_id,
        event_types=tuple(event_types),
        rate_limit=rate_limit,
    )
    return NewKey(key=key, record=record)


def parse_key_records(data: Any, *, source: str) -> list[ApiKeyRecord]:
    """Key records from parsed JSON: a list of records or ``{"keys": [...]}``."""
    items = data.get("keys") if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        raise KeyStoreError(f"{source}: expected a JSON list of key records or {{'keys': [...]}}")
    records: list[ApiKeyRecord] = []
    for position, item in enumerate(items):
        try:
            records.append(ApiKeyRecord.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise KeyStoreError(
                f"{source}: key record {position}: {where}: {first['msg']}"
            ) from exc
    return records


class KeyStore:
    """Resolves presented keys to :class:`Principal` objects.

    Args:
        records: the stored (hashed) key records.
        local_key: the local key (every tenant, every type), if any.
        default_rate_limit: requests/s of records without their own ``rate_limit``.
        local_rate_limit: requests/s of the local key (``None``: unlimited).
    """

    def __init__(
        self,
        records: Iterable[ApiKeyRecord] = (),
        *,
        local_key: str | None = None,
        default_rate_limit: float | None = None,
        local_rate_limit: float | None = None,
    ) -> None:
        self._by_id: dict[str, tuple[str, Principal]] = {}
        for record in records:
            if record.key_id in self._by_id or record.key_id == LOCAL_KEY_ID:
                raise KeyStoreError(f"duplicate or reserved key_id {record.key_id!r}")
            principal = Principal(
                key_id=record.key_id,
                tenant_id=record.tenant_id,
                event_types=frozenset(record.event_types),
                rate_limit=record.rate_limit if record.rate_limit else default_rate_limit,
            )
            self._by_id[record.key_id] = (record.hash, principal)
        self._local: tuple[str, Principal] | None = None
        if local_key:
            self._local = (
                hash_key(local_key),
                Principal(LOCAL_KEY_ID, ALL, frozenset({ALL}), local_rate_limit),
            )

    def __len__(self) -> int:
        return len(self._by_id) + (1 if self._local else 0)

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> KeyStore:
        """Records from ``SLUICE_API_KEYS_FILE`` and ``SLUICE_API_KEYS_JSON``, plus the
        local key ``SLUICE_API_KEY``."""
        records: list[ApiKeyRecord] = []
        if settings.api_keys_file is not None:
            path = Path(settings.api_keys_file)
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise KeyStoreError(f"cannot read keys file {path}: {exc}") from exc
            records += parse_key_records(data, source=str(path))
        if settings.api_keys_json is not None:
            try:
                data = json.loads(settings.api_keys_json.get_secret_value())
            except ValueError as exc:
                raise KeyStoreError(f"SLUICE_API_KEYS_JSON is not JSON: {exc}") from exc
            records += parse_key_records(data, source="SLUICE_API_KEYS_JSON")
        local = settings.api_key.get_secret_value() if settings.api_key else None
        return cls(
            records,
            local_key=local,
            default_rate_limit=settings.api_default_rate_limit,
            local_rate_limit=settings.api_local_key_rate_limit,
        )

    def authenticate(self, presented: str) -> Principal | None:
        """The principal of ``presented``, or ``None`` when it is not a known key.

        Hashes are compared with :func:`hmac.compare_digest`; the hash of the presented
        key is computed whether or not its ``key_id`` exists.
        """
        digest = hash_key(presented)
        found: Principal | None = None
        key_id = key_id_of(presented)
        stored = self._by_id.get(key_id) if key_id is not None else None
        if stored is not None and hmac.compare_digest(stored[0], digest):
            found = stored[1]
        if self._local is not None and hmac.compare_digest(self._local[0], digest):
            found = self._local[1]
        return found


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key from ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    if x_api_key:
        return x_api_key.strip() or None
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None
