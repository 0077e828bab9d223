"""The one entrance for every channel: an adapter turns its provider's format into an
`InboundMessage`, and `Intake.receive` makes it a durable, classified, queued contact.

Order matters for "nothing lost": files first (content-addressed, so a retry rewrites nothing),
then one database transaction, then the queue index (rebuilt from the database if we crash
between the two), and only then does the adapter answer its provider.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from contacts.attachments import AttachmentStore
from contacts.inbound import InboundMessage
from contacts.intake_writer import IntakeResult, PlanFn
from contacts.models import Status
from contacts.store import ContactStore, TransitionError
from kcc.clock import Clock
from kcc.metrics import Metrics
from router.router import Router

log = logging.getLogger(__name__)

# Wraps the router's plan so a new contact also gets its SLA deadlines and timers, stored in the
# same transaction (sla/timers.py: SlaEngine.with_deadlines). Called with the intake moment.
DeadlineFn = Callable[[PlanFn, datetime], PlanFn]


class Intake:
    def __init__(
        self,
        store: ContactStore,
        router: Router,
        attachments: AttachmentStore,
        clock: Clock,
        metrics: Metrics,
        deadlines: DeadlineFn | None = None,
    ) -> None:
        self.store = store
        self.deadlines = deadlines
        self.router = router
        self.attachments = attachments
        self.clock = clock
        self.metrics = metrics

    async def receive(self, inbound: InboundMessage) -> IntakeResult:
        inbound = inbound.validated()
        stored = []
        for attachment in inbound.attachments:
            digest, key = await self.attachments.save(attachment.data)
            stored.append(
                (
                    attachment.filename[:255] or "bijlage",
                    attachment.content_type[:127],
                    len(attachment.data),
                    digest,
                    key,
                )
            )
        now = self.clock.now()
        plan: PlanFn = self.router.planner.plan
        if self.deadlines is not None:
            plan = self.deadlines(plan, now)
        result = await self.store.receive(inbound, plan, now, stored)
        self.metrics.contacts_received.labels(inbound.channel, result.outcome).inc()
        if result.outcome == "created":
            await self.router.enqueue(result.contact)
            log.debug(
                "contact %s received on %s, queue %s",
                result.contact.reference,
                inbound.channel,
                result.contact.queue,
            )
        elif result.outcome == "follow_up":
            await self._resume(result)
        return result

    async def _resume(self, result: IntakeResult) -> None:
        """The resident answered a question we asked: the contact goes back to work."""
        contact = result.contact
        if contact.status != Status.waiting_on_resident:
            return
        agent_id = contact.assigned_agent_id
        channel_class = self.router.planner.channel_class(contact.channel)
        if agent_id is not None and await self.router.backend.reserve(agent_id, channel_class):
            try:
                resumed = await self.store.change(
                    contact.id or 0,
                    Status.assigned,
                    "system:router",
                    self.clock.now(),
                    reason="inwoner reageerde: terug naar dezelfde medewerker",
                    expect_status=Status.waiting_on_resident,
                    taken_at=None,
                )
            except TransitionError:
                # Another message of the resident resumed it a moment ago: give the slot back.
                await self.router.backend.release(
                    agent_id, channel_class, self.clock.now().timestamp()
                )
                return
            self.router.announce(resumed, agent_id)
        else:
            try:
                await self.router.requeue(
                    contact,
                    "system:router",
                    "inwoner reageerde",
                    expect_status=Status.waiting_on_resident,
                )
            except TransitionError:
                return  # already back in work through a concurrent message
