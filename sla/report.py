"""The norm report: the municipality's norm table with its "realisatie" column filled in.

Per channel and norm, for the contacts received in the period: how many fall under it
(`total`), how many met it (`within`), missed it (`missed`, which includes `open_overdue`: still
open and already past the deadline), are still open within their term (`pending`), and the
percentage within of those decided (within + missed). Answers count against the deadline in
force (after a timely verdaging or a pause the norm allows); a contact closed without an answer
counts as handled when it was closed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sla.norms import ALL_CHANNELS, Norm, NormBook
from sla.store import CONTACT

ALL = "alle"


@dataclass
class NormRow:
    channel: str
    norm: str
    norm_id: str
    label: str
    target: float
    measured: bool
    total: int = 0
    within: int = 0
    missed: int = 0
    open_overdue: int = 0
    pending: int = 0
    extended: int = 0
    note: str = ""

    @property
    def percentage(self) -> float | None:
        decided = self.within + self.missed
        return round(100.0 * self.within / decided, 1) if decided else None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"percentage": self.percentage}

    def count(self, done: datetime | None, due: datetime, now: datetime) -> None:
        self.total += 1
        if done is not None:
            if done <= due:
                self.within += 1
            else:
                self.missed += 1
        elif now > due:
            self.missed += 1
            self.open_overdue += 1
        else:
            self.pending += 1


def _rows(book: NormBook) -> dict[tuple[str, str], NormRow]:
    rows: dict[tuple[str, str], NormRow] = {}
    for norm in book.norms:
        channels = [ALL] if ALL_CHANNELS in norm.channels else list(norm.channels)
        for channel in channels:
            rows[(channel, norm.id)] = NormRow(
                channel=channel,
                norm=norm.norm,
                norm_id=norm.id,
                label=norm.label,
                target=norm.target,
                measured=norm.measure != "external",
                note=norm.note,
            )
    return rows


def _row(rows: dict[tuple[str, str], NormRow], norm: Norm, channel: str) -> NormRow | None:
    return rows.get((ALL if ALL_CHANNELS in norm.channels else channel, norm.id))


COLUMNS = (
    CONTACT.c.channel,
    CONTACT.c.kind,
    CONTACT.c.sla_norm,
    CONTACT.c.received_at,
    CONTACT.c.ack_due,
    CONTACT.c.acked_at,
    CONTACT.c.answer_due,
    CONTACT.c.answered_at,
    CONTACT.c.closed_at,
    CONTACT.c.taken_at,
    CONTACT.c.extended_at,
)


def tally(book: NormBook, contacts: Iterable[Any], now: datetime) -> list[NormRow]:
    rows = _rows(book)
    calendar = book.calendar
    for c in contacts:
        handled = c.answered_at or c.closed_at
        ack = book.acknowledgement_norm(c.channel, c.kind)
        if ack is not None and (row := _row(rows, ack, c.channel)) is not None:
            due = c.ack_due or ack.deadline(calendar, c.received_at)
            done = [t for t in (c.acked_at, c.answered_at, c.closed_at) if t is not None]
            row.count(min(done) if done else None, due, now)
        answer = book.by_id(c.sla_norm) or book.answer_norm(c.channel, c.kind)
        if answer is not None and (row := _row(rows, answer, c.channel)) is not None:
            row.count(handled, c.answer_due or answer.deadline(calendar, c.received_at), now)
            row.extended += c.extended_at is not None
        for norm in book.norms:
            if norm.measure != "taken" or not norm.applies(c.channel, c.kind):
                continue
            row = _row(rows, norm, c.channel)
            if row is None:
                continue
            due = norm.deadline(calendar, c.received_at)
            # Never taken and closed (hung up, walked away): not within the norm.
            taken = c.taken_at or (c.closed_at and max(c.closed_at, due + timedelta(seconds=1)))
            row.count(taken, due, now)
    return list(rows.values())


async def norm_report(
    sessions: async_sessionmaker[AsyncSession],
    book: NormBook,
    start: date,
    end: date,
    now: datetime,
) -> list[NormRow]:
    """Contacts received from `start` to `end` inclusive (local dates)."""
    calendar = book.calendar
    begin = calendar.end_of_day(start - timedelta(days=1))
    until = calendar.end_of_day(end)
    async with sessions() as session:
        result = await session.stream(
            sa.select(*COLUMNS)
            .where(CONTACT.c.received_at >= begin, CONTACT.c.received_at < until)
            .execution_options(yield_per=5000)
        )
        contacts = [row async for row in result]
    return tally(book, contacts, now)


def as_table(rows: Iterable[NormRow]) -> str:
    """The norm table as text for `kcc report norms`."""
    header = (
        "kanaal",
        "norm",
        "streef",
        "aantal",
        "binnen",
        "buiten",
        "open te laat",
        "realisatie",
    )
    lines = [header]
    for row in rows:
        percentage = row.percentage
        lines.append(
            (
                row.channel,
                row.label,
                f"{row.target:g}%",
                str(row.total) if row.measured else "-",
                str(row.within) if row.measured else "-",
                str(row.missed) if row.measured else "-",
                str(row.open_overdue) if row.measured else "-",
                (f"{percentage:.1f}%" if percentage is not None else "-")
                if row.measured
                else "niet gemeten",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for index, line in enumerate(lines):
        out.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
        if index == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)
