"""The Grafana dashboard and its Prometheus: every query reads a metric the code exports.

The exported names come from the components' own prometheus_client registries (the
API, the delivery, the loader and the consumers), never from a list kept here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from consumers.metrics import ConsumerMetrics
from firehose_transforms.metrics import DeliveryMetrics
from ingest_api.metrics import ApiMetrics
from warehouse.metrics import LoaderMetrics

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "sluice.json"
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}
# Labels Prometheus adds to every scraped series, and the histogram bucket bound.
TARGET_LABELS = {"job", "instance"}
METRIC = re.compile(r"\b(sluice_[a-z0-9_]+)\b")
BY = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
MATCHER = re.compile(r"(sluice_[a-z0-9_]+)\{([^}]*)\}")


def _components() -> list[Any]:
    return [ApiMetrics(), DeliveryMetrics(), LoaderMetrics(), ConsumerMetrics("g", "kafka")]


def exported() -> dict[str, set[str]]:
    """Every exposed sample name -> its label names, from the real registries."""
    names: dict[str, set[str]] = {}
    for component in _components():
        registry: CollectorRegistry = component.registry
        labels: dict[str, set[str]] = {}
        for value in vars(component).values():
            if isinstance(value, MetricWrapperBase):
                labels[value._name] = set(value._labelnames)
        for family in registry.collect():
            for suffix in SUFFIXES[family.type]:
                extra = {"le"} if suffix == "_bucket" else set()
                names[family.name + suffix] = labels.get(family.name, set()) | extra
    return names


def _targets() -> list[dict[str, Any]]:
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t for p in doc["panels"] if p["type"] != "row" for t in p["targets"]]


def test_the_registries_export_what_the_components_count() -> None:
    names = exported()
    assert "sluice_api_events_accepted_total" in names
    assert "sluice_consumer_lag_records" in names
    assert "sluice_loader_rows_total" in names
    assert names["sluice_consumer_dlq_reasons_total"] == {"group", "backend", "reason"}


def test_every_query_names_exported_metrics_and_labels() -> None:
    names = exported()
    targets = _targets()
    assert targets
    for target in targets:
        expr = target["expr"]
        used = METRIC.findall(expr)
        assert used, f"query reads no Sluice metric: {expr}"
        for name in used:
            assert name in names, f"{name} is not exported by any component ({expr})"
        allowed = set().union(*(names[n] for n in used)) | TARGET_LABELS
        for group in BY.findall(expr):
            for label in filter(None, (x.strip() for x in group.split(","))):
                assert label in allowed, f"label {label} not on {used} ({expr})"
        for name, matchers in MATCHER.findall(expr):
            for label in re.findall(r"([a-zA-Z_]+)\s*=~?", matchers):
                assert label in names[name] | TARGET_LABELS, f"{label} not on {name}"
        legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
        assert legend <= allowed, f"legend {legend} not among {allowed}"


@pytest.mark.parametrize(
    "prefix",
    [
        "sluice_api_",
        "sluice_firehose_",
        "sluice_loader_",
        "sluice_consumer_",
        "sluice_consumer_lag",
    ],
)
def test_every_component_has_panels(prefix: str) -> None:
    assert any(prefix in t["expr"] for t in _targets())


def test_compose_provisions_prometheus_and_grafana_over_the_scraped_components() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = [
        t
        for job in prometheus["scrape_configs"]
        for c in job["static_configs"]
        for t in c["targets"]
    ]
    assert targets
    for target in targets:
        host, port = target.rsplit(":", 1)
        assert host in services, f"{target}: no such compose service"
        service = services[host]
        command = [str(c) for c in service["command"]]
        env = service.get("environment", {})
        served = (
            command[command.index("--port") + 1] if "--port" in command else None,
            command[command.index("--metrics-port") + 1] if "--metrics-port" in command else None,
            str(env.get("SLUICE_FIREHOSE_METRICS_PORT")) if isinstance(env, dict) else None,
        )
        assert port in served, f"{target}: {host} serves no metrics on {port}"
        listens = (
            command[command.index("--host") + 1] if "--host" in command else None,
            command[command.index("--metrics-host") + 1] if "--metrics-host" in command else None,
            env.get("SLUICE_FIREHOSE_METRICS_HOST") if isinstance(env, dict) else None,
            "0.0.0.0" if command[0] == "consume" else None,  # start_http_server's default
        )
        assert "0.0.0.0" in listens, f"{host} listens on loopback only"
    mounts = {v.split(":")[0] for v in services["grafana"]["volumes"]}
    assert {"./grafana/provisioning", "./grafana/dashboards"} <= mounts
    for mount in mounts:
        assert (DEPLOY / mount).is_dir()
    source = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    assert source["url"] == "http://prometheus:9090" and "prometheus" in services
    uids = {t["datasource"]["uid"] for t in _targets()}
    assert uids == {source["uid"]}
