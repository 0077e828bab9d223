"""Persistence of contacts: the database is the source of truth, every change is one transaction.

Every status change goes through `_transition`, which checks the lifecycle table and appends a
`ContactEvent`; nothing here updates or deletes an event. Claims are conditional updates
(`... WHERE status = 'queued'`), so two routers in two processes can never both assign a contact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from contacts import intake_writer
from contacts.group_commit import GroupCommit
from contacts.inbound import InboundMessage
from contacts.intake_writer import BatchItem, IntakeResult, PlanFn, StoredFile
from contacts.models import (
    HELD_STATUSES,
    TRANSITIONS,
    Agent,
    Attachment,
    Contact,
    ContactEvent,
    Conversation,
    Direction,
    Message,
    Resident,
    Status,
)


class TransitionError(ValueError):
    """A status change the lifecycle does not allow (e.g. replying to a closed contact)."""


CLAIM = (
    sa.update(intake_writer.CONTACT)
    .where(
        intake_writer.CONTACT.c.id == sa.bindparam("b_id"),
        intake_writer.CONTACT.c.status == Status.queued.value,
    )
    .values(
        status=Status.assigned.value,
        assigned_agent_id=sa.bindparam("b_agent"),
        assigned_at=sa.bindparam("b_now"),
        taken_at=sa.bindparam("b_taken"),
    )
    .returning(*intake_writer.CONTACT.c)
)
INSERT_EVENT = intake_writer.INSERT_EVENT

Written = TypeVar("Written", IntakeResult, IntakeResult | BaseException)


@dataclass(frozen=True)
class _Pending:
    inbound: InboundMessage
    plan: PlanFn
    now: datetime
    attachments: Sequence[StoredFile]


class ContactStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        readers: async_sessionmaker[AsyncSession] | None = None,
        sync_writer: Engine | None = None,
        max_batch: int = 64,
    ) -> None:
        """`sync_writer`: a synchronous SQLite engine for the intake path (None on PostgreSQL,
        where concurrent batches run on asyncpg)."""
        self.sessions = sessions
        self.readers = readers or sessions
        self._sync_writer = sync_writer
        self._sequences: set[int] = set()
        self._intake_batch: GroupCommit[_Pending, IntakeResult] = GroupCommit(
            self._receive_batch, max_batch, concurrency=1 if sync_writer else 12
        )

    # --- intake -----------------------------------------------------------------------------

    async def receive(
        self,
        inbound: InboundMessage,
        plan: PlanFn,
        now: datetime,
        stored_attachments: Sequence[StoredFile] = (),
    ) -> IntakeResult:
        """Make an inbound message durable: a new contact, a follow-up on the open contact of its
        conversation, or — when the channel already delivered it — the existing contact.

        Returns only after the commit. Concurrent calls share one transaction (group commit, a
        savepoint each), so a burst of messages costs one disk flush instead of one per message.
        `stored_attachments`: files the caller already wrote to the attachment store
        (content-addressed, so a retry is harmless).
        """
        return await self._intake_batch.submit(_Pending(inbound, plan, now, stored_attachments))

    async def _receive_batch(self, batch: Sequence[_Pending]) -> list[IntakeResult | BaseException]:
        items = [(p.inbound, p.plan, p.now, p.attachments) for p in batch]
        if self._sync_writer is None:
            await self._ensure_sequences({(p.inbound.received_at or p.now).year for p in batch})
        results: list[IntakeResult | BaseException]
        try:
            # Optimistic: the whole batch in one go, no savepoint per message (the common case).
            stored = await self._write(intake_writer.receive_all, items)
            results = list(stored)
        except Exception as error:
            if len(batch) == 1:
                results = [error]
            else:  # something in it failed and nothing was stored: isolate each message
                results = await self._write(intake_writer.receive_each, items)
        for index, result in enumerate(results):
            if isinstance(result, IntegrityError):
                # Another process stored the same provider message meanwhile: answer with it.
                item = batch[index].inbound
                existing = await self.find_message(item.channel, item.channel_message_id)
                if existing is not None:
                    results[index] = IntakeResult(existing[0], "duplicate", existing[1])
        return results

    async def _write(
        self,
        write: Callable[[Connection, Sequence[BatchItem]], list[Written]],
        items: list[BatchItem],
    ) -> list[Written]:
        """Run a synchronous batch writer in one transaction: on SQLite in a worker thread on
        the standard driver, on PostgreSQL on asyncpg through `run_sync`."""
        if self._sync_writer is not None:
            writer = self._sync_writer

            def in_thread() -> list[Written]:
                with writer.begin() as connection:
                    return write(connection, items)

            return await asyncio.to_thread(in_thread)
        async with self.sessions() as session, session.begin():
            connection = await session.connection()
            return await connection.run_sync(write, items)

    async def _ensure_sequences(self, years: set[int]) -> None:
        for year in years - self._sequences:
            async with self.sessions() as session, session.begin():
                connection = await session.connection()
                await connection.run_sync(intake_writer.ensure_reference_sequence, year)
            self._sequences.add(year)

    # --- reads --------------------------------------------------------------------------------

    async def find_message(
        self, channel: str, channel_message_id: str
    ) -> tuple[Contact, Message] | None:
        async with self.readers() as session:
            row = (
                await session.execute(
                    select(Contact, Message)
                    .join(Message, col(Message.contact_id) == col(Contact.id))
                    .where(Message.channel == channel)
                    .where(Message.channel_message_id == channel_message_id)
                )
            ).first()
            return (row[0], row[1]) if row else None

    async def get(self, contact_id: int) -> Contact | None:
        async with self.readers() as session:
            return await session.get(Contact, contact_id)

    async def by_reference(self, reference: str) -> Contact | None:
        async with self.readers() as session:
            return (
                await session.execute(select(Contact).where(Contact.reference == reference))
            ).scalar_one_or_none()

    async def resident(self, resident_id: int | None) -> Resident | None:
        if resident_id is None:
            return None
        async with self.readers() as session:
            return await session.get(Resident, resident_id)

    async def messages(self, contact_id: int) -> list[Message]:
        async with self.readers() as session:
            rows = await session.execute(
                select(Message).where(Message.contact_id == contact_id).order_by(col(Message.id))
            )
            return list(rows.scalars())

    async def events(self, contact_id: int) -> list[ContactEvent]:
        async with self.readers() as session:
            rows = await session.execute(
                select(ContactEvent)
                .where(ContactEvent.contact_id == contact_id)
                .order_by(col(ContactEvent.id))
            )
            return list(rows.scalars())

    async def attachments(self, contact_id: int) -> list[Attachment]:
        async with self.readers() as session:
            rows = await session.execute(
                select(Attachment).where(Attachment.contact_id == contact_id)
            )
            return list(rows.scalars())

    async def history(self, resident_id: int | None, limit: int = 50) -> list[Contact]:
        """The resident's contacts on every channel, newest first ("tell your story once")."""
        if resident_id is None:
            return []
        async with self.readers() as session:
            rows = await session.execute(
                select(Contact)
                .where(Contact.resident_id == resident_id)
                .order_by(col(Contact.received_at).desc())
                .limit(limit)
            )
            return list(rows.scalars())

    async def queued(self) -> list[Contact]:
        """Every contact that should be waiting in a queue (for rebuilding the queue index)."""
        async with self.readers() as session:
            rows = await session.execute(
                select(Contact).where(Contact.status == Status.queued).order_by(col(Contact.id))
            )
            return list(rows.scalars())

    async def held_loads(self) -> dict[int, dict[str, int]]:
        """Per agent and channel: how many contacts the agent holds (for rebuilding presence)."""
        async with self.readers() as session:
            rows = await session.execute(
                select(Contact.assigned_agent_id, Contact.channel, sa.func.count())
                .where(col(Contact.status).in_([s.value for s in HELD_STATUSES]))
                .where(col(Contact.assigned_agent_id).is_not(None))
                .group_by(col(Contact.assigned_agent_id), col(Contact.channel))
            )
            loads: dict[int, dict[str, int]] = {}
            for agent_id, channel, count in rows:
                loads.setdefault(agent_id, {})[channel] = count
            return loads

    async def offered_to(self, agent_id: int) -> list[Contact]:
        """Contacts the router assigned to this agent that the agent has not taken yet."""
        async with self.readers() as session:
            rows = await session.execute(
                select(Contact)
                .where(Contact.assigned_agent_id == agent_id)
                .where(Contact.status == Status.assigned)
                .where(col(Contact.taken_at).is_(None))
                .order_by(col(Contact.priority).desc(), col(Contact.assigned_at))
            )
            return list(rows.scalars())

    async def open_for_agent(self, agent_id: int) -> list[Contact]:
        async with self.readers() as session:
            rows = await session.execute(
                select(Contact)
                .where(Contact.assigned_agent_id == agent_id)
                .where(col(Contact.status).in_([s.value for s in HELD_STATUSES]))
                .order_by(col(Contact.assigned_at))
            )
            return list(rows.scalars())

    async def last_agent_of_contact_conversation(self, contact_id: int) -> int | None:
        """Who handled this contact's conversation before (for sticky routing), in one query."""
        async with self.readers() as session:
            return (
                await session.execute(
                    select(Conversation.last_agent_id)
                    .join(Contact, col(Contact.conversation_id) == col(Conversation.id))
                    .where(Contact.id == contact_id)
                )
            ).scalar_one_or_none()

    async def conversation(self, conversation_id: int | None) -> Conversation | None:
        if conversation_id is None:
            return None
        async with self.readers() as session:
            return await session.get(Conversation, conversation_id)

    # --- lifecycle ----------------------------------------------------------------------------

    async def assign_if_queued(
        self, contact_id: int, agent_id: int, now: datetime, reason: str, taken: bool = False
    ) -> Contact | None:
        """The authoritative claim: succeeds for exactly one caller, in any process. Two
        statements (a conditional UPDATE ... RETURNING and the event), one commit."""
        async with self.sessions() as session, session.begin():
            connection = await session.connection()
            row = (
                await connection.execute(
                    CLAIM,
                    {
                        "b_id": contact_id,
                        "b_agent": agent_id,
                        "b_now": now,
                        "b_taken": now if taken else None,
                    },
                )
            ).first()
            if row is None:
                return None
            await connection.execute(
                INSERT_EVENT,
                [
                    {
                        "contact_id": contact_id,
                        "at": now,
                        "type": "status",
                        "from_status": Status.queued.value,
                        "to_status": Status.assigned.value,
                        "actor": "system:router",
                        "reason": reason,
                        "data": {"agent_id": agent_id},
                    }
                ],
            )
            return Contact(**row._asdict())

    async def mark_taken(self, contact_id: int, agent_id: int, now: datetime) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                sa.update(Contact)
                .where(col(Contact.id) == contact_id)
                .where(col(Contact.assigned_agent_id) == agent_id)
                .where(col(Contact.taken_at).is_(None))
                .values(taken_at=now)
            )

    async def change(
        self,
        contact_id: int,
        to_status: Status,
        actor: str,
        now: datetime,
        reason: str | None = None,
        event_type: str = "status",
        data: dict[str, Any] | None = None,
        expect_agent: int | None = None,
        expect_status: Status | None = None,
        **fields: Any,
    ) -> Contact:
        """Move a contact along its lifecycle, with the given field updates, in one transaction.

        `expect_agent`: refuse unless the contact is assigned to this agent (an agent acts only on
        their own contacts). `expect_status`: refuse unless the contact is (still) in this status,
        so of two concurrent callers only one makes the move."""
        async with self.sessions() as session, session.begin():
            contact = (
                await session.execute(
                    select(Contact).where(Contact.id == contact_id).with_for_update()
                )
            ).scalar_one_or_none()
            if contact is None:
                raise TransitionError("contact not found")
            if expect_agent is not None and contact.assigned_agent_id != expect_agent:
                raise TransitionError("this contact is not assigned to you")
            if expect_status is not None and contact.status != expect_status:
                raise TransitionError(f"the contact is no longer {expect_status}")
            self._transition(session, contact, to_status, actor, now, reason, event_type, data)
            for name, value in fields.items():
                setattr(contact, name, value)
            session.add(contact)
            if to_status == Status.closed and contact.conversation_id and contact.assigned_agent_id:
                conversation = await session.get(Conversation, contact.conversation_id)
                if conversation is not None:
                    conversation.last_agent_id = contact.assigned_agent_id
                    session.add(conversation)
            return contact

    @staticmethod
    def _transition(
        session: AsyncSession,
        contact: Contact,
        to_status: Status,
        actor: str,
        now: datetime,
        reason: str | None,
        event_type: str,
        data: dict[str, Any] | None,
    ) -> None:
        current = Status(contact.status)
        if to_status != current and to_status not in TRANSITIONS[current]:
            raise TransitionError(f"a contact that is {current} cannot become {to_status}")
        session.add(
            ContactEvent(
                contact_id=contact.id or 0,
                at=now,
                type=event_type,
                from_status=current,
                to_status=to_status,
                actor=actor,
                reason=reason,
                data=data or {},
            )
        )
        contact.status = to_status

    async def record_outbound(
        self,
        contact_id: int,
        agent_id: int | None,
        channel: str,
        body: str,
        now: datetime,
        channel_message_id: str,
        purpose: str = "reply",
        variables: dict[str, str] | None = None,
        article: tuple[str, int] | None = None,
    ) -> Message:
        """Durable before anything is sent; `sending` with an attempt time, so a process that
        dies while sending leaves a message the retry finds (stale) instead of losing it."""
        async with self.sessions() as session, session.begin():
            message = Message(
                contact_id=contact_id,
                channel=channel,
                direction=Direction.outbound,
                channel_message_id=channel_message_id,
                at=now,
                agent_id=agent_id,
                body=body,
                delivery_status="sending",
                purpose=purpose,
                variables=variables or {},
                attempt_at=now,
                article_slug=article[0] if article else None,
                article_version=article[1] if article else None,
            )
            session.add(message)
            await session.flush()
            return message

    async def set_delivery(
        self,
        message_id: int,
        status: str,
        detail: str | None = None,
        channel_message_id: str | None = None,
        *,
        never_tried: bool = False,
    ) -> None:
        """`never_tried`: no channel could take it yet, so the retry need not back off."""
        values: dict[str, Any] = {"delivery_status": status, "delivery_detail": detail}
        if channel_message_id:
            values["channel_message_id"] = channel_message_id
        if never_tried:
            values["attempt_at"] = None
        async with self.sessions() as session, session.begin():
            await session.execute(
                sa.update(Message).where(col(Message.id) == message_id).values(**values)
            )

    async def set_delivery_by_provider_id(
        self,
        channel: str,
        provider_id: str,
        status: str,
        detail: str | None = None,
        only_from: Sequence[str] | None = None,
    ) -> Message | None:
        """A provider's status callback (sent, delivered, read, failed) on one of our messages.
        `only_from`: change it only while its status is one of these (callbacks arrive out of
        order; a read message must not go back to sent). None when nothing changed."""
        conditions = [
            col(Message.channel) == channel,
            col(Message.channel_message_id) == provider_id,
            col(Message.direction) == Direction.outbound,
        ]
        if only_from is not None:
            conditions.append(col(Message.delivery_status).in_(list(only_from)))
        async with self.sessions() as session, session.begin():
            row = await session.execute(
                sa.update(Message)
                .where(*conditions)
                .values(delivery_status=status, delivery_detail=detail)
                .returning(*Message.__table__.c)  # type: ignore[attr-defined]
            )
            found = row.first()
            return Message.model_validate(dict(found._mapping)) if found else None

    async def claim_unsent(
        self,
        now: datetime,
        stale_before: datetime,
        channels: Sequence[str],
        retry_before: datetime | None = None,
        limit: int = 100,
    ) -> list[Message]:
        """Outbound messages to hand to their channel again: queued ones last tried before
        `retry_before` (a back-off while a provider is down), and `sending` ones whose process
        died; on the given channels only (without a sender there is nothing to try). Each is
        claimed with a conditional update, so of several processes only one sends it."""
        if not channels:
            return []
        retry_before = retry_before or now
        query = (
            select(Message)
            .where(
                col(Message.direction) == Direction.outbound,
                col(Message.channel).in_(list(channels)),
                sa.or_(
                    sa.and_(
                        col(Message.delivery_status) == "queued",
                        sa.or_(
                            col(Message.attempt_at).is_(None),
                            col(Message.attempt_at) <= retry_before,
                        ),
                    ),
                    sa.and_(
                        col(Message.delivery_status) == "sending",
                        col(Message.attempt_at) < stale_before,
                    ),
                ),
            )
            .order_by(col(Message.id))
            .limit(limit)
        )
        async with self.readers() as session:
            candidates = (await session.execute(query)).scalars().all()
        claimed = []
        for message in candidates:
            async with self.sessions() as session, session.begin():
                result = await session.execute(
                    sa.update(Message)
                    .where(
                        col(Message.id) == message.id,
                        col(Message.delivery_status) == message.delivery_status,
                        sa.or_(
                            col(Message.attempt_at).is_(None),
                            col(Message.attempt_at) == message.attempt_at,
                        ),
                    )
                    .values(delivery_status="sending", attempt_at=now)
                )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                message.delivery_status, message.attempt_at = "sending", now
                claimed.append(message)
        return claimed

    async def add_event(
        self,
        contact_id: int,
        now: datetime,
        event_type: str,
        actor: str,
        reason: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        async with self.sessions() as session, session.begin():
            session.add(
                ContactEvent(
                    contact_id=contact_id,
                    at=now,
                    type=event_type,
                    actor=actor,
                    reason=reason,
                    data=data or {},
                )
            )

    async def update_routing(
        self,
        contact_id: int,
        *,
        priority: int | None = None,
        escalation_level: int | None = None,
    ) -> None:
        values: dict[str, Any] = {}
        if priority is not None:
            values["priority"] = priority
        if escalation_level is not None:
            values["escalation_level"] = escalation_level
        if not values:
            return
        async with self.sessions() as session, session.begin():
            await session.execute(
                sa.update(Contact).where(col(Contact.id) == contact_id).values(**values)
            )

    async def set_deadlines(
        self,
        contact_id: int,
        ack_due: datetime | None,
        answer_due: datetime | None,
        at_risk_at: datetime | None,
    ) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                sa.update(Contact)
                .where(col(Contact.id) == contact_id)
                .values(ack_due=ack_due, answer_due=answer_due, at_risk_at=at_risk_at)
            )

    async def due_for_escalation(
        self, channels: Sequence[str], level: int, enqueued_before: datetime, limit: int = 500
    ) -> list[Contact]:
        """Queued contacts on these channels, still at `level`, that arrived before the cut-off."""
        async with self.readers() as session:
            rows = await session.execute(
                select(Contact)
                .where(Contact.status == Status.queued)
                .where(Contact.escalation_level == level)
                .where(col(Contact.enqueued_at) <= enqueued_before)
                .where(col(Contact.channel).in_(list(channels)))
                .order_by(col(Contact.enqueued_at))
                .limit(limit)
            )
            return list(rows.scalars())

    async def escalate(
        self,
        contact_id: int,
        from_level: int,
        to_level: int,
        now: datetime,
        reason: str,
        requirements: list[str],
    ) -> bool:
        """Raise the escalation level once, whichever router process gets there first."""
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                sa.update(Contact)
                .where(col(Contact.id) == contact_id)
                .where(col(Contact.status) == Status.queued)
                .where(col(Contact.escalation_level) == from_level)
                .values(escalation_level=to_level)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return False
            session.add(
                ContactEvent(
                    contact_id=contact_id,
                    at=now,
                    type="escalation",
                    actor="system:router",
                    reason=reason,
                    data={"level": to_level, "requirements": requirements},
                )
            )
            return True

    async def queued_count(self) -> int:
        async with self.readers() as session:
            return int(
                (
                    await session.execute(
                        select(sa.func.count())
                        .select_from(Contact)
                        .where(Contact.status == Status.queued)
                    )
                ).scalar_one()
            )

    async def due_for_priority_raise(self, now: datetime, limit: int = 500) -> list[Contact]:
        async with self.readers() as session:
            rows = await session.execute(
                select(Contact)
                .where(col(Contact.at_risk_at) <= now)
                .where(Contact.status == Status.queued)
                .order_by(col(Contact.at_risk_at))
                .limit(limit)
            )
            return list(rows.scalars())

    async def raise_priority(self, contact_id: int, priority: int, now: datetime) -> bool:
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                sa.update(Contact)
                .where(col(Contact.id) == contact_id)
                .where(col(Contact.at_risk_at).is_not(None))
                .values(priority=priority, at_risk_at=None)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return False
            session.add(
                ContactEvent(
                    contact_id=contact_id,
                    at=now,
                    type="priority",
                    actor="system:router",
                    reason="termijn nadert: prioriteit verhoogd",
                    data={"priority": priority},
                )
            )
            return True

    # --- agents -------------------------------------------------------------------------------

    async def add_agent(self, agent: Agent) -> Agent:
        async with self.sessions() as session, session.begin():
            session.add(agent)
            await session.flush()
            return agent

    async def agent_by_token_hash(self, token_hash: str) -> Agent | None:
        async with self.readers() as session:
            return (
                await session.execute(
                    select(Agent).where(Agent.token_hash == token_hash).where(col(Agent.active))
                )
            ).scalar_one_or_none()

    async def agent(self, agent_id: int) -> Agent | None:
        async with self.readers() as session:
            return await session.get(Agent, agent_id)

    async def agents(self) -> list[Agent]:
        async with self.readers() as session:
            return list((await session.execute(select(Agent).order_by(col(Agent.id)))).scalars())

    async def set_agent_status(self, agent_id: int, status: str, now: datetime) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                sa.update(Agent)
                .where(col(Agent.id) == agent_id)
                .values(status=status, status_since=now)
            )
