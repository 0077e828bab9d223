"""The post channel's own rows: scans of incoming letters and outgoing letters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from contacts.models import Attachment, ContactEvent, Direction, Message, PostLetter, PostScan

LETTER_STATUSES = ("ready", "printed", "posted")


class PostRecords:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    # --- incoming -----------------------------------------------------------------------------

    async def scan(self, channel_message_id: str) -> PostScan | None:
        async with self.sessions() as session:
            return (
                await session.execute(
                    select(PostScan).where(col(PostScan.channel_message_id) == channel_message_id)
                )
            ).scalar_one_or_none()

    async def add_scan(self, scan: PostScan, event: ContactEvent) -> bool:
        """Record a scan and its event once; False when it was recorded before (a retry)."""
        try:
            async with self.sessions() as session, session.begin():
                session.add(scan)
                session.add(event)
        except IntegrityError:
            return False
        return True

    async def email_consent(self, contact_id: int) -> bool:
        """The latest letter on the contact that says anything about e-mail decides."""
        async with self.sessions() as session:
            stated = (
                await session.execute(
                    select(PostScan.email_consent)
                    .where(col(PostScan.contact_id) == contact_id)
                    .where(col(PostScan.email_consent).is_not(None))
                    .order_by(col(PostScan.id).desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
        return bool(stated)

    # --- outgoing -----------------------------------------------------------------------------

    async def message_to_render(self, contact_id: int, body: str) -> Message | None:
        """The outbound post message being sent with this text: the outbox hands us its content,
        not its row. One without a letter yet comes first, so two identical replies get two."""
        async with self.sessions() as session:
            rows = (
                await session.execute(
                    select(Message, PostLetter.id)
                    .outerjoin(PostLetter, col(PostLetter.message_id) == col(Message.id))
                    .where(
                        col(Message.contact_id) == contact_id,
                        col(Message.channel) == "post",
                        col(Message.direction) == Direction.outbound,
                        col(Message.delivery_status) == "sending",
                        col(Message.body) == body,
                    )
                    .order_by(col(Message.id).desc())
                )
            ).all()
        if not rows:
            return None
        fresh = [message for message, letter_id in rows if letter_id is None]
        return fresh[0] if fresh else rows[0][0]

    async def letter_for_message(self, message_id: int) -> PostLetter | None:
        async with self.sessions() as session:
            return (
                await session.execute(
                    select(PostLetter).where(col(PostLetter.message_id) == message_id)
                )
            ).scalar_one_or_none()

    async def add_letter(self, letter: PostLetter, filename: str) -> PostLetter:
        """The letter and its attachment row on the contact, in one transaction; a concurrent
        send of the same message gets the letter that won."""
        try:
            async with self.sessions() as session, session.begin():
                session.add(letter)
                session.add(
                    Attachment(
                        contact_id=letter.contact_id,
                        message_id=letter.message_id,
                        filename=filename,
                        content_type="application/pdf",
                        size=letter.size,
                        sha256=letter.sha256,
                        storage_key=letter.storage_key,
                        created_at=letter.created_at,
                    )
                )
                await session.flush()
                return letter
        except IntegrityError:
            existing = await self.letter_for_message(letter.message_id)
            if existing is None:
                raise
            return existing

    async def set_email_copy(self, letter_id: int, message_id: int) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                sa.update(PostLetter)
                .where(col(PostLetter.id) == letter_id)
                .values(email_message_id=message_id)
            )

    async def letter(self, letter_id: int) -> PostLetter | None:
        async with self.sessions() as session:
            return await session.get(PostLetter, letter_id)

    async def letters(self, status: str | None, limit: int = 500) -> list[PostLetter]:
        query = select(PostLetter).order_by(col(PostLetter.id)).limit(limit)
        if status is not None:
            query = query.where(col(PostLetter.status) == status)
        async with self.sessions() as session:
            return list((await session.execute(query)).scalars())

    async def mark(
        self, letter_id: int, status: str, actor: str, now: datetime
    ) -> PostLetter | None:
        """ready -> printed -> posted (printing may go unreported). Marking again is harmless;
        going back is refused (returns the letter unchanged)."""
        values: dict[str, Any] = {"status": status, "updated_by": actor}
        allowed_from = {"printed": ["ready"], "posted": ["ready", "printed"]}[status]
        values["printed_at" if status == "printed" else "posted_at"] = now
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                sa.update(PostLetter)
                .where(col(PostLetter.id) == letter_id)
                .where(col(PostLetter.status).in_(allowed_from))
                .values(**values)
            )
            changed = bool(result.rowcount)  # type: ignore[attr-defined]
            letter = await session.get(PostLetter, letter_id)
            if changed and letter is not None:
                session.add(
                    ContactEvent(
                        contact_id=letter.contact_id,
                        at=now,
                        type="post_letter",
                        actor=actor,
                        reason="brief geprint" if status == "printed" else "brief verstuurd",
                        data={"letter_id": letter_id, "status": status},
                    )
                )
            return letter
