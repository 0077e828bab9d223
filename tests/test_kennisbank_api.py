"""The kennisbank in the running service, on SQLite and on PostgreSQL: import, search API,
suggestions, editing with versions and optimistic concurrency, replies that record the article
version, gaps without personal data, routing by the same engine, and a second process that
notices an edit."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from kcc.app import create_app
from kcc.clock import ManualClock
from kcc.services import Services
from kcc.settings import REPO_CONFIG, Settings
from tests.helpers import bearer, token_for

FIXTURES = Path(__file__).parent / "fixtures" / "kennisbank"
RESULT_KEYS = {"slug", "title", "version", "score", "skill", "kind", "text", "link"}

Client = TestClient[object, object]


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("fresh_postgres"))
    return f"sqlite:///{tmp_path / 'kb.sqlite3'}"


def config_with_fixtures(tmp_path: Path) -> Path:
    """The repository's configuration with the small fixture kennisbank."""
    config = tmp_path / "config"
    if not config.exists():
        config.mkdir()
        for path in REPO_CONFIG.glob("*.toml"):
            shutil.copy(path, config / path.name)
        shutil.copytree(FIXTURES, config / "kennisbank")
    return config


@asynccontextmanager
async def service(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[Services, Client]]:
    settings = Settings(
        data_dir=tmp_path, config_dir=config_with_fixtures(tmp_path), database_url=database_url
    )
    services = await Services.build(settings, ManualClock())
    client: Client = TestClient(TestServer(create_app(services, sweep=False)))
    await client.start_server()
    try:
        yield services, client
    finally:
        await client.close()


async def get_json(client: Client, path: str, token: str, status: int = 200) -> Any:
    response = await client.get(path, headers=bearer(token))
    assert response.status == status, await response.text()
    return await response.json() if response.content_type == "application/json" else None


async def test_search_api_returns_the_channel_variant(tmp_path: Path, database_url: str) -> None:
    async with service(tmp_path, database_url) as (services, client):
        agent = await token_for(services, "Anna", skills="parkeren,nl,chat")
        editor = await token_for(services, "Eva", role="editor")
        integration = await token_for(services, "Website", role="integration")

        found = await get_json(
            client, "/api/kennisbank/search?q=parkeervergunning&channel=whatsapp", agent
        )
        first = found["results"][0]
        assert set(first) == RESULT_KEYS
        assert first["slug"] == "bewoners-parkeren"
        assert first["version"] == 1
        assert first["skill"] == "parkeren"
        assert first["text"].startswith("Vergunning om te parkeren")  # ## Kort
        assert first["link"] == "https://example.org/parkeren"

        phone = await get_json(client, "/api/kennisbank/search?q=parkeren&channel=phone", editor)
        assert phone["results"][0]["text"].startswith("- Vraag naar het adres")
        english = await get_json(
            client, "/api/kennisbank/search?q=parking+permit&channel=email&language=en", agent
        )
        assert english["results"][0]["title"] == "Parking for residents"
        assert english["results"][0]["text"].startswith("Do you live")
        limited = await get_json(client, "/api/kennisbank/search?q=aanvragen&limit=1", agent)
        assert len(limited["results"]) == 1

        await get_json(client, "/api/kennisbank/search?q=paspoort", integration, status=403)
        assert (await client.get("/api/kennisbank/search?q=paspoort")).status == 401
        for bad in ("q=", "q=x&channel=fax", "q=x&limit=0", "q=x&limit=veel", "q=" + "a" * 2001):
            response = await client.get(f"/api/kennisbank/search?{bad}", headers=bearer(agent))
            assert response.status == 400, bad


async def test_edits_are_versioned_with_optimistic_concurrency(
    tmp_path: Path, database_url: str
) -> None:
    async with service(tmp_path, database_url) as (services, client):
        editor = await token_for(services, "Eva", role="editor")
        lead = await token_for(services, "Lea", role="teamlead")
        agent = await token_for(services, "Anna", skills="burgerzaken,nl,written")

        article = await get_json(client, "/api/kennisbank/articles/paspoort", agent)
        assert article["version"] == 1 and article["origin"] == "file"
        original = article["source"]
        edited = original.replace(
            "Neem een pasfoto mee.", "Neem een pasfoto mee. Ook voor een zwemdiploma-reis."
        )

        response = await client.put(
            "/api/kennisbank/articles/paspoort",
            json={"source": edited, "expected_version": 1},
            headers=bearer(editor),
        )
        assert response.status == 200, await response.text()
        saved = await response.json()
        assert (saved["version"], saved["origin"], saved["author"]) == (2, "api", saved["author"])
        assert "zwemdiploma" in saved["variants"]["nl"]["answer"]

        # A second editor who started from version 1 gets a conflict, not a lost update.
        response = await client.put(
            "/api/kennisbank/articles/paspoort",
            json={"source": original, "expected_version": 1},
            headers=bearer(lead),
        )
        assert response.status == 409
        assert "version 2" in (await response.json())["error"]

        history = await get_json(client, "/api/kennisbank/articles/paspoort", agent)
        assert [v["version"] for v in history["versions"]] == [2, 1]
        old = await get_json(client, "/api/kennisbank/articles/paspoort/versions/1", agent)
        assert old["source"] == original
        await get_json(client, "/api/kennisbank/articles/paspoort/versions/9", agent, 404)
        await get_json(client, "/api/kennisbank/articles/paspoort/versions/x", agent, 404)
        await get_json(client, "/api/kennisbank/articles/bestaat-niet", agent, 404)

        # The search serves the new version at once.
        found = await get_json(client, "/api/kennisbank/search?q=zwemdiploma+paspoort", agent)
        assert (found["results"][0]["slug"], found["results"][0]["version"]) == ("paspoort", 2)

        # Agents read but do not write.
        response = await client.put(
            "/api/kennisbank/articles/paspoort",
            json={"source": original, "expected_version": 2},
            headers=bearer(agent),
        )
        assert response.status == 403
        listing = await get_json(client, "/api/kennisbank/articles", editor)
        assert {a["slug"]: a["version"] for a in listing["articles"]}["paspoort"] == 2


async def test_create_validates_and_never_renders_markdown(
    tmp_path: Path, database_url: str
) -> None:
    async with service(tmp_path, database_url) as (services, client):
        editor = await token_for(services, "Eva", role="editor")
        source = (
            (FIXTURES / "trouwen.md").read_text().replace('slug = "trouwen"', 'slug = "scheiden"')
        )
        hostile = source.replace(
            "Doe eerst online een melding", "<script>alert('x')</script> Doe eerst online een"
        )

        response = await client.post(
            "/api/kennisbank/articles", json={"source": hostile}, headers=bearer(editor)
        )
        assert response.status == 201, await response.text()
        assert response.content_type == "application/json"
        created = await response.json()
        assert created["version"] == 1
        # Stored and returned as text, exactly; no HTML anywhere.
        assert "<script>alert('x')</script>" in created["variants"]["nl"]["short"]
        assert created["source"] == hostile

        response = await client.post(
            "/api/kennisbank/articles", json={"source": hostile}, headers=bearer(editor)
        )
        assert response.status == 409  # exists: edit it with PUT

        for bad, reason in (
            ("geen front matter", "front matter"),
            (source.replace('skill = "burgerzaken"', 'skill = "toverij"'), "skill"),
            (source.replace('["huwelijk-partnerschap"]', '["bestaat-niet"]'), "products"),
            (source.split("## Telefoon")[0], "Telefoon"),
        ):
            response = await client.post(
                "/api/kennisbank/articles", json={"source": bad}, headers=bearer(editor)
            )
            assert response.status == 422, reason
            assert reason in (await response.json())["error"]
        response = await client.put(
            "/api/kennisbank/articles/trouwen",
            json={"source": source, "expected_version": 1},
            headers=bearer(editor),
        )
        assert response.status == 422  # the slug in the text is not the one edited
        response = await client.put(
            "/api/kennisbank/articles/trouwen", json={"source": "x"}, headers=bearer(editor)
        )
        assert response.status in (400, 422)


async def take_contact(
    services: Services, client: Client, agent: str, text: str, subject: str = ""
) -> dict[str, Any]:
    response = await client.post(
        "/channels/webform",
        json={"email": "jan@example.nl", "subject": subject, "message": text},
    )
    assert response.status == 201, await response.text()
    await client.post("/api/agents/me/status", json={"status": "available"}, headers=bearer(agent))
    await services.router.idle()
    response = await client.post("/api/agents/me/next", headers=bearer(agent))
    assert response.status == 200, await response.text()
    contact: dict[str, Any] = await response.json()
    return contact


async def test_reply_records_the_article_version_and_suggestions_use_the_contact(
    tmp_path: Path, database_url: str
) -> None:
    async with service(tmp_path, database_url) as (services, client):
        agent = await token_for(services, "Anna", skills="afval,nl,written")
        other = await token_for(services, "Piet", skills="parkeren,nl,written")
        contact = await take_contact(
            services, client, agent, "Het deksel van mijn container is eraf.", "Container kapot"
        )
        reference = contact["reference"]
        assert contact["topic"] == "afvalcontainer-kapot"

        suggestions = await get_json(client, f"/api/contacts/{reference}/suggestions", agent)
        first = suggestions["suggestions"][0]
        assert set(first) == RESULT_KEYS
        assert first["slug"] == "afvalcontainer"
        # A web form is answered by e-mail: the full answer.
        assert first["text"].startswith("Is uw container kapot")
        await get_json(client, f"/api/contacts/{reference}/suggestions", other, 404)

        response = await client.post(
            f"/api/contacts/{reference}/reply",
            json={"text": first["text"], "article": {"slug": "afvalcontainer", "version": 7}},
            headers=bearer(agent),
        )
        assert response.status == 422
        response = await client.post(
            f"/api/contacts/{reference}/reply",
            json={"text": first["text"], "article": {"slug": first["slug"], "version": 1}},
            headers=bearer(agent),
        )
        assert response.status == 201, await response.text()
        assert (await response.json())["message"]["article"] == {
            "slug": "afvalcontainer",
            "version": 1,
        }

        # The article changes later; what the resident got can still be reconstructed.
        editor = await token_for(services, "Eva", role="editor")
        source = (await get_json(client, "/api/kennisbank/articles/afvalcontainer", editor))[
            "source"
        ]
        response = await client.put(
            "/api/kennisbank/articles/afvalcontainer",
            json={"source": source.replace("twee weken", "drie weken"), "expected_version": 1},
            headers=bearer(editor),
        )
        assert response.status == 200
        view = await get_json(client, f"/api/contacts/{reference}", agent)
        sent = [m for m in view["messages"] if m["direction"] == "outbound"][-1]
        assert sent["article"] == {"slug": "afvalcontainer", "version": 1}
        then = await get_json(
            client,
            f"/api/kennisbank/articles/{sent['article']['slug']}/versions/"
            f"{sent['article']['version']}",
            agent,
        )
        assert then["variants"]["nl"]["answer"] == sent["body"]
        assert "twee weken" in then["variants"]["nl"]["answer"]


async def test_gaps_are_counted_without_personal_data(tmp_path: Path, database_url: str) -> None:
    async with service(tmp_path, database_url) as (services, client):
        agent = await token_for(services, "Anna", skills="algemeen,nl,written")
        editor = await token_for(services, "Eva", role="editor")
        question = "Zwemles voor mijn zoon, BSN 123456782, bel mij op 0612345678"
        for _ in range(2):
            await get_json(client, f"/api/kennisbank/search?q={question}", agent)
        await get_json(client, "/api/kennisbank/search?q=paspoort+aanvragen", agent)
        # An inbound contact nobody wrote an article for is a gap too.
        response = await client.post(
            "/channels/webform",
            json={
                "email": "jan@example.nl",
                "message": "Mag ik een zwembad in de achtertuin? Mijn telefoon 06-87654321.",
            },
        )
        assert response.status == 201

        gaps = (await get_json(client, "/api/kennisbank/gaps", editor))["gaps"]
        by_query = {g["query"]: g for g in gaps}
        assert by_query["zwemles zoon bsn bel"]["count"] == 2
        assert by_query["zwemles zoon bsn bel"]["source"] == "search"
        assert not any("paspoort" in q for q in by_query)
        assert any("zwembad" in q and g["source"] == "webform" for q, g in by_query.items())

        # Stored nowhere in the gap table: not the BSN, not the phone numbers.
        async with services.engine.connect() as connection:
            rows = (await connection.execute(sa.text("SELECT query FROM kb_gap"))).all()
        stored = " ".join(row[0] for row in rows)
        for secret in ("123456782", "0612345678", "87654321", "06"):
            assert secret not in stored
        await get_json(client, "/api/kennisbank/gaps", agent, 403)


async def test_routing_follows_an_article_edit(tmp_path: Path, database_url: str) -> None:
    """Routing and answers come from one engine: an edited article routes at once."""
    async with service(tmp_path, database_url) as (services, client):
        editor = await token_for(services, "Eva", role="editor")
        lead = await token_for(services, "Website", role="integration")
        message = "Vraag over de kermisattractie-ontheffing"
        before = await ingest(client, lead, message, "c-1")
        assert before["topic"] != "parkeervergunning-bewoners"

        source = (FIXTURES / "bewoners-parkeren.md").read_text()
        response = await client.put(
            "/api/kennisbank/articles/bewoners-parkeren",
            json={
                "source": source.replace(
                    '"kenteken wijzigen"]', '"kenteken wijzigen", "kermisattractie ontheffing"]'
                ),
                "expected_version": 1,
            },
            headers=bearer(editor),
        )
        assert response.status == 200
        after = await ingest(client, lead, message, "c-2")
        assert after["topic"] == "parkeervergunning-bewoners"
        assert after["queue"] == "parkeren"


async def ingest(client: Client, token: str, text: str, message_id: str) -> dict[str, Any]:
    response = await client.post(
        "/api/contacts",
        json={
            "channel": "email",
            "channel_message_id": message_id,
            "from": "jan@example.nl",
            "subject": "",
            "text": text,
        },
        headers=bearer(token),
    )
    assert response.status == 201, await response.text()
    contact: dict[str, Any] = await response.json()
    return contact


async def test_files_and_api_edits_coexist_and_other_processes_notice(
    tmp_path: Path, database_url: str
) -> None:
    async with service(tmp_path, database_url) as (first, client):
        editor = await token_for(first, "Eva", role="editor")
        source = (await get_json(client, "/api/kennisbank/articles/trouwen", editor))["source"]

        # A second process on the same database.
        settings = Settings(
            data_dir=tmp_path / "second",
            config_dir=config_with_fixtures(tmp_path),
            database_url=database_url,
        )
        second = await Services.build(settings, ManualClock())
        try:
            assert second.kennisbank.article("trouwen") is not None
            response = await client.put(
                "/api/kennisbank/articles/trouwen",
                json={"source": source + "\nExtra zin.", "expected_version": 1},
                headers=bearer(editor),
            )
            assert response.status == 200
            assert await second.kennisbank.refresh()
            found = second.kennisbank.article("trouwen")
            assert found is not None and found[1] == 2
            assert not await second.kennisbank.refresh()  # nothing new
        finally:
            await second.close()

    # A restart with unchanged files keeps the API edit current.
    async with service(tmp_path, database_url) as (services, client):
        current = await services.kennisbank.db.version("trouwen")
        assert current is not None and (current.version, current.origin) == (2, "api")

    # The municipality edits the file in the repository: that becomes a new version.
    path = config_with_fixtures(tmp_path) / "kennisbank" / "trouwen.md"
    path.write_text(path.read_text().replace("Trouwen?", "Gaan jullie trouwen?"))
    # A broken file is reported and skipped; it does not keep the service from starting.
    (path.parent / "kapot.md").write_text("+++\nslug = 'kapot'\n+++\n## Antwoord\nx\n")
    (path.parent / "README.md").write_text("# Over deze map\n")
    async with service(tmp_path, database_url) as (services, client):
        versions = await services.kennisbank.db.versions("trouwen")
        assert [(v.version, v.origin) for v in versions] == [(3, "file"), (2, "api"), (1, "file")]
        article = services.kennisbank.article("trouwen")
        assert article is not None and "Gaan jullie trouwen?" in article[0].variant("telegram")
        assert await services.kennisbank.db.versions("kapot") == []
        assert services.kennisbank.size == 4
        report = await services.kennisbank.db.import_directory(path.parent, services.clock.now())
        assert list(report.invalid) == ["kapot.md"] and report.unchanged == 4


def test_cli_adds_an_editor(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kcc.cli",
            "agents",
            "add",
            "--name",
            "Eva",
            "--role",
            "editor",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "(editor)" in result.stdout


async def test_two_processes_importing_at_once_store_each_version_once(
    tmp_path: Path, database_url: str
) -> None:
    from contacts.database import create_engine, read_session_factory, session_factory
    from contacts.schema import upgrade
    from kennisbank.store import ArticleStore

    await upgrade(database_url)
    engines = [create_engine(database_url) for _ in range(2)]
    try:
        stores = [ArticleStore(session_factory(e), read_session_factory(e)) for e in engines]
        now = ManualClock().now()
        reports = await asyncio.gather(*(s.import_directory(FIXTURES, now) for s in stores))
        # Each article is created by exactly one of the two.
        assert sorted(len(r.created) for r in reports) in ([0, 4], [1, 3], [2, 2])
        assert sum(len(r.created) for r in reports) == 4
        rows = await stores[0].current()
        assert [(r.slug, r.version) for r in rows] == [
            ("afvalcontainer", 1),
            ("bewoners-parkeren", 1),
            ("paspoort", 1),
            ("trouwen", 1),
        ]
        again = await stores[1].import_directory(FIXTURES, now)
        assert (again.created, again.updated, again.unchanged) == ([], [], 4)
    finally:
        for engine in engines:
            await engine.dispose()
