"""A local stand-in for Twilio, for tests and the demo (never used in production).

Two halves:

- `FakeTwilio`: an aiohttp app on 127.0.0.1 playing Twilio's REST API as far as we use it:
  `POST /2010-04-01/Accounts/{sid}/Messages.json` and `.../Calls.json` (HTTP Basic SID:token,
  answers like Twilio with `SM...`/`CA...` sids, records what was sent), and the media of inbound
  messages (`MediaUrl`s needing Basic auth, redirecting to unauthenticated storage like Twilio's
  S3 links). It sends signed status callbacks to the `StatusCallback` URLs it was given.
- `TwilioWebhooks`: what Twilio does towards our service: form posts signed with
  `X-Twilio-Signature` (the SDK's `RequestValidator.compute_signature`) over the URL Twilio
  believes it calls (`public_url` + path when our service sits behind a proxy), sent to the
  address where the service really listens.

For the demo, two functions drive a resident through the real, signed inbound path:

    await send_whatsapp(service_url, account_sid, auth_token, from_number="+31612345678",
                        text="Wanneer wordt het grofvuil opgehaald?", profile_name="Piet",
                        public_url=None) -> str            # the MessageSid it used
    await call_in(service_url, account_sid, auth_token, from_number="+31612345678",
                  digit="2", public_url=None) -> Call     # the call, waiting in its queue

`public_url`: KCC_PUBLIC_URL of the service if it has one (the URL Twilio signs).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

API_PREFIX = "/2010-04-01/Accounts/{account}"


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


# --- Twilio calling us ---------------------------------------------------------------------------


@dataclass
class WebhookAnswer:
    status: int
    text: str
    content_type: str

    def twiml(self) -> ET.Element:
        return ET.fromstring(self.text)


class TwilioWebhooks:
    """Signed webhooks to our service, as Twilio sends them."""

    def __init__(
        self,
        service_url: str,
        account_sid: str,
        auth_token: str,
        public_url: str | None = None,
    ) -> None:
        self.service_url = service_url.rstrip("/")
        self.public_url = (public_url or service_url).rstrip("/")
        self.account_sid = account_sid
        self.validator = RequestValidator(auth_token)

    def signing_url(self, url_or_path: str) -> tuple[str, str]:
        """(URL Twilio signs, URL to post to) for a path or an absolute public URL."""
        if url_or_path.startswith("http"):
            parts = urlsplit(url_or_path)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            return url_or_path, self.service_url + path
        return self.public_url + url_or_path, self.service_url + url_or_path

    async def post(
        self,
        url_or_path: str,
        params: Mapping[str, str],
        *,
        signature: str | None = None,
    ) -> WebhookAnswer:
        """Post a form like Twilio; `signature` overrides the real one (forgery tests)."""
        signed, target = self.signing_url(url_or_path)
        form = {"AccountSid": self.account_sid, **params}
        headers = {
            "X-Twilio-Signature": signature
            if signature is not None
            else self.validator.compute_signature(signed, form),
            "User-Agent": "TwilioProxy/1.1",
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(target, data=form, headers=headers) as response,
        ):
            return WebhookAnswer(response.status, await response.text(), response.content_type)


@dataclass
class Call:
    """One inbound call as the sandbox plays it: Twilio's side of the call."""

    hooks: TwilioWebhooks
    call_sid: str
    from_number: str
    to_number: str
    queue: str | None = None
    answers: list[WebhookAnswer] = field(default_factory=list)

    def params(self, **extra: str) -> dict[str, str]:
        return {
            "CallSid": self.call_sid,
            "From": self.from_number,
            "To": self.to_number,
            "Direction": "inbound",
            "CallStatus": "in-progress",
            "ApiVersion": "2010-04-01",
            **extra,
        }

    async def post(self, url: str, **extra: str) -> WebhookAnswer:
        answer = await self.hooks.post(url, self.params(**extra))
        self.answers.append(answer)
        if answer.status == 200:
            enqueue = answer.twiml().find("Enqueue")
            if enqueue is not None and enqueue.text:
                self.queue = enqueue.text.strip()
        return answer

    async def start(self, digit: str | None = None) -> WebhookAnswer:
        """The call comes in; a menu (Gather) is answered with `digit`, or times out."""
        answer = await self.post("/channels/phone/voice", CallStatus="ringing")
        if answer.status != 200:
            return answer
        gather = answer.twiml().find("Gather")
        if gather is None:
            return answer
        if digit is not None:
            return await self.post(gather.get("action") or "/channels/phone/voice", Digits=digit)
        redirect = answer.twiml().find("Redirect")
        assert redirect is not None and redirect.text, "a menu must say what follows no choice"
        return await self.post(redirect.text.strip())

    def enqueue_element(self) -> ET.Element:
        for answer in reversed(self.answers):
            if answer.status == 200 and (found := answer.twiml().find("Enqueue")) is not None:
                return found
        raise AssertionError("the call was never put in a queue")

    async def wait(self, queue_time: int, position: int = 1) -> WebhookAnswer:
        """Twilio asks the wait URL what to play while the caller waits."""
        element = self.enqueue_element()
        return await self.post(
            element.get("waitUrl") or "",
            QueueSid=self.queue_sid,
            QueuePosition=str(position),
            QueueTime=str(queue_time),
            AvgQueueTime=str(queue_time),
            CurrentQueueSize=str(position),
            MaxQueueSize="100",
        )

    async def press(
        self, wait_answer: WebhookAnswer, digits: str, queue_time: int
    ) -> WebhookAnswer:
        gather = wait_answer.twiml().find("Gather")
        assert gather is not None, "no menu was offered"
        return await self.post(gather.get("action") or "", Digits=digits, QueueTime=str(queue_time))

    async def leave_queue(self, result: str, queue_time: int) -> WebhookAnswer:
        """The call left the queue (bridged, hangup, leave...): Twilio calls Enqueue's action."""
        element = self.enqueue_element()
        return await self.post(
            element.get("action") or "",
            QueueResult=result,
            QueueTime=str(queue_time),
            QueueSid=self.queue_sid,
        )

    @property
    def queue_sid(self) -> str:
        """The Twilio queue holding this call (one per call, so derived from the call)."""
        return "QU" + self.call_sid[2:]

    async def status(self, call_status: str, duration: int | None = None) -> WebhookAnswer:
        extra = {"CallStatus": call_status}
        if duration is not None:
            extra["CallDuration"] = str(duration)
        return await self.post("/channels/phone/status", **extra)


# --- the fake REST API -------------------------------------------------------------------------


@dataclass
class SentMessage:
    sid: str
    params: dict[str, str]
    media_urls: list[str]

    @property
    def to(self) -> str:
        return self.params.get("To", "")

    @property
    def from_(self) -> str:
        return self.params.get("From", "")

    @property
    def body(self) -> str:
        return self.params.get("Body", "")


@dataclass
class Failure:
    status: int
    code: int
    message: str


class FakeTwilio:
    """The REST API stand-in. `await start()`, use `base_url` as TWILIO_API_BASE_URL."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.messages: list[SentMessage] = []
        self.calls: list[dict[str, str]] = []
        self.media: dict[str, tuple[bytes, str]] = {}
        self.media_fetches: list[str] = []
        self.failures: list[Failure] = []  # answered to the next API requests, in order
        self.media_unavailable = False
        self.deleted_queues: list[str] = []
        # Where status callbacks really go: public base URL -> address the service listens on.
        self.routes: dict[str, str] = {}
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        app = web.Application()
        prefix = API_PREFIX.format(account="{account}")
        app.router.add_post(prefix + "/Messages.json", self._create_message)
        app.router.add_post(prefix + "/Calls.json", self._create_call)
        app.router.add_get(prefix + "/Messages/{message}/Media/{media}", self._media)
        app.router.add_delete(prefix + "/Queues/{queue}.json", self._delete_queue)
        self.app = app
        # Twilio's media links redirect to storage on another origin (pre-signed, no auth).
        storage = web.Application()
        storage.router.add_get("/media-store/{media}", self._stored_media)
        self.storage = storage
        self.storage_url = ""
        self._storage_runner: web.AppRunner | None = None

    async def start(self) -> str:
        self._runner, self.base_url = await _serve(self.app)
        self._storage_runner, self.storage_url = await _serve(self.storage)
        return self.base_url

    async def stop(self) -> None:
        for runner in (self._runner, self._storage_runner):
            if runner is not None:
                await runner.cleanup()
        self._runner = self._storage_runner = None

    def route(self, public_url: str, service_url: str) -> None:
        """Callbacks to `public_url`... are delivered to `service_url`... (the proxy's job)."""
        self.routes[public_url.rstrip("/")] = service_url.rstrip("/")

    # --- media of inbound messages --------------------------------------------------------

    def add_media(self, data: bytes, content_type: str) -> str:
        """A medium a resident sent; returns its MediaUrl (needs the account's Basic auth)."""
        media_sid = new_sid("ME")
        self.media[media_sid] = (data, content_type)
        return (
            f"{self.base_url}{API_PREFIX.format(account=self.account_sid)}"
            f"/Messages/{new_sid('MM')}/Media/{media_sid}"
        )

    async def _media(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return _error(401, 20003, "Authenticate")
        media_sid = request.match_info["media"]
        self.media_fetches.append(media_sid)
        if self.media_unavailable:
            return _error(503, 20500, "Service unavailable")
        if media_sid not in self.media:
            return _error(404, 20404, "The requested resource was not found")
        raise web.HTTPTemporaryRedirect(
            f"{self.storage_url}/media-store/{media_sid}?sig={secrets.token_hex(8)}"
        )

    async def _stored_media(self, request: web.Request) -> web.Response:
        if "Authorization" in request.headers:
            # Twilio's storage links are pre-signed; credentials must not be sent along.
            return web.Response(status=400, text="unexpected credentials")
        data, content_type = self.media[request.match_info["media"]]
        return web.Response(body=data, content_type=content_type)

    # --- REST API ---------------------------------------------------------------------------

    def _authorised(self, request: web.Request) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("Authorization", "") == f"Basic {expected}" and (
            request.match_info.get("account") == self.account_sid
        )

    async def _create_message(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _error(401, 20003, "Authenticate")
        if self.failures:
            failure = self.failures.pop(0)
            return _error(failure.status, failure.code, failure.message)
        form = await request.post()
        params = {k: str(v) for k, v in form.items() if k != "MediaUrl"}
        media = [str(v) for v in form.getall("MediaUrl", [])]
        if not params.get("To"):
            return _error(400, 21604, "A 'To' phone number is required.")
        if not params.get("From") and not params.get("MessagingServiceSid"):
            return _error(400, 21603, "A 'From' phone number is required.")
        if not params.get("Body") and not params.get("ContentSid") and not media:
            return _error(400, 21602, "Message body is required.")
        if "ContentVariables" in params:
            try:
                json.loads(params["ContentVariables"])
            except ValueError:
                return _error(400, 21656, "The ContentVariables Parameter is invalid.")
        sid = new_sid("SM")
        self.messages.append(SentMessage(sid, params, media))
        now = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
        return web.json_response(
            {
                "sid": sid,
                "account_sid": self.account_sid,
                "to": params["To"],
                "from": params.get("From"),
                "body": params.get("Body", ""),
                "status": "queued",
                "num_segments": "1",
                "num_media": str(len(media)),
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "date_created": now,
                "date_updated": now,
                "date_sent": None,
                "error_code": None,
                "error_message": None,
                "price": None,
                "price_unit": "USD",
                "messaging_service_sid": None,
                "uri": f"{API_PREFIX.format(account=self.account_sid)}/Messages/{sid}.json",
                "subresource_uris": {},
            },
            status=201,
        )

    async def _create_call(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _error(401, 20003, "Authenticate")
        if self.failures:
            failure = self.failures.pop(0)
            return _error(failure.status, failure.code, failure.message)
        form = await request.post()
        params = {k: str(v) for k, v in form.items()}
        if not params.get("To") or not params.get("From"):
            return _error(400, 21201, "No 'To' or 'From' number is specified")
        if not params.get("Twiml") and not params.get("Url"):
            return _error(400, 21205, "Url or Twiml parameter is required")
        sid = new_sid("CA")
        params["Sid"] = sid
        self.calls.append(params)
        return web.json_response(
            {
                "sid": sid,
                "account_sid": self.account_sid,
                "to": params["To"],
                "from": params["From"],
                "status": "queued",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "uri": f"{API_PREFIX.format(account=self.account_sid)}/Calls/{sid}.json",
                "subresource_uris": {},
            },
            status=201,
        )

    async def _delete_queue(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _error(401, 20003, "Authenticate")
        self.deleted_queues.append(request.match_info["queue"])
        return web.Response(status=204)

    async def answer_call(self, call_sid: str) -> WebhookAnswer:
        """The called party picks up: Twilio fetches the call's instructions (its `Url`)."""
        placed = next(c for c in self.calls if c["Sid"] == call_sid)
        if "Twiml" in placed:
            return WebhookAnswer(200, placed["Twiml"], "text/xml")
        params = {
            "CallSid": call_sid,
            "From": placed["From"],
            "To": placed["To"],
            "Direction": "outbound-api",
            "CallStatus": "in-progress",
            "ApiVersion": "2010-04-01",
        }
        return await self._hooks_for(placed["Url"]).post(placed["Url"], params)

    # --- status callbacks -------------------------------------------------------------------

    def message(self, sid: str) -> SentMessage:
        return next(m for m in self.messages if m.sid == sid)

    async def send_status(
        self, sid: str, status: str, error_code: str | None = None
    ) -> WebhookAnswer:
        """Twilio reports a message's progress to its StatusCallback, signed."""
        sent = self.message(sid)
        callback = sent.params.get("StatusCallback")
        assert callback, "the message was sent without a StatusCallback"
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "To": sent.to,
            "From": sent.from_,
            "ApiVersion": "2010-04-01",
        }
        if error_code:
            params["ErrorCode"] = error_code
        return await self._hooks_for(callback).post(callback, params)

    def _hooks_for(self, url: str) -> TwilioWebhooks:
        parts = urlsplit(url)
        base = f"{parts.scheme}://{parts.netloc}"
        return TwilioWebhooks(
            self.routes.get(base, base), self.account_sid, self.auth_token, public_url=base
        )


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    return runner, f"http://127.0.0.1:{port}"


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status=status,
    )


# --- for the demo --------------------------------------------------------------------------------

_message_numbers = itertools.count(1)


async def send_whatsapp(
    service_url: str,
    account_sid: str,
    auth_token: str,
    *,
    from_number: str,
    text: str,
    profile_name: str | None = None,
    to_number: str = "+3150000000",
    media: Sequence[tuple[str, str]] = (),
    public_url: str | None = None,
    message_sid: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> str:
    """A resident's WhatsApp message through the signed inbound webhook; returns its MessageSid.
    `media`: (MediaUrl, content type) pairs, e.g. from `FakeTwilio.add_media`."""
    hooks = TwilioWebhooks(service_url, account_sid, auth_token, public_url)
    sid = message_sid or new_sid("SM")
    params: dict[str, Any] = {
        "MessageSid": sid,
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "From": f"whatsapp:{from_number}",
        "To": f"whatsapp:{to_number}",
        "Body": text,
        "NumMedia": str(len(media)),
        "NumSegments": "1",
        "WaId": from_number.lstrip("+"),
        "SmsStatus": "received",
        "MessageType": "text" if not media else "image",
        "ApiVersion": "2010-04-01",
        **({"ProfileName": profile_name} if profile_name else {}),
        **dict(extra or {}),
    }
    for index, (url, content_type) in enumerate(media):
        params[f"MediaUrl{index}"] = url
        params[f"MediaContentType{index}"] = content_type
    answer = await hooks.post("/channels/whatsapp", params)
    if answer.status != 200:
        raise RuntimeError(f"the service refused the WhatsApp webhook: {answer.status}")
    return sid


async def call_in(
    service_url: str,
    account_sid: str,
    auth_token: str,
    *,
    from_number: str,
    digit: str | None = None,
    to_number: str = "+3150000000",
    public_url: str | None = None,
) -> Call:
    """A resident calls: the voice webhook, the menu answered with `digit` (None: no choice),
    ending in the Twilio queue named after the contact's reference (`Call.queue`)."""
    hooks = TwilioWebhooks(service_url, account_sid, auth_token, public_url)
    call = Call(hooks, new_sid("CA"), from_number, to_number)
    await call.start(digit)
    return call


async def _main() -> None:  # pragma: no cover - manual use: python -m sandbox.twilio
    fake = FakeTwilio("AC" + "0" * 32, "sandbox-token")
    print("fake Twilio API at", await fake.start())
    await asyncio.Event().wait()


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(_main())
