"""The router: places contacts in skill-based queues and hands them to the best available agent.

Event-driven: a queued contact or a freed agent is an event on an asyncio queue, handled by one
worker task per process, so HTTP handlers never wait for routing. A periodic `sweep` escalates
long waits, raises priorities near deadlines, rebuilds the queue index after a crash or flush and
matches anything an event missed.

Who gets what: a contact goes to the agent who handled its conversation before when that agent is
free (sticky), else to the longest-idle available agent with all the skills it needs and spare
capacity for its channel kind. A freed agent gets the best waiting contact they can serve (highest
priority, then oldest). The database's conditional update is the final word on every claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from contacts.intake_writer import RoutePlan
from contacts.models import Agent, AgentStatus, Contact, Status
from contacts.store import ContactStore, TransitionError
from kcc.clock import Clock
from queues.base import AgentPresence, QueueBackend, WaitingContact
from router.planner import RoutePlanner, queue_score

log = logging.getLogger(__name__)

SYSTEM = "system:router"


@dataclass(frozen=True)
class ContactQueued:
    contact_id: int


@dataclass(frozen=True)
class AgentFreed:
    agent_id: int


Event = ContactQueued | AgentFreed
AssignmentListener = Callable[[Contact, int], None]


def epoch(moment: datetime) -> float:
    return moment.timestamp()


class Router:
    def __init__(
        self,
        store: ContactStore,
        backend: QueueBackend,
        planner: RoutePlanner,
        clock: Clock,
    ) -> None:
        self.store = store
        self.backend = backend
        self.planner = planner
        self.clock = clock
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self.listeners: list[AssignmentListener] = []
        # One lock per agent: an offer the router is making and the agent's own "next" must not
        # cross, or the agent hears "nothing for you" while a contact is on its way to them.
        self._agent_locks: dict[int, asyncio.Lock] = {}
        self._last_reconcile: datetime | None = None
        self._sweeping = asyncio.Lock()
        self._index_short = False

    def _lock(self, agent_id: int) -> asyncio.Lock:
        return self._agent_locks.setdefault(agent_id, asyncio.Lock())

    # --- running ------------------------------------------------------------------------------

    async def start(self) -> None:
        if not await self.backend.is_built():
            await self.rebuild()
        self._worker = asyncio.create_task(self._work(), name="router-events")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    async def idle(self) -> None:
        """Wait until every event so far is handled (tests and simulations)."""
        await self._events.join()

    def notify(self, event: Event) -> None:
        self._events.put_nowait(event)

    async def _work(self) -> None:
        while True:
            event = await self._events.get()
            try:
                if isinstance(event, ContactQueued):
                    await self.assign_contact(event.contact_id)
                else:
                    await self.fill_agent(event.agent_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The sweep retries whatever an event failed to place; keep routing the rest.
                log.exception("routing event %s failed", type(event).__name__)
            finally:
                self._events.task_done()

    # --- the queue index ----------------------------------------------------------------------

    def waiting_entry(self, contact: Contact) -> WaitingContact:
        assert contact.id is not None and contact.queue is not None
        enqueued = epoch(contact.enqueued_at or contact.received_at)
        return WaitingContact(
            contact_id=contact.id,
            queue=contact.queue,
            requirements=self.planner.requirements(
                contact.skills, contact.channel, contact.escalation_level
            ),
            channel_class=self.planner.channel_class(contact.channel),
            score=queue_score(contact.priority, enqueued),
            enqueued_at=enqueued,
        )

    async def enqueue(self, contact: Contact) -> None:
        """Put a contact that the database says is queued into the index and try to place it."""
        await self.backend.enqueue(self.waiting_entry(contact))
        self.notify(ContactQueued(contact.id or 0))

    async def rebuild(self) -> None:
        """Make the index match the database again (start-up after a crash, a Redis flush)."""
        await self.backend.reset()
        queued = await self.store.queued()
        for contact in queued:
            await self.backend.enqueue(self.waiting_entry(contact))
        loads = await self.store.held_loads()
        present = 0
        for agent in await self.store.agents():
            if agent.status == AgentStatus.offline or not agent.active or agent.id is None:
                continue
            await self.backend.put_agent(self.presence(agent, loads.get(agent.id, {})))
            present += 1
        await self.backend.mark_built()
        log.info(
            "queue index rebuilt: %d contacts waiting, %d agents present", len(queued), present
        )

    def presence(self, agent: Agent, load_by_channel: dict[str, int]) -> AgentPresence:
        load: dict[str, int] = {}
        for channel, count in load_by_channel.items():
            channel_class = self.planner.channel_class(channel)
            load[channel_class] = load.get(channel_class, 0) + count
        return AgentPresence(
            agent_id=agent.id or 0,
            skills={skill: level for skill, level in agent.skills.items() if level > 0},
            capacity=dict(agent.capacity),
            load=load,
            status=agent.status,
            idle_since=epoch(agent.status_since),
        )

    # --- assignment ---------------------------------------------------------------------------

    async def assign_contact(self, contact_id: int) -> int | None:
        """Offer a waiting contact to the best free agent. Returns the agent id, or None."""
        item = await self.backend.get(contact_id)
        if item is None:
            return None
        candidates = [
            agent
            for agent in await self.backend.ready_agents()
            if agent.can_take(item.channel_class) and agent.serves(item.requirements)
        ]
        if not candidates:
            return None  # it waits; a freed agent will find it (no database work meanwhile)
        sticky = await self.store.last_agent_of_contact_conversation(contact_id)
        candidates.sort(key=lambda a: (a.agent_id != sticky, a.idle_since, a.agent_id))
        for agent in candidates:
            async with self._lock(agent.agent_id):
                if not await self.backend.reserve(agent.agent_id, item.channel_class):
                    continue  # another router filled this agent a moment ago
                if await self.backend.withdraw(contact_id) is None:
                    await self.backend.release(agent.agent_id, item.channel_class, self._now())
                    return None  # another router placed the contact
                reason = (
                    "zelfde medewerker als vorig contact"
                    if agent.agent_id == sticky
                    else "langst beschikbare medewerker met de vaardigheden"
                )
                assigned = await self.store.assign_if_queued(
                    contact_id, agent.agent_id, self.clock.now(), reason
                )
                if assigned is None:
                    await self.backend.release(agent.agent_id, item.channel_class, self._now())
                    return None
            self.announce(assigned, agent.agent_id)
            return agent.agent_id
        return None

    async def fill_agent(self, agent_id: int) -> list[Contact]:
        """Offer a freed agent the best contacts they can serve, up to their capacity."""
        offered = []
        async with self._lock(agent_id):
            while (contact := await self._claim_for(agent_id, taken=False)) is not None:
                offered.append(contact)
        for contact in offered:
            self.announce(contact, agent_id)
        return offered

    async def next_for_agent(self, agent_id: int) -> Contact | None:
        """The agent asks for work: an offer already made to them, else the best contact now."""
        async with self._lock(agent_id):
            now = self.clock.now()
            for contact in await self.store.offered_to(agent_id):
                await self.store.mark_taken(contact.id or 0, agent_id, now)
                contact.taken_at = now
                return contact
            claimed = await self._claim_for(agent_id, taken=True)
        if claimed is not None:
            self.announce(claimed, agent_id)
        return claimed

    async def _claim_for(self, agent_id: int, taken: bool) -> Contact | None:
        presence = await self.backend.get_agent(agent_id)
        if presence is None:
            return None
        classes = [c for c in presence.capacity if presence.can_take(c)]
        skills = list(presence.skills)
        while classes:
            item = await self.backend.claim_best(skills, classes)
            if item is None:
                return None
            if not await self.backend.reserve(agent_id, item.channel_class):
                # Capacity went elsewhere meanwhile: give the contact its place back.
                await self.backend.enqueue(item)
                classes.remove(item.channel_class)
                continue
            contact = await self.store.assign_if_queued(
                item.contact_id,
                agent_id,
                self.clock.now(),
                "medewerker vroeg om werk" if taken else "medewerker kwam vrij",
                taken=taken,
            )
            if contact is None:
                # A stale index entry (already assigned or closed elsewhere): drop it and go on.
                await self.backend.release(agent_id, item.channel_class, self._now())
                continue
            return contact
        return None

    def announce(self, contact: Contact, agent_id: int) -> None:
        for listener in self.listeners:
            listener(contact, agent_id)

    def _now(self) -> float:
        return epoch(self.clock.now())

    # --- agents -------------------------------------------------------------------------------

    async def set_agent_status(self, agent: Agent, status: AgentStatus) -> AgentPresence | None:
        assert agent.id is not None
        now = self.clock.now()
        await self.store.set_agent_status(agent.id, status, now)
        agent.status = status
        agent.status_since = now
        if status in (AgentStatus.away, AgentStatus.busy, AgentStatus.offline):
            # Offers not yet taken must not wait on an empty desk.
            async with self._lock(agent.id):
                for offered in await self.store.offered_to(agent.id):
                    await self.requeue(
                        offered, SYSTEM, f"medewerker is {status.value}: terug in de wachtrij"
                    )
        if status == AgentStatus.offline:
            await self.backend.remove_agent(agent.id)
            return None
        presence = await self.backend.get_agent(agent.id)
        if presence is None:
            loads = await self.store.held_loads()
            await self.backend.put_agent(self.presence(agent, loads.get(agent.id, {})))
        presence = await self.backend.set_status(agent.id, status, epoch(now))
        if status == AgentStatus.available:
            self.notify(AgentFreed(agent.id))
        return presence

    async def release(self, contact: Contact, agent_id: int) -> None:
        """The agent no longer holds this contact: free the capacity and look for more work."""
        await self.backend.release(
            agent_id, self.planner.channel_class(contact.channel), self._now()
        )
        self.notify(AgentFreed(agent_id))

    # --- contact moves ------------------------------------------------------------------------

    async def transfer(
        self,
        contact: Contact,
        actor: str,
        note: str | None,
        *,
        queue: str | None = None,
        skill: str | None = None,
        expect_agent: int | None = None,
    ) -> Contact:
        """Send a contact to another queue or skill; it keeps its place in line (arrival time)."""
        config = self.planner.config
        if queue is not None and queue not in config.queues:
            raise TransitionError(f"unknown queue {queue!r}")
        if skill is not None and skill not in config.product_skills:
            raise TransitionError(f"unknown skill {skill!r}")
        new_skill = skill or next(
            (s for s in config.queues[queue or ""].skills if s in config.product_skills),
            None,
        )
        if new_skill is None:
            raise TransitionError("give a queue or a skill to transfer to")
        plan: RoutePlan = self.planner.route(
            contact.topic, new_skill, contact.kind, contact.language, contact.channel
        )
        target_queue = queue or plan.queue
        holder = contact.assigned_agent_id
        was_waiting = contact.status == Status.queued
        now = self.clock.now()
        data = {"from_queue": contact.queue, "to_queue": target_queue, "skills": plan.skills}
        await self.store.change(
            contact.id or 0,
            Status.transferred,
            actor,
            now,
            reason=note,
            event_type="transfer",
            data=data,
            expect_agent=expect_agent,
        )
        moved = await self.store.change(
            contact.id or 0,
            Status.queued,
            SYSTEM,
            now,
            reason="doorgezet naar wachtrij",
            queue=target_queue,
            skills=plan.skills,
            escalation_level=0,
            assigned_agent_id=None,
            assigned_at=None,
            taken_at=None,
        )
        if was_waiting:
            await self.backend.withdraw(moved.id or 0)
        if holder is not None and not was_waiting:
            await self.release(contact, holder)
        await self.enqueue(moved)
        return moved

    async def requeue(
        self, contact: Contact, actor: str, reason: str, expect_status: Status | None = None
    ) -> Contact:
        """Back to the queue (agent signs off with open work, resident's answer came in)."""
        holder = contact.assigned_agent_id
        moved = await self.store.change(
            contact.id or 0,
            Status.queued,
            actor,
            self.clock.now(),
            reason=reason,
            expect_status=expect_status,
            assigned_agent_id=None,
            assigned_at=None,
            taken_at=None,
        )
        if holder is not None and contact.status in (Status.assigned, Status.answered):
            await self.release(contact, holder)
        await self.enqueue(moved)
        return moved

    # --- the sweep ----------------------------------------------------------------------------

    async def sweep(self) -> None:
        """Periodic: rebuild if the index was lost, escalate, raise priorities, match leftovers."""
        async with self._sweeping:
            await self._sweep()

    async def wait_for_sweep(self) -> None:
        """Return once no sweep is running (a clean stop lets it finish instead of cutting it)."""
        async with self._sweeping:
            pass

    async def _sweep(self) -> None:
        if not await self.backend.is_built():
            log.warning("queue index missing (crash or flush): rebuilding from the database")
            await self.rebuild()
        now = self.clock.now()
        await self._raise_priorities(now)
        await self._escalate(now)
        if self._last_reconcile is None or (
            (now - self._last_reconcile).total_seconds() >= self.planner.config.reconcile_seconds
        ):
            self._last_reconcile = now
            await self.reconcile()
        for agent in await self.backend.agents():
            if agent.status == AgentStatus.available and any(
                agent.can_take(c) for c in agent.capacity
            ):
                self.notify(AgentFreed(agent.agent_id))

    async def _raise_priorities(self, now: datetime) -> None:
        for contact in await self.store.due_for_priority_raise(now):
            priority = self.planner.at_risk_priority(contact.channel)
            if priority <= contact.priority:
                priority = contact.priority
            if not await self.store.raise_priority(contact.id or 0, priority, now):
                continue
            contact.priority = priority
            entry = self.waiting_entry(contact)
            await self.backend.rescore(entry.contact_id, entry.requirements, entry.score)
            self.notify(ContactQueued(entry.contact_id))

    async def _escalate(self, now: datetime) -> None:
        """Per channel kind and step: the contacts whose wait just passed the step's threshold,
        found by an indexed query, escalated once (a conditional update) across processes."""
        config = self.planner.config
        for channel_class, steps in config.escalation.items():
            channels = [
                n for n, rule in config.channels.items() if rule.channel_class == channel_class
            ]
            for level, step in enumerate(steps):
                cutoff = now - timedelta(seconds=step.after_seconds)
                for contact in await self.store.due_for_escalation(channels, level, cutoff):
                    await self._escalate_one(contact, level, now)

    async def _escalate_one(self, contact: Contact, level: int, now: datetime) -> None:
        waited = (now - (contact.enqueued_at or contact.received_at)).total_seconds()
        requirements = self.planner.requirements(contact.skills, contact.channel, level + 1)
        if not await self.store.escalate(
            contact.id or 0,
            level,
            level + 1,
            now,
            f"na {int(waited)} s wachten: vaardigheden verbreed",
            sorted(requirements),
        ):
            return  # another router did it
        contact.escalation_level = level + 1
        entry = self.waiting_entry(contact)
        await self.backend.rescore(entry.contact_id, entry.requirements, entry.score)
        self.notify(ContactQueued(entry.contact_id))

    async def reconcile(self) -> int:
        """Put back in the index any queued contact it lost (a crash between an index claim and
        the database claim). Idempotent; a stale entry costs one failed claim later. Returns how
        many contacts were re-enqueued."""
        if await self.store.queued_count() <= await self.backend.count():
            self._index_short = False
            return 0
        if not self._index_short:
            # A claim in flight looks the same for a moment: act only if it is still so next time.
            self._index_short = True
            return 0
        self._index_short = False
        queued = await self.store.queued()
        for contact in queued:
            await self.backend.enqueue(self.waiting_entry(contact))
        for contact in queued:
            self.notify(ContactQueued(contact.id or 0))
        log.warning("queue index was missing contacts: %d queued contacts re-enqueued", len(queued))
        return len(queued)
