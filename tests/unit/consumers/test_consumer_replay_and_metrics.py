from __future__ import annotations

import json
from pathlib import Path

import pytest

from consumers.exceptions import ReplayRefusedError
from consumers.metrics import ConsumerMetrics, batch_emf, build_emf
from consumers.models import BatchOutcome
from consumers.replay import (
    ReplayTarget,
    TargetKind,
    kinesis_target_checkpoint,
    load_offsets_file,
    parse_offsets,
    parse_timestamp,
    plan_kafka,
)
from sluice.streams.models import PartitionKey

TP = PartitionKey("t", "0")
TP1 = PartitionKey("t", "1")


def test_plan_kafka_counts_records_to_reread() -> None:
    rows = plan_kafka({TP: 100, TP1: None}, {TP: 40, TP1: 0}, {TP: (10, 120), TP1: (5, 50)})
    assert [(r.current, r.target, r.records_to_reread) for r in rows] == [
        ("100", "40", 60),
        ("none", "5", 0),  # clamped to the low watermark; never read yet
    ]
    forward = plan_kafka({TP: 10}, {TP: 120}, {TP: (0, 100)})
    assert (forward[0].target, forward[0].records_to_reread) == ("100", 0)


def test_parse_timestamp() -> None:
    assert parse_timestamp("1700000000000") == 1_700_000_000_000
    assert parse_timestamp("2023-11-14T22:13:20Z") == 1_700_000_000_000
    assert parse_timestamp("2023-11-14T23:13:20+01:00") == 1_700_000_000_000
    with pytest.raises(ReplayRefusedError):
        parse_timestamp("2023-11-14T22:13:20")
    with pytest.raises(ReplayRefusedError):
        parse_timestamp("yesterday")


def test_offsets_file(tmp_path: Path) -> None:
    path = tmp_path / "o.json"
    path.write_text(json.dumps({"t": {"0": 5, "1": "7"}}))
    assert load_offsets_file(path) == {TP: 5, TP1: 7}
    with pytest.raises(ReplayRefusedError):
        parse_offsets({"t": {"0": -1}})
    with pytest.raises(ReplayRefusedError):
        parse_offsets([1])
    with pytest.raises(ReplayRefusedError):
        load_offsets_file(tmp_path / "missing.json")


def test_kinesis_target_checkpoints() -> None:
    assert kinesis_target_checkpoint("s", "st", ReplayTarget(TargetKind.EARLIEST)) == "TRIM_HORIZON"
    assert kinesis_target_checkpoint("s", "st", ReplayTarget(TargetKind.LATEST)) == "LATEST"
    ts = ReplayTarget(TargetKind.TIMESTAMP, timestamp_ms=123)
    assert kinesis_target_checkpoint("s", "st", ts) == "AT_TIMESTAMP:123"
    offs = ReplayTarget(TargetKind.OFFSETS, offsets={PartitionKey("st", "s"): 99})
    assert kinesis_target_checkpoint("s", "st", offs) == "AT_SEQUENCE_NUMBER:99"
    assert kinesis_target_checkpoint("other", "st", offs) is None


def outcome() -> BatchOutcome:
    return BatchOutcome("b1", 10, 9, (), 2, 1, {TP: 9}, 0.25)


def test_emf_document_shape() -> None:
    doc = build_emf("NS", {"Group": "g"}, {"Records": (3.0, "Count")}, timestamp_ms=5)
    assert doc["_aws"]["Timestamp"] == 5
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    assert directive == {
        "Namespace": "NS",
        "Dimensions": [["Group"]],
        "Metrics": [{"Name": "Records", "Unit": "Count"}],
    }
    assert doc["Group"] == "g"
    assert doc["Records"] == 3.0
    b = batch_emf("NS", "g", "kafka", outcome(), 7)
    assert b["BatchDuration"] == 250.0
    assert b["Rollbacks"] == 1.0
    assert b["BatchId"] == "b1"


def test_prometheus_metrics_count_batches() -> None:
    m = ConsumerMetrics("g", "kafka")
    m.batch_done(outcome())
    m.batch_failed(RuntimeError("x"))
    get = m.registry.get_sample_value
    labels = {"group": "g", "backend": "kafka"}
    assert get("sluice_consumer_records_total", labels) == 10
    assert get("sluice_consumer_batches_total", labels) == 1
    assert get("sluice_consumer_rollbacks_total", labels) == 1
    assert get("sluice_consumer_batch_failures_total", labels) == 1
    assert get("sluice_consumer_batch_duration_seconds_count", labels) == 1


def test_alert_rules_use_metrics_the_consumer_exports() -> None:
    import re

    import yaml

    rules_file = Path(__file__).resolve().parents[3] / "consumers" / "alerts" / "consumers.yml"
    rules = yaml.safe_load(rules_file.read_text())["groups"][0]["rules"]
    m = ConsumerMetrics("g", "kafka")
    m.batch_done(outcome())
    m.batch_failed(RuntimeError("x"))
    from consumers.models import PartitionLag

    m.record_lag([PartitionLag("kafka", "g", "t", "0", 1, 2, 1, 0.5, None, None)])
    exported = {s.name for metric in m.registry.collect() for s in metric.samples}
    for rule in rules:
        names = set(re.findall(r"sluice_consumer_[a-z_]+", rule["expr"]))
        assert names, rule["alert"]
        assert names <= exported, (rule["alert"], names - exported)


def test_lag_samples_are_emitted_as_emf_with_the_names_the_alarms_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import json
    import logging
    import re

    from consumers.metrics import LAG_RECORDS_METRIC, LAG_SECONDS_METRIC, lag_emf
    from consumers.models import PartitionLag

    rows = [
        PartitionLag("kafka", "g", "t", "0", 1, 5, 4, 2.5, None, None),
        PartitionLag("kafka", "g", "t", "1", 1, 3, 2, 7.0, None, None),
    ]
    doc = lag_emf("Sluice/Consumers", "g", "kafka", rows, 11)
    assert doc[LAG_RECORDS_METRIC] == 6.0
    assert doc[LAG_SECONDS_METRIC] == 7.0
    assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Sluice/Consumers"

    m = ConsumerMetrics("g", "kafka", emf_namespace="Sluice/Consumers")
    with caplog.at_level(logging.INFO, logger="sluice.emf"):
        m.record_lag(rows)
    emitted = [json.loads(r.getMessage()) for r in caplog.records if r.name == "sluice.emf"]
    assert [d[LAG_RECORDS_METRIC] for d in emitted] == [6.0]

    variables = Path(__file__).resolve().parents[3] / (
        "deploy/terraform/environments/example/variables.tf"
    )
    text = variables.read_text()
    assert re.search(rf'consumer_lag_records\s*=\s*"{LAG_RECORDS_METRIC}"', text)
    assert re.search(rf'consumer_lag_seconds\s*=\s*"{LAG_SECONDS_METRIC}"', text)
