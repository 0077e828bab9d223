"""The foundation end to end: web form in, classified and queued, an agent takes it over the
API, replies and closes it, with the history recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from sqlalchemy.exc import DBAPIError

from kcc.services import Services
from tests.helpers import bearer, running_service, token_for


async def test_webform_contact_reaches_agent_who_replies_and_closes(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        await full_flow(services, client)


async def full_flow(services: Services, client: TestClient[object, object]) -> None:
    agent = await token_for(services, "Anna", skills="burgerzaken:3,nl,written")
    response = await client.post(
        "/channels/webform",
        json={
            "name": "Jan de Vries",
            "email": "jan@example.nl",
            "subject": "Paspoort verlopen",
            "message": "Mijn paspoort is verlopen. Hoe vraag ik een nieuw paspoort aan?",
        },
    )
    assert response.status == 201
    reference = (await response.json())["reference"]
    assert reference.startswith("KCC-2026-")

    assert (
        await client.post(
            "/api/agents/me/status", json={"status": "available"}, headers=bearer(agent)
        )
    ).status == 200
    await services.router.idle()

    response = await client.post("/api/agents/me/next", headers=bearer(agent))
    assert response.status == 200
    contact = await response.json()
    assert contact["reference"] == reference
    assert contact["topic"] == "paspoort-aanvragen"
    assert contact["skills"] == ["burgerzaken", "nl", "written"]
    assert contact["queue"] == "burgerzaken"
    assert contact["status"] == "assigned"
    assert contact["resident"]["email"] == "jan@example.nl"

    response = await client.post(
        f"/api/contacts/{reference}/reply",
        json={"text": "U maakt een afspraak via de website."},
        headers=bearer(agent),
    )
    assert response.status == 201
    answered = await response.json()
    assert answered["status"] == "answered"
    # A web form has no way back: the answer goes to the e-mail address the resident gave.
    assert answered["message"]["channel"] == "email"

    response = await client.post(
        f"/api/contacts/{reference}/close",
        json={"outcome": "beantwoord"},
        headers=bearer(agent),
    )
    assert response.status == 200
    assert (await response.json())["status"] == "closed"

    events = [(e["from_status"], e["to_status"]) for e in await _events(client, agent, reference)]
    assert events == [
        (None, "received"),
        ("received", "queued"),
        ("queued", "assigned"),
        ("assigned", "answered"),
        ("answered", "closed"),
    ]
    # Nothing more to do for Anna.
    assert (await client.post("/api/agents/me/next", headers=bearer(agent))).status == 204


async def _events(client, token: str, reference: str) -> list[dict]:  # type: ignore[no-untyped-def]
    lead_view = await client.get(f"/api/contacts/{reference}", headers=bearer(token))
    return list((await lead_view.json())["events"])


async def test_contact_history_cannot_be_rewritten(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        await assert_history_is_append_only(services, client)


async def assert_history_is_append_only(
    services: Services, client: TestClient[object, object]
) -> None:
    response = await client.post(
        "/channels/webform", json={"email": "a@example.nl", "message": "Vraag over afval"}
    )
    assert response.status == 201
    for statement in ("UPDATE contactevent SET reason = 'rewritten'", "DELETE FROM contactevent"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with services.engine.begin() as connection:
                await connection.execute(sa.text(statement))
