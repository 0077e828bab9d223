"""`kcc telegram ...`: tell Telegram where our webhook is (`setWebhook` with our secret), show
what Telegram knows (`getWebhookInfo`) and remove it (`deleteWebhook`)."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from typing import Any

from telegram import Bot
from telegram.error import InvalidToken, TelegramError

from adapters.telegram.adapter import PATH
from adapters.telegram.config import api_urls
from kcc.settings import Settings

# Only the messages we handle: group chatter and inline queries are not sent to us at all.
ALLOWED_UPDATES = ["message", "edited_message"]
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


class SetupError(RuntimeError):
    """A configuration problem, said in one line."""


def _bot(settings: Settings) -> Bot:
    token = settings.secret("TELEGRAM_BOT_TOKEN")
    if not token:
        raise SetupError("TELEGRAM_BOT_TOKEN is not set")
    base_url, base_file_url = api_urls(settings.secret("TELEGRAM_API_BASE_URL"))
    return Bot(token, base_url=base_url, base_file_url=base_file_url)


def webhook_url(settings: Settings, url: str | None) -> str:
    if url:
        return url
    if not settings.public_url:
        raise SetupError("give --url, or set KCC_PUBLIC_URL (the service's public https address)")
    return settings.public_url.rstrip("/") + PATH


async def set_webhook(
    settings: Settings,
    url: str | None = None,
    drop_pending_updates: bool = False,
    max_connections: int = 40,
) -> str:
    """Register our webhook with Telegram; returns the URL registered."""
    secret = settings.secret("TELEGRAM_WEBHOOK_SECRET")
    if not _SECRET.fullmatch(secret):
        raise SetupError(
            "TELEGRAM_WEBHOOK_SECRET must be 1-256 characters A-Z, a-z, 0-9, _ and - "
            "(e.g. from `openssl rand -hex 32`)"
        )
    target = webhook_url(settings, url)
    async with _bot(settings) as bot:
        await bot.set_webhook(
            url=target,
            secret_token=secret,
            allowed_updates=ALLOWED_UPDATES,
            drop_pending_updates=drop_pending_updates,
            max_connections=max_connections,
        )
    return target


async def webhook_info(settings: Settings) -> dict[str, Any]:
    async with _bot(settings) as bot:
        info = await bot.get_webhook_info()
    return {
        "url": info.url,
        "pending_update_count": info.pending_update_count,
        "last_error_date": info.last_error_date.isoformat() if info.last_error_date else None,
        "last_error_message": info.last_error_message,
        "max_connections": info.max_connections,
        "allowed_updates": list(info.allowed_updates or ()),
    }


async def delete_webhook(settings: Settings, drop_pending_updates: bool = False) -> None:
    async with _bot(settings) as bot:
        await bot.delete_webhook(drop_pending_updates=drop_pending_updates)


def add_commands(commands: Any) -> None:
    """Add `kcc telegram` to the `kcc` command's subparsers."""
    parser = commands.add_parser("telegram", help="set up the Telegram channel's webhook")
    actions = parser.add_subparsers(dest="telegram_command", required=True)
    p_set = actions.add_parser(
        "set-webhook",
        help="register our webhook with Telegram (TELEGRAM_BOT_TOKEN, TELEGRAM_WEBHOOK_SECRET)",
    )
    p_set.add_argument("--url", help="the public https URL (default KCC_PUBLIC_URL + " + PATH + ")")
    p_set.add_argument("--drop-pending-updates", action="store_true")
    p_set.add_argument("--max-connections", type=int, default=40)
    p_set.set_defaults(func=_run_set)
    p_info = actions.add_parser("webhook-info", help="what Telegram knows about our webhook")
    p_info.set_defaults(func=_run_info)
    p_delete = actions.add_parser("delete-webhook", help="stop Telegram sending us updates")
    p_delete.add_argument("--drop-pending-updates", action="store_true")
    p_delete.set_defaults(func=_run_delete)


def _run_set(args: argparse.Namespace) -> int:
    return _run(
        lambda s: set_webhook(s, args.url, args.drop_pending_updates, args.max_connections),
        "webhook set: {}",
    )


def _run_info(args: argparse.Namespace) -> int:
    return _run(webhook_info, "{}")


def _run_delete(args: argparse.Namespace) -> int:
    return _run(lambda s: delete_webhook(s, args.drop_pending_updates), "webhook deleted")


def _run(action: Any, message: str) -> int:
    settings = Settings.from_env()
    try:
        result = asyncio.run(action(settings))
    except InvalidToken:
        # Its text repeats the token: never print that.
        print("kcc telegram: InvalidToken: Telegram refused TELEGRAM_BOT_TOKEN", file=sys.stderr)
        return 1
    except (SetupError, TelegramError) as error:
        print(f"kcc telegram: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    if isinstance(result, dict):
        for key, value in result.items():
            print(f"{key}: {value}")
    else:
        print(message.format(result))
    return 0
