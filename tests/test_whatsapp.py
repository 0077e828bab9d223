"""WhatsApp through Twilio, offline against the Twilio sandbox on loopback: the signed inbound
webhook, media, replies through the real twilio SDK, status callbacks and the 24-hour window."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from adapters.outbound import RETRY_AFTER as OUTBOX_BACKOFF
from adapters.outbound import Purpose
from adapters.twilio_common import TwilioAccount, make_client
from contacts.models import Status
from sandbox.twilio import Failure, FakeTwilio, new_sid, send_whatsapp
from tests.twilio_helpers import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_URL,
    WHATSAPP_FROM,
    TwilioWorld,
    available_agent,
    twilio_world,
)

RESIDENT = "+31612345678"
QUESTION = "Wanneer wordt het grofvuil opgehaald in de Oosterpoort?"
AFVAL_AGENT = "afval,nl,chat"


async def whatsapp(world: TwilioWorld, text: str = QUESTION, **kwargs: object) -> str:
    return await send_whatsapp(
        world.service_url,
        ACCOUNT_SID,
        AUTH_TOKEN,
        from_number=str(kwargs.pop("from_number", RESIDENT)),
        text=text,
        public_url=world.hooks.public_url,
        **kwargs,  # type: ignore[arg-type]
    )


def inbound_params(text: str = QUESTION, sid: str | None = None) -> dict[str, str]:
    sid = sid or new_sid("SM")
    return {
        "MessageSid": sid,
        "From": f"whatsapp:{RESIDENT}",
        "To": f"whatsapp:{WHATSAPP_FROM}",
        "Body": text,
        "NumMedia": "0",
        "ProfileName": "Piet",
        "WaId": RESIDENT.lstrip("+"),
    }


async def contact_count(world: TwilioWorld) -> int:
    return await world.services.store.queued_count()


async def test_message_to_agent_to_reply_to_delivery(tmp_path: Path) -> None:
    async with twilio_world(tmp_path) as world:
        sid = await whatsapp(world, profile_name="Piet de Vries")
        found = await world.services.store.find_message("whatsapp", sid)
        assert found is not None
        contact, _ = found
        assert contact.channel == "whatsapp" and contact.status == Status.queued
        assert contact.topic.startswith("grofvuil") or "afval" in contact.skills
        resident = await world.services.store.resident(contact.resident_id)
        assert resident is not None
        assert (resident.phone, resident.name) == (RESIDENT, "Piet de Vries")

        agent = await available_agent(world, "Anna", AFVAL_AGENT)
        await world.services.router.idle()
        taken = await world.client.post("/api/agents/me/next", headers=agent)
        assert taken.status == 200
        view = await taken.json()
        assert view["reference"] == contact.reference
        assert view["messages"][0]["body"] == QUESTION

        answer = await world.client.post(
            f"/api/contacts/{contact.reference}/reply",
            json={"text": "Het grofvuil wordt op dinsdag opgehaald. Groet, Anna"},
            headers=agent,
        )
        assert answer.status == 201, await answer.text()
        assert (await answer.json())["status"] == Status.answered

        [sent] = world.fake.messages
        assert sent.to == f"whatsapp:{RESIDENT}"
        assert sent.from_ == f"whatsapp:{WHATSAPP_FROM}"
        assert sent.body == "Het grofvuil wordt op dinsdag opgehaald. Groet, Anna"
        assert sent.params["StatusCallback"] == f"{PUBLIC_URL}/channels/whatsapp/status"
        assert "ContentSid" not in sent.params

        async def status() -> str:
            messages = await world.services.store.messages(contact.id or 0)
            return messages[-1].delivery_status

        assert await status() == "sent"
        assert (await world.fake.send_status(sent.sid, "delivered")).status == 200
        assert await status() == "delivered"
        assert (await world.fake.send_status(sent.sid, "read")).status == 200
        assert await status() == "read"
        # Late, out of order, and again: a read message stays read.
        assert (await world.fake.send_status(sent.sid, "sent")).status == 200
        assert (await world.fake.send_status(sent.sid, "delivered")).status == 200
        assert await status() == "read"


async def test_follow_up_joins_the_open_contact_and_retries_store_once(tmp_path: Path) -> None:
    async with twilio_world(tmp_path) as world:
        first = await whatsapp(world, profile_name="Piet")
        again = await whatsapp(world, message_sid=first)  # Twilio retried the webhook
        assert again == first
        second = await whatsapp(world, "En kan ik ook een matras aanbieden?")
        store = world.services.store
        one = await store.find_message("whatsapp", first)
        two = await store.find_message("whatsapp", second)
        assert one is not None and two is not None
        assert one[0].id == two[0].id  # the follow-up joined the contact
        messages = await store.messages(one[0].id or 0)
        assert [m.channel_message_id for m in messages] == [first, second]
        events = [e.type for e in await store.events(one[0].id or 0)]
        assert events.count("follow_up") == 1
        assert await contact_count(world) == 1
        # Another number is another resident and another contact.
        await whatsapp(world, "Mijn container is kapot", from_number="+31687654321")
        assert await contact_count(world) == 2


async def test_concurrent_retries_store_once_and_a_closed_contact_starts_anew(
    tmp_path: Path,
) -> None:
    async with twilio_world(tmp_path) as world:
        sid = new_sid("SM")
        photo = world.fake.add_media(b"\x89PNG" + b"x" * 100, "image/png")
        sids = await asyncio.gather(
            *(whatsapp(world, message_sid=sid, media=[(photo, "image/png")]) for _ in range(4))
        )
        assert set(sids) == {sid}
        found = await world.services.store.find_message("whatsapp", sid)
        assert found is not None
        assert len(await world.services.store.messages(found[0].id or 0)) == 1
        assert len(await world.services.store.attachments(found[0].id or 0)) == 1
        assert await contact_count(world) == 1

        agent = await available_agent(world, "Anna", AFVAL_AGENT)
        await world.services.router.idle()
        reference = (await (await world.client.post("/api/agents/me/next", headers=agent)).json())[
            "reference"
        ]
        closed = await world.client.post(
            f"/api/contacts/{reference}/close", json={"outcome": "beantwoord"}, headers=agent
        )
        assert closed.status == 200
        later = await whatsapp(world, "Nog een vraag: wanneer is het oud papier?")
        again = await world.services.store.find_message("whatsapp", later)
        assert again is not None and again[0].reference != reference
        assert again[0].resident_id == found[0].resident_id


async def test_forged_or_missing_signature_stores_nothing(tmp_path: Path) -> None:
    async with twilio_world(tmp_path) as world:
        params = inbound_params()
        forged = await world.hooks.post("/channels/whatsapp", params, signature="Zm9yZ2Vk")
        assert forged.status == 403
        missing = await world.hooks.post("/channels/whatsapp", params, signature="")
        assert missing.status == 403
        # Signed for other content: the body was changed on the way.
        signature = world.hooks.validator.compute_signature(
            PUBLIC_URL + "/channels/whatsapp", {**params, "AccountSid": ACCOUNT_SID}
        )
        tampered = await world.hooks.post(
            "/channels/whatsapp", {**params, "Body": "iets anders"}, signature=signature
        )
        assert tampered.status == 403
        other_account = await world.hooks.post(
            "/channels/whatsapp", {**params, "AccountSid": "AC" + "9" * 32}
        )
        assert other_account.status == 403
        assert await world.services.store.find_message("whatsapp", params["MessageSid"]) is None
        assert await contact_count(world) == 0
        # The status callback is protected the same way.
        status = await world.hooks.post(
            "/channels/whatsapp/status",
            {"MessageSid": "SMx", "MessageStatus": "read"},
            signature="Zm9yZ2Vk",
        )
        assert status.status == 403


async def test_missing_credentials_refuse_webhooks_and_say_why_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with twilio_world(tmp_path, secrets={"TWILIO_AUTH_TOKEN": None}) as world:
        for _ in range(3):
            answer = await world.hooks.post("/channels/whatsapp", inbound_params())
            assert answer.status == 403
        assert await contact_count(world) == 0
        reasons = [r.getMessage() for r in caplog.records if "TWILIO_AUTH_TOKEN" in r.getMessage()]
        assert len([r for r in reasons if "webhooks refused" in r]) == 1
        assert "whatsapp" not in world.services.outbox.channels


async def test_signature_is_checked_against_the_public_url_behind_a_proxy(
    tmp_path: Path,
) -> None:
    async with twilio_world(tmp_path, public_url=PUBLIC_URL) as world:
        params = {**inbound_params(), "AccountSid": ACCOUNT_SID}
        own_url = world.service_url + "/channels/whatsapp"
        # Signed over the address we listen on, not the one Twilio was given: refused.
        signed_locally = world.hooks.validator.compute_signature(own_url, params)
        refused = await world.hooks.post("/channels/whatsapp", params, signature=signed_locally)
        assert refused.status == 403
        accepted = await world.hooks.post("/channels/whatsapp", params)
        assert accepted.status == 200
        assert accepted.content_type == "text/xml"
        assert "<Response" in accepted.text

    async with twilio_world(tmp_path / "direct", public_url=None) as world:
        # No KCC_PUBLIC_URL: the request's own URL is what Twilio signed.
        assert (await world.hooks.post("/channels/whatsapp", inbound_params())).status == 200


async def test_bad_input_gets_clear_answers_never_a_500(tmp_path: Path) -> None:
    async with twilio_world(tmp_path) as world:
        client = world.client
        as_json = await client.post("/channels/whatsapp", json=inbound_params())
        assert as_json.status == 415
        no_sid = await world.hooks.post(
            "/channels/whatsapp", {k: v for k, v in inbound_params().items() if k != "MessageSid"}
        )
        assert no_sid.status == 400 and "MessageSid" in no_sid.text
        bad_count = await world.hooks.post(
            "/channels/whatsapp", {**inbound_params(), "NumMedia": "lots"}
        )
        assert bad_count.status == 400
        huge = await client.post(
            "/channels/whatsapp",
            data=b"Body=" + b"x" * (2 * 1024 * 1024),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert huge.status == 413
        not_utf8 = await client.post(
            "/channels/whatsapp",
            data=b"Body=%FF%FE",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert not_utf8.status == 403  # unsigned: refused before anything else is said
        # Strange unicode is a message like any other.
        odd = "Hoi 👋🏽 \u202egnilpmas\u202c \x00 ﷽ e\u0301"
        sid = await whatsapp(world, odd)
        found = await world.services.store.find_message("whatsapp", sid)
        assert found is not None and "👋🏽" in found[1].body and "\x00" not in found[1].body
        # An empty message (no text, no media) is kept for a team lead, not made a contact.
        empty_sid = await whatsapp(world, "")
        assert await world.services.store.find_message("whatsapp", empty_sid) is None
        kept = await world.services.quarantine.by_provider_id("whatsapp", empty_sid)
        assert kept is not None and "leeg" in kept.reason
        # A sender that is no phone number: quarantined with the reason, Twilio answered.
        bad_sender = await world.hooks.post(
            "/channels/whatsapp", {**inbound_params(), "From": "whatsapp:niet-een-nummer"}
        )
        assert bad_sender.status == 200
        # A shared location has no body but is a message.
        located = await whatsapp(
            world, "", extra={"Latitude": "53.2194", "Longitude": "6.5665", "Label": "Grote Markt"}
        )
        found = await world.services.store.find_message("whatsapp", located)
        assert found is not None and "Grote Markt" in found[1].body


async def test_media_are_downloaded_with_limits_and_never_silently_dropped(
    tmp_path: Path,
) -> None:
    async with twilio_world(tmp_path) as world:
        fake = world.fake
        photo = b"\x89PNG\r\n\x1a\n" + b"p" * 1000
        too_big = b"%PDF-1.7" + b"x" * (5 * 1024 * 1024 + 1)
        media = [
            (fake.add_media(photo, "image/png"), "image/png"),
            (fake.add_media(b"video", "video/mp4"), "video/mp4"),
            (fake.add_media(too_big, "application/pdf"), "application/pdf"),
        ]
        sid = await whatsapp(world, "Kijk, de container is kapot", media=media)
        found = await world.services.store.find_message("whatsapp", sid)
        assert found is not None
        contact = found[0]
        [attachment] = await world.services.store.attachments(contact.id or 0)
        assert attachment.content_type == "image/png" and attachment.size == len(photo)
        assert attachment.filename.endswith(".png")
        assert await world.services.attachments.read(attachment.storage_key) == photo
        assert len(fake.media_fetches) == 2  # the video was never fetched
        notes = [e for e in await world.services.store.events(contact.id or 0) if e.type == "note"]
        assert sorted(str(e.data["why"]) for e in notes) == ["refused_type", "too_large"]
        assert "groter dan 5 MB" in found[1].body and "video" in found[1].body

        # A retry of the same message fetches nothing again and adds nothing.
        await whatsapp(world, "Kijk, de container is kapot", media=media, message_sid=sid)
        assert len(fake.media_fetches) == 2

        # A MediaUrl outside Twilio never gets the account's credentials.
        elsewhere = await whatsapp(
            world,
            "Zie bijlage",
            from_number="+31622222222",
            media=[("http://169.254.169.254/latest/meta-data", "image/png")],
        )
        found = await world.services.store.find_message("whatsapp", elsewhere)
        assert found is not None and "onbekende bron" in found[1].body

        # Twilio's media store is down: the text still becomes a contact, the agent is told.
        fake.media_unavailable = True
        lost = await whatsapp(
            world,
            "",
            from_number="+31611111111",
            media=[(fake.add_media(photo, "image/jpeg"), "image/jpeg")],
        )
        found = await world.services.store.find_message("whatsapp", lost)
        assert found is not None
        assert "kon niet worden opgehaald" in found[1].body
        assert await world.services.store.attachments(found[0].id or 0) == []


async def test_the_24_hour_window_and_templates(tmp_path: Path) -> None:
    async with twilio_world(tmp_path) as world:
        sid = await whatsapp(world)
        agent = await available_agent(world, "Anna", AFVAL_AGENT)
        await world.services.router.idle()
        taken = await (await world.client.post("/api/agents/me/next", headers=agent)).json()
        reference = taken["reference"]

        world.clock.advance(timedelta(hours=25))
        refused = await world.client.post(
            f"/api/contacts/{reference}/reply",
            json={"text": "Sorry voor de late reactie"},
            headers=agent,
        )
        assert refused.status == 422
        body = await refused.json()
        assert "24-uursvenster" in body["error"] and "ander kanaal" in body["error"]
        assert body["message"]["delivery_status"] == "failed"
        assert world.fake.messages == []
        contact = await world.services.store.by_reference(reference)
        assert contact is not None and contact.status == Status.assigned  # not answered
        view = await (await world.client.get(f"/api/contacts/{reference}", headers=agent)).json()
        assert view["messages"][-1]["delivery_status"] == "failed"

        # An approved template for the purpose goes out, with its variables.
        sent = await world.services.outbox.send(
            contact, "Ontvangen", purpose=Purpose.acknowledgement
        )
        assert sent.delivery_status == "sent"
        [template] = world.fake.messages
        assert template.params["ContentSid"] == "HX00000000000000000000000000000001"
        assert json.loads(template.params["ContentVariables"]) == {"1": reference}
        assert "Body" not in template.params

        # The resident writes again: the window opens and free text may go out.
        await whatsapp(world, "Hallo, nog nieuws?")
        world.clock.advance(timedelta(minutes=5))
        answered = await world.client.post(
            f"/api/contacts/{reference}/reply", json={"text": "Ja: dinsdag."}, headers=agent
        )
        assert answered.status == 201
        assert world.fake.messages[-1].body == "Ja: dinsdag."
        assert sid


async def test_provider_refusal_fails_and_outage_keeps_the_reply_queued(tmp_path: Path) -> None:
    async with twilio_world(tmp_path) as world:
        await whatsapp(world)
        agent = await available_agent(world, "Anna", AFVAL_AGENT)
        await world.services.router.idle()
        reference = (await (await world.client.post("/api/agents/me/next", headers=agent)).json())[
            "reference"
        ]
        world.fake.failures.append(Failure(400, 63003, "Channel could not find To address"))
        refused = await world.client.post(
            f"/api/contacts/{reference}/reply", json={"text": "Antwoord"}, headers=agent
        )
        assert refused.status == 422
        assert "63003" in (await refused.json())["error"]

        world.fake.failures.append(Failure(503, 20500, "Service unavailable"))
        waiting = await world.client.post(
            f"/api/contacts/{reference}/reply", json={"text": "Antwoord"}, headers=agent
        )
        assert waiting.status == 201
        assert (await waiting.json())["message"]["delivery_status"] == "queued"
        world.services.clock.advance(OUTBOX_BACKOFF)  # type: ignore[attr-defined]
        assert await world.services.outbox.retry_unsent() == 1
        assert [m.body for m in world.fake.messages] == ["Antwoord"]

        # A failed delivery reported later is recorded with its code and shows in the history.
        sent = world.fake.messages[-1]
        await world.fake.send_status(sent.sid, "undelivered", error_code="63016")
        contact = await world.services.store.by_reference(reference)
        assert contact is not None
        messages = await world.services.store.messages(contact.id or 0)
        assert messages[-1].delivery_status == "undelivered"
        assert "63016" in (messages[-1].delivery_detail or "")
        events = await world.services.store.events(contact.id or 0)
        assert any(e.type == "delivery" for e in events)


@pytest.mark.postgres
@pytest.mark.redis
async def test_whatsapp_flow_on_postgres_and_redis(
    tmp_path: Path, fresh_postgres: str, fresh_redis: str
) -> None:
    async with twilio_world(tmp_path, database_url=fresh_postgres, redis_url=fresh_redis) as world:
        sid = await whatsapp(world, "Hoi \x00 wanneer komt het grofvuil?")
        assert (await whatsapp(world, message_sid=sid)) == sid
        agent = await available_agent(world, "Anna", AFVAL_AGENT)
        await world.services.router.idle()
        taken = await world.client.post("/api/agents/me/next", headers=agent)
        reference = (await taken.json())["reference"]
        answer = await world.client.post(
            f"/api/contacts/{reference}/reply", json={"text": "Dinsdag."}, headers=agent
        )
        assert answer.status == 201
        [sent] = world.fake.messages
        await world.fake.send_status(sent.sid, "read")
        await world.fake.send_status(sent.sid, "delivered")
        contact = await world.services.store.by_reference(reference)
        assert contact is not None
        messages = await world.services.store.messages(contact.id or 0)
        assert [m.delivery_status for m in messages] == ["received", "read"]


async def test_the_client_reaches_twilio_in_the_configured_region_or_the_sandbox() -> None:
    client, http = make_client(TwilioAccount(ACCOUNT_SID, AUTH_TOKEN, "", "dublin", "ie1"))
    try:
        assert client.get_hostname("https://api.twilio.com/2010-04-01/Accounts.json") == (
            "https://api.dublin.ie1.twilio.com/2010-04-01/Accounts.json"
        )
    finally:
        await http.close()
    fake = FakeTwilio(ACCOUNT_SID, AUTH_TOKEN)
    await fake.start()
    # The regional host is sent to the stand-in as well.
    client, http = make_client(TwilioAccount(ACCOUNT_SID, AUTH_TOKEN, fake.base_url, "", "ie1"))
    try:
        sent = await client.messages.create_async(
            to="whatsapp:+31612345678", from_="whatsapp:+3150000000", body="Test"
        )
        assert sent.sid == fake.messages[0].sid and sent.sid.startswith("SM")
    finally:
        await http.close()
        await fake.stop()
