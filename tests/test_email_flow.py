"""The e-mail channel end to end on real servers: a resident's mail in the IMAP mailbox (Dovecot)
becomes a routed contact, the agent's reply over the API reaches the SMTP server (aiosmtpd)
threaded and with our reference, the resident's answer joins the same contact, and a restart
imports nothing again; on SQLite and on PostgreSQL + Redis. Then the LMTP path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from adapters.email.adapter import EmailAdapter
from contacts.models import Contact
from kcc.services import Services
from sandbox.mail import SmtpSink, deliver_lmtp, resident_mail
from tests.email_servers import Dovecot, dovecot, email_service
from tests.helpers import bearer, token_for

FIXTURES = Path(__file__).parent / "fixtures" / "email"
MAILBOX = "kcc@gemeente.example.nl"


@pytest.fixture
def mailbox() -> Iterator[Dovecot]:
    with dovecot() as server:
        yield server


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    server = SmtpSink()
    await server.start()
    yield server
    await server.stop()


def secrets_for(mailbox: Dovecot | None, sink: SmtpSink, lmtp: bool = False) -> dict[str, str]:
    secrets = {
        "KCC_SMTP_HOST": "127.0.0.1",
        "KCC_SMTP_PORT": str(sink.port),
        "KCC_SMTP_FROM": f"Gemeente Groningen <{MAILBOX}>",
        "KCC_SMTP_TLS": "none",
    }
    if mailbox is not None:
        secrets |= {
            "KCC_IMAP_HOST": "127.0.0.1",
            "KCC_IMAP_PORT": str(mailbox.port),
            "KCC_IMAP_USER": mailbox.user,
            "KCC_IMAP_PASSWORD": mailbox.password,
            "KCC_IMAP_TLS": "none",
            "KCC_IMAP_POLL_SECONDS": "1",
        }
    if lmtp:
        secrets["KCC_LMTP_PORT"] = "0"
    return secrets


async def eventually_message(services: Services, message_id: str) -> Contact:
    for _ in range(600):
        found = await services.store.find_message("email", message_id)
        if found is not None:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{message_id} never arrived")


async def contact_count(services: Services) -> int:
    async with services.engine.connect() as connection:
        return int((await connection.execute(sa.text("SELECT count(*) FROM contact"))).scalar_one())


async def take_and_reply(
    services: Services, client: TestClient[object, object], reference: str, text: str
) -> None:
    agent = await token_for(services, "Anna", skills="burgerzaken:3,nl,written")
    await client.post("/api/agents/me/status", json={"status": "available"}, headers=bearer(agent))
    await services.router.idle()
    response = await client.post("/api/agents/me/next", headers=bearer(agent))
    assert response.status == 200
    assert (await response.json())["reference"] == reference
    response = await client.post(
        f"/api/contacts/{reference}/reply", json={"text": text}, headers=bearer(agent)
    )
    assert response.status == 201
    response = await client.post(f"/api/contacts/{reference}/wait", json={}, headers=bearer(agent))
    assert response.status == 200


async def mail_flow(
    tmp_path: Path, mailbox: Dovecot, sink: SmtpSink, database_url: str, redis_url: str
) -> None:
    secrets = secrets_for(mailbox, sink)
    question = resident_mail(
        "jan@example.nl",
        "Paspoort verlopen",
        "Mijn paspoort is verlopen. Hoe vraag ik een nieuw paspoort aan?\n\n"
        "Met vriendelijke groet,\nJan de Vries",
        message_id="<vraag-1@bewoner.example.nl>",
        name="Jan de Vries",
    )
    mailbox.append(question)
    async with email_service(tmp_path, secrets, database_url, redis_url) as (
        services,
        client,
        _,
    ):
        contact = await eventually_message(services, "<vraag-1@bewoner.example.nl>")
        assert contact.queue == "burgerzaken"
        assert contact.body == "Mijn paspoort is verlopen. Hoe vraag ik een nieuw paspoort aan?"
        await take_and_reply(services, client, contact.reference, "Maak een afspraak online.")

        [sent] = await sink.wait_for(1)
        reply = sent.message
        assert sent.rcpt_tos == ("jan@example.nl",)
        assert reply["In-Reply-To"] == "<vraag-1@bewoner.example.nl>"
        assert f"[{contact.reference}]" in reply["Subject"]

        # The resident answers from their mail client: In-Reply-To names our message.
        answer = resident_mail(
            "jan@example.nl",
            f"Re: {reply['Subject']}",
            "Moet ik een pasfoto meenemen?\n\nOp 23 nov. schreef Gemeente:\n> Maak een afspraak",
            in_reply_to=reply["Message-ID"],
            message_id="<antwoord-1@bewoner.example.nl>",
        )
        mailbox.append(answer)
        joined = await eventually_message(services, "<antwoord-1@bewoner.example.nl>")
        assert joined.reference == contact.reference
        for _ in range(600):
            current = await services.store.get(contact.id or 0)
            if current is not None and current.status == "assigned":
                break
            await asyncio.sleep(0.05)
        assert current is not None and current.status == "assigned"  # back to the same agent
        bodies = [m.body for m in await services.store.messages(contact.id or 0)]
        assert len(bodies) == 3
        assert bodies[2].endswith("Moet ik een pasfoto meenemen?")
        assert await contact_count(services) == 1
        for _ in range(600):  # marked just after it became durable
            if mailbox.uids("INBOX") == []:
                break
            await asyncio.sleep(0.05)
        assert mailbox.uids("INBOX") == []

    # A restart reads the mailbox again and imports nothing.
    mailbox.append(question)  # even the same mail delivered again is stored once
    async with email_service(tmp_path, secrets, database_url, redis_url) as (
        services,
        _,
        adapter,
    ):
        assert adapter.poller is not None
        for _ in range(600):
            if adapter.poller.rounds >= 1 and mailbox.uids("INBOX") == []:
                break
            await asyncio.sleep(0.05)
        assert mailbox.uids("INBOX") == []
        assert await contact_count(services) == 1
        assert len(await services.store.messages(contact.id or 0)) == 3


async def test_mail_flow_on_sqlite(tmp_path: Path, mailbox: Dovecot, sink: SmtpSink) -> None:
    await mail_flow(tmp_path, mailbox, sink, "", "")


@pytest.mark.postgres
@pytest.mark.redis
async def test_mail_flow_on_postgres_and_redis(
    tmp_path: Path,
    mailbox: Dovecot,
    sink: SmtpSink,
    fresh_postgres: str,
    fresh_redis: str,
) -> None:
    await mail_flow(tmp_path, mailbox, sink, fresh_postgres, fresh_redis)


async def lmtp_port(adapter: EmailAdapter) -> int:
    assert adapter.lmtp is not None
    return adapter.lmtp.port


async def test_lmtp_answers_250_only_once_the_contact_is_durable(
    tmp_path: Path, sink: SmtpSink
) -> None:
    async with email_service(tmp_path, secrets_for(None, sink, lmtp=True)) as (
        services,
        _,
        adapter,
    ):
        port = await lmtp_port(adapter)
        raw = (FIXTURES / "outlook_reply.eml").read_bytes()
        replies = await deliver_lmtp("127.0.0.1", port, raw, recipients=[MAILBOX, "info@x.nl"])
        assert [code for code, _ in replies] == [250, 250]  # one reply per recipient
        found = await services.store.find_message("email", "<AM0PR01MB1234@example.nl>")
        assert found is not None  # durable when 250 came back
        assert found[0].body.startswith("Dank u. Mijn inkomen is per 1 december veranderd")
        # The mail server retries (it lost our 250): stored once.
        await deliver_lmtp("127.0.0.1", port, raw)
        # Auto-replies are accepted (so they are not retried) and make no contact.
        await deliver_lmtp("127.0.0.1", port, (FIXTURES / "auto_reply.eml").read_bytes())
        await deliver_lmtp("127.0.0.1", port, (FIXTURES / "broken_boundary.eml").read_bytes())
        assert await contact_count(services) == 1
        assert len(await services.quarantine.items()) == 1
        assert adapter.receiver.ignored == {"auto-reply": 1}


async def test_lmtp_refuses_oversize_mail_with_552(tmp_path: Path, sink: SmtpSink) -> None:
    async with email_service(
        tmp_path, secrets_for(None, sink, lmtp=True), max_attachment_bytes=2000
    ) as (services, _, adapter):
        port = await lmtp_port(adapter)
        raw = (FIXTURES / "nested_multipart.eml").read_bytes()
        # Announced size (SIZE= on MAIL FROM) above the limit, and not announced: the data
        # itself is cut off; both refused for good.
        [(announced, _)] = await deliver_lmtp("127.0.0.1", port, raw)
        [(unannounced, _)] = await deliver_lmtp("127.0.0.1", port, raw, announce_size=False)
        assert (announced, unannounced) == (552, 552)
        assert await contact_count(services) == 0
        small = resident_mail("ria@example.nl", "Vraag", "Is het stadhuis open?")
        assert (await deliver_lmtp("127.0.0.1", port, small))[0][0] == 250


async def test_lmtp_defers_with_451_when_storing_fails(
    tmp_path: Path, sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with email_service(tmp_path, secrets_for(None, sink, lmtp=True)) as (
        services,
        _,
        adapter,
    ):
        port = await lmtp_port(adapter)

        async def database_away(*args: object, **kwargs: object) -> None:
            raise ConnectionRefusedError("database away")

        raw = resident_mail("ria@example.nl", "Vraag", "Is het stadhuis open?")
        with monkeypatch.context() as patched:
            patched.setattr(services.intake, "receive", database_away)
            [(deferred, _)] = await deliver_lmtp("127.0.0.1", port, raw)
            assert deferred == 451
        assert await contact_count(services) == 0
        [(retried, _)] = await deliver_lmtp("127.0.0.1", port, raw)  # the mail server's retry
        assert retried == 250
        assert await contact_count(services) == 1


async def test_threading_by_reference_in_the_subject_and_across_channels(
    tmp_path: Path, sink: SmtpSink
) -> None:
    async with email_service(tmp_path, secrets_for(None, sink, lmtp=True)) as (
        services,
        client,
        adapter,
    ):
        port = await lmtp_port(adapter)
        await deliver_lmtp(
            "127.0.0.1",
            port,
            resident_mail(
                "lies@example.nl", "Grofvuil", "Wanneer?", message_id="<g1@bewoner.example.nl>"
            ),
        )
        first = await eventually_message(services, "<g1@bewoner.example.nl>")
        # A new mail (no In-Reply-To) with our reference in the subject, from the same resident.
        await deliver_lmtp(
            "127.0.0.1",
            port,
            resident_mail(
                "Lies@EXAMPLE.nl",
                f"Aanvulling [{first.reference}]",
                "Het gaat om een bank.",
                message_id="<g2@bewoner.example.nl>",
            ),
        )
        assert (await eventually_message(services, "<g2@bewoner.example.nl>")).id == first.id
        # The same reference from someone else does not join another resident's contact.
        await deliver_lmtp(
            "127.0.0.1",
            port,
            resident_mail(
                "iemand@example.nl",
                f"Re: [{first.reference}]",
                "Ik wil ook grofvuil kwijt.",
                message_id="<g3@ander.example.nl>",
            ),
        )
        assert (await eventually_message(services, "<g3@ander.example.nl>")).id != first.id

        # A web-form contact is answered by mail; the resident's mail answer joins it.
        response = await client.post(
            "/channels/webform",
            json={"email": "ans@example.nl", "subject": "Paspoort", "message": "Hoe lang geldig?"},
        )
        reference = (await response.json())["reference"]
        contact = await services.store.by_reference(reference)
        assert contact is not None
        await services.outbox.send(contact, "Tien jaar.")
        [sent] = await sink.wait_for(1)
        await deliver_lmtp(
            "127.0.0.1",
            port,
            resident_mail(
                "ans@example.nl",
                f"Re: {sent.message['Subject']}",
                "En voor kinderen?",
                in_reply_to=sent.message["Message-ID"],
                message_id="<w1@bewoner.example.nl>",
            ),
        )
        joined = await eventually_message(services, "<w1@bewoner.example.nl>")
        assert joined.reference == reference
        assert joined.channel == "webform"
        assert await contact_count(services) == 3

        # Our own mail coming back (a copy in the mailbox, a forward to us) is no contact.
        await deliver_lmtp("127.0.0.1", port, sent.raw)
        await deliver_lmtp(
            "127.0.0.1", port, resident_mail(MAILBOX, "Kopie", "Iets wat wij zelf stuurden.")
        )
        assert await contact_count(services) == 3
        assert adapter.receiver.ignored == {"own": 2}
