"""A resident's Telegram message in channel-neutral form: text, caption, notes for what is not
text (a sticker, a location), and files fetched through the Bot API within the configured
limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from telegram import Bot, Message
from telegram.error import BadRequest

from adapters.telegram.config import TelegramConfig
from contacts.inbound import InboundAttachment, InboundMessage, ResidentIdentity


class Unsupported(ValueError):
    """The message has nothing we can turn into a contact; the text is a reason without
    personal data."""


@dataclass(frozen=True)
class FileRef:
    file_id: str
    filename: str
    content_type: str
    size: int | None


@dataclass
class Converted:
    inbound: InboundMessage
    # Why a file the resident sent was not stored (the resident is told); empty when all went in.
    refused_files: list[str] = field(default_factory=list)


def message_id(message: Message, edited: bool) -> str:
    """Our idempotency key: Telegram's message ids are unique per chat; an edit is a new
    message of its own (each edit once)."""
    key = f"{message.chat.id}:{message.message_id}"
    if edited and message.edit_date is not None:
        key += f":bewerkt:{int(message.edit_date.timestamp())}"
    return key


def resident_of(message: Message) -> ResidentIdentity:
    user = message.from_user
    name = " ".join(p for p in (user.first_name, user.last_name) if p) if user else ""
    # In a private chat the chat id is the user's id: the address our replies go to.
    return ResidentIdentity(name=name or None, telegram_id=str(message.chat.id))


def file_of(message: Message) -> FileRef | None:
    """The one file a message carries, if any (an album arrives as one message per file)."""
    mid = message.message_id
    if message.photo:
        largest = max(message.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        return FileRef(largest.file_id, f"foto-{mid}.jpg", "image/jpeg", largest.file_size)
    if message.animation:  # also carries `document`; the animation is the truth
        a = message.animation
        return FileRef(
            a.file_id, a.file_name or f"animatie-{mid}.mp4", a.mime_type or "video/mp4", a.file_size
        )
    if message.document:
        d = message.document
        return FileRef(
            d.file_id,
            d.file_name or f"document-{mid}",
            d.mime_type or "application/octet-stream",
            d.file_size,
        )
    if message.voice:
        v = message.voice
        return FileRef(
            v.file_id, f"spraakbericht-{mid}.ogg", v.mime_type or "audio/ogg", v.file_size
        )
    if message.audio:
        au = message.audio
        return FileRef(
            au.file_id, au.file_name or f"audio-{mid}", au.mime_type or "audio/mpeg", au.file_size
        )
    if message.video:
        vi = message.video
        name = vi.file_name or f"video-{mid}.mp4"
        return FileRef(vi.file_id, name, vi.mime_type or "video/mp4", vi.file_size)
    if message.video_note:
        vn = message.video_note
        return FileRef(vn.file_id, f"videobericht-{mid}.mp4", "video/mp4", vn.file_size)
    return None


def notes_of(message: Message, config: TelegramConfig) -> list[str]:
    """What a message says that is not text, in words an agent reads."""
    notes = []
    if message.sticker:
        notes.append(config.note("sticker", emoji=message.sticker.emoji or ""))
    if message.venue:
        v = message.venue
        notes.append(
            config.note(
                "venue",
                title=v.title,
                address=v.address,
                latitude=f"{v.location.latitude:.6f}",
                longitude=f"{v.location.longitude:.6f}",
            )
        )
    elif message.location:
        loc = message.location
        notes.append(
            config.note(
                "location", latitude=f"{loc.latitude:.6f}", longitude=f"{loc.longitude:.6f}"
            )
        )
    if message.contact:
        c = message.contact
        name = " ".join(p for p in (c.first_name, c.last_name) if p)
        notes.append(config.note("contact", name=name, phone=c.phone_number))
    if message.voice:
        notes.append(config.note("voice"))
    if message.video_note:
        notes.append(config.note("video_note"))
    return notes


async def fetch_file(
    bot: Bot, ref: FileRef, config: TelegramConfig
) -> tuple[InboundAttachment | None, str | None]:
    """The file's bytes, or the reason it is not stored. Network errors propagate: the webhook
    then answers 503 and Telegram delivers the update again."""
    limit_mb = config.max_file_bytes / (1024 * 1024)
    if not config.allows(ref.content_type):
        return None, f"bestandstype {ref.content_type[:60]} wordt niet aangenomen"
    if ref.size is not None and ref.size > config.max_file_bytes:
        return None, f"groter dan {limit_mb:g} MB"
    try:
        telegram_file = await bot.get_file(ref.file_id)
    except BadRequest as error:
        # "file is too big" (the Bot API serves at most 20 MB) or an expired file id.
        return None, f"Telegram gaf het bestand niet vrij ({error.message[:100]})"
    if telegram_file.file_size is not None and telegram_file.file_size > config.max_file_bytes:
        return None, f"groter dan {limit_mb:g} MB"
    data = bytes(await telegram_file.download_as_bytearray())
    if len(data) > config.max_file_bytes:
        return None, f"groter dan {limit_mb:g} MB"
    return InboundAttachment(ref.filename, ref.content_type, data), None


async def convert(
    message: Message, bot: Bot, config: TelegramConfig, edited: bool, now: datetime
) -> Converted:
    """The message as an `InboundMessage`, or `Unsupported` when nothing in it is ours to read."""
    parts = [config.note("edited")] if edited else []
    parts += notes_of(message, config)
    text = message.text or message.caption or ""
    attachments: list[InboundAttachment] = []
    refused: list[str] = []
    ref = file_of(message)
    if ref is not None:
        attachment, reason = await fetch_file(bot, ref, config)
        if attachment is not None:
            attachments.append(attachment)
        else:
            refused.append(reason or "")
            parts.append(config.note("file_not_stored", reason=reason))
    if not text.strip() and not attachments and not (set(parts) - {config.note("edited")}):
        raise Unsupported(f"berichttype {kind_of(message)} wordt niet ondersteund")
    if text:
        parts.append(text)
    sent_at = message.edit_date if edited and message.edit_date else message.date
    return Converted(
        InboundMessage(
            channel="telegram",
            channel_message_id=message_id(message, edited),
            text="\n".join(parts),
            sender=resident_of(message),
            # When the resident sent it (a webhook delivered late counts from then), unless
            # the clocks disagree.
            received_at=sent_at if sent_at is not None and sent_at <= now else None,
            attachments=tuple(attachments),
        ),
        refused,
    )


# Message attributes that name a kind of content, for reasons in the quarantine.
_KINDS = (
    "poll",
    "dice",
    "game",
    "story",
    "invoice",
    "successful_payment",
    "paid_media",
    "giveaway",
    "checklist",
    "new_chat_members",
    "left_chat_member",
    "pinned_message",
)


def kind_of(message: Message) -> str:
    for name in _KINDS:
        if getattr(message, name, None):
            return name
    return "onbekend"
