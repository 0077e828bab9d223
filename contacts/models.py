"""The one contact model: every channel produces these rows, every agent works on them.

Tables (SQLModel on SQLAlchemy 2):
- `Resident`: one person (party), reachable on several channels through their identifiers.
- `Conversation`: a thread with a resident on one channel (a WhatsApp number, an e-mail thread,
  a Telegram chat); follow-ups on it join the open contact.
- `Contact`: one question/request/report/complaint/objection, the unit that is routed, queued,
  assigned, answered and closed, with its SLA fields.
- `Message`: each inbound or outbound message of a contact (the first one and follow-ups).
- `Attachment`: metadata of a file stored outside the database.
- `ContactEvent`: the append-only history of a contact (who, when, why).
- `SlaTimer`: a due SLA action of a contact (acknowledgement, warning, breach), fired once.
- `QuarantinedInput`: channel input that could not become a contact, kept with its reason.
- `Agent`: a person or integration working with the API.
- `WebSession`, `AuditLog`, `QueueSample`: desk sign-in, who viewed which resident, dashboard
  samples.
- `ReferenceCounter`: the per-year sequence behind human references (KCC-2026-000123).

JSON columns hold small lists/maps (skills, support needs, capacity). Timestamps are stored as
aware UTC; SQLite drops the zone, so `UtcDateTime` puts it back on the way out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every database (SQLite keeps no zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the contact model stores aware UTC only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Channel(StrEnum):
    whatsapp = "whatsapp"
    telegram = "telegram"
    email = "email"
    webform = "webform"
    post = "post"
    phone = "phone"
    counter = "counter"


class Direction(StrEnum):
    inbound = "inbound"
    outbound = "outbound"


class Kind(StrEnum):
    vraag = "vraag"
    verzoek = "verzoek"
    melding = "melding"
    klacht = "klacht"
    bezwaar = "bezwaar"


class Status(StrEnum):
    received = "received"
    queued = "queued"
    assigned = "assigned"
    waiting_on_resident = "waiting_on_resident"
    transferred = "transferred"
    answered = "answered"
    closed = "closed"


# The lifecycle as a table: a transition not listed here is a bug, refused by the store.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.received: frozenset({Status.queued, Status.closed}),
    Status.queued: frozenset({Status.assigned, Status.transferred, Status.closed}),
    Status.assigned: frozenset(
        {
            Status.waiting_on_resident,
            Status.transferred,
            Status.answered,
            Status.queued,
            Status.closed,
        }
    ),
    Status.waiting_on_resident: frozenset(
        {Status.assigned, Status.queued, Status.answered, Status.closed}
    ),
    Status.transferred: frozenset({Status.queued}),
    # Answered, then waiting: the reply asked the resident something.
    Status.answered: frozenset(
        {Status.assigned, Status.queued, Status.waiting_on_resident, Status.closed}
    ),
    Status.closed: frozenset(),
}

OPEN_STATUSES: frozenset[Status] = frozenset(set(Status) - {Status.closed})
# Statuses in which a contact occupies the capacity of its assigned agent.
HELD_STATUSES: frozenset[Status] = frozenset({Status.assigned, Status.answered})


class AgentRole(StrEnum):
    agent = "agent"
    teamlead = "teamlead"
    admin = "admin"
    integration = "integration"  # a system that feeds contacts in (adapters, website, KISS...)
    editor = "editor"  # writes kennisbank articles; sees no contacts


class AgentStatus(StrEnum):
    available = "available"
    away = "away"
    busy = "busy"
    offline = "offline"


def utcnow() -> datetime:
    return datetime.now(UTC)


def _json() -> Any:
    return sa.JSON()


class Resident(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=32, index=True)
    email: str | None = Field(default=None, max_length=320, index=True)
    telegram_id: str | None = Field(default=None, max_length=64, index=True)
    postal_address: str | None = Field(default=None, max_length=500)
    preferred_channel: str | None = Field(default=None, max_length=16)
    language: str | None = Field(default=None, max_length=8)
    # Zorgplicht: e.g. interpreter, easy_language_b1, visual_impairment, prefers_phone.
    support_needs: list[str] = Field(default_factory=list, sa_type=_json())
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class Conversation(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("channel", "thread_key", name="uq_conversation_thread"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    # The channel's own thread identity: a phone number, a chat id, an e-mail thread root.
    thread_key: str = Field(max_length=500)
    resident_id: int | None = Field(default=None, foreign_key="resident.id", index=True)
    last_agent_id: int | None = Field(default=None, foreign_key="agent.id")
    last_inbound_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class Contact(SQLModel, table=True):
    __table_args__ = (
        sa.UniqueConstraint("channel", "channel_message_id", name="uq_contact_channel_message"),
        sa.Index("ix_contact_status_queue", "status", "queue"),
        sa.Index("ix_contact_escalation", "status", "escalation_level", "enqueued_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=32, unique=True)
    channel: str = Field(max_length=16)
    direction: str = Field(default=Direction.inbound, max_length=8)
    received_at: datetime = Field(sa_type=UtcDateTime)
    channel_message_id: str = Field(max_length=200)
    conversation_id: int | None = Field(default=None, foreign_key="conversation.id", index=True)
    resident_id: int | None = Field(default=None, foreign_key="resident.id", index=True)
    reply_channel: str | None = Field(default=None, max_length=16)

    subject: str = Field(default="", max_length=300)
    body: str = Field(default="", sa_type=sa.Text())
    language: str = Field(default="nl", max_length=8)

    kind: str = Field(default=Kind.vraag, max_length=16)
    topic: str = Field(default="", max_length=64)
    skills: list[str] = Field(default_factory=list, sa_type=_json())

    status: str = Field(default=Status.received, max_length=24, index=True)
    priority: int = Field(default=0)
    queue: str | None = Field(default=None, max_length=64)
    escalation_level: int = Field(default=0)
    enqueued_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    assigned_agent_id: int | None = Field(default=None, foreign_key="agent.id", index=True)
    assigned_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    taken_at: datetime | None = Field(default=None, sa_type=UtcDateTime)

    ack_due: datetime | None = Field(default=None, sa_type=UtcDateTime)
    answer_due: datetime | None = Field(default=None, sa_type=UtcDateTime)
    acked_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    answered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # When the router raises its priority (a share of the answer term has passed); cleared once
    # raised. Indexed so the sweep finds due contacts without scanning the open ones.
    at_risk_at: datetime | None = Field(default=None, sa_type=UtcDateTime, index=True)
    closed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    outcome: str | None = Field(default=None, max_length=64)
    note: str | None = Field(default=None, sa_type=sa.Text())

    # SLA (sla/): the answer norm applied (config/sla.toml), its own deadline before any
    # verdaging or pause (the base of the legal maximum), and what happened to the deadlines.
    sla_norm: str | None = Field(default=None, max_length=32)
    norm_due: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # None, "at_risk" (a warning went out) or "breached" (a deadline passed unmet).
    sla_state: str | None = Field(default=None, max_length=16, index=True)
    ack_breached_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    answer_breached_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    extended_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # Time spent waiting on the resident already added to answer_due (norms that allow it).
    sla_paused_seconds: int = Field(default=0)


class SlaTimer(SQLModel, table=True):
    """A due SLA action of one contact (acknowledgement, warning, ack_breach, answer_breach).
    Periodic sweeps in every process claim due rows (`run_at`, a partial index over the
    unfired ones) with a conditional update, so a timer fires once across processes and
    survives restarts."""

    __tablename__ = "sla_timer"
    __table_args__ = (
        sa.Index(
            "ix_sla_timer_pending",
            "run_at",
            sqlite_where=sa.text("fired_at IS NULL"),
            postgresql_where=sa.text("fired_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    kind: str = Field(max_length=24)
    # When it is due, and when a sweep should (next) run it: a claim moves run_at one lease
    # ahead, so a timer whose process died runs again.
    due_at: datetime = Field(sa_type=UtcDateTime)
    run_at: datetime = Field(sa_type=UtcDateTime)
    attempts: int = Field(default=0)
    fired_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    outcome: str | None = Field(default=None, max_length=32)


class Message(SQLModel, table=True):
    __table_args__ = (
        sa.UniqueConstraint("channel", "channel_message_id", name="uq_message_channel_message"),
    )

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    channel: str = Field(max_length=16)
    direction: str = Field(max_length=8)
    channel_message_id: str = Field(max_length=200)
    at: datetime = Field(sa_type=UtcDateTime)
    agent_id: int | None = Field(default=None, foreign_key="agent.id")
    body: str = Field(default="", sa_type=sa.Text())
    # Outbound: queued -> sending -> sent -> delivered/read, or failed; inbound: received.
    delivery_status: str = Field(default="received", max_length=16, index=True)
    delivery_detail: str | None = Field(default=None, max_length=500)
    # Outbound: why we send it (reply, acknowledgement, extension, ...) and the values a
    # channel's template needs (a WhatsApp template outside the 24-hour window).
    purpose: str = Field(default="reply", max_length=32)
    variables: dict[str, str] = Field(default_factory=dict, sa_type=_json())
    # When a process last started handing it to its channel; a stale one is tried again.
    attempt_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # Outbound: the kennisbank article version the reply was based on, so the answer a
    # resident got can be reconstructed (GET /api/kennisbank/articles/{slug}/versions/{n}).
    article_slug: str | None = Field(default=None, max_length=64)
    article_version: int | None = Field(default=None)


class Attachment(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    message_id: int | None = Field(default=None, foreign_key="message.id")
    filename: str = Field(max_length=255)
    content_type: str = Field(max_length=127)
    size: int
    sha256: str = Field(max_length=64)
    storage_key: str = Field(max_length=300)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class ContactEvent(SQLModel, table=True):
    """Append-only: the store only ever inserts these rows."""

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    at: datetime = Field(sa_type=UtcDateTime)
    type: str = Field(max_length=32)  # status, follow_up, transfer, note, reply, escalation
    from_status: str | None = Field(default=None, max_length=24)
    to_status: str | None = Field(default=None, max_length=24)
    actor: str = Field(max_length=64)  # "agent:12", "system:router", "channel:webform"
    reason: str | None = Field(default=None, max_length=500)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=_json())


class QuarantinedInput(SQLModel, table=True):
    """Input a channel received but could not turn into a contact (broken MIME, an unreadable
    scan...): kept with its reason for a team lead, never silently dropped."""

    __tablename__ = "quarantine"
    __table_args__ = (sa.UniqueConstraint("channel", "provider_id", name="uq_quarantine_provider"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    at: datetime = Field(sa_type=UtcDateTime, index=True)
    reason: str = Field(max_length=500)
    # The provider's id where there is one, so a provider's retry is quarantined once.
    provider_id: str | None = Field(default=None, max_length=200)
    content_type: str = Field(default="application/octet-stream", max_length=127)
    size: int = Field(default=0)
    # The raw input in the attachment store (content-addressed); None when nothing was kept.
    storage_key: str | None = Field(default=None, max_length=300)
    resolved_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    resolved_by: str | None = Field(default=None, max_length=64)
    resolution: str | None = Field(default=None, max_length=500)


class Agent(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    role: str = Field(default=AgentRole.agent, max_length=16)
    token_hash: str = Field(max_length=64, unique=True)
    skills: dict[str, int] = Field(default_factory=dict, sa_type=_json())
    capacity: dict[str, int] = Field(default_factory=dict, sa_type=_json())
    status: str = Field(default=AgentStatus.offline, max_length=16)
    status_since: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    # Desk sign-in: an Argon2id hash (None: this agent signs in with a token only), and the
    # count of failed sign-ins that slows down password guessing.
    password_hash: str | None = Field(default=None, max_length=200)
    failed_signins: int = Field(default=0)
    signin_blocked_until: datetime | None = Field(default=None, sa_type=UtcDateTime)


class WebSession(SQLModel, table=True):
    """A signed-in browser. Only a hash of the session id is stored: a leaked database
    cannot be replayed as cookies."""

    id_hash: str = Field(primary_key=True, max_length=64)
    agent_id: int = Field(foreign_key="agent.id", index=True)
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UtcDateTime)
    last_seen_at: datetime = Field(sa_type=UtcDateTime)
    expires_at: datetime = Field(sa_type=UtcDateTime)


class AuditLog(SQLModel, table=True):
    """Who looked at which resident's data, when, through which view. Append-only (a database
    trigger refuses UPDATE and DELETE)."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UtcDateTime, index=True)
    agent_id: int = Field(foreign_key="agent.id", index=True)
    resident_id: int | None = Field(default=None, index=True)
    contact_id: int | None = Field(default=None)
    reference: str | None = Field(default=None, max_length=32)
    view: str = Field(max_length=32)  # contact, next, attachment
    via: str = Field(max_length=16)  # session (desk) or token (API)


class QueueSample(SQLModel, table=True):
    """One sample of the queues for the dashboard's chart of the day; one row per moment, whichever
    process took it."""

    at: datetime = Field(primary_key=True, sa_type=UtcDateTime)
    waiting: int
    oldest_wait_seconds: float
    service_level: float | None = Field(default=None)
    per_queue: dict[str, int] = Field(default_factory=dict, sa_type=_json())


class ReferenceCounter(SQLModel, table=True):
    year: int = Field(primary_key=True)
    last: int = Field(default=0)


class ArticleVersion(SQLModel, table=True):
    """Every version of every kennisbank article, never updated or deleted: the current version
    of a slug is its highest number. `source` is the whole Markdown file (front matter and
    sections), so files and API edits share one format."""

    __tablename__ = "kb_article_version"
    __table_args__ = (sa.UniqueConstraint("slug", "version", name="uq_kb_article_version"),)

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=64, index=True)
    version: int
    title: str = Field(max_length=300)
    source: str = Field(sa_type=sa.Text())
    source_sha256: str = Field(max_length=64)
    # "file" (imported from config/kennisbank/) or "api" (an editor's edit).
    origin: str = Field(max_length=8)
    author: str = Field(max_length=64)  # "file", "agent:12"
    created_at: datetime = Field(sa_type=UtcDateTime)


class KennisbankGap(SQLModel, table=True):
    """A question the kennisbank had no good answer to, anonymised, counted per wording."""

    __tablename__ = "kb_gap"

    id: int | None = Field(default=None, primary_key=True)
    query: str = Field(max_length=300, unique=True)
    count: int = Field(default=1)
    source: str = Field(max_length=16)  # "search" or the channel of an inbound contact
    best_slug: str | None = Field(default=None, max_length=64)
    best_score: float = Field(default=0.0)
    first_at: datetime = Field(sa_type=UtcDateTime)
    last_at: datetime = Field(sa_type=UtcDateTime, index=True)


class PostScan(SQLModel, table=True):
    """A scanned letter as it came in (one per inbound post message): where its text came from
    page by page, and whether the resident consented to an e-mail reply (None: not stated)."""

    __tablename__ = "post_scan"

    id: int | None = Field(default=None, primary_key=True)
    channel_message_id: str = Field(max_length=200, unique=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    sha256: str = Field(max_length=64)
    received_at: datetime = Field(sa_type=UtcDateTime)
    email_consent: bool | None = Field(default=None)
    # Per page: {"page": 1, "source": "text" | "ocr" | "empty" | "not_read", "chars": 123}.
    pages: list[dict[str, Any]] = Field(default_factory=list, sa_type=_json())
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class PostLetter(SQLModel, table=True):
    """A printable reply letter for the mail room: ready -> printed -> posted."""

    __tablename__ = "post_letter"

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    # The outbound message it renders; one letter per message, so a retried send reuses it.
    message_id: int = Field(foreign_key="message.id", unique=True)
    reference: str = Field(max_length=32)
    sha256: str = Field(max_length=64)
    storage_key: str = Field(max_length=300)
    size: int
    pages: int
    status: str = Field(default="ready", max_length=16, index=True)
    created_at: datetime = Field(sa_type=UtcDateTime)
    printed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    posted_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    updated_by: str | None = Field(default=None, max_length=64)
    # The e-mail copy sent with it (when the resident consented), so a retry sends it once.
    email_message_id: int | None = Field(default=None, foreign_key="message.id")


class MailboxState(SQLModel, table=True):
    """An IMAP mailbox the e-mail channel reads: how far it got (UIDVALIDITY and the last UID
    handled) and which process polls it now (a lease, so one process at a time)."""

    __tablename__ = "mailbox_state"

    account: str = Field(primary_key=True, max_length=200)
    uidvalidity: int = Field(default=0, sa_type=sa.BigInteger())
    last_uid: int = Field(default=0, sa_type=sa.BigInteger())
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    updated_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class PhoneCall(SQLModel, table=True):
    """A live call behind a phone contact: how long the caller waited, whether an agent
    answered or the caller hung up (abandoned) or chose a callback, and how long it lasted."""

    __table_args__ = (sa.UniqueConstraint("call_sid", name="uq_phonecall_call_sid"),)

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    call_sid: str = Field(max_length=64)
    # waiting -> answered | abandoned | callback
    status: str = Field(default="waiting", max_length=16)
    created_at: datetime = Field(sa_type=UtcDateTime)
    wait_seconds: float | None = Field(default=None)
    answered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    abandoned_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    duration_seconds: int | None = Field(default=None)
    # Twilio's final CallStatus: completed, busy, no-answer, canceled, failed.
    end_status: str | None = Field(default=None, max_length=16)
