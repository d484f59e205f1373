"""KPL deaggregation in a fresh process, as the delivery runner and a cold Lambda run it.

``aws_kinesis_agg.messages_pb2`` imports ``config_pb2`` as a top-level module, which only
resolves after another module of the package put its folder on ``sys.path``. A test
process has usually imported the aggregator already, which hides the failure; a fresh
interpreter that imports nothing but the transform's base module does not.
"""

from __future__ import annotations

import subprocess
import sys

from tests.unit.firehose_transforms import builders as b

_CHILD = """
import sys
from firehose_transforms.base import deaggregate
parts = deaggregate(sys.stdin.buffer.read())
sys.stdout.write(",".join(p.decode() for p in parts))
"""


def test_an_aggregate_is_split_in_a_process_that_imported_nothing_else() -> None:
    aggregate = b.kpl_aggregate([b"first", b"second", b"third"])
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=aggregate,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode() == "first,second,third"
