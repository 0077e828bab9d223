"""The outbound side of every channel: a reply is recorded durably, then handed to its channel.

Each adapter registers an `OutboundChannel` for its channel. A reply to a channel that has no
sender yet (or whose provider is down) stays in the outbox as `queued`, visible on the contact,
and `retry_queued` sends it once the channel can: nothing is lost and nothing fails silently.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Protocol

from contacts.models import Contact, Message, Resident
from contacts.store import ContactStore
from kcc.clock import Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboundMessage:
    reference: str
    channel: str
    resident: Resident | None
    subject: str
    text: str
    # The provider id of the resident's latest message, so clients thread the reply.
    in_reply_to: str | None = None


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

    async def reply(self, contact: Contact, agent_id: int | None, text: str) -> Message:
        """Record the reply, then try to deliver it on the contact's reply channel."""
        channel = contact.reply_channel or contact.channel
        message = await self.store.record_outbound(
            contact.id or 0, agent_id, channel, text, self.clock.now(), f"out:{uuid.uuid4()}"
        )
        return await self._deliver(contact, message)

    async def _deliver(self, contact: Contact, message: Message) -> Message:
        sender = self.channels.get(message.channel)
        if sender is None:
            detail = f"kanaal {message.channel} heeft nog geen verzendkoppeling"
            await self.store.set_delivery(message.id or 0, "queued", detail)
            message.delivery_status, message.delivery_detail = "queued", detail
            return message
        resident = await self.store.resident(contact.resident_id)
        messages = await self.store.messages(contact.id or 0)
        last_inbound = next(
            (m.channel_message_id for m in reversed(messages) if m.direction == "inbound"), None
        )
        outbound = OutboundMessage(
            reference=contact.reference,
            channel=message.channel,
            resident=resident,
            subject=f"{contact.subject or 'Uw contact met de gemeente'} [{contact.reference}]",
            text=message.body,
            in_reply_to=last_inbound,
        )
        try:
            delivery = await sender.send(outbound)
        except Exception as error:  # a provider failure must not lose the reply
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
