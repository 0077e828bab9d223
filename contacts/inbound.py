"""What a channel adapter hands over: one inbound message in channel-neutral form."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from contacts.models import Channel

MAX_TEXT_CHARS = 100_000
MAX_SUBJECT_CHARS = 300
SUPPORT_NEEDS = frozenset(
    {
        "interpreter",
        "easy_language_b1",
        "visual_impairment",
        "hearing_impairment",
        "prefers_phone",
        "low_digital_skills",
        "low_literacy",
    }
)

_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_PHONE_CHARS = re.compile(r"[\s\-().]")


class InboundError(ValueError):
    """The message cannot become a contact; the text is safe to show to the sender."""


def normalise_email(value: str | None) -> str | None:
    if not value or not value.strip():
        return None
    value = value.strip()
    if len(value) > 320 or not _EMAIL.match(value):
        raise InboundError("e-mailadres is ongeldig / invalid e-mail address")
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


def normalise_phone(value: str | None) -> str | None:
    """E.164-ish: +31612345678. Dutch numbers written 06..., 0031... are recognised."""
    if not value or not value.strip():
        return None
    number = _PHONE_CHARS.sub("", value.strip().removeprefix("whatsapp:"))
    if number.startswith("00"):
        number = "+" + number[2:]
    elif number.startswith("0"):
        number = "+31" + number[1:]
    if not re.fullmatch(r"\+[1-9]\d{6,14}", number):
        raise InboundError("telefoonnummer is ongeldig / invalid phone number")
    return number


@dataclass(frozen=True)
class ResidentIdentity:
    """Who sent it, as far as the channel tells. Any identifier may be missing."""

    name: str | None = None
    phone: str | None = None
    email: str | None = None
    telegram_id: str | None = None
    postal_address: str | None = None
    preferred_channel: str | None = None
    language: str | None = None
    support_needs: tuple[str, ...] = ()

    def normalised(self) -> ResidentIdentity:
        needs = tuple(sorted({n for n in self.support_needs if n in SUPPORT_NEEDS}))
        name = self.name.strip()[:200] if self.name and self.name.strip() else None
        return ResidentIdentity(
            name=name,
            phone=normalise_phone(self.phone),
            email=normalise_email(self.email),
            telegram_id=self.telegram_id.strip() if self.telegram_id else None,
            postal_address=self.postal_address.strip()[:500] if self.postal_address else None,
            preferred_channel=self.preferred_channel,
            language=self.language,
            support_needs=needs,
        )

    @property
    def has_identifier(self) -> bool:
        return bool(self.phone or self.email or self.telegram_id)


@dataclass(frozen=True)
class InboundAttachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class InboundMessage:
    channel: str
    channel_message_id: str
    text: str
    sender: ResidentIdentity
    subject: str = ""
    received_at: datetime | None = None  # None: the moment of intake
    # The channel's thread identity; by default derived from the sender on that channel.
    thread_key: str | None = None
    attachments: tuple[InboundAttachment, ...] = field(default_factory=tuple)
    # The channel of the conversation `thread_key` names, when it is another channel's: a
    # resident's e-mail answer to a web-form contact continues the web-form conversation.
    thread_channel: str | None = None

    def validated(self) -> InboundMessage:
        if self.channel not in set(Channel):
            raise InboundError(f"unknown channel {self.channel!r}")
        cmid = self.channel_message_id.strip()
        if not cmid or len(cmid) > 200:
            raise InboundError("channel_message_id must be 1-200 characters")
        text = self.text.replace("\r\n", "\n").strip()
        subject = " ".join(self.subject.split())
        if not text and not subject and not self.attachments:
            raise InboundError("het bericht is leeg / the message is empty")
        if len(text) > MAX_TEXT_CHARS:
            raise InboundError(f"het bericht is te lang (max {MAX_TEXT_CHARS} tekens)")
        if len(subject) > MAX_SUBJECT_CHARS:
            raise InboundError(f"het onderwerp is te lang (max {MAX_SUBJECT_CHARS} tekens)")
        if self.received_at is not None and self.received_at.tzinfo is None:
            raise InboundError("received_at must carry a time zone")
        sender = self.sender.normalised()
        return InboundMessage(
            channel=self.channel,
            channel_message_id=cmid,
            text=text,
            sender=sender,
            subject=subject,
            received_at=self.received_at,
            thread_key=self.thread_key or default_thread_key(self.channel, sender, cmid),
            attachments=self.attachments,
            thread_channel=self.thread_channel,
        )


def default_thread_key(channel: str, sender: ResidentIdentity, channel_message_id: str) -> str:
    """Chat channels thread per sender; a web form or letter stands alone unless linked."""
    if channel in (Channel.whatsapp, Channel.phone) and sender.phone:
        return f"phone:{sender.phone}"
    if channel == Channel.telegram and sender.telegram_id:
        return f"telegram:{sender.telegram_id}"
    return f"message:{channel_message_id}"
