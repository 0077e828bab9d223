"""The API's edges: bad input gets a clear 4xx (never a 500), tokens and roles are enforced,
agents see only what they may, providers' retries store once, and the service describes itself
(OpenAPI, Prometheus)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import bearer, running_service, token_for

EMAIL = {
    "channel": "email",
    "channel_message_id": "<abc@example.nl>",
    "from": "piet@example.nl",
    "subject": "Grofvuil",
    "text": "Wanneer halen jullie grofvuil op in de Oosterpoort?",
}


async def test_ingest_is_idempotent_per_provider_message(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        token = await token_for(services, "mail adapter", role="integration")
        first = await client.post("/api/contacts", json=EMAIL, headers=bearer(token))
        assert first.status == 201
        created = await first.json()
        assert created["topic"] == "grofvuil-ophalen"
        assert created["skills"] == ["afval", "nl", "written"]
        assert created["kind"] in ("vraag", "verzoek")
        assert created["language"] == "nl"
        assert created["queue"] == "afval"
        assert created["status"] == "queued"
        again = await client.post("/api/contacts", json=EMAIL, headers=bearer(token))
        assert again.status == 200
        assert (await again.json())["reference"] == created["reference"]
        assert await services.backend.count() == 1


async def test_bad_input_gets_clear_errors(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        token = await token_for(services, "integration", role="integration")
        auth = bearer(token)
        broken = await client.post(
            "/api/contacts",
            data=b"{not json",
            headers={**auth, "Content-Type": "application/json"},
        )
        assert broken.status == 400
        assert "JSON" in (await broken.json())["error"]

        missing = await client.post("/api/contacts", json={"channel": "email"}, headers=auth)
        assert missing.status == 422
        fields = {d["field"] for d in (await missing.json())["details"]}
        assert {"channel_message_id", "from"} <= fields

        unknown_channel = await client.post(
            "/api/contacts", json={**EMAIL, "channel": "fax"}, headers=auth
        )
        assert unknown_channel.status == 422

        empty = await client.post(
            "/api/contacts", json={**EMAIL, "subject": "", "text": "  "}, headers=auth
        )
        assert empty.status == 422

        bad_phone = await client.post(
            "/api/contacts",
            json={**EMAIL, "channel": "whatsapp", "from": "not a number"},
            headers=auth,
        )
        assert bad_phone.status == 422

        huge = await client.post(
            "/api/contacts", json={**EMAIL, "text": "x" * 2_000_000}, headers=auth
        )
        assert huge.status == 413

        not_a_form = await client.post(
            "/channels/webform", data=b"hello", headers={"Content-Type": "text/plain"}
        )
        assert not_a_form.status == 415

        no_address = await client.post("/channels/webform", json={"message": "Hallo"})
        assert no_address.status == 422
        assert "e-mailadres" in (await no_address.json())["error"]

        unknown_field = await client.post(
            "/channels/webform", json={"message": "Hallo", "email": "a@example.nl", "bsn": "1"}
        )
        assert unknown_field.status == 422


async def test_tokens_and_roles_are_enforced(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        integration = await token_for(services, "integration", role="integration")
        agent = await token_for(services, "Anna", skills="afval,nl,written")
        assert (await client.post("/api/contacts", json=EMAIL)).status == 401
        forged = await client.post("/api/contacts", json=EMAIL, headers=bearer("kcc_forged"))
        assert forged.status == 401
        # An agent cannot inject contacts; an integration cannot read residents' contacts.
        assert (await client.post("/api/contacts", json=EMAIL, headers=bearer(agent))).status == 403
        created = await client.post("/api/contacts", json=EMAIL, headers=bearer(integration))
        reference = (await created.json())["reference"]
        read = await client.get(f"/api/contacts/{reference}", headers=bearer(integration))
        assert read.status == 403
        assert (await client.get(f"/api/contacts/{reference}", headers=bearer(agent))).status == 200


async def test_agents_see_only_contacts_of_their_queues(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        integration = await token_for(services, "integration", role="integration")
        outsider = await token_for(services, "Parkeren", skills="parkeren,nl,written")
        lead = await token_for(services, "Lead", role="teamlead", skills="nl")
        created = await client.post("/api/contacts", json=EMAIL, headers=bearer(integration))
        reference = (await created.json())["reference"]
        hidden = await client.get(f"/api/contacts/{reference}", headers=bearer(outsider))
        assert hidden.status == 404
        assert (await client.get(f"/api/contacts/{reference}", headers=bearer(lead))).status == 200
        reply = await client.post(
            f"/api/contacts/{reference}/reply", json={"text": "Hallo"}, headers=bearer(outsider)
        )
        assert reply.status == 404


async def test_only_the_assigned_agent_replies_and_lifecycle_is_enforced(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        integration = await token_for(services, "integration", role="integration")
        anna = await token_for(services, "Anna", skills="afval,nl,written")
        bert = await token_for(services, "Bert", skills="afval,nl,written")
        created = await client.post("/api/contacts", json=EMAIL, headers=bearer(integration))
        reference = (await created.json())["reference"]
        await client.post(
            "/api/agents/me/status", json={"status": "available"}, headers=bearer(anna)
        )
        taken = await client.post("/api/agents/me/next", headers=bearer(anna))
        assert (await taken.json())["reference"] == reference
        stolen = await client.post(
            f"/api/contacts/{reference}/reply", json={"text": "Hoi"}, headers=bearer(bert)
        )
        assert stolen.status == 403
        bad_outcome = await client.post(
            f"/api/contacts/{reference}/close", json={"outcome": "weet niet"}, headers=bearer(anna)
        )
        assert bad_outcome.status == 422
        closed = await client.post(
            f"/api/contacts/{reference}/close", json={"outcome": "beantwoord"}, headers=bearer(anna)
        )
        assert closed.status == 200
        late = await client.post(
            f"/api/contacts/{reference}/reply", json={"text": "Nog iets"}, headers=bearer(anna)
        )
        assert late.status == 409


async def test_reply_waits_in_the_outbox_when_the_channel_has_no_sender(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        integration = await token_for(services, "integration", role="integration")
        anna = await token_for(services, "Anna", skills="afval,nl,written")
        await client.post("/api/contacts", json=EMAIL, headers=bearer(integration))
        await client.post(
            "/api/agents/me/status", json={"status": "available"}, headers=bearer(anna)
        )
        reference = (await (await client.post("/api/agents/me/next", headers=bearer(anna))).json())[
            "reference"
        ]
        sent = await client.post(
            f"/api/contacts/{reference}/reply", json={"text": "Dinsdag."}, headers=bearer(anna)
        )
        message = (await sent.json())["message"]
        assert message["channel"] == "email"
        # No e-mail sender is registered yet: the reply is kept, visibly, not dropped.
        assert message["delivery_status"] == "queued"
        assert "verzendkoppeling" in message["delivery_detail"]


async def test_webform_html_post_escapes_resident_input(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (_services, client):
        page = await client.get("/channels/webform")
        assert page.status == 200
        html = await page.text()
        assert '<label for="message">' in html and 'lang="nl"' in html
        rejected = await client.post(
            "/channels/webform",
            data={"name": "<script>alert(1)</script>", "message": "Hallo"},
            headers={"Accept": "text/html"},
        )
        assert rejected.status == 422
        body = await rejected.text()
        assert "<script>alert(1)</script>" not in body
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
        accepted = await client.post(
            "/channels/webform",
            data={
                "name": "Els",
                "email": "els@example.nl",
                "message": "Mijn <b>container</b> is kapot",
                "submission_id": "form-1",
            },
            headers={"Accept": "text/html"},
        )
        assert accepted.status == 201
        assert "KCC-2026-" in await accepted.text()
        twice = await client.post(
            "/channels/webform",
            data={
                "email": "els@example.nl",
                "message": "Mijn container",
                "submission_id": "form-1",
            },
        )
        assert twice.status == 200


async def test_openapi_and_metrics(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        document = await (await client.get("/api/openapi.json")).json()
        assert document["openapi"].startswith("3.")
        for path in ("/api/contacts", "/api/agents/me/next", "/api/queues", "/channels/webform"):
            assert path in document["paths"]
        assert "IngestRequest" in document["components"]["schemas"]

        integration = await token_for(services, "integration", role="integration")
        await client.post("/api/contacts", json=EMAIL, headers=bearer(integration))
        text = await (await client.get("/metrics")).text()
        assert 'kcc_contacts_received_total{channel="email",outcome="created"} 1.0' in text
        assert 'kcc_queue_waiting{queue="afval"} 1.0' in text
        assert "kcc_queue_oldest_wait_seconds" in text

        agent = await token_for(services, "Anna", skills="afval,nl,written")
        queues = await (await client.get("/api/queues", headers=bearer(agent))).json()
        afval = next(q for q in queues["queues"] if q["queue"] == "afval")
        assert afval["waiting"] == 1 and afval["agents_available"] == 0


def test_cli_adds_an_agent_and_prints_a_token_once(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kcc.cli",
            "agents",
            "add",
            "--name",
            "Mila",
            "--skills",
            "burgerzaken:2,nl,pl",
            "--role",
            "agent",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("kcc_") and len(token) > 30
    unknown = subprocess.run(
        [
            sys.executable,
            "-m",
            "kcc.cli",
            "agents",
            "add",
            "--name",
            "X",
            "--skills",
            "koken",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert unknown.returncode == 2 and "unknown skills: koken" in unknown.stderr
