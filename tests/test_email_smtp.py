"""Outbound e-mail against a real SMTP server on loopback (aiosmtpd, `sandbox.mail.SmtpSink`):
STARTTLS with a self-signed certificate and login, implicit TLS, threading headers, RFC 3834
marking of automatic messages, and what 5xx and 4xx answers do to the outbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.outbound import RETRY_AFTER as OUTBOX_BACKOFF
from adapters.outbound import Purpose
from contacts.inbound import InboundMessage, ResidentIdentity
from contacts.models import Contact
from kcc.services import Services
from sandbox.mail import SmtpSink
from tests.email_servers import email_service, self_signed_certificate

FROM = "Gemeente Groningen <kcc@gemeente.example.nl>"


@pytest.fixture
async def tls_sink(tmp_path: Path) -> AsyncIterator[tuple[SmtpSink, Path]]:
    cert, key = self_signed_certificate(tmp_path)
    sink = SmtpSink(cert, key, login=("kcc-smtp", "s3cret"))
    await sink.start()
    yield sink, cert
    await sink.stop()


def smtp_secrets(port: int, cert: Path, tls: str = "starttls") -> dict[str, str]:
    return {
        "KCC_SMTP_HOST": "127.0.0.1",
        "KCC_SMTP_PORT": str(port),
        "KCC_SMTP_USER": "kcc-smtp",
        "KCC_SMTP_PASSWORD": "s3cret",
        "KCC_SMTP_FROM": FROM,
        "KCC_SMTP_TLS": tls,
        "KCC_SMTP_CA_FILE": str(cert),
    }


async def resident_contact(
    services: Services, message_id: str = "<m1@bewoner.example.nl>"
) -> Contact:
    result = await services.intake.receive(
        InboundMessage(
            channel="email",
            channel_message_id=message_id,
            text="Wanneer wordt het grofvuil opgehaald?",
            subject="Grofvuil",
            sender=ResidentIdentity(name="Piet Bos", email="piet@example.nl"),
            thread_key=f"email:{message_id}",
        )
    )
    return result.contact


async def test_reply_goes_out_over_starttls_with_login_and_threading(
    tmp_path: Path, tls_sink: tuple[SmtpSink, Path]
) -> None:
    sink, cert = tls_sink
    async with email_service(tmp_path, smtp_secrets(sink.port, cert)) as (services, _, _):
        contact = await resident_contact(services)
        message = await services.outbox.send(contact, "Op dinsdag.\n\nGroet,\nHet KCC <team>")
        assert message.delivery_status == "sent"
        [received] = await sink.wait_for(1)
        mail = received.message
        assert received.tls  # the sink requires STARTTLS before MAIL
        assert received.rcpt_tos == ("piet@example.nl",)
        assert mail["To"].addresses[0].addr_spec == "piet@example.nl"
        assert mail["Subject"] == f"Grofvuil [{contact.reference}]"
        assert mail["In-Reply-To"] == "<m1@bewoner.example.nl>"
        assert "<m1@bewoner.example.nl>" in mail["References"]
        assert mail["X-KCC-Reference"] == contact.reference
        assert mail["Auto-Submitted"] is None  # an agent's answer is not automatic
        assert mail["Message-ID"].endswith("@gemeente.example.nl>")
        # The Message-ID is the message's provider id: bounces and answers find it.
        stored = await services.store.messages(contact.id or 0)
        assert stored[-1].channel_message_id == mail["Message-ID"]
        plain = mail.get_body(("plain",))
        html = mail.get_body(("html",))
        assert plain is not None and html is not None
        assert "Op dinsdag." in plain.get_content()
        assert "Het KCC &lt;team&gt;" in html.get_content()
        assert "<team>" not in html.get_content()


async def test_automatic_messages_are_marked_auto_submitted(
    tmp_path: Path, tls_sink: tuple[SmtpSink, Path]
) -> None:
    sink, cert = tls_sink
    async with email_service(tmp_path, smtp_secrets(sink.port, cert)) as (services, _, _):
        contact = await resident_contact(services)
        for purpose in (Purpose.acknowledgement, Purpose.extension, Purpose.reminder):
            await services.outbox.send(contact, "Wij hebben uw bericht ontvangen.", purpose=purpose)
        received = await sink.wait_for(3)
        assert [m.message["Auto-Submitted"] for m in received] == ["auto-replied"] * 3
        assert all(m.message["X-Auto-Response-Suppress"] == "All" for m in received)


async def test_permanent_refusal_fails_and_temporary_refusal_is_retried(
    tmp_path: Path, tls_sink: tuple[SmtpSink, Path]
) -> None:
    sink, cert = tls_sink
    async with email_service(tmp_path, smtp_secrets(sink.port, cert)) as (services, _, _):
        contact = await resident_contact(services)
        sink.refuse_next(550, "5.1.1 mailbox unknown")
        failed = await services.outbox.send(contact, "Antwoord")
        assert failed.delivery_status == "failed"
        assert "550" in (failed.delivery_detail or "")

        sink.refuse_next(451, "4.3.0 try again later")
        queued = await services.outbox.send(contact, "Tweede antwoord")
        assert queued.delivery_status == "queued"
        assert sink.messages == []
        services.clock.advance(OUTBOX_BACKOFF)  # type: ignore[attr-defined]
        assert await services.outbox.retry_unsent() == 1
        [received] = await sink.wait_for(1)
        assert "Tweede antwoord" in received.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        messages = await services.store.messages(contact.id or 0)
        assert [m.delivery_status for m in messages if m.direction == "outbound"] == [
            "failed",
            "sent",
        ]


async def test_implicit_tls(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    sink = SmtpSink(cert, key, implicit_tls=True)
    await sink.start()
    try:
        secrets = smtp_secrets(sink.port, cert, tls="tls")
        del secrets["KCC_SMTP_USER"], secrets["KCC_SMTP_PASSWORD"]
        async with email_service(tmp_path, secrets) as (services, _, _):
            contact = await resident_contact(services)
            assert (await services.outbox.send(contact, "Antwoord")).delivery_status == "sent"
            [received] = await sink.wait_for(1)
            assert received.tls
    finally:
        await sink.stop()


async def test_untrusted_certificate_is_not_accepted(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    sink = SmtpSink(cert, key)
    await sink.start()
    try:
        secrets = smtp_secrets(sink.port, cert)
        del secrets["KCC_SMTP_CA_FILE"]  # the self-signed certificate is not trusted now
        async with email_service(tmp_path, secrets) as (services, _, _):
            contact = await resident_contact(services)
            message = await services.outbox.send(contact, "Antwoord")
            assert message.delivery_status == "queued"  # kept for a retry, not sent in clear
            assert sink.messages == []
    finally:
        await sink.stop()


async def test_webform_contact_is_answered_by_email(
    tmp_path: Path, tls_sink: tuple[SmtpSink, Path]
) -> None:
    sink, cert = tls_sink
    async with email_service(tmp_path, smtp_secrets(sink.port, cert)) as (services, client, _):
        response = await client.post(
            "/channels/webform",
            json={
                "name": "Ans",
                "email": "ans@example.nl",
                "subject": "Paspoort",
                "message": "Hoe lang is mijn paspoort geldig?",
            },
        )
        reference = (await response.json())["reference"]
        contact = await services.store.by_reference(reference)
        assert contact is not None and contact.reply_channel == "email"
        await services.outbox.send(contact, "Tien jaar.")
        [received] = await sink.wait_for(1)
        assert received.rcpt_tos == ("ans@example.nl",)
        assert received.message["In-Reply-To"] is None  # a web form has no mail to answer
        assert reference in received.message["Subject"]


async def test_no_password_in_clear_text_to_a_remote_server(tmp_path: Path) -> None:
    """127.0.0.2 is not one of the loopback names the sender trusts: to such a server it
    logs in only after STARTTLS, and this server offers none."""
    sink = SmtpSink()  # no certificate: no STARTTLS on offer
    await sink.start(host="127.0.0.2")
    try:
        secrets = smtp_secrets(sink.port, tmp_path / "none.pem")
        secrets["KCC_SMTP_HOST"] = "127.0.0.2"
        del secrets["KCC_SMTP_CA_FILE"]
        async with email_service(tmp_path, secrets) as (services, _, _):
            contact = await resident_contact(services)
            message = await services.outbox.send(contact, "Antwoord")
            assert message.delivery_status == "queued"
            assert sink.messages == []
            secrets["KCC_SMTP_TLS"] = "none"
        async with email_service(tmp_path, secrets) as (services, _, _):
            contact = await resident_contact(services)
            message = await services.outbox.send(contact, "Antwoord")
            assert message.delivery_status == "failed"
            assert "zonder TLS" in (message.delivery_detail or "")
    finally:
        await sink.stop()


def test_subject_keeps_only_this_contacts_reference() -> None:
    from adapters.email.smtp import _subject

    assert (
        _subject("Re: Paspoort [KCC-2026-000001] [KCC-2026-000005]", "KCC-2026-000005")
        == "Re: Paspoort [KCC-2026-000005]"
    )
