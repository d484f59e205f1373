"""In-memory sinks and dead-letter queue of the consumers (tests, demos, the no-op sink).

The in-memory source, checkpoint store and lease table are the streams layer's
(:mod:`sluice.streams.memory`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from consumers.exceptions import DeadLetterError
from consumers.models import DeadLetter, DecodedRecord


@dataclass
class MemorySink:
    """A transactional sink keeping committed events by ``event_id`` (a MERGE in a dict).

    ``fail`` decides per write whether to raise (tests inject failures with it).
    """

    fail: Callable[[Sequence[DecodedRecord]], Exception | None] | None = None
    rows: dict[str, DecodedRecord] = field(default_factory=dict)
    writes: int = 0
    commits: int = 0
    rollbacks: int = 0
    batch_ids: list[str] = field(default_factory=list)
    _pending: list[DecodedRecord] = field(default_factory=list)
    _open: bool = False

    def begin(self, batch_id: str) -> None:
        self._pending = []
        self._open = True
        self.batch_ids.append(batch_id)

    def write(self, records: Sequence[DecodedRecord]) -> None:
        assert self._open, "write outside a transaction"
        self.writes += 1
        if self.fail is not None:
            exc = self.fail(records)
            if exc is not None:
                raise exc
        self._pending.extend(records)

    def commit(self) -> None:
        for d in self._pending:
            self.rows[str(d.event.get("event_id", f"{d.record.tp}:{d.record.offset}"))] = d
        self.commits += 1
        self._pending = []
        self._open = False

    def rollback(self) -> None:
        self.rollbacks += 1
        self._pending = []
        self._open = False


class NoopSink:
    """Accepts everything and keeps nothing (benchmarks, dry runs)."""

    def __init__(self) -> None:
        self.records = 0

    def begin(self, batch_id: str) -> None:
        return None

    def write(self, records: Sequence[DecodedRecord]) -> None:
        self.records += len(records)

    def commit(self) -> None:
        return None

    def rollback(self) -> None:
        return None


@dataclass
class MemoryDeadLetters:
    """Keeps dead letters in a list; ``fail_times`` makes the next sends fail."""

    letters: list[DeadLetter] = field(default_factory=list)
    fail_times: int = 0

    def send(self, letters: Sequence[DeadLetter]) -> None:
        if self.fail_times > 0:
            self.fail_times -= 1
            raise DeadLetterError("dead-letter queue unavailable")
        self.letters.extend(letters)
