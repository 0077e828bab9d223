"""Replies to residents through the Bot API, as plain text (no parse mode: nothing an agent or a
resident typed can turn into markup)."""

from __future__ import annotations

import logging

from telegram import Bot, ReplyParameters
from telegram.constants import MessageLimit
from telegram.error import BadRequest, Forbidden, TelegramError

from adapters.outbound import Delivery, OutboundMessage

log = logging.getLogger(__name__)

MAX_CHARS = int(MessageLimit.MAX_TEXT_LENGTH)  # 4096
BLOCKED = (
    "De inwoner heeft de Telegram-bot geblokkeerd of de chat verwijderd; het bericht is niet "
    "afgeleverd. Neem contact op via een ander kanaal."
)


def _units(text: str) -> int:
    """Telegram counts a message's length in UTF-16 code units (an emoji may count twice)."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MAX_CHARS) -> list[str]:
    """Parts of at most `limit` UTF-16 units, cut at a paragraph, line or word where possible."""
    parts: list[str] = []
    rest = text.strip()
    while _units(rest) > limit:
        # The longest prefix that fits, then the last natural break inside it.
        low, high = 1, len(rest)
        while low < high:
            middle = (low + high + 1) // 2
            if _units(rest[:middle]) <= limit:
                low = middle
            else:
                high = middle - 1
        window = rest[:low]
        cut = low
        for separator in ("\n\n", "\n", " "):
            at = window.rfind(separator)
            if at > low // 2:
                cut = at
                break
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        parts.append(rest)
    return parts


def chat_of(message: OutboundMessage) -> str | None:
    """The chat the conversation runs in (its thread key), else the resident's Telegram id."""
    if message.thread_key and message.thread_key.startswith("telegram:"):
        return message.thread_key.removeprefix("telegram:")
    if message.resident is not None and message.resident.telegram_id:
        return message.resident.telegram_id
    return None


def reply_to(message: OutboundMessage, chat_id: str) -> ReplyParameters | None:
    """Quote the resident's last message, so the reply is visibly an answer to it."""
    if not message.in_reply_to:
        return None
    chat, _, rest = message.in_reply_to.partition(":")
    number = rest.split(":")[0]
    if chat != chat_id or not number.isdigit():
        return None
    return ReplyParameters(message_id=int(number), allow_sending_without_reply=True)


class TelegramSender:
    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def send(self, message: OutboundMessage) -> Delivery:
        chat_id = chat_of(message)
        if chat_id is None:
            return Delivery("failed", detail="geen Telegram-chat bekend voor deze inwoner")
        parts = split_text(message.text)
        if not parts:
            return Delivery("failed", detail="leeg bericht niet verstuurd")
        first_id: str | None = None
        for number, part in enumerate(parts, start=1):
            try:
                sent = await self.bot.send_message(
                    chat_id=chat_id,
                    text=part,
                    reply_parameters=reply_to(message, chat_id) if number == 1 else None,
                )
            except Forbidden:
                log.info("telegram: %s not delivered, bot blocked", message.reference)
                return Delivery("failed", provider_id=first_id, detail=_partly(BLOCKED, number))
            except BadRequest as error:
                # Refused for good (e.g. "chat not found"); Telegram's text names no person.
                detail = f"Telegram weigerde het bericht: {error.message[:200]}"
                return Delivery("failed", provider_id=first_id, detail=_partly(detail, number))
            except TelegramError as error:
                if first_id is None:
                    raise  # nothing went out: the outbox keeps it queued and tries again
                # Part of it went out: sending it all again would repeat those parts.
                detail = f"verbinding met Telegram verbroken ({type(error).__name__})"
                return Delivery("failed", provider_id=first_id, detail=_partly(detail, number))
            if first_id is None:
                first_id = f"{chat_id}:{sent.message_id}"
        split = f"verstuurd in {len(parts)} delen" if len(parts) > 1 else None
        return Delivery("sent", provider_id=first_id, detail=split)


def _partly(detail: str, number: int) -> str:
    if number == 1:
        return detail
    return f"{detail} (alleen deel 1 t/m {number - 1} is afgeleverd)"
