"""WhatsApp through Twilio: the inbound webhook, delivery status callbacks and replies.

Inbound (`POST /channels/whatsapp`): a signed Twilio webhook becomes a contact, or a follow-up on
the open contact of the resident's number, before we answer with empty TwiML. The same
`MessageSid` again (Twilio retrying) is answered at once and stored once. Media are fetched with
the account's credentials; a medium that is refused, too large or unavailable is left out and the
contact says so. A temporary download failure does not fail the webhook: Twilio does not retry a
message webhook unless told to (connection overrides), so a 5xx would risk losing the text; the
text is kept and the agent is told which medium is missing.

Outbound: free text within WhatsApp's 24-hour window after the resident's last message; outside
it only an approved template (Content API) for the message's purpose, else the message fails
with a reason the agent sees.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

from aiohttp import web
from twilio.base.exceptions import TwilioRestException

from adapters.channel import ChannelAdapter
from adapters.outbound import Delivery, OutboundMessage
from adapters.twilio_common import (
    EMPTY_TWIML,
    TwilioAccount,
    TwilioConfig,
    WhatsAppConfig,
    clean_text,
    make_client,
    record_message_status,
    refuse,
    required,
    signed_form,
    twiml,
    warn_once,
)
from adapters.whatsapp.media import Medium, Skipped, download_all
from contacts.inbound import InboundError, InboundMessage, ResidentIdentity
from kcc.services import Services

log = logging.getLogger(__name__)

CHANNEL = "whatsapp"
OUTSIDE_WINDOW = (
    "buiten het 24-uursvenster van WhatsApp: de inwoner schreef meer dan 24 uur geleden voor "
    "het laatst, dus een vrij bericht kan niet worden verstuurd. Gebruik een ander kanaal of "
    "vraag de inwoner eerst te reageren."
)
STATUS_PATH = "/channels/whatsapp/status"


class WhatsAppAdapter(ChannelAdapter):
    channel = CHANNEL

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.config = TwilioConfig.load(services.settings.config_dir).whatsapp
        self.sender: WhatsAppSender | None = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/channels/whatsapp", self.inbound)
        app.router.add_post(STATUS_PATH, self.status)

    async def start(self) -> None:
        account = TwilioAccount.from_services(self.services)
        sender_number = self.services.settings.secret("TWILIO_WHATSAPP_FROM")
        if account is None or not sender_number:
            warn_once(
                self.services,
                CHANNEL,
                "no outbound sender: TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and "
                "TWILIO_WHATSAPP_FROM are needed; replies wait in the outbox",
            )
            return
        self.sender = WhatsAppSender(self.services, account, sender_number, self.config)
        self.services.outbox.register(CHANNEL, self.sender)

    async def stop(self) -> None:
        if self.sender is not None:
            self.services.outbox.unregister(CHANNEL)
            await self.sender.close()
            self.sender = None

    # --- inbound ----------------------------------------------------------------------------

    async def inbound(self, request: web.Request) -> web.Response:
        services = self.services
        form = await signed_form(request, services, CHANNEL)
        sid = required(services, CHANNEL, form, "MessageSid")
        sender = required(services, CHANNEL, form, "From")
        try:
            count = int(form.get("NumMedia", "0") or "0")
        except ValueError:
            raise refuse(services, CHANNEL, 400, "malformed", "NumMedia is not a number") from None
        if not 0 <= count <= self.config.max_media:
            raise refuse(services, CHANNEL, 400, "malformed", "NumMedia out of range")
        if count and await services.store.find_message(CHANNEL, sid) is not None:
            # Twilio retried a message with media: stored already, nothing to fetch again. (The
            # intake recognises any other retry itself.)
            services.metrics.contacts_received.labels(CHANNEL, "duplicate").inc()
            return twiml(EMPTY_TWIML)
        media = [
            Medium(i, form.get(f"MediaUrl{i}", ""), form.get(f"MediaContentType{i}", ""))
            for i in range(count)
        ]
        if any(not m.url for m in media):
            raise refuse(services, CHANNEL, 400, "malformed", "a MediaUrl is missing")
        account = TwilioAccount.from_services(services)
        assert account is not None  # signed_form refused the request otherwise
        limit = min(self.config.media_max_bytes, services.attachments.max_bytes)
        kept, skipped = await download_all(media, account, self.config, limit)

        text = clean_text(form.get("Body", "")).strip()
        extra = [line for line in (location_line(form), *(s.text for s in skipped)) if line]
        if extra:
            notes = "\n".join(f"[{line}]" for line in extra)
            text = f"{text}\n\n{notes}" if text else notes
        if not text and not kept:
            # Nothing a person could answer (an empty or unsupported message type): kept for a
            # team lead instead of becoming an empty contact; Twilio gets its answer.
            await services.quarantine.keep(
                CHANNEL,
                "leeg WhatsApp-bericht (geen tekst en geen bijlage)",
                services.clock.now(),
                raw=await request.read(),
                provider_id=sid,
                content_type="application/x-www-form-urlencoded",
            )
            return twiml(EMPTY_TWIML)
        try:
            result = await services.intake.receive(
                InboundMessage(
                    channel=CHANNEL,
                    channel_message_id=sid,
                    text=text,
                    sender=ResidentIdentity(
                        name=clean_text(form.get("ProfileName", "")) or None, phone=sender
                    ),
                    attachments=tuple(kept),
                )
            )
        except InboundError as error:
            # Signed by Twilio, yet not a contact (e.g. a sender that is not a phone number):
            # kept with its reason; a 4xx would not make Twilio send anything better.
            await services.quarantine.keep(
                CHANNEL,
                f"WhatsApp-bericht kon geen contact worden: {error}",
                services.clock.now(),
                raw=await request.read(),
                provider_id=sid,
                content_type="application/x-www-form-urlencoded",
            )
            return twiml(EMPTY_TWIML)
        if skipped and result.outcome != "duplicate":
            await self._note_skipped(result.contact.id or 0, sid, skipped)
        return twiml(EMPTY_TWIML)

    async def _note_skipped(self, contact_id: int, sid: str, skipped: list[Skipped]) -> None:
        for item in skipped:
            await self.services.store.add_event(
                contact_id,
                self.services.clock.now(),
                "note",
                f"channel:{CHANNEL}",
                reason=item.text[:500],
                data={
                    "message_sid": sid,
                    "media_sid": item.medium.media_sid,
                    "content_type": item.medium.content_type[:127],
                    "why": item.why,
                },
            )

    # --- delivery status ----------------------------------------------------------------------

    async def status(self, request: web.Request) -> web.Response:
        form = await signed_form(request, self.services, CHANNEL)
        await record_message_status(self.services, CHANNEL, form)
        return twiml(EMPTY_TWIML)


def location_line(form: Mapping[str, str]) -> str:
    """A shared location arrives as coordinates (and maybe a label), with an empty body."""
    latitude, longitude = form.get("Latitude", ""), form.get("Longitude", "")
    if not latitude or not longitude:
        return ""
    parts = (form.get("Label", ""), form.get("Address", ""))
    label = " ".join(clean_text(p) for p in parts if p)
    place = f"{label} " if label else ""
    return f"Locatie gedeeld: {place}({latitude[:20]}, {longitude[:20]})"


class WhatsAppSender:
    """Sends replies through the twilio SDK's async client."""

    def __init__(
        self,
        services: Services,
        account: TwilioAccount,
        from_number: str,
        config: WhatsAppConfig,
    ) -> None:
        self.services = services
        self.config = config
        number = from_number.strip()
        self.from_address = number if number.startswith("whatsapp:") else f"whatsapp:{number}"
        self.client, self.http = make_client(account)
        public = services.settings.public_url.rstrip("/")
        self.status_callback = f"{public}{STATUS_PATH}" if public else None
        if not public:
            warn_once(services, CHANNEL, "KCC_PUBLIC_URL not set: no delivery status callbacks")

    async def close(self) -> None:
        await self.http.close()

    def in_window(self, message: OutboundMessage) -> bool:
        if message.last_inbound_at is None:
            return False
        elapsed = self.services.clock.now() - message.last_inbound_at
        return elapsed < timedelta(hours=self.config.window_hours)

    async def send(self, message: OutboundMessage) -> Delivery:
        resident = message.resident
        if resident is None or not resident.phone:
            return Delivery("failed", detail="geen telefoonnummer bekend voor WhatsApp")
        fields: dict[str, object] = {
            "to": f"whatsapp:{resident.phone}",
            "from_": self.from_address,
        }
        if self.status_callback:
            fields["status_callback"] = self.status_callback
        if self.in_window(message):
            if len(message.text) > self.config.max_body_chars:
                return Delivery(
                    "failed",
                    detail=f"bericht te lang voor WhatsApp (maximaal "
                    f"{self.config.max_body_chars} tekens); maak het korter",
                )
            fields["body"] = message.text
        else:
            template = self.config.templates.get(message.purpose)
            if template is None:
                return Delivery("failed", detail=OUTSIDE_WINDOW)
            values = {"reference": message.reference, **message.variables}
            variables = template.content_variables(values)
            if variables is None:
                return Delivery(
                    "failed",
                    detail=f"sjabloon voor {message.purpose} mist een waarde "
                    f"({', '.join(template.variables)})",
                )
            fields["content_sid"] = template.content_sid
            fields["content_variables"] = variables
        try:
            created = await self.client.messages.create_async(**fields)
        except TwilioRestException as error:
            if error.status == 429 or error.status >= 500:
                raise  # temporary: the outbox keeps it queued and tries again
            return Delivery(
                "failed", detail=f"Twilio weigerde het bericht (fout {error.code}, {error.status})"
            )
        return Delivery("sent", provider_id=created.sid)
