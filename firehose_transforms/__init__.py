"""Firehose data transformation and the local delivery that plays Firehose's part.

- :mod:`firehose_transforms.lambda_function`: the Lambda handler Amazon Data Firehose
  invokes (Direct PUT, Kinesis-stream and MSK source event shapes).
- :mod:`firehose_transforms.base`: the pure transform (decode, clean, mask, validate,
  build one result per ``recordId``).
- :mod:`firehose_transforms.clean`: ``to_row(record)``, the event -> warehouse row
  function the consumers' warehouse sink shares.
- :mod:`firehose_transforms.delivery`: ``run_delivery(options)``, the local runner
  behind ``sluice firehose run``; :mod:`sluice.zone` names what it writes.
"""

from __future__ import annotations
