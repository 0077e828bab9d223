"""What every channel adapter offers the service: its routes (webhooks, forms), background work
(pollers, watched folders) and, through the outbox, a sender for replies on its channel.

An adapter is built from the shared services, adds its routes before the app starts, starts after
the router (so inbound work can be routed at once) and stops before the services close.
"""

from __future__ import annotations

from aiohttp import web

from kcc.services import Services


class ChannelAdapter:
    """Base class: no routes, no background work, no sender. Adapters override what they have."""

    channel: str = ""

    def __init__(self, services: Services) -> None:
        self.services = services

    def add_routes(self, app: web.Application) -> None:
        """Add the channel's HTTP endpoints (called once, before the app starts)."""

    async def start(self) -> None:
        """Register the outbound sender and start background work."""

    async def stop(self) -> None:
        """Stop background work; must be safe to call when `start` failed half-way."""
