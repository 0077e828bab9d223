"""Phone through Twilio Voice: our router decides who is next, Twilio only holds the call.

The flow (every webhook signed and checked like WhatsApp's):

1. `POST /channels/phone/voice`: a call comes in. With a menu configured the caller first hears
   it (`<Gather>`); the choice's text is classified like any message. The call becomes a phone
   contact (idempotent on `CallSid`, one contact per call) and the caller is put in a Twilio
   queue named after the contact's reference: `<Enqueue>KCC-2026-000123</Enqueue>`.
2. `POST /channels/phone/wait` (the queue's wait URL, repeated while waiting): the caller's
   position in OUR queue, hold music, and after `callback_offer_after_seconds` an offer: press 1
   to be called back (`POST /channels/phone/callback`). Pressing 1 closes the call's contact
   (outcome `terugbelverzoek`), creates a callback contact (answer within
   `callback_answer_hours`, lower priority than live calls) and the caller leaves the queue and
   hears a confirmation (`<Leave/>`, then Enqueue's action).
3. The router offers the contact to an agent (`POST /api/agents/me/next`). The agent bridges with
   `POST /api/contacts/{ref}/call` (Twilio calls the agent's phone and dials the queue:
   `<Dial><Queue>KCC-...</Queue></Dial>`), or from a softphone whose TwiML App asks
   `POST /channels/phone/agent?reference=KCC-...` for the same TwiML. Exactly this caller is
   bridged to exactly this agent; Twilio requests `POST /channels/phone/bridged` at that moment:
   the call is answered, with its wait time.
4. `POST /channels/phone/enqueued` (Enqueue's action) tells why the caller left the queue: a
   hang-up while waiting is an abandoned call (contact closed with outcome `abandoned`).
   `POST /channels/phone/status` (the number's status callback) records the end and duration.

A callback contact is answered by the agent calling the resident (`POST /api/contacts/{ref}/call`
on a callback contact dials the resident's number). Replies in text to a phone contact go out as
SMS when `TWILIO_SMS_FROM` is set, and fail with a clear reason otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import timedelta
from urllib.parse import quote

import aiohttp
from aiohttp import web
from pydantic import Field
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client
from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

from adapters.channel import ChannelAdapter
from adapters.outbound import Delivery, OutboundMessage
from adapters.phone.calls import ABANDONED, ANSWERED, CALLBACK, CallStore
from adapters.twilio_common import (
    EMPTY_TWIML,
    PhoneConfig,
    RebasedHttpClient,
    TwilioAccount,
    TwilioConfig,
    make_client,
    record_message_status,
    required,
    signed_form,
    twiml,
    warn_once,
)
from contacts.inbound import InboundError, InboundMessage, ResidentIdentity, normalise_phone
from contacts.models import HELD_STATUSES, OPEN_STATUSES, Contact, Status
from contacts.store import TransitionError
from kcc.api.auth import LEAD_ROLES, STAFF_ROLES, authenticate, require_role
from kcc.api.contacts import acting_agent, load_contact
from kcc.api.schemas import Strict
from kcc.services import Services

log = logging.getLogger(__name__)

CHANNEL = "phone"
ACTOR = "channel:phone"
CALLBACK_OUTCOME = "terugbelverzoek"
ABANDONED_OUTCOME = "abandoned"
VOICE = "/channels/phone/voice"
WAIT = "/channels/phone/wait"
CALLBACK_PATH = "/channels/phone/callback"
ENQUEUED = "/channels/phone/enqueued"
BRIDGED = "/channels/phone/bridged"
STATUS = "/channels/phone/status"
SMS_STATUS = "/channels/phone/sms-status"
ENDED = frozenset({"completed", "busy", "no-answer", "canceled", "failed"})
NO_SMS = (
    "een telefooncontact wordt in het gesprek beantwoord; een tekstbericht kan alleen als sms "
    "en er is geen sms-afzender (TWILIO_SMS_FROM) ingesteld. Bel de inwoner of kies een ander "
    "kanaal."
)


class CallRequest(Strict):
    # The agent's own phone number: Twilio calls it and connects the resident.
    phone: str = Field(min_length=6, max_length=32)


def seconds(value: str | None) -> float:
    try:
        return max(0.0, float(value or 0))
    except ValueError:
        return 0.0


class PhoneAdapter(ChannelAdapter):
    channel = CHANNEL

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.config: PhoneConfig = TwilioConfig.load(services.settings.config_dir).phone
        self.calls = CallStore(services.store.sessions, services.store.readers)
        self.sender: SmsSender | None = None
        self.rest: tuple[Client, RebasedHttpClient] | None = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(VOICE, self.voice)
        app.router.add_post(WAIT, self.wait)
        app.router.add_post(CALLBACK_PATH, self.callback)
        app.router.add_post(ENQUEUED, self.enqueued)
        app.router.add_post(BRIDGED, self.bridged)
        app.router.add_post(STATUS, self.status)
        app.router.add_post("/channels/phone/agent", self.agent_leg)
        app.router.add_post(SMS_STATUS, self.sms_status)
        app.router.add_post("/api/contacts/{reference}/call", self.call_api)
        app.router.add_get("/api/phone/norms", self.norms_api)

    async def start(self) -> None:
        account = TwilioAccount.from_services(self.services)
        if account is None:
            warn_once(
                self.services,
                CHANNEL,
                "no outbound sender: TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN unset",
            )
            return
        self.sender = SmsSender(
            self.services, account, self.services.settings.secret("TWILIO_SMS_FROM")
        )
        self.services.outbox.register(CHANNEL, self.sender)
        self.rest = make_client(account)

    async def stop(self) -> None:
        if self.sender is not None:
            self.services.outbox.unregister(CHANNEL)
            await self.sender.close()
            self.sender = None
        if self.rest is not None:
            await self.rest[1].close()
            self.rest = None

    async def delete_queue(self, queue_sid: str) -> None:
        """Twilio keeps every queue until deleted ("inactive queues should be deleted"); ours
        hold one call each, so a queue is removed once its caller left it. Best effort: a
        failure only leaves an empty queue behind."""
        if self.rest is None or not queue_sid.startswith("QU") or len(queue_sid) > 64:
            return
        try:
            async with asyncio.timeout(5):
                await self.rest[0].queues(queue_sid).delete_async()
        except (TwilioRestException, TwilioException, aiohttp.ClientError, TimeoutError) as error:
            log.info("phone: empty queue %s not deleted: %s", queue_sid, type(error).__name__)

    # --- TwiML pieces -------------------------------------------------------------------------

    def say(self, response: VoiceResponse | Gather, text: str) -> None:
        response.say(text, language=self.config.language)

    def enqueue(self, response: VoiceResponse, reference: str) -> VoiceResponse:
        response.enqueue(
            reference, wait_url=WAIT, wait_url_method="POST", action=ENQUEUED, method="POST"
        )
        return response

    def bridge_twiml(self, contact: Contact, resident_phone: str | None) -> VoiceResponse:
        """What the agent's leg does: take exactly this caller from the Twilio queue, or for a
        callback request, dial the resident."""
        response = VoiceResponse()
        caller_id = self.services.settings.secret("TWILIO_PHONE_NUMBER") or None
        if contact.channel_message_id.startswith("callback:"):
            dial = Dial(caller_id=caller_id)
            public = self.services.settings.public_url.rstrip("/")
            if public and resident_phone:
                dial.number(
                    resident_phone,
                    status_callback=f"{public}{STATUS}?callback={quote(contact.reference)}",
                    status_callback_event="answered completed",
                    status_callback_method="POST",
                )
            elif resident_phone:
                dial.number(resident_phone)
            response.append(dial)
            return response
        dial = Dial()
        dial.queue(contact.reference, url=BRIDGED, method="POST")
        response.append(dial)
        return response

    # --- the caller's side ----------------------------------------------------------------------

    async def voice(self, request: web.Request) -> web.Response:
        services = self.services
        form = await signed_form(request, services, CHANNEL)
        call_sid = required(services, CHANNEL, form, "CallSid")
        digits = form.get("Digits")
        if self.config.menu and digits is None and request.query.get("menu") != "done":
            known = await services.store.find_message(CHANNEL, call_sid)
            if known is not None:  # asked again for a call that is waiting already
                return twiml(str(self.enqueue(VoiceResponse(), known[0].reference)))
            response = VoiceResponse()
            gather = Gather(
                num_digits=1,
                action=f"{VOICE}?menu=done",
                method="POST",
                timeout=5,
                input="dtmf",
                language=self.config.language,
            )
            self.say(gather, f"{self.config.greeting} {self.config.menu_prompt}")
            response.append(gather)
            response.redirect(f"{VOICE}?menu=done", method="POST")
            return twiml(str(response))
        choice = next((c for c in self.config.menu if c.digit == (digits or "").strip()), None)
        text = "Telefoongesprek"
        if choice is not None:
            text += f". Keuze {choice.digit}: {choice.text}"
        result = await services.intake.receive(
            InboundMessage(
                channel=CHANNEL,
                channel_message_id=call_sid,
                text=text,
                sender=ResidentIdentity(phone=caller_number(form.get("From")), language="nl"),
                # One contact per call: a second call is a new contact, not a follow-up.
                thread_key=f"call:{call_sid}",
            )
        )
        response = VoiceResponse()
        if not self.config.menu:
            self.say(response, self.config.greeting)
        self.say(response, "Een moment geduld, u wordt zo snel mogelijk geholpen.")
        return twiml(str(self.enqueue(response, result.contact.reference)))

    async def wait(self, request: web.Request) -> web.Response:
        services = self.services
        form = await signed_form(request, services, CHANNEL)
        call_sid = required(services, CHANNEL, form, "CallSid")
        waited = seconds(form.get("QueueTime"))
        found = await services.store.find_message(CHANNEL, call_sid)
        response = VoiceResponse()
        ahead = None
        if found is not None and found[0].status == Status.queued:
            ahead = await services.backend.ahead(found[0].id or 0)
        if ahead is None:
            self.say(response, "U wordt zo doorverbonden met een medewerker.")
        elif ahead == 0:
            self.say(response, "U bent de eerstvolgende in de wachtrij.")
        else:
            before = "is 1 beller" if ahead == 1 else f"zijn {ahead} bellers"
            self.say(response, f"Er {before} voor u. U bent nummer {ahead + 1}.")
        if (
            found is not None
            and found[0].status == Status.queued
            and waited >= self.config.callback_offer_after_seconds
        ):
            gather = Gather(
                num_digits=1, action=CALLBACK_PATH, method="POST", timeout=3, input="dtmf"
            )
            self.say(gather, "Wilt u liever teruggebeld worden? Druk dan op 1.")
            response.append(gather)
        if self.config.hold_music_url:
            response.play(self.config.hold_music_url, loop=1)
        else:
            response.pause(length=10)
        return twiml(str(response))

    async def callback(self, request: web.Request) -> web.Response:
        """The caller pressed a key while waiting: 1 is a callback request."""
        services = self.services
        form = await signed_form(request, services, CHANNEL)
        call_sid = required(services, CHANNEL, form, "CallSid")
        if form.get("Digits", "").strip() != "1":
            return twiml(EMPTY_TWIML)  # back to waiting
        found = await services.store.find_message(CHANNEL, call_sid)
        if found is None:
            return twiml(EMPTY_TWIML)
        contact = found[0]
        resident = await services.store.resident(contact.resident_id)
        if resident is None or not resident.phone:
            response = VoiceResponse()
            self.say(response, "Uw nummer is afgeschermd, daarom kunnen wij u niet terugbellen.")
            return twiml(str(response))
        waited = seconds(form.get("QueueTime"))
        callback = await self.create_callback(contact, resident.phone, call_sid, waited)
        if await self.calls.settle(contact, call_sid, CALLBACK, waited, services.clock.now()):
            services.metrics.phone_calls.labels(CALLBACK).inc()
            services.metrics.phone_wait_seconds.labels(CALLBACK).observe(waited)
        await self.close_call_contact(
            contact,
            CALLBACK_OUTCOME,
            f"inwoner koos terugbellen na {int(waited)} s wachten: {callback.reference}",
            {"callback": callback.reference, "wait_seconds": waited},
        )
        response = VoiceResponse()
        response.leave()  # the caller leaves the queue; Enqueue's action says goodbye
        return twiml(str(response))

    async def create_callback(
        self, call: Contact, phone: str, call_sid: str, waited: float
    ) -> Contact:
        """The callback request: its own contact, with a deadline and a lower priority than
        callers on the line. Idempotent on the call."""
        services = self.services
        result = await services.intake.receive(
            InboundMessage(
                channel=CHANNEL,
                channel_message_id=f"callback:{call_sid}",
                text=f"Terugbelverzoek na {int(waited)} s wachten. {call.body}",
                sender=ResidentIdentity(phone=phone, language=call.language),
                thread_key=f"callback:{call_sid}",
            )
        )
        contact = result.contact
        if result.outcome != "created":
            return contact
        now = services.clock.now()
        due = now + timedelta(hours=self.config.callback_answer_hours)
        planner = services.router.planner
        await services.store.set_deadlines(
            contact.id or 0, None, due, planner.at_risk_at(contact.received_at, due)
        )
        contact.answer_due = due
        priority = self.config.callback_priority
        await services.store.update_routing(contact.id or 0, priority=priority)
        contact.priority = priority
        entry = services.router.waiting_entry(contact)
        # Still waiting unless an agent took it at once (then it simply is being handled).
        await services.backend.rescore(entry.contact_id, entry.requirements, entry.score)
        await services.store.add_event(
            contact.id or 0,
            now,
            "callback",
            ACTOR,
            reason=f"terugbelverzoek uit wachtrij van {call.reference}; "
            f"terugbellen voor {due.isoformat(timespec='minutes')}",
            data={"from_contact": call.reference, "wait_seconds": waited, "priority": priority},
        )
        return contact

    async def enqueued(self, request: web.Request) -> web.Response:
        """Enqueue's action: why the caller left the queue."""
        form = await signed_form(request, self.services, CHANNEL)
        return await self.left_queue(form)

    async def left_queue(self, form: Mapping[str, str]) -> web.Response:
        services = self.services
        call_sid = required(services, CHANNEL, form, "CallSid")
        result = form.get("QueueResult", "").strip()
        waited = seconds(form.get("QueueTime"))
        found = await services.store.find_message(CHANNEL, call_sid)
        if result in ("bridged", "hangup", "leave", "redirected", "error", "system-error"):
            await self.delete_queue(form.get("QueueSid", "").strip())
        response = VoiceResponse()
        if result == "leave":
            self.say(
                response,
                "Wij bellen u binnen "
                f"{int(self.config.callback_answer_hours)} uur terug op het nummer waarmee u "
                "nu belt. Bedankt voor uw geduld. Tot ziens.",
            )
            response.hangup()
            return twiml(str(response))
        if result == "bridged":
            if found is not None:
                await self.answered(found[0], call_sid, waited)
            response.hangup()
            return twiml(str(response))
        if result in ("hangup", "queue-full", "error", "system-error") and found is not None:
            await self.abandoned(found[0], call_sid, waited, result)
        if result in ("queue-full", "error", "system-error"):
            self.say(response, "Er is een storing. Excuses, belt u later opnieuw.")
        response.hangup()
        return twiml(str(response))

    async def bridged(self, request: web.Request) -> web.Response:
        """Twilio connects the caller to the agent who dialled the queue: answered."""
        services = self.services
        form = await signed_form(request, services, CHANNEL)
        call_sid = required(services, CHANNEL, form, "CallSid")
        found = await services.store.find_message(CHANNEL, call_sid)
        if found is not None:
            await self.answered(found[0], call_sid, seconds(form.get("QueueTime")))
        return twiml(EMPTY_TWIML)

    async def status(self, request: web.Request) -> web.Response:
        """Call status callbacks: the end of a call (and its duration); for a callback the
        resident's leg (answered = we reached them)."""
        services = self.services
        form = await signed_form(request, services, CHANNEL)
        if "QueueResult" in form:
            # Enqueue's action pointed here instead of /channels/phone/enqueued: same answer.
            return await self.left_queue(form)
        call_sid = required(services, CHANNEL, form, "CallSid")
        call_status = form.get("CallStatus", "").strip()
        now = services.clock.now()
        callback_reference = request.query.get("callback")
        if callback_reference:
            await self.callback_leg(callback_reference, call_sid, call_status, form)
            return twiml(EMPTY_TWIML)
        if call_status not in ENDED:
            return twiml(EMPTY_TWIML)
        found = await services.store.find_message(CHANNEL, call_sid)
        if found is None:
            return twiml(EMPTY_TWIML)  # hung up in the menu, before there was a contact
        contact = found[0]
        duration = int(seconds(form.get("CallDuration")))
        if await self.calls.ended(contact, call_sid, call_status, duration, now):
            services.metrics.phone_call_seconds.observe(duration)
            await services.store.add_event(
                contact.id or 0,
                now,
                "call",
                ACTOR,
                reason=f"gesprek beëindigd ({call_status}), duur {duration} s",
                data={"call_status": call_status, "duration_seconds": duration},
            )
        call = await self.calls.by_sid(call_sid)
        if call is not None and call.status == "waiting":
            # Gone without Enqueue's action telling us (it normally does): still abandoned.
            current = await services.store.get(contact.id or 0)
            if current is not None:
                waited = (now - (current.enqueued_at or current.received_at)).total_seconds()
                await self.abandoned(current, call_sid, waited, call_status)
        return twiml(EMPTY_TWIML)

    async def callback_leg(
        self, reference: str, call_sid: str, call_status: str, form: Mapping[str, str]
    ) -> None:
        services = self.services
        contact = await services.store.by_reference(reference)
        if contact is None or contact.channel != CHANNEL:
            return
        now = services.clock.now()
        if call_status == "in-progress" and contact.status in (
            Status.assigned,
            Status.waiting_on_resident,
        ):
            # The status may have moved meanwhile; the event of that move tells the story.
            with contextlib.suppress(TransitionError):
                await services.store.change(
                    contact.id or 0,
                    Status.answered,
                    ACTOR,
                    now,
                    reason="inwoner teruggebeld en bereikt",
                    event_type="call",
                    data={"call_sid": call_sid},
                    expect_status=Status(contact.status),
                    answered_at=contact.answered_at or now,
                )
        elif call_status in ENDED:
            duration = int(seconds(form.get("CallDuration")))
            reached = call_status == "completed"
            await services.store.add_event(
                contact.id or 0,
                now,
                "call",
                ACTOR,
                reason=f"terugbelgesprek beëindigd, duur {duration} s"
                if reached
                else f"inwoner niet bereikt bij terugbellen ({call_status})",
                data={"call_sid": call_sid, "call_status": call_status, "duration": duration},
            )

    # --- the outcomes of a call ---------------------------------------------------------------

    async def answered(self, contact: Contact, call_sid: str, waited: float) -> None:
        services = self.services
        now = services.clock.now()
        if not await self.calls.settle(contact, call_sid, ANSWERED, waited, now):
            return  # recorded already
        services.metrics.phone_calls.labels(ANSWERED).inc()
        services.metrics.phone_wait_seconds.labels(ANSWERED).observe(waited)
        current = await services.store.get(contact.id or 0)
        if current is not None and current.status == Status.assigned:
            try:
                await services.store.change(
                    contact.id or 0,
                    Status.answered,
                    ACTOR,
                    now,
                    reason=f"gesprek aangenomen na {int(waited)} s wachten",
                    event_type="call",
                    data={"wait_seconds": waited, "call_sid": call_sid},
                    expect_status=Status.assigned,
                    answered_at=current.answered_at or now,
                )
                return
            except TransitionError:
                pass
        await services.store.add_event(
            contact.id or 0,
            now,
            "call",
            ACTOR,
            reason=f"gesprek aangenomen na {int(waited)} s wachten",
            data={"wait_seconds": waited, "call_sid": call_sid},
        )

    async def abandoned(self, contact: Contact, call_sid: str, waited: float, why: str) -> None:
        services = self.services
        now = services.clock.now()
        if not await self.calls.settle(contact, call_sid, ABANDONED, waited, now):
            return
        services.metrics.phone_calls.labels(ABANDONED).inc()
        services.metrics.phone_wait_seconds.labels(ABANDONED).observe(waited)
        reason = (
            f"inwoner hing op na {int(waited)} s wachten"
            if why in ("hangup", "completed", "canceled")
            else f"gesprek uit de wachtrij ({why}) na {int(waited)} s"
        )
        await self.close_call_contact(
            contact, ABANDONED_OUTCOME, reason, {"wait_seconds": waited, "queue_result": why}
        )

    async def close_call_contact(
        self, contact: Contact, outcome: str, reason: str, data: dict[str, object]
    ) -> None:
        """Close a call's contact wherever it is (waiting, or offered to an agent who has not
        bridged yet): out of the queue index, the agent's capacity back."""
        services = self.services
        for _ in range(3):
            current = await services.store.get(contact.id or 0)
            if current is None or current.status not in OPEN_STATUSES:
                return
            if current.status in (Status.answered, Status.waiting_on_resident):
                return  # the conversation happened: the agent closes it with their outcome
            status = Status(current.status)
            now = services.clock.now()
            try:
                await services.store.change(
                    current.id or 0,
                    Status.closed,
                    ACTOR,
                    now,
                    reason=reason,
                    data={"outcome": outcome, **data},
                    expect_status=status,
                    outcome=outcome,
                    closed_at=now,
                )
            except TransitionError:
                continue  # the router moved it meanwhile: look again
            if status == Status.queued:
                await services.backend.withdraw(current.id or 0)
            if status in HELD_STATUSES and current.assigned_agent_id is not None:
                await services.router.release(current, current.assigned_agent_id)
            services.metrics.closed.labels(outcome).inc()
            return

    # --- the agent's side -------------------------------------------------------------------

    async def agent_leg(self, request: web.Request) -> web.Response:
        """TwiML for an agent's softphone (a TwiML App): bridge the contact the router gave
        them, named by `reference`."""
        services = self.services
        form = await signed_form(request, services, CHANNEL)
        reference = (request.query.get("reference") or form.get("reference") or "").strip()
        contact = await services.store.by_reference(reference) if reference else None
        response = VoiceResponse()
        callable_statuses = (
            (Status.assigned, Status.answered, Status.waiting_on_resident)
            if contact is not None and contact.channel_message_id.startswith("callback:")
            else (Status.assigned,)
        )
        if contact is None or contact.channel != CHANNEL or contact.status not in callable_statuses:
            self.say(response, "Dit gesprek is niet meer beschikbaar.")
            response.hangup()
            return twiml(str(response))
        resident = await services.store.resident(contact.resident_id)
        return twiml(str(self.bridge_twiml(contact, resident.phone if resident else None)))

    async def call_api(self, request: web.Request) -> web.Response:
        """`POST /api/contacts/{ref}/call` {"phone": the agent's number}: Twilio calls the agent
        and connects them with the waiting caller, or for a callback request, the resident."""
        services = self.services
        agent = await authenticate(request, services)
        require_role(agent, STAFF_ROLES)
        contact = await load_contact(request, services, agent)
        body = CallRequest.model_validate(await request.json())
        acting_agent(agent, contact)
        if contact.channel != CHANNEL:
            raise web.HTTPConflict(text="only phone contacts are called from here")
        is_callback = contact.channel_message_id.startswith("callback:")
        allowed = (
            (Status.assigned, Status.answered, Status.waiting_on_resident)
            if is_callback
            else (Status.assigned,)
        )
        if contact.status not in allowed:
            raise TransitionError(f"a phone contact that is {contact.status} cannot be called")
        try:
            agent_phone = normalise_phone(body.phone)
        except InboundError as error:
            raise web.HTTPUnprocessableEntity(text=str(error)) from None
        account = TwilioAccount.from_services(services)
        caller_id = services.settings.secret("TWILIO_PHONE_NUMBER")
        if account is None or not caller_id:
            raise web.HTTPServiceUnavailable(
                text="bellen via Twilio is niet ingesteld (TWILIO_ACCOUNT_SID, "
                "TWILIO_AUTH_TOKEN, TWILIO_PHONE_NUMBER)"
            )
        resident = await services.store.resident(contact.resident_id)
        if is_callback and (resident is None or not resident.phone):
            raise web.HTTPConflict(text="geen telefoonnummer bekend om terug te bellen")
        public = services.settings.public_url.rstrip("/")
        what: dict[str, str] = (
            # Asked for when the agent picks up: a caller who hung up meanwhile is then known.
            {"url": f"{public}/channels/phone/agent?reference={quote(contact.reference)}"}
            if public
            else {"twiml": str(self.bridge_twiml(contact, resident.phone if resident else None))}
        )
        client, http = make_client(account)
        try:
            created = await client.calls.create_async(to=agent_phone or "", from_=caller_id, **what)
        except TwilioRestException as error:
            raise web.HTTPBadGateway(
                text=f"Twilio weigerde het gesprek (fout {error.code}, {error.status})"
            ) from None
        finally:
            await http.close()
        now = services.clock.now()
        await services.store.add_event(
            contact.id or 0,
            now,
            "call",
            f"agent:{agent.id}",
            reason="medewerker belt de inwoner terug"
            if is_callback
            else "medewerker wordt verbonden met de beller",
            data={"agent_call_sid": created.sid},
        )
        return web.json_response(
            {"reference": contact.reference, "call_sid": created.sid, "callback": is_callback},
            status=201,
        )

    async def norms_api(self, request: web.Request) -> web.Response:
        """`GET /api/phone/norms?hours=24` (team leads): service level and abandoned rate from
        the recorded calls, the same in every process and across restarts."""
        services = self.services
        agent = await authenticate(request, services)
        require_role(agent, LEAD_ROLES)
        try:
            hours = float(request.query.get("hours", "24"))
        except ValueError:
            raise web.HTTPBadRequest(text="hours must be a number") from None
        if not 0 < hours <= 24 * 366:
            raise web.HTTPBadRequest(text="hours must be between 0 and 8784")
        threshold = self.config.answer_within_seconds
        since = services.clock.now() - timedelta(hours=hours)
        figures = await self.calls.norms(since, threshold)
        return web.json_response(
            {"since": since.isoformat(), "answer_within_seconds": threshold, **figures}
        )

    async def sms_status(self, request: web.Request) -> web.Response:
        form = await signed_form(request, self.services, CHANNEL)
        await record_message_status(self.services, CHANNEL, form)
        return twiml(EMPTY_TWIML)


def caller_number(value: str | None) -> str | None:
    """The caller's number, or None when withheld ("anonymous", "+266696687", ...)."""
    try:
        return normalise_phone(value)
    except InboundError:
        return None


class SmsSender:
    """A text reply on a phone contact: an SMS when a sender number is configured, else a clear
    failure (the answer to a call is the call itself)."""

    def __init__(self, services: Services, account: TwilioAccount, sms_from: str) -> None:
        self.services = services
        self.sms_from = sms_from
        self.client, self.http = make_client(account)
        public = services.settings.public_url.rstrip("/")
        self.status_callback = f"{public}{SMS_STATUS}" if public else None

    async def close(self) -> None:
        await self.http.close()

    async def send(self, message: OutboundMessage) -> Delivery:
        if not self.sms_from:
            return Delivery("failed", detail=NO_SMS)
        resident = message.resident
        if resident is None or not resident.phone:
            return Delivery("failed", detail="geen telefoonnummer bekend voor een sms")
        if len(message.text) > 1600:
            return Delivery("failed", detail="te lang voor een sms (maximaal 1600 tekens)")
        fields: dict[str, object] = {
            "to": resident.phone,
            "from_": self.sms_from,
            "body": message.text,
        }
        if self.status_callback:
            fields["status_callback"] = self.status_callback
        try:
            created = await self.client.messages.create_async(**fields)
        except TwilioRestException as error:
            if error.status == 429 or error.status >= 500:
                raise
            return Delivery(
                "failed", detail=f"Twilio weigerde de sms (fout {error.code}, {error.status})"
            )
        return Delivery("sent", provider_id=created.sid)
