"""Database work of the desk: sign-in bookkeeping, browser sessions, the audit log, samples."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from contacts.models import Agent, AuditLog, Contact, QueueSample, Status, WebSession
from contacts.store import ContactStore
from desk.config import DeskConfig

DESK_STATUSES = [
    Status.assigned.value,
    Status.answered.value,
    Status.waiting_on_resident.value,
]
# A session's last-seen time is written at most this often (not on every request).
TOUCH_EVERY = timedelta(seconds=60)


def hash_session_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


class DeskStore:
    def __init__(self, store: ContactStore, config: DeskConfig) -> None:
        self.sessions = store.sessions
        self.readers = store.readers
        self.config = config

    # --- agents and sign-in ---------------------------------------------------------------

    async def agent_by_name(self, name: str) -> Agent | None:
        async with self.readers() as session:
            return (
                await session.execute(
                    select(Agent).where(Agent.name == name).where(col(Agent.active))
                )
            ).scalar_one_or_none()

    async def set_password_hash(self, agent_id: int, password_hash: str) -> None:
        """A new password ends every session of the agent and clears any sign-in block."""
        async with self.sessions() as session, session.begin():
            await session.execute(
                sa.update(Agent)
                .where(col(Agent.id) == agent_id)
                .values(password_hash=password_hash, failed_signins=0, signin_blocked_until=None)
            )
            await session.execute(sa.delete(WebSession).where(col(WebSession.agent_id) == agent_id))

    async def signin_failed(self, agent_id: int, now: datetime) -> None:
        """Count a failure; past the free attempts the account waits, twice as long each time."""
        async with self.sessions() as session, session.begin():
            agent = (
                await session.execute(select(Agent).where(Agent.id == agent_id).with_for_update())
            ).scalar_one()
            agent.failed_signins += 1
            over = agent.failed_signins - self.config.free_attempts
            if over >= 0:
                wait = min(self.config.block_seconds * 2**over, self.config.max_block_seconds)
                agent.signin_blocked_until = now + timedelta(seconds=wait)
            session.add(agent)

    async def signin_succeeded(self, agent_id: int, password_hash: str | None = None) -> None:
        values: dict[str, object] = {"failed_signins": 0, "signin_blocked_until": None}
        if password_hash:  # rehashed with newer parameters
            values["password_hash"] = password_hash
        async with self.sessions() as session, session.begin():
            await session.execute(
                sa.update(Agent).where(col(Agent.id) == agent_id).values(**values)
            )

    # --- browser sessions ---------------------------------------------------------------------

    async def create_session(self, agent_id: int, now: datetime) -> tuple[str, str]:
        """A new session: returns (session id for the cookie, CSRF token). Only the id's hash
        is stored."""
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        async with self.sessions() as session, session.begin():
            # Expired sessions of this agent go when a new one starts (no separate cleaner).
            await session.execute(
                sa.delete(WebSession)
                .where(col(WebSession.agent_id) == agent_id)
                .where(col(WebSession.expires_at) <= now)
            )
            session.add(
                WebSession(
                    id_hash=hash_session_id(session_id),
                    agent_id=agent_id,
                    csrf_token=csrf,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + timedelta(hours=self.config.max_hours),
                )
            )
        return session_id, csrf

    async def session(
        self, session_id: str, now: datetime, touch: bool = True
    ) -> tuple[Agent, WebSession] | None:
        """The agent of a live session, or None (unknown, expired, idle too long, inactive).
        `touch`: this request counts as activity (background refreshes do not)."""
        id_hash = hash_session_id(session_id)
        async with self.readers() as session:
            row = (
                await session.execute(
                    select(WebSession, Agent)
                    .join(Agent, col(Agent.id) == col(WebSession.agent_id))
                    .where(WebSession.id_hash == id_hash)
                )
            ).first()
        if row is None:
            return None
        web_session, agent = row[0], row[1]
        idle_limit = web_session.last_seen_at + timedelta(minutes=self.config.idle_minutes)
        if not agent.active or now >= web_session.expires_at or now >= idle_limit:
            await self.end_session(session_id)
            return None
        if touch and now - web_session.last_seen_at >= TOUCH_EVERY:
            async with self.sessions() as session, session.begin():
                await session.execute(
                    sa.update(WebSession)
                    .where(col(WebSession.id_hash) == id_hash)
                    .values(last_seen_at=now)
                )
        return agent, web_session

    async def end_session(self, session_id: str) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                sa.delete(WebSession).where(col(WebSession.id_hash) == hash_session_id(session_id))
            )

    # --- the desk ------------------------------------------------------------------------------

    async def desk_contacts(self, agent_id: int) -> list[Contact]:
        """Offered to the agent, taken, answered or waiting on the resident: the agent's list."""
        async with self.readers() as session:
            rows = await session.execute(
                select(Contact)
                .where(Contact.assigned_agent_id == agent_id)
                .where(col(Contact.status).in_(DESK_STATUSES))
                .order_by(col(Contact.priority).desc(), col(Contact.received_at))
                .limit(200)
            )
            return list(rows.scalars())

    async def set_capacity(self, agent_id: int, capacity: dict[str, int]) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                sa.update(Agent).where(col(Agent.id) == agent_id).values(capacity=capacity)
            )

    # --- audit log ----------------------------------------------------------------------------

    async def audit(
        self, agent_id: int, contact: Contact | None, view: str, via: str, now: datetime
    ) -> None:
        async with self.sessions() as session, session.begin():
            session.add(
                AuditLog(
                    at=now,
                    agent_id=agent_id,
                    resident_id=contact.resident_id if contact else None,
                    contact_id=contact.id if contact else None,
                    reference=contact.reference if contact else None,
                    view=view,
                    via=via,
                )
            )

    async def audit_entries(
        self,
        resident_id: int | None = None,
        agent_id: int | None = None,
        reference: str | None = None,
        limit: int = 200,
    ) -> list[AuditLog]:
        query = select(AuditLog).order_by(col(AuditLog.id).desc()).limit(limit)
        if resident_id is not None:
            query = query.where(AuditLog.resident_id == resident_id)
        if agent_id is not None:
            query = query.where(AuditLog.agent_id == agent_id)
        if reference:
            query = query.where(AuditLog.reference == reference)
        async with self.readers() as session:
            return list((await session.execute(query)).scalars())

    # --- dashboard samples --------------------------------------------------------------------

    async def add_sample(self, sample: QueueSample) -> bool:
        """Store one sample; False when another process stored this moment already."""
        try:
            async with self.sessions() as session, session.begin():
                session.add(sample)
        except IntegrityError:
            return False
        return True

    async def samples(self, since: datetime, until: datetime) -> list[QueueSample]:
        async with self.readers() as session:
            rows = await session.execute(
                select(QueueSample)
                .where(col(QueueSample.at) >= since)
                .where(col(QueueSample.at) < until)
                .order_by(col(QueueSample.at))
            )
            return list(rows.scalars())
