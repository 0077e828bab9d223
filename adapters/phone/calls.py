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

from contacts.models import PhoneCall

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

    async def open(self, contact_id: int, call_sid: str, now: datetime) -> PhoneCall:
        """The call of a contact, recorded once however often Twilio asks."""
        existing = await self.by_sid(call_sid)
        if existing is not None:
            return existing
        try:
            async with self.sessions() as session, session.begin():
                call = PhoneCall(contact_id=contact_id, call_sid=call_sid, created_at=now)
                session.add(call)
                await session.flush()
                return call
        except IntegrityError:
            found = await self.by_sid(call_sid)
            assert found is not None
            return found

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

    async def settle(self, call_sid: str, status: str, wait_seconds: float, now: datetime) -> bool:
        """waiting -> answered | abandoned | callback, once. Returns whether this call did it."""
        values: dict[str, Any] = {"status": status, "wait_seconds": wait_seconds}
        if status == ANSWERED:
            values["answered_at"] = now
        elif status == ABANDONED:
            values["abandoned_at"] = now
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                sa.update(PhoneCall)
                .where(col(PhoneCall.call_sid) == call_sid, col(PhoneCall.status) == WAITING)
                .values(**values)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def ended(
        self, call_sid: str, end_status: str, duration: int | None, now: datetime
    ) -> bool:
        """The call is over (Twilio's final status); recorded once."""
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                sa.update(PhoneCall)
                .where(col(PhoneCall.call_sid) == call_sid, col(PhoneCall.ended_at).is_(None))
                .values(ended_at=now, end_status=end_status, duration_seconds=duration)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]


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
