"""Transform throughput: the Firehose handler against a bare decode-and-serialize loop.

Same records, same run. For Avro input the bare loop is fastavro schemaless decode +
a JSON dump; for JSON input a JSON parse + a JSON dump. The bare loops use the same
JSON library as the handler (:mod:`firehose_transforms.jsonio`: orjson when it is
installed; the run repeats with the standard library on both sides, for reference),
so the ratio measures the handler's own work, not a faster JSON library. The handler does the
whole contract on top (base64 in and out, framing and schema lookup, validation of
JSON, cleaning, PII masking, business rules, duplicate check, NDJSON, partition keys,
response-size accounting). Target: handler >= 0.6 x the bare loop.

Rates are records per CPU-second of this process (``time.process_time``). The two
loops run alternately ``--repeats`` times; each handler run is compared with the bare
run just before it (both saw the same machine load) and the median of those ratios
is reported, with the best rate of each loop.

With ``--registry glue`` (moto's in-process Glue) or ``--registry confluent``
(confluent-kafka's ``MockSchemaRegistryClient``) the Avro values carry that registry's
framing and ids, resolved by the handler through a registry resolver: the first value
of each schema version asks the registry, every other one is a cache hit (the number
of registry calls is printed). The bare loop slices the same header off.

Run: ``.venv/bin/python benchmarks/transform.py [--records 20000] [--batch 500]
[--registry catalogue|glue|confluent]``
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gc
import io
import json
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import fastavro

from firehose_transforms import jsonio
from firehose_transforms.base import Transformer
from firehose_transforms.config import TransformSettings
from schemas import catalogue, codec
from schemas.config import PiiSettings
from schemas.registry import RegistryKind, SchemaResolver, naming_for, register_catalogue

TARGET = 0.6


def realistic_transaction(i: int) -> dict[str, Any]:
    event = codec.example_event("financial-transaction")
    event["event_id"] = str(uuid.uuid4())
    event["transaction_id"] = f"txn-{i:08d}"
    event["account_id"] = f"acc-{i % 5000:05d}"
    event["amount"] = f"{(i % 100000) / 100:.2f}"
    event["metadata"] = {"terminal": f"T-{i % 97}", "region": "eu-west-1", "batch": str(i // 1000)}
    return event


def firehose_events(payloads: list[bytes], batch: int) -> list[dict[str, Any]]:
    events = []
    for start in range(0, len(payloads), batch):
        chunk = payloads[start : start + batch]
        events.append(
            {
                "invocationId": str(uuid.uuid4()),
                "sourceKinesisStreamArn": "arn:aws:kinesis:us-east-1:000000000000:stream/bench",
                "deliveryStreamArn": "arn:aws:firehose:us-east-1:000000000000:deliverystream/bench",
                "region": "us-east-1",
                "records": [
                    {
                        "recordId": f"shardId-000000000000:{start + i}",
                        "approximateArrivalTimestamp": 1_763_781_605_000,
                        "data": base64.b64encode(p).decode("ascii"),
                        "kinesisRecordMetadata": {
                            "shardId": "shardId-000000000000",
                            "partitionKey": "acc",
                            "approximateArrivalTimestamp": 1_763_781_605_000,
                            "sequenceNumber": str(start + i),
                            "subsequenceNumber": 0,
                        },
                    }
                    for i, p in enumerate(chunk)
                ],
            }
        )
    return events


def _line_dump() -> Callable[[Any], bytes]:
    """A compact JSON line of any record, with the library the handler uses now."""
    if jsonio.backend() == "orjson":
        import orjson

        option = orjson.OPT_APPEND_NEWLINE

        def orjson_line(obj: Any) -> bytes:
            line: bytes = orjson.dumps(obj, default=str, option=option)
            return line

        return orjson_line
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode

    def std_line(obj: Any) -> bytes:
        return (encode(obj) + "\n").encode("utf-8")

    return std_line


def rate(run: Callable[[], int]) -> float:
    # CPU time of this process: the two cores are shared with other work, and time
    # spent descheduled would otherwise land on whichever loop happened to run then.
    started = time.process_time()
    count = run()
    return count / (time.process_time() - started)


def compare(
    bare: Callable[[], int], handler: Callable[[], int], repeats: int
) -> tuple[list[float], list[float]]:
    """Alternate the two loops so both see the same machine load (shared cores)."""
    bare_rates: list[float] = []
    handler_rates: list[float] = []
    for _ in range(repeats):
        bare_rates.append(rate(bare))
        handler_rates.append(rate(handler))
    return bare_rates, handler_rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500, help="records per invocation")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument(
        "--registry", choices=["catalogue", "glue", "confluent"], default="catalogue"
    )
    args = parser.parse_args()
    with registry_resolver(args.registry) as resolver:
        return run(args, resolver)


@contextlib.contextmanager
def registry_resolver(kind: str) -> Iterator[SchemaResolver | None]:
    """A resolver over a stand-in of the registry ``kind`` holding every version."""
    if kind == "catalogue":
        yield None
        return
    if kind == "confluent":
        from confluent_kafka.schema_registry._sync.mock_schema_registry_client import (
            MockSchemaRegistryClient,
        )

        from schemas.registry.confluent import ConfluentRegistry

        registry: Any = ConfluentRegistry(client=MockSchemaRegistryClient({"url": "mock://b"}))
        naming = naming_for(RegistryKind.CONFLUENT)
        register_catalogue(registry, catalogue(), naming)
        yield SchemaResolver(registry, catalogue(), naming)
        return
    import os

    import boto3
    from moto import mock_aws

    from schemas.registry.glue import GlueRegistry

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    with mock_aws():
        registry = GlueRegistry("bench", client=boto3.client("glue", region_name="us-east-1"))
        naming = naming_for(RegistryKind.GLUE)
        register_catalogue(registry, catalogue(), naming)
        yield SchemaResolver(registry, catalogue(), naming)


def run(args: argparse.Namespace, resolver: SchemaResolver | None) -> int:
    """The paired runs; exit 0 when every ratio meets the target."""

    events = [realistic_transaction(i) for i in range(args.records)]
    parsed = [codec.parse_event("financial-transaction", e) for e in events]
    if resolver is None:
        avro = [codec.encode("financial-transaction", r, catalogue=catalogue()) for r in parsed]
    else:
        avro = [codec.encode("financial-transaction", r, registry=resolver) for r in parsed]
    header = 18 if avro[0][:1] == b"\x03" else 5
    jsons = [json.dumps(e).encode("utf-8") for e in events]
    schema = catalogue().latest("financial-transaction").parsed
    if resolver is None:  # the catalogue's fixed ids, the default
        reader = None
    else:  # a fresh resolver: the handler's first value of a version asks the registry
        reader = SchemaResolver(resolver.registry, catalogue(), resolver.naming)
    transformer = Transformer(
        TransformSettings(), pii=PiiSettings(pii_hmac_key="benchmark-key"), registry=reader
    )

    def bare_avro() -> int:
        # Avro records hold Decimal and datetime values: the same dump the handler's
        # library offers for them (``default=str``), one line per record.
        dump = _line_dump()
        for payload in avro:
            dump(fastavro.schemaless_reader(io.BytesIO(payload[header:]), schema))
        return len(avro)

    def bare_json() -> int:
        loads, dump = jsonio.loads, jsonio.dumps_line
        for payload in jsons:
            dump(loads(payload))
        return len(jsons)

    def handler(batches: list[dict[str, Any]]) -> Callable[[], int]:
        def run() -> int:
            count = 0
            for event in batches:
                response = transformer.handle(event)
                count += len(response["records"])
            return count

        return run

    avro_events = firehose_events(avro, args.batch)
    json_events = firehose_events(jsons, args.batch)
    # sanity: every record is Ok
    for event in (avro_events[0], json_events[0]):
        results = {r["result"] for r in transformer.handle(event)["records"]}
        assert results == {"Ok"}, results

    # The inputs (tens of thousands of dicts) are not part of the measured work: keep
    # the cyclic GC from rescanning them during either loop.
    gc.collect()
    gc.freeze()
    print(
        f"records: {args.records}, {args.batch} per invocation, {args.repeats} paired runs, "
        f"schema ids from the {args.registry} registry"
    )
    backends = [jsonio.backend()] + (["json"] if jsonio.backend() != "json" else [])
    ok = True
    for backend in backends:
        jsonio.use_stdlib(backend == "json")
        for name, bare, batches in (
            ("avro", bare_avro, avro_events),
            ("json", bare_json, json_events),
        ):
            bare_rates, handler_rates = compare(bare, handler(batches), args.repeats)
            bare_best, handler_best = max(bare_rates), max(handler_rates)
            # each handler run against the bare run just before it (same machine load)
            ratio = statistics.median(h / b for b, h in zip(bare_rates, handler_rates, strict=True))
            if backend == backends[0]:
                ok &= ratio >= TARGET
            print(
                f"{name:4s} input, handler JSON via {backend:6s}: "
                f"bare loop {bare_best:>8,.0f} rec/s, handler {handler_best:>8,.0f} rec/s (best), "
                f"ratio {ratio:.2f} (median of {args.repeats} paired runs; target >= {TARGET})"
            )
    jsonio.use_stdlib(False)
    if reader is not None:
        print(f"registry calls made by the handler's resolver: {reader.lookups} (cached after)")
    print(f"{'PASS' if ok else 'BELOW TARGET'} (judged with the default backend, {backends[0]})")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
