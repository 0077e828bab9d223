"""Request bodies of the API, validated with pydantic (table models do not validate input)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ChannelName = Literal["whatsapp", "telegram", "email", "webform", "post", "phone", "counter"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Sender(Strict):
    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=320)
    telegram_id: str | None = Field(default=None, max_length=64)
    postal_address: str | None = Field(default=None, max_length=500)
    language: str | None = Field(default=None, max_length=8)
    support_needs: list[str] = Field(default_factory=list, max_length=10)


class IngestRequest(Strict):
    """A contact from an adapter or integration. `from` is an e-mail address, a phone number,
    or an object with the sender's details."""

    channel: ChannelName
    channel_message_id: str = Field(min_length=1, max_length=200)
    sender: str | Sender = Field(alias="from")
    subject: str = Field(default="", max_length=300)
    text: str = Field(default="", max_length=100_000)
    received_at: datetime | None = None
    thread_key: str | None = Field(default=None, max_length=500)

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)


class ArticleRef(Strict):
    slug: str = Field(min_length=1, max_length=64)
    version: int = Field(ge=1)


class ReplyRequest(Strict):
    text: str = Field(min_length=1, max_length=20_000)
    # The kennisbank article version the answer is based on (recorded with the message).
    article: ArticleRef | None = None


class TransferRequest(Strict):
    queue: str | None = Field(default=None, max_length=64)
    skill: str | None = Field(default=None, max_length=64)
    note: str | None = Field(default=None, max_length=1000)


class CloseRequest(Strict):
    outcome: str = Field(min_length=1, max_length=64)
    note: str | None = Field(default=None, max_length=5000)


class WaitRequest(Strict):
    reason: str = Field(default="vraag aan inwoner", max_length=500)


class StatusRequest(Strict):
    status: Literal["available", "away", "busy", "offline"]


class WebformPost(Strict):
    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40)
    subject: str = Field(default="", max_length=300)
    message: str = Field(min_length=1, max_length=20_000)
    # Idempotency from the client (the form carries a random id, so a double submit stores once).
    submission_id: str | None = Field(default=None, max_length=100)
