"""The Telegram channel: python-telegram-bot in webhook mode inside our own aiohttp app.

Telegram posts each update to `POST /channels/telegram` with the secret we gave `setWebhook` in
the `X-Telegram-Bot-Api-Secret-Token` header. We check it, parse the update and let the
application's handlers run inside `process_update`, awaited (never `block=False`): a handler
turns a resident's message into a durable contact before the webhook answers 200. Any failure on
our side answers 503, so Telegram delivers the update again (the message id makes that
harmless). What cannot become a contact is quarantined with a reason and answered 200, because
Telegram would otherwise repeat it for a day.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from telegram import Update
from telegram.error import Forbidden, TelegramError
from telegram.ext import (
    Application,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.request import BaseRequest

from adapters.channel import ChannelAdapter
from adapters.outbound import Delivery, OutboundMessage
from adapters.telegram.config import TelegramConfig, api_urls
from adapters.telegram.messages import Unsupported, convert
from adapters.telegram.sender import TelegramSender
from contacts.inbound import InboundError
from kcc.services import Services

log = logging.getLogger(__name__)

PATH = "/channels/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
TelegramApp = Application[Any, Any, Any, Any, Any, Any]
Context = ContextTypes.DEFAULT_TYPE


@dataclass
class Receipt:
    """What the handlers did with one update, for the webhook's answer."""

    raw: bytes
    kind: str
    outcome: str | None = None
    reference: str | None = None
    error: BaseException | None = None


# Handlers run awaited inside `process_update`, in the webhook request's own task: they see the
# receipt of their update through this variable.
_RECEIPT: ContextVar[Receipt] = ContextVar("telegram_receipt")


def build_application(
    token: str, api_base_url: str = "", request: BaseRequest | None = None
) -> TelegramApp:
    """An application without updater (webhook in our app, no polling) and without job queue."""
    base_url, base_file_url = api_urls(api_base_url)
    builder = (
        Application.builder()
        .token(token)
        .updater(None)
        .job_queue(None)
        .base_url(base_url)
        .base_file_url(base_file_url)
    )
    if request is not None:
        builder = builder.request(request)
    else:
        builder = builder.connect_timeout(5).read_timeout(20).write_timeout(20).pool_timeout(5)
    return builder.build()


class TelegramAdapter(ChannelAdapter):
    channel = "telegram"

    def __init__(self, services: Services, request: BaseRequest | None = None) -> None:
        super().__init__(services)
        settings = services.settings
        self.config = TelegramConfig.load(settings.config_dir)
        self.token = settings.secret("TELEGRAM_BOT_TOKEN")
        self.secret = settings.secret("TELEGRAM_WEBHOOK_SECRET")
        self.api_base_url = settings.secret("TELEGRAM_API_BASE_URL")
        self.request = request
        self.application: TelegramApp | None = None
        self._ready = False
        self._ready_lock = asyncio.Lock()
        self._refusal_logged = False

    @property
    def configured(self) -> bool:
        return bool(self.token and self.secret)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(PATH, self.webhook)

    async def start(self) -> None:
        if not self.configured:
            log.warning(
                "telegram channel off: TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET must both "
                "be set; %s answers 403",
                PATH,
            )
            return
        application = build_application(self.token, self.api_base_url, self.request)
        private = filters.ChatType.PRIVATE
        application.add_handler(
            CommandHandler(
                ["start", "help"], self._welcome, filters=private & filters.UpdateType.MESSAGE
            )
        )
        application.add_handler(
            MessageHandler(
                private & (filters.UpdateType.MESSAGE | filters.UpdateType.EDITED_MESSAGE),
                self._message,
            )
        )
        application.add_handler(TypeHandler(Update, self._other))
        application.add_error_handler(self._error)
        self.application = application
        self.services.outbox.register(self.channel, _ReadySender(self, application))
        try:
            await self.ready()
        except TelegramError as error:
            # The service runs without Telegram; the first update or reply tries again.
            log.warning("telegram: Bot API not reachable at start (%s)", type(error).__name__)

    async def ready(self) -> TelegramApp:
        """The initialised application (`getMe` done); raises while the Bot API is down."""
        if self.application is None:
            raise RuntimeError("the telegram channel is not configured")
        async with self._ready_lock:
            if not self._ready:
                await self.application.initialize()
                await self.application.start()
                self._ready = True
        return self.application

    async def stop(self) -> None:
        self.services.outbox.unregister(self.channel)
        if self.application is not None and self._ready:
            self._ready = False
            await self.application.stop()
            await self.application.shutdown()

    # --- the webhook -------------------------------------------------------------------------

    async def webhook(self, request: web.Request) -> web.Response:
        if not self.configured:
            if not self._refusal_logged:
                self._refusal_logged = True
                log.warning("telegram webhook refused: the channel has no token or secret")
            raise web.HTTPForbidden(text="het Telegram-kanaal is niet ingericht")
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            log.warning("telegram webhook refused: secret token missing or wrong")
            raise web.HTTPForbidden(text="secret token missing or wrong")
        if request.content_type != "application/json":
            raise web.HTTPUnsupportedMediaType(text="a Telegram update is application/json")
        limit = self.config.max_update_bytes
        if request.content_length is not None and request.content_length > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
        raw = await request.read()
        if len(raw) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(raw))
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise web.HTTPBadRequest(text="the body is not valid JSON") from None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("update_id"), int)
            or isinstance(data.get("update_id"), bool)
        ):
            raise web.HTTPUnprocessableEntity(text="not a Telegram update (no update_id)")
        update_id: int = data["update_id"]
        kind = next((str(k) for k in data if k != "update_id"), "leeg")[:40]
        try:
            application = await self.ready()
        except TelegramError as error:
            log.warning(
                "telegram update %d not taken: Bot API down (%s)", update_id, type(error).__name__
            )
            return _retry_later()
        try:
            update = Update.de_json(data, application.bot)
        except Exception as error:  # a shape python-telegram-bot cannot read: keep it
            failed = Receipt(raw, kind)
            reason = f"update kon niet worden gelezen ({type(error).__name__})"
            await self._quarantine(failed, update_id, reason)
            if failed.error is not None:
                return _retry_later()
            return web.json_response({"ok": True, "outcome": "quarantined"})
        receipt = Receipt(raw, kind)
        token = _RECEIPT.set(receipt)
        try:
            await application.process_update(update)
        finally:
            _RECEIPT.reset(token)
        if receipt.error is not None:
            log.warning(
                "telegram update %d not stored (%s); Telegram will deliver it again",
                update_id,
                type(receipt.error).__name__,
            )
            return _retry_later()
        body: dict[str, Any] = {"ok": True, "outcome": receipt.outcome or "ignored"}
        if receipt.reference:
            body["reference"] = receipt.reference
        return web.json_response(body)

    # --- handlers (awaited inside process_update) ---------------------------------------------

    async def _welcome(self, update: Update, context: Context) -> None:
        receipt = _RECEIPT.get()
        message = update.effective_message
        if message is None:
            return
        try:
            await context.bot.send_message(chat_id=message.chat.id, text=self.config.welcome)
            receipt.outcome = "welcome"
        except Forbidden:
            receipt.outcome = "welcome_not_delivered"
        except TelegramError as error:
            receipt.error = error

    async def _message(self, update: Update, context: Context) -> None:
        receipt = _RECEIPT.get()
        message = update.effective_message
        if message is None:
            return
        edited = update.edited_message is not None
        try:
            converted = await convert(
                message, context.bot, self.config, edited, self.services.clock.now()
            )
            result = await self.services.intake.receive(converted.inbound)
        except Unsupported as error:
            await self._quarantine(receipt, update.update_id, str(error))
            return
        except InboundError as error:
            await self._quarantine(receipt, update.update_id, f"geen contact: {error}")
            return
        except Exception as error:  # the database or the Bot API: Telegram retries
            receipt.error = error
            return
        receipt.outcome, receipt.reference = result.outcome, result.contact.reference
        notice = self.config.file_not_stored
        if converted.refused_files and result.outcome != "duplicate" and notice:
            try:
                await context.bot.send_message(chat_id=message.chat.id, text=notice)
            except TelegramError as error:  # the contact is stored; the notice is a courtesy
                log.info(
                    "telegram: file notice for %s not sent (%s)",
                    result.contact.reference,
                    type(error).__name__,
                )

    async def _other(self, update: Update, context: Context) -> None:
        """Updates no other handler took: a message from a group or channel, or an update type
        without a resident's message (a blocked bot, a button press)."""
        receipt = _RECEIPT.get()
        message = update.effective_message
        if message is not None and message.chat.type != "private":
            reason = "bericht uit een groep of kanaal; alleen privéchats worden behandeld"
            await self._quarantine(receipt, update.update_id, reason)
        elif message is not None:
            reason = f"updatetype {receipt.kind} wordt niet ondersteund"
            await self._quarantine(receipt, update.update_id, reason)
        else:
            log.info("telegram update %d (%s) needs no action", update.update_id, receipt.kind)
            receipt.outcome = "ignored"

    async def _error(self, update: object, context: Context) -> None:
        """python-telegram-bot hands handler errors here instead of raising them: record it, so
        the webhook answers 503 and nothing is lost."""
        receipt = _RECEIPT.get(None)
        if receipt is not None and receipt.error is None:
            receipt.error = context.error or RuntimeError("telegram handler failed")

    async def _quarantine(self, receipt: Receipt, update_id: int, reason: str) -> None:
        try:
            await self.services.quarantine.keep(
                self.channel,
                reason,
                self.services.clock.now(),
                raw=receipt.raw,
                provider_id=f"update:{update_id}",
                content_type="application/json",
            )
        except Exception as error:
            receipt.error = error
            return
        receipt.outcome = "quarantined"


class _ReadySender:
    """The outbox's sender: makes sure the application is initialised before each send."""

    def __init__(self, adapter: TelegramAdapter, application: TelegramApp) -> None:
        self.adapter = adapter
        self.sender = TelegramSender(application.bot)

    async def send(self, message: OutboundMessage) -> Delivery:
        await self.adapter.ready()
        return await self.sender.send(message)


def _retry_later() -> web.Response:
    return web.json_response(
        {"error": "tijdelijk niet opgeslagen; Telegram bezorgt de update opnieuw"}, status=503
    )
