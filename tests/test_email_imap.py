"""Inbound e-mail from a real IMAP server: Dovecot, started by these tests on loopback with its
own configuration (tests/email_servers.py). Mail is delivered with IMAP APPEND."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from adapters.email.imap import ImapConnection, ImapPoller
from adapters.email.mailbox_state import STATE, MailboxStateStore
from adapters.email.parse import MailLimits
from adapters.email.receive import MailReceiver
from adapters.email.settings import ImapSettings
from adapters.outbound import Purpose
from contacts.inbound import InboundMessage, ResidentIdentity
from kcc.clock import ManualClock
from kcc.services import Services
from tests.email_servers import Dovecot, dovecot, email_service
from tests.helpers import running_service

FIXTURES = Path(__file__).parent / "fixtures" / "email"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def mailbox() -> Iterator[Dovecot]:
    with dovecot() as server:
        yield server


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Services]:
    async with running_service(tmp_path / "service") as (services, _):
        yield services


def imap_settings(server: Dovecot, **changes: object) -> ImapSettings:
    settings = ImapSettings(
        host="127.0.0.1",
        port=server.port,
        user=server.user,
        password=server.password,
        tls="none",
        poll_seconds=30,
    )
    return replace(settings, **changes)  # type: ignore[arg-type]


def poller(
    services: Services,
    settings: ImapSettings,
    limits: MailLimits | None = None,
    owner: str | None = None,
) -> ImapPoller:
    return ImapPoller(
        settings,
        MailReceiver(services, limits or MailLimits()),
        MailboxStateStore(services.engine),
        services.clock,
        owner=owner,
    )


async def contact_count(services: Services) -> int:
    async with services.engine.connect() as connection:
        return int((await connection.execute(sa.text("SELECT count(*) FROM contact"))).scalar_one())


async def test_mail_becomes_a_contact_and_is_moved_to_the_processed_folder(
    mailbox: Dovecot, service: Services
) -> None:
    mailbox.append(fixture("html_only.eml"))
    mailbox.append(fixture("nested_multipart.eml"))
    reader = poller(service, imap_settings(mailbox))
    try:
        assert await reader.poll_once() == 2
    finally:
        await reader.stop()
    found = await service.store.find_message("email", "<nested-1@mail.example.nl>")
    assert found is not None
    contact, _ = found
    assert contact.channel == "email" and contact.status == "queued"
    assert contact.body == "De lantaarnpaal voor Vismarkt 12 is kapot. Zie de foto."
    names = {a.filename for a in await service.store.attachments(contact.id or 0)}
    assert names == {"origineel.eml", "foto.png", "melding.pdf"}
    assert mailbox.uids("INBOX") == []
    assert len(mailbox.uids("Verwerkt")) == 2
    checkpoint = await MailboxStateStore(service.engine).checkpoint(reader.account)
    assert checkpoint.last_uid == 2 and checkpoint.uidvalidity > 0


async def test_a_crash_between_intake_and_marking_imports_nothing_twice(
    mailbox: Dovecot, service: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    mailbox.append(fixture("quoted_printable.eml"))
    first = poller(service, imap_settings(mailbox), owner="process-1")

    async def crash(self: ImapConnection, uid: int) -> bool:
        raise ConnectionResetError("the process died here")

    with monkeypatch.context() as patched:
        patched.setattr(ImapConnection, "mark_processed", crash)
        with pytest.raises(ConnectionResetError):
            await first.poll_once()
    await first.stop()
    assert await contact_count(service) == 1  # durable before the marking
    assert len(mailbox.uids("INBOX")) == 1  # not marked: it will be read again

    # The restarted process: the same mail again is a duplicate, now marked; a third start
    # finds nothing at all.
    second = poller(service, imap_settings(mailbox), owner="process-2")
    assert await second.poll_once() == 1
    await second.stop()
    assert await contact_count(service) == 1
    assert mailbox.uids("INBOX") == []
    third = poller(service, imap_settings(mailbox), owner="process-3")
    assert await third.poll_once() == 0
    await third.stop()
    assert await contact_count(service) == 1


async def test_the_same_mail_twice_in_the_mailbox_is_stored_once(
    mailbox: Dovecot, service: Services
) -> None:
    mailbox.append(fixture("emoji.eml"))
    mailbox.append(fixture("emoji.eml"))
    mailbox.append(fixture("no_message_id.eml"))
    mailbox.append(fixture("no_message_id.eml"))
    reader = poller(service, imap_settings(mailbox))
    assert await reader.poll_once() == 4
    await reader.stop()
    assert await contact_count(service) == 2
    assert mailbox.uids("INBOX") == []


async def test_keyword_mode_leaves_mail_in_place_and_skips_it_next_time(
    mailbox: Dovecot, service: Services
) -> None:
    mailbox.append(fixture("windows1252.eml"))
    settings = imap_settings(mailbox, processed_folder="")
    reader = poller(service, settings)
    assert await reader.poll_once() == 1
    assert await reader.poll_once() == 0
    await reader.stop()
    assert len(mailbox.uids("INBOX", "KEYWORD KccVerwerkt SEEN")) == 1
    # Even with its checkpoint lost, the keyword keeps the mail from being read again.
    async with service.engine.begin() as connection:
        await connection.execute(sa.delete(STATE))
    again = poller(service, settings)
    assert await again.poll_once() == 0
    await again.stop()
    assert await contact_count(service) == 1


async def test_a_new_uidvalidity_reads_the_mailbox_again(
    mailbox: Dovecot, service: Services
) -> None:
    settings = imap_settings(mailbox)
    reader = poller(service, settings)
    assert await reader.poll_once() == 0  # creates the state row
    await reader.stop()
    async with service.engine.begin() as connection:
        await connection.execute(sa.update(STATE).values(uidvalidity=1, last_uid=999))
    mailbox.append(fixture("base64_utf8.eml"))
    reader = poller(service, settings)
    assert await reader.poll_once() == 1
    await reader.stop()
    assert await contact_count(service) == 1


async def test_auto_replies_and_bounces_make_no_contact(
    mailbox: Dovecot, service: Services
) -> None:
    original = await service.intake.receive(
        InboundMessage(
            channel="email",
            channel_message_id="<vraag@bewoner.example.nl>",
            text="Mijn vraag",
            sender=ResidentIdentity(email="onbekend@example.nl"),
        )
    )
    ours = await service.store.record_outbound(
        original.contact.id or 0,
        None,
        "email",
        "Ons antwoord",
        service.clock.now(),
        "out:1",
        purpose=Purpose.reply,
    )
    await service.store.set_delivery(
        ours.id or 0, "sent", None, "<kcc.bounced-0001@gemeente.example.nl>"
    )
    for name in ("auto_reply.eml", "out_of_office_exchange.eml", "dsn_bounce.eml"):
        mailbox.append(fixture(name))
    reader = poller(service, imap_settings(mailbox))
    assert await reader.poll_once() == 3
    await reader.stop()
    assert await contact_count(service) == 1
    assert reader.receiver.ignored == {"auto-reply": 2, "bounce": 1}
    [_, bounced] = await service.store.messages(original.contact.id or 0)
    assert bounced.delivery_status == "failed"
    assert "5.1.1" in (bounced.delivery_detail or "")
    assert mailbox.uids("INBOX") == []


async def test_unreadable_and_oversize_mail_is_quarantined_and_marked(
    mailbox: Dovecot, service: Services
) -> None:
    mailbox.append(fixture("broken_boundary.eml"))
    mailbox.append(fixture("garbage.eml"))
    mailbox.append(fixture("nested_multipart.eml"))  # 5.6 kB: over the limit below
    reader = poller(service, imap_settings(mailbox), MailLimits(max_message_bytes=4000))
    assert await reader.poll_once() == 3
    await reader.stop()
    assert await contact_count(service) == 0
    items = await service.quarantine.items()
    reasons = sorted(item.reason for item in items)
    assert len(items) == 3
    assert any("MIME" in reason for reason in reasons)
    assert any("afzender" in reason for reason in reasons)
    oversize = await service.quarantine.by_provider_id("email", "<nested-1@mail.example.nl>")
    assert oversize is not None and "groter dan 4000" in oversize.reason
    assert oversize.size < 1000  # only its headers were fetched and kept
    assert mailbox.uids("INBOX") == []
    assert len(mailbox.uids("Verwerkt")) == 3


async def test_one_process_polls_at_a_time(tmp_path: Path, mailbox: Dovecot) -> None:
    clock = ManualClock()
    async with running_service(tmp_path / "service", clock=clock) as (services, _):
        settings = imap_settings(mailbox, lease_seconds=60)
        one = poller(services, settings, owner="one")
        two = poller(services, settings, owner="two")
        mailbox.append(fixture("signature.eml"))
        assert await one.poll_once() == 1
        assert await two.poll_once() is None  # one holds the lease
        mailbox.append(fixture("greeting_signature.eml"))
        clock.advance(timedelta(seconds=30))
        assert await two.poll_once() is None
        # One dies without releasing: once its lease ran out, two takes over.
        await one._disconnect()
        clock.advance(timedelta(seconds=61))
        assert await two.poll_once() == 1
        assert await one.poll_once() is None
        await two.stop()  # a clean stop releases at once
        assert await one.poll_once() == 0
        await one.stop()
        assert await contact_count(services) == 2


async def test_starttls_and_implicit_tls(tmp_path: Path, service: Services) -> None:
    with dovecot(tls=True) as server:
        assert server.cert is not None and server.tls_port is not None
        server.append(fixture("html_only.eml"))
        server.append(fixture("emoji.eml"))
        starttls = imap_settings(server, tls="starttls", ca_file=str(server.cert), batch=1)
        reader = poller(service, starttls)
        assert await reader.poll_once() == 1
        await reader.stop()
        implicit = imap_settings(server, tls="tls", port=server.tls_port, ca_file=str(server.cert))
        reader = poller(service, implicit)
        assert await reader.poll_once() == 1
        await reader.stop()
        assert await contact_count(service) == 2
        assert "TLS" in server.log()
        # Without trusting the certificate there is no connection (and no clear-text login).
        untrusted = poller(service, replace(implicit, ca_file=""))
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusted.poll_once()
        await untrusted.stop()


async def test_the_running_poller_wakes_on_idle(tmp_path: Path, mailbox: Dovecot) -> None:
    secrets = {
        "KCC_IMAP_HOST": "127.0.0.1",
        "KCC_IMAP_PORT": str(mailbox.port),
        "KCC_IMAP_USER": mailbox.user,
        "KCC_IMAP_PASSWORD": mailbox.password,
        "KCC_IMAP_TLS": "none",
        "KCC_IMAP_POLL_SECONDS": "120",  # far longer than the test waits: only IDLE can wake it
    }
    async with email_service(tmp_path / "service", secrets) as (services, _, adapter):
        assert adapter.poller is not None
        for _ in range(600):
            if adapter.poller.rounds >= 1:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # into IDLE
        mailbox.append(fixture("quoted_printable.eml"))
        for _ in range(600):
            if await services.store.find_message("email", "<qp-1@mail.example.nl>"):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the poller did not wake on IDLE")


async def test_a_mail_the_parser_chokes_on_does_not_block_the_mailbox(
    mailbox: Dovecot, service: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapters.email import receive

    real = receive.parse_mail

    def choking(raw: bytes, limits: MailLimits | None = None) -> object:
        if b"Afvalpas" in raw:
            raise KeyError("a bug deep in a parser")
        return real(raw, limits)

    monkeypatch.setattr(receive, "parse_mail", choking)
    mailbox.append(fixture("windows1252.eml"))
    mailbox.append(fixture("emoji.eml"))
    reader = poller(service, imap_settings(mailbox))
    assert await reader.poll_once() == 2
    await reader.stop()
    assert await contact_count(service) == 1
    [item] = await service.quarantine.items()
    assert item.reason == "e-mail onleesbaar (KeyError)"
    assert item.provider_id == "<cp1252-1@mail.example.nl>"
    assert mailbox.uids("INBOX") == []


async def test_a_server_without_idle_or_move_is_polled_and_copied(tmp_path: Path) -> None:
    with dovecot(capabilities="IMAP4rev1 LITERAL+ UIDPLUS") as server:
        secrets = {
            "KCC_IMAP_HOST": "127.0.0.1",
            "KCC_IMAP_PORT": str(server.port),
            "KCC_IMAP_USER": server.user,
            "KCC_IMAP_PASSWORD": server.password,
            "KCC_IMAP_TLS": "none",
            "KCC_IMAP_POLL_SECONDS": "0.5",
        }
        server.append(fixture("html_only.eml"))
        async with email_service(tmp_path / "service", secrets) as (services, _, adapter):
            assert adapter.poller is not None
            for _ in range(600):
                if adapter.poller.connection is not None and adapter.poller.rounds >= 1:
                    break
                await asyncio.sleep(0.05)
            assert adapter.poller.connection is not None
            assert "IDLE" not in adapter.poller.connection.capabilities
            assert "MOVE" not in adapter.poller.connection.capabilities
            server.append(fixture("emoji.eml"))
            for _ in range(600):
                if await services.store.find_message("email", "<emoji-1@mail.example.nl>"):
                    break
                await asyncio.sleep(0.05)
            assert await contact_count(services) == 2
        assert server.uids("INBOX") == []  # copied, flagged \Deleted and expunged
        assert len(server.uids("Verwerkt")) == 2


async def test_refused_login_and_clear_text_to_a_remote_server(
    mailbox: Dovecot, service: Services
) -> None:
    from adapters.email.imap import ImapError

    wrong = poller(service, imap_settings(mailbox, password="fout"))
    with pytest.raises(ImapError, match="login refused"):
        await wrong.poll_once()
    await wrong.stop()
    remote = poller(service, imap_settings(mailbox, host="imap.example.nl"))
    with pytest.raises(ImapError, match="only allowed on loopback"):
        await remote.poll_once()
    await remote.stop()


async def test_a_huge_mail_is_quarantined_without_fetching_it(
    mailbox: Dovecot, service: Services
) -> None:
    from email.message import EmailMessage

    mail = EmailMessage()
    mail["From"] = "architect@example.nl"
    mail["To"] = "kcc@gemeente.example.nl"
    mail["Subject"] = "Bouwtekeningen"
    mail["Message-ID"] = "<huge-1@example.nl>"
    mail.set_content("Zie de tekeningen.")
    mail.add_attachment(
        bytes(range(256)) * (84 * 1024), maintype="application", subtype="pdf", filename="x.pdf"
    )  # 21 MB, over the default 20 MiB
    mailbox.append(mail.as_bytes())
    reader = poller(service, imap_settings(mailbox))  # default limits
    assert await reader.poll_once() == 1
    await reader.stop()
    item = await service.quarantine.by_provider_id("email", "<huge-1@example.nl>")
    assert item is not None and "groter dan 20971520 bytes" in item.reason
    assert item.size < 10_000  # only the headers were fetched and kept
    assert await contact_count(service) == 0
    assert len(mailbox.uids("Verwerkt")) == 1  # the mail itself stays on the server


async def test_the_poller_reconnects_at_once_when_the_server_drops_it(
    tmp_path: Path, mailbox: Dovecot
) -> None:
    secrets = {
        "KCC_IMAP_HOST": "127.0.0.1",
        "KCC_IMAP_PORT": str(mailbox.port),
        "KCC_IMAP_USER": mailbox.user,
        "KCC_IMAP_PASSWORD": mailbox.password,
        "KCC_IMAP_TLS": "none",
        "KCC_IMAP_POLL_SECONDS": "120",
    }
    async with email_service(tmp_path / "service", secrets) as (services, _, adapter):
        assert adapter.poller is not None
        for _ in range(600):
            if adapter.poller.rounds >= 1:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # into IDLE
        await asyncio.to_thread(mailbox.kick)
        for _ in range(600):
            if adapter.poller.rounds >= 2:
                break
            await asyncio.sleep(0.05)
        assert adapter.poller.rounds >= 2  # reconnected without waiting for the interval
        await asyncio.sleep(0.5)
        mailbox.append(fixture("base64_utf8.eml"))
        for _ in range(600):
            if await services.store.find_message("email", "<b64-1@mail.example.nl>"):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the reconnected poller did not see new mail")


async def test_overlapping_pollers_store_nothing_twice(tmp_path: Path, mailbox: Dovecot) -> None:
    """A holder that stalls past its lease while another process takes over: both read the
    same mail, and idempotency keeps every mail exactly once."""
    clock = ManualClock()
    async with running_service(tmp_path / "service", clock=clock) as (services, _):
        settings = imap_settings(mailbox, lease_seconds=60, poll_seconds=1)
        stalled = poller(services, settings, owner="stalled")
        other = poller(services, settings, owner="other")
        for name in ("emoji.eml", "signature.eml", "winmail.eml", "base64_utf8.eml"):
            mailbox.append(fixture(name))
        real = stalled.receiver.receive
        overtaken: list[int | None] = []

        async def stalls(raw: bytes, received_at: object = None) -> object:
            if not overtaken:
                clock.advance(timedelta(seconds=61))  # the lease runs out meanwhile
                overtaken.append(await other.poll_once())
            return await real(raw, received_at)  # type: ignore[arg-type]

        stalled.receiver.receive = stalls  # type: ignore[method-assign]
        await stalled.poll_once()
        await stalled.stop()
        await other.stop()
        assert overtaken == [4]  # the other process took over and read everything
        assert await contact_count(services) == 4
        assert mailbox.uids("INBOX") == []
        assert await services.quarantine.items() == []
