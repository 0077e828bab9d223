"""Contacts API: ingest from adapters and integrations, and the agent's actions on a contact."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from adapters.phone.calls import CallStore, call_view
from contacts.inbound import InboundMessage, ResidentIdentity
from contacts.models import HELD_STATUSES, OPEN_STATUSES, Agent, AgentRole, Contact, Status
from contacts.store import TransitionError
from desk.audit import record_view
from kcc.api.auth import INGEST_ROLES, LEAD_ROLES, STAFF_ROLES, authenticate, require_role
from kcc.api.schemas import (
    CloseRequest,
    IngestRequest,
    ReplyRequest,
    Sender,
    TransferRequest,
    WaitRequest,
)
from kcc.api.views import (
    attachment_view,
    contact_summary,
    event_view,
    iso,
    message_view,
    resident_view,
)
from kcc.services import Services
from kcc.web_keys import SERVICES


def identity_from(sender: str | Sender, channel: str) -> ResidentIdentity:
    if isinstance(sender, Sender):
        return ResidentIdentity(
            name=sender.name,
            phone=sender.phone,
            email=sender.email,
            telegram_id=sender.telegram_id,
            postal_address=sender.postal_address,
            language=sender.language,
            support_needs=tuple(sender.support_needs),
        )
    value = sender.strip()
    if "@" in value:
        return ResidentIdentity(email=value)
    if channel == "telegram":
        return ResidentIdentity(telegram_id=value)
    if channel == "post":
        return ResidentIdentity(postal_address=value)
    return ResidentIdentity(phone=value)


async def ingest(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    agent = await authenticate(request, services)
    require_role(agent, INGEST_ROLES)
    body = IngestRequest.model_validate(await request.json())
    result = await services.intake.receive(
        InboundMessage(
            channel=body.channel,
            channel_message_id=body.channel_message_id,
            text=body.text,
            subject=body.subject,
            sender=identity_from(body.sender, body.channel),
            received_at=body.received_at,
            thread_key=body.thread_key,
        )
    )
    view = contact_summary(result.contact) | {"outcome": result.outcome}
    return web.json_response(view, status=201 if result.outcome == "created" else 200)


def may_view(agent: Agent, contact: Contact, services: Services) -> bool:
    if agent.role in LEAD_ROLES:
        return True
    if agent.role != AgentRole.agent:
        return False
    if contact.assigned_agent_id == agent.id:
        return True
    queue = services.config.queues.get(contact.queue or "")
    return queue is not None and all(agent.skills.get(s, 0) > 0 for s in queue.skills)


async def load_contact(request: web.Request, services: Services, agent: Agent) -> Contact:
    contact = await services.store.by_reference(request.match_info["reference"])
    # Same answer for "does not exist" and "not yours": references are not to be probed.
    if contact is None or not may_view(agent, contact, services):
        raise web.HTTPNotFound(text="no such contact")
    return contact


async def staff_on_contact(request: web.Request) -> tuple[Services, Agent, Contact]:
    """The start of every staff action on one contact: who asks, with a staff role, on a
    contact they may see (404 otherwise, so references cannot be probed)."""
    services = request.app[SERVICES]
    agent = await authenticate(request, services)
    require_role(agent, STAFF_ROLES)
    return services, agent, await load_contact(request, services, agent)


async def full_view(services: Services, contact: Contact) -> dict[str, Any]:
    store = services.store
    resident = await store.resident(contact.resident_id)
    conversation = await store.conversation(contact.conversation_id)
    history = [
        contact_summary(c) for c in await store.history(contact.resident_id) if c.id != contact.id
    ]
    return contact_summary(contact) | {
        "body": contact.body,
        "note": contact.note,
        # The resident's last message on this conversation (WhatsApp's 24-hour window).
        "last_inbound_at": iso(conversation.last_inbound_at) if conversation else None,
        "resident": resident_view(resident),
        "messages": [message_view(m) for m in await store.messages(contact.id or 0)],
        "events": [event_view(e) for e in await store.events(contact.id or 0)],
        "attachments": [attachment_view(a) for a in await store.attachments(contact.id or 0)],
        "history": history,
    } | ({"call": await phone_call(services, contact)} if contact.channel == "phone" else {})


async def phone_call(services: Services, contact: Contact) -> dict[str, Any] | None:
    """A phone contact's call: wait, answered or abandoned, duration (the phone norms)."""
    calls = CallStore(services.store.sessions, services.store.readers)
    call = await calls.for_contact(contact.id or 0)
    if call is None and contact.channel_message_id.startswith("CA"):
        # A live call is recorded once it has something to tell; until then it waits.
        return {"status": "waiting" if contact.status in OPEN_STATUSES else "unknown"}
    return call_view(call)


async def get_contact(request: web.Request) -> web.Response:
    services, agent, contact = await staff_on_contact(request)
    await record_view(request, services, agent, contact, "contact")
    return web.json_response(await full_view(services, contact))


def acting_agent(agent: Agent, contact: Contact) -> int | None:
    """Agents act on their own contacts; team leads on any (None = no ownership check)."""
    if agent.role in LEAD_ROLES:
        return None
    if contact.assigned_agent_id != agent.id:
        raise web.HTTPForbidden(text="this contact is not assigned to you")
    return agent.id


async def reply(request: web.Request) -> web.Response:
    services, agent, contact = await staff_on_contact(request)
    body = ReplyRequest.model_validate(await request.json())
    acting_agent(agent, contact)
    if contact.status not in (Status.assigned, Status.answered, Status.waiting_on_resident):
        raise TransitionError(f"a contact that is {contact.status} cannot be answered")
    article = None
    if body.article is not None:
        if await services.kennisbank.db.version(body.article.slug, body.article.version) is None:
            raise web.HTTPUnprocessableEntity(text="article: no such kennisbank article version")
        article = (body.article.slug, body.article.version)
    message = await services.outbox.reply(contact, agent.id, body.text, article)
    if message.delivery_status == "failed":
        # The channel refused it for good (e.g. WhatsApp's 24-hour window): not answered, and
        # the agent is told why; the refused message stays on the contact's record.
        services.metrics.replies.labels(message.channel, message.delivery_status).inc()
        return web.json_response(
            {
                "error": message.delivery_detail or "het bericht kon niet worden verstuurd",
                "message": message_view(message),
                "status": contact.status,
            },
            status=422,
        )
    now = services.clock.now()
    was_waiting = contact.status == Status.waiting_on_resident
    updated = await services.store.change(
        contact.id or 0,
        Status.answered,
        f"agent:{agent.id}",
        now,
        reason="antwoord verstuurd",
        event_type="reply",
        data={"channel": message.channel, "delivery": message.delivery_status},
        answered_at=contact.answered_at or now,
    )
    if was_waiting and updated.assigned_agent_id is not None:
        # Answering a waiting contact takes it back on the agent's desk.
        await services.backend.reserve(
            updated.assigned_agent_id, services.planner.channel_class(updated.channel)
        )
    services.metrics.replies.labels(message.channel, message.delivery_status).inc()
    return web.json_response(
        contact_summary(updated) | {"message": message_view(message)}, status=201
    )


async def transfer(request: web.Request) -> web.Response:
    services, agent, contact = await staff_on_contact(request)
    body = TransferRequest.model_validate(await request.json())
    owner = acting_agent(agent, contact)
    moved = await services.router.transfer(
        contact,
        f"agent:{agent.id}",
        body.note,
        queue=body.queue,
        skill=body.skill,
        expect_agent=owner,
    )
    return web.json_response(contact_summary(moved))


async def wait_on_resident(request: web.Request) -> web.Response:
    services, agent, contact = await staff_on_contact(request)
    body = WaitRequest.model_validate(await request.json())
    owner = acting_agent(agent, contact)
    held = contact.status in HELD_STATUSES
    updated = await services.store.change(
        contact.id or 0,
        Status.waiting_on_resident,
        f"agent:{agent.id}",
        services.clock.now(),
        reason=body.reason,
        expect_agent=owner,
    )
    if held and contact.assigned_agent_id is not None:
        await services.router.release(contact, contact.assigned_agent_id)
    return web.json_response(contact_summary(updated))


async def close(request: web.Request) -> web.Response:
    services, agent, contact = await staff_on_contact(request)
    body = CloseRequest.model_validate(await request.json())
    if body.outcome not in services.config.outcomes:
        raise web.HTTPUnprocessableEntity(
            text=f"unknown outcome; choose one of: {', '.join(services.config.outcomes)}"
        )
    owner = acting_agent(agent, contact)
    held = contact.status in HELD_STATUSES
    was_queued = contact.status == Status.queued
    now = services.clock.now()
    updated = await services.store.change(
        contact.id or 0,
        Status.closed,
        f"agent:{agent.id}",
        now,
        reason=services.config.outcomes[body.outcome],
        data={"outcome": body.outcome},
        expect_agent=owner,
        outcome=body.outcome,
        closed_at=now,
        note=body.note if body.note else contact.note,
    )
    if was_queued:
        await services.backend.withdraw(contact.id or 0)
    if held and contact.assigned_agent_id is not None:
        await services.router.release(contact, contact.assigned_agent_id)
    services.metrics.closed.labels(body.outcome).inc()
    return web.json_response(contact_summary(updated))
