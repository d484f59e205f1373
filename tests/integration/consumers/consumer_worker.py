"""A consumer process for the integration tests: the real framework into the warehouse.

It writes one line per sink step to ``--marker`` so a test knows when a batch is being
written (to kill it mid-batch) and when it committed; ``--slow`` makes every write take
that long, so a batch is in flight long enough to be killed.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from consumers.api import ConsumerContext, build_consumer, build_sink
from consumers.models import DecodedRecord


class MarkedSink:
    def __init__(self, inner: Any, marker: Path, slow: float) -> None:
        self.inner = inner
        self.marker = marker
        self.slow = slow

    def _mark(self, text: str) -> None:
        with self.marker.open("a") as f:
            f.write(text + "\n")

    def begin(self, batch_id: str) -> None:
        self.inner.begin(batch_id)

    def write(self, records: Sequence[DecodedRecord]) -> None:
        self._mark(f"write {len(records)}")
        time.sleep(self.slow)
        self.inner.write(records)

    def commit(self) -> None:
        self.inner.commit()
        self._mark("commit")

    def rollback(self) -> None:
        self.inner.rollback()
        self._mark("rollback")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--marker", type=Path, required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--stream", action="append", required=True)
    parser.add_argument("--slow", type=float, default=0.0)
    parser.add_argument("--until-caught-up", action="store_true")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ctx = ConsumerContext.from_env(consumer_group=args.group)
    sink = MarkedSink(build_sink("warehouse", ctx), args.marker, args.slow)
    consumer = build_consumer(ctx=ctx, backend=args.backend, streams=args.stream, sink=sink)
    consumer.install_signal_handlers()
    summary = consumer.run(until_caught_up=args.until_caught_up, timeout_s=args.timeout)
    print(json.dumps(summary.__dict__), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
