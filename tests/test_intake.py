"""Intake under concurrency: messages that arrive together share one transaction (group commit)
and still keep every rule: one contact per provider message, follow-ups join the open contact,
and one broken message does not take the others down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from contacts.inbound import InboundError, InboundMessage, ResidentIdentity
from contacts.intake_writer import RoutePlan
from kcc.clock import ManualClock
from kcc.services import Services
from tests.helpers import settings_for


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    built = await Services.build(settings_for(tmp_path), ManualClock())
    await built.start(sweep=False)
    yield built
    await built.close()


def whatsapp(message_id: str, text: str, phone: str = "+31612345001") -> InboundMessage:
    return InboundMessage(
        channel="whatsapp",
        channel_message_id=message_id,
        text=text,
        sender=ResidentIdentity(phone=phone),
    )


async def test_a_burst_of_retries_stores_one_contact(services: Services) -> None:
    results = await asyncio.gather(
        *(services.intake.receive(whatsapp("SM1", "Mijn container is kapot")) for _ in range(20))
    )
    assert len({r.contact.id for r in results}) == 1
    assert sorted(r.outcome for r in results) == ["created"] + ["duplicate"] * 19
    assert len(await services.store.messages(results[0].contact.id or 0)) == 1


async def test_messages_arriving_together_join_one_conversation(services: Services) -> None:
    texts = ["Hallo", "mijn container is kapot", "het deksel is eraf", "adres Vismarkt 1"]
    results = await asyncio.gather(
        *(services.intake.receive(whatsapp(f"SM{i}", text)) for i, text in enumerate(texts))
    )
    assert [r.outcome for r in results] == ["created", "follow_up", "follow_up", "follow_up"]
    contact_id = results[0].contact.id or 0
    bodies = [m.body for m in await services.store.messages(contact_id)]
    assert bodies == texts
    assert await services.backend.count() == 1


async def test_one_failing_message_does_not_sink_the_batch(services: Services) -> None:
    def plan(inbound: InboundMessage) -> RoutePlan:
        if "kapot" in inbound.text:
            raise RuntimeError("planner fault")
        return services.planner.plan(inbound)

    now = services.clock.now()
    good = [
        whatsapp(f"G{i}", "Wanneer is de afvalkalender er?", f"+3161234510{i}") for i in range(5)
    ]
    bad = whatsapp("B1", "mijn container is kapot", "+31612345199")
    outcomes = await asyncio.gather(
        *(services.store.receive(m.validated(), plan, now) for m in [*good[:2], bad, *good[2:]]),
        return_exceptions=True,
    )
    assert isinstance(outcomes[2], RuntimeError)
    stored = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(stored) == 5 and all(o.outcome == "created" for o in stored)
    assert await services.store.find_message("whatsapp", "B1") is None


async def test_references_are_unique_and_sequential_per_year(services: Services) -> None:
    results = await asyncio.gather(
        *(
            services.intake.receive(whatsapp(f"R{i}", "Vraag over paspoort", f"+3161234520{i}"))
            for i in range(8)
        )
    )
    references = sorted(r.contact.reference for r in results)
    assert references == [f"KCC-2026-{n:06d}" for n in range(1, 9)]


@pytest.mark.parametrize(
    "message",
    [
        whatsapp("", "tekst"),
        whatsapp("E1", "   "),
        InboundMessage(
            channel="fax", channel_message_id="F1", text="hallo", sender=ResidentIdentity()
        ),
        whatsapp("E2", "x" * 100_001),
    ],
)
async def test_unusable_messages_are_refused_with_a_reason(
    services: Services, message: InboundMessage
) -> None:
    with pytest.raises(InboundError):
        await services.intake.receive(message)
    assert await services.backend.count() == 0
