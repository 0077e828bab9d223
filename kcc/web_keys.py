"""Typed keys for what the aiohttp application carries."""

from typing import Any

from aiohttp import web

from kcc.services import Services

SERVICES = web.AppKey("services", Services)
# The channel adapters the app runs (for tests and tools that need one of them).
CHANNELS: web.AppKey[list[Any]] = web.AppKey("channels", list)
