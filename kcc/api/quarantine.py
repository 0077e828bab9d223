"""Quarantined channel input, for team leads: what could not become a contact, and why."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from contacts.models import QuarantinedInput
from kcc.api.auth import LEAD_ROLES, authenticate, require_role
from kcc.api.views import iso
from kcc.web_keys import SERVICES


class ResolveRequest(BaseModel):
    resolution: str = Field(min_length=1, max_length=500)


def quarantine_view(item: QuarantinedInput) -> dict[str, Any]:
    return {
        "id": item.id,
        "channel": item.channel,
        "at": iso(item.at),
        "reason": item.reason,
        "content_type": item.content_type,
        "size": item.size,
        "has_original": item.storage_key is not None,
        "resolved_at": iso(item.resolved_at),
        "resolved_by": item.resolved_by,
        "resolution": item.resolution,
    }


async def list_quarantine(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    require_role(await authenticate(request, services), LEAD_ROLES)
    include_resolved = request.query.get("all", "") in ("1", "true")
    items = await services.quarantine.items(include_resolved)
    return web.json_response({"items": [quarantine_view(i) for i in items]})


async def _item(request: web.Request) -> QuarantinedInput:
    services = request.app[SERVICES]
    try:
        item_id = int(request.match_info["item_id"])
    except ValueError:
        raise web.HTTPNotFound(text="no such quarantined item") from None
    item = await services.quarantine.get(item_id)
    if item is None:
        raise web.HTTPNotFound(text="no such quarantined item")
    return item


async def original(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    require_role(await authenticate(request, services), LEAD_ROLES)
    item = await _item(request)
    if item.storage_key is None:
        raise web.HTTPNotFound(text="the original was not kept (empty or too large)")
    data = await services.attachments.read(item.storage_key)
    # Always a download, never rendered: the original may be hostile HTML or script.
    return web.Response(
        body=data,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="quarantine-{item.id}.bin"',
            "X-Content-Type-Options": "nosniff",
        },
    )


async def resolve(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    lead = await authenticate(request, services)
    require_role(lead, LEAD_ROLES)
    item = await _item(request)
    body = ResolveRequest.model_validate(await request.json())
    await services.quarantine.resolve(
        item.id or 0, f"agent:{lead.id}", body.resolution, services.clock.now()
    )
    updated = await services.quarantine.get(item.id or 0)
    assert updated is not None
    return web.json_response(quarantine_view(updated))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/quarantine", list_quarantine)
    app.router.add_get("/api/quarantine/{item_id}/original", original)
    app.router.add_post("/api/quarantine/{item_id}/resolve", resolve)
