"""The web form channel: an accessible HTML form for residents, and its JSON/form-post endpoint.

Public (no token). The form carries a random submission id, so a double click or a browser
retry stores one contact; JSON clients may send their own `submission_id`.
"""

from __future__ import annotations

import hashlib
import html
import uuid
from pathlib import Path
from string import Template
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from adapters.channel import ChannelAdapter
from contacts.inbound import InboundError, InboundMessage, ResidentIdentity
from kcc.api.errors import validation_details
from kcc.api.schemas import WebformPost
from kcc.web_keys import SERVICES

PAGE = Template((Path(__file__).with_name("page.html")).read_text(encoding="utf-8"))
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
LABELS = {
    "name": "Naam",
    "email": "E-mailadres",
    "phone": "Telefoonnummer",
    "subject": "Onderwerp",
    "message": "Uw vraag of bericht",
}


def render_form(values: dict[str, str] | None = None, errors: list[str] | None = None) -> str:
    values = values or {}

    def value(name: str) -> str:
        return html.escape(values.get(name, ""), quote=True)

    error_block = ""
    if errors:
        items = "".join(f"<li>{html.escape(e)}</li>" for e in errors)
        error_block = (
            '<div class="errors" role="alert" tabindex="-1" id="fouten">'
            f"<h2>Controleer het formulier</h2><ul>{items}</ul></div>"
        )
    content = f"""
<h1>Contactformulier</h1>
<p>Stel uw vraag aan de gemeente. U krijgt een referentienummer. Wij antwoorden via e-mail of
telefoon, zoals u kiest. Liever bellen? Bel 14 050.</p>
{error_block}
<form method="post" action="/channels/webform" novalidate>
  <input type="hidden" name="submission_id" value="{
        html.escape(values.get("submission_id") or str(uuid.uuid4()), quote=True)
    }">
  <label for="name">{LABELS["name"]}</label>
  <input id="name" name="name" autocomplete="name" value="{value("name")}">
  <label for="email">{LABELS["email"]}</label>
  <p class="hint" id="contact-hint">Vul een e-mailadres of een telefoonnummer in.</p>
  <input id="email" name="email" type="email" autocomplete="email"
         aria-describedby="contact-hint" value="{value("email")}">
  <label for="phone">{LABELS["phone"]}</label>
  <input id="phone" name="phone" type="tel" autocomplete="tel"
         aria-describedby="contact-hint" value="{value("phone")}">
  <label for="subject">{LABELS["subject"]}</label>
  <input id="subject" name="subject" maxlength="300" value="{value("subject")}">
  <label for="message">{LABELS["message"]} (verplicht)</label>
  <textarea id="message" name="message" required aria-required="true"
            maxlength="20000">{value("message")}</textarea>
  <button type="submit">Versturen</button>
</form>"""
    return PAGE.substitute(title="Contactformulier", content=content)


def render_thanks(reference: str) -> str:
    content = f"""
<h1>Bedankt, uw bericht is ontvangen</h1>
<p>Uw referentienummer is:</p>
<p class="reference">{html.escape(reference)}</p>
<p>Noem dit nummer als u contact met ons opneemt over uw vraag.</p>"""
    return PAGE.substitute(title="Bericht ontvangen", content=content)


async def show_form(request: web.Request) -> web.Response:
    return web.Response(text=render_form(), content_type="text/html")


def wants_html(request: web.Request) -> bool:
    return request.content_type in FORM_TYPES and "text/html" in request.headers.get("Accept", "")


def submission_key(post: WebformPost) -> str:
    if post.submission_id:
        return f"form:{post.submission_id}"
    # No id from the client: identical content on the same day counts as the same submission.
    digest = hashlib.sha256(
        "\x1f".join([post.email or "", post.phone or "", post.subject, post.message]).encode()
    ).hexdigest()[:32]
    return f"content:{digest}"


async def submit(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    as_html = wants_html(request)
    raw: dict[str, Any]
    if request.content_type in FORM_TYPES:
        form = await request.post()
        raw = {k: v for k, v in form.items() if isinstance(v, str)}
        raw = {k: v for k, v in raw.items() if v.strip() or k == "message"}
    elif request.content_type == "application/json":
        raw = await request.json()
        if not isinstance(raw, dict):
            return web.json_response({"error": "expected a JSON object"}, status=400)
    else:
        return web.json_response(
            {"error": "send JSON or an HTML form post (application/x-www-form-urlencoded)"},
            status=415,
        )
    try:
        post = WebformPost.model_validate(raw)
        if not (post.email or post.phone):
            raise InboundError(
                "vul een e-mailadres of telefoonnummer in, zodat wij u kunnen antwoorden"
            )
        key = submission_key(post)
        if key.startswith("content:"):
            key += f":{services.clock.now().date().isoformat()}"
        result = await services.intake.receive(
            InboundMessage(
                channel="webform",
                channel_message_id=key,
                text=post.message,
                subject=post.subject,
                sender=ResidentIdentity(name=post.name, email=post.email, phone=post.phone),
            )
        )
    except ValidationError as exc:
        details = validation_details(exc)
        if as_html:
            messages = [
                f"{LABELS.get(str(d['field']), str(d['field']))}: {d['message']}" for d in details
            ]
            return web.Response(
                text=render_form(raw, messages), status=422, content_type="text/html"
            )
        return web.json_response({"error": "invalid form", "details": details}, status=422)
    except InboundError as exc:
        if as_html:
            return web.Response(
                text=render_form(raw, [str(exc)]), status=422, content_type="text/html"
            )
        return web.json_response({"error": str(exc)}, status=422)
    status = 201 if result.outcome == "created" else 200
    if as_html:
        return web.Response(
            text=render_thanks(result.contact.reference), status=status, content_type="text/html"
        )
    return web.json_response({"reference": result.contact.reference}, status=status)


class WebformAdapter(ChannelAdapter):
    """Inbound only: replies to a web form go out by e-mail or phone (the contact's reply
    channel)."""

    channel = "webform"

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/channels/webform", show_form)
        app.router.add_post("/channels/webform", submit)
