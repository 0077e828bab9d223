"""The calls behind phone contacts (table `phonecall`): the figures of the phone norms.

Every change is a conditional update, so Twilio's repeated or out-of-order callbacks record each
fact once: a call is answered, abandoned or turned into a callback once, from `waiting` only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from contacts.models import Contact, PhoneCall

WAITING = "waiting"
ANSWERED = "answered"
ABANDONED = "abandoned"
CALLBACK = "callback"


class CallStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        readers: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self.sessions = sessions
        self.readers = readers or sessions

    async def by_sid(self, call_sid: str) -> PhoneCall | None:
        async with self.readers() as session:
            return (
                await session.execute(select(PhoneCall).where(PhoneCall.call_sid == call_sid))
            ).scalar_one_or_none()

    async def for_contact(self, contact_id: int) -> PhoneCall | None:
        async with self.readers() as session:
            return (
                await session.execute(
                    select(PhoneCall)
                    .where(PhoneCall.contact_id == contact_id)
                    .order_by(col(PhoneCall.id))
                    .limit(1)
                )
            ).scalar_one_or_none()

    async def settle(
        self,
        contact: Contact,
        call_sid: str,
        status: str,
        wait_seconds: float,
        now: datetime,
    ) -> bool:
        """waiting -> answered | abandoned | callback, once. Returns whether this call did it.

        The row is written when the call first has something to tell (here or at its end), not
        when it comes in: the voice webhook then costs no write besides the contact's."""
        values: dict[str, Any] = {"status": status, "wait_seconds": wait_seconds}
        if status == ANSWERED:
            values["answered_at"] = now
        elif status == ABANDONED:
            values["abandoned_at"] = now
        if await self._insert(contact, call_sid, values):
            return True
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                sa.update(PhoneCall)
                .where(col(PhoneCall.call_sid) == call_sid, col(PhoneCall.status) == WAITING)
                .values(**values)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def ended(
        self, contact: Contact, call_sid: str, end_status: str, duration: int | None, now: datetime
    ) -> bool:
        """The call is over (Twilio's final status); recorded once."""
        values = {"ended_at": now, "end_status": end_status, "duration_seconds": duration}
        if await self._insert(contact, call_sid, values):
            return True
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                sa.update(PhoneCall)
                .where(col(PhoneCall.call_sid) == call_sid, col(PhoneCall.ended_at).is_(None))
                .values(**values)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def _insert(self, contact: Contact, call_sid: str, values: dict[str, Any]) -> bool:
        """The call's first fact, as a new row; False when the row exists already."""
        try:
            async with self.sessions() as session, session.begin():
                session.add(
                    PhoneCall(
                        contact_id=contact.id or 0,
                        call_sid=call_sid,
                        created_at=contact.received_at,
                        **values,
                    )
                )
            return True
        except IntegrityError:
            return False

    async def norms(self, since: datetime, answer_within: float) -> dict[str, Any]:
        """The phone norms over the calls that came in since `since` and left the line (callers
        still waiting are in the queue figures): the service level (answered
        within `answer_within` seconds / answered + abandoned) and the abandoned rate
        (abandoned / every call that left the line: answered, abandoned or callback)."""
        within = sa.func.sum(sa.case((col(PhoneCall.wait_seconds) <= answer_within, 1), else_=0))
        async with self.readers() as session:
            rows = await session.execute(
                select(  # type: ignore[call-overload]
                    PhoneCall.status,
                    sa.func.count(),
                    within,
                    sa.func.avg(PhoneCall.wait_seconds),
                    sa.func.max(PhoneCall.wait_seconds),
                )
                .where(col(PhoneCall.created_at) >= since)
                .group_by(col(PhoneCall.status))
            )
            by_status = {row[0]: row[1:] for row in rows}

        def count(status: str) -> int:
            return int(by_status[status][0]) if status in by_status else 0

        answered, abandoned, callback = count(ANSWERED), count(ABANDONED), count(CALLBACK)
        answered_in_time = int(by_status[ANSWERED][1] or 0) if ANSWERED in by_status else 0
        left = answered + abandoned + callback

        def wait(status: str, index: int) -> float | None:
            value = by_status[status][index] if status in by_status else None
            return round(float(value), 1) if value is not None else None

        return {
            "calls": left,
            "answered": answered,
            "answered_within_threshold": answered_in_time,
            "abandoned": abandoned,
            "callback_requests": callback,
            "service_level": round(answered_in_time / (answered + abandoned), 3)
            if answered + abandoned
            else None,
            "abandoned_rate": round(abandoned / left, 3) if left else None,
            "average_wait_answered_seconds": wait(ANSWERED, 2),
            "longest_wait_answered_seconds": wait(ANSWERED, 3),
            "average_wait_abandoned_seconds": wait(ABANDONED, 2),
        }


def call_view(call: PhoneCall | None) -> dict[str, Any] | None:
    if call is None:
        return None
    return {
        "status": call.status,
        "wait_seconds": call.wait_seconds,
        "answered_at": call.answered_at.isoformat() if call.answered_at else None,
        "abandoned_at": call.abandoned_at.isoformat() if call.abandoned_at else None,
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "duration_seconds": call.duration_seconds,
        "end_status": call.end_status,
    }
