"""Settings of ``sluice dashboard``."""

from __future__ import annotations

import math

from pydantic import Field

from sluice.config import SluiceSettings

MAX_POINTS = 7_200


class DashboardSettings(SluiceSettings):
    """Where the page is served, how often it samples and how much history it keeps."""

    dashboard_host: str = Field(
        default="127.0.0.1", description="Address `sluice dashboard` listens on."
    )
    dashboard_port: int = Field(
        default=8765, ge=0, le=65_535, description="Port of `sluice dashboard` (0: any free)."
    )
    dashboard_refresh_s: float = Field(
        default=2.0, gt=0, le=300, description="Seconds between two samples of the dashboard."
    )
    dashboard_history_s: float = Field(
        default=3600.0, gt=0, le=86_400, description="Seconds of history the charts keep."
    )
    dashboard_reconcile_every_s: float = Field(
        default=300.0,
        ge=0,
        description="Seconds between two reconcile runs of the dashboard (0: never).",
    )
    dashboard_metrics_urls: str = Field(
        default="",
        description="Comma-separated Prometheus /metrics URLs the dashboard reads throughput from.",
    )

    def points(self) -> int:
        """Samples per series: the history over the refresh period (at most 7,200)."""
        return max(
            2, min(MAX_POINTS, math.ceil(self.dashboard_history_s / self.dashboard_refresh_s))
        )

    def metrics_urls(self) -> list[str]:
        """The Prometheus endpoints, in order."""
        return [u.strip() for u in self.dashboard_metrics_urls.split(",") if u.strip()]
