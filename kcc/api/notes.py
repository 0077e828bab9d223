"""The agent's note on a contact: e.g. the summary of a phone call, written during or after it."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from contacts.models import Status
from kcc.api.contacts import acting_agent, staff_on_contact
from kcc.api.schemas import Strict
from kcc.api.views import contact_summary


class NoteRequest(Strict):
    note: str = Field(min_length=1, max_length=5000)


async def set_note(request: web.Request) -> web.Response:
    """`POST /api/contacts/{ref}/note` {"note"}: the assigned agent or a team lead; also after
    closing, since a call's summary is often written when the call is over. The history records
    that the note changed and by whom, not its text (which may hold personal details)."""
    services, agent, contact = await staff_on_contact(request)
    body = NoteRequest.model_validate(await request.json())
    owner = acting_agent(agent, contact)
    updated = await services.store.change(
        contact.id or 0,
        Status(contact.status),
        f"agent:{agent.id}",
        services.clock.now(),
        reason="notitie bijgewerkt",
        event_type="note",
        data={"chars": len(body.note)},
        expect_agent=owner,
        expect_status=Status(contact.status),
        note=body.note,
    )
    return web.json_response(contact_summary(updated) | {"note": updated.note})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/contacts/{reference}/note", set_note)
