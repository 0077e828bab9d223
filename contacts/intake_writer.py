"""The write path of intake, the hottest path of the service, in synchronous SQLAlchemy Core.

Every inbound message passes here, so it does the fewest statements that keep the rules (a new
contact on a new thread: nine), updates nothing that did not change, and builds model objects
once, for the caller. It is synchronous on purpose: on SQLite a whole batch runs in one worker
thread on the standard library driver (aiosqlite would cross threads ~40 times per contact); on
PostgreSQL the same code runs on asyncpg through `AsyncConnection.run_sync`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime
from typing import Any, Literal, cast

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from contacts.inbound import InboundMessage, ResidentIdentity
from contacts.models import OPEN_STATUSES, Contact, Direction, Message, Status

TABLES = SQLModel.metadata.tables
CONTACT = TABLES["contact"]
MESSAGE = TABLES["message"]
EVENT = TABLES["contactevent"]
RESIDENT = TABLES["resident"]
CONVERSATION = TABLES["conversation"]
ATTACHMENT = TABLES["attachment"]
COUNTER = TABLES["referencecounter"]
SLA_TIMER = TABLES["sla_timer"]
OPEN = [status.value for status in OPEN_STATUSES]

# (filename, content_type, size, sha256, storage_key) of a file already in the attachment store.
StoredFile = tuple[str, str, int, str, str]


@dataclass(frozen=True)
class RoutePlan:
    """Where a new or re-queued contact goes; decided by the router before the commit."""

    topic: str
    kind: str
    language: str
    skills: list[str]
    queue: str
    priority: int
    # SLA deadlines for the contact row and its due timers (kind, due_at, run_at), stored in
    # the same transaction as the contact (sla/norms.py).
    sla: dict[str, Any] = dataclass_field(default_factory=dict)
    timers: tuple[tuple[str, datetime, datetime], ...] = ()


PlanFn = Callable[[InboundMessage], RoutePlan]
BatchItem = tuple[InboundMessage, PlanFn, datetime, Sequence[StoredFile]]


@dataclass(frozen=True)
class IntakeResult:
    contact: Contact
    outcome: Literal["created", "follow_up", "duplicate"]
    message: Message


def reply_channel_for(channel: str, who: ResidentIdentity) -> str:
    """A web form has no way back: answer by e-mail, else by phone, else by post."""
    if channel != "webform":
        return channel
    if who.email:
        return "email"
    return "phone" if who.phone else "post"


def format_reference(year: int, number: int) -> str:
    return f"KCC-{year}-{number:06d}"


P = sa.bindparam
# Built once: executing a prepared statement with parameters skips SQLAlchemy's per-call
# statement construction and cache-key work, which dominated this path.
FIND_MESSAGE = sa.select(MESSAGE.c.id, MESSAGE.c.contact_id).where(
    MESSAGE.c.channel == P("b_channel"), MESSAGE.c.channel_message_id == P("b_cmid")
)
MESSAGE_BY_ID = sa.select(MESSAGE).where(MESSAGE.c.id == P("b_id"))
CONTACT_BY_ID = sa.select(CONTACT).where(CONTACT.c.id == P("b_id"))
OPEN_CONTACT = (
    sa.select(CONTACT)
    .where(CONTACT.c.conversation_id == P("b_conversation"), CONTACT.c.status.in_(OPEN))
    .order_by(CONTACT.c.id.desc())
    .limit(1)
    .with_for_update()
)
# A missing identifier binds NULL, and "= NULL" matches nothing: one statement for every case.
FIND_RESIDENT = (
    sa.select(RESIDENT)
    .where(
        sa.or_(
            RESIDENT.c.phone == P("b_phone"),
            RESIDENT.c.email == P("b_email"),
            RESIDENT.c.telegram_id == P("b_telegram"),
        )
    )
    .order_by(RESIDENT.c.id)
    .limit(1)
)
INSERT_RESIDENT = sa.insert(RESIDENT).returning(RESIDENT.c.id)
FIND_CONVERSATION = (
    sa.select(CONVERSATION.c.id)
    .where(CONVERSATION.c.channel == P("b_channel"), CONVERSATION.c.thread_key == P("b_thread"))
    .with_for_update()
)
INSERT_CONVERSATION = sa.insert(CONVERSATION).returning(CONVERSATION.c.id)
TOUCH_CONVERSATION = (
    sa.update(CONVERSATION)
    .where(CONVERSATION.c.id == P("b_id"))
    .values(
        last_inbound_at=P("b_at"),
        resident_id=sa.func.coalesce(CONVERSATION.c.resident_id, P("b_resident")),
    )
)
INSERT_CONTACT = sa.insert(CONTACT).returning(CONTACT.c.id)
INSERT_MESSAGE = sa.insert(MESSAGE).returning(MESSAGE.c.id)
INSERT_EVENT = sa.insert(EVENT)
INSERT_TIMER = sa.insert(SLA_TIMER)
INSERT_ATTACHMENT = sa.insert(ATTACHMENT)
BUMP_COUNTER = (
    sqlite.insert(COUNTER)
    .values(year=P("b_year"), last=1)
    .on_conflict_do_update(index_elements=[COUNTER.c.year], set_={"last": COUNTER.c.last + 1})
    .returning(COUNTER.c.last)
)


def receive(
    conn: Connection,
    inbound: InboundMessage,
    plan: PlanFn,
    now: datetime,
    stored: Sequence[StoredFile],
) -> IntakeResult:
    known = conn.execute(
        FIND_MESSAGE, {"b_channel": inbound.channel, "b_cmid": inbound.channel_message_id}
    ).first()
    if known is not None:
        contact = Contact(**conn.execute(CONTACT_BY_ID, {"b_id": known.contact_id}).one()._asdict())
        message = Message(**conn.execute(MESSAGE_BY_ID, {"b_id": known.id}).one()._asdict())
        return IntakeResult(contact, "duplicate", message)

    received_at = inbound.received_at or now
    resident_id = _resident(conn, inbound.sender, inbound.channel, now)
    conversation_id, existed = _conversation(conn, inbound, resident_id, received_at)
    actor = f"channel:{inbound.channel}"
    body = inbound.text if not inbound.subject else f"{inbound.subject}\n\n{inbound.text}"

    if existed:
        row = conn.execute(OPEN_CONTACT, {"b_conversation": conversation_id}).first()
        if row is not None:
            open_contact = Contact(**row._asdict())
            message = _message(conn, row.id, inbound, body, received_at, stored)
            conn.execute(
                INSERT_EVENT,
                [
                    _event(
                        row.id,
                        now,
                        "follow_up",
                        actor,
                        reason="bericht van inwoner in lopend gesprek",
                    )
                ],
            )
            return IntakeResult(open_contact, "follow_up", message)

    route = plan(inbound)
    values: dict[str, Any] = {
        "reference": _next_reference(conn, received_at.year),
        "channel": inbound.channel,
        "direction": Direction.inbound.value,
        "received_at": received_at,
        "channel_message_id": inbound.channel_message_id,
        "conversation_id": conversation_id,
        "resident_id": resident_id,
        "reply_channel": inbound.sender.preferred_channel
        or reply_channel_for(inbound.channel, inbound.sender),
        "subject": inbound.subject,
        "body": inbound.text,
        "language": route.language,
        "kind": route.kind,
        "topic": route.topic,
        "skills": route.skills,
        "status": Status.queued.value,
        "priority": route.priority,
        "queue": route.queue,
        "escalation_level": 0,
        "enqueued_at": now,
        **route.sla,
    }
    contact_id = conn.execute(INSERT_CONTACT, values).scalar_one()
    if route.timers:
        conn.execute(
            INSERT_TIMER,
            [
                {"contact_id": contact_id, "kind": kind, "due_at": due, "run_at": run}
                for kind, due, run in route.timers
            ],
        )
    conn.execute(
        INSERT_EVENT,
        [
            _event(contact_id, now, "status", actor, to_status=Status.received),
            _event(
                contact_id,
                now,
                "status",
                "system:router",
                from_status=Status.received,
                to_status=Status.queued,
                reason=f"onderwerp {route.topic}, wachtrij {route.queue}",
                data={"skills": route.skills, "kind": route.kind, "language": route.language},
            ),
        ],
    )
    message = _message(conn, contact_id, inbound, body, received_at, stored)
    return IntakeResult(Contact(id=contact_id, **values), "created", message)


def _event(
    contact_id: int,
    at: datetime,
    kind: str,
    actor: str,
    *,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "at": at,
        "type": kind,
        "from_status": from_status,
        "to_status": to_status,
        "actor": actor,
        "reason": reason,
        "data": data or {},
    }


def receive_all(conn: Connection, batch: Sequence[BatchItem]) -> list[IntakeResult]:
    """Write a whole batch in the caller's transaction; the first failure aborts it all."""
    return [receive(conn, *item) for item in batch]


def receive_each(
    conn: Connection, batch: Sequence[BatchItem]
) -> list[IntakeResult | BaseException]:
    """The careful way, after `receive_all` failed: each message in a savepoint of its own, so a
    failure (a constraint, a bad message) costs only that message."""
    results: list[IntakeResult | BaseException] = []
    for item in batch:
        try:
            with conn.begin_nested():
                results.append(receive(conn, *item))
        except Exception as error:
            results.append(error)
    return results


def ensure_reference_sequence(conn: Connection, year: int) -> None:
    """PostgreSQL numbers references from a sequence per year: no row lock is held until
    commit, so concurrent transactions do not queue behind each other."""
    conn.exec_driver_sql(f"CREATE SEQUENCE IF NOT EXISTS kcc_reference_{int(year)}")


def _message(
    conn: Connection,
    contact_id: int,
    inbound: InboundMessage,
    body: str,
    at: datetime,
    stored: Sequence[StoredFile],
) -> Message:
    values: dict[str, Any] = {
        "contact_id": contact_id,
        "channel": inbound.channel,
        "direction": Direction.inbound.value,
        "channel_message_id": inbound.channel_message_id,
        "at": at,
        "agent_id": None,
        "body": body,
        "delivery_status": "received",
        "delivery_detail": None,
    }
    message_id = conn.execute(INSERT_MESSAGE, values).scalar_one()
    if stored:
        conn.execute(
            INSERT_ATTACHMENT,
            [
                {
                    "contact_id": contact_id,
                    "message_id": message_id,
                    "filename": name,
                    "content_type": kind,
                    "size": size,
                    "sha256": digest,
                    "storage_key": key,
                    "created_at": at,
                }
                for name, kind, size, digest, key in stored
            ],
        )
    return Message(id=message_id, **values)


def _resident(conn: Connection, who: ResidentIdentity, channel: str, now: datetime) -> int | None:
    """One resident across channels: match on any identifier, fill in only what was missing."""
    if not who.has_identifier and not (who.name or who.postal_address):
        return None
    found = None
    if who.has_identifier:
        found = conn.execute(
            FIND_RESIDENT,
            {"b_phone": who.phone, "b_email": who.email, "b_telegram": who.telegram_id},
        ).first()
    if found is None:
        values = {
            "name": who.name,
            "phone": who.phone,
            "email": who.email,
            "telegram_id": who.telegram_id,
            "postal_address": who.postal_address,
            "preferred_channel": who.preferred_channel or reply_channel_for(channel, who),
            "language": who.language,
            "support_needs": list(who.support_needs),
            "created_at": now,
        }
        return cast(int, conn.execute(INSERT_RESIDENT, values).scalar_one())
    changes: dict[str, Any] = {}
    for field in ("name", "phone", "email", "telegram_id"):
        if getattr(found, field) is None and getattr(who, field):
            changes[field] = getattr(who, field)
    if who.postal_address and who.postal_address != found.postal_address:
        changes["postal_address"] = who.postal_address
    if who.preferred_channel and who.preferred_channel != found.preferred_channel:
        changes["preferred_channel"] = who.preferred_channel
    if who.language and who.language != found.language:
        changes["language"] = who.language
    needs = sorted(set(found.support_needs or []) | set(who.support_needs))
    if needs != sorted(found.support_needs or []):
        changes["support_needs"] = needs
    if changes:  # rare: only when the resident tells us something new
        conn.execute(sa.update(RESIDENT).where(RESIDENT.c.id == found.id).values(**changes))
    return cast(int, found.id)


def _conversation(
    conn: Connection, inbound: InboundMessage, resident_id: int | None, at: datetime
) -> tuple[int, bool]:
    """The conversation's id and whether it existed before this message."""
    thread_key = inbound.thread_key or f"message:{inbound.channel_message_id}"
    # A thread named after this very message cannot exist yet: the message is new (checked above).
    if thread_key != f"message:{inbound.channel_message_id}":
        found = conn.execute(
            FIND_CONVERSATION,
            {"b_channel": inbound.thread_channel or inbound.channel, "b_thread": thread_key},
        ).first()
        if found is not None:
            conn.execute(
                TOUCH_CONVERSATION, {"b_id": found.id, "b_at": at, "b_resident": resident_id}
            )
            return cast(int, found.id), True
    values = {
        "channel": inbound.channel,
        "thread_key": thread_key,
        "resident_id": resident_id,
        "last_agent_id": None,
        "last_inbound_at": at,
        "created_at": at,
    }
    return cast(int, conn.execute(INSERT_CONVERSATION, values).scalar_one()), False


def _next_reference(conn: Connection, year: int) -> str:
    """PostgreSQL: the year's sequence. SQLite (one writer at a time anyway): a counter row,
    inserted or bumped and read in one statement."""
    if conn.dialect.name == "postgresql":
        sequence = f"kcc_reference_{int(year)}"
        number = conn.execute(sa.text(f"SELECT nextval('{sequence}')")).scalar_one()
    else:
        number = conn.execute(BUMP_COUNTER, {"b_year": year}).scalar_one()
    return format_reference(year, number)
