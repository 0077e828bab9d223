"""The desk's own API: the agent's list, callback tasks, referrals to partners, capacity,
attachments and the audit log. Everything a contact undergoes lands in its history."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from contacts.inbound import InboundMessage, ResidentIdentity
from contacts.models import HELD_STATUSES, Status
from desk import config as desk_config
from desk.audit import record_view
from desk.sessions import desk_store
from desk.views import desk_item
from kcc.api.auth import LEAD_ROLES, STAFF_ROLES, authenticate, require_role
from kcc.api.contacts import acting_agent, staff_on_contact
from kcc.api.schemas import Strict
from kcc.api.views import contact_summary, iso
from kcc.web_keys import SERVICES


class CallbackRequest(Strict):
    due: datetime
    note: str = Field(min_length=1, max_length=1000)
    phone: str | None = Field(default=None, max_length=40)
    # The same key again creates no second callback (a double click, a retry).
    idempotency_key: str | None = Field(default=None, min_length=8, max_length=64)


class ReferralRequest(Strict):
    partner: str = Field(min_length=1, max_length=64)
    note: str = Field(min_length=1, max_length=2000)
    close: bool = True


class CapacityRequest(Strict):
    capacity: dict[str, int]


MAX_CAPACITY = 20


async def my_list(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    agent = await authenticate(request, services)
    require_role(agent, STAFF_ROLES)
    config = desk_config.load(services.settings.config_dir)
    now = services.clock.now()
    contacts = await desk_store(services).desk_contacts(agent.id or 0)
    return web.json_response(
        {"contacts": [desk_item(c, now, config.at_risk_fraction_left) for c in contacts]}
    )


async def take(request: web.Request) -> web.Response:
    """The agent opens a contact offered to them: it is theirs now (no longer a mere offer)."""
    services, agent, contact = await staff_on_contact(request)
    if contact.assigned_agent_id != agent.id:
        raise web.HTTPForbidden(text="this contact is not assigned to you")
    if contact.taken_at is None and contact.status == Status.assigned:
        now = services.clock.now()
        await services.store.mark_taken(contact.id or 0, agent.id or 0, now)
        contact.taken_at = now
    return web.json_response(contact_summary(contact) | {"taken_at": iso(contact.taken_at)})


async def callback(request: web.Request) -> web.Response:
    """A callback task: a new phone contact for the same resident, due at the chosen time."""
    services, agent, contact = await staff_on_contact(request)
    body = CallbackRequest.model_validate(await request.json())
    acting_agent(agent, contact)
    now = services.clock.now()
    if body.due.tzinfo is None:
        raise web.HTTPUnprocessableEntity(text="due must carry a time zone")
    if body.due <= now:
        raise web.HTTPUnprocessableEntity(text="due must be in the future")
    resident = await services.store.resident(contact.resident_id)
    phone = body.phone or (resident.phone if resident else None)
    if not phone:
        raise web.HTTPUnprocessableEntity(
            text="no phone number is known for this resident; give one"
        )
    key = body.idempotency_key or uuid.uuid4().hex
    result = await services.intake.receive(
        InboundMessage(
            channel="phone",
            channel_message_id=f"callback:{contact.reference}:{key}",
            text=body.note,
            subject=f"Terugbellen over {contact.reference}",
            sender=ResidentIdentity(
                name=resident.name if resident else None,
                phone=phone,
                email=resident.email if resident else None,
                telegram_id=resident.telegram_id if resident else None,
            ),
            received_at=now,
            # Its own conversation: a callback never joins an open phone call.
            thread_key=f"callback:{contact.reference}:{key}",
        )
    )
    task = result.contact
    if result.outcome == "created":
        await services.store.set_deadlines(
            task.id or 0,
            ack_due=None,
            answer_due=body.due,
            at_risk_at=services.planner.at_risk_at(now, body.due),
        )
        await services.store.add_event(
            contact.id or 0,
            now,
            "callback",
            f"agent:{agent.id}",
            reason="terugbelverzoek aangemaakt",
            data={"callback_reference": task.reference, "due": iso(body.due)},
        )
        task.answer_due = body.due
    return web.json_response(
        {"callback": contact_summary(task), "outcome": result.outcome},
        status=201 if result.outcome == "created" else 200,
    )


async def referral(request: web.Request) -> web.Response:
    """Refer the resident to a partner (WIJ-team, library help point) with a warm hand-over
    note; by default the contact is closed with the outcome `doorverwezen`."""
    services, agent, contact = await staff_on_contact(request)
    body = ReferralRequest.model_validate(await request.json())
    owner = acting_agent(agent, contact)
    config = desk_config.load(services.settings.config_dir)
    partner = config.partner(body.partner)
    if partner is None:
        raise web.HTTPUnprocessableEntity(
            text=f"unknown partner; choose one of: {', '.join(p.slug for p in config.partners)}"
        )
    now = services.clock.now()
    data = {"partner": partner.slug, "partner_name": partner.name, "handover_note": body.note}
    if not body.close:
        await services.store.add_event(
            contact.id or 0,
            now,
            "referral",
            f"agent:{agent.id}",
            f"doorverwezen naar {partner.name}",
            data,
        )
        return web.json_response(contact_summary(contact) | {"referral": data}, status=201)
    if "doorverwezen" not in services.config.outcomes:
        raise web.HTTPConflict(text="the outcome code 'doorverwezen' is not configured")
    held = contact.status in HELD_STATUSES
    was_queued = contact.status == Status.queued
    updated = await services.store.change(
        contact.id or 0,
        Status.closed,
        f"agent:{agent.id}",
        now,
        reason=f"doorverwezen naar {partner.name}",
        event_type="referral",
        data=data | {"outcome": "doorverwezen"},
        expect_agent=owner,
        outcome="doorverwezen",
        closed_at=now,
    )
    if was_queued:
        await services.backend.withdraw(contact.id or 0)
    if held and contact.assigned_agent_id is not None:
        await services.router.release(contact, contact.assigned_agent_id)
    services.metrics.closed.labels("doorverwezen").inc()
    return web.json_response(contact_summary(updated) | {"referral": data}, status=201)


async def set_capacity(request: web.Request) -> web.Response:
    """The agent's capacity per channel kind (how many calls, chats, written contacts at once)."""
    services = request.app[SERVICES]
    agent = await authenticate(request, services)
    require_role(agent, STAFF_ROLES)
    body = CapacityRequest.model_validate(await request.json())
    kinds = {c.channel_class for c in services.config.channels.values()}
    unknown = set(body.capacity) - kinds
    if unknown:
        raise web.HTTPUnprocessableEntity(
            text=f"unknown channel kinds: {', '.join(sorted(unknown))}"
        )
    if any(not 0 <= v <= MAX_CAPACITY for v in body.capacity.values()):
        raise web.HTTPUnprocessableEntity(text=f"capacity is between 0 and {MAX_CAPACITY}")
    capacity = dict(agent.capacity) | body.capacity
    await desk_store(services).set_capacity(agent.id or 0, capacity)
    agent.capacity = capacity
    presence = await services.backend.get_agent(agent.id or 0)
    if presence is not None:
        presence.capacity = capacity
        await services.backend.put_agent(presence)
        if presence.status == "available":
            from router.router import AgentFreed

            services.router.notify(AgentFreed(agent.id or 0))
    return web.json_response({"capacity": capacity})


async def attachment(request: web.Request) -> web.StreamResponse:
    """An attachment of a contact: PDFs and images shown in the browser, anything else
    downloaded. Each view is audited."""
    services, agent, contact = await staff_on_contact(request)
    try:
        wanted = int(request.match_info["attachment_id"])
    except ValueError as error:
        raise web.HTTPNotFound(text="no such attachment") from error
    found = next(
        (a for a in await services.store.attachments(contact.id or 0) if a.id == wanted), None
    )
    if found is None:
        raise web.HTTPNotFound(text="no such attachment")
    data = await services.attachments.read(found.storage_key)
    await record_view(request, services, agent, contact, "attachment")
    inline = found.content_type in ("application/pdf", "image/png", "image/jpeg")
    safe_name = "".join(ch for ch in found.filename if ch.isalnum() or ch in "._- ")[:100]
    return web.Response(
        body=data,
        content_type=found.content_type if inline else "application/octet-stream",
        headers={
            "Content-Disposition": f"{'inline' if inline else 'attachment'}; "
            f'filename="{safe_name or "bijlage"}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


async def audit_log(request: web.Request) -> web.Response:
    """Team leads and admins: who viewed which resident's data."""
    services = request.app[SERVICES]
    agent = await authenticate(request, services)
    require_role(agent, LEAD_ROLES)

    def number(name: str) -> int | None:
        value = request.query.get(name, "")
        if not value:
            return None
        if not value.isdigit():
            raise web.HTTPBadRequest(text=f"{name} must be a number")
        return int(value)

    entries = await desk_store(services).audit_entries(
        resident_id=number("resident_id"),
        agent_id=number("agent_id"),
        reference=request.query.get("reference") or None,
        limit=min(number("limit") or 200, 1000),
    )
    return web.json_response(
        {
            "entries": [
                {
                    "at": iso(e.at),
                    "agent_id": e.agent_id,
                    "resident_id": e.resident_id,
                    "reference": e.reference,
                    "view": e.view,
                    "via": e.via,
                }
                for e in entries
            ]
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/desk/list", my_list)
    app.router.add_post("/api/contacts/{reference}/take", take)
    app.router.add_post("/api/contacts/{reference}/callback", callback)
    app.router.add_post("/api/contacts/{reference}/referral", referral)
    app.router.add_get("/api/contacts/{reference}/attachments/{attachment_id}", attachment)
    app.router.add_post("/api/agents/me/capacity", set_capacity)
    app.router.add_get("/api/audit", audit_log)


OPENAPI_BODIES: dict[str, type[BaseModel]] = {
    "CallbackRequest": CallbackRequest,
    "ReferralRequest": ReferralRequest,
    "CapacityRequest": CapacityRequest,
}


def openapi_paths(op: Callable[..., dict[str, Any]], ref: list[dict[str, Any]]) -> dict[str, Any]:
    """The desk's and dashboard's API paths; `op` builds an operation the way openapi.py does.
    Every path also accepts the desk's session cookie (with `X-CSRF-Token` on POST)."""

    def query(name: str, description: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": "query",
            "description": description,
            "schema": {"type": "string"},
        }

    attachment = {
        "name": "attachment_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer"},
    }
    return {
        "/api/desk/list": {
            "get": op("My offered and open contacts, with their deadline state (agent)")
        },
        "/api/contacts/{reference}/take": {
            "post": op("Take a contact offered to me (it is no longer a mere offer)", params=ref)
        },
        "/api/contacts/{reference}/callback": {
            "post": op(
                "Callback task: a new phone contact for the same resident, answer_due = due",
                "CallbackRequest",
                ok="201",
                params=ref,
                extra={"200": {"description": "the same idempotency key again"}},
            )
        },
        "/api/contacts/{reference}/referral": {
            "post": op(
                "Refer to a partner with a warm hand-over note; closes as 'doorverwezen'",
                "ReferralRequest",
                ok="201",
                params=ref,
            )
        },
        "/api/contacts/{reference}/attachments/{attachment_id}": {
            "get": op(
                "An attachment (PDF and images inline, other files as download); audited",
                params=[*ref, attachment],
            )
        },
        "/api/agents/me/capacity": {
            "post": op("My capacity per channel kind (0-20)", "CapacityRequest")
        },
        "/api/audit": {
            "get": op(
                "Team leads: who viewed which resident's data (append-only audit log)",
                params=[
                    query("resident_id", "only this resident"),
                    query("agent_id", "only this agent"),
                    query("reference", "only this contact"),
                    query("limit", "at most this many, newest first (default 200, max 1000)"),
                ],
            )
        },
        "/api/dashboard": {
            "get": op("Team leads: the live dashboard's snapshot (queues, agents, deadlines)")
        },
        "/api/dashboard/series": {
            "get": op("Team leads: today's samples of waiting and service level")
        },
    }
