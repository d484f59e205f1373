"""Prometheus metrics of the ingest API, one registry per app.

- ``sluice_api_requests_total{method, route, status}`` (``method``: a known method or
  ``other``; ``route``: the route template or ``unmatched``; ``status`` 499 when the
  client went away)
- ``sluice_api_events_accepted_total{event_type}``
- ``sluice_api_events_rejected_total{event_type, reason}`` (reason = the error code)
- ``sluice_api_publish_seconds{event_type}`` (histogram of broker round trips)
- ``sluice_api_requests_in_flight``
- ``sluice_api_accepted_log_failures_total{backend, reason}`` (accepted events whose
  accepted-log line could not be written; the events stay accepted)

Each uvicorn worker process has its own registry; scrape each worker (or run one).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Methods counted by name in ``sluice_api_requests_total``; any other is ``other``.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def bounded_method(method: str) -> str:
    """The ``method`` label: a known HTTP method, or ``other`` (a client picks the method)."""
    return method if method in KNOWN_METHODS else "other"


PUBLISH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    """The API's counters, histogram and gauge in a private registry."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "sluice_api_requests",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.accepted = Counter(
            "sluice_api_events_accepted",
            "Events acknowledged by the broker and answered as accepted.",
            ("event_type",),
            registry=self.registry,
        )
        self.rejected = Counter(
            "sluice_api_events_rejected",
            "Events not accepted, by reason (the error code).",
            ("event_type", "reason"),
            registry=self.registry,
        )
        self.publish_seconds = Histogram(
            "sluice_api_publish_seconds",
            "Time from handing events to the publisher until every result was known.",
            ("event_type",),
            buckets=PUBLISH_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "sluice_api_requests_in_flight",
            "HTTP requests being served.",
            registry=self.registry,
        )
        self.accepted_log_failures = Counter(
            "sluice_api_accepted_log_failures",
            "Accepted events whose accepted-log line could not be written, by backend and"
            " reason (the events stay accepted).",
            ("backend", "reason"),
            registry=self.registry,
        )

        # Label children are looked up once per label set (labels() takes a lock).
        self._children: dict[tuple[str, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (str(id(metric)), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def accept(self, event_type: str, count: int = 1) -> None:
        """Count ``count`` events accepted."""
        self._child(self.accepted, event_type).inc(count)

    def reject(self, event_type: str, reason: str, count: int = 1) -> None:
        """Count ``count`` events rejected for ``reason``."""
        self._child(self.rejected, event_type, reason).inc(count)

    def observe_publish(self, event_type: str, seconds: float) -> None:
        """Record one publish round trip."""
        self._child(self.publish_seconds, event_type).observe(seconds)

    def accepted_log_failed(self, backend: str, reason: str, count: int) -> None:
        """Count ``count`` accepted events the accepted log could not record."""
        self._child(self.accepted_log_failures, backend, reason).inc(count)

    def request(self, method: str, route: str, status: int) -> None:
        """Count one answered HTTP request."""
        self._child(self.requests, method, route, str(status)).inc()

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)
