"""The ``log`` accepted log: one JSON line per accepted event on the ``sluice.accepted`` logger.

On Lambda the runtime's handler on the root logger sends the lines to CloudWatch Logs;
``docs/api.md`` has the Logs Insights query that turns them back into the NDJSON file
``sluice reconcile --accepted-log`` reads. The message is exactly that NDJSON line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from ingest_api.base import entry_line
from ingest_api.exceptions import AcceptedLogError
from ingest_api.models import AcceptedEntry

ACCEPTED_LOGGER = "sluice.accepted"


class LoggerAcceptedLog:
    """Logs one INFO record per accepted event, the message being its NDJSON line.

    Args:
        logger: the logger to use (``sluice.accepted`` when omitted).
    """

    backend = "log"
    enabled = True

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(ACCEPTED_LOGGER)

    def ensure_emitted(self) -> None:
        """Make the lines reach an output (called once, at startup).

        The logger gets level INFO unless one was configured (Python's root default,
        WARNING, would drop them), and, when no handler anywhere would take its records
        (uvicorn configures only its own loggers), a handler writing the bare line to
        standard output.
        """
        if self.logger.level == logging.NOTSET:
            self.logger.setLevel(logging.INFO)
        if not self.logger.hasHandlers():
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(logging.Formatter("%(message)s"))
            self.logger.addHandler(handler)

    def record(self, entries: Sequence[AcceptedEntry]) -> None:
        """Log one line per entry.

        Raises:
            AcceptedLogError: the logger does not emit INFO records (its level was set
                higher), so the lines would be dropped.
        """
        if not entries:
            return
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            raise AcceptedLogError(
                f"logger {logger.name} does not emit INFO records", code="logger_disabled"
            )
        for entry in entries:
            logger.info(entry_line(entry))

    def close(self) -> None:
        """Nothing to release (handlers belong to the logging configuration)."""
