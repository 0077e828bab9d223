"""The checkpoint and the polling lease of an IMAP mailbox, in the database (`mailbox_state`).

Lease: of several service processes, the one holding an unexpired lease polls; it renews the
lease every round, and another process takes over once it expires (a dead holder) or is released
(a clean stop). Intake is idempotent on the Message-ID, so even two pollers at once (a holder
that stalled past its lease) would store nothing twice; the lease only saves the double work.

Checkpoint: the mailbox's UIDVALIDITY and the highest UID up to which every mail was handled
(stored and marked). A new UIDVALIDITY (the mailbox was rebuilt) starts again from UID 1, and
idempotency keeps that harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from contacts.models import MailboxState

STATE: sa.Table = MailboxState.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Checkpoint:
    uidvalidity: int
    last_uid: int


class MailboxStateStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def _ensure(self, account: str) -> None:
        async with self.engine.begin() as connection:
            found = await connection.execute(
                sa.select(STATE.c.account).where(STATE.c.account == account)
            )
            if found.first() is not None:
                return
        try:
            async with self.engine.begin() as connection:
                await connection.execute(
                    sa.insert(STATE).values(account=account, uidvalidity=0, last_uid=0)
                )
        except IntegrityError:
            pass  # another process created it a moment ago

    async def acquire(self, account: str, owner: str, now: datetime, lease_seconds: float) -> bool:
        """Take or renew the lease; False while another process holds it."""
        await self._ensure(account)
        async with self.engine.begin() as connection:
            result = await connection.execute(
                sa.update(STATE)
                .where(
                    STATE.c.account == account,
                    sa.or_(
                        STATE.c.lease_owner.is_(None),
                        STATE.c.lease_owner == owner,
                        STATE.c.lease_until < now,
                    ),
                )
                .values(
                    lease_owner=owner,
                    lease_until=now + timedelta(seconds=lease_seconds),
                    updated_at=now,
                )
            )
        return bool(result.rowcount)

    async def release(self, account: str, owner: str) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                sa.update(STATE)
                .where(STATE.c.account == account, STATE.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    async def checkpoint(self, account: str) -> Checkpoint:
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(STATE.c.uidvalidity, STATE.c.last_uid).where(
                        STATE.c.account == account
                    )
                )
            ).first()
        return Checkpoint(int(row.uidvalidity), int(row.last_uid)) if row else Checkpoint(0, 0)

    async def save_checkpoint(
        self, account: str, owner: str, checkpoint: Checkpoint, now: datetime
    ) -> bool:
        """Only the lease holder moves the checkpoint; False when the lease was lost."""
        async with self.engine.begin() as connection:
            result = await connection.execute(
                sa.update(STATE)
                .where(STATE.c.account == account, STATE.c.lease_owner == owner)
                .values(
                    uidvalidity=checkpoint.uidvalidity,
                    last_uid=checkpoint.last_uid,
                    updated_at=now,
                )
            )
        return bool(result.rowcount)
