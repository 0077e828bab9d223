"""Quarantine: channel input that could not become a contact, kept with its reason.

Adapters call `keep` instead of dropping what they cannot read (broken MIME, an unreadable scan,
a payload that fails validation after the provider already got its answer). The raw bytes go to
the attachment store (content-addressed, outside the database); a team lead sees the list, can
download the original and marks an item resolved. Reasons are written by our code and must not
contain the resident's data; the raw input is only reachable through the team-lead API.
"""

from __future__ import annotations

import logging
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from contacts.attachments import AttachmentStore
from contacts.models import QuarantinedInput

log = logging.getLogger(__name__)


class Quarantine:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], attachments: AttachmentStore
    ) -> None:
        self.sessions = sessions
        self.attachments = attachments

    async def keep(
        self,
        channel: str,
        reason: str,
        now: datetime,
        raw: bytes | None = None,
        provider_id: str | None = None,
        content_type: str = "application/octet-stream",
    ) -> QuarantinedInput:
        """Keep input with its reason; the same provider id twice is kept once."""
        key = None
        size = len(raw) if raw is not None else 0
        if raw is not None and size <= self.attachments.max_bytes:
            _, key = await self.attachments.save(raw)
        item = QuarantinedInput(
            channel=channel,
            at=now,
            reason=reason[:500],
            provider_id=provider_id[:200] if provider_id else None,
            content_type=content_type[:127],
            size=size,
            storage_key=key,
        )
        try:
            async with self.sessions() as session, session.begin():
                session.add(item)
        except IntegrityError:
            existing = await self.by_provider_id(channel, provider_id or "")
            if existing is None:
                raise
            return existing
        log.warning("quarantined input on %s (%d bytes): %s", channel, size, reason[:200])
        return item

    async def by_provider_id(self, channel: str, provider_id: str) -> QuarantinedInput | None:
        async with self.sessions() as session:
            return (
                await session.execute(
                    select(QuarantinedInput).where(
                        col(QuarantinedInput.channel) == channel,
                        col(QuarantinedInput.provider_id) == provider_id,
                    )
                )
            ).scalar_one_or_none()

    async def get(self, item_id: int) -> QuarantinedInput | None:
        async with self.sessions() as session:
            return await session.get(QuarantinedInput, item_id)

    async def items(
        self, include_resolved: bool = False, limit: int = 200
    ) -> list[QuarantinedInput]:
        query = select(QuarantinedInput).order_by(col(QuarantinedInput.at).desc()).limit(limit)
        if not include_resolved:
            query = query.where(col(QuarantinedInput.resolved_at).is_(None))
        async with self.sessions() as session:
            return list((await session.execute(query)).scalars().all())

    async def resolve(self, item_id: int, actor: str, resolution: str, now: datetime) -> bool:
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                sa.update(QuarantinedInput)
                .where(
                    col(QuarantinedInput.id) == item_id,
                    col(QuarantinedInput.resolved_at).is_(None),
                )
                .values(resolved_at=now, resolved_by=actor, resolution=resolution[:500])
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]
