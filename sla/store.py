"""The SLA engine's database work: claiming due timers once across processes, and the
conditional updates that record what a timer did.

A claim is one statement, `UPDATE sla_timer SET run_at = <lease> ... WHERE id IN (SELECT ...
due ... LIMIT n [FOR UPDATE SKIP LOCKED]) RETURNING`: on PostgreSQL concurrent sweeps skip each
other's rows, on SQLite the statement holds the write lock. A claimed timer is finished
(`fired_at`) in the same transaction as its effect, with `WHERE fired_at IS NULL`, so an effect
is recorded once even when a lease ran out under a slow process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import SQLModel, col, select

from contacts.models import OPEN_STATUSES, Contact, ContactEvent, Direction, Message, Status

TIMER = SQLModel.metadata.tables["sla_timer"]
CONTACT = SQLModel.metadata.tables["contact"]
EVENT = SQLModel.metadata.tables["contactevent"]
OPEN = [s.value for s in OPEN_STATUSES]
RESCHEDULED_KINDS = ("warning", "answer_breach")


@dataclass(frozen=True)
class DueTimer:
    id: int
    contact_id: int
    kind: str
    due_at: datetime
    attempts: int


@dataclass(frozen=True)
class Decision:
    """What a fired timer records: its outcome and, applied once with it, a contact update
    (only while `only_if_null` is still empty) and a history event."""

    timer: DueTimer
    outcome: str
    contact_id: int | None = None
    values: dict[str, Any] = field(default_factory=dict)
    only_if_null: str | None = None
    event: dict[str, Any] | None = None


def _claim(
    now: datetime, lease_until: datetime, limit: int, timer_id: int | None, dialect: str
) -> Any:
    due = (
        sa.select(TIMER.c.id)
        .where(TIMER.c.fired_at.is_(None), TIMER.c.run_at <= now)
        .order_by(TIMER.c.run_at)
        .limit(limit)
    )
    if timer_id is not None:
        due = due.where(TIMER.c.id == timer_id)
    update = sa.update(TIMER).where(TIMER.c.fired_at.is_(None), TIMER.c.run_at <= now)
    if dialect == "postgresql":
        # A materialised CTE runs once: as an IN (subquery) PostgreSQL may run it again per
        # row, and with SKIP LOCKED each run finds other rows (a claim far beyond `limit`).
        chosen = due.with_for_update(skip_locked=True).cte("due").prefix_with("MATERIALIZED")
        update = update.where(TIMER.c.id == chosen.c.id)
    else:
        update = update.where(TIMER.c.id.in_(due.scalar_subquery()))
    return update.values(run_at=lease_until, attempts=TIMER.c.attempts + 1).returning(
        TIMER.c.id, TIMER.c.contact_id, TIMER.c.kind, TIMER.c.due_at, TIMER.c.attempts
    )


class SlaStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        readers: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self.sessions = sessions
        self.readers = readers or sessions

    async def claim_due(
        self, now: datetime, lease: timedelta, limit: int, timer_id: int | None = None
    ) -> list[DueTimer]:
        async with self.sessions() as session, session.begin():
            dialect = (await session.connection()).dialect.name
            rows = await session.execute(_claim(now, now + lease, limit, timer_id, dialect))
            return [DueTimer(*row) for row in rows]

    async def contacts(self, ids: Sequence[int]) -> dict[int, Contact]:
        async with self.readers() as session:
            rows = await session.execute(select(Contact).where(col(Contact.id).in_(set(ids))))
            return {contact.id or 0: contact for contact in rows.scalars()}

    async def waiting_events(self, ids: Sequence[int]) -> dict[int, list[ContactEvent]]:
        """Per contact, the history events into and out of waiting on the resident."""
        if not ids:
            return {}
        waiting = Status.waiting_on_resident.value
        async with self.readers() as session:
            rows = await session.execute(
                select(ContactEvent)
                .where(col(ContactEvent.contact_id).in_(set(ids)))
                .where(
                    sa.or_(
                        col(ContactEvent.to_status) == waiting,
                        col(ContactEvent.from_status) == waiting,
                    )
                )
                .order_by(col(ContactEvent.id))
            )
            found: dict[int, list[ContactEvent]] = {}
            for event in rows.scalars():
                found.setdefault(event.contact_id, []).append(event)
            return found

    async def finish_many(self, decisions: Sequence[Decision], now: datetime) -> set[int]:
        """Mark timers fired and apply their effects, all in one transaction; a timer another
        process finished first is skipped with its effects. Returns the ids finished here."""
        if not decisions:
            return set()
        done: set[int] = set()
        async with self.sessions() as session, session.begin():
            by_outcome: dict[str, list[int]] = {}
            for decision in decisions:
                by_outcome.setdefault(decision.outcome, []).append(decision.timer.id)
            for outcome, ids in by_outcome.items():
                rows = await session.execute(
                    sa.update(TIMER)
                    .where(TIMER.c.id.in_(ids), TIMER.c.fired_at.is_(None))
                    .values(fired_at=now, outcome=outcome)
                    .returning(TIMER.c.id)
                )
                done.update(rows.scalars())
            applied = [d for d in decisions if d.timer.id in done]
            shapes: dict[tuple[tuple[str, ...], str | None], list[Decision]] = {}
            for decision in applied:
                if decision.values and decision.contact_id is not None:
                    key = (tuple(sorted(decision.values)), decision.only_if_null)
                    shapes.setdefault(key, []).append(decision)
            for (names, only_if_null), group in shapes.items():
                update = sa.update(CONTACT).where(CONTACT.c.id == sa.bindparam("b_id"))
                if only_if_null is not None:
                    update = update.where(CONTACT.c[only_if_null].is_(None))
                update = update.values({name: sa.bindparam(f"v_{name}") for name in names})
                await session.execute(
                    update,
                    [
                        {"b_id": d.contact_id, **{f"v_{k}": v for k, v in d.values.items()}}
                        for d in group
                    ],
                )
            events = [d.event for d in applied if d.event is not None]
            if events:
                await session.execute(sa.insert(EVENT), events)
        return done

    async def postpone(self, timer_id: int, run_at: datetime) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                sa.update(TIMER)
                .where(TIMER.c.id == timer_id, TIMER.c.fired_at.is_(None))
                .values(run_at=run_at)
            )

    async def move_answer_due(
        self,
        contact_id: int,
        now: datetime,
        new_due: datetime,
        timers: Sequence[tuple[str, datetime]],
        contact_values: dict[str, Any],
        event: dict[str, Any],
        expect_due: datetime | None,
        extra_timers: Sequence[tuple[str, datetime]] = (),
    ) -> list[int] | None:
        """A new answer deadline (verdaging, pause): the contact, its history event and its
        warning/breach timers in one transaction. Refused (None) when the deadline changed
        meanwhile (`expect_due`), so two concurrent moves cannot both apply. Returns the ids
        of `extra_timers`."""
        async with self.sessions() as session, session.begin():
            moved = await session.execute(
                sa.update(CONTACT)
                .where(
                    CONTACT.c.id == contact_id,
                    CONTACT.c.answer_due.is_(None)
                    if expect_due is None
                    else CONTACT.c.answer_due == expect_due,
                )
                .values(answer_due=new_due, **contact_values)
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                return None
            await session.execute(
                sa.update(TIMER)
                .where(
                    TIMER.c.contact_id == contact_id,
                    TIMER.c.kind.in_(RESCHEDULED_KINDS),
                    TIMER.c.fired_at.is_(None),
                )
                .values(fired_at=now, outcome="superseded")
            )
            rows = [
                {"contact_id": contact_id, "kind": kind, "due_at": at, "run_at": at}
                for kind, at in timers
            ]
            if rows:
                await session.execute(sa.insert(TIMER), rows)
            extra = []
            for kind, at in extra_timers:
                inserted = await session.execute(
                    sa.insert(TIMER)
                    .values(contact_id=contact_id, kind=kind, due_at=at, run_at=at)
                    .returning(TIMER.c.id)
                )
                extra.append(int(inserted.scalar_one()))
            await session.execute(sa.insert(EVENT), [event])
            return extra

    async def add_timer(self, contact_id: int, kind: str, at: datetime) -> int:
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                sa.insert(TIMER)
                .values(contact_id=contact_id, kind=kind, due_at=at, run_at=at)
                .returning(TIMER.c.id)
            )
            return int(result.scalar_one())

    async def timers(self, contact_id: int) -> list[dict[str, Any]]:
        async with self.readers() as session:
            rows = await session.execute(
                sa.select(TIMER).where(TIMER.c.contact_id == contact_id).order_by(TIMER.c.id)
            )
            return [dict(row._mapping) for row in rows]

    async def outbound_with_purpose(self, contact_id: int, purpose: str) -> list[Message]:
        async with self.readers() as session:
            rows = await session.execute(
                select(Message)
                .where(Message.contact_id == contact_id)
                .where(Message.direction == Direction.outbound)
                .where(Message.purpose == purpose)
                .order_by(col(Message.id))
            )
            return list(rows.scalars())

    async def status_events(self, contact_id: int) -> list[ContactEvent]:
        async with self.readers() as session:
            rows = await session.execute(
                select(ContactEvent)
                .where(ContactEvent.contact_id == contact_id)
                .order_by(col(ContactEvent.id))
            )
            return list(rows.scalars())

    async def flagged(self, limit: int = 1000) -> list[Contact]:
        """Open, unanswered contacts that are at risk or past a deadline (team leads' list)."""
        async with self.readers() as session:
            rows = await session.execute(
                select(Contact)
                .where(col(Contact.sla_state).in_(["at_risk", "breached"]))
                .where(col(Contact.status).in_(OPEN))
                .where(col(Contact.answered_at).is_(None))
                .order_by(col(Contact.answer_due))
                .limit(limit)
            )
            return list(rows.scalars())

    async def flagged_counts(self) -> dict[tuple[str, str], int]:
        """(queue, state) -> open unanswered contacts at risk or breached."""
        async with self.readers() as session:
            rows = await session.execute(
                select(Contact.queue, Contact.sla_state, sa.func.count())
                .where(col(Contact.sla_state).in_(["at_risk", "breached"]))
                .where(col(Contact.status).in_(OPEN))
                .where(col(Contact.answered_at).is_(None))
                .group_by(col(Contact.queue), col(Contact.sla_state))
            )
            return {(queue or "", state): int(count) for queue, state, count in rows}


def event_row(
    contact_id: int,
    at: datetime,
    kind: str,
    actor: str,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "at": at,
        "type": kind,
        "from_status": None,
        "to_status": None,
        "actor": actor,
        "reason": reason,
        "data": data or {},
    }


def paused_seconds(events: Sequence[ContactEvent], until: datetime) -> tuple[int, list[str]]:
    """Seconds the contact spent waiting on the resident up to `until`, and the reasons given."""
    total = 0.0
    started: datetime | None = None
    reasons: list[str] = []
    for event in events:
        if event.to_status == Status.waiting_on_resident and event.from_status != event.to_status:
            started = event.at
            if event.reason:
                reasons.append(event.reason)
        elif (
            event.from_status == Status.waiting_on_resident
            and event.to_status != Status.waiting_on_resident
            and started is not None
        ):
            total += (min(event.at, until) - started).total_seconds()
            started = None
    if started is not None and until > started:
        total += (until - started).total_seconds()
    return int(max(0.0, total)), reasons
