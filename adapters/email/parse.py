"""One raw e-mail (RFC 5322 bytes) to what the intake needs, with the standard library's
`email` package (`policy.default`).

Kept: the raw message as `origineel.eml`, the full readable text as `volledige-tekst.txt` when
the routed text leaves something out, attachments within the size limits, forwarded messages as
`.eml` files. Read by the router: the resident's new words (see `strip.py`) plus the text of
forwarded messages. Auto-replies, bounces and read receipts are recognised here so the caller
never turns them into contacts. Input we cannot read raises `MailParseError` with a reason that
holds no personal data, for the quarantine.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import errors, policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesParser, HeaderParser
from email.utils import getaddresses

from adapters.email.charset import decode_bytes, header_text
from adapters.email.html_text import html_to_text
from adapters.email.strip import strip_for_router
from contacts.inbound import MAX_TEXT_CHARS, InboundAttachment

_MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}>")
_FATAL_DEFECTS = (
    errors.StartBoundaryNotFoundDefect,
    errors.NoBoundaryInMultipartDefect,
    errors.MultipartInvariantViolationDefect,
)
_BULK_PRECEDENCE = frozenset({"auto_reply", "bulk", "junk"})
_DAEMONS = re.compile(r"^(mailer-daemon|postmaster|mail-daemon)@", re.IGNORECASE)
_MAX_FORWARD_DEPTH = 3


class MailParseError(ValueError):
    """The bytes are not a mail we can read; the reason holds no personal data."""


@dataclass(frozen=True)
class MailLimits:
    max_message_bytes: int = 20 * 1024 * 1024
    max_attachment_bytes: int = 10 * 1024 * 1024
    max_attachments: int = 30
    # Inline images smaller than this are logos, spacers and tracking pixels: not kept apart.
    min_inline_image_bytes: int = 2048


@dataclass(frozen=True)
class Automatic:
    """A mail written by a machine: never a contact, never answered."""

    kind: str  # bounce | auto-reply | bulk | receipt | own (our own mail come back)
    signal: str  # which header or structure told us (no personal data)


@dataclass(frozen=True)
class ParsedMail:
    message_id: str  # "<id@host>", or "sha256:..." derived when the mail has none
    sender_name: str | None
    # Where the resident wants answers: Reply-To when given (a website's form mail sent as
    # noreply@ on the resident's behalf), else From.
    sender_email: str | None
    subject: str
    text: str  # what the router reads
    full_text: str
    attachments: tuple[InboundAttachment, ...] = ()
    # Message-IDs this mail answers: In-Reply-To first, then References newest first.
    references: tuple[str, ...] = ()
    automatic: Automatic | None = None
    # For a bounce: the Message-IDs of the returned messages and the DSN status (e.g. 5.1.1).
    bounced_ids: tuple[str, ...] = ()
    bounce_status: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    from_email: str | None = None  # the From address itself


def parse_message(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def message_id_of(message: Message, raw: bytes) -> str:
    """The mail's own Message-ID in `<...>` form; without one, a stable id derived from the
    headers that do not change in transit and the body (the same mail fetched twice, or once by
    IMAP and once by LMTP, gets the same id)."""
    value = header_text(message, "Message-ID")
    found = _MESSAGE_ID.search(value)
    if found and len(found.group(0)) <= 200:
        return found.group(0)
    if value.strip() and " " not in value.strip() and len(value.strip()) <= 198:
        return f"<{value.strip().strip('<>')}>"
    digest = hashlib.sha256()
    for name in ("From", "To", "Date", "Subject", "Message-ID"):
        digest.update(header_text(message, name).encode("utf-8", "replace") + b"\x00")
    digest.update(_body_bytes(raw))
    return f"sha256:{digest.hexdigest()}"


def _body_bytes(raw: bytes) -> bytes:
    for separator in (b"\r\n\r\n", b"\n\n"):
        _, found, body = raw.partition(separator)
        if found:
            return body.replace(b"\r\n", b"\n")
    return b""


def message_ids(value: str) -> list[str]:
    return [found for found in _MESSAGE_ID.findall(value) if len(found) <= 200]


def parse_mail(raw: bytes, limits: MailLimits | None = None) -> ParsedMail:
    limits = limits or MailLimits()
    if len(raw) > limits.max_message_bytes:
        raise MailParseError(f"bericht groter dan {limits.max_message_bytes} bytes")
    try:
        message = parse_message(raw)
    except Exception as error:  # the parser is lenient; anything raised means unreadable
        raise MailParseError(f"MIME onleesbaar ({type(error).__name__})") from error
    for part in message.walk():
        for defect in part.defects:
            if isinstance(defect, _FATAL_DEFECTS):
                raise MailParseError(f"MIME-structuur onleesbaar ({type(defect).__name__})")
    message_id = message_id_of(message, raw)
    subject = header_text(message, "Subject")
    sender_name, from_email = _address(message, "From")
    reply_name, reply_to = _address(message, "Reply-To")
    sender_email = reply_to or from_email
    if reply_to and reply_name:
        sender_name = reply_name
    references = _references(message)
    automatic = classify_automatic(message, from_email)
    if automatic is not None:
        bounced, status = _bounce_details(message) if automatic.kind == "bounce" else ((), None)
        return ParsedMail(
            message_id=message_id,
            sender_name=None,
            sender_email=sender_email,
            from_email=from_email,
            subject=subject,
            text="",
            full_text="",
            references=references,
            automatic=automatic,
            bounced_ids=tuple(bounced),
            bounce_status=status,
        )
    if sender_email is None:
        raise MailParseError("geen geldig afzenderadres (From)")

    content = _Content(limits)
    content.read(message, depth=0)
    body = "\n\n".join(t for t in content.texts if t.strip())
    routed = strip_for_router(body, subject)
    extra = [*content.forwarded, *content.notes]
    text = "\n\n".join(t for t in [routed, *extra] if t.strip())
    full_text = "\n\n".join(t for t in [body, *extra] if t.strip())
    if len(text) > MAX_TEXT_CHARS:
        cut_note = "\n\n[tekst ingekort; het volledige bericht is bijgevoegd]"
        text = text[: MAX_TEXT_CHARS - len(cut_note)] + cut_note
    attachments = [InboundAttachment("origineel.eml", "message/rfc822", raw)]
    full_bytes = full_text.encode("utf-8")
    if full_text.strip() != text.strip() and len(full_bytes) <= limits.max_attachment_bytes:
        attachments.append(
            InboundAttachment("volledige-tekst.txt", "text/plain; charset=utf-8", full_bytes)
        )
    attachments.extend(content.attachments)
    return ParsedMail(
        message_id=message_id,
        sender_name=sender_name,
        sender_email=sender_email,
        subject=subject,
        text=text,
        full_text=full_text,
        attachments=tuple(attachments),
        references=references,
        notes=tuple(content.notes),
        from_email=from_email,
    )


def _address(message: Message, header: str) -> tuple[str | None, str | None]:
    """The first (name, address) of an address header."""
    value = header_text(message, header)
    try:
        addresses = getaddresses([value])
    except Exception:
        return None, None
    for name, address in addresses:
        if "@" in address:
            return (name.strip() or None), address.strip()
    return None, None


def _references(message: Message) -> tuple[str, ...]:
    ordered: list[str] = []
    for found in message_ids(header_text(message, "In-Reply-To")) + list(
        reversed(message_ids(header_text(message, "References")))
    ):
        if found not in ordered:
            ordered.append(found)
    return tuple(ordered[:50])


def classify_automatic(message: Message, sender_email: str | None) -> Automatic | None:
    """RFC 3834 and the headers real autoresponders set. Bounces first: they may carry the
    other signals too, and a bounce tells us something about our own outbound mail."""
    content_type = message.get_content_type()
    report_type = str(message.get_param("report-type", "") or "").lower()
    if content_type == "multipart/report" and report_type == "delivery-status":
        return Automatic("bounce", "multipart/report delivery-status")
    if content_type == "multipart/report" and report_type == "disposition-notification":
        return Automatic("receipt", "multipart/report disposition-notification")
    if sender_email and _DAEMONS.match(sender_email):
        return Automatic("bounce", "mailer-daemon sender")
    auto_submitted = header_text(message, "Auto-Submitted").lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return Automatic("auto-reply", "Auto-Submitted")
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"):
        if header_text(message, name):
            return Automatic("auto-reply", name)
    precedence = header_text(message, "Precedence").lower()
    if precedence in _BULK_PRECEDENCE:
        return Automatic("bulk" if precedence != "auto_reply" else "auto-reply", "Precedence")
    return_path = header_text(message, "Return-Path")
    if return_path and return_path.replace(" ", "") == "<>":
        return Automatic("auto-reply", "Return-Path <>")
    return None


def _bounce_details(message: Message) -> tuple[list[str], str | None]:
    """The Message-IDs of the returned mail (from its attached copy or headers) and the first
    DSN status code."""
    ids: list[str] = []
    status: str | None = None
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/delivery-status":
            for block in part.get_payload() if isinstance(part.get_payload(), list) else []:
                if isinstance(block, Message) and status is None:
                    found = re.search(r"\d\.\d{1,3}\.\d{1,3}", str(block.get("Status", "")))
                    status = found.group(0) if found else None
        elif content_type in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message):
                ids.extend(message_ids(header_text(inner, "Message-ID")))
        elif content_type in ("text/rfc822-headers", "message/rfc822-headers"):
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                headers = HeaderParser(policy=policy.default).parsestr(decode_bytes(data, None))
                ids.extend(message_ids(header_text(headers, "Message-ID")))
    if not ids:
        # An old-style bounce quotes the returned mail as text: its Message-ID header line.
        for part in message.walk():
            if part.get_content_type() == "text/plain":
                for line in part_text(part).split("\n"):
                    if line.lower().startswith("message-id:"):
                        ids.extend(message_ids(line))
    return list(dict.fromkeys(ids)), status


class _Content:
    """Walks the MIME tree once: the body text, inline text parts, attachments, forwards."""

    def __init__(self, limits: MailLimits) -> None:
        self.limits = limits
        self.texts: list[str] = []
        self.forwarded: list[str] = []
        self.attachments: list[InboundAttachment] = []
        self.notes: list[str] = []

    def read(self, message: EmailMessage, depth: int) -> None:
        body = message.get_body(preferencelist=("plain", "html"))
        if body is not None:
            self.texts.append(part_text(body))
        # The other versions of the body (its HTML twin) are not more text.
        twins: set[int] = set()
        for container in message.walk():
            if container.get_content_type() == "multipart/alternative":
                leaves = list(_leaves(container))
                if any(leaf is body for leaf in leaves):
                    twins.update(id(leaf) for leaf in leaves)
        for part in _leaves(message):
            if part is body:
                continue
            self._part(part, id(part) in twins, depth)

    def _part(self, part: Message, twin: bool, depth: int) -> None:
        content_type = part.get_content_type()
        filename = _filename(part)
        disposition = part.get_content_disposition()
        if content_type in ("message/rfc822", "message/global"):
            self._forward(part, depth)
            return
        if content_type in ("text/plain", "text/html") and not filename:
            if disposition != "attachment" and not twin:
                self.texts.append(part_text(part))
            return
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes) or not data:
            return
        is_inline_image = content_type.startswith("image/") and (
            disposition == "inline" or part.get("Content-ID") is not None
        )
        if is_inline_image and len(data) < self.limits.min_inline_image_bytes:
            return
        name = filename or _default_name(content_type, len(self.attachments) + 1)
        if len(data) > self.limits.max_attachment_bytes:
            self.notes.append(
                f"[bijlage {name} ({_size(len(data))}) is groter dan "
                f"{_size(self.limits.max_attachment_bytes)} en alleen in origineel.eml bewaard]"
            )
            return
        if len(self.attachments) >= self.limits.max_attachments:
            self.notes.append(f"[bijlage {name} niet apart bewaard: te veel bijlagen]")
            return
        self.attachments.append(InboundAttachment(name, content_type, data))

    def _forward(self, part: Message, depth: int) -> None:
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if not isinstance(inner, EmailMessage):
            return
        number = sum(1 for a in self.attachments if a.filename.startswith("doorgestuurd")) + 1
        data = inner.as_bytes()
        if len(data) <= self.limits.max_attachment_bytes:
            self.attachments.append(
                InboundAttachment(f"doorgestuurd-{number}.eml", "message/rfc822", data)
            )
        if depth >= _MAX_FORWARD_DEPTH:
            return
        nested = _Content(self.limits)
        inner_subject = header_text(inner, "Subject")
        nested.read(inner, depth + 1)
        text = strip_for_router("\n\n".join(nested.texts), inner_subject)
        heading = "---------- Doorgestuurd bericht ----------"
        self.forwarded.append(f"{heading}\nOnderwerp: {inner_subject}\n\n{text}".strip())
        self.forwarded.extend(nested.forwarded)
        self.notes.extend(nested.notes)
        for attachment in nested.attachments:
            if len(self.attachments) < self.limits.max_attachments:
                self.attachments.append(attachment)


def _leaves(part: Message) -> Iterator[Message]:
    """Leaf parts in order; an attached message is one leaf (not walked into)."""
    if part.get_content_maintype() == "message" and part.is_multipart():
        yield part
        return
    if part.is_multipart():
        for sub in part.get_payload():
            if isinstance(sub, Message):
                yield from _leaves(sub)
    else:
        yield part


def part_text(part: Message) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return ""
    text = decode_bytes(data, part.get_content_charset())
    if part.get_content_subtype() == "html":
        text = html_to_text(text)
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        return None
    if not name:
        return None
    name = header_text_value(name)
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:200] or None


def header_text_value(value: str) -> str:
    """A filename that still holds encoded words (some clients put them in parameters)."""
    if "=?" in value:
        try:
            return str(make_header(decode_header(value)))
        except Exception:
            return value
    return value


def _default_name(content_type: str, number: int) -> str:
    extension = mimetypes.guess_extension(content_type) or ".bin"
    stem = "afbeelding" if content_type.startswith("image/") else "bijlage"
    return f"{stem}-{number}{extension}"


def _size(count: int) -> str:
    if count < 1024 * 1024:
        return f"{count / 1024:.0f} kB"
    return f"{count / (1024 * 1024):.1f} MB"
