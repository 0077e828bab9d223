"""The aiohttp application: channels, the API, metrics and health, on one set of services."""

from __future__ import annotations

from collections.abc import AsyncIterator

import sqlalchemy as sa
from aiohttp import web

from adapters.registry import build_adapters
from desk import routes as desk_pages
from kcc.api import agents, contacts, desk_actions, kennisbank, notes, quarantine, queues, sla
from kcc.api.errors import error_middleware
from kcc.api.openapi import serve as openapi
from kcc.services import Services
from kcc.web_keys import CHANNELS, SERVICES


async def metrics(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    await services.metrics.refresh(
        services.backend, list(services.config.queues), services.clock.now().timestamp()
    )
    await services.sla.refresh_gauges(list(services.config.queues))
    return web.Response(
        body=services.metrics.render(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )


async def healthz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    async with services.engine.connect() as connection:
        await connection.execute(sa.text("SELECT 1"))
    return web.json_response(
        {"status": "ok", "queue_index_built": await services.backend.is_built()}
    )


def create_app(services: Services, start: bool = True, sweep: bool = True) -> web.Application:
    """`start`: start the router (and its sweep) with the app, close the services after it."""
    app = web.Application(
        middlewares=[error_middleware], client_max_size=services.settings.max_request_bytes
    )
    app[SERVICES] = services
    channels = build_adapters(services)
    app[CHANNELS] = channels
    if start:

        async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
            await services.start(sweep=sweep)
            started = []
            try:
                for channel in channels:
                    started.append(channel)
                    await channel.start()
                yield
            finally:
                for channel in reversed(started):
                    await channel.stop()
                await services.close()

        app.cleanup_ctx.append(lifecycle)

    for channel in channels:
        channel.add_routes(app)
    app.router.add_post("/api/contacts", contacts.ingest)
    app.router.add_get("/api/contacts/{reference}", contacts.get_contact)
    app.router.add_post("/api/contacts/{reference}/reply", contacts.reply)
    app.router.add_post("/api/contacts/{reference}/transfer", contacts.transfer)
    app.router.add_post("/api/contacts/{reference}/wait", contacts.wait_on_resident)
    app.router.add_post("/api/contacts/{reference}/close", contacts.close)
    app.router.add_get("/api/queues", queues.list_queues)
    quarantine.add_routes(app)
    sla.add_routes(app)
    notes.add_routes(app)
    kennisbank.add_routes(app)
    app.router.add_get("/api/agents/me", agents.me)
    app.router.add_post("/api/agents/me/status", agents.set_status)
    app.router.add_post("/api/agents/me/next", agents.next_contact)
    app.router.add_get("/api/openapi.json", openapi)
    desk_actions.add_routes(app)
    desk_pages.add_routes(app, services, start)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    return app
