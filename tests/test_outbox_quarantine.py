"""The shared outbound and quarantine machinery every channel adapter relies on: a message
waits in the outbox until its channel can send and is then sent exactly once, even with two
processes retrying; input that cannot become a contact is kept with its reason for a team lead."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from adapters.outbound import Delivery, OutboundMessage, Purpose
from tests.helpers import bearer, running_service, token_for

EMAIL = {
    "channel": "email",
    "channel_message_id": "<retry@example.nl>",
    "from": "piet@example.nl",
    "subject": "Grofvuil",
    "text": "Wanneer halen jullie grofvuil op in de Oosterpoort?",
}


class RecordingSender:
    def __init__(self, fail_first: int = 0) -> None:
        self.sent: list[OutboundMessage] = []
        self.fail_first = fail_first

    async def send(self, message: OutboundMessage) -> Delivery:
        await asyncio.sleep(0.01)  # a real provider call yields; a concurrent retry may run
        if self.fail_first > 0:
            self.fail_first -= 1
            raise ConnectionError("provider down")
        self.sent.append(message)
        return Delivery("sent", provider_id=f"prov-{len(self.sent)}")


async def test_queued_message_is_sent_once_when_the_channel_can(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        integration = await token_for(services, "integration", role="integration")
        created = await (
            await client.post("/api/contacts", json=EMAIL, headers=bearer(integration))
        ).json()
        contact = await services.store.by_reference(created["reference"])
        assert contact is not None
        first = await services.outbox.send(
            contact,
            "Wij hebben uw vraag ontvangen.",
            purpose=Purpose.acknowledgement,
            variables={"reference": contact.reference},
        )
        assert first.delivery_status == "queued"  # no e-mail sender registered yet

        sender = RecordingSender(fail_first=1)
        services.outbox.register("email", sender)
        # The provider is down at the first retry: still queued, with the reason.
        assert await services.outbox.retry_unsent() == 1
        messages = await services.store.messages(contact.id or 0)
        assert messages[-1].delivery_status == "queued"
        assert "opnieuw" in (messages[-1].delivery_detail or "")

        # Not again at once: the provider gets a breather.
        assert await services.outbox.retry_unsent() == 0
        services.clock.advance(timedelta(seconds=31))  # type: ignore[attr-defined]
        # Two retries at once (two processes): the message goes out exactly once.
        await asyncio.gather(services.outbox.retry_unsent(), services.outbox.retry_unsent())
        assert len(sender.sent) == 1
        out = sender.sent[0]
        assert out.purpose == Purpose.acknowledgement
        assert out.variables == {"reference": contact.reference}
        assert out.in_reply_to == "<retry@example.nl>"
        assert out.last_inbound_at is not None
        messages = await services.store.messages(contact.id or 0)
        assert messages[-1].delivery_status == "sent"
        assert messages[-1].channel_message_id == "prov-1"
        assert await services.outbox.retry_unsent() == 0


async def test_a_message_left_sending_by_a_dead_process_is_sent_again(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        integration = await token_for(services, "integration", role="integration")
        created = await (
            await client.post("/api/contacts", json=EMAIL, headers=bearer(integration))
        ).json()
        contact = await services.store.by_reference(created["reference"])
        assert contact is not None
        # Recorded, then the process died before the channel answered.
        await services.store.record_outbound(
            contact.id or 0, None, "email", "Antwoord", services.clock.now(), "out:dead"
        )
        sender = RecordingSender()
        services.outbox.register("email", sender)
        assert await services.outbox.retry_unsent() == 0  # still fresh: maybe still sending
        services.clock.advance(timedelta(minutes=6))  # type: ignore[attr-defined]
        assert await services.outbox.retry_unsent() == 1
        assert [m.text for m in sender.sent] == ["Antwoord"]


async def test_quarantine_keeps_input_for_team_leads_only(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        lead = await token_for(services, "Lotte", role="teamlead")
        anna = await token_for(services, "Anna", skills="afval,nl,written")
        raw = b"<html><script>alert(1)</script>broken"
        now = services.clock.now()
        kept = await services.quarantine.keep(
            "email", "MIME kon niet worden gelezen", now, raw, "m1"
        )
        again = await services.quarantine.keep(
            "email", "MIME kon niet worden gelezen", now, raw, "m1"
        )
        assert again.id == kept.id  # the provider's retry is kept once

        assert (await client.get("/api/quarantine", headers=bearer(anna))).status == 403
        listed = await (await client.get("/api/quarantine", headers=bearer(lead))).json()
        assert [i["reason"] for i in listed["items"]] == ["MIME kon niet worden gelezen"]
        assert listed["items"][0]["size"] == len(raw)

        original = await client.get(f"/api/quarantine/{kept.id}/original", headers=bearer(lead))
        assert original.status == 200
        assert original.headers["Content-Type"] == "application/octet-stream"
        assert "attachment" in original.headers["Content-Disposition"]
        assert await original.read() == raw

        bad = await client.post(f"/api/quarantine/{kept.id}/resolve", json={}, headers=bearer(lead))
        assert bad.status == 422
        done = await client.post(
            f"/api/quarantine/{kept.id}/resolve",
            json={"resolution": "handmatig ingevoerd als KCC-2026-000001"},
            headers=bearer(lead),
        )
        assert done.status == 200
        assert (await done.json())["resolved_by"].startswith("agent:")
        listed = await (await client.get("/api/quarantine", headers=bearer(lead))).json()
        assert listed["items"] == []
        missing = await client.get("/api/quarantine/999/original", headers=bearer(lead))
        assert missing.status == 404


async def test_concurrent_saves_of_the_same_attachment_all_succeed(tmp_path: Path) -> None:
    from contacts.attachments import AttachmentStore

    store = AttachmentStore(tmp_path)
    data = b"%PDF-1.7 dezelfde scan, twee keer tegelijk" * 1000
    results = await asyncio.gather(*(store.save(data) for _ in range(16)))
    assert len(set(results)) == 1
    assert await store.read(results[0][1]) == data
    leftovers = await asyncio.to_thread(lambda: list(tmp_path.rglob("*.tmp*")))
    assert leftovers == []


async def test_messages_for_a_channel_without_sender_are_not_claimed(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        integration = await token_for(services, "integration", role="integration")
        created = await (
            await client.post("/api/contacts", json=EMAIL, headers=bearer(integration))
        ).json()
        contact = await services.store.by_reference(created["reference"])
        assert contact is not None
        services.outbox.unregister("email")
        message = await services.outbox.send(contact, "Wacht op een verzendkoppeling")
        assert message.delivery_status == "queued"
        # Nothing to try: the message is left alone instead of being claimed every sweep.
        assert await services.outbox.retry_unsent() == 0
        stored = (await services.store.messages(contact.id or 0))[-1]
        assert (stored.delivery_status, stored.attempt_at) == ("queued", None)
