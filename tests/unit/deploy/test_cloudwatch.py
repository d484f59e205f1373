"""CloudWatch alarms and dashboard (deploy/terraform/modules/monitoring) against what
is actually emitted: our EMF documents (built by the code itself) and the metrics AWS
documents, with the documents named below. Every alarm fires and clears (alarm and OK
actions) and names its runbook.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from consumers.config import ConsumerSettings
from consumers.metrics import batch_emf, lag_emf
from consumers.models import BatchOutcome, PartitionLag
from deploy import tfmodules

MODULE = tfmodules.TERRAFORM_ROOT / "modules" / "monitoring"
REPO = Path(__file__).resolve().parents[3]

# What AWS publishes: namespace -> (documentation, metric -> the dimension sets it comes
# with). Only the metrics the module reads are listed; an alarm on anything else fails.
AWS_METRICS: dict[str, tuple[str, dict[str, list[frozenset[str]]]]] = {
    "AWS/Kafka": (
        "https://docs.aws.amazon.com/msk/latest/developerguide/metrics-details.html"
        " (consumer lag at DEFAULT level: Cluster Name, Consumer Group, Topic; see also"
        " https://docs.aws.amazon.com/msk/latest/developerguide/consumer-lag.html)",
        {
            "EstimatedMaxTimeLag": [frozenset({"Cluster Name", "Consumer Group", "Topic"})],
            "MaxOffsetLag": [frozenset({"Cluster Name", "Consumer Group", "Topic"})],
            "SumOffsetLag": [frozenset({"Cluster Name", "Consumer Group", "Topic"})],
            "MessagesInPerSec": [
                frozenset({"Cluster Name", "Broker ID", "Topic"}),
                frozenset({"Cluster Name", "Broker ID"}),
            ],
        },
    ),
    "AWS/Kinesis": (
        "https://docs.aws.amazon.com/streams/latest/dev/monitoring-with-cloudwatch.html",
        {
            "GetRecords.IteratorAgeMilliseconds": [frozenset({"StreamName"})],
            "IncomingRecords": [frozenset({"StreamName"}), frozenset({"StreamName", "ShardId"})],
        },
    ),
    "AWS/Firehose": (
        "https://docs.aws.amazon.com/firehose/latest/dev/monitoring-with-cloudwatch-metrics.html",
        {
            "DeliveryToS3.DataFreshness": [frozenset({"DeliveryStreamName"})],
            "DeliveryToS3.Success": [frozenset({"DeliveryStreamName"})],
            "ExecuteProcessing.Success": [frozenset({"DeliveryStreamName"})],
        },
    ),
    "AWS/Lambda": (
        "https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html",
        {
            "Errors": [frozenset({"FunctionName"}), frozenset({"FunctionName", "Resource"})],
            "Throttles": [frozenset({"FunctionName"}), frozenset({"FunctionName", "Resource"})],
        },
    ),
    "AWS/SQS": (
        "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/"
        "sqs-available-cloudwatch-metrics.html",
        {"ApproximateNumberOfMessagesVisible": [frozenset({"QueueName"})]},
    ),
    "AWS/ApiGateway": (
        "https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-metrics.html",
        {
            name: [frozenset({"ApiId"}), frozenset({"ApiId", "Stage"})]
            for name in ("Count", "4xx", "5xx")
        },
    ),
    "AWS/S3": (
        "https://docs.aws.amazon.com/AmazonS3/latest/userguide/metrics-dimensions.html"
        " (request metrics: BucketName and FilterId)",
        {"PutRequests": [frozenset({"BucketName", "FilterId"})]},
    ),
    "ECS/ContainerInsights": (
        "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/"
        "Container-Insights-metrics-ECS.html",
        {"RunningTaskCount": [frozenset({"ClusterName", "ServiceName"})]},
    ),
}


@dataclass(frozen=True)
class MetricRef:
    """One metric an alarm or widget reads."""

    where: str
    namespace: str
    metric: str
    dimensions: frozenset[str] | None  # None: a Metrics Insights query over every set


def emitted() -> tuple[str, dict[str, list[frozenset[str]]]]:
    """The EMF namespace, and each metric with its dimension sets, from our builders."""
    namespace = ConsumerSettings().consumer_emf_namespace
    outcome = BatchOutcome(
        batch_id="b", records=1, written=1, dead_letters=(), attempts=1, rollbacks=0,
        checkpoint={}, duration_s=0.1,
    )  # fmt: skip
    row = PartitionLag("kafka", "g", "t", "0", 1, 2, 1, 1.0, None, None)
    docs = [
        batch_emf(namespace, "g", "kafka", outcome, 0),
        lag_emf(namespace, "g", "kafka", [row], 0),
    ]
    metrics: dict[str, list[frozenset[str]]] = {}
    for doc in docs:
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == namespace
            for metric in directive["Metrics"]:
                for dims in directive["Dimensions"]:
                    metrics.setdefault(metric["Name"], []).append(frozenset(dims))
    return namespace, metrics


def _module() -> tuple[dict[str, Any], dict[str, str], list[tuple[str, dict[str, Any]]]]:
    main = tfmodules.load_tf(MODULE / "main.tf")
    variables = tfmodules.load_tf(MODULE / "variables.tf")
    custom = next(
        v["custom_metrics"]["default"] for v in variables["variable"] if "custom_metrics" in v
    )
    alarms = [
        (name, body)
        for entry in main["resource"]
        for kind, named in entry.items()
        if kind == "aws_cloudwatch_metric_alarm"
        for name, body in named.items()
    ]
    return main, custom, alarms


def _expand(text: str, main: dict[str, Any], custom: dict[str, str]) -> str:
    """Substitute the module's locals and the custom metric names into a query."""
    local = main["locals"][0]
    for _ in range(5):
        text = re.sub(r"\$\{local\.metrics\.(\w+)\}", lambda m: custom[m.group(1)], text)
        text = re.sub(
            r"\$\{local\.kafka_lag\}", lambda m: tfmodules.plain(local["kafka_lag"]), text
        )
        text = re.sub(
            r"\$\{local\.insights\.(\w+)\}",
            lambda m: tfmodules.plain(local["insights"][m.group(1)]),
            text,
        )
    return text.replace('\\"', '"')


QUERY = re.compile(
    r'^SELECT\s+\w+\(\s*"?([\w.]+)"?\s*\)\s+FROM\s+'
    r'(?:SCHEMA\(\s*"([^"]+)"((?:\s*,\s*(?:"[^"]+"|[\w.]+))*)\s*\)|"([^"]+)")'
    r"(?:\s+WHERE\s+(.*))?$"
)


def parse_query(where: str, query: str) -> MetricRef:
    """A Metrics Insights SELECT: its metric, namespace and schema dimensions."""
    match = QUERY.match(query.strip())
    assert match, f"{where}: not a Metrics Insights query I can read: {query}"
    metric, schema_ns, schema_dims, plain_ns, condition = match.groups()
    if schema_ns is None:
        return MetricRef(where, plain_ns, metric, None)
    dims = frozenset(d.strip().strip('"') for d in schema_dims.split(",") if d.strip())
    for key in re.findall(r'("[^"]+"|\w+)\s*=', condition or ""):
        assert key.strip('"') in dims, f"{where}: WHERE on {key}, not in SCHEMA {sorted(dims)}"
    return MetricRef(where, schema_ns, metric, dims)


def alarm_refs() -> list[MetricRef]:
    main, custom, alarms = _module()
    refs = []
    for name, body in alarms:
        if "metric_name" in body:
            refs.append(
                MetricRef(
                    name, body["namespace"], body["metric_name"], frozenset(body["dimensions"])
                )
            )
        for query in body.get("metric_query", []):
            if "metric" in query:
                metric = (
                    query["metric"][0] if isinstance(query["metric"], list) else query["metric"]
                )
                refs.append(
                    MetricRef(
                        name, metric["namespace"], metric["metric_name"],
                        frozenset(metric["dimensions"]),
                    )
                )  # fmt: skip
            elif "expression" in query:
                expression = _expand(query["expression"], main, custom)
                if expression.lstrip().upper().startswith("SELECT"):
                    refs.append(parse_query(name, expression))
    return refs


def widget_refs() -> list[MetricRef]:
    """Metrics of the dashboard's widgets: ``["Namespace", "Metric", "Dim", value, ...]``
    arrays and Metrics Insights expressions."""
    main, custom, _ = _module()
    text = tfmodules.source_text(MODULE)
    body = text[text.index('resource "aws_cloudwatch_dashboard"') :]
    refs = []
    for ns, metric, rest in re.findall(r'\["((?:AWS|ECS)/[^"]+)", "([^"]+)"(.*?)\]', body):
        rest = re.sub(r"\{[^}]*\}", "", rest)
        items = [i.strip() for i in rest.split(",") if i.strip()]
        dims = frozenset(i.strip('"') for i in items[0::2])
        assert all(i.startswith('"') for i in items[0::2]), f"dimension names {items}"
        refs.append(MetricRef("dashboard", ns, metric, dims))
    for expression in re.findall(r"expression = (local\.insights\.\w+)", body):
        refs.append(parse_query("dashboard", _expand("${" + expression + "}", main, custom)))
    return refs


def _check(ref: MetricRef) -> None:
    namespace, ours = emitted()
    if ref.namespace == namespace:
        assert ref.metric in ours, f"{ref.where}: {ref.metric} is not emitted by the code"
        if ref.dimensions is not None:
            assert ref.dimensions in ours[ref.metric], f"{ref.where}: dimensions {ref.dimensions}"
        return
    assert ref.namespace in AWS_METRICS, f"{ref.where}: namespace {ref.namespace} not known"
    doc, published = AWS_METRICS[ref.namespace]
    assert ref.metric in published, f"{ref.where}: {ref.namespace} {ref.metric} not in {doc}"
    assert ref.dimensions in published[ref.metric], (
        f"{ref.where}: {ref.metric} does not come with {sorted(ref.dimensions or ())} ({doc})"
    )


def test_the_emf_namespace_in_terraform_is_the_codes() -> None:
    _, custom, _ = _module()
    namespace, ours = emitted()
    assert custom["namespace"] == namespace
    for key, name in custom.items():
        if key != "namespace":
            assert name in ours, f"custom_metrics.{key} = {name} is not emitted"
    assert ours["ConsumerLagRecords"] == [frozenset({"ConsumerGroup", "Backend"})]


@pytest.mark.parametrize("ref", alarm_refs(), ids=lambda r: f"{r.where}:{r.metric}")
def test_every_alarm_reads_an_emitted_metric_with_its_dimensions(ref: MetricRef) -> None:
    _check(ref)


@pytest.mark.parametrize("ref", widget_refs(), ids=lambda r: f"{r.where}:{r.metric}")
def test_every_dashboard_widget_reads_an_emitted_metric(ref: MetricRef) -> None:
    _check(ref)


def test_the_required_aws_metrics_are_watched() -> None:
    watched = {(r.namespace, r.metric) for r in alarm_refs()}
    assert {
        ("AWS/Kafka", "EstimatedMaxTimeLag"),
        ("AWS/Kafka", "MaxOffsetLag"),
        ("AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds"),
        ("AWS/Firehose", "DeliveryToS3.DataFreshness"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("Sluice/Consumers", "ConsumerLagRecords"),
        ("Sluice/Consumers", "DeadLetters"),
    } <= watched


def test_every_alarm_fires_and_clears_and_names_its_runbook() -> None:
    _, _, alarms = _module()
    assert len(alarms) >= 15
    for name, body in alarms:
        assert body.get("alarm_actions") == "${local.actions}", name
        assert body.get("ok_actions") == "${local.actions}", f"{name} never tells it cleared"
        runbook = re.search(r"Runbook: (docs/runbooks/[\w.-]+\.md)", body["alarm_description"])
        assert runbook, f"{name} has no runbook link"
        assert (REPO / runbook.group(1)).is_file()


def test_the_query_reader_refuses_what_it_cannot_check() -> None:
    with pytest.raises(AssertionError, match="WHERE on Partition"):
        parse_query(
            "x", "SELECT MAX(MaxOffsetLag) FROM SCHEMA(\"AWS/Kafka\", Topic) WHERE Partition = '1'"
        )
    ref = parse_query("x", 'SELECT SUM("DeadLetters") FROM "Sluice/Consumers"')
    assert (ref.namespace, ref.metric, ref.dimensions) == ("Sluice/Consumers", "DeadLetters", None)
    with pytest.raises(AssertionError, match="does not come with"):
        _check(
            MetricRef(
                "x", "AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", frozenset({"Stream"})
            )
        )
    with pytest.raises(AssertionError, match="not emitted"):
        _check(MetricRef("x", "Sluice/Consumers", "LagRecords", None))
