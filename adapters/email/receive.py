"""One raw mail in, whichever way it came (IMAP or LMTP): a durable contact or follow-up, a
recorded bounce, an ignored auto-reply, or a quarantined unreadable mail. When `receive`
returns, the outcome is durable, so the caller may then mark the mail processed (IMAP) or
answer 250 (LMTP). A failure to reach the database raises: the caller keeps the mail and tries
again later; every outcome is idempotent, so trying again never stores anything twice.

Threading: a mail answering one of our messages (In-Reply-To/References naming its
Message-ID) or an earlier mail of the thread joins that conversation, and so its open contact;
so does a mail whose subject carries the reference of a contact of the same sender
("[KCC-2026-000123]"). Anything else starts a conversation of its own, keyed on the thread's
root Message-ID.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, replace
from datetime import datetime

from adapters.email.parse import (
    Automatic,
    MailLimits,
    MailParseError,
    ParsedMail,
    message_id_of,
    parse_mail,
    parse_message,
)
from contacts.attachments import AttachmentTooLarge
from contacts.inbound import InboundError, InboundMessage, ResidentIdentity, normalise_email
from contacts.models import Conversation
from kcc.services import Services

log = logging.getLogger(__name__)

REFERENCE = re.compile(r"\bKCC-\d{4}-\d{6}\b")
# What is kept of a quarantined mail that is too large to keep whole: its header block.
MAX_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class Received:
    outcome: str  # created | follow_up | duplicate | bounce | automatic | quarantined
    reference: str | None = None


class MailReceiver:
    def __init__(
        self, services: Services, limits: MailLimits, own_addresses: frozenset[str] = frozenset()
    ) -> None:
        self.services = services
        self.limits = limits
        # Our own sending addresses: a copy of our own mail in the mailbox is not a resident.
        self.own_addresses = frozenset(address.lower() for address in own_addresses)
        # Automatic mail seen by this process, per kind (for the log and the tests).
        self.ignored: dict[str, int] = {}

    async def receive(self, raw: bytes, received_at: datetime | None = None) -> Received:
        now = self.services.clock.now()
        try:
            mail = parse_mail(raw, self.limits)
        except MailParseError as error:
            await self.quarantine(raw, str(error))
            return Received("quarantined")
        except Exception as error:  # a parser bug on odd input: the same next time, so keep it
            log.warning("e-mail parsing failed: %s", type(error).__name__)
            await self.quarantine(raw, f"e-mail onleesbaar ({type(error).__name__})")
            return Received("quarantined")
        if mail.automatic is None:
            mail = await self._own_mail(mail)
        if mail.automatic is not None:
            return await self._automatic(mail)
        thread_key, thread_channel = await self._thread(mail)
        inbound = InboundMessage(
            channel="email",
            channel_message_id=mail.message_id,
            text=mail.text,
            subject=mail.subject,
            sender=ResidentIdentity(name=mail.sender_name, email=mail.sender_email),
            received_at=min(received_at, now) if received_at else None,
            thread_key=thread_key,
            thread_channel=thread_channel,
            attachments=mail.attachments,
        )
        try:
            result = await self.services.intake.receive(inbound)
        except (InboundError, AttachmentTooLarge) as error:
            await self.quarantine(raw, f"geen contact mogelijk: {error}")
            return Received("quarantined")
        log.info(
            "e-mail %s: contact %s (%s)",
            result.outcome,
            result.contact.reference,
            thread_channel or "email",
        )
        return Received(result.outcome, result.contact.reference)

    async def quarantine(self, raw: bytes, reason: str) -> None:
        """Keep what we cannot read, once per mail; a mail too large to keep whole keeps its
        headers (the mail itself stays on the mail server)."""
        kept = raw
        if len(raw) > self.limits.max_message_bytes:
            separator = b"\r\n\r\n" if b"\r\n\r\n" in raw else b"\n\n"
            kept = raw.partition(separator)[0][:MAX_HEADER_BYTES]
        try:
            provider_id = message_id_of(parse_message(kept), raw)
        except Exception:  # not even headers: the bytes name it
            provider_id = f"sha256:{hashlib.sha256(raw).hexdigest()}"
        await self.services.quarantine.keep(
            "email",
            reason,
            self.services.clock.now(),
            raw=kept,
            provider_id=provider_id,
            content_type="message/rfc822",
        )

    async def _automatic(self, mail: ParsedMail) -> Received:
        assert mail.automatic is not None
        kind = mail.automatic.kind
        self.ignored[kind] = self.ignored.get(kind, 0) + 1
        if kind == "bounce":
            marked = 0
            detail = "onbestelbaar: de mailserver van de inwoner weigerde het bericht"
            if mail.bounce_status:
                detail += f" (status {mail.bounce_status})"
            for message_id in mail.bounced_ids:
                found = await self.services.store.set_delivery_by_provider_id(
                    "email", message_id, "failed", detail
                )
                if found is not None:
                    marked += 1
                    log.info("bounce: outbound message %s marked failed", found.id)
            if not marked:
                log.info("bounce for no message of ours ignored (%s)", mail.automatic.signal)
            return Received("bounce")
        log.info("automatic mail (%s) ignored: %s", kind, mail.automatic.signal)
        return Received("automatic")

    async def _own_mail(self, mail: ParsedMail) -> ParsedMail:
        """Our own mail coming back (a copy in the shared mailbox, a forwarding rule, a
        resident's address that forwards to us) would otherwise become a contact and perhaps
        be answered automatically: a loop."""
        senders = {(mail.sender_email or "").lower(), (mail.from_email or "").lower()}
        if senders & self.own_addresses:
            return replace(mail, automatic=Automatic("own", "sender is our own address"))
        found = await self.services.store.find_message("email", mail.message_id)
        if found is not None and found[1].direction == "outbound":
            return replace(mail, automatic=Automatic("own", "Message-ID of our own mail"))
        return mail

    async def _thread(self, mail: ParsedMail) -> tuple[str, str | None]:
        store = self.services.store
        for message_id in mail.references:
            found = await store.find_message("email", message_id)
            if found is not None:
                conversation = await store.conversation(found[0].conversation_id)
                if conversation is not None:
                    return _key(conversation)
        match = REFERENCE.search(mail.subject)
        if match:
            contact = await store.by_reference(match.group(0))
            if contact is not None and await self._same_sender(contact.resident_id, mail):
                conversation = await store.conversation(contact.conversation_id)
                if conversation is not None:
                    return _key(conversation)
        root = mail.references[-1] if mail.references else mail.message_id
        return f"email:{root}", None

    async def _same_sender(self, resident_id: int | None, mail: ParsedMail) -> bool:
        """A reference in a subject is easy to type: it joins a contact only when the mail
        comes from that contact's resident."""
        resident = await self.services.store.resident(resident_id)
        if resident is None or not resident.email:
            return False
        try:
            sender = normalise_email(mail.sender_email)
        except InboundError:
            return False
        # Local parts are case-sensitive by the letter of RFC 5321, never in practice.
        return sender is not None and sender.lower() == resident.email.lower()


def _key(conversation: Conversation) -> tuple[str, str | None]:
    channel = None if conversation.channel == "email" else conversation.channel
    return conversation.thread_key, channel
