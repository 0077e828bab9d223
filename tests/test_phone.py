"""Phone through Twilio Voice, offline against the Twilio sandbox: the caller is held in a Twilio
queue named after the contact, our router picks the agent, the agent bridges exactly that caller;
wait position, callback requests, answered and abandoned calls with their wait times."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from adapters.phone.calls import CallStore
from contacts.models import Status
from sandbox.twilio import Call, call_in, new_sid
from tests.helpers import bearer, token_for
from tests.twilio_helpers import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PHONE_NUMBER,
    TwilioWorld,
    available_agent,
    twilio_world,
)

CALLER = "+31612345678"
AGENT_PHONE = "+31600000001"
AFVAL_PHONE_AGENT = "afval,nl,phone"


async def call(world: TwilioWorld, digit: str | None = "2", caller: str = CALLER) -> Call:
    placed = await call_in(
        world.service_url,
        ACCOUNT_SID,
        AUTH_TOKEN,
        from_number=caller,
        digit=digit,
        public_url=world.hooks.public_url,
    )
    assert placed.answers[-1].status == 200, placed.answers[-1].text
    assert placed.queue is not None
    return placed


async def contact_of(world: TwilioWorld, placed: Call):  # type: ignore[no-untyped-def]
    found = await world.services.store.find_message("phone", placed.call_sid)
    assert found is not None
    return found[0]


def said(answer_xml: ET.Element) -> str:
    return " ".join(e.text or "" for e in answer_xml.iter("Say"))


async def metric(world: TwilioWorld, name: str) -> float:
    text = (await (await world.client.get("/metrics")).text()).splitlines()
    return sum(float(line.split()[-1]) for line in text if line.startswith(name))


async def test_a_call_is_classified_queued_and_told_its_place(tmp_path: Path) -> None:
    async with twilio_world(tmp_path) as world:
        first = await call(world, "2")
        menu = first.answers[0].twiml()
        gather = menu.find("Gather")
        assert gather is not None and gather.get("numDigits") == "1"
        assert "afval" in said(menu)
        contact = await contact_of(world, first)
        assert first.queue == contact.reference  # one Twilio queue per call, named after it
        assert contact.channel == "phone" and contact.status == Status.queued
        assert "afval" in contact.skills and "phone" in contact.skills
        resident = await world.services.store.resident(contact.resident_id)
        assert resident is not None and resident.phone == CALLER
        enqueue = first.enqueue_element()
        assert enqueue.get("waitUrl") == "/channels/phone/wait"
        assert enqueue.get("action") == "/channels/phone/enqueued"

        # No choice in the menu: still a contact, for the general queue.
        undecided = await call(world, None, caller="+31687654321")
        assert (await contact_of(world, undecided)).queue == "algemeen"

        second = await call(world, "2", caller="+31611111111")
        third = await call(world, "2", caller="+31622222222")
        assert "eerstvolgende" in said((await first.wait(5)).twiml())
        heard = (await third.wait(5)).twiml()
        assert "Er zijn 2 bellers voor u. U bent nummer 3." in said(heard)
        assert heard.find("Gather") is None  # no callback offer before 30 s
        assert heard.find("Play") is not None
        assert "Er is 1 beller voor u" in said((await second.wait(29)).twiml())
        offer = (await third.wait(30)).twiml()
        gather = offer.find("Gather")
        assert gather is not None and gather.get("action") == "/channels/phone/callback"
        assert "Druk dan op 1" in said(gather)

        # Twilio asking the voice URL again for the same call: the same contact and queue.
        again = await first.post("/channels/phone/voice", Digits="2")
        assert again.twiml().findtext("Enqueue") == contact.reference
        assert await world.services.store.queued_count() == 4


async def test_the_same_call_twice_at_once_is_one_contact(tmp_path: Path) -> None:
    async with twilio_world(tmp_path) as world:
        placed = Call(world.hooks, new_sid("CA"), CALLER, PHONE_NUMBER)
        answers = await asyncio.gather(
            *(placed.post("/channels/phone/voice?menu=done", Digits="2") for _ in range(4))
        )
        assert {a.twiml().findtext("Enqueue") for a in answers} == {placed.queue}
        assert await world.services.store.queued_count() == 1
        contact = await contact_of(world, placed)
        # Its row is written when the call has something to tell: once, whoever tells it.
        await asyncio.gather(*(placed.leave_queue("hangup", 20) for _ in range(3)))
        calls = CallStore(world.services.store.sessions)
        call_row = await calls.by_sid(placed.call_sid)
        assert call_row is not None and call_row.contact_id == contact.id
        assert (call_row.status, call_row.wait_seconds) == ("abandoned", 20)
        assert call_row.created_at == contact.received_at


async def test_press_1_turns_the_call_into_a_callback_request(tmp_path: Path) -> None:
    async with twilio_world(tmp_path) as world:
        placed = await call(world, "2")
        contact = await contact_of(world, placed)
        offer = await placed.wait(35)
        world.clock.advance(35)
        left = await placed.press(offer, "1", 35)
        assert left.twiml().find("Leave") is not None
        goodbye = await placed.leave_queue("leave", 36)
        assert "terug" in said(goodbye.twiml()) and goodbye.twiml().find("Hangup") is not None

        closed = await world.services.store.get(contact.id or 0)
        assert closed is not None
        assert (closed.status, closed.outcome) == (Status.closed, "terugbelverzoek")
        assert await world.services.backend.get(contact.id or 0) is None
        callback_found = await world.services.store.find_message(
            "phone", f"callback:{placed.call_sid}"
        )
        assert callback_found is not None
        callback = await world.services.store.get(callback_found[0].id or 0)
        assert callback is not None and callback.status == Status.queued
        assert callback.answer_due == world.clock.now() + timedelta(hours=24)
        assert callback.priority == 15 < contact.priority
        waiting = await world.services.backend.get(callback.id or 0)
        assert waiting is not None and waiting.score > (await _live_score(world))
        events = await world.services.store.events(callback.id or 0)
        assert any(e.type == "callback" and contact.reference in (e.reason or "") for e in events)
        history = await world.services.store.events(contact.id or 0)
        assert any(callback.reference in (e.reason or "") for e in history)

        # Pressing 1 again (or Twilio repeating it) makes no second request.
        await placed.press(offer, "1", 40)
        assert await world.services.store.queued_count() == 1
        assert await metric(world, 'kcc_phone_calls_total{outcome="callback"}') == 1

        # A live caller goes before the callback request.
        live = await call(world, "2", caller="+31699999999")
        agent = await available_agent(world, "Bram", AFVAL_PHONE_AGENT)
        taken = await (await world.client.post("/api/agents/me/next", headers=agent)).json()
        assert taken["reference"] == (await contact_of(world, live)).reference


async def _live_score(world: TwilioWorld) -> float:
    from router.planner import queue_score

    return queue_score(30, world.clock.now().timestamp() + 3600)


async def test_agent_bridges_exactly_this_caller_and_the_call_is_measured(
    tmp_path: Path,
) -> None:
    async with twilio_world(tmp_path) as world:
        placed = await call(world, "2")
        contact = await contact_of(world, placed)
        agent = await available_agent(world, "Bram", AFVAL_PHONE_AGENT)
        await world.services.router.idle()
        taken = await world.client.post("/api/agents/me/next", headers=agent)
        assert (await taken.json())["reference"] == contact.reference
        assert (await taken.json())["call"] == {"status": "waiting"}
        assert "kan niet" not in said((await placed.wait(10)).twiml())

        bridge = await world.client.post(
            f"/api/contacts/{contact.reference}/call", json={"phone": AGENT_PHONE}, headers=agent
        )
        assert bridge.status == 201, await bridge.text()
        [agent_call] = world.fake.calls
        assert (agent_call["To"], agent_call["From"]) == (AGENT_PHONE, PHONE_NUMBER)
        # The agent picks up; Twilio asks us what to do with the call: take this caller.
        picked_up = await world.fake.answer_call(agent_call["Sid"])
        dial = picked_up.twiml().find("Dial")
        assert dial is not None
        queue = dial.find("Queue")
        assert queue is not None and queue.text == contact.reference
        # A softphone's TwiML App gets the same instructions.
        leg = await world.hooks.post(
            f"/channels/phone/agent?reference={contact.reference}", {"CallSid": new_sid("CA")}
        )
        assert leg.twiml().findtext("Dial/Queue") == contact.reference

        # Twilio bridges the caller: answered after 12 s, told once however often it is said.
        world.clock.advance(12)
        assert (await placed.post(queue.get("url") or "", QueueTime="12")).status == 200
        await placed.leave_queue("bridged", 12)
        answered = await world.services.store.get(contact.id or 0)
        assert answered is not None and answered.status == Status.answered
        world.clock.advance(95)
        await placed.status("completed", duration=95)
        await placed.status("completed", duration=95)

        view = await (
            await world.client.get(f"/api/contacts/{contact.reference}", headers=agent)
        ).json()
        assert view["call"]["status"] == "answered"
        assert view["call"]["wait_seconds"] == 12
        assert view["call"]["duration_seconds"] == 95
        assert [e["type"] for e in view["events"]].count("call") >= 2
        assert await metric(world, 'kcc_phone_calls_total{outcome="answered"}') == 1
        assert (
            await metric(world, 'kcc_phone_wait_seconds_bucket{le="30.0",outcome="answered"}') == 1
        )
        assert await metric(world, "kcc_phone_call_duration_seconds_count") == 1

        # The agent's summary of the call.
        note = await world.client.post(
            f"/api/contacts/{contact.reference}/note",
            json={"note": "Grofvuil aangemeld voor dinsdag."},
            headers=agent,
        )
        assert note.status == 200 and (await note.json())["note"].startswith("Grofvuil")
        other = await available_agent(world, "Carla", AFVAL_PHONE_AGENT)
        refused = await world.client.post(
            f"/api/contacts/{contact.reference}/note", json={"note": "x"}, headers=other
        )
        assert refused.status == 403
        closed = await world.client.post(
            f"/api/contacts/{contact.reference}/close",
            json={"outcome": "beantwoord"},
            headers=agent,
        )
        assert closed.status == 200


async def test_hanging_up_while_waiting_is_abandoned(tmp_path: Path) -> None:
    async with twilio_world(tmp_path) as world:
        placed = await call(world, "2")
        contact = await contact_of(world, placed)
        world.clock.advance(41)
        await placed.leave_queue("hangup", 41)
        await placed.status("completed", duration=50)
        await placed.leave_queue("hangup", 41)  # repeated: counted once
        assert world.fake.deleted_queues[0] == placed.queue_sid  # Twilio keeps queues otherwise
        closed = await world.services.store.get(contact.id or 0)
        assert closed is not None
        assert (closed.status, closed.outcome) == (Status.closed, "abandoned")
        assert await world.services.backend.get(contact.id or 0) is None
        events = await world.services.store.events(contact.id or 0)
        assert any("hing op na 41 s" in (e.reason or "") for e in events)
        assert await metric(world, 'kcc_phone_calls_total{outcome="abandoned"}') == 1

        # Offered to an agent who had not bridged yet: the agent gets the capacity back.
        second = await call(world, "2", caller="+31611111111")
        agent = await available_agent(world, "Bram", AFVAL_PHONE_AGENT)
        await world.services.router.idle()
        offered = await contact_of(world, second)
        assert (await world.services.store.get(offered.id or 0)).status == Status.assigned  # type: ignore[union-attr]
        ringing = await world.client.post(
            f"/api/contacts/{offered.reference}/call", json={"phone": AGENT_PHONE}, headers=agent
        )
        assert ringing.status == 201
        await second.leave_queue("hangup", 8)
        me = await (await world.client.get("/api/agents/me", headers=agent)).json()
        assert me["load"].get("phone", 0) == 0
        # The agent picks up after the caller hung up: told so, not left in an empty queue.
        late = await world.fake.answer_call(world.fake.calls[-1]["Sid"])
        assert "niet meer beschikbaar" in said(late.twiml())
        assert late.twiml().find("Dial") is None
        # Only the status callback arrives (no Enqueue action): still abandoned.
        third = await call(world, "2", caller="+31622222222")
        world.clock.advance(20)
        await third.status("completed", duration=25)
        third_contact = await world.services.store.get((await contact_of(world, third)).id or 0)
        assert third_contact is not None and third_contact.outcome == "abandoned"


async def test_phone_norms_for_team_leads(tmp_path: Path) -> None:
    async with twilio_world(tmp_path) as world:
        quick, slow, gone, patient, waiting = [
            await call(world, "2", caller=f"+3161111111{i}") for i in range(5)
        ]
        await quick.post("/channels/phone/bridged", QueueTime="12")
        await slow.post("/channels/phone/bridged", QueueTime="45")
        # Enqueue's action may also point at the status URL: the same answer there.
        await gone.post("/channels/phone/status", QueueResult="hangup", QueueTime="41")
        await patient.press(await patient.wait(35), "1", 35)
        assert waiting.queue is not None

        lead = bearer(await token_for(world.services, "Lotte", role="teamlead"))
        norms = await (await world.client.get("/api/phone/norms?hours=1", headers=lead)).json()
        assert norms["answer_within_seconds"] == 30
        assert (norms["calls"], norms["answered"]) == (4, 2)  # the one waiting: not yet
        assert (norms["answered_within_threshold"], norms["abandoned"]) == (1, 1)
        assert norms["callback_requests"] == 1
        assert norms["service_level"] == 0.333  # 1 of 2 answered + 1 abandoned
        assert norms["abandoned_rate"] == 0.25  # 1 of 4 that left the line
        assert norms["average_wait_answered_seconds"] == 28.5
        assert norms["average_wait_abandoned_seconds"] == 41
        agent = await available_agent(world, "Bram", AFVAL_PHONE_AGENT)
        assert (await world.client.get("/api/phone/norms", headers=agent)).status == 403
        bad = await world.client.get("/api/phone/norms?hours=-1", headers=lead)
        assert bad.status == 400
        world.clock.advance(timedelta(hours=2))
        later = await (await world.client.get("/api/phone/norms?hours=1", headers=lead)).json()
        assert later["calls"] == 0 and later["service_level"] is None


async def test_webhooks_are_signed_and_need_credentials(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with twilio_world(tmp_path) as world:
        params = {"CallSid": new_sid("CA"), "From": CALLER, "To": PHONE_NUMBER, "Digits": "2"}
        forged = await world.hooks.post("/channels/phone/voice", params, signature="Zm9yZ2Vk")
        assert forged.status == 403
        for path in ("wait", "callback", "enqueued", "bridged", "status", "agent"):
            answer = await world.hooks.post(f"/channels/phone/{path}", params, signature="")
            assert answer.status == 403, path
        assert await world.services.store.queued_count() == 0
        no_sid = await world.hooks.post("/channels/phone/voice", {"From": CALLER})
        assert no_sid.status == 400
        # A withheld number is a call like any other (nobody to call back).
        anonymous = await world.hooks.post(
            "/channels/phone/voice", {**params, "CallSid": new_sid("CA"), "From": "anonymous"}
        )
        assert anonymous.status == 200 and anonymous.twiml().find("Enqueue") is not None

    caplog.set_level(logging.WARNING)
    async with twilio_world(tmp_path / "x", secrets={"TWILIO_ACCOUNT_SID": None}) as world:
        answer = await world.hooks.post("/channels/phone/voice", params)
        assert answer.status == 403
        refused = [r.getMessage() for r in caplog.records if "webhooks refused" in r.getMessage()]
        assert refused == ["phone: webhooks refused: TWILIO_ACCOUNT_SID not configured"]
        assert "phone" not in world.services.outbox.channels


async def test_text_replies_on_a_phone_contact(tmp_path: Path) -> None:
    async with twilio_world(tmp_path) as world:
        placed = await call(world, "2")
        reference = (await contact_of(world, placed)).reference
        agent = await available_agent(world, "Bram", AFVAL_PHONE_AGENT)
        await world.services.router.idle()
        await world.client.post("/api/agents/me/next", headers=agent)
        refused = await world.client.post(
            f"/api/contacts/{reference}/reply", json={"text": "Zie onze website"}, headers=agent
        )
        assert refused.status == 422
        assert "TWILIO_SMS_FROM" in (await refused.json())["error"]

    async with twilio_world(tmp_path / "sms", secrets={"TWILIO_SMS_FROM": "+3150000002"}) as world:
        placed = await call(world, "2")
        reference = (await contact_of(world, placed)).reference
        agent = await available_agent(world, "Bram", AFVAL_PHONE_AGENT)
        await world.services.router.idle()
        await world.client.post("/api/agents/me/next", headers=agent)
        sent = await world.client.post(
            f"/api/contacts/{reference}/reply", json={"text": "Zie onze website"}, headers=agent
        )
        assert sent.status == 201
        [sms] = world.fake.messages
        assert (sms.to, sms.from_, sms.body) == (CALLER, "+3150000002", "Zie onze website")
        await world.fake.send_status(sms.sid, "delivered")
        contact = await world.services.store.by_reference(reference)
        assert contact is not None
        messages = await world.services.store.messages(contact.id or 0)
        assert messages[-1].delivery_status == "delivered"


async def test_the_agent_calls_back_a_callback_request(tmp_path: Path) -> None:
    async with twilio_world(tmp_path) as world:
        placed = await call(world, "2")
        offer = await placed.wait(31)
        await placed.press(offer, "1", 31)
        agent = await available_agent(world, "Bram", AFVAL_PHONE_AGENT)
        taken = await (await world.client.post("/api/agents/me/next", headers=agent)).json()
        assert taken["body"].startswith("Terugbelverzoek")
        reference = taken["reference"]
        started = await world.client.post(
            f"/api/contacts/{reference}/call", json={"phone": AGENT_PHONE}, headers=agent
        )
        assert started.status == 201 and (await started.json())["callback"] is True
        twiml = (await world.fake.answer_call(world.fake.calls[-1]["Sid"])).twiml()
        number = twiml.find("Dial/Number")
        assert number is not None and number.text == CALLER
        assert twiml.find("Dial") is not None
        assert twiml.find("Dial").get("callerId") == PHONE_NUMBER  # type: ignore[union-attr]
        # The resident picks up: Twilio reports the answered leg; the request is answered.
        leg = Call(world.hooks, new_sid("CA"), PHONE_NUMBER, CALLER)
        await leg.post(number.get("statusCallback") or "", CallStatus="in-progress")
        contact = await world.services.store.by_reference(reference)
        assert contact is not None and contact.status == Status.answered
        await leg.post(
            number.get("statusCallback") or "", CallStatus="completed", CallDuration="64"
        )
        events = await world.services.store.events(contact.id or 0)
        assert any("duur 64 s" in (e.reason or "") for e in events)


@pytest.mark.postgres
@pytest.mark.redis
async def test_phone_flow_on_postgres_and_redis(
    tmp_path: Path, fresh_postgres: str, fresh_redis: str
) -> None:
    async with twilio_world(tmp_path, database_url=fresh_postgres, redis_url=fresh_redis) as world:
        first = await call(world, "2")
        second = await call(world, "2", caller="+31611111111")
        assert "Er is 1 beller voor u" in said((await second.wait(31)).twiml())
        offer = await second.wait(31)
        await second.press(offer, "1", 31)
        await first.leave_queue("hangup", 45)
        closed = await world.services.store.get((await contact_of(world, first)).id or 0)
        assert closed is not None and closed.outcome == "abandoned"
        callback = await world.services.store.find_message("phone", f"callback:{second.call_sid}")
        assert callback is not None and callback[0].answer_due is not None
        assert await world.services.store.queued_count() == 1
        assert await world.services.backend.ahead(callback[0].id or 0) == 0


async def test_without_a_public_url_the_agent_call_carries_its_twiml(tmp_path: Path) -> None:
    async with twilio_world(tmp_path, public_url=None) as world:
        placed = await call(world, "2")
        agent = await available_agent(world, "Bram", AFVAL_PHONE_AGENT)
        await world.services.router.idle()
        reference = (await (await world.client.post("/api/agents/me/next", headers=agent)).json())[
            "reference"
        ]
        started = await world.client.post(
            f"/api/contacts/{reference}/call", json={"phone": AGENT_PHONE}, headers=agent
        )
        assert started.status == 201
        [agent_call] = world.fake.calls
        assert "Url" not in agent_call
        assert ET.fromstring(agent_call["Twiml"]).findtext("Dial/Queue") == placed.queue
        # Bad input on the API: not the agent's contact, not a phone number.
        other = await available_agent(world, "Carla", AFVAL_PHONE_AGENT)
        refused = await world.client.post(
            f"/api/contacts/{reference}/call", json={"phone": AGENT_PHONE}, headers=other
        )
        assert refused.status in (403, 404)
        bad = await world.client.post(
            f"/api/contacts/{reference}/call", json={"phone": "bel mij"}, headers=agent
        )
        assert bad.status == 422
