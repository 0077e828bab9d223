"""From a scanned PDF and its metadata to a durable contact: the one path both the API and the
drop folder take.

Idempotent: the mail room's scan id (or, without one, the PDF's sha256) is the channel message
id, so a retry or a re-processed file finds the contact it already made. A letter that mentions
one of our references (KCC-2026-000123) joins that contact's conversation, so a resident's second
letter about the same matter lands on the open contact.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass

from adapters.post.config import PostConfig
from adapters.post.metadata import LetterMetadata, received_at, references_in
from adapters.post.reading import ReadLetter, read_letter
from adapters.post.records import PostRecords
from contacts.inbound import InboundAttachment, InboundMessage, ResidentIdentity
from contacts.intake_writer import IntakeResult
from contacts.models import Channel, ContactEvent, PostScan
from kcc.services import Services

log = logging.getLogger(__name__)

_SUBJECT_LINE = re.compile(r"^\s*(?:betreft|onderwerp)\s*:\s*(.+)$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class PostIntakeResult:
    outcome: str  # created | follow_up | duplicate
    reference: str
    pages: list[dict[str, object]]


class PostIntake:
    def __init__(self, services: Services, config: PostConfig, records: PostRecords) -> None:
        self.services = services
        self.config = config
        self.records = records
        self.ocr_slots = asyncio.Semaphore(1)

    @staticmethod
    def message_id(pdf: bytes, meta: LetterMetadata) -> tuple[str, str]:
        """(channel message id, sha256): the scan id when the mail room gives one."""
        digest = hashlib.sha256(pdf).hexdigest()
        return (f"scan:{meta.scan_id}" if meta.scan_id else f"sha256:{digest}"), digest

    async def receive(
        self, pdf: bytes, meta: LetterMetadata, filename: str = "brief.pdf"
    ) -> PostIntakeResult:
        """Raises `PostInputError` (unreadable file) or `InboundError` (bad metadata)."""
        services = self.services
        now = services.clock.now()
        cmid, digest = self.message_id(pdf, meta)
        when = received_at(
            meta, now, self.config.intake.received_hour, self.config.intake.max_age_days
        )

        # A retry of a letter we fully took in: answer without reading (OCR) it again.
        known = await services.store.find_message(Channel.post, cmid)
        scan = await self.records.scan(cmid) if known else None
        if known is not None and scan is not None:
            return PostIntakeResult("duplicate", known[0].reference, list(scan.pages))

        letter = await read_letter(pdf, self.config.intake, self.ocr_slots)
        text = letter.text if letter.has_text else self.config.intake.empty_text
        result = await services.intake.receive(
            InboundMessage(
                channel=Channel.post,
                channel_message_id=cmid,
                text=text,
                subject=_subject(letter),
                sender=ResidentIdentity(
                    name=meta.sender_name,
                    phone=meta.phone,
                    email=meta.email,
                    postal_address=meta.postal_address,
                ),
                received_at=when,
                thread_key=await self._thread_key(meta, text),
                attachments=(InboundAttachment(_pdf_name(filename), "application/pdf", pdf),),
            )
        )
        pages = [p.summary() for p in letter.pages]
        await self._record(result, cmid, digest, meta, letter)
        log.info(
            "letter %s on %s: %d pages, %d by OCR",
            result.outcome,
            result.contact.reference,
            len(pages),
            letter.ocr_pages,
        )
        return PostIntakeResult(result.outcome, result.contact.reference, pages)

    async def _thread_key(self, meta: LetterMetadata, text: str) -> str | None:
        """The conversation of the post contact the letter refers to, if any."""
        candidates = ([meta.reference] if meta.reference else []) + references_in(text)
        for reference in candidates:
            contact = await self.services.store.by_reference(reference)
            if contact is None or contact.channel != Channel.post:
                continue
            conversation = await self.services.store.conversation(contact.conversation_id)
            if conversation is not None:
                return conversation.thread_key
        return None

    async def _record(
        self,
        result: IntakeResult,
        cmid: str,
        digest: str,
        meta: LetterMetadata,
        letter: ReadLetter,
    ) -> None:
        contact_id = result.contact.id or 0
        pages = [p.summary() for p in letter.pages]
        ocr = letter.ocr_pages
        reason = f"brief gescand: {len(pages)} pagina('s)" + (
            f", {ocr} via OCR (tekst kan fouten bevatten)" if ocr else ", tekst uit de PDF"
        )
        if not letter.has_text:
            reason += "; geen leesbare tekst, zie de bijlage"
        now = self.services.clock.now()
        await self.records.add_scan(
            PostScan(
                channel_message_id=cmid,
                contact_id=contact_id,
                sha256=digest,
                received_at=result.message.at,
                email_consent=meta.email_consent,
                pages=pages,
                created_at=now,
            ),
            ContactEvent(
                contact_id=contact_id,
                at=now,
                type="post_scan",
                actor="channel:post",
                reason=reason,
                data={
                    "pages": pages,
                    "ocr_pages": ocr,
                    "email_consent": meta.email_consent,
                    "received_at": result.message.at.isoformat(),
                },
            ),
        )


def _subject(letter: ReadLetter) -> str:
    match = _SUBJECT_LINE.search(letter.text)
    return " ".join(match.group(1).split())[:200] if match else ""


def _pdf_name(filename: str) -> str:
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip() or "brief.pdf"
    return name if name.lower().endswith(".pdf") else f"{name}.pdf"
