"""OpenAPI paths of the channels' provider webhooks, the mail room, quarantine and the SLA API.

Webhooks are called by providers and checked by their signature or secret, not by our bearer
token; their bodies are the providers' own formats (documented by the providers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Op = Callable[..., dict[str, Any]]

REFUSED = {"description": "refused", "content": {"application/json": {}}}


def _webhook(summary: str, content_type: str, answer: str = "text/xml") -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "security": [],
            "requestBody": {"required": True, "content": {content_type: {}}},
            "responses": {
                "200": {"description": "stored (durable) or handled", "content": {answer: {}}},
                "400": REFUSED,
                "403": REFUSED,
                "413": REFUSED,
                "415": REFUSED,
                "422": REFUSED,
            },
        }
    }


def _twilio(summary: str) -> dict[str, Any]:
    return _webhook(
        f"Twilio webhook (X-Twilio-Signature): {summary}", "application/x-www-form-urlencoded"
    )


def channel_paths(op: Op, reference: list[dict[str, Any]]) -> dict[str, Any]:
    letter = [{"name": "letter_id", "in": "path", "required": True, "schema": {"type": "integer"}}]
    item = [{"name": "item_id", "in": "path", "required": True, "schema": {"type": "integer"}}]
    period = [
        {"name": "from", "in": "query", "schema": {"type": "string", "format": "date"}},
        {"name": "to", "in": "query", "schema": {"type": "string", "format": "date"}},
    ]
    return {
        "/channels/whatsapp": _twilio("an inbound WhatsApp message; empty TwiML once durable"),
        "/channels/whatsapp/status": _twilio("delivery status of one of our WhatsApp messages"),
        "/channels/phone/voice": _twilio("a call comes in: menu, then <Enqueue> in its queue"),
        "/channels/phone/wait": _twilio("hold: position in our queue, callback offer at 30 s"),
        "/channels/phone/callback": _twilio("the caller pressed 1: a terugbelverzoek"),
        "/channels/phone/enqueued": _twilio("the caller left the queue (answered or hung up)"),
        "/channels/phone/bridged": _twilio("the waiting caller is connected to the agent"),
        "/channels/phone/status": _twilio("call status: end and duration"),
        "/channels/phone/agent": _twilio("TwiML for the agent's leg: <Dial><Queue>"),
        "/channels/phone/sms-status": _twilio("delivery status of an SMS reply"),
        "/channels/telegram": _webhook(
            "Telegram Bot API update (X-Telegram-Bot-Api-Secret-Token)",
            "application/json",
            answer="application/json",
        ),
        "/channels/post": {
            "post": {
                **op(
                    "Mail room: a scanned letter (multipart: `file` PDF plus metadata). 201 new, "
                    "200 the same scan again",
                    ok="201",
                    extra={"413": REFUSED, "415": REFUSED},
                ),
                "requestBody": {"required": True, "content": {"multipart/form-data": {}}},
            }
        },
        "/api/post/outgoing": {"get": op("Mail room: reply letters to print and post")},
        "/api/post/outgoing/{letter_id}/pdf": {
            "get": {
                **op("Mail room: the printable letter", params=letter),
                "responses": {"200": {"description": "PDF", "content": {"application/pdf": {}}}},
            }
        },
        "/api/post/outgoing/{letter_id}/printed": {
            "post": op("Mail room: the letter is printed", params=letter)
        },
        "/api/post/outgoing/{letter_id}/posted": {
            "post": op("Mail room: the letter is posted", params=letter)
        },
        "/api/quarantine": {
            "get": op(
                "Team leads: channel input that could not become a contact, with the reason",
                params=[{"name": "all", "in": "query", "schema": {"type": "boolean"}}],
            )
        },
        "/api/quarantine/{item_id}/original": {
            "get": {
                **op("Team leads: the original input, as a download", params=item),
                "responses": {
                    "200": {"description": "bytes", "content": {"application/octet-stream": {}}}
                },
            }
        },
        "/api/quarantine/{item_id}/resolve": {
            "post": op("Team leads: mark an item handled", "ResolveRequest", params=item)
        },
        "/api/contacts/{reference}/extension": {
            "post": op(
                "Verdaging: a new deadline with a reason; the resident is told at once. 409 after "
                "the deadline, 422 beyond the legal maximum",
                "ExtensionRequest",
                ok="201",
                params=reference,
            )
        },
        "/api/sla/at-risk": {"get": op("Team leads: contacts at risk of a norm, and breached")},
        "/api/reports/norms": {
            "get": op("Team leads: the norm table with its realisatie column", params=period)
        },
    }
