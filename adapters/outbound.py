"""The outbound side of every channel: a message is recorded durably, then handed to its channel.

Each adapter registers an `OutboundChannel` for its channel. A message to a channel that has no
sender (or whose provider is down) stays in the outbox as `queued`, visible on the contact, and
`retry_unsent` sends it once the channel can: nothing is lost and nothing fails silently. A
channel that refuses a message for good (e.g. WhatsApp outside its 24-hour window without an
approved template) answers `failed` with a reason the agent is shown.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from contacts.models import Contact, Message, Resident
from contacts.store import ContactStore
from kcc.clock import Clock

log = logging.getLogger(__name__)

# A message still `sending` after this long belonged to a process that died while sending.
STALE_SENDING = timedelta(minutes=5)
# A queued message is tried again at most this often while its provider is down.
RETRY_AFTER = timedelta(seconds=30)


class Purpose:
    """Why a message goes out; a channel may treat them differently (WhatsApp templates)."""

    reply = "reply"
    acknowledgement = "acknowledgement"
    extension = "extension"
    reminder = "reminder"


@dataclass(frozen=True)
class OutboundMessage:
    reference: str
    channel: str
    resident: Resident | None
    subject: str
    text: str
    # The provider id of the resident's latest message, so clients thread the reply.
    in_reply_to: str | None = None
    purpose: str = Purpose.reply
    # Values for a channel's template (reference, answer_due, ...), as strings.
    variables: Mapping[str, str] = field(default_factory=dict)
    # When the resident last wrote to us on this conversation (WhatsApp's 24-hour window).
    last_inbound_at: datetime | None = None
    language: str = "nl"
    # The contact's conversation thread on its channel (a phone number, a chat id, a mail root).
    thread_key: str | None = None


@dataclass(frozen=True)
class Delivery:
    status: str  # sent | delivered | queued | failed
    provider_id: str | None = None
    detail: str | None = None


class OutboundChannel(Protocol):
    async def send(self, message: OutboundMessage) -> Delivery: ...


class Outbox:
    def __init__(self, store: ContactStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.channels: dict[str, OutboundChannel] = {}

    def register(self, channel: str, sender: OutboundChannel) -> None:
        self.channels[channel] = sender

    def unregister(self, channel: str) -> None:
        self.channels.pop(channel, None)

    async def reply(
        self,
        contact: Contact,
        agent_id: int | None,
        text: str,
        article: tuple[str, int] | None = None,
    ) -> Message:
        """Record an agent's reply, then try to deliver it on the contact's reply channel.
        `article`: the kennisbank (slug, version) the text is based on, stored with it."""
        return await self.send(contact, text, agent_id=agent_id, article=article)

    async def send(
        self,
        contact: Contact,
        text: str,
        *,
        agent_id: int | None = None,
        purpose: str = Purpose.reply,
        variables: Mapping[str, str] | None = None,
        channel: str | None = None,
        article: tuple[str, int] | None = None,
    ) -> Message:
        """Record a message to the resident durably, then try to deliver it. `channel`: the
        contact's reply channel unless given."""
        channel = channel or contact.reply_channel or contact.channel
        message = await self.store.record_outbound(
            contact.id or 0,
            agent_id,
            channel,
            text,
            self.clock.now(),
            f"out:{uuid.uuid4()}",
            purpose=purpose,
            variables=dict(variables or {}),
            article=article,
        )
        return await self._deliver(contact, message)

    async def retry_unsent(self, limit: int = 100) -> int:
        """Hand queued (and abandoned `sending`) messages to their channels; returns how many
        were tried. Safe with several processes: each message is claimed by one."""
        now = self.clock.now()
        tried = 0
        unsent = await self.store.claim_unsent(
            now, now - STALE_SENDING, list(self.channels), now - RETRY_AFTER, limit
        )
        for message in unsent:
            contact = await self.store.get(message.contact_id)
            if contact is None:
                continue
            await self._deliver(contact, message)
            tried += 1
        return tried

    async def _deliver(self, contact: Contact, message: Message) -> Message:
        sender = self.channels.get(message.channel)
        if sender is None:
            detail = _no_sender(message)
            await self.store.set_delivery(message.id or 0, "queued", detail, never_tried=True)
            message.delivery_status, message.delivery_detail = "queued", detail
            return message
        outbound = await self._outbound(contact, message)
        try:
            delivery = await sender.send(outbound)
        except Exception as error:  # a provider failure must not lose the message
            log.warning("sending on %s failed: %s", message.channel, type(error).__name__)
            delivery = Delivery(
                "queued",
                detail=f"verzenden mislukt, wordt opnieuw geprobeerd: {type(error).__name__}",
            )
        await self.store.set_delivery(
            message.id or 0, delivery.status, delivery.detail, delivery.provider_id
        )
        message.delivery_status, message.delivery_detail = delivery.status, delivery.detail
        if delivery.provider_id:
            message.channel_message_id = delivery.provider_id
        return message

    async def _outbound(self, contact: Contact, message: Message) -> OutboundMessage:
        resident = await self.store.resident(contact.resident_id)
        conversation = await self.store.conversation(contact.conversation_id)
        messages = await self.store.messages(contact.id or 0)
        last_inbound = next(
            (m.channel_message_id for m in reversed(messages) if m.direction == "inbound"), None
        )
        return OutboundMessage(
            reference=contact.reference,
            channel=message.channel,
            resident=resident,
            subject=f"{contact.subject or 'Uw contact met de gemeente'} [{contact.reference}]",
            text=message.body,
            in_reply_to=last_inbound,
            purpose=message.purpose,
            variables=message.variables,
            last_inbound_at=conversation.last_inbound_at if conversation else None,
            language=contact.language,
            thread_key=conversation.thread_key if conversation else None,
        )


def _no_sender(message: Message) -> str:
    return f"kanaal {message.channel} heeft geen verzendkoppeling; het bericht wacht in de outbox"
