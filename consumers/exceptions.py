"""Errors of the consumer framework; every one is a Sluice error of a known kind."""

from __future__ import annotations

from typing import ClassVar

from sluice.errors import FatalError, RetryableError
from sluice.streams.exceptions import CheckpointError, LeaseLostError, LeaseTableError

__all__ = [
    "CheckpointError",
    "CheckpointNotForwardError",
    "ConsumerInterrupted",
    "DeadLetterError",
    "DecodeError",
    "LeaseLostError",
    "LeaseTableError",
    "ReplayRefusedError",
    "SinkUnavailableError",
]


class CheckpointNotForwardError(FatalError):
    """A checkpoint that does not move forward was about to be committed (a bug, never data)."""

    default_code: ClassVar[str] = "checkpoint_not_forward"


class DecodeError(FatalError):
    """A record could not be decoded into an event; it goes to the dead-letter queue."""

    default_code: ClassVar[str] = "decode_failed"


class SinkUnavailableError(RetryableError):
    """A batch kept failing with transient errors; the consumer rewinds and tries again later."""

    default_code: ClassVar[str] = "sink_unavailable"


class DeadLetterError(RetryableError):
    """The dead-letter queue did not accept a record; the batch is not checkpointed."""

    default_code: ClassVar[str] = "dead_letter_failed"


class ReplayRefusedError(FatalError):
    """Replay was refused (live group members, or an invalid target)."""

    default_code: ClassVar[str] = "replay_refused"


class ConsumerInterrupted(RetryableError):
    """The consumer was asked to stop while a batch was being retried; it was rolled back."""

    default_code: ClassVar[str] = "consumer_interrupted"
