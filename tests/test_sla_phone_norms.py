"""The phone norms of the norm report from the phone adapter's real call data: calls and callback
requests through the signed Twilio webhooks (sandbox), against figures computed by hand."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kcc.clock import ManualClock
from sandbox.twilio import Call, new_sid
from tests.helpers import bearer, token_for
from tests.sla_helpers import MONDAY, receive
from tests.test_phone import AFVAL_PHONE_AGENT, AGENT_PHONE, call, contact_of
from tests.test_sla_report import set_fields
from tests.twilio_helpers import PHONE_NUMBER, TwilioWorld, available_agent, twilio_world

REPORT = "/api/reports/norms?from=2026-11-23&to=2026-11-24"
FIGURES = ("total", "within", "missed", "open_overdue", "pending", "percentage")


async def phone_rows(world: TwilioWorld, lead: dict[str, str]) -> dict[str, tuple[Any, ...]]:
    response = await world.client.get(REPORT, headers=lead)
    assert response.status == 200
    rows = (await response.json())["norms"]
    return {
        r["norm_id"]: (*(r[f] for f in FIGURES), r["measured"])
        for r in rows
        if r["channel"] == "phone"
    }


async def answer_live(world: TwilioWorld, agent: dict[str, str], placed: Call, waited: str) -> None:
    """The agent takes the caller, bridges, talks and closes; Twilio reports the queue wait."""
    await world.services.router.idle()
    taken = await (await world.client.post("/api/agents/me/next", headers=agent)).json()
    assert taken["reference"] == (await contact_of(world, placed)).reference
    await placed.post("/channels/phone/bridged", QueueTime=waited)
    await placed.leave_queue("bridged", int(waited))
    await close(world, agent, taken["reference"], "beantwoord")


async def request_callback(world: TwilioWorld, caller: str) -> Call:
    placed = await call(world, "2", caller=caller)
    await placed.press(await placed.wait(35), "1", 35)
    await placed.leave_queue("leave", 36)
    return placed


async def take(world: TwilioWorld, agent: dict[str, str]) -> str:
    await world.services.router.idle()
    taken = await world.client.post("/api/agents/me/next", headers=agent)
    assert taken.status == 200, await taken.text()
    body = await taken.json()
    assert body["body"].startswith("Terugbelverzoek")
    return str(body["reference"])


async def call_back(world: TwilioWorld, agent: dict[str, str], reference: str, status: str) -> None:
    """The agent calls the resident back; Twilio reports the resident's leg."""
    started = await world.client.post(
        f"/api/contacts/{reference}/call", json={"phone": AGENT_PHONE}, headers=agent
    )
    assert started.status == 201, await started.text()
    number = (await world.fake.answer_call(world.fake.calls[-1]["Sid"])).twiml().find("Dial/Number")
    assert number is not None
    leg = Call(world.hooks, new_sid("CA"), PHONE_NUMBER, number.text or "")
    if status == "completed":
        await leg.post(number.get("statusCallback") or "", CallStatus="in-progress")
        world.clock.advance(120)
    answer = await leg.post(number.get("statusCallback") or "", CallStatus=status, CallDuration="0")
    assert answer.status == 200


async def close(world: TwilioWorld, agent: dict[str, str], reference: str, outcome: str) -> None:
    closed = await world.client.post(
        f"/api/contacts/{reference}/close", json={"outcome": outcome}, headers=agent
    )
    assert closed.status == 200, await closed.text()


async def test_phone_norms_from_the_call_data(tmp_path: Path) -> None:
    await phone_scenario(tmp_path)


@pytest.mark.postgres
@pytest.mark.redis
async def test_phone_norms_on_postgres_and_redis(
    tmp_path: Path, fresh_postgres: str, fresh_redis: str
) -> None:
    await phone_scenario(tmp_path, database_url=fresh_postgres, redis_url=fresh_redis)


async def phone_scenario(tmp_path: Path, database_url: str = "", redis_url: str = "") -> None:
    clock = ManualClock(MONDAY)  # Monday 23 November 2026, 10:00 in Groningen
    async with twilio_world(
        tmp_path, clock=clock, database_url=database_url, redis_url=redis_url
    ) as world:
        lead = bearer(await token_for(world.services, "Lotte", role="teamlead"))
        # Four calls on Monday 10:00: answered after 12 s (within) and after 45 s, hung up after
        # 41 s and after 5 s (abandoned: missed, however short the wait).
        quick, slow, gone, brief = [
            await call(world, "2", caller=f"+3161111111{i}") for i in range(4)
        ]
        anna = await available_agent(world, "Anna", AFVAL_PHONE_AGENT)
        for placed, waited in ((quick, "12"), (slow, "45")):
            await answer_live(world, anna, placed, waited)
        away = await world.client.post(
            "/api/agents/me/status", json={"status": "offline"}, headers=anna
        )
        assert away.status == 200
        await gone.leave_queue("hangup", 41)
        await brief.leave_queue("hangup", 5)
        # Five callers choose a callback after 35 s: their calls count for neither.
        for i in range(5):
            await request_callback(world, f"+3162222222{i}")

        # Answered within 30 s of answered + abandoned: 1 of 4, as the phone adapter says.
        norms = await (await world.client.get("/api/phone/norms?hours=1", headers=lead)).json()
        assert (norms["service_level"], norms["callback_requests"]) == (0.25, 5)
        rows = await phone_rows(world, lead)
        assert rows["phone-answered"] == (4, 1, 3, 0, 0, 25.0, True)
        assert rows["phone-callback"] == (5, 0, 0, 0, 5, None, True)

        agent = await available_agent(world, "Bram", AFVAL_PHONE_AGENT)
        # The callbacks, in the order the agent takes them: closed after an hour without calling
        # (missed); the resident reached after 2 h (within); not reached after 3 h (within: the
        # municipality called back); reached after 25 h (missed); one never called back (open
        # past its deadline).
        clock.set(MONDAY + timedelta(hours=1))
        await close(world, agent, await take(world, agent), "beantwoord")
        clock.set(MONDAY + timedelta(hours=2))
        reference = await take(world, agent)
        await call_back(world, agent, reference, "completed")
        await close(world, agent, reference, "beantwoord")
        clock.set(MONDAY + timedelta(hours=3))
        reference = await take(world, agent)
        await call_back(world, agent, reference, "no-answer")
        await close(world, agent, reference, "geen-reactie")
        clock.set(MONDAY + timedelta(hours=25))
        reference = await take(world, agent)
        await call_back(world, agent, reference, "completed")
        await close(world, agent, reference, "beantwoord")
        # Tuesday 12:00: one more callback request, due Wednesday 12:00 (pending).
        clock.set(MONDAY + timedelta(hours=26))
        await request_callback(world, "+31644444444")
        # A phone contact without call data (e.g. entered through the API) on Monday, taken
        # after 20 s: measured as before, until an agent took it (within).
        clock.set(MONDAY + timedelta(hours=30))
        counter = await receive(
            world.services, channel="phone", email=None, phone="+31633333333", received_at=MONDAY
        )
        await set_fields(world.services, counter, taken_at=MONDAY + timedelta(seconds=20))

        rows = await phone_rows(world, lead)
        assert rows["phone-callback"] == (6, 2, 3, 1, 1, 40.0, True)
        assert rows["phone-transfer"][-1] is False
        report = await (await world.client.get(REPORT, headers=lead)).json()
        notes = {r["norm_id"]: r["note"] for r in report["norms"] if r["channel"] == "phone"}
        assert "opgehangen = buiten de norm" in notes["phone-answered"]
        assert "GET /api/phone/norms" in notes["phone-answered"]
        assert "geen doorverbindingen" in notes["phone-transfer"]
        assert rows["phone-answered"] == (5, 2, 3, 0, 0, 40.0, True)
