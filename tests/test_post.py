"""The scanned-post channel end to end: letters in through the API and the drop folder (text
layer, Dutch OCR, mixed, unreadable), idempotent, dated by receipt; replies out as printable
letters for the mail room and by e-mail when the resident consented."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from pypdf import PdfReader, PdfWriter

from adapters.post.dropfolder import MAX_ATTEMPTS, DropFolder
from adapters.post.handlers import PostAdapter
from adapters.post.reading import ocr_available
from kcc.clock import ManualClock
from kcc.services import Services
from sandbox.post import image_pdf, mixed_pdf, submit_letter, text_pdf
from tests.helpers import bearer, running_service, token_for

Client = TestClient[object, object]

PASPOORT = (
    "Betreft: nieuw paspoort\n\n"
    "Geachte heer, mevrouw,\n\n"
    "Mijn paspoort is verlopen. Hoe vraag ik een nieuw paspoort aan?\n\n"
    "Met vriendelijke groet,\nJan de Vries"
)
SCANNED = (
    "Geachte heer, mevrouw,\n\n"
    "Ik wil een nieuw paspoort aanvragen in verband met mijn verhuizing naar Groningen. "
    "Wanneer kan ik een afspraak maken?\n\n"
    "Met vriendelijke groet,\nPetra Bakker"
)
# Outside CI a machine without Tesseract skips the OCR tests; with CI=true they run and fail,
# so a green CI always means OCR was exercised.
needs_ocr = pytest.mark.skipif(
    not ocr_available() and os.environ.get("CI", "").lower() != "true",
    reason="tesseract/pdftoppm missing (make setup installs them)",
)


async def upload(
    client: Client, token: str | None, pdf: bytes, filename: str = "brief.pdf", **fields: Any
) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("file", pdf, filename=filename, content_type="application/pdf")
    for name, value in fields.items():
        form.add_field(name, str(value))
    headers = bearer(token) if token else {}
    return await client.post("/channels/post", data=form, headers=headers)


def post_adapter(client: Client) -> PostAdapter:
    # The adapter the app runs, for its drop folder and records.
    found = [
        r.handler
        for r in client.app.router.routes()
        if r.resource and r.resource.canonical == "/channels/post"
    ]  # type: ignore[union-attr]
    adapter = found[0].__self__  # type: ignore[union-attr]
    assert isinstance(adapter, PostAdapter)
    return adapter


async def contact_view(client: Client, lead: str, reference: str) -> dict[str, Any]:
    response = await client.get(f"/api/contacts/{reference}", headers=bearer(lead))
    assert response.status == 200
    return dict(await response.json())


async def test_letter_to_agent_reply_to_printable_letter_and_email_copy(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        await letter_flow(services, client)


async def letter_flow(services: Services, client: Client) -> None:
    scanner = await token_for(services, "Postkamer", role="integration")
    agent = await token_for(services, "Anna", skills="burgerzaken:3,nl,written")
    response = await upload(
        client,
        scanner,
        text_pdf([PASPOORT]),
        sender_name="Jan de Vries",
        postal_address="Grote Markt 1\n9712hn  Groningen",
        email="jan@example.nl",
        email_consent="ja",
        received_on="2026-11-20",
        scan_id="scan-0001",
    )
    assert response.status == 201, await response.text()
    created = await response.json()
    reference = created["reference"]
    assert created["outcome"] == "created"
    assert created["pages"] == [
        {"page": 1, "source": "text", "chars": created["pages"][0]["chars"]}
    ]

    await client.post("/api/agents/me/status", json={"status": "available"}, headers=bearer(agent))
    await services.router.idle()
    response = await client.post("/api/agents/me/next", headers=bearer(agent))
    assert response.status == 200
    contact = await response.json()
    assert contact["reference"] == reference
    assert contact["channel"] == "post"
    assert contact["topic"] == "paspoort-aanvragen"
    assert contact["queue"] == "burgerzaken"
    assert contact["subject"] == "nieuw paspoort"
    # The date of receipt starts the clock: noon of that day in Amsterdam (11:00 UTC in winter).
    assert contact["received_at"] == "2026-11-20T11:00:00+00:00"
    assert contact["resident"]["postal_address"] == "Grote Markt 1, 9712 HN Groningen"
    assert [a["content_type"] for a in contact["attachments"]] == ["application/pdf"]
    scan_event = next(e for e in contact["events"] if e["type"] == "post_scan")
    assert scan_event["data"]["pages"][0]["source"] == "text"
    assert scan_event["data"]["email_consent"] is True

    text = "Beste meneer De Vries, u vraagt een nieuw paspoort aan via een afspraak. " * 40
    response = await client.post(
        f"/api/contacts/{reference}/reply", json={"text": text}, headers=bearer(agent)
    )
    assert response.status == 201
    message = (await response.json())["message"]
    assert message["channel"] == "post"
    assert message["delivery_status"] == "sent"
    assert message["delivery_detail"] == "klaar om te printen bij de postkamer"

    # The mail room lists the letter, downloads and reads it back.
    listed = await (await client.get("/api/post/outgoing", headers=bearer(scanner))).json()
    assert [letter["reference"] for letter in listed["letters"]] == [reference]
    letter = listed["letters"][0]
    assert letter["status"] == "ready" and letter["pages"] >= 2
    download = await client.get(letter["download"], headers=bearer(scanner))
    assert download.status == 200
    assert download.headers["Content-Type"] == "application/pdf"
    pdf = PdfReader(io.BytesIO(await download.read()))
    assert len(pdf.pages) == letter["pages"]
    first = pdf.pages[0].extract_text()
    for expected in (
        "Ons kenmerk",
        reference,
        "Jan de Vries",
        "Grote Markt 1",
        "9712 HN Groningen",
        "Onderwerp",
        "nieuw paspoort",
        "14 050",
        "23 november 2026",
    ):
        assert expected in first, expected
    assert "Met vriendelijke groet" in pdf.pages[-1].extract_text()

    # The letter is on the contact, and the e-mail copy waits for the e-mail channel.
    view = await contact_view(client, agent, reference)
    assert sorted(a["content_type"] for a in view["attachments"]) == ["application/pdf"] * 2
    outbound = [m for m in view["messages"] if m["direction"] == "outbound"]
    assert [m["channel"] for m in outbound] == ["post", "email"]
    assert outbound[1]["delivery_status"] == "queued"
    assert "ook als brief per post" in outbound[1]["body"]

    # Printed, then posted: the agent sees where the letter is.
    marked = await client.post(
        f"/api/post/outgoing/{letter['id']}/printed", headers=bearer(scanner)
    )
    assert (await marked.json())["status"] == "printed"
    marked = await client.post(f"/api/post/outgoing/{letter['id']}/posted", headers=bearer(scanner))
    assert (await marked.json())["status"] == "posted"
    again = await client.post(f"/api/post/outgoing/{letter['id']}/printed", headers=bearer(scanner))
    assert (await again.json())["status"] == "posted"  # never back
    view = await contact_view(client, agent, reference)
    post_message = next(
        m for m in view["messages"] if m["channel"] == "post" and m["direction"] == "outbound"
    )
    assert post_message["delivery_detail"].startswith("per post verstuurd op")
    assert [e["reason"] for e in view["events"] if e["type"] == "post_letter"] == [
        "brief geprint",
        "brief verstuurd",
    ]
    empty = await (await client.get("/api/post/outgoing", headers=bearer(scanner))).json()
    assert empty["letters"] == []


async def test_no_email_copy_without_consent_and_retry_makes_one_letter(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        scanner = await token_for(services, "Postkamer", role="integration")
        response = await upload(
            client,
            scanner,
            text_pdf([PASPOORT]),
            sender_name="Jan de Vries",
            postal_address="Grote Markt 1, 9712 HN Groningen",
            email="jan@example.nl",
        )
        contact = await services.store.by_reference((await response.json())["reference"])
        assert contact is not None
        sent = await services.outbox.send(contact, "Wij hebben uw brief ontvangen.")
        assert sent.delivery_status == "sent"
        # The outbox tries a message again when its process died while sending: same letter.
        await services.store.set_delivery(sent.id or 0, "sending")
        adapter = post_adapter(client)
        message = await services.outbox._outbound(contact, sent)
        again = await adapter.sender.send(message)
        assert again.provider_id == sent.channel_message_id
        assert len(await adapter.records.letters(None)) == 1
        channels = [m.channel for m in await services.store.messages(contact.id or 0)]
        assert channels == ["post", "post"]  # the letter in, the letter out; no e-mail


@needs_ocr
async def test_scanned_letter_is_read_with_dutch_ocr(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        scanner = await token_for(services, "Postkamer", role="integration")
        lead = await token_for(services, "Lead", role="teamlead")
        response = await upload(client, scanner, image_pdf([SCANNED]))
        assert response.status == 201
        created = await response.json()
        assert created["pages"][0]["source"] == "ocr"
        view = await contact_view(client, lead, created["reference"])
        body = view["body"].lower()
        for word in ("paspoort", "verhuizing", "groningen", "afspraak"):
            assert word in body, word
        assert "ocr, kan fouten bevatten" in body
        assert view["topic"] in ("paspoort-aanvragen", "verhuizing-doorgeven")
        event = next(e for e in view["events"] if e["type"] == "post_scan")
        assert event["data"]["ocr_pages"] == 1
        assert "OCR" in event["reason"]


@needs_ocr
async def test_mixed_letter_records_the_source_of_each_page(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        scanner = await token_for(services, "Postkamer", role="integration")
        response = await upload(client, scanner, mixed_pdf(PASPOORT, SCANNED))
        created = await response.json()
        assert [p["source"] for p in created["pages"]] == ["text", "ocr"]
        contact = await services.store.by_reference(created["reference"])
        assert contact is not None
        assert "[Pagina 1: tekst uit de PDF]" in contact.body
        assert "[Pagina 2: tekst via OCR, kan fouten bevatten]" in contact.body
        assert "verhuizing" in contact.body


@needs_ocr
async def test_a_blank_scan_still_becomes_a_contact(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        scanner = await token_for(services, "Postkamer", role="integration")
        response = await upload(client, scanner, image_pdf([""]))
        assert response.status == 201
        created = await response.json()
        assert created["pages"][0]["source"] == "empty"
        contact = await services.store.by_reference(created["reference"])
        assert contact is not None
        assert contact.body == "Brief zonder leesbare tekst, zie bijlage"
        assert len(await services.store.attachments(contact.id or 0)) == 1


def encrypted_pdf() -> bytes:
    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(text_pdf([PASPOORT]))).pages:
        writer.add_page(page)
    writer.encrypt("geheim")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def zero_page_pdf() -> bytes:
    out = io.BytesIO()
    PdfWriter().write(out)
    return out.getvalue()


async def test_unreadable_files_get_a_clear_answer(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        scanner = await token_for(services, "Postkamer", role="integration")
        good = text_pdf([PASPOORT])
        cases = [
            (b"%PDF-1.7\n" + bytes(range(256)) * 20, 422, "beschadigd"),
            (good[: len(good) // 3], 422, "beschadigd"),
            (encrypted_pdf(), 422, "versleuteld"),
            (zero_page_pdf(), 422, "geen pagina"),
            (b"PK\x03\x04 this is a zip, not a letter", 415, "geen PDF"),
            (b"%PDF-1.7\n" + b"0" * 20_000_001, 413, ""),
        ]
        for data, status, words in cases:
            response = await upload(client, scanner, data)
            assert response.status == status, (status, await response.text())
            assert words in (await response.json())["error"]
        response = await upload(client, scanner, good, received_on="gisteren")
        assert response.status == 422
        response = await client.post(
            "/channels/post", json={"text": "geen pdf"}, headers=bearer(scanner)
        )
        assert response.status == 415
        assert await services.store.queued_count() == 0


async def test_the_same_scan_twice_is_one_contact(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        scanner = await token_for(services, "Postkamer", role="integration")
        pdf = text_pdf([PASPOORT])
        first = await upload(client, scanner, pdf, scan_id="A-17")
        again = await upload(client, scanner, text_pdf([PASPOORT + "\n"]), scan_id="A-17")
        assert (first.status, again.status) == (201, 200)
        assert (await first.json())["reference"] == (await again.json())["reference"]
        assert (await again.json())["outcome"] == "duplicate"
        # Without a scan id, the same bytes are the same letter.
        one = await upload(client, scanner, pdf)
        two = await upload(client, scanner, pdf)
        assert (one.status, two.status) == (201, 200)
        assert (await one.json())["reference"] == (await two.json())["reference"]
        assert await services.store.queued_count() == 2


async def test_received_date_from_metadata_is_validated(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))  # 10:00 in Groningen
    async with running_service(tmp_path, clock=clock) as (services, client):
        scanner = await token_for(services, "Postkamer", role="integration")
        pdf = text_pdf([PASPOORT])
        today = await upload(client, scanner, pdf, received_on="2026-11-23", scan_id="t")
        contact = await services.store.by_reference((await today.json())["reference"])
        assert contact is not None
        assert contact.received_at == clock.now()  # noon today is still to come: now
        default = await upload(client, scanner, pdf, scan_id="d")
        contact = await services.store.by_reference((await default.json())["reference"])
        assert contact is not None and contact.received_at == clock.now()
        for bad, words in (("2026-11-24", "toekomst"), ("2025-01-02", "dagen geleden")):
            response = await upload(client, scanner, pdf, received_on=bad, scan_id=bad)
            assert response.status == 422
            assert words in (await response.json())["error"]


async def test_a_second_letter_with_our_reference_joins_the_open_contact(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        scanner = await token_for(services, "Postkamer", role="integration")
        first = await (await upload(client, scanner, text_pdf([PASPOORT]))).json()
        reference = first["reference"]
        follow_up = text_pdf(
            [f"Betreft: uw kenmerk {reference}\n\nIk stuur hierbij een kopie van mijn paspoort."]
        )
        response = await upload(client, scanner, follow_up)
        assert response.status == 200
        joined = await response.json()
        assert (joined["reference"], joined["outcome"]) == (reference, "follow_up")
        contact = await services.store.by_reference(reference)
        assert contact is not None
        assert len(await services.store.messages(contact.id or 0)) == 2
        assert len(await services.store.attachments(contact.id or 0)) == 2
        # A letter naming a reference we do not know simply starts a new contact.
        other = await upload(client, scanner, text_pdf(["Kenmerk KCC-2026-999999, verhuizing"]))
        assert (await other.json())["outcome"] == "created"


async def test_only_the_mail_room_may_deliver_and_collect_letters(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        agent = await token_for(services, "Anna", skills="burgerzaken:3,nl,written")
        pdf = text_pdf([PASPOORT])
        assert (await upload(client, None, pdf)).status == 401
        assert (await upload(client, agent, pdf)).status == 403
        assert (await client.get("/api/post/outgoing")).status == 401
        assert (await client.get("/api/post/outgoing", headers=bearer(agent))).status == 403
        response = await client.get("/api/post/outgoing/1/pdf", headers=bearer(agent))
        assert response.status == 403
        assert (await client.post("/api/post/outgoing/1/posted")).status == 401
        assert await services.store.queued_count() == 0


async def test_drop_folder_takes_complete_files_and_quarantines_broken_ones(
    tmp_path: Path,
) -> None:
    drop = tmp_path / "scans"
    drop.mkdir()
    async with running_service(tmp_path) as (services, client):
        lead = await token_for(services, "Lead", role="teamlead")
        adapter = post_adapter(client)
        folder = DropFolder(services, adapter.intake, drop, poll_seconds=0.01)
        pdf = text_pdf([PASPOORT])

        # Still being written: not read, however often we look, until it stops changing.
        (drop / "brief-1.pdf.part").write_bytes(pdf)
        (drop / "brief-1.json").write_text(
            '{"sender_name": "Jan de Vries", "received_on": "2026-11-20", "scan_id": "S-1"}'
        )
        partial = drop / "brief-2.pdf"
        partial.write_bytes(pdf[:100])
        assert await folder.scan_once() == 0
        with partial.open("ab") as handle:
            handle.write(pdf[100:])
        assert await folder.scan_once() == 0  # it changed since the last look
        (drop / "brief-1.pdf.part").rename(drop / "brief-1.pdf")
        (drop / "kapot.pdf").write_bytes(b"%PDF-1.4\nkapot")
        assert await folder.scan_once() == 1  # brief-2 is stable now; the rest is new
        assert await folder.scan_once() == 2
        assert sorted(p.name for p in (drop / "processed").iterdir()) == [
            "brief-1.json",
            "brief-1.pdf",
            "brief-2.pdf",
        ]
        assert sorted(p.name for p in (drop / "failed").iterdir()) == [
            "kapot.pdf",
            "kapot.pdf.reden.txt",
        ]
        assert [p.name for p in drop.iterdir() if p.is_file()] == []
        assert await services.store.queued_count() == 2
        found = await services.store.find_message("post", "scan:S-1")
        assert found is not None
        assert found[0].received_at == datetime(2026, 11, 20, 11, 0, tzinfo=UTC)

        response = await client.get("/api/quarantine", headers=bearer(lead))
        items = (await response.json())["items"]
        assert [i["channel"] for i in items] == ["post"]
        assert "beschadigd" in items[0]["reason"] and items[0]["has_original"]

        # A crash after intake but before the move: the restarted watcher takes the file in
        # again and finds the contact it already made.
        (drop / "brief-3.pdf").write_bytes((drop / "processed" / "brief-2.pdf").read_bytes())
        restarted = DropFolder(services, adapter.intake, drop, poll_seconds=0.01)
        await restarted.scan_once()
        assert await restarted.scan_once() == 1
        assert (drop / "processed" / "brief-3.pdf").exists()
        assert await services.store.queued_count() == 2


async def test_drop_folder_runs_with_the_service_when_configured(tmp_path: Path) -> None:
    import asyncio

    from aiohttp.test_utils import TestServer

    from kcc.app import create_app
    from kcc.settings import REPO_CONFIG, Settings

    drop = tmp_path / "scans"
    settings = Settings(
        data_dir=tmp_path,
        config_dir=REPO_CONFIG,
        secrets={"KCC_POST_DROP_DIR": str(drop), "KCC_POST_POLL_SECONDS": "0.05"},
    )
    services = await Services.build(settings, ManualClock())
    client: Client = TestClient(TestServer(create_app(services, sweep=False)))
    await client.start_server()
    try:
        drop.mkdir(exist_ok=True)
        (drop / "brief.pdf").write_bytes(text_pdf([PASPOORT]))
        for _ in range(200):
            if (drop / "processed" / "brief.pdf").exists():
                break
            await asyncio.sleep(0.05)
        assert (drop / "processed" / "brief.pdf").exists()
        assert await services.store.queued_count() == 1
    finally:
        await client.close()


async def test_sandbox_helper_submits_through_the_real_path(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        scanner = await token_for(services, "Postkamer", role="integration")
        answer = await submit_letter(
            str(client.make_url("")),
            scanner,
            text_pdf([PASPOORT]),
            sender_name="Jan de Vries",
            email_consent=False,
            scan_id="demo-1",
        )
        assert answer["outcome"] == "created"
        found = await services.store.find_message("post", "scan:demo-1")
        assert found is not None and found[0].reference == answer["reference"]


@pytest.mark.postgres
@pytest.mark.redis
async def test_letter_flow_on_postgres_and_redis(
    tmp_path: Path, fresh_postgres: str, fresh_redis: str
) -> None:
    async with running_service(tmp_path, fresh_postgres, fresh_redis) as (services, client):
        await letter_flow(services, client)


async def test_a_reply_without_postal_address_fails_with_a_reason(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        scanner = await token_for(services, "Postkamer", role="integration")
        created = await (await upload(client, scanner, text_pdf([PASPOORT]))).json()
        contact = await services.store.by_reference(created["reference"])
        assert contact is not None
        sent = await services.outbox.send(contact, "Wij hebben uw brief ontvangen.")
        assert sent.delivery_status == "failed"
        assert "geen postadres" in (sent.delivery_detail or "")
        assert await post_adapter(client).records.letters(None) == []


@needs_ocr
async def test_ocr_time_and_page_limits_never_lose_the_letter() -> None:
    from adapters.post.config import IntakeConfig
    from adapters.post.reading import read_letter

    two_scans = image_pdf([SCANNED, "Tweede pagina over mijn verhuizing."])
    limited = await read_letter(two_scans, IntakeConfig(ocr_max_pages=1))
    assert [p.source for p in limited.pages] == ["ocr", "not_read"]
    assert "meer dan 1 pagina" in limited.pages[1].detail
    assert "[Pagina 2: niet gelezen: meer dan 1 pagina's voor OCR]" in limited.text

    slow = await read_letter(two_scans, IntakeConfig(ocr_page_timeout_seconds=0.01))
    assert [p.source for p in slow.pages] == ["not_read", "not_read"]
    assert not slow.has_text


async def test_drop_folder_ignores_links_and_gives_up_on_a_file_that_keeps_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop = tmp_path / "scans"
    drop.mkdir()
    secret = tmp_path / "elders.pdf"
    secret.write_bytes(text_pdf(["niet voor de scanmap"]))
    (drop / "link.pdf").symlink_to(secret)
    async with running_service(tmp_path) as (services, client):
        lead = await token_for(services, "Lead", role="teamlead")
        adapter = post_adapter(client)
        folder = DropFolder(services, adapter.intake, drop)
        (drop / "brief.pdf").write_bytes(text_pdf([PASPOORT]))

        async def broken(*_args: object, **_kwargs: object) -> None:
            raise ConnectionError("database down")

        monkeypatch.setattr(adapter.intake, "receive", broken)
        await folder.scan_once()  # first sighting
        for _ in range(MAX_ATTEMPTS):  # left in place while it might be a passing outage
            assert (drop / "brief.pdf").exists()
            await folder.scan_once()
        assert (drop / "failed" / "brief.pdf").exists()
        assert (drop / "link.pdf").is_symlink()  # never read, never moved
        items = (await (await client.get("/api/quarantine", headers=bearer(lead))).json())["items"]
        assert len(items) == 1 and "ConnectionError" in items[0]["reason"]
        assert await services.store.queued_count() == 0


@needs_ocr
async def test_the_service_answers_while_a_letter_is_being_read(tmp_path: Path) -> None:
    import asyncio

    async with running_service(tmp_path) as (services, client):
        scanner = await token_for(services, "Postkamer", role="integration")
        slots = post_adapter(client).intake.ocr_slots
        reading = asyncio.create_task(upload(client, scanner, image_pdf([SCANNED, SCANNED])))
        for _ in range(400):
            if slots.locked():
                break
            await asyncio.sleep(0.01)
        assert slots.locked(), "OCR did not start"
        # OCR runs in subprocesses: the event loop serves other requests meanwhile.
        assert (await client.get("/healthz")).status == 200
        assert not reading.done()
        assert (await reading).status == 201


async def test_a_web_form_without_email_or_phone_is_answered_by_letter(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        website = await token_for(services, "Website", role="integration")
        response = await client.post(
            "/api/contacts",
            json={
                "channel": "webform",
                "channel_message_id": "form-1",
                "from": {"name": "Petra Bakker", "postal_address": "Hereweg 12, 9725aa Groningen"},
                "text": "Hoe geef ik mijn verhuizing door?",
            },
            headers=bearer(website),
        )
        contact = await services.store.by_reference((await response.json())["reference"])
        assert contact is not None and contact.reply_channel == "post"
        sent = await services.outbox.send(contact, "U geeft uw verhuizing door via de website.")
        assert (sent.channel, sent.delivery_status) == ("post", "sent")
        letter = (await post_adapter(client).records.letters("ready"))[0]
        text = PdfReader(io.BytesIO(await services.attachments.read(letter.storage_key)))
        page = text.pages[0].extract_text()
        assert "Uw bericht van 23 november 2026" in page
        assert "Petra Bakker" in page and "Hereweg 12" in page


def test_metadata_from_sidecars_and_addresses() -> None:
    from datetime import date

    from adapters.post.metadata import normalise_address, parse_sidecar, references_in
    from contacts.inbound import InboundError

    toml = parse_sidecar(
        "brief.toml",
        b'sender_name = "Jan  de Vries"\nreceived_on = 2026-11-20\nemail_consent = true\n'
        b'postal_address = """Grote Markt 1\n9712hn Groningen"""\n',
    )
    assert (toml.sender_name, toml.received_on, toml.email_consent) == (
        "Jan de Vries",
        date(2026, 11, 20),
        True,
    )
    assert toml.postal_address == "Grote Markt 1, 9712 HN Groningen"
    assert (
        parse_sidecar("b.json", b'{"email_consent": "nee", "scan_id": "X"}').email_consent is False
    )
    assert (
        normalise_address("  Hereweg 12 ;  9725 aa   GRONINGEN ") == "Hereweg 12, 9725 AA GRONINGEN"
    )
    assert references_in("zie kcc-2026-000012 en KCC-2026-000012, KCC-2026-000013") == [
        "KCC-2026-000012",
        "KCC-2026-000013",
    ]
    for bad in (b"{niet json", b"[1, 2]", b'{"recieved_on": "2026-11-20"}', b'{"email": "x"}'):
        with pytest.raises(InboundError):
            parse_sidecar("b.json", bad)


async def test_drop_folder_does_not_read_a_file_that_is_too_large(tmp_path: Path) -> None:
    drop = tmp_path / "scans"
    drop.mkdir()
    async with running_service(tmp_path) as (services, client):
        adapter = post_adapter(client)
        folder = DropFolder(services, adapter.intake, drop)
        huge = drop / "groot.pdf"
        with huge.open("wb") as handle:
            handle.truncate(adapter.config.intake.max_pdf_bytes + 1)  # sparse: no disk used
        await folder.scan_once()
        assert await folder.scan_once() == 1
        assert (drop / "failed" / "groot.pdf").exists()
        items = await services.quarantine.items()
        assert len(items) == 1 and "groter dan" in items[0].reason
        assert items[0].storage_key is None
