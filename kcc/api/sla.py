"""SLA API: verdaging of a contact's answer deadline, the team lead's list of contacts at risk
or past their deadline, and the norm report."""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from kcc.api.auth import LEAD_ROLES, authenticate, require_role
from kcc.api.contacts import acting_agent, staff_on_contact
from kcc.api.views import contact_summary, iso
from kcc.web_keys import SERVICES
from sla.report import norm_report
from sla.timers import SlaError, TooLate


class ExtensionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=3, max_length=500)
    new_due: date


async def extension(request: web.Request) -> web.Response:
    """POST /api/contacts/{reference}/extension: the assigned agent or a team lead records a
    verdaging before the deadline; the resident is told on their channel."""
    services, agent, contact = await staff_on_contact(request)
    body = ExtensionRequest.model_validate(await request.json())
    acting_agent(agent, contact)
    try:
        updated = await services.sla.extend(contact, f"agent:{agent.id}", body.reason, body.new_due)
    except TooLate as error:
        raise web.HTTPConflict(text=str(error)) from None
    except SlaError as error:
        raise web.HTTPUnprocessableEntity(text=str(error)) from None
    return web.json_response(contact_summary(updated), status=201)


async def at_risk(request: web.Request) -> web.Response:
    """GET /api/sla/at-risk: open, unanswered contacts at risk or past a deadline."""
    services = request.app[SERVICES]
    require_role(await authenticate(request, services), LEAD_ROLES)
    found = await services.sla.flagged()
    return web.json_response(
        {
            "contacts": [
                {
                    "reference": f.contact.reference,
                    "channel": f.contact.channel,
                    "queue": f.contact.queue,
                    "status": f.contact.status,
                    "norm": f.norm,
                    "due": iso(f.due),
                    "state": f.state,
                    "assigned_agent_id": f.contact.assigned_agent_id,
                }
                for f in found
            ]
        }
    )


def _day(request: web.Request, name: str) -> date:
    value = request.query.get(name, "")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise web.HTTPBadRequest(text=f"give ?{name}=YYYY-MM-DD") from None


async def norms(request: web.Request) -> web.Response:
    """GET /api/reports/norms?from=YYYY-MM-DD&to=YYYY-MM-DD: the norm table with realisatie."""
    services = request.app[SERVICES]
    require_role(await authenticate(request, services), LEAD_ROLES)
    start, end = _day(request, "from"), _day(request, "to")
    if end < start:
        raise web.HTTPBadRequest(text="`to` lies before `from`")
    if (end - start).days > 366 * 2:
        raise web.HTTPBadRequest(text="at most two years per report")
    rows = await norm_report(
        services.store.readers, services.sla.book, start, end, services.clock.now()
    )
    body: dict[str, Any] = {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "norms": [row.as_dict() for row in rows],
    }
    return web.json_response(body)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/contacts/{reference}/extension", extension)
    app.router.add_get("/api/sla/at-risk", at_risk)
    app.router.add_get("/api/reports/norms", norms)
