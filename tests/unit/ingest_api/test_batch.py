"""POST /v1/events/{event_type}/batch: per-event results, 202/207/422/503, partial failures."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from fastapi.testclient import TestClient

from producers.memory import Fault, MemoryPublisher
from producers.models import OutgoingRecord
from tests.unit.ingest_api.conftest import FT, Keys, auth, event

URL = f"/v1/events/{FT}/batch"
STREAM = "sluice-financial-transaction"


def test_all_valid_is_202_with_results_in_order(
    client: TestClient, publisher: MemoryPublisher
) -> None:
    events = [event() for _ in range(3)]
    response = client.post(URL, json={"events": events}, headers=auth())
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "accepted"
    assert (body["accepted"], body["rejected"], body["failed"]) == (3, 0, 0)
    assert [r["event_id"] for r in body["results"]] == [e["event_id"] for e in events]
    assert [r["index"] for r in body["results"]] == [0, 1, 2]
    assert len(publisher.records(STREAM)) == 3
    assert publisher.calls == [(STREAM, 3)]  # one publish call for the batch


def test_bare_array_body_is_accepted(client: TestClient) -> None:
    response = client.post(URL, json=[event()], headers=auth())
    assert response.status_code == 202


def test_some_invalid_is_207_and_valid_ones_are_published(
    client: TestClient, publisher: MemoryPublisher
) -> None:
    good1, good2 = event(), event()
    bad = event(currency="EURO", colour="red")
    response = client.post(URL, json=[good1, bad, "not-an-object", good2], headers=auth())
    assert response.status_code == 207
    body = response.json()
    assert body["status"] == "partially_accepted"
    assert [r["status"] for r in body["results"]] == [
        "accepted",
        "rejected",
        "rejected",
        "accepted",
    ]
    rejected = body["results"][1]
    assert rejected["event_id"] == bad["event_id"]
    assert {e["field"] for e in rejected["errors"]} == {"currency", "colour"}
    assert body["results"][2]["code"] == "invalid_type"
    published = {s.record.event_id for s in publisher.records(STREAM)}
    assert published == {good1["event_id"], good2["event_id"]}


def test_none_valid_is_422(client: TestClient, publisher: MemoryPublisher) -> None:
    response = client.post(
        URL, json=[event(amount="x"), event(ingested_at="2026-01-01T00:00:00Z")], headers=auth()
    )
    assert response.status_code == 422
    body = response.json()
    assert body["status"] == "rejected"
    assert body["results"][1]["errors"][0]["code"] == "server_owned"
    assert publisher.records(STREAM) == []


def test_partial_publish_failure_says_exactly_which_made_it(
    client: TestClient, publisher: MemoryPublisher
) -> None:
    events = [event() for _ in range(4)]
    doomed = {events[1]["event_id"], events[3]["event_id"]}

    def rule(stream: str, record: OutgoingRecord) -> Fault | None:
        return Fault("_MSG_TIMED_OUT", "timed out", True) if record.event_id in doomed else None

    publisher.fail_when(rule)
    response = client.post(URL, json=events, headers=auth())
    assert response.status_code == 207
    assert response.headers["Retry-After"] == "5"
    body = response.json()
    assert body["status"] == "retry_failed"
    assert (body["accepted"], body["failed"]) == (2, 2)
    statuses = [(r["status"], r.get("retryable")) for r in body["results"]]
    assert statuses == [("accepted", None), ("failed", True), ("accepted", None), ("failed", True)]
    assert {s.record.event_id for s in publisher.records(STREAM)} == {
        events[0]["event_id"],
        events[2]["event_id"],
    }
    # The client resends the failed ones; accepted ones are answered from memory.
    publisher.clear_faults()
    again = client.post(URL, json=events, headers=auth())
    assert again.status_code == 202
    assert len(publisher.records(STREAM)) == 4


def test_all_failed_is_503(client: TestClient, publisher: MemoryPublisher) -> None:
    publisher.set_unavailable()
    response = client.post(URL, json=[event(), event(amount="bad")], headers=auth())
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    body = response.json()
    assert body["status"] == "retry_failed"
    assert [r["status"] for r in body["results"]] == ["failed", "rejected"]


def test_duplicates_in_a_batch_are_published_once(
    client: TestClient, publisher: MemoryPublisher
) -> None:
    one = event()
    response = client.post(URL, json=[one, one, event()], headers=auth())
    assert response.status_code == 202
    results = response.json()["results"]
    assert results[0]["event_id"] == results[1]["event_id"] == one["event_id"]
    assert len(publisher.records(STREAM)) == 2


def test_resent_batch_is_not_published_twice(
    client: TestClient, publisher: MemoryPublisher
) -> None:
    events = [event(), event()]
    assert client.post(URL, json=events, headers=auth()).status_code == 202
    assert client.post(URL, json=events, headers=auth()).status_code == 202
    assert len(publisher.records(STREAM)) == 2


def test_other_tenant_in_batch(client: TestClient, keys: Keys) -> None:
    mixed = client.post(URL, json=[event(), event(tenant_id="other")], headers=auth(keys.bank.key))
    assert mixed.status_code == 207
    assert mixed.json()["results"][1]["code"] == "tenant_forbidden"
    only_other = client.post(URL, json=[event(tenant_id="other")], headers=auth(keys.bank.key))
    assert only_other.status_code == 403


def test_too_many_events_is_413(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(api_max_batch_events=2)) as client:
        response = client.post(URL, json=[event(), event(), event()], headers=auth())
    assert response.status_code == 413
    assert response.json()["code"] == "too_many_events"


def test_batch_body_shape_errors(client: TestClient) -> None:
    assert client.post(URL, json={"items": []}, headers=auth()).json()["code"] == "invalid_batch"
    empty = client.post(URL, json=[], headers=auth())
    assert (empty.status_code, empty.json()["code"]) == (422, "empty_batch")


def test_batch_error_paths_share_the_single_route_checks(client: TestClient) -> None:
    assert client.post(URL, json=[event()]).status_code == 401
    assert client.post("/v1/events/nope/batch", json=[event()], headers=auth()).status_code == 404
    assert (
        client.post(
            URL, content=b"[", headers={**auth(), "Content-Type": "application/json"}
        ).status_code
        == 400
    )
    assert (
        client.post(URL, content=b"[]", headers={**auth(), "Content-Type": "text/csv"}).status_code
        == 415
    )
