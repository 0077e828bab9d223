"""The audit log: every view of a resident's data is recorded (who, when, which resident,
which contact, which view), append-only."""

from __future__ import annotations

from aiohttp import web

from contacts.models import Agent, Contact
from desk.sessions import AUTH_VIA, desk_store
from kcc.services import Services


async def record_view(
    request: web.Request, services: Services, agent: Agent, contact: Contact, view: str
) -> None:
    await desk_store(services).audit(
        agent.id or 0, contact, view, request.get(AUTH_VIA, "token"), services.clock.now()
    )
