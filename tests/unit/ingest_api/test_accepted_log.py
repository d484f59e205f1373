"""The accepted-events log: entry building, the contract of every backend, the factory.

The contract class runs against the memory, file (tmp_path) and logger (caplog)
backends; file- and logger-specific behaviour (several processes appending, rotation,
write failures, a disabled logger) follows it.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from ingest_api.accepted_file import FileAcceptedLog
from ingest_api.accepted_logger import ACCEPTED_LOGGER, LoggerAcceptedLog
from ingest_api.base import AcceptedLog, NoAcceptedLog, accepted_entry, entry_line, ndjson
from ingest_api.config import ApiSettings
from ingest_api.exceptions import AcceptedLogError
from ingest_api.factory import create_accepted_log
from ingest_api.memory import MemoryAcceptedLog
from ingest_api.models import AcceptedEntry, EventOutcome
from sluice.errors import ConfigurationError
from warehouse.reconcile import Window, accepted_log_source

FIELDS = {
    "event_id",
    "event_type",
    "schema_version",
    "occurred_at",
    "tenant_id",
    "stream",
    "partition_key",
    "accepted_at",
}
ACCEPTED_AT = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)


def make_entry(n: int = 0, **changes: Any) -> AcceptedEntry:
    values: dict[str, Any] = {
        "event_id": f"00000000-0000-4000-8000-{n:012d}",
        "event_type": "financial-transaction",
        "schema_version": 2,
        "occurred_at": datetime(2026, 3, 1, 11, 59, 0, 123456, tzinfo=UTC),
        "tenant_id": "acme-bank",
        "stream": "sluice-financial-transaction",
        "partition_key": "acc-42",
        "accepted_at": ACCEPTED_AT,
    }
    values.update(changes)
    return AcceptedEntry(**values)


# --------------------------------------------------------------------------- pure


def test_entry_line_has_exactly_the_envelope_fields_in_utc() -> None:
    cet = timezone(timedelta(hours=1))
    entry = make_entry(occurred_at=datetime(2026, 3, 1, 12, 59, 0, 123456, tzinfo=cet))
    line = entry_line(entry)
    assert "\n" not in line
    obj = json.loads(line)
    assert obj == {
        "event_id": "00000000-0000-4000-8000-000000000000",
        "event_type": "financial-transaction",
        "schema_version": 2,
        "occurred_at": "2026-03-01T11:59:00.123456Z",
        "tenant_id": "acme-bank",
        "stream": "sluice-financial-transaction",
        "partition_key": "acc-42",
        "accepted_at": "2026-03-01T12:00:00.250000Z",
    }
    assert list(obj) == list(entry.to_json())


def test_ndjson_is_one_line_per_entry_each_ending_with_a_newline() -> None:
    data = ndjson([make_entry(1), make_entry(2)])
    lines = data.split(b"\n")
    assert lines[-1] == b""
    assert [json.loads(line)["event_id"][-1:] for line in lines[:-1]] == ["1", "2"]


def test_accepted_entry_reads_only_envelope_fields_of_the_event() -> None:
    event = {
        "event_id": "E-1",
        "event_type": "financial-transaction",
        "schema_version": 2,
        "occurred_at": datetime(2026, 3, 1, tzinfo=UTC),
        "tenant_id": "acme-bank",
        "account_id": "acc-42",
        "card_number": "411111******1111",
        "metadata": {"note": "x"},
    }
    outcome = EventOutcome(
        "accepted", event_id="E-1", stream="sluice-financial-transaction", partition_key="acc-42"
    )
    entry = accepted_entry("financial-transaction", event, outcome, ACCEPTED_AT)
    assert set(entry.to_json()) == FIELDS
    assert "411111" not in entry_line(entry)
    assert entry.stream == "sluice-financial-transaction"
    assert entry.accepted_at == ACCEPTED_AT


def test_accepted_entry_refuses_an_outcome_that_was_not_accepted() -> None:
    event = {"event_id": "E", "schema_version": 1, "occurred_at": ACCEPTED_AT, "tenant_id": "t"}
    with pytest.raises(ValueError, match="accepted"):
        accepted_entry("financial-transaction", event, EventOutcome("failed"), ACCEPTED_AT)


# --------------------------------------------------------------------------- contract


@dataclass
class Harness:
    """A backend and how to read back what it recorded (one JSON object per line)."""

    log: AcceptedLog
    read: Callable[[], list[dict[str, Any]]]


def _memory_harness() -> Harness:
    log = MemoryAcceptedLog()
    return Harness(log, lambda: [json.loads(entry_line(e)) for e in log.entries])


def _file_harness(path: Path) -> Harness:
    log = FileAcceptedLog(path)
    log.open()

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in path.read_text("ascii").splitlines()]

    return Harness(log, read)


def _logger_harness(caplog: pytest.LogCaptureFixture) -> Harness:
    log = LoggerAcceptedLog()
    log.ensure_emitted()
    caplog.set_level(logging.INFO, logger=ACCEPTED_LOGGER)

    def read() -> list[dict[str, Any]]:
        return [json.loads(r.getMessage()) for r in caplog.records if r.name == ACCEPTED_LOGGER]

    return Harness(log, read)


@pytest.fixture(params=["memory", "file", "log"])
def harness(
    request: pytest.FixtureRequest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> Iterator[Harness]:
    if request.param == "memory":
        made = _memory_harness()
    elif request.param == "file":
        made = _file_harness(tmp_path / "accepted.ndjson")
    else:
        made = _logger_harness(caplog)
    try:
        yield made
    finally:
        made.log.close()


class TestAcceptedLogContract:
    """What every accepted-log backend guarantees."""

    def test_is_an_enabled_accepted_log(self, harness: Harness) -> None:
        assert isinstance(harness.log, AcceptedLog)
        assert harness.log.enabled is True
        assert harness.log.backend in {"memory", "file", "log"}

    def test_records_one_line_per_entry_in_order(self, harness: Harness) -> None:
        entries = [make_entry(n) for n in range(3)]
        harness.log.record(entries)
        assert harness.read() == [e.to_json() for e in entries]

    def test_later_records_append(self, harness: Harness) -> None:
        harness.log.record([make_entry(1)])
        harness.log.record([make_entry(2), make_entry(3)])
        assert [o["event_id"][-1] for o in harness.read()] == ["1", "2", "3"]

    def test_an_empty_record_writes_nothing(self, harness: Harness) -> None:
        harness.log.record([])
        assert harness.read() == []

    def test_lines_hold_only_the_envelope_fields(self, harness: Harness) -> None:
        harness.log.record([make_entry(7)])
        (line,) = harness.read()
        assert set(line) == FIELDS

    def test_close_is_idempotent(self, harness: Harness) -> None:
        harness.log.record([make_entry(1)])
        harness.log.close()
        harness.log.close()
        assert len(harness.read()) == 1


def test_none_records_nothing_and_is_disabled() -> None:
    log = NoAcceptedLog()
    assert isinstance(log, AcceptedLog)
    assert log.enabled is False
    log.record([make_entry()])
    log.close()


# --------------------------------------------------------------------------- file


def test_file_output_is_what_reconcile_reads(tmp_path: Path) -> None:
    path = tmp_path / "accepted.ndjson"
    log = FileAcceptedLog(path)
    log.record([make_entry(1), make_entry(2)])
    log.record([make_entry(3)])
    log.close()
    sightings = accepted_log_source(path)(Window())
    assert sightings is not None
    assert [s.event_id for s in sightings] == [make_entry(n).event_id for n in (1, 2, 3)]
    assert {s.occurred_at for s in sightings} == {make_entry().occurred_at}
    assert not Window(end=datetime(2026, 3, 1, tzinfo=UTC)).contains(sightings[0].occurred_at)


def _append_batches(path: str, worker: int, batches: int, size: int) -> None:
    log = FileAcceptedLog(Path(path))
    for batch in range(batches):
        log.record([make_entry(worker * 1_000_000 + batch * 1000 + i) for i in range(size)])
    log.close()


def test_several_processes_append_whole_lines_to_one_file(tmp_path: Path) -> None:
    path = tmp_path / "accepted.ndjson"
    workers, batches, size = 3, 60, 40  # about 13 kB per write
    context = multiprocessing.get_context("fork")
    processes = [
        context.Process(target=_append_batches, args=(str(path), w, batches, size))
        for w in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    ids = [json.loads(line)["event_id"] for line in lines[:-1]]  # every line is whole JSON
    assert len(ids) == len(set(ids)) == workers * batches * size
    # A batch's lines stay together: one write per batch, never interleaved.
    for start in range(0, len(ids), size):
        block = [int(i.rsplit("-", 1)[1]) for i in ids[start : start + size]]
        assert block == list(range(block[0], block[0] + size))


def test_file_is_created_with_o_append_and_no_python_buffer(tmp_path: Path) -> None:
    path = tmp_path / "accepted.ndjson"
    log = FileAcceptedLog(path)
    log.record([make_entry(1)])
    # Visible to another reader before close: nothing waits in a Python buffer.
    assert path.read_bytes() == ndjson([make_entry(1)])
    path.write_bytes(b"")  # truncated behind the writer's back (copytruncate rotation)
    log.record([make_entry(2)])
    assert path.read_bytes() == ndjson([make_entry(2)])  # O_APPEND: no hole, no old offset
    log.close()


def test_file_moved_away_is_reopened_at_the_path(tmp_path: Path) -> None:
    path = tmp_path / "accepted.ndjson"
    log = FileAcceptedLog(path)
    log.record([make_entry(1)])
    rotated = tmp_path / "accepted.ndjson.1"
    path.rename(rotated)
    log.record([make_entry(2)])
    path.unlink()
    log.record([make_entry(3)])
    log.close()
    assert rotated.read_bytes() == ndjson([make_entry(1)])
    assert path.read_bytes() == ndjson([make_entry(3)])


def test_write_failure_raises_with_the_errno_name() -> None:
    log = FileAcceptedLog(Path("/dev/full"))
    with pytest.raises(AcceptedLogError) as info:
        log.record([make_entry()])
    assert info.value.code == "ENOSPC"
    assert info.value.retryable
    assert "/dev/full" in info.value.message
    log.close()


def test_open_failure_raises_with_the_errno_name(tmp_path: Path) -> None:
    with pytest.raises(AcceptedLogError) as info:
        FileAcceptedLog(tmp_path / "missing-dir" / "accepted.ndjson").open()
    assert info.value.code == "ENOENT"


def test_torn_write_does_not_swallow_the_next_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "accepted.ndjson"
    log = FileAcceptedLog(path)
    log.open()
    real_write = os.write
    calls = {"n": 0}

    def short_then_full_disk(fd: int, data: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data[:10]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("ingest_api.accepted_file.os.write", short_then_full_disk)
    with pytest.raises(AcceptedLogError) as info:
        log.record([make_entry(1)])
    assert info.value.code == "ENOSPC"
    monkeypatch.setattr("ingest_api.accepted_file.os.write", real_write)
    log.record([make_entry(2)])
    log.close()
    torn, good, end = path.read_bytes().split(b"\n")
    assert len(torn) == 10
    assert json.loads(good)["event_id"] == make_entry(2).event_id
    assert end == b""


# --------------------------------------------------------------------------- logger


def test_logger_lines_are_the_ndjson_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=ACCEPTED_LOGGER)
    log = LoggerAcceptedLog()
    log.record([make_entry(1), make_entry(2)])
    records = [r for r in caplog.records if r.name == ACCEPTED_LOGGER]
    assert [r.levelno for r in records] == [logging.INFO, logging.INFO]
    assert [r.getMessage() + "\n" for r in records] == [
        ndjson([make_entry(1)]).decode(),
        ndjson([make_entry(2)]).decode(),
    ]


def test_disabled_logger_is_a_failure_not_a_silent_drop() -> None:
    logger = logging.getLogger("sluice.accepted.test-disabled")
    logger.setLevel(logging.WARNING)
    with pytest.raises(AcceptedLogError) as info:
        LoggerAcceptedLog(logger).record([make_entry()])
    assert info.value.code == "logger_disabled"


def test_ensure_emitted_adds_a_stdout_line_handler_only_when_none_would_take_the_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lonely = logging.getLogger("sluice-accepted-test-lonely")
    lonely.propagate = False
    log = LoggerAcceptedLog(lonely)
    log.ensure_emitted()
    log.ensure_emitted()
    assert lonely.level == logging.INFO
    assert len(lonely.handlers) == 1
    log.record([make_entry(5)])
    assert capsys.readouterr().out == ndjson([make_entry(5)]).decode()
    for handler in list(lonely.handlers):
        lonely.removeHandler(handler)

    configured = logging.getLogger("sluice-accepted-test-configured")
    configured.setLevel(logging.DEBUG)
    LoggerAcceptedLog(configured).ensure_emitted()  # root has handlers (pytest's)
    assert configured.level == logging.DEBUG


# --------------------------------------------------------------------------- settings


def test_settings_default_to_none() -> None:
    settings = ApiSettings()
    assert settings.api_accepted_log == "none"
    assert settings.api_accepted_log_path is None
    assert isinstance(create_accepted_log(settings), NoAcceptedLog)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SLUICE_API_ACCEPTED_LOG", "file")
    monkeypatch.setenv("SLUICE_API_ACCEPTED_LOG_PATH", str(tmp_path / "a.ndjson"))
    settings = ApiSettings()
    assert settings.api_accepted_log == "file"
    assert settings.api_accepted_log_path == tmp_path / "a.ndjson"
    monkeypatch.setenv("SLUICE_API_ACCEPTED_LOG", "kafka")
    with pytest.raises(ValidationError):
        ApiSettings()


def test_factory_file_opens_the_file_at_startup(tmp_path: Path) -> None:
    path = tmp_path / "accepted.ndjson"
    log = create_accepted_log(ApiSettings(api_accepted_log="file", api_accepted_log_path=path))
    assert isinstance(log, FileAcceptedLog)
    assert path.exists()
    log.close()


def test_factory_file_without_a_path_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as info:
        create_accepted_log(ApiSettings(api_accepted_log="file"))
    assert info.value.code == "accepted_log_path_missing"
    assert "SLUICE_API_ACCEPTED_LOG_PATH" in info.value.message


def test_factory_file_that_cannot_be_opened_is_a_configuration_error(tmp_path: Path) -> None:
    settings = ApiSettings(api_accepted_log="file", api_accepted_log_path=tmp_path / "no" / "x")
    with pytest.raises(ConfigurationError) as info:
        create_accepted_log(settings)
    assert info.value.code == "ENOENT"
    with pytest.raises(ConfigurationError) as directory:
        create_accepted_log(ApiSettings(api_accepted_log="file", api_accepted_log_path=tmp_path))
    assert directory.value.code == "EISDIR"


def test_factory_log_emits_info_on_the_accepted_logger() -> None:
    log = create_accepted_log(ApiSettings(api_accepted_log="log"))
    assert isinstance(log, LoggerAcceptedLog)
    assert log.logger.name == ACCEPTED_LOGGER
    assert log.logger.isEnabledFor(logging.INFO)
