"""The agent's own API: presence and "give me my next contact"."""

from __future__ import annotations

import time

from aiohttp import web

from contacts.models import AgentStatus
from desk.audit import record_view
from kcc.api.auth import STAFF_ROLES, authenticate, require_role
from kcc.api.contacts import full_view
from kcc.api.schemas import StatusRequest
from kcc.api.views import contact_summary
from kcc.web_keys import SERVICES


async def me(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    agent = await authenticate(request, services)
    presence = await services.backend.get_agent(agent.id or 0)
    open_contacts = await services.store.open_for_agent(agent.id or 0)
    return web.json_response(
        {
            "id": agent.id,
            "name": agent.name,
            "role": agent.role,
            "skills": agent.skills,
            "capacity": agent.capacity,
            "status": presence.status if presence else AgentStatus.offline,
            "load": presence.load if presence else {},
            "open_contacts": [contact_summary(c) for c in open_contacts],
        }
    )


async def set_status(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    agent = await authenticate(request, services)
    require_role(agent, STAFF_ROLES)
    body = StatusRequest.model_validate(await request.json())
    presence = await services.router.set_agent_status(agent, AgentStatus(body.status))
    return web.json_response(
        {
            "status": presence.status if presence else AgentStatus.offline,
            "load": presence.load if presence else {},
            "capacity": agent.capacity,
        }
    )


async def next_contact(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    agent = await authenticate(request, services)
    require_role(agent, STAFF_ROLES)
    started = time.perf_counter()
    contact = await services.router.next_for_agent(agent.id or 0)
    services.metrics.routing_seconds.observe(time.perf_counter() - started)
    if contact is None:
        return web.Response(status=204)
    await record_view(request, services, agent, contact, "next")
    return web.json_response(await full_view(services, contact))
