"""A local stand-in for the Telegram Bot API, for tests and the demo (never for production).

An aiohttp app on 127.0.0.1 that answers the Bot API methods the Telegram channel uses the way
Telegram does (`{"ok": true, "result": ...}`, or `{"ok": false, "error_code", "description"}`):
`getMe`, `sendMessage`, `getFile`, `setWebhook`, `deleteWebhook`, `getWebhookInfo`, and file
downloads at `/file/bot<token>/<file_path>`. It records what the bot sent, keeps files residents
"uploaded", can pretend a resident blocked the bot or that Telegram is down, and builds and posts
updates to our webhook with the secret header, as Telegram would.

Use::

    api = FakeBotApi(token="123:abc")
    base_url = await api.start()            # e.g. http://127.0.0.1:41234; TELEGRAM_API_BASE_URL
    update = api.text_update(chat_id=4242, text="Mijn container is niet geleegd", first_name="Jan")
    status, body = await post_update(webhook_url, update, secret="s3cret")
    # or, after our `setWebhook` call: status, body = await api.deliver(update)
    api.sent                                # [SentMessage(chat_id=4242, text=..., ...)]
    await api.close()
"""

from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

BOT_ID = 7000000001
BOT_USER = {
    "id": BOT_ID,
    "is_bot": True,
    "first_name": "Gemeente Groningen",
    "username": "GemeenteGroningenBot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
MAX_TEXT = 4096
MAX_DOWNLOAD = 20 * 1024 * 1024  # the Bot API serves files up to 20 MB
JSON_PARAMETERS = {"reply_parameters", "reply_markup", "allowed_updates", "entities"}
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@dataclass(frozen=True)
class SentMessage:
    chat_id: int
    text: str
    message_id: int
    parse_mode: str | None = None
    reply_to_message_id: int | None = None


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes


@dataclass
class FakeBotApi:
    token: str = "123456:TEST-token"
    sent: list[SentMessage] = field(default_factory=list)
    # Every method call, as (method, parameters), for assertions.
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    files: dict[str, StoredFile] = field(default_factory=dict)
    # Chats whose resident blocked the bot: sendMessage answers 403 as Telegram does.
    blocked: set[int] = field(default_factory=set)
    # The next this-many method calls answer 502 Bad Gateway (Telegram unreachable).
    failures: int = 0
    webhook_url: str = ""
    webhook_secret: str = ""
    url: str = ""

    def __post_init__(self) -> None:
        self._update_ids = itertools.count(100_000)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._file_numbers = itertools.count(1)
        self._runner: web.AppRunner | None = None

    # --- the server ---------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on `host` (a free port unless given); returns the base URL."""
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.url = f"http://{host}:{bound}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _method(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await _parameters(request)
        self.calls.append((method, params))
        if self.failures > 0:
            self.failures -= 1
            return _error(502, "Bad Gateway")
        handler = {
            "getMe": self._get_me,
            "sendMessage": self._send_message,
            "getFile": self._get_file,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._webhook_info,
        }.get(method)
        if handler is None:
            return _error(404, "Not Found: method not found")
        return handler(params)

    def _get_me(self, params: dict[str, Any]) -> web.Response:
        return _ok(BOT_USER)

    def _send_message(self, params: dict[str, Any]) -> web.Response:
        chat_id = _int(params.get("chat_id"))
        text = str(params.get("text", ""))
        if chat_id is None:
            return _error(400, "Bad Request: chat not found")
        if not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > MAX_TEXT:
            return _error(400, "Bad Request: message is too long")
        if chat_id in self.blocked:
            return _error(403, "Forbidden: bot was blocked by the user")
        reply = params.get("reply_parameters")
        message_id = self.next_message_id(chat_id)
        self.sent.append(
            SentMessage(
                chat_id=chat_id,
                text=text,
                message_id=message_id,
                parse_mode=params.get("parse_mode"),
                reply_to_message_id=reply.get("message_id") if isinstance(reply, dict) else None,
            )
        )
        return _ok(
            {
                "message_id": message_id,
                "from": BOT_USER,
                "chat": {"id": chat_id, "type": "private"},
                "date": int(time.time()),
                "text": text,
            }
        )

    def _get_file(self, params: dict[str, Any]) -> web.Response:
        stored = self.files.get(str(params.get("file_id", "")))
        if stored is None:
            return _error(400, "Bad Request: invalid file_id")
        if len(stored.data) > MAX_DOWNLOAD:
            return _error(400, "Bad Request: file is too big")
        return _ok(
            {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_size": len(stored.data),
                "file_path": stored.file_path,
            }
        )

    def _set_webhook(self, params: dict[str, Any]) -> web.Response:
        url = str(params.get("url", ""))
        secret = str(params.get("secret_token", ""))
        if url and not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            return _error(400, "Bad Request: bad webhook: An HTTPS URL must be provided")
        if secret and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            return _error(400, "Bad Request: secret token contains unallowed characters")
        self.webhook_url, self.webhook_secret = url, secret
        return _ok(True)

    def _delete_webhook(self, params: dict[str, Any]) -> web.Response:
        self.webhook_url, self.webhook_secret = "", ""
        return _ok(True)

    def _webhook_info(self, params: dict[str, Any]) -> web.Response:
        return _ok(
            {"url": self.webhook_url, "has_custom_certificate": False, "pending_update_count": 0}
        )

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        path = request.match_info["path"]
        for stored in self.files.values():
            if stored.file_path == path:
                return web.Response(body=stored.data, content_type="application/octet-stream")
        return _error(404, "Not Found")

    # --- what residents send ------------------------------------------------------------------

    def next_message_id(self, chat_id: int) -> int:
        """Message ids count per chat, shared by both sides, as in Telegram's private chats."""
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def add_file(self, data: bytes, folder: str = "documents", suffix: str = "") -> StoredFile:
        number = next(self._file_numbers)
        stored = StoredFile(
            file_id=f"FILE-{number}-{len(data)}",
            file_unique_id=f"U{number}",
            file_path=f"{folder}/file_{number}{suffix}",
            data=data,
        )
        self.files[stored.file_id] = stored
        return stored

    def message_update(
        self,
        chat_id: int,
        content: dict[str, Any],
        *,
        first_name: str = "Inwoner",
        last_name: str | None = None,
        date: int | None = None,
        chat_type: str = "private",
        kind: str = "message",
    ) -> dict[str, Any]:
        """An update carrying one message with `content` (e.g. {"text": ...}, {"sticker": ...})
        from a resident whose user id is the chat id. `kind`: message or edited_message."""
        user: dict[str, Any] = {"id": chat_id, "is_bot": False, "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = first_name
        else:
            chat["title"] = "Buurtgroep"
        message = {
            "message_id": self.next_message_id(chat_id),
            "from": user,
            "chat": chat,
            "date": date if date is not None else int(time.time()),
            **content,
        }
        if kind == "edited_message":
            message["edit_date"] = message["date"] + 60
        return {"update_id": next(self._update_ids), kind: message}

    def edited(self, update: dict[str, Any], text: str) -> dict[str, Any]:
        """The resident edits the message of `update`: an `edited_message` update."""
        message = dict(update["message"])
        message["text"] = text
        message["edit_date"] = int(message["date"]) + 60
        return {"update_id": next(self._update_ids), "edited_message": message}

    def text_update(self, chat_id: int, text: str, **who: Any) -> dict[str, Any]:
        return self.message_update(chat_id, {"text": text}, **who)

    def command_update(self, chat_id: int, command: str, **who: Any) -> dict[str, Any]:
        text = f"/{command}"
        return self.message_update(
            chat_id,
            {"text": text, "entities": [{"type": "bot_command", "offset": 0, "length": len(text)}]},
            **who,
        )

    def photo_update(
        self, chat_id: int, data: bytes, caption: str | None = None, **who: Any
    ) -> dict[str, Any]:
        """A photo in the sizes Telegram makes (a thumbnail and the original), smallest first."""
        thumb = self.add_file(data[:64], "photos", ".jpg")
        large = self.add_file(data, "photos", ".jpg")
        sizes = [
            {
                "file_id": thumb.file_id,
                "file_unique_id": thumb.file_unique_id,
                "width": 90,
                "height": 67,
                "file_size": len(thumb.data),
            },
            {
                "file_id": large.file_id,
                "file_unique_id": large.file_unique_id,
                "width": 1280,
                "height": 960,
                "file_size": len(large.data),
            },
        ]
        content: dict[str, Any] = {"photo": sizes}
        if caption is not None:
            content["caption"] = caption
        return self.message_update(chat_id, content, **who)

    def document_update(
        self,
        chat_id: int,
        data: bytes,
        file_name: str,
        mime_type: str,
        caption: str | None = None,
        **who: Any,
    ) -> dict[str, Any]:
        stored = self.add_file(data, "documents", "." + file_name.rpartition(".")[2])
        content: dict[str, Any] = {
            "document": {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_name": file_name,
                "mime_type": mime_type,
                "file_size": len(data),
            }
        }
        if caption is not None:
            content["caption"] = caption
        return self.message_update(chat_id, content, **who)

    async def deliver(self, update: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Post `update` to the webhook our `setWebhook` call registered, with its secret."""
        if not self.webhook_url:
            raise RuntimeError("no webhook set (call setWebhook first)")
        return await post_update(self.webhook_url, update, self.webhook_secret)


async def post_update(
    webhook_url: str,
    update: dict[str, Any],
    secret: str | None,
    session: aiohttp.ClientSession | None = None,
) -> tuple[int, dict[str, Any]]:
    """Post one update to a webhook as Telegram does (JSON, the secret in
    `X-Telegram-Bot-Api-Secret-Token`; no header when `secret` is None). Returns the HTTP status
    and the JSON answer ({} when the answer is not JSON)."""
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    own = session is None
    session = session or aiohttp.ClientSession()
    try:
        async with session.post(webhook_url, json=update, headers=headers) as response:
            try:
                body = await response.json(content_type=None)
            except (json.JSONDecodeError, aiohttp.ContentTypeError):
                body = {}
            return response.status, body if isinstance(body, dict) else {}
    finally:
        if own:
            await session.close()


async def _parameters(request: web.Request) -> dict[str, Any]:
    """Bot API parameters come as a query string, JSON, or a form whose non-string values
    python-telegram-bot JSON-encodes."""
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            params.update(body)
    elif request.body_exists:
        form = await request.post()
        for key, value in form.items():
            if not isinstance(value, str):
                continue
            if key in JSON_PARAMETERS:
                try:
                    params[key] = json.loads(value)
                    continue
                except json.JSONDecodeError:
                    pass
            params[key] = value
    return params


def _int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    return None


def _ok(result: object) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(code: int, description: str) -> web.Response:
    return web.json_response(
        {"ok": False, "error_code": code, "description": description}, status=code
    )
