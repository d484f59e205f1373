"""The Lambda entry point Amazon Data Firehose invokes for data transformation.

Handler: ``firehose_transforms.lambda_function.lambda_handler``. Settings come from the
function's environment (``SLUICE_PII_HMAC_KEY``, ``SLUICE_TRANSFORM_*``) once per
execution environment. All logic is in :mod:`firehose_transforms.base`.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from firehose_transforms.base import Transformer

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def get_transformer() -> Transformer:
    """The transformer of this execution environment (settings read once)."""
    return Transformer()


def lambda_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Transform one Firehose batch: one result per ``recordId``, response under 6 MB.

    Raises:
        TransformError: the event is not a Firehose transformation event; the
            invocation fails and Firehose retries it, then writes the batch to the
            error prefix.
    """
    response = get_transformer().handle(event)
    logger.debug("transformed %d records", len(response["records"]))
    return response
