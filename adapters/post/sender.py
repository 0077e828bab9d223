"""Replies to letters leave as printable letters for the mail room, and by e-mail as well when
the resident gave an address and consented.

The letter is rendered, stored content-addressed, attached to the contact and listed for the mail
room (`GET /api/post/outgoing`). To the outbox it is then `sent` with the detail "klaar om te
printen": handed over, nothing for the outbox to retry; the mail room's "printed" and "posted"
update that detail, so the agent sees where the letter is.
"""

from __future__ import annotations

import asyncio
import logging

from adapters.outbound import Delivery, OutboundMessage
from adapters.post.config import PostConfig
from adapters.post.letter import LetterContent, dutch_date, page_count, render_letter
from adapters.post.metadata import AMSTERDAM, address_lines
from adapters.post.records import PostRecords
from contacts.models import Channel, Contact, Message, PostLetter
from kcc.services import Services

log = logging.getLogger(__name__)

READY = "klaar om te printen bij de postkamer"


def letter_provider_id(letter_id: int) -> str:
    return f"brief-{letter_id}"


class PostSender:
    def __init__(self, services: Services, config: PostConfig, records: PostRecords) -> None:
        self.services = services
        self.config = config
        self.records = records

    async def send(self, message: OutboundMessage) -> Delivery:
        store = self.services.store
        contact = await store.by_reference(message.reference)
        if contact is None:
            return Delivery("failed", detail="contact niet gevonden")
        row = await self.records.message_to_render(contact.id or 0, message.text)
        if row is None:  # not `sending` any more: another process has it; the outbox retries
            raise RuntimeError("outbound post message not found")
        letter = await self.records.letter_for_message(row.id or 0)
        if letter is None:
            resident = message.resident
            lines = address_lines(resident.postal_address if resident else None)
            if not lines:
                copied = await self._email_copy(contact, message) is not None
                return Delivery(
                    "failed",
                    detail="geen postadres bekend: geen brief gemaakt"
                    + (
                        "; het antwoord ging per e-mail"
                        if copied
                        else "; antwoord via een ander kanaal"
                    ),
                )
            letter = await self._make_letter(contact, message, row.id or 0, tuple(lines))
        if letter.email_message_id is None:
            copy = await self._email_copy(contact, message)
            if copy is not None:
                await self.records.set_email_copy(letter.id or 0, copy.id or 0)
        return Delivery("sent", provider_id=letter_provider_id(letter.id or 0), detail=READY)

    async def _make_letter(
        self, contact: Contact, message: OutboundMessage, message_id: int, lines: tuple[str, ...]
    ) -> PostLetter:
        now = self.services.clock.now()
        received = contact.received_at.astimezone(AMSTERDAM).date()
        subject = contact.subject or self.config.letter.subject_unknown.format(
            what="brief" if contact.channel == Channel.post else "bericht",
            date=dutch_date(received),
        )
        content = LetterContent(
            reference=contact.reference,
            date=now.astimezone(AMSTERDAM).date(),
            subject=subject,
            text=message.text,
            name=message.resident.name if message.resident else None,
            address_lines=lines,
        )
        pdf = await asyncio.to_thread(render_letter, self.config.letter, content)
        digest, key = await self.services.attachments.save(pdf)
        pages = await asyncio.to_thread(page_count, pdf)
        letter = await self.records.add_letter(
            PostLetter(
                contact_id=contact.id or 0,
                message_id=message_id,
                reference=contact.reference,
                sha256=digest,
                storage_key=key,
                size=len(pdf),
                pages=pages,
                status="ready",
                created_at=now,
            ),
            filename=f"brief-{contact.reference}-{message_id}.pdf",
        )
        log.info("letter %s made for %s", letter.id, contact.reference)
        return letter

    async def _email_copy(self, contact: Contact, message: OutboundMessage) -> Message | None:
        """The same text by e-mail when the resident gave an address and consented. The e-mail
        channel's own sender delivers it (until it exists, it waits in the outbox)."""
        resident = message.resident
        if resident is None or not resident.email:
            return None
        if not await self.records.email_consent(contact.id or 0):
            return None
        note = self.config.letter.email_copy_note
        return await self.services.outbox.send(
            contact,
            f"{message.text}\n\n{note}" if note else message.text,
            purpose=message.purpose,
            variables=dict(message.variables),
            channel=Channel.email,
        )
