"""The QueueBackend contract, run against every backend.

The Redis runs use a fresh random key prefix per test (so parallel runs and other data in the
database are never touched) and clean up with `reset()`. Concurrency tests on Redis use two
backend instances with their own connection pools, standing in for two router processes.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, replace

import pytest
import redis.asyncio as aioredis

from queues.base import AgentPresence, QueueBackend, WaitingContact
from queues.memory import MemoryQueueBackend
from queues.redis import RedisQueueBackend

T0 = 1_700_000_000.123456  # fractional epoch seconds: catches any float rounding on the way


@dataclass
class Harness:
    backend: QueueBackend
    open_peer: Callable[[], Awaitable[QueueBackend]]  # another handle on the same index


@pytest.fixture(params=["memory", "redis"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "memory":
        memory = MemoryQueueBackend()

        async def same_instance() -> QueueBackend:
            return memory  # one process: the only way to share the index is to share the object

        yield Harness(memory, same_instance)
        return

    url: str = request.getfixturevalue("redis_url")
    prefix = f"test-{uuid.uuid4().hex}"
    backend = RedisQueueBackend(url, prefix)
    peers: list[RedisQueueBackend] = []

    async def new_instance() -> QueueBackend:
        # Its own connection pool: as far as Redis can tell, another process.
        peer = RedisQueueBackend(url, prefix)
        peers.append(peer)
        return peer

    try:
        yield Harness(backend, new_instance)
    finally:
        await backend.reset()
        for peer in peers:
            await peer.close()
        await backend.close()


def wc(
    contact_id: int,
    requirements: Iterable[str] = frozenset({"a"}),
    *,
    queue: str = "algemeen",
    channel_class: str = "phone",
    score: float | None = None,
    enqueued_at: float | None = None,
) -> WaitingContact:
    enq = T0 + contact_id if enqueued_at is None else enqueued_at
    return WaitingContact(
        contact_id=contact_id,
        queue=queue,
        requirements=frozenset(requirements),
        channel_class=channel_class,
        score=enq if score is None else score,
        enqueued_at=enq,
    )


def agent(agent_id: int = 1, **overrides: object) -> AgentPresence:
    presence = AgentPresence(
        agent_id=agent_id,
        skills={"a": 1, "nl": 2},
        capacity={"phone": 1, "chat": 3},
        idle_since=T0,
    )
    return replace(presence, **overrides)  # type: ignore[arg-type]


async def drain(backend: QueueBackend, skills: list[str], classes: list[str]) -> list[int]:
    claimed = []
    while (item := await backend.claim_best(skills, classes)) is not None:
        claimed.append(item.contact_id)
    return claimed


# --- waiting contacts -------------------------------------------------------------------------


async def test_enqueue_is_idempotent(harness: Harness) -> None:
    b = harness.backend
    item = wc(1)
    await b.enqueue(item)
    await b.enqueue(item)
    assert await b.count() == 1
    assert await b.get(1) == item
    assert (await b.stats())["algemeen"].waiting == 1
    assert await b.waiting_since(T0 + 100) == [item]
    assert await drain(b, ["a"], ["phone"]) == [1]


async def test_enqueue_same_id_replaces_everywhere(harness: Harness) -> None:
    b = harness.backend
    await b.enqueue(wc(1, {"a"}, queue="q1", channel_class="phone"))
    moved = wc(1, {"b"}, queue="q2", channel_class="chat", enqueued_at=T0 + 50)
    await b.enqueue(moved)
    assert await b.count() == 1
    assert await b.get(1) == moved
    stats = await b.stats()
    assert set(stats) == {"q2"}
    assert stats["q2"].oldest_enqueued_at == T0 + 50
    assert await b.claim_best(["a", "b"], ["phone"]) is None  # the old entry is gone
    assert await b.claim_best(["a", "b"], ["chat"]) == moved


async def test_floats_survive_exactly(harness: Harness) -> None:
    b = harness.backend
    score = 60 * 1e10 + T0  # the shape of router.planner.queue_score
    item = wc(7, {"a"}, score=score, enqueued_at=T0)
    await b.enqueue(item)
    assert await b.get(7) == item
    assert await b.rescore(7, frozenset({"a", "nl"}), score - 0.000001)
    got = await b.get(7)
    assert got is not None
    assert got.score == score - 0.000001
    assert got.enqueued_at == T0
    stats = await b.stats()
    assert stats["algemeen"].oldest_enqueued_at == T0


async def test_claim_respects_skill_subsets(harness: Harness) -> None:
    b = harness.backend
    await b.enqueue(wc(1, {"a", "nl"}))
    await b.enqueue(wc(2, {"b"}))
    await b.enqueue(wc(3, set()))  # fully widened: anyone with the channel class
    assert await b.claim_best(["c"], ["phone"]) == wc(3, set())
    assert await b.claim_best(["a"], ["phone"]) is None  # misses "nl"
    assert await b.claim_best(["nl"], ["phone"]) is None
    assert await b.claim_best(["a", "nl", "extra"], ["phone"]) == wc(1, {"a", "nl"})
    assert await b.claim_best(["a", "nl", "extra"], ["phone"]) is None
    assert await b.claim_best(["b"], ["phone"]) == wc(2, {"b"})
    assert await b.count() == 0


async def test_claim_respects_channel_classes(harness: Harness) -> None:
    b = harness.backend
    # Same queue and requirements, so the same bucket_key: only the channel class differs.
    await b.enqueue(wc(1, {"a"}, channel_class="phone"))
    await b.enqueue(wc(2, {"a"}, channel_class="chat"))
    await b.enqueue(wc(3, {"a"}, channel_class="written"))
    assert await b.claim_best(["a"], []) is None
    assert await b.claim_best(["a"], ["chat"]) == wc(2, {"a"}, channel_class="chat")
    assert await b.claim_best(["a"], ["chat"]) is None
    assert await drain(b, ["a"], ["written", "phone"]) == [1, 3]


async def test_lowest_score_first(harness: Harness) -> None:
    b = harness.backend
    await b.enqueue(wc(1, {"a"}, score=30))
    await b.enqueue(wc(2, {"a", "nl"}, score=10))
    await b.enqueue(wc(3, {"a"}, score=20))
    await b.enqueue(wc(4, {"nl"}, score=5, channel_class="chat"))
    await b.enqueue(wc(5, {"a"}, score=-1, queue="other"))
    await b.enqueue(wc(6, {"a"}, score=float("inf")))
    assert await drain(b, ["a", "nl"], ["phone", "chat"]) == [5, 4, 2, 3, 1, 6]


async def test_ties_go_to_the_earliest_enqueued(harness: Harness) -> None:
    b = harness.backend
    # Enqueued in reverse order, same score, within one bucket and across buckets.
    await b.enqueue(wc(1, {"a"}, score=1, enqueued_at=T0 + 4))
    await b.enqueue(wc(2, {"a", "nl"}, score=1, enqueued_at=T0 + 3))
    await b.enqueue(wc(3, {"a"}, score=1, enqueued_at=T0 + 2))
    await b.enqueue(wc(4, {"nl"}, score=1, enqueued_at=T0 + 1))
    await b.enqueue(wc(5, {"a"}, score=0.5, enqueued_at=T0 + 9))
    assert await drain(b, ["a", "nl"], ["phone"]) == [5, 4, 3, 2, 1]


async def test_exact_ties_go_to_the_lowest_contact_id(harness: Harness) -> None:
    b = harness.backend
    for contact_id in (100, 9, 10, 2):
        await b.enqueue(wc(contact_id, {"a"}, score=1, enqueued_at=T0))
    await b.enqueue(wc(1, {"nl"}, score=1, enqueued_at=T0))
    assert await drain(b, ["a", "nl"], ["phone"]) == [1, 2, 9, 10, 100]


async def test_withdraw_is_exactly_once(harness: Harness) -> None:
    b = harness.backend
    await b.enqueue(wc(1))
    await b.enqueue(wc(2))
    assert await b.withdraw(1) == wc(1)
    assert await b.withdraw(1) is None
    assert await b.withdraw(999) is None
    assert await b.get(1) is None
    assert await b.count() == 1
    assert await drain(b, ["a"], ["phone"]) == [2]

    await b.enqueue(wc(3))
    peer = await harness.open_peer()
    results = await asyncio.gather(*(x.withdraw(3) for x in [b, peer] * 10))
    assert [r for r in results if r is not None] == [wc(3)]


async def test_rescore_moves_bucket_keeping_place(harness: Harness) -> None:
    b = harness.backend
    await b.enqueue(wc(1, {"a", "nl"}, score=10, enqueued_at=T0))
    await b.enqueue(wc(2, {"a"}, score=20, enqueued_at=T0 + 5))
    assert await b.claim_best(["a"], ["phone"]) == wc(2, {"a"}, score=20, enqueued_at=T0 + 5)
    await b.enqueue(wc(2, {"a"}, score=20, enqueued_at=T0 + 5))

    assert await b.rescore(1, frozenset({"a"}), 15)
    moved = await b.get(1)
    assert moved == wc(1, {"a"}, score=15, enqueued_at=T0)
    assert await b.count() == 2
    assert (await b.stats())["algemeen"].oldest_enqueued_at == T0
    assert [c.contact_id for c in await b.waiting_since(T0 + 10)] == [1, 2]
    assert await b.claim_best(["a", "nl"], ["chat"]) is None
    assert await drain(b, ["a"], ["phone"]) == [1, 2]


async def test_rescore_in_place_and_not_waiting(harness: Harness) -> None:
    b = harness.backend
    await b.enqueue(wc(1, {"a"}, score=10))
    await b.enqueue(wc(2, {"a"}, score=20))
    assert await b.rescore(2, frozenset({"a"}), 5)  # same bucket, new score
    assert await b.rescore(404, frozenset({"a"}), 1) is False
    assert await b.count() == 2
    assert await b.claim_best(["a"], ["phone"]) == wc(2, {"a"}, score=5)
    assert await b.rescore(2, frozenset({"a"}), 1) is False  # claimed: no longer waiting
    assert await b.get(2) is None
    assert await b.count() == 1
    assert await drain(b, ["a"], ["phone"]) == [1]


async def test_waiting_since_oldest_first(harness: Harness) -> None:
    b = harness.backend
    offsets = [50, 10, 40, 0, 30, 20, 60]
    for i, offset in enumerate(offsets):
        # Scores against arrival order: waiting_since must follow enqueued_at, not score.
        await b.enqueue(
            wc(i + 1, {"a", f"s{i % 3}"}, queue=f"q{i % 2}", score=-offset, enqueued_at=T0 + offset)
        )
    found = await b.waiting_since(T0 + 40)
    assert [c.enqueued_at - T0 for c in found] == [0, 10, 20, 30, 40]  # inclusive bound
    assert [c.contact_id for c in found] == [4, 2, 6, 5, 3]
    assert [c.contact_id for c in await b.waiting_since(T0 + 40, limit=2)] == [4, 2]
    assert await b.waiting_since(T0 - 1) == []
    await b.withdraw(2)
    assert [c.contact_id for c in await b.waiting_since(T0 + 40, limit=2)] == [4, 6]


async def test_stats_per_queue(harness: Harness) -> None:
    b = harness.backend
    assert await b.stats() == {}
    await b.enqueue(wc(1, {"a"}, queue="burgerzaken", enqueued_at=T0 + 10))
    await b.enqueue(wc(2, {"b"}, queue="burgerzaken", enqueued_at=T0 + 5, score=99))
    await b.enqueue(wc(3, {"a"}, queue="belastingen", enqueued_at=T0 + 7))
    stats = await b.stats()
    assert set(stats) == {"burgerzaken", "belastingen"}
    assert (stats["burgerzaken"].waiting, stats["burgerzaken"].oldest_enqueued_at) == (2, T0 + 5)
    assert (stats["belastingen"].waiting, stats["belastingen"].oldest_enqueued_at) == (1, T0 + 7)
    assert stats["burgerzaken"].queue == "burgerzaken"
    assert await b.count() == 3

    assert (await b.claim_best(["b"], ["phone"])) == wc(2, {"b"}, queue="burgerzaken",
                                                         enqueued_at=T0 + 5, score=99)
    await b.withdraw(3)
    stats = await b.stats()
    assert set(stats) == {"burgerzaken"}
    assert (stats["burgerzaken"].waiting, stats["burgerzaken"].oldest_enqueued_at) == (1, T0 + 10)
    assert await b.count() == 1


async def test_ahead_counts_the_queue_and_class_before_a_contact(harness: Harness) -> None:
    b = harness.backend
    await b.enqueue(wc(1, {"a", "nl"}, queue="q", score=10.0))
    await b.enqueue(wc(2, {"a"}, queue="q", score=20.0))  # another bucket, same queue and class
    await b.enqueue(wc(3, {"a", "nl"}, queue="q", score=20.0, enqueued_at=T0 + 9))  # a tie
    await b.enqueue(wc(4, {"a"}, queue="q", score=5.0, channel_class="chat"))  # other class
    await b.enqueue(wc(5, {"a"}, queue="other", score=1.0))  # other queue
    await b.enqueue(wc(6, {"b"}, queue="q", score=30.0))
    assert await b.ahead(1) == 0
    assert await b.ahead(2) == 1  # enqueued at T0 + 2, before the tie at T0 + 9
    assert await b.ahead(3) == 2
    assert await b.ahead(6) == 3
    assert await b.ahead(4) == 0 and await b.ahead(5) == 0
    assert await b.ahead(99) is None
    await b.withdraw(1)
    assert await b.ahead(6) == 2
    await b.rescore(6, frozenset({"b"}), 1.0)  # a raised priority moves it to the front
    assert await b.ahead(6) == 0
    assert await b.ahead(2) == 1


# --- agents -----------------------------------------------------------------------------------


async def test_agent_presence_put_get_remove(harness: Harness) -> None:
    b = harness.backend
    one = agent(1, load={"chat": 1})
    two = agent(2, skills={}, capacity={}, status="away")
    await b.put_agent(one)
    await b.put_agent(two)
    assert await b.get_agent(1) == one
    assert await b.get_agent(2) == two
    assert sorted((await b.agents()), key=lambda a: a.agent_id) == [one, two]

    got = await b.get_agent(1)
    assert got is not None
    got.load["chat"] = 99  # a caller's copy: must not change the index
    assert await b.get_agent(1) == one

    changed = agent(1, skills={"x": 3}, status="busy")
    await b.put_agent(changed)
    assert await b.get_agent(1) == changed
    await b.remove_agent(1)
    await b.remove_agent(1)
    await b.remove_agent(404)
    assert await b.get_agent(1) is None
    assert await b.agents() == [two]


async def test_ready_agents_follow_status_and_load(harness: Harness) -> None:
    b = harness.backend

    async def ready() -> list[int]:
        return sorted(a.agent_id for a in await b.ready_agents())

    await b.put_agent(agent(1, capacity={"phone": 1}))
    await b.put_agent(agent(2, capacity={"phone": 1, "chat": 1}))
    await b.put_agent(agent(3, status="away"))
    assert await ready() == [1, 2]
    assert await b.reserve(1, "phone")
    assert await ready() == [2]  # full
    assert await b.reserve(2, "phone")
    assert await ready() == [2]  # still room for a chat
    await b.release(1, "phone", T0 + 5)
    await b.set_status(3, "available", T0 + 6)
    assert await ready() == [1, 2, 3]
    await b.set_status(2, "busy", T0 + 7)
    await b.remove_agent(3)
    assert await ready() == [1]
    await b.put_agent(agent(1, capacity={"phone": 1}, load={"phone": 1}))
    assert await ready() == []
    peer = await harness.open_peer()
    assert await peer.ready_agents() == []


async def test_reserve_respects_capacity_and_status(harness: Harness) -> None:
    b = harness.backend
    await b.put_agent(agent(1, capacity={"phone": 2, "chat": 0}))
    assert await b.reserve(1, "phone")
    assert await b.reserve(1, "phone")
    assert not await b.reserve(1, "phone")
    assert not await b.reserve(1, "chat")
    assert not await b.reserve(1, "written")  # no capacity named at all
    assert not await b.reserve(404, "phone")
    got = await b.get_agent(1)
    assert got is not None and got.load == {"phone": 2}

    await b.put_agent(agent(2, status="away"))
    assert not await b.reserve(2, "chat")
    await b.set_status(2, "busy", T0)
    assert not await b.reserve(2, "chat")
    await b.set_status(2, "available", T0)
    assert await b.reserve(2, "chat")


async def test_release_never_below_zero_and_resets_idle(harness: Harness) -> None:
    b = harness.backend
    await b.put_agent(agent(1, load={"phone": 1, "chat": 2}, idle_since=T0))
    await b.release(1, "chat", T0 + 1)
    got = await b.get_agent(1)
    assert got is not None and got.load == {"phone": 1, "chat": 1} and got.idle_since == T0
    await b.release(1, "chat", T0 + 2)
    await b.release(1, "chat", T0 + 3)  # already zero: stays zero, changes nothing
    got = await b.get_agent(1)
    assert got is not None and got.load["chat"] == 0 and got.idle_since == T0
    await b.release(1, "phone", T0 + 4.25)  # total load now zero
    got = await b.get_agent(1)
    assert got is not None
    assert got.load == {"phone": 0, "chat": 0}
    assert got.idle_since == T0 + 4.25
    await b.release(1, "phone", T0 + 9)  # releasing nothing keeps the agent's place in line
    got = await b.get_agent(1)
    assert got is not None and got.idle_since == T0 + 4.25
    await b.release(404, "phone", T0)  # unknown agent: no error


async def test_set_status_resets_idle_only_without_load(harness: Harness) -> None:
    b = harness.backend
    await b.put_agent(agent(1, status="away", idle_since=T0))
    result = await b.set_status(1, "available", T0 + 10)
    assert result is not None and result.status == "available" and result.idle_since == T0 + 10
    assert await b.get_agent(1) == result

    away = await b.set_status(1, "away", T0 + 20)
    assert away is not None and away.status == "away" and away.idle_since == T0 + 10

    await b.put_agent(agent(2, status="busy", load={"chat": 1}, idle_since=T0))
    loaded = await b.set_status(2, "available", T0 + 30)
    assert loaded is not None and loaded.status == "available" and loaded.idle_since == T0
    assert await b.set_status(404, "available", T0) is None


# --- lifecycle --------------------------------------------------------------------------------


async def test_reset_and_built(harness: Harness) -> None:
    b = harness.backend
    assert not await b.is_built()
    await b.enqueue(wc(1))
    await b.put_agent(agent(1))
    await b.mark_built()
    assert await b.is_built()
    await b.reset()
    assert not await b.is_built()
    assert await b.count() == 0
    assert await b.stats() == {}
    assert await b.agents() == []
    assert await b.get(1) is None
    assert await b.claim_best(["a"], ["phone"]) is None
    assert await b.waiting_since(T0 + 100) == []
    await b.enqueue(wc(2))
    await b.mark_built()
    assert await b.is_built()
    assert await drain(b, ["a"], ["phone"]) == [2]


async def test_redis_flush_means_not_built_and_reset_keeps_other_prefixes(
    redis_url: str,
) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    b = RedisQueueBackend(redis_url, prefix)
    other = RedisQueueBackend(redis_url, f"{prefix}-other")
    client: aioredis.Redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await other.enqueue(wc(1))
        await other.mark_built()
        await b.enqueue(wc(2))
        await b.put_agent(agent(3))
        await b.mark_built()

        keys = [k async for k in client.scan_iter(match=f"{{{prefix}}}:*")]
        assert keys  # the pattern matches this backend's keys
        await client.delete(*keys)  # a flush, as far as this prefix can tell
        assert not await b.is_built()
        assert await b.count() == 0

        await b.enqueue(wc(4))
        await b.reset()
        assert [k async for k in client.scan_iter(match=f"{{{prefix}}}:*")] == []
        assert await other.is_built()
        assert await other.get(1) == wc(1)
    finally:
        for backend in (b, other):
            await backend.reset()
            await backend.close()
        await client.aclose()


# --- concurrency ------------------------------------------------------------------------------


async def test_concurrent_claims_take_each_contact_once(harness: Harness) -> None:
    b = harness.backend
    peer = await harness.open_peer()
    total = 200
    for i in range(total):
        await b.enqueue(wc(i, {"a", f"t{i % 7}"}, channel_class=("phone", "chat")[i % 2]))
    skills = ["a", *(f"t{j}" for j in range(7))]

    async def worker(backend: QueueBackend) -> list[int]:
        return await drain(backend, skills, ["phone", "chat"])

    results = await asyncio.gather(*(worker(b if n % 2 else peer) for n in range(50)))
    claimed = [cid for result in results for cid in result]
    assert len(claimed) == total
    assert sorted(claimed) == list(range(total))
    assert await b.count() == 0
    assert await b.stats() == {}


async def test_concurrent_claims_and_withdrawals_never_share(harness: Harness) -> None:
    b = harness.backend
    peer = await harness.open_peer()
    total = 200
    for i in range(total):
        await b.enqueue(wc(i, {"a"}))

    async def claimer(backend: QueueBackend) -> list[int]:
        return await drain(backend, ["a"], ["phone"])

    async def withdrawer(backend: QueueBackend, ids: list[int]) -> list[int]:
        taken = []
        for contact_id in ids:
            if await backend.withdraw(contact_id) is not None:
                taken.append(contact_id)
        return taken

    ids = list(range(total))
    random.Random(7).shuffle(ids)
    tasks = [claimer(b if n % 2 else peer) for n in range(10)]
    tasks += [withdrawer(b if n % 2 else peer, ids[n::10]) for n in range(10)]
    results = await asyncio.gather(*tasks)
    taken = [cid for result in results for cid in result]
    assert sorted(taken) == list(range(total))


async def test_concurrent_reserve_fills_capacity_exactly(harness: Harness) -> None:
    b = harness.backend
    peer = await harness.open_peer()
    await b.put_agent(agent(1, capacity={"chat": 3}))
    results = await asyncio.gather(*(x.reserve(1, "chat") for x in [b, peer] * 25))
    assert sum(results) == 3
    got = await b.get_agent(1)
    assert got is not None and got.load == {"chat": 3}

    releases = [x.release(1, "chat", T0 + 1) for x in [b, peer] * 5]
    await asyncio.gather(*releases)
    got = await peer.get_agent(1)
    assert got is not None and got.load == {"chat": 0} and got.idle_since == T0 + 1


# --- against a trivially correct reference ----------------------------------------------------


async def test_many_removals_keep_the_order(harness: Harness) -> None:
    """Enough stale entries to make the memory backend compact its heaps midway."""
    b = harness.backend
    rng = random.Random(11)
    reference: dict[int, WaitingContact] = {}
    for i in range(600):
        item = wc(i, {"a", rng.choice(["x", "y"])}, score=rng.randint(0, 50),
                  enqueued_at=T0 + rng.randint(0, 100))
        reference[i] = item
        await b.enqueue(item)
    for i in rng.sample(range(600), 400):
        if rng.random() < 0.7:
            assert await b.withdraw(i) == reference.pop(i)
        else:
            new_score = float(rng.randint(0, 50))
            assert await b.rescore(i, frozenset({"a"}), new_score)
            reference[i] = replace(reference[i], requirements=frozenset({"a"}), score=new_score)
    expected = sorted(reference.values(), key=lambda c: (c.score, c.enqueued_at, c.contact_id))
    assert await drain(b, ["a", "x", "y"], ["phone"]) == [c.contact_id for c in expected]


SKILLS = ["a", "b", "nl", "en"]
CLASSES = ["phone", "chat", "written"]


def _random_subset(rng: random.Random, pool: list[str]) -> list[str]:
    return [x for x in pool if rng.random() < 0.5]


@pytest.mark.parametrize("seed", range(6))
async def test_matches_a_reference_model(harness: Harness, seed: int) -> None:
    b = harness.backend
    rng = random.Random(seed)
    model: list[WaitingContact] = []  # the obviously correct version: a list, scanned

    def find(contact_id: int) -> WaitingContact | None:
        return next((c for c in model if c.contact_id == contact_id), None)

    for _ in range(400):
        op = rng.choices(["enqueue", "claim", "withdraw", "rescore", "get"], [5, 3, 1, 1, 1])[0]
        contact_id = rng.randint(1, 60)
        if op == "enqueue":
            # Small value pools on purpose: ties in score and enqueued_at must be common.
            item = wc(
                contact_id,
                _random_subset(rng, SKILLS),
                queue=rng.choice(["q1", "q2", "q3"]),
                channel_class=rng.choice(CLASSES),
                score=float(rng.randint(0, 5)),
                enqueued_at=T0 + rng.randint(0, 10),
            )
            await b.enqueue(item)
            model[:] = [c for c in model if c.contact_id != contact_id] + [item]
        elif op == "claim":
            skills = _random_subset(rng, SKILLS)
            classes = _random_subset(rng, CLASSES)
            eligible = [
                c for c in model if c.requirements <= set(skills) and c.channel_class in classes
            ]
            best = min(
                eligible, key=lambda c: (c.score, c.enqueued_at, c.contact_id), default=None
            )
            assert await b.claim_best(skills, classes) == best
            if best is not None:
                model.remove(best)
        elif op == "withdraw":
            expected = find(contact_id)
            assert await b.withdraw(contact_id) == expected
            if expected is not None:
                model.remove(expected)
        elif op == "rescore":
            requirements = frozenset(_random_subset(rng, SKILLS))
            score = float(rng.randint(0, 5))
            expected = find(contact_id)
            assert await b.rescore(contact_id, requirements, score) == (expected is not None)
            if expected is not None:
                model[model.index(expected)] = replace(
                    expected, requirements=requirements, score=score
                )
        else:
            assert await b.get(contact_id) == find(contact_id)

        assert await b.count() == len(model)

    stats = await b.stats()
    assert {q: (s.waiting, s.oldest_enqueued_at) for q, s in stats.items()} == {
        q: (
            sum(1 for c in model if c.queue == q),
            min(c.enqueued_at for c in model if c.queue == q),
        )
        for q in {c.queue for c in model}
    }
    # Among equal enqueued_at the order is not part of the contract: compare times, then sets.
    cutoff = T0 + 5
    found = await b.waiting_since(cutoff)
    expected_since = sorted((c for c in model if c.enqueued_at <= cutoff),
                            key=lambda c: c.enqueued_at)
    assert [c.enqueued_at for c in found] == [c.enqueued_at for c in expected_since]
    assert sorted(found, key=lambda c: c.contact_id) == sorted(
        expected_since, key=lambda c: c.contact_id
    )
