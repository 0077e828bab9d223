"""SLA timers with the injectable clock: acknowledgement on the right channel, warnings,
verdaging before the deadline, breaches when nothing happens, pauses while waiting on the
resident, and timers that survive a restart."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from adapters.outbound import Purpose
from contacts.models import Status
from kcc.clock import ManualClock
from kcc.services import Services
from tests.helpers import bearer, running_service, settings_for, token_for
from tests.sla_helpers import (
    BEZWAAR,
    ENGLISH,
    KLACHT,
    MONDAY,
    clock_of,
    event_types,
    fresh,
    local,
    receive,
    record,
)

ANSWER_DUE = local(2027, 1, 5, 0)  # six weeks from Monday 23 November end with 4 January


async def test_acknowledgement_goes_out_on_the_contacts_own_channel(tmp_path: Path) -> None:
    async with running_service(tmp_path, clock=ManualClock(MONDAY)) as (services, _client):
        sent = record(services, "email", "post", "whatsapp")
        email = await receive(services)
        webform = await receive(services, channel="webform", email="anna@example.nl")
        letter = await receive(
            services, channel="post", email=None, postal_address="Grote Markt 1, Groningen"
        )
        chat = await receive(services, channel="whatsapp", email=None, phone="+31612345678")
        phone = await receive(services, channel="phone", email=None, phone="+31612345679")
        assert await services.sla.sweep() >= 3

        by_reference = {m.reference: m for ms in sent.values() for m in ms.sent}
        # E-mail and the web form's way back (e-mail); the letter by post; none for chat/phone.
        assert [m.reference for m in sent["email"].sent] == [email.reference, webform.reference]
        assert [m.reference for m in sent["post"].sent] == [letter.reference]
        assert sent["whatsapp"].sent == [] and phone.reference not in by_reference
        assert chat.reference not in by_reference
        ack = sent["email"].sent[0]
        assert ack.purpose == Purpose.acknowledgement
        assert ack.variables["reference"] == email.reference
        assert ack.variables["answer_due"] == "maandag 4 januari 2027"
        assert email.reference in ack.text and "maandag 4 januari 2027" in ack.text
        assert "Wat gebeurt er nu?" in ack.text and "14 050" in ack.text
        for contact in (email, webform, letter):
            updated = await fresh(services, contact)
            assert updated.acked_at == MONDAY
            assert "sla_acknowledgement" in await event_types(services, contact)
        assert (await fresh(services, chat)).acked_at is None
        # A second sweep sends nothing again.
        await services.sla.sweep()
        assert sum(len(s.sent) for s in sent.values()) == 3


async def test_acknowledgement_in_the_residents_language_and_for_klacht(tmp_path: Path) -> None:
    async with running_service(tmp_path, clock=ManualClock(MONDAY)) as (services, _client):
        sent = record(services, "email")
        english = await receive(services, ENGLISH, email="john@example.com")
        klacht = await receive(services, KLACHT, email="kees@example.nl")
        await services.sla.sweep()
        texts = {m.reference: m.text for m in sent["email"].sent}
        assert texts[english.reference].startswith("Beste inwoner")  # plain Dutch first
        assert "Dear resident" in texts[english.reference]
        assert "Monday 4 January 2027" in texts[english.reference]
        assert "klacht" in texts[klacht.reference] and "9:11" in texts[klacht.reference]
        assert (await fresh(services, klacht)).sla_norm == "klacht"


async def test_unsent_acknowledgement_is_a_breach_at_its_deadline(tmp_path: Path) -> None:
    async with running_service(tmp_path, clock=ManualClock(MONDAY)) as (services, client):
        lead = await token_for(services, "Lead", role="teamlead")
        services.outbox.unregister("post")  # the post channel cannot send (yet)
        letter = await receive(
            services, channel="post", email=None, postal_address="Grote Markt 1, Groningen"
        )
        await services.sla.sweep()
        messages = await services.store.messages(letter.id or 0)
        assert messages[-1].purpose == Purpose.acknowledgement
        assert messages[-1].delivery_status == "queued"  # it waits in the outbox
        assert (await fresh(services, letter)).acked_at is None

        # Saturday 28 November runs on to Monday 30 November (Atw): still in time on Monday.
        clock_of(services).set(local(2026, 11, 30, 23, 59))
        await services.sla.sweep()
        assert (await fresh(services, letter)).ack_breached_at is None
        clock_of(services).set(local(2026, 12, 1, 0, 0, 1))
        await services.sla.sweep()
        breached = await fresh(services, letter)
        assert breached.ack_breached_at == local(2026, 12, 1, 0)
        assert breached.sla_state == "breached"
        listed = await (await client.get("/api/sla/at-risk", headers=bearer(lead))).json()
        assert listed["contacts"] == [
            {
                "reference": letter.reference,
                "channel": "post",
                "queue": letter.queue,
                "status": "queued",
                "norm": "post-ack",
                "due": breached.ack_due.isoformat() if breached.ack_due else None,
                "state": "breached",
                "assigned_agent_id": None,
            }
        ]

        # The post channel can send again: the letter goes out, the acknowledgement is recorded.
        post = record(services, "post")["post"]
        await services.outbox.retry_unsent()
        clock_of(services).advance(61)
        await services.sla.sweep()
        assert [m.reference for m in post.sent] == [letter.reference]
        assert (await fresh(services, letter)).acked_at is not None
        assert (await event_types(services, letter)).count("sla_breach") == 1


async def test_warning_raises_priority_and_shows_the_team_lead(tmp_path: Path) -> None:
    async with running_service(tmp_path, clock=ManualClock(MONDAY)) as (services, client):
        record(services, "email")
        lead = await token_for(services, "Lead", role="teamlead")
        contact = await receive(services)
        await services.sla.sweep()
        warn_at = MONDAY + (ANSWER_DUE - MONDAY) * 0.8
        assert (await fresh(services, contact)).at_risk_at == warn_at

        clock_of(services).set(warn_at - timedelta(seconds=1))
        await services.sla.sweep()
        assert "sla_warning" not in await event_types(services, contact)
        clock_of(services).set(warn_at + timedelta(seconds=1))
        await services.sla.sweep()
        await services.router.sweep()
        warned = await fresh(services, contact)
        assert warned.sla_state == "at_risk"
        assert "sla_warning" in await event_types(services, contact)
        assert warned.priority > contact.priority  # the router serves it first now

        listed = await (await client.get("/api/sla/at-risk", headers=bearer(lead))).json()
        assert [(c["reference"], c["state"], c["norm"]) for c in listed["contacts"]] == [
            (contact.reference, "at_risk", "written-answer")
        ]
        metrics = await (await client.get("/metrics")).text()
        assert f'kcc_sla_at_risk{{queue="{contact.queue}"}} 1.0' in metrics
        assert f'kcc_sla_breached{{queue="{contact.queue}"}} 0.0' in metrics
        agent = await token_for(services, "Agent", skills="afval,nl,written")
        assert (await client.get("/api/sla/at-risk", headers=bearer(agent))).status == 403


async def test_breach_is_recorded_when_nothing_happens(tmp_path: Path) -> None:
    async with running_service(tmp_path, clock=ManualClock(MONDAY)) as (services, client):
        record(services, "email")
        lead = await token_for(services, "Lead", role="teamlead")
        contact = await receive(services)
        await services.sla.sweep()
        clock_of(services).set(ANSWER_DUE - timedelta(seconds=1))
        await services.sla.sweep()
        assert (await fresh(services, contact)).answer_breached_at is None
        clock_of(services).set(ANSWER_DUE + timedelta(seconds=2))
        await services.sla.sweep()
        breached = await fresh(services, contact)
        assert breached.answer_breached_at == ANSWER_DUE
        assert breached.sla_state == "breached"
        events = await services.store.events(contact.id or 0)
        breach = [e for e in events if e.type == "sla_breach"]
        assert len(breach) == 1 and breach[0].data["norm"] == "written-answer"

        view = await (
            await client.get(f"/api/contacts/{contact.reference}", headers=bearer(lead))
        ).json()
        assert view["answer_breached_at"] == ANSWER_DUE.isoformat()
        assert view["sla_state"] == "breached"
        listed = await (await client.get("/api/sla/at-risk", headers=bearer(lead))).json()
        assert [(c["reference"], c["state"]) for c in listed["contacts"]] == [
            (contact.reference, "breached")
        ]
        metrics = await (await client.get("/metrics")).text()
        assert f'kcc_sla_breached{{queue="{contact.queue}"}} 1.0' in metrics
        assert 'kcc_sla_timers_fired_total{kind="answer_breach",outcome="breached"} 1.0' in metrics


async def test_answer_in_time_is_no_breach(tmp_path: Path) -> None:
    async with running_service(tmp_path, clock=ManualClock(MONDAY)) as (services, client):
        record(services, "email")
        agent = await token_for(services, "Agent", skills="afval,nl,written")
        contact = await receive(services)
        await services.sla.sweep()
        await client.post(
            "/api/agents/me/status", json={"status": "available"}, headers=bearer(agent)
        )
        await services.router.idle()
        clock_of(services).advance(timedelta(days=10))
        taken = await client.post("/api/agents/me/next", headers=bearer(agent))
        assert (await taken.json())["reference"] == contact.reference
        reply = await client.post(
            f"/api/contacts/{contact.reference}/reply",
            json={"text": "Grofvuil halen wij op afspraak op."},
            headers=bearer(agent),
        )
        assert reply.status == 201
        clock_of(services).set(ANSWER_DUE + timedelta(days=1))
        await services.sla.sweep()
        updated = await fresh(services, contact)
        assert updated.answer_breached_at is None and updated.sla_state is None
        outcomes = {t["kind"]: t["outcome"] for t in await services.sla.db.timers(contact.id or 0)}
        assert outcomes["answer_breach"] == "met" and outcomes["warning"] == "handled"


async def test_extension_notice_goes_out_before_the_deadline(tmp_path: Path) -> None:
    async with running_service(tmp_path, clock=ManualClock(MONDAY)) as (services, client):
        sent = record(services, "email")["email"]
        lead = await token_for(services, "Lead", role="teamlead")
        other = await token_for(services, "Other", skills="afval,nl,written")
        contact = await receive(services)
        await services.sla.sweep()
        path = f"/api/contacts/{contact.reference}/extension"
        body = {"reason": "Wij wachten op informatie van de vakafdeling.", "new_due": "2027-01-18"}

        # Only the assigned agent or a team lead; a clear 422 for bad input.
        assert (await client.post(path, json=body, headers=bearer(other))).status == 403
        bad = await client.post(path, json={"reason": "x"}, headers=bearer(lead))
        assert bad.status == 422
        earlier = await client.post(
            path, json={**body, "new_due": "2026-12-01"}, headers=bearer(lead)
        )
        assert earlier.status == 422

        clock_of(services).set(local(2027, 1, 4, 15))  # the last day of the term
        response = await client.post(path, json=body, headers=bearer(lead))
        assert response.status == 201, await response.text()
        extended = await fresh(services, contact)
        assert extended.answer_due == local(2027, 1, 19, 0)
        assert extended.extended_at == local(2027, 1, 4, 15)
        notice = sent.sent[-1]
        assert notice.purpose == Purpose.extension and notice.channel == "email"
        assert notice.variables["new_due"] == "maandag 18 januari 2027"
        assert notice.variables["answer_due"] == "maandag 4 januari 2027"
        assert "vakafdeling" in notice.text and "maandag 18 januari 2027" in notice.text
        types = await event_types(services, contact)
        assert "verdaging" in types and "verdaging_bericht" in types

        # The old deadline passes without a breach; the new one does not.
        clock_of(services).set(ANSWER_DUE + timedelta(hours=1))
        await services.sla.sweep()
        assert (await fresh(services, contact)).answer_breached_at is None
        clock_of(services).set(local(2027, 1, 19, 0, 0, 5))
        await services.sla.sweep()
        assert (await fresh(services, contact)).answer_breached_at == local(2027, 1, 19, 0)
        # Too late now: a verdaging after the deadline is refused (that is a breach).
        late = await client.post(path, json={**body, "new_due": "2027-02-01"}, headers=bearer(lead))
        assert late.status == 409
        assert len([m for m in sent.sent if m.purpose == Purpose.extension]) == 1


async def test_klacht_extension_is_limited_to_four_weeks(tmp_path: Path) -> None:
    async with running_service(tmp_path, clock=ManualClock(MONDAY)) as (services, client):
        sent = record(services, "email")["email"]
        lead = await token_for(services, "Lead", role="teamlead")
        klacht = await receive(services, KLACHT, email="kees@example.nl")
        assert (await fresh(services, klacht)).answer_due == ANSWER_DUE
        path = f"/api/contacts/{klacht.reference}/extension"
        too_far = await client.post(
            path, json={"reason": "Hoorzitting", "new_due": "2027-02-02"}, headers=bearer(lead)
        )
        assert too_far.status == 422
        assert "2027-02-01" in (await too_far.json())["error"]
        ok = await client.post(
            path, json={"reason": "Hoorzitting", "new_due": "2027-02-01"}, headers=bearer(lead)
        )
        assert ok.status == 201
        notice = [m for m in sent.sent if m.purpose == Purpose.extension]
        assert len(notice) == 1 and "9:11" in notice[0].text


async def test_waiting_on_the_resident_pauses_the_clock_only_where_allowed(
    tmp_path: Path,
) -> None:
    async with running_service(tmp_path, clock=ManualClock(MONDAY)) as (services, client):
        record(services, "email")
        agent = await token_for(services, "Agent", skills="afval,belastingen,klachten,nl,written")
        question = await receive(services, thread_key="mail:vraag-1")
        klacht = await receive(services, KLACHT, email="kees@example.nl", thread_key="mail:k-1")
        await client.post(
            "/api/agents/me/status", json={"status": "available"}, headers=bearer(agent)
        )
        await services.router.idle()
        for contact in (question, klacht):
            await client.post("/api/agents/me/next", headers=bearer(agent))
            wait = await client.post(
                f"/api/contacts/{contact.reference}/wait",
                json={"reason": "Welk adres bedoelt u?"},
                headers=bearer(agent),
            )
            assert wait.status == 200, await wait.text()
        clock_of(services).advance(timedelta(days=10))
        for who, thread in (("piet@example.nl", "mail:vraag-1"), ("kees@example.nl", "mail:k-1")):
            await receive(services, "Het gaat om Grote Markt 1.", email=who, thread_key=thread)
        assert (await fresh(services, question)).status != Status.waiting_on_resident

        clock_of(services).set(ANSWER_DUE + timedelta(seconds=5))
        await services.sla.sweep()
        paused = await fresh(services, question)
        # Ten days waited: Monday 4 January + 10 days = Thursday 14 January.
        assert paused.answer_breached_at is None
        assert paused.answer_due == local(2027, 1, 15, 0)
        assert paused.sla_paused_seconds == 10 * 86400
        event = [e for e in await services.store.events(question.id or 0) if e.type == "sla_paused"]
        assert len(event) == 1 and "Welk adres bedoelt u?" in (event[0].reason or "")
        # A klacht's legal term knows no such pause (config: pause_on_resident = false).
        assert (await fresh(services, klacht)).answer_breached_at == ANSWER_DUE

        clock_of(services).set(local(2027, 1, 15, 0, 0, 5))
        await services.sla.sweep()
        assert (await fresh(services, question)).answer_breached_at == local(2027, 1, 15, 0)


async def test_timers_survive_a_restart(tmp_path: Path) -> None:
    clock = ManualClock(MONDAY)
    first = await Services.build(settings_for(tmp_path), clock)
    contact = await receive(first, BEZWAAR, email="bea@example.nl")
    await first.close()

    again = await Services.build(settings_for(tmp_path), clock)
    try:
        sent = record(again, "email")["email"]
        assert await again.sla.sweep() == 1
        assert [m.reference for m in sent.sent] == [contact.reference]
        assert "bezwaarschrift" in sent.sent[0].text
        assert (await fresh(again, contact)).sla_norm == "bezwaar"
    finally:
        await again.close()
