"""What the WhatsApp and phone channels share about Twilio: credentials, the signed-webhook
check, the REST client (pointable at a stand-in) and the channels' configuration.

Webhooks: Twilio signs every request with `X-Twilio-Signature`, an HMAC of the full URL it
requested plus the sorted form fields, keyed with the account's auth token. Behind a proxy the
URL Twilio used is not the one we see, so the check uses `KCC_PUBLIC_URL` + path when set, else
the request's own URL. The order of checks never lets an unsigned request learn anything:
credentials configured? (403) → form post? (415/413/400 for an unreadable body) → signature
(403) → account (403). Only then may a handler answer 400 for a missing field.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tomllib
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from aiohttp import web
from multidict import MultiDict, MultiDictProxy
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import RequestValidator, get_signature_algorithm
from twilio.rest import Client

from kcc.services import Services

log = logging.getLogger(__name__)

FORM_TYPE = "application/x-www-form-urlencoded"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
# Twilio's API hosts (api.twilio.com and its edge/region variants) all end in this.
TWILIO_DOMAIN = ".twilio.com"

# Per running service (tests build many in one process): its object, and what it said already.
_warned: dict[int, tuple[weakref.ref[Services], set[tuple[str, str]]]] = {}


def warn_once(services: Services, channel: str, reason: str) -> None:
    """A misconfiguration is logged once per service and reason, not per request."""
    entry = _warned.get(id(services))
    if entry is None or entry[0]() is not services:
        entry = (weakref.ref(services), set())
        _warned[id(services)] = entry
    if (channel, reason) not in entry[1]:
        entry[1].add((channel, reason))
        log.warning("%s: %s", channel, reason)


@dataclass(frozen=True)
class TwilioAccount:
    account_sid: str
    auth_token: str
    api_base_url: str = ""  # empty: Twilio itself; tests and the demo: the sandbox
    # Twilio's edge location and processing region (e.g. dublin + ie1 keeps data in the EU).
    edge: str = ""
    region: str = ""

    @classmethod
    def from_services(cls, services: Services) -> TwilioAccount | None:
        secret = services.settings.secret
        sid, token = secret("TWILIO_ACCOUNT_SID"), secret("TWILIO_AUTH_TOKEN")
        if not sid or not token:
            return None
        return cls(
            sid,
            token,
            secret("TWILIO_API_BASE_URL").rstrip("/"),
            secret("TWILIO_EDGE"),
            secret("TWILIO_REGION"),
        )


def missing_credentials(services: Services, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if not services.settings.secret(name)]


# --- the REST client ---------------------------------------------------------------------------


_sdk_log = logging.getLogger(__name__ + ".sdk")
_sdk_log.setLevel(logging.WARNING)


class RebasedHttpClient(AsyncTwilioHttpClient):
    """The SDK's own async HTTP client, with requests for Twilio's hosts sent to another base URL
    (the sandbox). The SDK builds absolute `https://api.twilio.com/...` URLs and offers only edge
    and region to vary the host, so the rewrite happens at the one place every request passes."""

    def __init__(self, base_url: str, timeout: float = 15.0) -> None:
        # The SDK logs every request and response at INFO; only its warnings belong in our logs.
        super().__init__(timeout=timeout, logger=_sdk_log)
        self.base = urlsplit(base_url) if base_url else None

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the SDK's signature
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        parts = urlsplit(url)
        if self.base is not None and (parts.hostname or "").endswith(TWILIO_DOMAIN):
            prefix = self.base.path.rstrip("/")
            url = urlunsplit(
                (self.base.scheme, self.base.netloc, prefix + parts.path, parts.query, "")
            )
        return await super().request(
            method, url, params, data, headers, auth, timeout or self.timeout, allow_redirects
        )


def make_client(account: TwilioAccount) -> tuple[Client, RebasedHttpClient]:
    """An SDK client for `create_async` calls; close the HTTP client when done."""
    http = RebasedHttpClient(account.api_base_url)
    # environment={}: the SDK reads nothing from the process environment behind our back.
    client = Client(
        account.account_sid,
        account.auth_token,
        http_client=http,
        environment={},
        edge=account.edge or None,
        region=account.region or None,
    )
    return client, http


# --- signed webhooks ---------------------------------------------------------------------------


def signed_url(request: web.Request, public_url: str) -> str:
    """The URL Twilio signed: our public base URL plus the path (and query), else our own."""
    if public_url:
        return public_url.rstrip("/") + request.rel_url.path_qs
    return str(request.url)


def twiml(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/xml", charset="utf-8")


def refuse(services: Services, channel: str, status: int, reason: str, text: str) -> web.HTTPError:
    services.metrics.rejected.labels(channel, reason).inc()
    if status == 413:
        limit = services.settings.max_request_bytes
        return web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=limit + 1, text=text)
    if status == 403:
        return web.HTTPForbidden(text=text)
    if status == 415:
        return web.HTTPUnsupportedMediaType(text=text)
    return web.HTTPBadRequest(text=text)


async def signed_form(
    request: web.Request, services: Services, channel: str
) -> MultiDictProxy[str]:
    """The form fields of a genuine Twilio webhook for this account, or an HTTP error."""
    account = TwilioAccount.from_services(services)
    if account is None:
        missing = ", ".join(
            missing_credentials(services, ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"))
        )
        warn_once(services, channel, f"webhooks refused: {missing} not configured")
        raise refuse(services, channel, 403, "not_configured", "channel not configured")
    if request.content_type != FORM_TYPE:
        raise refuse(
            services, channel, 415, "content_type", f"Twilio webhooks are posted as {FORM_TYPE}"
        )
    limit = services.settings.max_request_bytes
    if request.content_length is not None and request.content_length > limit:
        raise refuse(services, channel, 413, "too_large", "request body too large")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        services.metrics.rejected.labels(channel, "too_large").inc()
        raise exc
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise refuse(services, channel, 400, "malformed", "the form is not valid UTF-8") from None
    form: MultiDict[str] = MultiDict(pairs)
    signature = request.headers.get("X-Twilio-Signature", "")
    algorithm = get_signature_algorithm(request.headers.get("X-Twilio-Webhooks-Signature-Settings"))
    url = signed_url(request, services.settings.public_url)
    if not signature or not RequestValidator(account.auth_token).validate(
        url, form, signature, algorithm
    ):
        # Logged without the URL's query or the form: both may carry a resident's number.
        log.info("%s: refused a webhook with a missing or wrong signature", channel)
        raise refuse(services, channel, 403, "signature", "invalid Twilio signature")
    if form.get("AccountSid", account.account_sid) != account.account_sid:
        log.info("%s: refused a signed webhook for another account", channel)
        raise refuse(services, channel, 403, "account", "webhook for another account")
    return MultiDictProxy(form)


def required(services: Services, channel: str, form: Mapping[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value or len(value) > 200:
        raise refuse(services, channel, 400, "missing_field", f"{name} is missing or invalid")
    return value


def clean_text(text: str) -> str:
    """NUL cannot be stored in PostgreSQL text; other control characters are harmless."""
    return text.replace("\x00", "")


# --- configuration (config/twilio.toml) --------------------------------------------------------


@dataclass(frozen=True)
class Template:
    content_sid: str
    variables: tuple[str, ...]

    def content_variables(self, values: Mapping[str, str]) -> str | None:
        """The `ContentVariables` JSON ({"1": ..., "2": ...}), or None when a value is missing."""
        filled: dict[str, str] = {}
        for index, name in enumerate(self.variables, start=1):
            value = values.get(name)
            if value is None or not str(value).strip():
                return None
            filled[str(index)] = str(value)
        return json.dumps(filled, ensure_ascii=False)


@dataclass(frozen=True)
class WhatsAppConfig:
    media_types: tuple[str, ...] = ("image/", "application/pdf", "audio/")
    media_max_bytes: int = 5 * 1024 * 1024
    max_media: int = 10
    window_hours: float = 24.0
    max_body_chars: int = 1600
    templates: dict[str, Template] = field(default_factory=dict)

    def allows(self, content_type: str) -> bool:
        kind = content_type.split(";", 1)[0].strip().lower()
        return any(
            kind.startswith(allowed) if allowed.endswith("/") else kind == allowed
            for allowed in self.media_types
        )


@dataclass(frozen=True)
class MenuChoice:
    digit: str
    text: str


@dataclass(frozen=True)
class PhoneConfig:
    greeting: str = "Welkom bij de gemeente."
    menu_prompt: str = ""
    menu: tuple[MenuChoice, ...] = ()
    callback_offer_after_seconds: float = 30.0
    answer_within_seconds: float = 30.0
    callback_answer_hours: float = 24.0
    callback_priority: int = 15
    hold_music_url: str = ""
    language: str = "nl-NL"


@dataclass(frozen=True)
class TwilioConfig:
    whatsapp: WhatsAppConfig
    phone: PhoneConfig

    @classmethod
    def load(cls, config_dir: Path) -> TwilioConfig:
        path = config_dir / "twilio.toml"
        raw: dict[str, Any] = (
            tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        )
        wa = raw.get("whatsapp", {})
        templates = {
            purpose: Template(str(t["content_sid"]), tuple(t.get("variables", [])))
            for purpose, t in wa.get("templates", {}).items()
        }
        media = wa.get("media", {})
        whatsapp = WhatsAppConfig(
            media_types=tuple(media.get("allowed_types", WhatsAppConfig.media_types)),
            media_max_bytes=int(media.get("max_bytes", WhatsAppConfig.media_max_bytes)),
            max_media=int(media.get("max_count", WhatsAppConfig.max_media)),
            window_hours=float(wa.get("window_hours", 24.0)),
            max_body_chars=int(wa.get("max_body_chars", 1600)),
            templates=templates,
        )
        ph = raw.get("phone", {})
        phone = PhoneConfig(
            greeting=str(ph.get("greeting", PhoneConfig.greeting)),
            menu_prompt=str(ph.get("menu_prompt", "")),
            menu=tuple(MenuChoice(str(c["digit"]), str(c["text"])) for c in ph.get("menu", [])),
            callback_offer_after_seconds=float(ph.get("callback_offer_after_seconds", 30)),
            answer_within_seconds=float(ph.get("answer_within_seconds", 30)),
            callback_answer_hours=float(ph.get("callback_answer_hours", 24)),
            callback_priority=int(ph.get("callback_priority", 15)),
            hold_music_url=str(ph.get("hold_music_url", "")),
            language=str(ph.get("language", "nl-NL")),
        )
        return cls(whatsapp, phone)


# --- message status callbacks (WhatsApp and SMS) -----------------------------------------------

# A status only ever moves forward: Twilio's callbacks can arrive out of order. Our own
# `sending`/`queued` come first; `failed`/`undelivered` end a message that never arrived.
STATUS_RANK = {
    "queued": 0,
    "sending": 0,
    "accepted": 1,
    "scheduled": 1,
    "sent": 2,
    "failed": 3,
    "undelivered": 3,
    "delivered": 4,
    "read": 5,
}
RECORDED_STATUSES = frozenset({"sent", "delivered", "read", "failed", "undelivered"})
# What an agent needs to know about Twilio's most common delivery errors.
ERROR_MEANINGS = {
    "63016": "buiten het 24-uursvenster van WhatsApp; alleen een goedgekeurd sjabloon kan",
    "63003": "het nummer is niet bereikbaar via WhatsApp",
    "63024": "ongeldig bericht voor WhatsApp",
    "30003": "het nummer is niet bereikbaar",
    "30005": "onbekend nummer",
    "30006": "vast nummer of niet bereikbaar via dit kanaal",
    "30007": "geweigerd door de provider (filter)",
    "30008": "onbekende fout bij de provider",
}


def status_detail(status: str, error_code: str) -> str | None:
    if not error_code or error_code == "0":
        return None
    meaning = ERROR_MEANINGS.get(error_code, "zie de Twilio-foutcode")
    return f"Twilio-fout {error_code[:10]}: {meaning}"


async def record_message_status(
    services: Services, channel: str, form: Mapping[str, str], attempts: int = 10
) -> str:
    """Record a signed message status callback; returns what happened (for tests and logs).

    The callback may overtake our own bookkeeping (the provider id is recorded just after the
    API call returns), so a message not found yet is looked up again a few times."""
    sid = required(services, channel, form, "MessageSid")
    status = form.get("MessageStatus", form.get("SmsStatus", "")).strip().lower()
    if status not in RECORDED_STATUSES:
        return "ignored"
    detail = status_detail(status, form.get("ErrorCode", "").strip())
    earlier = [s for s, rank in STATUS_RANK.items() if rank < STATUS_RANK[status]]
    store = services.store
    for attempt in range(attempts):
        message = await store.set_delivery_by_provider_id(
            channel, sid, status, detail, only_from=earlier
        )
        if message is not None:
            if status in ("failed", "undelivered"):
                await store.add_event(
                    message.contact_id,
                    services.clock.now(),
                    "delivery",
                    f"channel:{channel}",
                    reason=f"bericht niet afgeleverd ({status})"
                    + (f": {detail}" if detail else ""),
                    data={"provider_id": sid, "status": status},
                )
            return "recorded"
        if await store.find_message(channel, sid) is not None:
            return "stale"  # already further along: an out-of-order callback
        if attempt + 1 < attempts:
            await asyncio.sleep(0.2)
    log.info("%s: status callback for an unknown message", channel)
    return "unknown"
