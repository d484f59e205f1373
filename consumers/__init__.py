"""Consumer groups with checkpoints: batch commit and rollback, replay, DLQ and lag.

See ``docs/consumers.md``. The calls the demo and operators use::

    from consumers import run_until_caught_up, lag_snapshot
"""

from __future__ import annotations

from consumers.api import build_consumer, lag_report_json, lag_snapshot, run_until_caught_up

__all__ = ["build_consumer", "lag_report_json", "lag_snapshot", "run_until_caught_up"]
