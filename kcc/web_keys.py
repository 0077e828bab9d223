"""Typed keys for what the aiohttp application carries."""

from aiohttp import web

from kcc.services import Services

SERVICES = web.AppKey("services", Services)
