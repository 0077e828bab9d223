"""The contract every queue backend keeps.

The database is the source of truth for contacts and agents; a queue backend is the fast,
shared index the router decides from: which contacts wait (grouped in *buckets* of identical
skill requirements, ordered by score) and which agents are present with spare capacity.
Everything here can be thrown away and rebuilt from the database (`reset` + `enqueue` +
`put_agent`), which is what happens after a crash or a Redis flush.

Why buckets: a contact needs a set of skills (topic, language, channel). Contacts with the same
set form one bucket, and an agent can serve a bucket when the bucket's skills are a subset of the
agent's. There are few distinct buckets (topics x languages x channel kinds), so picking the best
contact for an agent is a peek at the head of each eligible bucket, never a scan of the contacts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field


def bucket_key(queue: str, requirements: Iterable[str]) -> str:
    """A stable name for the bucket of contacts in `queue` that need exactly `requirements`."""
    return f"{queue}|{'+'.join(sorted(set(requirements)))}"


def bucket_requirements(key: str) -> frozenset[str]:
    """The skill set a bucket key stands for (inverse of `bucket_key`)."""
    _, _, skills = key.partition("|")
    return frozenset(s for s in skills.split("+") if s)


def bucket_queue(key: str) -> str:
    return key.partition("|")[0]


@dataclass(frozen=True)
class WaitingContact:
    """One contact waiting for an agent.

    `score`: lower is served first. The router folds priority and arrival into it, so each bucket
    is simply ordered by score. `channel_class` ("phone", "chat" or "written") decides which
    capacity of an agent the contact uses.
    """

    contact_id: int
    queue: str
    requirements: frozenset[str]
    channel_class: str
    score: float
    enqueued_at: float  # epoch seconds, from the router's clock

    @property
    def bucket(self) -> str:
        return bucket_key(self.queue, self.requirements)


@dataclass
class AgentPresence:
    """What the router needs to know about an agent who is signed in.

    `skills` maps a skill to a level (1 = basic, higher = more expert). `capacity` and `load` map a
    channel class to how many contacts of that class the agent can hold and holds now.
    `idle_since` (epoch seconds) orders agents longest-idle first.
    """

    agent_id: int
    skills: dict[str, int]
    capacity: dict[str, int]
    load: dict[str, int] = field(default_factory=dict)
    status: str = "available"  # available | away | busy | offline
    idle_since: float = 0.0

    def spare(self, channel_class: str) -> int:
        return self.capacity.get(channel_class, 0) - self.load.get(channel_class, 0)

    def can_take(self, channel_class: str) -> bool:
        return self.status == "available" and self.spare(channel_class) > 0

    def serves(self, requirements: Iterable[str]) -> bool:
        return all(self.skills.get(skill, 0) > 0 for skill in requirements)


@dataclass(frozen=True)
class QueueStats:
    queue: str
    waiting: int
    oldest_enqueued_at: float | None


class QueueBackend(ABC):
    """Shared waiting lists and agent presence. All methods are safe to call from many
    coroutines; the Redis implementation is also safe across processes and machines."""

    # --- waiting contacts -------------------------------------------------------------------

    @abstractmethod
    async def enqueue(self, item: WaitingContact) -> None:
        """Add or replace (same contact_id) a waiting contact. Idempotent."""

    @abstractmethod
    async def withdraw(self, contact_id: int) -> WaitingContact | None:
        """Remove a contact from waiting (closed, transferred away...). Returns it if it was
        waiting. Atomic: of two concurrent calls, one gets the item and the other None."""

    @abstractmethod
    async def get(self, contact_id: int) -> WaitingContact | None:
        """The waiting entry of a contact, or None."""

    @abstractmethod
    async def claim_best(
        self, agent_skills: Iterable[str], channel_classes: Iterable[str]
    ) -> WaitingContact | None:
        """Atomically take the best (lowest score) waiting contact whose requirements are all in
        `agent_skills` and whose channel class is one of `channel_classes`. The contact is removed
        from waiting: no other caller, in any process, can take it too."""

    @abstractmethod
    async def rescore(self, contact_id: int, requirements: frozenset[str], score: float) -> bool:
        """Move a still-waiting contact to another bucket and/or score (escalation, priority
        raise), keeping its `enqueued_at`. Returns False (and changes nothing) if it is no longer
        waiting. Atomic with respect to `claim_best` and `withdraw`."""

    @abstractmethod
    async def waiting_since(
        self, enqueued_before: float, limit: int = 1000
    ) -> list[WaitingContact]:
        """Contacts enqueued at or before `enqueued_before`, oldest first (escalation sweeps)."""

    @abstractmethod
    async def stats(self) -> dict[str, QueueStats]:
        """Per queue with anything waiting: the number waiting and the oldest `enqueued_at`."""

    @abstractmethod
    async def count(self) -> int:
        """All waiting contacts."""

    @abstractmethod
    async def ahead(self, contact_id: int) -> int | None:
        """How many waiting contacts of the same queue and channel class are served before this
        one (lower score; ties: earlier `enqueued_at`, then lower id), over all its buckets: a
        caller's place in line. None when the contact is not waiting. Costs a look at every
        contact of that queue and class, so it is for small (phone) queues."""

    # --- agent presence -----------------------------------------------------------------------

    @abstractmethod
    async def put_agent(self, presence: AgentPresence) -> None:
        """Add or replace an agent's presence (sign-in, status or skill change, rebuild)."""

    @abstractmethod
    async def remove_agent(self, agent_id: int) -> None: ...

    @abstractmethod
    async def get_agent(self, agent_id: int) -> AgentPresence | None: ...

    @abstractmethod
    async def agents(self) -> list[AgentPresence]:
        """Every present agent (any status)."""

    async def ready_agents(self) -> list[AgentPresence]:
        """Agents who are available and have room for at least one more contact of some
        channel kind: the only ones a new contact can go to. Backends keep this cheap even with
        many agents signed in and all of them busy."""
        return [
            agent
            for agent in await self.agents()
            if agent.status == "available" and any(agent.spare(c) > 0 for c in agent.capacity)
        ]

    @abstractmethod
    async def set_status(self, agent_id: int, status: str, now: float) -> AgentPresence | None:
        """Change an agent's status; becoming available with no load resets `idle_since`."""

    @abstractmethod
    async def reserve(self, agent_id: int, channel_class: str) -> bool:
        """Atomically add one contact of `channel_class` to the agent's load, only if the agent is
        available and has spare capacity for it. Returns whether it did."""

    @abstractmethod
    async def release(self, agent_id: int, channel_class: str, now: float) -> None:
        """Take one contact of `channel_class` off the agent's load (never below zero). When the
        agent's total load becomes zero, `idle_since` becomes `now`."""

    # --- lifecycle ----------------------------------------------------------------------------

    @abstractmethod
    async def reset(self) -> None:
        """Forget everything (before a rebuild from the database)."""

    @abstractmethod
    async def mark_built(self) -> None:
        """Record that the index was (re)built from the database."""

    @abstractmethod
    async def is_built(self) -> bool:
        """False after a flush or on a fresh store: the router must rebuild from the database."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
