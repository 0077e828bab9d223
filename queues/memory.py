"""In-process queue backend: one process, no Redis (development, tests, a single small node).

Every method is synchronous inside its coroutine (no await), so under asyncio each call runs to
completion before another starts: that is what makes claim_best, withdraw and reserve atomic here.

Heaps use lazy deletion: removing a contact only forgets it in `_slots`; its heap entries are
skipped when they surface and purged in bulk once they outnumber the live ones, so every change
costs O(log n) amortized and nothing ever scans all waiting contacts.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from itertools import count
from typing import Generic, TypeVar

from queues.base import AgentPresence, QueueBackend, QueueStats, WaitingContact, bucket_queue

# (score, enqueued_at, contact_id, seq): served in this order, seq only tells stale entries apart.
BucketEntry = tuple[float, float, int, int]
# (enqueued_at, contact_id, seq)
AgeEntry = tuple[float, int, int]

E = TypeVar("E", BucketEntry, AgeEntry)

# Below this size a heap is never compacted: rebuilding tiny heaps would cost more than it saves.
_COMPACT_SLACK = 64


class _LazyHeap(Generic[E]):
    def __init__(self, is_live: Callable[[E], bool]) -> None:
        self.entries: list[E] = []
        self.live = 0
        self._is_live: Callable[[E], bool] = is_live

    def push(self, entry: E) -> None:
        heapq.heappush(self.entries, entry)
        self.live += 1

    def discard(self) -> None:
        """One of the entries went stale (the caller already made `is_live` say so)."""
        self.live -= 1
        if len(self.entries) > 2 * self.live + _COMPACT_SLACK:
            self.entries = [e for e in self.entries if self._is_live(e)]
            heapq.heapify(self.entries)

    def head(self) -> E | None:
        entries = self.entries
        while entries and not self._is_live(entries[0]):
            heapq.heappop(entries)
        return entries[0] if entries else None

    def ordered(self, upto: float, limit: int) -> list[E]:
        """Live entries whose first field is <= `upto`, smallest first, at most `limit`.

        Walks the heap as a tree with a frontier heap of candidate nodes, so it costs
        O(k log k) for k entries returned (plus any stale ones met), not a sort of everything."""
        entries = self.entries
        found: list[E] = []
        frontier: list[tuple[E, int]] = [(entries[0], 0)] if entries else []
        while frontier and len(found) < limit:
            entry, index = heapq.heappop(frontier)
            if entry[0] > upto:
                break  # everything still in the frontier (and below it) is later
            if self._is_live(entry):
                found.append(entry)
            for child in (2 * index + 1, 2 * index + 2):
                if child < len(entries):
                    heapq.heappush(frontier, (entries[child], child))
        return found


@dataclass(eq=False)
class _Slot:
    item: WaitingContact
    age_seq: int  # identifies the age entries: stays the same across rescore
    bucket_seq: int  # identifies the bucket entry: changes on every rescore
    bucket: tuple[str, str]


@dataclass(eq=False)
class _Bucket:
    requirements: frozenset[str]
    channel_class: str
    heap: _LazyHeap[BucketEntry]


@dataclass(eq=False)
class _Queue:
    heap: _LazyHeap[AgeEntry]


@dataclass
class _State:
    slots: dict[int, _Slot] = field(default_factory=dict)
    # Keyed by (bucket key, channel class): the bucket key does not name the channel class, and
    # after escalation drops the channel skill two classes can share one requirement set.
    buckets: dict[tuple[str, str], _Bucket] = field(default_factory=dict)
    queues: dict[str, _Queue] = field(default_factory=dict)
    agents: dict[int, AgentPresence] = field(default_factory=dict)
    built: bool = False


def _copy_presence(presence: AgentPresence) -> AgentPresence:
    # Callers get and give their own copies, as they would from Redis: mutating one must not
    # change the index behind the backend's back.
    return replace(
        presence,
        skills=dict(presence.skills),
        capacity=dict(presence.capacity),
        load=dict(presence.load),
    )


class MemoryQueueBackend(QueueBackend):
    def __init__(self) -> None:
        self._seq = count()
        self._state = _State()
        self._ages: _LazyHeap[AgeEntry] = _LazyHeap(self._age_live)

    # --- liveness of heap entries -------------------------------------------------------------

    def _bucket_live(self, entry: BucketEntry) -> bool:
        slot = self._state.slots.get(entry[2])
        return slot is not None and slot.bucket_seq == entry[3]

    def _age_live(self, entry: AgeEntry) -> bool:
        slot = self._state.slots.get(entry[1])
        return slot is not None and slot.age_seq == entry[2]

    # --- internal, synchronous ----------------------------------------------------------------

    def _add_to_bucket(self, slot: _Slot) -> None:
        item = slot.item
        key = slot.bucket
        bucket = self._state.buckets.get(key)
        if bucket is None:
            bucket = _Bucket(item.requirements, item.channel_class, _LazyHeap(self._bucket_live))
            self._state.buckets[key] = bucket
        bucket.heap.push((item.score, item.enqueued_at, item.contact_id, slot.bucket_seq))

    def _leave_bucket(self, key: tuple[str, str]) -> None:
        """Account for one contact having left bucket `key` (its entry is already stale)."""
        bucket = self._state.buckets[key]
        bucket.heap.discard()
        if bucket.heap.live == 0:
            # Empty buckets go, so claim_best only ever looks at buckets with someone waiting.
            del self._state.buckets[key]

    def _remove(self, contact_id: int) -> WaitingContact | None:
        slot = self._state.slots.pop(contact_id, None)
        if slot is None:
            return None
        self._leave_bucket(slot.bucket)
        queue = self._state.queues[slot.item.queue]
        queue.heap.discard()
        if queue.heap.live == 0:
            del self._state.queues[slot.item.queue]
        self._ages.discard()
        return slot.item

    # --- waiting contacts ---------------------------------------------------------------------

    async def enqueue(self, item: WaitingContact) -> None:
        self._remove(item.contact_id)
        seq = next(self._seq)
        slot = _Slot(item, seq, seq, (item.bucket, item.channel_class))
        self._state.slots[item.contact_id] = slot
        self._add_to_bucket(slot)
        queue = self._state.queues.get(item.queue)
        if queue is None:
            queue = _Queue(_LazyHeap(self._age_live))
            self._state.queues[item.queue] = queue
        age: AgeEntry = (item.enqueued_at, item.contact_id, seq)
        queue.heap.push(age)
        self._ages.push(age)

    async def withdraw(self, contact_id: int) -> WaitingContact | None:
        return self._remove(contact_id)

    async def get(self, contact_id: int) -> WaitingContact | None:
        slot = self._state.slots.get(contact_id)
        return slot.item if slot is not None else None

    async def claim_best(
        self, agent_skills: Iterable[str], channel_classes: Iterable[str]
    ) -> WaitingContact | None:
        skills = frozenset(agent_skills)
        classes = frozenset(channel_classes)
        best: BucketEntry | None = None
        for bucket in self._state.buckets.values():
            if bucket.channel_class not in classes or not bucket.requirements <= skills:
                continue
            head = bucket.heap.head()
            if head is not None and (best is None or head < best):
                best = head
        if best is None:
            return None
        return self._remove(best[2])

    async def rescore(self, contact_id: int, requirements: frozenset[str], score: float) -> bool:
        slot = self._state.slots.get(contact_id)
        if slot is None:
            return False
        old_bucket = slot.bucket
        slot.item = replace(slot.item, requirements=frozenset(requirements), score=score)
        slot.bucket = (slot.item.bucket, slot.item.channel_class)
        slot.bucket_seq = next(self._seq)  # makes the old bucket entry stale
        self._leave_bucket(old_bucket)
        self._add_to_bucket(slot)
        return True

    async def waiting_since(
        self, enqueued_before: float, limit: int = 1000
    ) -> list[WaitingContact]:
        return [
            self._state.slots[entry[1]].item for entry in self._ages.ordered(enqueued_before, limit)
        ]

    async def stats(self) -> dict[str, QueueStats]:
        result: dict[str, QueueStats] = {}
        for name, queue in self._state.queues.items():
            oldest = queue.heap.head()
            result[name] = QueueStats(
                name, queue.heap.live, oldest[0] if oldest is not None else None
            )
        return result

    async def count(self) -> int:
        return len(self._state.slots)

    async def ahead(self, contact_id: int) -> int | None:
        slot = self._state.slots.get(contact_id)
        if slot is None:
            return None
        item = slot.item
        mine = (item.score, item.enqueued_at, item.contact_id)
        ahead = 0
        for (key, channel_class), bucket in self._state.buckets.items():
            if channel_class != item.channel_class or bucket_queue(key) != item.queue:
                continue
            ahead += sum(
                1
                for entry in bucket.heap.entries
                if entry[:3] < mine and self._bucket_live(entry)
            )
        return ahead

    # --- agent presence -----------------------------------------------------------------------

    async def put_agent(self, presence: AgentPresence) -> None:
        self._state.agents[presence.agent_id] = _copy_presence(presence)

    async def remove_agent(self, agent_id: int) -> None:
        self._state.agents.pop(agent_id, None)

    async def get_agent(self, agent_id: int) -> AgentPresence | None:
        presence = self._state.agents.get(agent_id)
        return _copy_presence(presence) if presence is not None else None

    async def agents(self) -> list[AgentPresence]:
        return [_copy_presence(p) for p in self._state.agents.values()]

    async def ready_agents(self) -> list[AgentPresence]:
        return [
            _copy_presence(p)
            for p in self._state.agents.values()
            if p.status == "available" and any(p.spare(c) > 0 for c in p.capacity)
        ]

    async def set_status(self, agent_id: int, status: str, now: float) -> AgentPresence | None:
        presence = self._state.agents.get(agent_id)
        if presence is None:
            return None
        presence.status = status
        # Also when already available: the database restarts status_since on every status
        # change, and a rebuild takes idle_since from it, so the index must do the same.
        if status == "available" and sum(presence.load.values()) <= 0:
            presence.idle_since = now
        return _copy_presence(presence)

    async def reserve(self, agent_id: int, channel_class: str) -> bool:
        presence = self._state.agents.get(agent_id)
        if presence is None or not presence.can_take(channel_class):
            return False
        presence.load[channel_class] = presence.load.get(channel_class, 0) + 1
        return True

    async def release(self, agent_id: int, channel_class: str, now: float) -> None:
        presence = self._state.agents.get(agent_id)
        if presence is None:
            return
        held = presence.load.get(channel_class, 0)
        if held <= 0:
            return  # nothing to release: in particular the agent's place in line stays
        presence.load[channel_class] = held - 1
        if sum(presence.load.values()) <= 0:
            presence.idle_since = now

    # --- lifecycle ----------------------------------------------------------------------------

    async def reset(self) -> None:
        self._state = _State()
        self._ages = _LazyHeap(self._age_live)

    async def mark_built(self) -> None:
        self._state.built = True

    async def is_built(self) -> bool:
        return self._state.built
