"""Outbound e-mail over SMTP (aiosmtplib): the agent's reply, and automatic messages, to the
resident's address.

Each mail carries a Message-ID of our own domain (recorded as the message's provider id, so a
bounce or the resident's answer finds it), In-Reply-To/References to the resident's mail so
their client threads it, our reference in the subject, and `Auto-Submitted: auto-replied` on
automatic messages (RFC 3834) so well-behaved autoresponders stay quiet. Plain text, with a
simple escaped HTML alternative when configured.

A temporary failure (4xx, connection trouble) raises: the outbox keeps the message queued and
tries again. A permanent refusal (5xx) is `failed`, with the server's code for the agent.
"""

from __future__ import annotations

import html
import logging
import re
import uuid
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

import aiosmtplib

from adapters.email.settings import SmtpSettings, tls_context
from adapters.outbound import Delivery, OutboundMessage, Purpose
from contacts.store import ContactStore
from kcc.clock import Clock

log = logging.getLogger(__name__)

AUTOMATIC_PURPOSES = frozenset({Purpose.acknowledgement, Purpose.extension, Purpose.reminder})
_MESSAGE_ID = re.compile(r"^<[^<>\s]{1,250}>$")
_REFERENCE = re.compile(r"\[\s*KCC-\d{4}-\d{6}\s*\]")
LOOPBACK = ("127.0.0.1", "::1", "localhost")


class SmtpSender:
    def __init__(self, settings: SmtpSettings, store: ContactStore, clock: Clock) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock

    async def send(self, message: OutboundMessage) -> Delivery:
        resident = message.resident
        if resident is None or not resident.email:
            return Delivery("failed", detail="geen e-mailadres van de inwoner bekend")
        mail, message_id = await self.compose(message, resident.email, resident.name)
        settings = self.settings
        remote_login = bool(settings.password) and settings.host not in LOOPBACK
        if remote_login and settings.tls == "none":
            return Delivery("failed", detail="SMTP-wachtwoord zonder TLS geweigerd (KCC_SMTP_TLS)")
        # STARTTLS when the server offers it; required when we would log in to a remote server
        # (a password never travels in clear text).
        start_tls: bool | None = None
        if settings.tls != "starttls":
            start_tls = False
        elif remote_login:
            start_tls = True
        try:
            await aiosmtplib.send(
                mail,
                sender=parseaddr(settings.sender)[1],
                recipients=[resident.email],
                hostname=settings.host,
                port=settings.port,
                username=settings.user or None,
                password=settings.password or None,
                use_tls=settings.tls == "tls",
                start_tls=start_tls,
                tls_context=tls_context(settings.ca_file) if settings.tls != "none" else None,
                timeout=settings.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as error:
            codes = [refusal.code for refusal in error.recipients]
            if codes and all(500 <= code < 600 for code in codes):
                return _refused(codes[0])
            raise
        except aiosmtplib.SMTPResponseException as error:
            if 500 <= error.code < 600:
                return _refused(error.code)
            raise
        log.info("e-mail for %s sent", message.reference)
        return Delivery("sent", provider_id=message_id)

    async def compose(
        self, message: OutboundMessage, to: str, name: str | None = None
    ) -> tuple[EmailMessage, str]:
        mail = EmailMessage()
        message_id = f"<kcc.{uuid.uuid4().hex}@{self.settings.domain}>"
        mail["From"] = self.settings.sender
        mail["To"] = Address(display_name=name or "", addr_spec=to)
        mail["Subject"] = _subject(message.subject, message.reference)
        mail["Date"] = format_datetime(self.clock.now())
        mail["Message-ID"] = message_id
        references = await self._references(message)
        if references:
            mail["In-Reply-To"] = references[-1]
            mail["References"] = " ".join(references)
        mail["X-KCC-Reference"] = message.reference
        if message.purpose in AUTOMATIC_PURPOSES:
            mail["Auto-Submitted"] = "auto-replied"
        # Asks Exchange/Outlook not to answer us with out-of-office notes (fewer loops).
        mail["X-Auto-Response-Suppress"] = "All"
        mail["Content-Language"] = message.language
        mail.set_content(message.text)
        if self.settings.html_alternative:
            mail.add_alternative(_html(message.text), subtype="html")
        return mail, message_id

    async def _references(self, message: OutboundMessage) -> list[str]:
        """The thread so far (the resident's mails and ours), ending with the mail answered."""
        found: list[str] = []
        contact = await self.store.by_reference(message.reference)
        if contact is not None:
            for earlier in await self.store.messages(contact.id or 0):
                if earlier.channel == "email" and _MESSAGE_ID.match(earlier.channel_message_id):
                    found.append(earlier.channel_message_id)
        answered = message.in_reply_to
        if answered and _MESSAGE_ID.match(answered):
            if answered in found:
                found.remove(answered)
            found.append(answered)
        return found[-20:]


def _subject(subject: str, reference: str) -> str:
    """One line, and only this contact's reference: a subject taken from a resident's answer
    may carry an older one ("Re: ... [KCC-2026-000001]")."""
    cleaned = _REFERENCE.sub(lambda m: m.group(0) if reference in m.group(0) else "", subject)
    return " ".join(cleaned.split())


def _refused(code: int) -> Delivery:
    log.info("e-mail refused by the mail server (%d)", code)
    return Delivery("failed", detail=f"geweigerd door de mailserver ({code})")


def _html(text: str) -> str:
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    body = "".join(
        "<p>" + "<br>".join(html.escape(line) for line in p.split("\n")) + "</p>"
        for p in paragraphs
    )
    return f'<!DOCTYPE html><html><body style="font-family:sans-serif">{body}</body></html>'
