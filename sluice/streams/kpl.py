"""KPL aggregation and deaggregation (the Kinesis Producer Library's record format).

An aggregated Kinesis record is ``MAGIC + AggregatedRecord (protobuf) + MD5(body)``.
The protobuf classes are built here from the format's message definitions (the
``messages.proto`` of awslabs/kinesis-aggregation), so reading an aggregate works in
any process whatever was imported before.

Deaggregation follows the KCL and the official deaggregator: every user record keeps
its own partition key and explicit hash key from the aggregate's tables and its
sub-sequence number; a record that is not an aggregate, fails the MD5 digest check or
cannot be parsed is passed on whole (whoever reads it decides its fate).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, EncodeError

MAGIC = b"\xf3\x89\x9a\xc2"
"""The first four bytes of a KPL-aggregated Kinesis record."""
DIGEST_SIZE = 16
MAX_RECORD_BYTES = 1024 * 1024
"""Kinesis's limit on one record's data plus partition key."""


def _message_classes() -> tuple[Any, Any]:
    """``AggregatedRecord`` and ``Record`` of the KPL format (proto2), in a private pool."""
    fdp = descriptor_pb2.FileDescriptorProto(
        name="sluice/streams/kpl_messages.proto", package="sluice.kpl", syntax="proto2"
    )
    field = descriptor_pb2.FieldDescriptorProto
    required, optional, repeated = field.LABEL_REQUIRED, field.LABEL_OPTIONAL, field.LABEL_REPEATED

    def add(
        message: Any, name: str, number: int, label: int, kind: int, type_name: str = ""
    ) -> None:
        f = message.field.add(name=name, number=number, label=label, type=kind)
        if type_name:
            f.type_name = type_name

    tag = fdp.message_type.add(name="Tag")
    add(tag, "key", 1, required, field.TYPE_STRING)
    add(tag, "value", 2, optional, field.TYPE_STRING)
    record = fdp.message_type.add(name="Record")
    add(record, "partition_key_index", 1, required, field.TYPE_UINT64)
    add(record, "explicit_hash_key_index", 2, optional, field.TYPE_UINT64)
    add(record, "data", 3, required, field.TYPE_BYTES)
    add(record, "tags", 4, repeated, field.TYPE_MESSAGE, ".sluice.kpl.Tag")
    aggregated = fdp.message_type.add(name="AggregatedRecord")
    add(aggregated, "partition_key_table", 1, repeated, field.TYPE_STRING)
    add(aggregated, "explicit_hash_key_table", 2, repeated, field.TYPE_STRING)
    add(aggregated, "records", 3, repeated, field.TYPE_MESSAGE, ".sluice.kpl.Record")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("sluice.kpl.AggregatedRecord")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("sluice.kpl.Record")),
    )


AggregatedRecord, _Record = _message_classes()


@dataclass(frozen=True, slots=True)
class UserRecord:
    """One user record of an aggregate, with its own keys from the aggregate's tables."""

    data: bytes
    partition_key: str
    explicit_hash_key: str | None
    sub_sequence: int


def is_aggregate(data: bytes) -> bool:
    """True when ``data`` starts like a KPL aggregate (the digest is not checked)."""
    return len(data) > len(MAGIC) + DIGEST_SIZE and data.startswith(MAGIC)


def deaggregate(data: bytes) -> list[UserRecord] | None:
    """The user records of a KPL aggregate, or ``None`` when ``data`` is to be passed on
    whole: not an aggregate, a digest that does not match, a body that does not parse,
    or a key index outside the aggregate's tables."""
    if not is_aggregate(data):
        return None
    body = data[len(MAGIC) : -DIGEST_SIZE]
    if hashlib.md5(body, usedforsecurity=False).digest() != data[-DIGEST_SIZE:]:
        return None
    aggregate = AggregatedRecord()
    try:
        aggregate.ParseFromString(body)
    except DecodeError:
        return None
    keys = aggregate.partition_key_table
    hash_keys = aggregate.explicit_hash_key_table
    out: list[UserRecord] = []
    for index, user in enumerate(aggregate.records):
        if user.partition_key_index >= len(keys):
            return None
        ehk: str | None = None
        if user.HasField("explicit_hash_key_index"):
            if user.explicit_hash_key_index >= len(hash_keys):
                return None
            ehk = hash_keys[user.explicit_hash_key_index]
        out.append(UserRecord(bytes(user.data), keys[user.partition_key_index], ehk, index))
    return out


def user_payloads(data: bytes) -> list[bytes]:
    """The payloads of an aggregate's user records, or ``[data]`` when passed on whole."""
    users = deaggregate(data)
    return [data] if users is None else [u.data for u in users]


def aggregate(records: Iterable[tuple[str, bytes, str | None]]) -> bytes:
    """One KPL aggregate of ``(partition_key, data, explicit_hash_key or None)`` records.

    Keys are stored once in the aggregate's tables, as the KPL does. The caller keeps
    the result within Kinesis's :data:`MAX_RECORD_BYTES`.

    Raises:
        ValueError: no records, or a record the format cannot hold.
    """
    message = AggregatedRecord()
    pk_index: dict[str, int] = {}
    ehk_index: dict[str, int] = {}
    for pk, data, ehk in records:
        user = message.records.add()
        if pk not in pk_index:
            pk_index[pk] = len(message.partition_key_table)
            message.partition_key_table.append(pk)
        user.partition_key_index = pk_index[pk]
        if ehk is not None:
            if ehk not in ehk_index:
                ehk_index[ehk] = len(message.explicit_hash_key_table)
                message.explicit_hash_key_table.append(ehk)
            user.explicit_hash_key_index = ehk_index[ehk]
        user.data = bytes(data)
    if not message.records:
        raise ValueError("an aggregate holds at least one user record")
    try:
        body: bytes = message.SerializeToString()
    except EncodeError as exc:
        raise ValueError(f"user records cannot be aggregated: {exc}") from exc
    return MAGIC + body + hashlib.md5(body, usedforsecurity=False).digest()
