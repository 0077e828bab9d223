"""Helpers for the SLA tests: contacts through the real intake, a recording channel."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from adapters.outbound import Delivery, OutboundMessage
from contacts.inbound import InboundMessage, ResidentIdentity
from contacts.models import Contact
from kcc.clock import ManualClock
from kcc.services import Services

AMS = ZoneInfo("Europe/Amsterdam")
# Monday 23 November 2026, 10:00 in Groningen.
MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

GROFVUIL = "Wanneer wordt het grofvuil opgehaald in de Oosterpoort? Ik heb een oude bank."
KLACHT = "Ik wil een klacht indienen over de onvriendelijke behandeling door een medewerker."
BEZWAAR = "Hierbij maak ik bezwaar tegen de aanslag onroerendezaakbelasting 2026."
ENGLISH = "Hello, I would like to know when my new passport will be ready, can you please help me?"


def local(y: int, m: int, d: int, hh: int = 10, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=AMS).astimezone(UTC)


class RecordingChannel:
    """An `OutboundChannel` that records what goes out (a real provider call yields)."""

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    async def send(self, message: OutboundMessage) -> Delivery:
        await asyncio.sleep(0)
        self.sent.append(message)
        return Delivery("sent", provider_id=f"rec-{uuid.uuid4().hex[:8]}")


def record(services: Services, *channels: str) -> dict[str, RecordingChannel]:
    found = {}
    for channel in channels:
        found[channel] = RecordingChannel()
        services.outbox.register(channel, found[channel])
    return found


async def receive(
    services: Services,
    text: str = GROFVUIL,
    channel: str = "email",
    *,
    email: str | None = "piet@example.nl",
    phone: str | None = None,
    postal_address: str | None = None,
    received_at: datetime | None = None,
    thread_key: str | None = None,
    language: str | None = None,
) -> Contact:
    result = await services.intake.receive(
        InboundMessage(
            channel=channel,
            channel_message_id=f"m-{uuid.uuid4().hex}",
            text=text,
            sender=ResidentIdentity(
                email=email, phone=phone, postal_address=postal_address, language=language
            ),
            received_at=received_at,
            thread_key=thread_key,
        )
    )
    return result.contact


def clock_of(services: Services) -> ManualClock:
    assert isinstance(services.clock, ManualClock)
    return services.clock


async def fresh(services: Services, contact: Contact) -> Contact:
    found = await services.store.get(contact.id or 0)
    assert found is not None
    return found


async def event_types(services: Services, contact: Contact) -> list[str]:
    return [e.type for e in await services.store.events(contact.id or 0)]
