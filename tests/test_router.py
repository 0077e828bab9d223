"""Routing behaviour on a real SQLite store and the embedded queue backend, with a manual clock:
skills, longest idle, priority, capacity, escalation, sticky agents, transfer, priority raise,
waiting on the resident and rebuilding the queue index."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from agents.registry import add_agent
from contacts.inbound import InboundMessage, ResidentIdentity
from contacts.models import Agent, AgentStatus, Contact, Status
from kcc.clock import ManualClock
from kcc.services import Services
from tests.helpers import settings_for

PASPOORT = "Mijn paspoort is verlopen, hoe vraag ik een nieuw paspoort aan?"
GROFVUIL = "Ik wil grofvuil laten ophalen, een oude bank en een matras."


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    built = await Services.build(settings_for(tmp_path), ManualClock())
    await built.start(sweep=False)
    yield built
    await built.close()


def clock_of(services: Services) -> ManualClock:
    assert isinstance(services.clock, ManualClock)
    return services.clock


async def agent(
    services: Services,
    name: str,
    skills: dict[str, int],
    capacity: dict[str, int] | None = None,
    available: bool = True,
) -> Agent:
    created, _ = await add_agent(
        services.store,
        services.config,
        services.clock,
        name,
        "agent",
        skills,
        capacity or {"phone": 1, "chat": 3, "written": 5},
    )
    if available:
        await services.router.set_agent_status(created, AgentStatus.available)
        await services.router.idle()
    return created


async def contact(
    services: Services,
    text: str,
    channel: str = "webform",
    message_id: str | None = None,
    phone: str | None = None,
    email: str | None = "a@example.nl",
    language: str | None = None,
) -> Contact:
    contact.counter = getattr(contact, "counter", 0) + 1  # type: ignore[attr-defined]
    result = await services.intake.receive(
        InboundMessage(
            channel=channel,
            channel_message_id=message_id or f"m{contact.counter}",  # type: ignore[attr-defined]
            text=text,
            sender=ResidentIdentity(
                phone=phone, email=email if not phone else None, language=language
            ),
        )
    )
    await services.router.idle()
    fresh = await services.store.get(result.contact.id or 0)
    assert fresh is not None
    return fresh


async def test_contact_goes_only_to_an_agent_with_all_its_skills(services: Services) -> None:
    dutch = await agent(services, "Dutch only", {"burgerzaken": 2, "nl": 1, "written": 1})
    polish = await agent(services, "Polish", {"burgerzaken": 1, "nl": 1, "pl": 1, "written": 1})
    placed = await contact(
        services,
        "Dzień dobry, chcę wyrobić nowy paszport dla córki. Jakie dokumenty są potrzebne?",
        language="pl",
    )
    assert placed.skills == ["burgerzaken", "pl", "written"]
    assert placed.assigned_agent_id == polish.id
    assert placed.assigned_agent_id != dutch.id


async def test_longest_idle_agent_gets_the_contact(services: Services) -> None:
    first = await agent(services, "Idle longest", {"burgerzaken": 1, "nl": 1, "written": 1})
    clock_of(services).advance(120)
    await agent(services, "Just arrived", {"burgerzaken": 1, "nl": 1, "written": 1})
    placed = await contact(services, PASPOORT)
    assert placed.assigned_agent_id == first.id


async def test_phone_is_served_before_an_older_written_contact(services: Services) -> None:
    written = await contact(services, PASPOORT)
    clock_of(services).advance(600)
    phone = await contact(
        services,
        "Beller wil een afspraak voor een nieuw paspoort.",
        channel="phone",
        phone="+31612340001",
    )
    anna = await agent(
        services,
        "Anna",
        {"burgerzaken": 1, "nl": 1, "written": 1, "phone": 1},
        capacity={"phone": 1, "written": 1},
        available=False,
    )
    assert written.status == phone.status == Status.queued
    first = await services.router.next_for_agent(anna.id or 0)
    assert first is None  # offline agents get nothing
    await services.router.set_agent_status(anna, AgentStatus.available)
    await services.router.idle()
    offered = await services.store.offered_to(anna.id or 0)
    assert [c.id for c in offered][:1] == [phone.id]


async def test_capacity_limits_and_a_freed_agent_gets_the_next(services: Services) -> None:
    bea = await agent(services, "Bea", {"afval": 1, "nl": 1, "written": 1}, capacity={"written": 2})
    contacts = [await contact(services, GROFVUIL, email=f"r{i}@example.nl") for i in range(3)]
    assert [c.assigned_agent_id for c in contacts] == [bea.id, bea.id, None]
    assert contacts[2].status == Status.queued
    await services.store.change(
        contacts[0].id or 0, Status.closed, "agent:test", services.clock.now(), outcome="beantwoord"
    )
    await services.router.release(contacts[0], bea.id or 0)
    await services.router.idle()
    third = await services.store.get(contacts[2].id or 0)
    assert third is not None and third.assigned_agent_id == bea.id


async def test_escalation_widens_skills_without_losing_the_place(services: Services) -> None:
    phone = await contact(
        services,
        "Beller vraagt hoe hij grofvuil kan laten ophalen.",
        channel="phone",
        phone="+31612340002",
    )
    generalist = await agent(services, "Generalist", {"algemeen": 1, "nl": 1, "phone": 1})
    assert (await services.store.get(phone.id or 0)).status == Status.queued  # type: ignore[union-attr]
    clock_of(services).advance(59)
    await services.router.sweep()
    await services.router.idle()
    assert (await services.store.get(phone.id or 0)).status == Status.queued  # type: ignore[union-attr]
    clock_of(services).advance(2)  # past the 60 s phone escalation in config/routing.toml
    await services.router.sweep()
    await services.router.idle()
    placed = await services.store.get(phone.id or 0)
    assert placed is not None and placed.assigned_agent_id == generalist.id
    assert placed.escalation_level == 1
    events = await services.store.events(placed.id or 0)
    assert any(e.type == "escalation" for e in events)


async def test_follow_up_prefers_the_agent_of_the_conversation(services: Services) -> None:
    first_agent = await agent(services, "Carla", {"afval": 1, "nl": 1, "chat": 1})
    first = await contact(
        services, "Wanneer wordt het grofvuil opgehaald?", channel="whatsapp", phone="+31612340003"
    )
    assert first.assigned_agent_id == first_agent.id
    await services.store.change(
        first.id or 0, Status.closed, "agent:test", services.clock.now(), outcome="beantwoord"
    )
    await services.router.release(first, first_agent.id or 0)
    await services.router.idle()
    clock_of(services).advance(30)
    # Another agent has now been idle longer than Carla, but Carla knows the conversation.
    await agent(services, "Dirk", {"afval": 1, "nl": 1, "chat": 1})
    clock_of(services).advance(300)
    await services.router.set_agent_status(first_agent, AgentStatus.available)
    await services.router.idle()
    again = await contact(
        services,
        "En kan ik ook een oude kast meegeven met het grofvuil?",
        channel="whatsapp",
        phone="+31612340003",
    )
    assert again.conversation_id == first.conversation_id
    assert again.id != first.id
    assert again.assigned_agent_id == first_agent.id


async def test_messages_in_an_open_conversation_join_the_contact(services: Services) -> None:
    first = await contact(
        services, "Hoi, mijn container is kapot.", channel="whatsapp", phone="+31612340004"
    )
    second = await contact(
        services, "Het deksel is afgebroken.", channel="whatsapp", phone="+31612340004"
    )
    assert second.id == first.id
    messages = await services.store.messages(first.id or 0)
    assert [m.body for m in messages] == [
        "Hoi, mijn container is kapot.",
        "Het deksel is afgebroken.",
    ]


async def test_the_same_provider_message_is_stored_once(services: Services) -> None:
    once = await contact(services, PASPOORT, message_id="SM-1")
    twice = await contact(services, PASPOORT, message_id="SM-1")
    assert once.id == twice.id
    assert await services.backend.count() == 1


async def test_transfer_moves_the_contact_and_frees_the_agent(services: Services) -> None:
    erik = await agent(
        services, "Erik", {"burgerzaken": 1, "nl": 1, "written": 1}, capacity={"written": 1}
    )
    placed = await contact(services, PASPOORT)
    assert placed.assigned_agent_id == erik.id
    moved = await services.router.transfer(
        placed, f"agent:{erik.id}", "gaat over parkeren", queue="parkeren", expect_agent=erik.id
    )
    await services.router.idle()
    assert moved.queue == "parkeren" and moved.status == Status.queued
    assert moved.skills == ["parkeren", "nl", "written"]
    presence = await services.backend.get_agent(erik.id or 0)
    assert presence is not None and presence.load.get("written", 0) == 0
    kinds = [(e.type, e.to_status) for e in await services.store.events(placed.id or 0)]
    assert ("transfer", "transferred") in kinds and kinds[-1] == ("status", "queued")


async def test_priority_rises_as_the_deadline_approaches(services: Services) -> None:
    now = services.clock.now()
    older = await contact(services, GROFVUIL, email="old@example.nl")
    clock_of(services).advance(60)
    at_risk = await contact(services, GROFVUIL, email="risk@example.nl")
    answer_due = now + timedelta(days=42)
    await services.store.set_deadlines(
        at_risk.id or 0,
        None,
        answer_due,
        services.planner.at_risk_at(at_risk.received_at, answer_due),
    )
    clock_of(services).advance(timedelta(days=34))  # past 80 % of six weeks
    await services.router.sweep()
    fien = await agent(
        services, "Fien", {"afval": 1, "nl": 1, "written": 1}, capacity={"written": 1}
    )
    offered = await services.store.offered_to(fien.id or 0)
    assert [c.id for c in offered] == [at_risk.id]
    raised = await services.store.get(at_risk.id or 0)
    assert raised is not None and raised.priority > older.priority


async def test_answer_from_resident_returns_a_waiting_contact_to_its_agent(
    services: Services,
) -> None:
    gijs = await agent(services, "Gijs", {"afval": 1, "nl": 1, "chat": 1})
    placed = await contact(
        services, "Mijn container is niet geleegd.", channel="whatsapp", phone="+31612340005"
    )
    await services.store.change(
        placed.id or 0,
        Status.waiting_on_resident,
        f"agent:{gijs.id}",
        services.clock.now(),
        reason="welk adres?",
    )
    await services.router.release(placed, gijs.id or 0)
    await services.router.idle()
    await contact(services, "Het is Grote Markt 1.", channel="whatsapp", phone="+31612340005")
    back = await services.store.get(placed.id or 0)
    assert back is not None and back.status == Status.assigned
    assert back.assigned_agent_id == gijs.id


async def test_lost_queue_index_is_rebuilt_and_nothing_is_handed_out_twice(
    services: Services,
) -> None:
    queued = [await contact(services, GROFVUIL, email=f"q{i}@example.nl") for i in range(4)]
    await services.backend.reset()  # a crash or a Redis flush
    assert await services.backend.count() == 0
    await services.router.sweep()
    assert await services.backend.count() == 4
    hans = await agent(
        services, "Hans", {"afval": 1, "nl": 1, "written": 1}, capacity={"written": 10}
    )
    await services.router.rebuild()  # a second rebuild must not hand anything out again
    await services.router.sweep()
    await services.router.idle()
    mine = await services.store.open_for_agent(hans.id or 0)
    assert sorted(c.id for c in mine) == sorted(c.id for c in queued)
    assert await services.backend.count() == 0
    events = [
        e
        for c in queued
        for e in await services.store.events(c.id or 0)
        if e.to_status == Status.assigned
    ]
    assert len(events) == 4


async def test_a_contact_lost_from_the_index_mid_claim_is_put_back(services: Services) -> None:
    lost = await contact(services, GROFVUIL, email="lost@example.nl")
    # A router claims it from the index and crashes before recording the assignment.
    claimed = await services.backend.claim_best(["afval", "nl", "written"], ["written"])
    assert claimed is not None and claimed.contact_id == lost.id
    assert await services.router.reconcile() == 0  # could still be a claim in flight
    assert await services.router.reconcile() == 1
    ida = await agent(services, "Ida", {"afval": 1, "nl": 1, "written": 1})
    back = await services.store.get(lost.id or 0)
    assert back is not None and back.assigned_agent_id == ida.id


async def test_escalation_fires_once_even_when_two_routers_sweep(services: Services) -> None:
    waiting = await contact(
        services, "Beller vraagt naar de afvalkalender.", channel="phone", phone="+31612340006"
    )
    clock_of(services).advance(61)
    await asyncio.gather(services.router.sweep(), services.router.sweep())
    events = [e for e in await services.store.events(waiting.id or 0) if e.type == "escalation"]
    assert len(events) == 1
    entry = await services.backend.get(waiting.id or 0)
    assert entry is not None and entry.requirements == frozenset({"nl", "phone"})


async def test_offers_go_back_to_the_queue_when_the_agent_goes_away(services: Services) -> None:
    jan = await agent(services, "Jan", {"afval": 1, "nl": 1, "written": 1})
    offered = await contact(services, GROFVUIL, email="offer@example.nl")
    assert offered.assigned_agent_id == jan.id and offered.taken_at is None
    taken = await contact(services, GROFVUIL, email="taken@example.nl")
    assert (await services.router.next_for_agent(jan.id or 0)) is not None  # takes one of them
    await services.router.set_agent_status(jan, AgentStatus.away)
    await services.router.idle()
    kees = await agent(services, "Kees", {"afval": 1, "nl": 1, "written": 1})
    states = {c.id: await services.store.get(c.id or 0) for c in (offered, taken)}
    holders = sorted(str(s.assigned_agent_id) for s in states.values() if s is not None)
    # The one Jan took stays with Jan; the one only offered to him went on to Kees.
    assert holders == sorted([str(jan.id), str(kees.id)])


async def test_two_answers_at_once_resume_a_waiting_contact_once(services: Services) -> None:
    lies = await agent(services, "Lies", {"afval": 1, "nl": 1, "chat": 1}, capacity={"chat": 3})
    placed = await contact(
        services, "Mijn container is niet geleegd.", channel="whatsapp", phone="+31612340007"
    )
    await services.store.change(
        placed.id or 0,
        Status.waiting_on_resident,
        f"agent:{lies.id}",
        services.clock.now(),
        reason="welk adres?",
    )
    await services.router.release(placed, lies.id or 0)
    await services.router.idle()
    await asyncio.gather(
        *(
            services.intake.receive(
                InboundMessage(
                    channel="whatsapp",
                    channel_message_id=f"answer-{n}",
                    text=f"Vismarkt {n}",
                    sender=ResidentIdentity(phone="+31612340007"),
                )
            )
            for n in range(2)
        )
    )
    events = [
        e for e in await services.store.events(placed.id or 0) if e.to_status == Status.assigned
    ]
    assert len(events) == 2  # the first assignment and one resume, not two
    presence = await services.backend.get_agent(lies.id or 0)
    assert presence is not None and presence.load == {"chat": 1}
    await services.store.change(
        placed.id or 0,
        Status.closed,
        f"agent:{lies.id}",
        services.clock.now(),
        outcome="beantwoord",
    )
    await services.router.release(placed, lies.id or 0)
    presence = await services.backend.get_agent(lies.id or 0)
    assert presence is not None and presence.load.get("chat", 0) == 0
