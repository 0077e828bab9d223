"""The corpus of odd mails in tests/fixtures/email: per case, what the router reads and what is
kept (the original, the full text, attachments), and what never becomes a contact."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from adapters.email.parse import MailLimits, MailParseError, ParsedMail, parse_mail
from adapters.email.strip import strip_for_router

FIXTURES = Path(__file__).parent / "fixtures" / "email"


def parsed(name: str, limits: MailLimits | None = None) -> ParsedMail:
    return parse_mail((FIXTURES / name).read_bytes(), limits)


def kept(mail: ParsedMail) -> dict[str, bytes]:
    return {a.filename: a.data for a in mail.attachments}


def test_every_contact_keeps_the_raw_original() -> None:
    for path in FIXTURES.glob("*.eml"):
        try:
            mail = parse_mail(path.read_bytes())
        except MailParseError:
            continue
        if mail.automatic is None:
            assert kept(mail)["origineel.eml"] == path.read_bytes(), path.name


def test_html_only_is_read_as_text_without_scripts_or_styles() -> None:
    mail = parsed("html_only.eml")
    assert "Hoe vraag ik een parkeervergunning aan voor mijn tweede auto?" in mail.text
    assert "- kenteken AB-12-CD" in mail.text
    assert "de website (https://gemeente.example.nl/parkeren)" in mail.text
    for unwanted in ("alert", "color: red", "ignored title", "<p>", "<b>", "outlook-only"):
        assert unwanted not in mail.text
    assert mail.sender_email == "fatima@example.nl"
    assert mail.sender_name == "Fatima el Amrani"


def test_windows_1252_quoted_printable() -> None:
    mail = parsed("windows1252.eml")
    assert "€10" in mail.text
    assert "geïnformeerd bij de café “De Kroeg”" in mail.text


def test_utf8_mislabelled_as_latin1_is_read_as_utf8() -> None:
    mail = parsed("latin1_mislabelled_utf8.eml")
    assert "kost dat in €?" in mail.text
    assert "café eigenaar" in mail.text
    assert "Ã" not in mail.text  # no mojibake


def test_unknown_charset_falls_back_without_failing() -> None:
    mail = parsed("unknown_charset.eml")
    assert "Ik heb € 35 betaald, reçu." in mail.text


def test_quoted_printable_soft_line_breaks() -> None:
    mail = parsed("quoted_printable.eml")
    assert "Dit is een lange regel die met een zachte regeleinde is afgebroken" in mail.text
    assert "e-acute: é, een trema: ë." in mail.text


def test_base64_body_with_emoji() -> None:
    assert parsed("base64_utf8.eml").text.endswith("Mag dat? 🌳")


def test_nested_multipart_body_once_photo_kept_logo_dropped() -> None:
    mail = parsed("nested_multipart.eml")
    assert mail.text == "De lantaarnpaal voor Vismarkt 12 is kapot. Zie de foto."
    files = kept(mail)
    assert set(files) == {"origineel.eml", "foto.png", "melding.pdf"}  # the 300-byte logo is not
    assert files["melding.pdf"].startswith(b"%PDF-1.4")
    assert files["foto.png"].startswith(b"\x89PNG")


def test_forwarded_message_is_read_and_kept() -> None:
    mail = parsed("forwarded_rfc822.eml")
    assert mail.text.startswith("Ik kreeg deze aanmaning, maar ik heb de afvalstoffenheffing")
    assert "Doorgestuurd bericht" in mail.text
    assert "U heeft de aanslag afvalstoffenheffing 2026 nog niet betaald." in mail.text
    assert "Met vriendelijke groet" not in mail.text
    files = kept(mail)
    forwarded = BytesParser(policy=policy.default).parsebytes(files["doorgestuurd-1.eml"])
    assert forwarded["Message-ID"] == "<aanmaning-77@example.org>"
    assert "Met vriendelijke groet" in files["volledige-tekst.txt"].decode()


def test_outlook_reply_history_and_greeting_are_stripped_but_kept() -> None:
    mail = parsed("outlook_reply.eml")
    assert mail.text == (
        "Dank u. Mijn inkomen is per 1 december veranderd, moet ik dat ook doorgeven?"
    )
    full = kept(mail)["volledige-tekst.txt"].decode()
    assert "U kunt uw wijziging doorgeven via het formulier" in full
    assert "Henk Bakker" in full
    assert mail.references == (
        "<kcc.0000aaaa@gemeente.example.nl>",
        "<original-henk@example.nl>",
    )


def test_gmail_reply_with_wrapped_attribution_and_quotes() -> None:
    mail = parsed("gmail_reply.eml")
    assert mail.text == "Ja, de put ligt nog steeds open bij de Grote Markt."
    assert "> Is de put nog steeds open?" in mail.full_text


def test_gmail_html_reply_quote_is_stripped() -> None:
    mail = parsed("gmail_html_reply.eml")
    assert mail.text == "Bedankt, de put is inmiddels dicht."
    assert "Is de put nog steeds open?" in mail.full_text


def test_signatures_and_mobile_footer_are_stripped() -> None:
    mail = parsed("signature.eml")
    assert mail.text == "Is er nog subsidie voor zonnepanelen op een huurwoning?"
    assert "06-12345678" in kept(mail)["volledige-tekst.txt"].decode()
    greeting = parsed("greeting_signature.eml")
    assert greeting.text == "Hoe lang duurt de aanvraag van een gehandicaptenparkeerkaart?"
    assert "Paterswoldseweg" in greeting.full_text


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("auto_reply.eml", "auto-reply"),
        ("out_of_office_exchange.eml", "auto-reply"),
        ("dsn_bounce.eml", "bounce"),
    ],
)
def test_automatic_mail_is_recognised(name: str, kind: str) -> None:
    mail = parsed(name)
    assert mail.automatic is not None
    assert mail.automatic.kind == kind
    assert mail.text == ""


def test_bounce_names_our_returned_message_and_status() -> None:
    mail = parsed("dsn_bounce.eml")
    assert mail.bounced_ids == ("<kcc.bounced-0001@gemeente.example.nl>",)
    assert mail.bounce_status == "5.1.1"


def test_missing_message_id_gets_a_stable_derived_id() -> None:
    raw = (FIXTURES / "no_message_id.eml").read_bytes()
    first = parse_mail(raw).message_id
    assert first.startswith("sha256:")
    # The same mail with transport headers added (IMAP copy vs LMTP copy): the same id.
    relayed = b"Received: from mx by kcc; Mon, 23 Nov 2026 11:00:01 +0100\n" + raw
    assert parse_mail(relayed).message_id == first
    other = raw.replace(b"Wanneer is het", b"Hoe laat is het")
    assert parse_mail(other).message_id != first


def test_attachment_over_the_limit_stays_only_in_the_original() -> None:
    mail = parsed("attachment_over_limit.eml", MailLimits(max_attachment_bytes=2048))
    files = kept(mail)
    assert "tekening.dwg" not in files
    assert files["notitie.txt"] == b"klein bestand"
    assert "tekening.dwg (4 kB)" in mail.text
    assert b"tekening.dwg" in files["origineel.eml"]
    # Within the default limits it is kept as an attachment of its own.
    assert "tekening.dwg" in kept(parsed("attachment_over_limit.eml"))


def test_message_over_the_size_limit_is_refused() -> None:
    with pytest.raises(MailParseError, match="groter dan 1000 bytes"):
        parsed("nested_multipart.eml", MailLimits(max_message_bytes=1000))


def test_broken_boundary_and_garbage_are_unreadable() -> None:
    with pytest.raises(MailParseError, match="MIME"):
        parsed("broken_boundary.eml")
    with pytest.raises(MailParseError, match="afzender"):
        parsed("garbage.eml")


def test_encoded_word_headers_and_rfc2231_filename() -> None:
    mail = parsed("encoded_words.eml")
    assert mail.subject == "Vraag over de WOZ-waarde van mijn café"
    assert mail.sender_name == "José Müller"
    assert kept(mail)["Bezwaar WOZ café.pdf"].startswith(b"%PDF")


def test_emoji_in_headers_and_body() -> None:
    mail = parsed("emoji.eml")
    assert mail.subject == "🗑️ Grofvuil ophalen"
    assert mail.sender_name == "Noor 🌷"
    assert mail.text == "Kunnen jullie mijn grofvuil ophalen? 🙏🏽 Dank! 😀"


def test_winmail_dat_is_kept_as_an_attachment() -> None:
    mail = parsed("winmail.eml")
    assert kept(mail)["winmail.dat"].startswith(b"\x78\x9f\x3e\x22")
    assert mail.text == "Zie bijlage voor mijn bezwaar tegen de WOZ-beschikking."


def test_a_bare_forward_keeps_its_content() -> None:
    text = (
        "-----Oorspronkelijk bericht-----\nVan: iemand\nVerzonden: gisteren\n"
        "Onderwerp: x\n\nDe stoep is kapot."
    )
    assert "De stoep is kapot." in strip_for_router(text, "Doorst: x")
    assert "De stoep is kapot." in strip_for_router(text, "")


def test_a_residents_own_sentence_is_not_taken_for_an_attribution() -> None:
    text = (
        "Beste gemeente,\n\nOp 3 november schreef ik u al het volgende:\n"
        "mijn container is niet geleegd. Wanneer komt u?"
    )
    assert strip_for_router(text) == text
    reply = "Prima.\n\nOp 23-11-2026 om 10:12 schreef KCC:\nBeste mevrouw"
    assert strip_for_router(reply) == "Prima."


def test_plain_text_bounce_from_mailer_daemon() -> None:
    mail = parsed("mailer_daemon_plain.eml")
    assert mail.automatic is not None and mail.automatic.kind == "bounce"
    # Its own Message-ID is not taken for the returned one.
    assert mail.bounced_ids == ("<kcc.bounced-0002@gemeente.example.nl>",)


def test_signed_mail_reads_its_text_and_keeps_the_signature() -> None:
    mail = parsed("smime_signed.eml")
    assert mail.text == "Graag ontvangen wij een uittreksel uit de BRP voor de akte van levering."
    assert "smime.p7s" in kept(mail)


def test_reply_to_is_where_the_resident_wants_the_answer() -> None:
    mail = parsed("website_form_reply_to.eml")
    assert mail.sender_email == "karin@example.nl"
    assert mail.sender_name == "Karin Mulder"
    assert mail.from_email == "noreply@website.example.nl"
