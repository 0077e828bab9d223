"""The channels this service runs. One line per channel: a newcomer sees them all here."""

from __future__ import annotations

from adapters.channel import ChannelAdapter
from adapters.email.adapter import EmailAdapter
from adapters.phone.adapter import PhoneAdapter
from adapters.post.handlers import PostAdapter
from adapters.telegram.adapter import TelegramAdapter
from adapters.webform.handlers import WebformAdapter
from adapters.whatsapp.adapter import WhatsAppAdapter
from kcc.services import Services


def build_adapters(services: Services) -> list[ChannelAdapter]:
    return [
        WebformAdapter(services),
        PostAdapter(services),
        TelegramAdapter(services),
        EmailAdapter(services),
        WhatsAppAdapter(services),
        PhoneAdapter(services),
    ]
