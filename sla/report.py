"""The norm report: the municipality's norm table with its "realisatie" column filled in.

Per channel and norm, for the contacts received in the period: how many fall under it
(`total`), how many met it (`within`), missed it (`missed`, which includes `open_overdue`: still
open and already past the deadline), are still open within their term (`pending`), and the
percentage within of those decided (within + missed). Answers count against the deadline in
force (after a timely verdaging or a pause the norm allows); a contact closed without an answer
counts as handled when it was closed.

The phone norms come from the phone adapter's call data where it exists (table `phonecall`):
`phone-answered` (measure `call`) counts answered calls within the term by their queue wait and
abandoned calls as missed, callback choices not at all (they are measured by `phone-callback`),
the same definition as the adapter's `GET /api/phone/norms` service level; phone contacts
without call data (counter, API) fall back to the time until an agent took them.
`phone-callback` (measure `callback`) counts callback requests by the first time Twilio reported
the call to the resident (reached or not: the municipality called back).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import SQLModel

from sla.calendar import BusinessCalendar
from sla.norms import ALL_CHANNELS, Norm, NormBook
from sla.store import CONTACT, EVENT

CALL = SQLModel.metadata.tables["phonecall"]
# A callback request is its own phone contact, named after the call it came from.
CALLBACK_PREFIX = "callback:"
# The phone adapter's actor: on a callback contact its `call` events are Twilio's reports of
# the call to the resident (picked up, or ended reached or not).
PHONE_ACTOR = "channel:phone"

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

    def count_call(self, status: str, wait_seconds: float | None, term_seconds: float) -> None:
        """A call that left the queue: answered within the term, or abandoned (missed)."""
        self.total += 1
        if status == "answered" and wait_seconds is not None and wait_seconds <= term_seconds:
            self.within += 1
        else:
            self.missed += 1

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


@dataclass(frozen=True)
class PhoneData:
    """What the phone adapter recorded for the contacts in the period."""

    # contact id -> (status, wait seconds) of its call: answered | abandoned | callback | waiting
    calls: dict[int, tuple[str, float | None]]
    # callback contact id -> when Twilio first reported the call to the resident
    called_back: dict[int, datetime]


NO_PHONE_DATA = PhoneData({}, {})

COLUMNS = (
    CONTACT.c.id,
    CONTACT.c.channel_message_id,
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


def tally(
    book: NormBook, contacts: Iterable[Any], now: datetime, phone: PhoneData = NO_PHONE_DATA
) -> list[NormRow]:
    rows = _rows(book)
    calendar = book.calendar
    for c in contacts:
        is_callback = c.channel_message_id.startswith(CALLBACK_PREFIX)
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
        for norm in book.norms:
            if norm.measure not in ("call", "callback") or not norm.applies(c.channel, c.kind):
                continue
            row = _row(rows, norm, c.channel)
            if row is None:
                continue
            if norm.measure == "callback":
                if is_callback:
                    _count_callback(row, norm, c, phone, now, calendar)
                continue
            if is_callback:
                continue  # a request to be called back, not a call waiting to be answered
            call = phone.calls.get(c.id)
            if call is not None and call[0] == "callback":
                continue  # the caller chose a callback: neither answered nor abandoned
            due = norm.deadline(calendar, c.received_at)
            if call is not None and call[0] in ("answered", "abandoned"):
                row.count_call(call[0], call[1], (due - c.received_at).total_seconds())
                continue
            # No call data (counter, API, or still in the queue): until an agent took it.
            taken = c.taken_at or (c.closed_at and max(c.closed_at, due + timedelta(seconds=1)))
            row.count(taken, due, now)
    return list(rows.values())


def _count_callback(
    row: NormRow,
    norm: Norm,
    c: Any,
    phone: PhoneData,
    now: datetime,
    calendar: BusinessCalendar,
) -> None:
    due = c.answer_due or norm.deadline(calendar, c.received_at)
    called = phone.called_back.get(c.id)
    # Closed without any call to the resident: never called back, so not within the norm.
    done = called or (c.closed_at and max(c.closed_at, due + timedelta(seconds=1)))
    row.count(done, due, now)


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
        phone = await _phone_data(session, contacts, begin, until)
    return tally(book, contacts, now, phone)


async def _phone_data(
    session: AsyncSession, contacts: list[Any], begin: datetime, until: datetime
) -> PhoneData:
    if not any(c.channel == "phone" for c in contacts):
        return NO_PHONE_DATA
    calls: dict[int, tuple[str, float | None]] = {}
    # A call row carries its contact's receipt time, so the period selects it the same way.
    result = await session.execute(
        sa.select(CALL.c.contact_id, CALL.c.status, CALL.c.wait_seconds)
        .where(CALL.c.created_at >= begin, CALL.c.created_at < until)
        .order_by(CALL.c.id)
    )
    for contact_id, status, wait in result:
        calls.setdefault(contact_id, (status, wait))
    callback_ids = [
        c.id
        for c in contacts
        if c.channel == "phone" and c.channel_message_id.startswith(CALLBACK_PREFIX)
    ]
    called_back: dict[int, datetime] = {}
    for start in range(0, len(callback_ids), 1000):
        firsts = await session.execute(
            sa.select(EVENT.c.contact_id, sa.func.min(EVENT.c.at))
            .where(
                EVENT.c.contact_id.in_(callback_ids[start : start + 1000]),
                EVENT.c.type == "call",
                EVENT.c.actor == PHONE_ACTOR,
            )
            .group_by(EVENT.c.contact_id)
        )
        called_back.update({contact_id: at for contact_id, at in firsts})
    return PhoneData(calls, called_back)


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
