"""Sluice: streaming ingestion of financial and insurance events on AWS."""

from __future__ import annotations

__version__ = "0.1.0"
