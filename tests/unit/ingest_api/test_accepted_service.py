"""The API records exactly the events it answered ``accepted``, once, after the broker's ack.

Runs the app on the in-memory publisher with :class:`MemoryAcceptedLog`: single and
batch routes, rejected and failed events, idempotent replays, concurrent duplicates,
and a log that cannot be written (still ``202``, counted, logged at ERROR).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ingest_api.app import create_app
from ingest_api.auth import Principal
from ingest_api.config import ApiSettings
from ingest_api.exceptions import AcceptedLogError
from ingest_api.memory import MemoryAcceptedLog, MemoryProbe
from ingest_api.pii import EdgeMasker
from producers.memory import Fault, MemoryPublisher
from producers.models import OutgoingRecord
from sluice.errors import ConfigurationError
from tests.unit.ingest_api.conftest import FT, HMAC_KEY, IC, LOCAL_KEY, FakeClock, Keys, auth, event

URL = f"/v1/events/{FT}"
BATCH = f"/v1/events/{FT}/batch"
STREAM = "sluice-financial-transaction"


@pytest.fixture
def accepted() -> MemoryAcceptedLog:
    return MemoryAcceptedLog()


@pytest.fixture
def logged_app(
    make_app: Callable[..., FastAPI],
    publisher: MemoryPublisher,
    keys: Keys,
    clock: FakeClock,
    probe: MemoryProbe,
    accepted: MemoryAcceptedLog,
) -> FastAPI:
    return create_app(
        ApiSettings(),
        publisher,
        key_store=keys.store,
        readiness_probe=probe,
        masker=EdgeMasker(HMAC_KEY),
        accepted_log=accepted,
        clock=clock,
    )


@pytest.fixture
def logged(logged_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(logged_app, raise_server_exceptions=False) as test_client:
        yield test_client


def _failures(client: TestClient) -> dict[str, float]:
    """``reason -> count`` of sluice_api_accepted_log_failures_total."""
    out: dict[str, float] = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("sluice_api_accepted_log_failures_total{"):
            labels, value = line.rsplit(" ", 1)
            reason = labels.split('reason="', 1)[1].split('"', 1)[0]
            out[reason] = float(value)
    return out


# --------------------------------------------------------------------------- single


def test_single_accepted_event_is_recorded_with_its_envelope(
    logged: TestClient, accepted: MemoryAcceptedLog
) -> None:
    body = event(card_number="4111 1111 1111 1111", occurred_at="2026-03-01T13:59:00.5+02:00")
    before = datetime.now(UTC)
    response = logged.post(URL, json=body, headers=auth())
    assert response.status_code == 202
    (entry,) = accepted.entries
    line = entry.to_json()
    assert line == {
        "event_id": body["event_id"],
        "event_type": FT,
        "schema_version": body["schema_version"],
        "occurred_at": "2026-03-01T11:59:00.500000Z",
        "tenant_id": body["tenant_id"],
        "stream": STREAM,
        "partition_key": "acc-42",
        "accepted_at": line["accepted_at"],
    }
    assert before <= entry.accepted_at <= datetime.now(UTC)
    assert "4111" not in str(line)
    assert accepted.calls == 1


def test_rejected_and_failed_single_events_are_not_recorded(
    logged: TestClient, accepted: MemoryAcceptedLog, publisher: MemoryPublisher
) -> None:
    assert logged.post(URL, json=event(currency="EURO"), headers=auth()).status_code == 422
    assert logged.post(URL, json=event(tenant_id="x"), headers=auth("nope")).status_code == 401
    publisher.set_unavailable()
    assert logged.post(URL, json=event(), headers=auth()).status_code == 503
    assert accepted.entries == []
    assert accepted.calls == 0


def test_failed_then_retried_event_is_recorded_once_when_accepted(
    logged: TestClient, accepted: MemoryAcceptedLog, publisher: MemoryPublisher
) -> None:
    body = event()
    publisher.fail_next(1, Fault("_MSG_TIMED_OUT", "timed out", True))
    assert logged.post(URL, json=body, headers=auth()).status_code == 503
    assert logged.post(URL, json=body, headers=auth()).status_code == 202
    assert accepted.event_ids == [body["event_id"]]


def test_idempotent_replay_is_not_recorded_twice(
    logged: TestClient, accepted: MemoryAcceptedLog
) -> None:
    body = event()
    first = logged.post(URL, json=body, headers=auth())
    second = logged.post(URL, json=body, headers=auth())
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert accepted.event_ids == [body["event_id"]]
    assert accepted.calls == 1


def test_idempotency_key_replay_and_conflict_are_not_recorded(
    logged: TestClient, accepted: MemoryAcceptedLog
) -> None:
    headers = {**auth(), "Idempotency-Key": "order-77"}
    body = event()
    assert logged.post(URL, json=body, headers=headers).status_code == 202
    assert logged.post(URL, json=body, headers=headers).status_code == 202
    assert logged.post(URL, json=event(), headers=headers).status_code == 409
    assert accepted.event_ids == [body["event_id"]]


def test_concurrent_duplicates_are_recorded_once(
    logged_app: FastAPI, publisher: MemoryPublisher, accepted: MemoryAcceptedLog
) -> None:
    publisher.latency = 0.05
    service = logged_app.state.ctx.service
    principal = Principal("local", "*", frozenset({"*"}), None)
    body = event()

    async def both() -> list[Any]:
        return list(
            await asyncio.gather(
                service.ingest_one(FT, dict(body), principal),
                service.ingest_one(FT, dict(body), principal),
            )
        )

    outcomes = asyncio.run(both())
    assert [o.status for o in outcomes] == ["accepted", "accepted"]
    assert len(publisher.records(STREAM)) == 1
    assert accepted.event_ids == [body["event_id"]]


def test_recorded_before_the_answer_is_sent(
    logged_app: FastAPI, accepted: MemoryAcceptedLog
) -> None:
    """The ASGI response starts only after the entry was recorded."""
    seen_at_start: list[int] = []

    async def call() -> None:
        body = json.dumps(event()).encode()
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                seen_at_start.append(len(accepted.entries))
                assert message["status"] == 202

        scope = {
            "type": "http",
            "method": "POST",
            "path": URL,
            "raw_path": URL.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"content-type", b"application/json"),
                (b"authorization", f"Bearer {LOCAL_KEY}".encode()),
            ],
            "client": ("127.0.0.1", 1),
            "server": ("test", 80),
            "scheme": "http",
            "http_version": "1.1",
            "app": logged_app,
        }
        await logged_app(scope, receive, send)

    asyncio.run(call())
    assert seen_at_start == [1]


# --------------------------------------------------------------------------- batch


def test_batch_records_only_the_accepted_events_of_a_207(
    logged: TestClient, accepted: MemoryAcceptedLog
) -> None:
    good1, good2 = event(), event()
    response = logged.post(
        BATCH, json=[good1, event(currency="EURO"), "not-an-object", good2], headers=auth()
    )
    assert response.status_code == 207
    assert accepted.event_ids == [good1["event_id"], good2["event_id"]]
    assert accepted.calls == 1  # one record call (one write) per request


def test_batch_with_failed_publishes_records_only_what_the_broker_acknowledged(
    logged: TestClient, accepted: MemoryAcceptedLog, publisher: MemoryPublisher
) -> None:
    events = [event() for _ in range(4)]
    doomed = {events[1]["event_id"], events[3]["event_id"]}

    def rule(stream: str, record: OutgoingRecord) -> Fault | None:
        return Fault("_MSG_TIMED_OUT", "timed out", True) if record.event_id in doomed else None

    publisher.fail_when(rule)
    response = logged.post(BATCH, json=events, headers=auth())
    assert response.status_code == 207
    assert response.json()["status"] == "retry_failed"
    assert accepted.event_ids == [events[0]["event_id"], events[2]["event_id"]]
    publisher.clear_faults()
    # The client resends the whole batch: only the two that failed are new.
    assert logged.post(BATCH, json=events, headers=auth()).status_code == 202
    assert accepted.event_ids == [
        e["event_id"] for e in (events[0], events[2], events[1], events[3])
    ]


def test_resent_batch_and_duplicates_within_a_batch_are_recorded_once(
    logged: TestClient, accepted: MemoryAcceptedLog
) -> None:
    one, two = event(), event()
    assert logged.post(BATCH, json=[one, one, two], headers=auth()).status_code == 202
    assert logged.post(BATCH, json=[one, two], headers=auth()).status_code == 202
    assert accepted.event_ids == [one["event_id"], two["event_id"]]
    assert accepted.calls == 1


def test_batch_of_rejected_events_records_nothing(
    logged: TestClient, accepted: MemoryAcceptedLog
) -> None:
    assert logged.post(BATCH, json=[event(amount="x")], headers=auth()).status_code == 422
    assert accepted.calls == 0


def test_event_type_of_the_route_is_recorded(
    logged: TestClient, accepted: MemoryAcceptedLog
) -> None:
    claim = event(IC)
    assert logged.post(f"/v1/events/{IC}/batch", json=[claim], headers=auth()).status_code == 202
    (entry,) = accepted.entries
    assert (entry.event_type, entry.stream, entry.partition_key) == (
        IC,
        "sluice-insurance-claim",
        claim["policy_id"],
    )


# --------------------------------------------------------------------------- failures


def test_write_failure_still_answers_202_counts_and_logs_error(
    logged: TestClient, accepted: MemoryAcceptedLog, caplog: pytest.LogCaptureFixture
) -> None:
    accepted.fail = AcceptedLogError("cannot append: No space left on device", code="ENOSPC")
    body = event(card_number="4111 1111 1111 1111")
    with caplog.at_level(logging.ERROR, logger="ingest_api.service"):
        response = logged.post(URL, json=body, headers=auth())
    assert response.status_code == 202
    assert response.json()["status"] == "accepted"
    assert _failures(logged) == {"ENOSPC": 1.0}
    (record,) = [r for r in caplog.records if r.name == "ingest_api.service"]
    assert record.levelno == logging.ERROR
    message = record.getMessage()
    assert "ENOSPC" in message
    assert "No space left on device" in message
    assert body["event_id"] in message
    assert "4111" not in message
    # The answer is remembered as accepted: the replay is still 202.
    assert logged.post(URL, json=body, headers=auth()).status_code == 202


def test_batch_write_failure_keeps_the_batch_answer_and_counts_each_event(
    logged: TestClient, accepted: MemoryAcceptedLog
) -> None:
    accepted.fail = AcceptedLogError("disk gone", code="EIO")
    response = logged.post(BATCH, json=[event(), event(), event(amount="x")], headers=auth())
    assert response.status_code == 207
    assert response.json()["accepted"] == 2
    assert _failures(logged) == {"EIO": 2.0}


def test_unexpected_log_error_is_still_202_counted_and_logged_with_its_trace(
    logged: TestClient, accepted: MemoryAcceptedLog, caplog: pytest.LogCaptureFixture
) -> None:
    accepted.fail = RuntimeError("a bug in a backend")
    with caplog.at_level(logging.ERROR, logger="ingest_api.service"):
        response = logged.post(URL, json=event(), headers=auth())
    assert response.status_code == 202
    assert _failures(logged) == {"RuntimeError": 1.0}
    (record,) = [r for r in caplog.records if r.name == "ingest_api.service"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None


def test_file_log_on_a_full_disk_still_answers_202(
    make_app: Callable[..., FastAPI],
) -> None:
    app = make_app(api_accepted_log="file", api_accepted_log_path=Path("/dev/full"))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post(URL, json=event(), headers=auth())
        assert response.status_code == 202
        assert _failures(client) == {"ENOSPC": 1.0}


# --------------------------------------------------------------------------- none


def test_none_builds_no_entries_and_makes_no_call(
    client: TestClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no entry may be built when the accepted log is off")

    monkeypatch.setattr("ingest_api.service.accepted_entry", forbidden)
    service = app.state.ctx.service
    assert service.accepted_log.backend == "none"
    assert client.post(URL, json=event(), headers=auth()).status_code == 202
    assert client.post(BATCH, json=[event(), event()], headers=auth()).status_code == 202
    assert _failures(client) == {}


def test_file_without_path_refuses_to_build_the_app(make_app: Callable[..., FastAPI]) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_app(api_accepted_log="file")
    assert info.value.code == "accepted_log_path_missing"


def test_file_log_is_written_and_closed_at_shutdown(
    make_app: Callable[..., FastAPI], tmp_path: Path
) -> None:
    path = tmp_path / "accepted.ndjson"
    app = make_app(api_accepted_log="file", api_accepted_log_path=path)
    body = event()
    with TestClient(app) as client:
        assert client.post(URL, json=body, headers=auth()).status_code == 202
        assert body["event_id"] in path.read_text()
    assert app.state.ctx.service.accepted_log._fd is None
