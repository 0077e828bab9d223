"""The desk's sign-in, sessions, CSRF protection, audit log and desk actions, over HTTP against
the real service (SQLite, and PostgreSQL with Redis)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from sqlalchemy.exc import DBAPIError

from contacts.models import WebSession
from desk.passwords import hash_password
from desk.sessions import desk_store
from kcc.clock import ManualClock
from kcc.services import Services
from tests.helpers import bearer, running_service, token_for

PASSWORD = "correct horse battery staple"
Client = TestClient[object, object]


@pytest.fixture(params=["sqlite", "postgres"])
def urls(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(database URL, Redis URL): SQLite with embedded queues, or PostgreSQL with Redis."""
    if request.param == "sqlite":
        return "", ""
    return request.getfixturevalue("fresh_postgres"), request.getfixturevalue("fresh_redis")


@pytest.fixture
async def service(
    urls: tuple[str, str], tmp_path: Path
) -> AsyncIterator[tuple[Services, Client, ManualClock]]:
    clock = ManualClock()
    async with running_service(tmp_path, urls[0], urls[1], clock) as (services, client):
        yield services, client, clock


async def person(
    services: Services, name: str, role: str = "agent", skills: str | None = None
) -> str:
    token = await token_for(services, name, role, skills)
    store = desk_store(services)
    agent = await store.agent_by_name(name)
    assert agent is not None and agent.id is not None
    await store.set_password_hash(agent.id, hash_password(PASSWORD))
    return token


async def sign_in(client: Client, name: str, password: str = PASSWORD) -> tuple[int, str]:
    form = await client.get("/signin")
    assert form.status == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', await form.text())
    assert token is not None
    response = await client.post(
        "/signin",
        data={"name": name, "password": password, "csrf_token": token.group(1)},
        allow_redirects=False,
    )
    global LAST_SET_COOKIE
    LAST_SET_COOKIE = ",".join(response.headers.getall("Set-Cookie", []))
    return response.status, response.headers.get("Location", "")


LAST_SET_COOKIE = ""


async def page_csrf(client: Client, path: str = "/desk") -> str:
    page = await client.get(path)
    assert page.status == 200, await page.text()
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', await page.text())
    assert found is not None
    return found.group(1)


@asynccontextmanager
async def new_client(client: Client) -> AsyncIterator[Client]:
    """A second browser on the same server (its own cookie jar)."""
    other: Client = TestClient(client.server)
    await other.start_server()
    try:
        yield other
    finally:
        await other.session.close()


async def test_sign_in_session_csrf_and_sign_out(
    service: tuple[Services, Client, ManualClock],
) -> None:
    services, client, _ = service
    await person(services, "Anna", skills="burgerzaken:3,nl,written")

    assert (await client.get("/desk", allow_redirects=False)).headers["Location"] == (
        "/signin?next=/desk"
    )
    assert (await client.get("/api/agents/me")).status == 401
    assert await sign_in(client, "Anna", "wrong password!!") == (401, "")
    assert await sign_in(client, "Nobody", PASSWORD) == (401, "")
    status, location = await sign_in(client, "Anna")
    assert (status, location) == (303, "/desk")

    assert "kcc_session=" in LAST_SET_COOKIE and "HttpOnly" in LAST_SET_COOKIE
    assert "SameSite=Strict" in LAST_SET_COOKIE and "Path=/" in LAST_SET_COOKIE
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["kcc_session"]
    async with services.store.readers() as session:
        stored = list((await session.execute(sa.select(WebSession.id_hash))).scalars())
    assert stored and cookie.value not in stored  # only a hash of the session id is kept

    page = await client.get("/desk")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in page.headers["Content-Security-Policy"]
    assert '<html lang="nl">' in await page.text()
    csrf = await page_csrf(client)
    me = await client.get("/api/agents/me")
    assert me.status == 200 and (await me.json())["name"] == "Anna"

    # Unsafe methods with a cookie need the CSRF token.
    refused = await client.post("/api/agents/me/status", json={"status": "available"})
    assert refused.status == 403
    wrong = await client.post(
        "/api/agents/me/status", json={"status": "available"}, headers={"X-CSRF-Token": "x" * 43}
    )
    assert wrong.status == 403
    ok = await client.post(
        "/api/agents/me/status", json={"status": "available"}, headers={"X-CSRF-Token": csrf}
    )
    assert ok.status == 200

    # An agent has no dashboard.
    assert (await client.get("/dashboard")).status == 403
    assert (await client.get("/api/dashboard")).status == 403

    out = await client.post("/signout", data={"csrf_token": csrf}, allow_redirects=False)
    assert out.status == 303 and out.headers["Location"] == "/signin"
    assert (await client.get("/api/agents/me")).status == 401
    # The old cookie is dead on the server too, not only deleted in this browser.
    async with new_client(client) as other:
        other.session.cookie_jar.update_cookies({"kcc_session": cookie.value})
        assert (await other.get("/api/agents/me")).status == 401


async def test_sign_in_form_needs_its_csrf_cookie(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        await person(services, "Anna")
        response = await client.post(
            "/signin",
            data={"name": "Anna", "password": PASSWORD, "csrf_token": "forged"},
            allow_redirects=False,
        )
        assert response.status == 403
        assert "kcc_session" not in client.session.cookie_jar.filter_cookies(client.make_url("/"))


async def test_failed_sign_ins_slow_down_and_then_block(tmp_path: Path) -> None:
    clock = ManualClock()
    async with running_service(tmp_path, clock=clock) as (services, client):
        await person(services, "Anna")
        for _ in range(5):
            assert (await sign_in(client, "Anna", "not the password"))[0] == 401
        # Blocked now, even with the right password, until the wait is over.
        assert (await sign_in(client, "Anna"))[0] == 429
        clock.advance(31)
        assert (await sign_in(client, "Anna"))[0] == 303


async def test_sessions_expire_when_idle(tmp_path: Path) -> None:
    clock = ManualClock()
    async with running_service(tmp_path, clock=clock) as (services, client):
        await person(services, "Anna")
        assert (await sign_in(client, "Anna"))[0] == 303
        assert (await client.get("/api/agents/me")).status == 200
        # The pages' background refreshes do not count as activity.
        background = {"X-KCC-Background": "1"}
        for _ in range(3):
            clock.advance(timedelta(minutes=30))
            assert (await client.get("/api/queues", headers=background)).status == 200
        clock.advance(timedelta(minutes=31))
        assert (await client.get("/api/agents/me")).status == 401


async def test_secure_cookies_use_the_host_prefix(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        services.settings.secrets["KCC_COOKIE_SECURE"] = "always"
        await person(services, "Anna")
        form = await client.get("/signin")
        set_cookie = form.headers["Set-Cookie"]
        assert set_cookie.startswith("__Host-kcc_signin=") and "Secure" in set_cookie
        assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie


async def webform(client: Client, subject: str, message: str, email: str) -> str:
    response = await client.post(
        "/channels/webform",
        json={
            "name": "Jan",
            "email": email,
            "phone": "0612345678",
            "subject": subject,
            "message": message,
        },
    )
    assert response.status == 201
    return str((await response.json())["reference"])


async def test_audit_log_records_every_view_and_is_append_only(
    service: tuple[Services, Client, ManualClock],
) -> None:
    services, client, _ = service
    agent = await person(services, "Anna", skills="burgerzaken:3,nl,written")
    lead = await person(services, "Lea", "teamlead", skills="burgerzaken:3,nl,written")
    reference = await webform(client, "Paspoort", "Mijn paspoort is verlopen.", "jan@example.nl")
    await client.post("/api/agents/me/status", json={"status": "available"}, headers=bearer(agent))
    await services.router.idle()
    assert (await client.post("/api/agents/me/next", headers=bearer(agent))).status == 200
    assert (await client.get(f"/api/contacts/{reference}", headers=bearer(lead))).status == 200

    # Through the desk's session too.
    assert (await sign_in(client, "Anna"))[0] == 303
    assert (await client.get(f"/api/contacts/{reference}")).status == 200

    assert (await client.get("/api/audit", headers=bearer(agent))).status == 403
    response = await client.get(f"/api/audit?reference={reference}", headers=bearer(lead))
    entries = (await response.json())["entries"]
    assert [(e["view"], e["via"]) for e in entries] == [
        ("contact", "session"),
        ("contact", "token"),
        ("next", "token"),
    ]
    assert len({e["resident_id"] for e in entries}) == 1 and entries[0]["resident_id"]

    async with services.engine.begin() as connection:
        with pytest.raises(DBAPIError, match="append-only"):
            await connection.execute(sa.text("UPDATE auditlog SET view = 'x'"))
    async with services.engine.begin() as connection:
        with pytest.raises(DBAPIError, match="append-only"):
            await connection.execute(sa.text("DELETE FROM auditlog"))


async def take(services: Services, client: Client, agent: str) -> dict[str, object]:
    await client.post("/api/agents/me/status", json={"status": "available"}, headers=bearer(agent))
    await services.router.idle()
    response = await client.post("/api/agents/me/next", headers=bearer(agent))
    assert response.status == 200
    view: dict[str, object] = await response.json()
    return view


async def test_callback_task_and_referral_are_recorded(
    service: tuple[Services, Client, ManualClock],
) -> None:
    services, client, clock = service
    agent = await token_for(services, "Anna", skills="burgerzaken:3,nl,written")
    reference = await webform(client, "Paspoort", "Mijn paspoort is verlopen.", "jan@example.nl")
    contact = await take(services, client, agent)
    assert contact["reference"] == reference
    assert "last_inbound_at" in contact

    listed = await (await client.get("/api/desk/list", headers=bearer(agent))).json()
    assert [c["reference"] for c in listed["contacts"]] == [reference]
    assert listed["contacts"][0]["offered"] is False

    due = clock.now() + timedelta(hours=4)
    bad = await client.post(
        f"/api/contacts/{reference}/callback",
        json={"due": (clock.now() - timedelta(hours=1)).isoformat(), "note": "bellen"},
        headers=bearer(agent),
    )
    assert bad.status == 422
    body = {
        "due": due.isoformat(),
        "note": "Terugbellen over de afspraak",
        "idempotency_key": "abcdef123456",
    }
    response = await client.post(
        f"/api/contacts/{reference}/callback", json=body, headers=bearer(agent)
    )
    assert response.status == 201, await response.text()
    task = (await response.json())["callback"]
    assert task["channel"] == "phone" and task["reference"] != reference
    again = await client.post(
        f"/api/contacts/{reference}/callback", json=body, headers=bearer(agent)
    )
    assert (
        again.status == 200 and (await again.json())["callback"]["reference"] == task["reference"]
    )
    stored = await services.store.by_reference(task["reference"])
    assert stored is not None and stored.answer_due == due
    assert stored.resident_id is not None

    bad_partner = await client.post(
        f"/api/contacts/{reference}/referral",
        json={"partner": "nowhere", "note": "x"},
        headers=bearer(agent),
    )
    assert bad_partner.status == 422
    response = await client.post(
        f"/api/contacts/{reference}/referral",
        json={"partner": "wij-team", "note": "Mevrouw heeft hulp nodig met zorg thuis."},
        headers=bearer(agent),
    )
    assert response.status == 201
    closed = await response.json()
    assert closed["status"] == "closed" and closed["outcome"] == "doorverwezen"

    view = await (await client.get(f"/api/contacts/{reference}", headers=bearer(agent))).json()
    types = [e["type"] for e in view["events"]]
    assert "callback" in types and "referral" in types
    referral = next(e for e in view["events"] if e["type"] == "referral")
    assert referral["data"]["partner"] == "wij-team"
    assert referral["data"]["handover_note"].startswith("Mevrouw")
    # The callback task is part of the resident's history on every channel.
    assert task["reference"] in [h["reference"] for h in view["history"]]


async def test_capacity_and_dashboard_numbers(
    service: tuple[Services, Client, ManualClock],
) -> None:
    services, client, clock = service
    agent = await token_for(services, "Anna", skills="burgerzaken:3,nl,written")
    lead = await token_for(services, "Lea", "teamlead")
    refused = await client.post(
        "/api/agents/me/capacity", json={"capacity": {"written": 99}}, headers=bearer(agent)
    )
    assert refused.status == 422
    ok = await client.post(
        "/api/agents/me/capacity", json={"capacity": {"written": 2}}, headers=bearer(agent)
    )
    assert ok.status == 200 and (await ok.json())["capacity"]["written"] == 2

    for n in range(3):
        await webform(client, "Paspoort", f"Mijn paspoort is verlopen ({n}).", f"r{n}@example.nl")
    await services.router.idle()
    snapshot = await (await client.get("/api/dashboard", headers=bearer(lead))).json()
    burgerzaken = next(q for q in snapshot["queues"] if q["queue"] == "burgerzaken")
    assert burgerzaken["waiting"] == 3 and burgerzaken["arrivals_last_hour"] == 3

    await client.post("/api/agents/me/status", json={"status": "available"}, headers=bearer(agent))
    await services.router.idle()
    listed = await (await client.get("/api/desk/list", headers=bearer(agent))).json()
    # Capacity 2 for written contacts: two are offered, one still waits.
    assert [c["offered"] for c in listed["contacts"]] == [True, True]
    dashboard = request_app_dashboard(client)
    dashboard._cached = None
    snapshot = await (await client.get("/api/dashboard", headers=bearer(lead))).json()
    burgerzaken = next(q for q in snapshot["queues"] if q["queue"] == "burgerzaken")
    assert burgerzaken["waiting"] == 1
    anna = next(a for a in snapshot["agents"] if a["name"] == "Anna")
    assert anna["status"] == "available" and len(anna["on"]) == 2

    clock.advance(60)
    assert await dashboard.sample()
    assert not await dashboard.sample()  # one row per moment, whichever process samples first
    series = await (await client.get("/api/dashboard/series", headers=bearer(lead))).json()
    assert series["samples"][-1]["waiting"] == 1


def request_app_dashboard(client: Client):  # type: ignore[no-untyped-def]
    from desk.routes import DASHBOARD

    return client.server.app[DASHBOARD]  # type: ignore[union-attr]


async def test_grafana_dashboard_uses_only_series_that_metrics_serves(tmp_path: Path) -> None:
    import json

    dashboard = json.loads(read_repo_file("config/grafana/kcc-dashboard.json"))
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    names = set(re.findall(r"\bkcc_[a-z_]+", " ".join(expressions)))
    assert len(names) >= 8
    async with running_service(tmp_path) as (_, client):
        served = await (await client.get("/metrics")).text()
    for name in names:
        assert name in served, name


def read_repo_file(name: str) -> str:
    return (Path(__file__).resolve().parent.parent / name).read_text(encoding="utf-8")


def test_passwords_are_set_from_standard_input_never_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from kcc.cli import main

    data = ["--data-dir", str(tmp_path)]
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["agents", "add", "--name", "Anna", "--password", *data]) != 0
    assert "at least 12" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["agents", "add", "--name", "Anna", "--password", *data]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("another long password\n"))
    assert main(["agents", "set-password", "--name", "Anna", *data]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("another long password\n"))
    assert main(["agents", "set-password", "--name", "Nobody", *data]) == 2

    import sqlite3

    from desk.passwords import verify

    with sqlite3.connect(tmp_path / "kcc.sqlite3") as connection:
        (stored,) = connection.execute(
            "SELECT password_hash FROM agent WHERE name = 'Anna'"
        ).fetchone()
    assert stored.startswith("$argon2id$")
    assert verify(stored, "another long password") and not verify(stored, PASSWORD)


async def test_pdf_letters_open_in_the_browser_and_other_files_download(tmp_path: Path) -> None:
    from contacts.inbound import InboundAttachment, InboundMessage, ResidentIdentity

    async with running_service(tmp_path) as (services, client):
        agent = await token_for(services, "Anna", skills="burgerzaken:3,nl,written")
        pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
        result = await services.intake.receive(
            InboundMessage(
                channel="post",
                channel_message_id="scan-1",
                text="Brief over mijn paspoort",
                sender=ResidentIdentity(name="Jan", postal_address="Vismarkt 1, Groningen"),
                attachments=(
                    InboundAttachment("brief.pdf", "application/pdf", pdf),
                    InboundAttachment("page.html", "text/html", b"<script>alert(1)</script>"),
                ),
            )
        )
        reference = result.contact.reference
        contact = await take(services, client, agent)
        assert contact["reference"] == reference
        files = {a["filename"]: a["id"] for a in contact["attachments"]}

        response = await client.get(
            f"/api/contacts/{reference}/attachments/{files['brief.pdf']}", headers=bearer(agent)
        )
        assert response.status == 200 and response.content_type == "application/pdf"
        assert response.headers["Content-Disposition"].startswith("inline")
        assert await response.read() == pdf
        response = await client.get(
            f"/api/contacts/{reference}/attachments/{files['page.html']}", headers=bearer(agent)
        )
        assert response.content_type == "application/octet-stream"
        assert response.headers["Content-Disposition"].startswith("attachment")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        missing = await client.get(
            f"/api/contacts/{reference}/attachments/999", headers=bearer(agent)
        )
        assert missing.status == 404

        entries = await desk_store(services).audit_entries(reference=reference)
        assert [e.view for e in entries].count("attachment") == 2


async def read_events(response: Any, wanted: str, within: float) -> dict[str, Any]:
    """The data of the next server-sent event named `wanted`."""
    import asyncio
    import json

    async def scan() -> dict[str, Any]:
        event = ""
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == wanted:
                data: dict[str, Any] = json.loads(line[6:])
                return data
        raise AssertionError("stream ended")

    return await asyncio.wait_for(scan(), within)


@pytest.mark.postgres
@pytest.mark.redis
async def test_offer_made_by_another_process_reaches_the_open_desk(
    tmp_path: Path, fresh_postgres: str, fresh_redis: str
) -> None:
    """Two services on one PostgreSQL and one Redis: the desk is open on the first, the
    router of the second makes the offer; the desk's periodic check brings it."""
    async with (
        running_service(tmp_path / "a", fresh_postgres, fresh_redis) as (first, desk),
        running_service(tmp_path / "b", fresh_postgres, fresh_redis) as (second, other),
    ):
        agent = await token_for(first, "Anna", skills="burgerzaken:3,nl,written")
        async with desk.get("/desk/events", headers=bearer(agent)) as stream:
            assert stream.status == 200
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            assert (await read_events(stream, "list", 5))["contacts"] == []
            reference = await webform(other, "Paspoort", "Paspoort verlopen.", "jan@example.nl")
            status = await other.post(
                "/api/agents/me/status", json={"status": "available"}, headers=bearer(agent)
            )
            assert status.status == 200
            await second.router.idle()
            offered = await read_events(stream, "list", 10)
            assert [(c["reference"], c["offered"]) for c in offered["contacts"]] == [
                (reference, True)
            ]
            taken = await desk.post(f"/api/contacts/{reference}/take", headers=bearer(agent))
            assert taken.status == 200
            listed = await (await desk.get("/api/desk/list", headers=bearer(agent))).json()
            assert listed["contacts"][0]["offered"] is False


async def test_dashboard_stream_pushes_snapshots_to_team_leads_only(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        agent = await token_for(services, "Anna", skills="burgerzaken:3,nl,written")
        lead = await token_for(services, "Lea", "teamlead")
        assert (await client.get("/dashboard/events", headers=bearer(agent))).status == 403
        async with client.get("/dashboard/events", headers=bearer(lead)) as stream:
            first = await read_events(stream, "snapshot", 5)
            assert first["totals"]["waiting"] == 0
            await webform(client, "Paspoort", "Paspoort verlopen.", "jan@example.nl")
            second = await read_events(stream, "snapshot", 5)
            while second["totals"]["waiting"] == 0:
                second = await read_events(stream, "snapshot", 5)
            assert second["totals"]["arrivals_last_hour"] == 1
