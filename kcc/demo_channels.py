"""How `kcc demo` reaches the service on each channel: through the channel's real inbound path,
against the provider's local stand-in from `sandbox/` (never a real provider).

A `ChannelRoute` starts its stand-in on 127.0.0.1 before the services are built, returns the
credentials the service needs (random for every run, never printed), registers our webhook with
the stand-in once the service listens, turns a simulated resident's message into what the
provider would send (a signed webhook, a Telegram update with the secret header, ...), and counts
the agents' replies the stand-in received through the channel's real outbound path.

A channel whose adapter has not landed yet has no route here: the demo then uses the generic
ingest API for it (`POST /api/contacts`), so the demo always runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
import sqlalchemy as sa
from sqlmodel import col, select

from contacts.models import Message
from kcc.services import Services
from kcc.settings import Settings

if TYPE_CHECKING:
    from sandbox.twilio import Call

log = logging.getLogger(__name__)


class RouteError(RuntimeError):
    """The channel's inbound path refused a simulated resident's message."""


@dataclass(frozen=True)
class Resident:
    """What the demo knows about a resident writing in: enough for any channel's format."""

    name: str
    phone: str = ""
    email: str = ""
    telegram_id: str = ""
    postal_address: str = ""


@dataclass(frozen=True)
class Outgoing:
    """A resident's message in the provider's format, ready to be delivered (again)."""

    # What the adapter stores as the message's `channel_message_id`: how the demo finds the
    # contact afterwards, since a real provider gets no reference back.
    message_id: str
    deliver: Callable[[], Awaitable[None]]


class ChannelRoute(ABC):
    channel: str
    # What the demo calls the replies it counts ("post letters 3").
    label = ""

    @abstractmethod
    async def prepare(self) -> dict[str, str]:
        """Start the stand-in; returns the secrets (`Settings.secrets`) pointing the service at
        it."""

    @abstractmethod
    async def connect(self, settings: Settings, service_url: str, token: str) -> None:
        """The service listens at `service_url`: register our webhook where the provider needs
        it. `token`: an integration token, for channels whose provider side uses our API."""

    async def drain(self) -> None:  # noqa: B027 - most channels have nothing to collect
        """The demo is stopping, the service still runs: collect what is still to collect."""

    @abstractmethod
    def compose(
        self, resident: Resident, subject: str, text: str, thread: str | None, topic: str = ""
    ) -> tuple[Outgoing, str | None]:
        """The resident's message as the provider sends it, and the thread handle a follow-up
        in the same conversation passes back as `thread`. `topic`: the queue the resident is
        about (a caller's choice in the phone menu)."""

    @abstractmethod
    def replies_delivered(self) -> int:
        """Messages our service sent out that reached the stand-in."""

    @abstractmethod
    def how(self, service_url: str) -> str:
        """One line for the welcome: how this channel's traffic flows."""

    @abstractmethod
    async def close(self) -> None:
        """Stop the stand-in."""


# --- Telegram ---------------------------------------------------------------------------------


class TelegramRoute(ChannelRoute):
    """Updates posted to `/channels/telegram` with the webhook secret header, after our own
    `setWebhook` call to the fake Bot API; replies arrive there through `sendMessage`."""

    channel = "telegram"

    def __init__(self) -> None:
        from sandbox.telegram import FakeBotApi

        bot_id = secrets.randbelow(9_000_000_000) + 1_000_000_000
        self.api = FakeBotApi(token=f"{bot_id}:{secrets.token_urlsafe(26)}")

    async def prepare(self) -> dict[str, str]:
        base_url = await self.api.start()
        return {
            "TELEGRAM_BOT_TOKEN": self.api.token,
            "TELEGRAM_WEBHOOK_SECRET": secrets.token_urlsafe(32),
            "TELEGRAM_API_BASE_URL": base_url,
        }

    async def connect(self, settings: Settings, service_url: str, token: str) -> None:
        from adapters.telegram.cli import set_webhook

        # The same call `kcc telegram set-webhook` makes against the real Bot API.
        await set_webhook(settings, url=f"{service_url}/channels/telegram")

    def compose(
        self, resident: Resident, subject: str, text: str, thread: str | None, topic: str = ""
    ) -> tuple[Outgoing, str | None]:
        chat_id = int(thread or resident.telegram_id)
        first, _, last = resident.name.partition(" ")
        update = self.api.text_update(chat_id, text, first_name=first, last_name=last or None)
        message_id = f"{chat_id}:{update['message']['message_id']}"

        async def deliver() -> None:
            status, body = await self.api.deliver(update)
            if status != 200:
                raise RouteError(f"telegram webhook answered {status}: {body}")

        return Outgoing(message_id, deliver), str(chat_id)

    def replies_delivered(self) -> int:
        return len(self.api.sent)

    def how(self, service_url: str) -> str:
        return (
            f"updates with the secret header to {service_url}/channels/telegram; replies "
            f"go to a local fake Bot API ({self.api.url})"
        )

    async def close(self) -> None:
        await self.api.close()


# --- Twilio: WhatsApp and phone ---------------------------------------------------------------

# The municipality's numbers in the demo (the +31 50 area of Groningen, not in use).
WHATSAPP_NUMBER = "+3150000000"
PHONE_NUMBER = "+3150000001"
# The phone menu's digits for what a caller is about (config/twilio.toml [phone] menu).
MENU_DIGITS = {"burgerzaken": "1", "afval": "2", "parkeren": "3", "belastingen": "4"}


class TwilioStandIn:
    """One fake Twilio account (REST API and media) shared by WhatsApp and phone."""

    def __init__(self) -> None:
        from sandbox.twilio import FakeTwilio

        self.account_sid = "AC" + secrets.token_hex(16)
        self.auth_token = secrets.token_hex(16)
        self.fake = FakeTwilio(self.account_sid, self.auth_token)
        self.service_url = ""
        self._started = False

    async def start(self) -> dict[str, str]:
        if not self._started:
            await self.fake.start()
            self._started = True
        return {
            "TWILIO_ACCOUNT_SID": self.account_sid,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "TWILIO_API_BASE_URL": self.fake.base_url,
            "TWILIO_WHATSAPP_FROM": WHATSAPP_NUMBER,
            "TWILIO_PHONE_NUMBER": PHONE_NUMBER,
        }

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self.fake.stop()


class WhatsAppRoute(ChannelRoute):
    """Signed Twilio webhooks to `/channels/whatsapp`; replies through the Messages API."""

    channel = "whatsapp"

    def __init__(self, twilio: TwilioStandIn) -> None:
        self.twilio = twilio

    async def prepare(self) -> dict[str, str]:
        return await self.twilio.start()

    async def connect(self, settings: Settings, service_url: str, token: str) -> None:
        # Twilio posts to the URL configured in its console: nothing to register.
        self.twilio.service_url = service_url

    def compose(
        self, resident: Resident, subject: str, text: str, thread: str | None, topic: str = ""
    ) -> tuple[Outgoing, str | None]:
        from sandbox.twilio import new_sid, send_whatsapp

        number = thread or resident.phone
        sid = new_sid("SM")
        twilio = self.twilio

        async def deliver() -> None:
            await send_whatsapp(
                twilio.service_url,
                twilio.account_sid,
                twilio.auth_token,
                from_number=number,
                to_number=WHATSAPP_NUMBER,
                text=text,
                profile_name=resident.name or None,
                message_sid=sid,
            )

        return Outgoing(sid, deliver), number

    def replies_delivered(self) -> int:
        return sum(1 for m in self.twilio.fake.messages if m.from_.startswith("whatsapp:"))

    def how(self, service_url: str) -> str:
        return (
            f"signed Twilio webhooks (X-Twilio-Signature) to {service_url}/channels/whatsapp; "
            f"replies to a local fake Twilio API ({self.twilio.fake.base_url})"
        )

    async def close(self) -> None:
        await self.twilio.stop()


class PhoneRoute(ChannelRoute):
    """A call: the signed voice webhook, the menu answered, the caller in a Twilio queue named
    after the contact. The agent bridges with `POST /api/contacts/{ref}/call` (our service asks
    the Calls API to ring the agent); the stand-in then plays Twilio's part of the bridge."""

    channel = "phone"
    label = "calls bridged"

    def __init__(self, twilio: TwilioStandIn) -> None:
        self.twilio = twilio
        self.calls: dict[str, Call] = {}  # callers on the line, by CallSid
        self.rang: dict[str, float] = {}  # when each call came in (monotonic)

    async def prepare(self) -> dict[str, str]:
        return await self.twilio.start()

    async def connect(self, settings: Settings, service_url: str, token: str) -> None:
        self.twilio.service_url = service_url

    def compose(
        self, resident: Resident, subject: str, text: str, thread: str | None, topic: str = ""
    ) -> tuple[Outgoing, str | None]:
        from sandbox.twilio import Call, TwilioWebhooks, new_sid

        twilio = self.twilio
        hooks = TwilioWebhooks(twilio.service_url, twilio.account_sid, twilio.auth_token)
        call = Call(hooks, new_sid("CA"), resident.phone, PHONE_NUMBER)
        self.calls[call.call_sid] = call
        self.rang[call.call_sid] = time.monotonic()
        digit = MENU_DIGITS.get(topic)  # no digit: the caller waits out the menu

        async def deliver() -> None:
            # Twilio again (a retry): the same CallSid is the same contact.
            answer = await call.start(digit)
            if answer.status != 200 or call.queue is None:
                raise RouteError(f"the voice webhook answered {answer.status}")

        return Outgoing(call.call_sid, deliver), None

    def waiting(self, reference: str) -> Call | None:
        return next((c for c in self.calls.values() if c.queue == reference), None)

    async def bridged(self, reference: str) -> None:
        """Twilio rang the agent (our Calls API request) and connects them to the caller."""
        call = self.waiting(reference)
        if call is None:
            raise RouteError(f"no caller waits for {reference}")
        waited = time.monotonic() - self.rang[call.call_sid]
        answer = await call.post("/channels/phone/bridged", QueueTime=str(int(waited)))
        if answer.status != 200:
            raise RouteError(f"the bridged webhook answered {answer.status}")
        await call.leave_queue("bridged", int(waited))

    async def hang_up(self, reference: str, duration: float) -> None:
        call = self.waiting(reference)
        if call is not None:
            del self.calls[call.call_sid]
            del self.rang[call.call_sid]
            await call.status("completed", int(duration))

    def replies_delivered(self) -> int:
        return len(self.twilio.fake.calls)

    def how(self, service_url: str) -> str:
        return (
            f"signed Twilio voice webhooks to {service_url}/channels/phone/voice, menu, Twilio "
            f"queue; agents are rung through a local fake Twilio API ({self.twilio.fake.base_url})"
        )

    async def close(self) -> None:
        await self.twilio.stop()


# --- e-mail ----------------------------------------------------------------------------------


class EmailRoute(ChannelRoute):
    """Residents' mail handed to our LMTP endpoint, as the municipality's mail server would
    (the endpoint answers 250 once the contact is durable); replies, and the web form's answers
    by e-mail, leave over SMTP to a local sink."""

    channel = "email"
    label = "e-mail"
    MAILBOX = "kcc@gemeente.example.nl"

    def __init__(self) -> None:
        from sandbox.mail import SmtpSink

        self.sink = SmtpSink()
        self.lmtp_port = 0

    async def prepare(self) -> dict[str, str]:
        smtp_port = await self.sink.start()
        self.lmtp_port = free_port()
        return {
            "KCC_LMTP_HOST": "127.0.0.1",
            "KCC_LMTP_PORT": str(self.lmtp_port),
            "KCC_SMTP_HOST": "127.0.0.1",
            "KCC_SMTP_PORT": str(smtp_port),
            "KCC_SMTP_TLS": "none",  # loopback only
            "KCC_SMTP_FROM": f"Gemeente Groningen (demo) <{self.MAILBOX}>",
        }

    async def connect(self, settings: Settings, service_url: str, token: str) -> None:
        """The mail server's transport is configured on its side: nothing to register."""

    def compose(
        self, resident: Resident, subject: str, text: str, thread: str | None, topic: str = ""
    ) -> tuple[Outgoing, str | None]:
        from sandbox.mail import deliver_lmtp, resident_mail

        message_id = f"<{uuid.uuid4().hex}@bewoner.example.nl>"
        raw = resident_mail(
            resident.email,
            subject,
            text,
            to=self.MAILBOX,
            in_reply_to=thread,  # an answer in the thread the resident started
            message_id=message_id,
            name=resident.name or None,
        )

        async def deliver() -> None:
            answers = await deliver_lmtp(
                "127.0.0.1", self.lmtp_port, raw, sender=resident.email, recipients=[self.MAILBOX]
            )
            code, _ = answers[0]
            if code != 250:
                raise RouteError(f"the LMTP endpoint answered {code}")

        return Outgoing(message_id, deliver), thread or message_id

    def replies_delivered(self) -> int:
        return len(self.sink.messages)

    def how(self, service_url: str) -> str:
        return (
            f"mail over LMTP to 127.0.0.1:{self.lmtp_port}, as a mail server hands it on; "
            f"replies (also to web forms) over SMTP to a local sink (127.0.0.1:{self.sink.port})"
        )

    async def close(self) -> None:
        await self.sink.stop()


def free_port() -> int:
    """A port free right now on 127.0.0.1, for a server that only takes a port number."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- scanned post ----------------------------------------------------------------------------


class PostRoute(ChannelRoute):
    """The mail room's scanner posts each letter as a PDF with its metadata to `/channels/post`
    (integration token); replies become A4 letters that the mail room fetches, prints and marks
    posted through the mail room API, as it would every morning."""

    channel = "post"
    label = "post letters"
    MAIL_ROOM_SECONDS = 1.0

    def __init__(self) -> None:
        self.service_url = ""
        self.token = ""
        self.posted = 0
        self._session: aiohttp.ClientSession | None = None
        self._mail_room: asyncio.Task[None] | None = None

    async def prepare(self) -> dict[str, str]:
        return {}

    async def connect(self, settings: Settings, service_url: str, token: str) -> None:
        self.service_url, self.token = service_url, token
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=60),
        )
        self._mail_room = asyncio.ensure_future(self._every_morning())

    def compose(
        self, resident: Resident, subject: str, text: str, thread: str | None, topic: str = ""
    ) -> tuple[Outgoing, str | None]:
        from sandbox.post import letter_pdf, submit_letter

        # A text layer, as most scanners' OCR makes: image-only letters would keep Tesseract
        # busy for seconds each on a small machine.
        pdf = letter_pdf(f"Betreft: {subject}\n\n{text}" if subject else text)
        scan_id = f"demo-scan-{uuid.uuid4().hex[:16]}"

        async def deliver() -> None:
            assert self._session is not None
            await submit_letter(
                self.service_url,
                self.token,
                pdf,
                session=self._session,
                scan_id=scan_id,
                sender_name=resident.name or None,
                postal_address=resident.postal_address or None,
            )

        return Outgoing(f"scan:{scan_id}", deliver), None

    async def _every_morning(self) -> None:
        while True:
            await asyncio.sleep(self.MAIL_ROOM_SECONDS)
            try:
                await self._print_and_post()
            except Exception as error:  # the mail room tries again next round
                log.warning("demo mail room: %s: %s", type(error).__name__, error)

    async def _print_and_post(self) -> None:
        """Letters ready: download each PDF, mark it printed, then posted."""
        session = self._session
        if session is None:
            return
        base = f"{self.service_url}/api/post/outgoing"
        async with session.get(base, params={"status": "ready"}) as response:
            if response.status != 200:
                raise RouteError(f"the letters to print answered {response.status}")
            letters = (await response.json())["letters"]
        for letter in letters:
            async with session.get(f"{self.service_url}{letter['download']}") as response:
                if response.status != 200 or not (await response.read()).startswith(b"%PDF"):
                    raise RouteError(f"letter {letter['id']} is not a PDF")
            for step in ("printed", "posted"):
                async with session.post(f"{base}/{letter['id']}/{step}") as response:
                    if response.status != 200:
                        raise RouteError(f"marking letter {letter['id']} {step}: {response.status}")
            self.posted += 1

    async def drain(self) -> None:
        if self._mail_room is not None:
            self._mail_room.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._mail_room
            self._mail_room = None
        with contextlib.suppress(aiohttp.ClientError, RouteError, TimeoutError):
            await self._print_and_post()

    def replies_delivered(self) -> int:
        return self.posted

    def how(self, service_url: str) -> str:
        return (
            f"letter PDFs from the mail room's scanner to {service_url}/channels/post; "
            f"reply letters printed and posted via {service_url}/api/post/outgoing"
        )

    async def close(self) -> None:
        if self._mail_room is not None:
            self._mail_room.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._mail_room
        if self._session is not None:
            await self._session.close()


# --- finding the contact ----------------------------------------------------------------------


async def find_contact(
    services: Services, channel: str, channel_message_id: str
) -> tuple[str, str] | None:
    """(reference, outcome) of the contact holding this inbound message: `created` when it is
    the contact's first inbound message, else `follow_up`. None when nothing has it."""
    found = await services.store.find_message(channel, channel_message_id)
    if found is None:
        return None
    contact, message = found
    async with services.store.readers() as session:
        earlier = (
            await session.execute(
                select(sa.func.count())
                .select_from(Message)
                .where(col(Message.contact_id) == contact.id)
                .where(col(Message.direction) == message.direction)
                .where(col(Message.id) < message.id)
            )
        ).scalar_one()
    return contact.reference, "follow_up" if earlier else "created"


def available_routes() -> list[ChannelRoute]:
    """A route for every channel whose adapter and stand-in are in this tree."""
    twilio = TwilioStandIn()
    return [
        TelegramRoute(),
        WhatsAppRoute(twilio),
        PhoneRoute(twilio),
        EmailRoute(),
        PostRoute(),
    ]
