from __future__ import annotations

import pytest

from sluice.streams.leases import (
    Observation,
    ShardInfo,
    checkpoint_position,
    expired,
    iterator_request,
    new_leases,
    observe,
    parents_finished,
    plan_take,
)
from sluice.streams.models import LATEST, SHARD_END, TRIM_HORIZON, Lease


def lease(
    key: str,
    owner: str | None,
    counter: int = 1,
    checkpoint: str = "100",
    parents: tuple[str, ...] = (),
) -> Lease:
    return Lease(key, owner, counter, checkpoint, parents)


def test_observation_resets_only_when_the_counter_moves() -> None:
    obs = observe({}, [lease("a", "w1", 5)], now=10.0)
    assert obs["a"] == Observation(5, 10.0)
    obs = observe(obs, [lease("a", "w1", 5)], now=20.0)
    assert obs["a"].changed_at == 10.0
    obs = observe(obs, [lease("a", "w1", 6)], now=30.0)
    assert obs["a"] == Observation(6, 30.0)


def test_expiry_uses_the_local_clock_of_observations() -> None:
    leases = [
        lease("a", "w1", 5),
        lease("b", "w2", 3),
        lease("c", None, 0),
        lease("d", "w1", 1, SHARD_END),
    ]
    obs = {"a": Observation(5, 0.0), "b": Observation(3, 8.0), "d": Observation(1, 0.0)}
    assert expired(leases, obs, now=10.0, lease_duration_s=5.0) == {"a", "c"}
    # a worker never expires its own lease
    assert expired(leases, obs, now=10.0, lease_duration_s=5.0, worker_id="w1") == {"c"}


def test_new_worker_takes_free_leases_up_to_its_share() -> None:
    leases = [lease(k, None, 0) for k in "abcd"]
    plan = plan_take(leases, "w1", {"a", "b", "c", "d"})
    assert plan.take == ("a", "b", "c", "d")  # alone: everything
    leases = [lease("a", "w2"), lease("b", "w2"), lease("c", None), lease("d", None)]
    assert plan_take(leases, "w1", {"c", "d"}).take == ("c", "d")


def test_takeover_of_a_dead_workers_leases() -> None:
    leases = [lease("a", "w1"), lease("b", "dead"), lease("c", "w2"), lease("d", "dead")]
    plan1 = plan_take(leases, "w1", {"b", "d"})
    assert plan1.take == ("b",)  # target ceil(4/2)=2, w1 holds 1
    assert plan1.steal == ()


def test_balancing_steals_from_the_busiest_worker_only_when_nothing_is_free() -> None:
    leases = [lease(k, "w1") for k in "abcd"]
    plan = plan_take(leases, "w2", set())
    assert plan.take == ()
    assert plan.steal == ("a",)  # one at a time
    assert plan_take(leases, "w2", set(), max_steal=0).empty
    balanced = [lease("a", "w1"), lease("b", "w1"), lease("c", "w2"), lease("d", "w2")]
    assert plan_take(balanced, "w2", set()).empty


def test_finished_leases_do_not_count() -> None:
    leases = [lease("a", "w1", checkpoint=SHARD_END), lease("b", None)]
    assert plan_take(leases, "w2", {"b"}).take == ("b",)
    assert plan_take([lease("a", None, checkpoint=SHARD_END)], "w2", set()).empty


def test_children_wait_for_parents_and_parents_are_taken_first() -> None:
    parent = lease("p", None, checkpoint="5")
    child = lease("c", None, checkpoint=TRIM_HORIZON, parents=("p",))
    by_key = {"p": parent, "c": child}
    assert not parents_finished(child, by_key)
    assert plan_take([child, parent], "w1", {"c", "p"}).take == ("p", "c")
    done = lease("p", "w1", checkpoint=SHARD_END)
    assert parents_finished(child, {"p": done, "c": child})
    # a parent without a lease was trimmed away: nothing to wait for
    assert parents_finished(child, {"c": child})


def test_merge_child_waits_for_both_parents() -> None:
    child = lease("m", None, parents=("p1", "p2"))
    by_key = {"p1": lease("p1", "w", checkpoint=SHARD_END), "p2": lease("p2", "w"), "m": child}
    assert not parents_finished(child, by_key)


def test_new_leases_for_new_shards_with_parents() -> None:
    shards = [ShardInfo("s0"), ShardInfo("s1", "s0"), ShardInfo("s2", "s0", "s9")]
    made = new_leases(shards, {"s0"}, LATEST)
    assert [(m.lease_key, m.checkpoint, m.parent_shard_ids) for m in made] == [
        ("s1", TRIM_HORIZON, ("s0",)),
        ("s2", TRIM_HORIZON, ("s0", "s9")),
    ]
    assert new_leases([ShardInfo("x")], set(), LATEST)[0].checkpoint == LATEST


def test_iterator_requests() -> None:
    assert iterator_request(TRIM_HORIZON) == {"ShardIteratorType": "TRIM_HORIZON"}
    assert iterator_request("123") == {
        "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
        "StartingSequenceNumber": "123",
    }
    assert iterator_request("AT_TIMESTAMP:1500") == {
        "ShardIteratorType": "AT_TIMESTAMP",
        "Timestamp": 1.5,
    }
    assert iterator_request("AT_SEQUENCE_NUMBER:9")["ShardIteratorType"] == "AT_SEQUENCE_NUMBER"
    with pytest.raises(ValueError):
        iterator_request(SHARD_END)
    assert checkpoint_position("42") == 42
    assert checkpoint_position(TRIM_HORIZON) is None
