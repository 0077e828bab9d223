"""The pages (sign-in, desk, dashboard), their live streams and the dashboard's API."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from contacts.inbound import SUPPORT_NEEDS
from contacts.models import Agent, AgentStatus
from desk import config as desk_config
from desk import passwords
from desk.dashboard import Dashboard
from desk.live import Hub, open_stream, ping, send
from desk.sessions import (
    SECURE_SIGNIN_COOKIE,
    SESSION_KEY,
    SIGNIN_COOKIE,
    SignedIn,
    cookie_names,
    desk_store,
    set_cookie,
    signed_in,
)
from desk.views import desk_item
from kcc.api.auth import LEAD_ROLES, STAFF_ROLES, authenticate, require_role
from kcc.services import Services
from kcc.web_keys import SERVICES

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
HUB = web.AppKey("desk_hub", Hub)
DASHBOARD = web.AppKey("desk_dashboard", Dashboard)

TEMPLATES = Environment(
    loader=PackageLoader("desk", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

# No inline script or style anywhere: everything comes from our own static files.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
CHANNEL_LABELS = {
    "whatsapp": "WhatsApp",
    "telegram": "Telegram",
    "email": "E-mail",
    "webform": "Webformulier",
    "post": "Post",
    "phone": "Telefoon",
    "counter": "Balie",
    "callback": "Terugbellen",
    "chat": "Chat",
    "written": "Schriftelijk",
}
SUPPORT_LABELS = {
    "interpreter": "Tolk nodig",
    "easy_language_b1": "Eenvoudige taal (B1)",
    "visual_impairment": "Visuele beperking",
    "hearing_impairment": "Auditieve beperking",
    "prefers_phone": "Liever telefonisch",
    "low_digital_skills": "Weinig digitale vaardigheden",
    "low_literacy": "Laaggeletterd",
}
SIGNIN_FAILED = "Naam of wachtwoord is onjuist."
SIGNIN_BLOCKED = "Te veel mislukte pogingen. Probeer het over enkele minuten opnieuw."


def page(template: str, status: int = 200, **values: Any) -> web.Response:
    html = TEMPLATES.get_template(template).render(**values)
    return web.Response(text=html, status=status, content_type="text/html", headers=PAGE_HEADERS)


def home_for(agent: Agent) -> str:
    return "/dashboard" if agent.role in LEAD_ROLES else "/desk"


def safe_next(value: str | None) -> str | None:
    """Only our own pages: no open redirect through the sign-in form."""
    return value if value in ("/desk", "/dashboard") else None


# --- sign-in ------------------------------------------------------------------------------------


async def signin_form(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    current = await signed_in(request, services)
    if current is not None and current.agent.role in STAFF_ROLES:
        raise web.HTTPSeeOther(safe_next(request.query.get("next")) or home_for(current.agent))
    return signin_page(request, services, None, 200)


def signin_page(
    request: web.Request, services: Services, error: str | None, status: int, name: str = ""
) -> web.Response:
    token = secrets.token_urlsafe(24)
    response = page(
        "signin.html",
        status=status,
        csrf=token,
        error=error,
        name=name,
        next=safe_next(request.query.get("next")) or "",
    )
    set_cookie(response, request, services, cookie_names(request, services)[1], token, 3600)
    return response


async def signin(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    store = desk_store(services)
    form = await request.post()

    def field(key: str, limit: int) -> str:
        value = form.get(key, "")
        return value[:limit] if isinstance(value, str) else ""

    cookie = request.cookies.get(SECURE_SIGNIN_COOKIE) or request.cookies.get(SIGNIN_COOKIE)
    given = field("csrf_token", 100)
    if not cookie or not given or not hmac.compare_digest(cookie.encode(), given.encode()):
        return signin_page(request, services, "De pagina was verlopen. Probeer het opnieuw.", 403)
    name = field("name", 200).strip()
    password = field("password", passwords.MAX_LENGTH + 1)
    now = services.clock.now()
    agent = await store.agent_by_name(name) if name else None
    if agent is not None and agent.signin_blocked_until and agent.signin_blocked_until > now:
        return signin_page(request, services, SIGNIN_BLOCKED, 429, name)
    ok = await passwords.verify_async(agent.password_hash if agent else None, password)
    if agent is None or not ok or agent.role not in STAFF_ROLES or agent.id is None:
        if agent is not None and agent.id is not None:
            await store.signin_failed(agent.id, now)
        log.info("sign-in failed for agent %s", agent.id if agent else "unknown")
        return signin_page(request, services, SIGNIN_FAILED, 401, name)
    rehashed = None
    if agent.password_hash and passwords.needs_rehash(agent.password_hash):
        rehashed = await passwords.hash_async(password)
    await store.signin_succeeded(agent.id, rehashed)
    old = await signed_in(request, services)
    if old is not None:
        await store.end_session(old.session_id)
    session_id, _ = await store.create_session(agent.id, now)
    log.info("agent %s signed in", agent.id)
    target = safe_next(field("next", 20)) or home_for(agent)
    if target == "/dashboard" and agent.role not in LEAD_ROLES:
        target = "/desk"
    response = web.HTTPSeeOther(target)
    session_name, signin_name = cookie_names(request, services)
    set_cookie(
        response,
        request,
        services,
        session_name,
        session_id,
        max_age=store.config.max_hours * 3600,
    )
    response.del_cookie(signin_name, path="/")
    raise response


async def signout(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    current = await signed_in(request, services)
    if current is not None:
        agent = await authenticate(request, services)  # checks the CSRF token
        await desk_store(services).end_session(current.session_id)
        if agent.id is not None:
            # Signing out of the desk also stops offers: nothing waits on an empty chair.
            await services.router.set_agent_status(agent, AgentStatus.offline)
        log.info("agent %s signed out", agent.id)
    response = web.HTTPSeeOther("/signin")
    for name in cookie_names(request, services):
        response.del_cookie(name, path="/")
    raise response


# --- pages ----------------------------------------------------------------------------------------


async def page_agent(
    request: web.Request, roles: frozenset[str], path: str
) -> tuple[Agent | None, SignedIn]:
    """The signed-in agent when their role may see this page (None: signed in, wrong role);
    without a session, to the sign-in page."""
    services = request.app[SERVICES]
    current = await signed_in(request, services)
    if current is None:
        raise web.HTTPSeeOther(f"/signin?next={path}")
    if current.agent.role not in roles:
        return None, current
    return current.agent, current


def page_config(services: Services) -> dict[str, Any]:
    config = desk_config.load(services.settings.config_dir)
    return {
        "outcomes": services.config.outcomes,
        "queues": sorted(services.config.queues),
        "skills": sorted(services.config.all_skills),
        "channel_labels": CHANNEL_LABELS,
        "channel_kinds": sorted({c.channel_class for c in services.config.channels.values()}),
        "support_labels": {k: SUPPORT_LABELS.get(k, k) for k in sorted(SUPPORT_NEEDS)},
        "partners": [
            {"slug": p.slug, "name": p.name, "description": p.description} for p in config.partners
        ],
        "whatsapp_window_hours": config.whatsapp_window_hours,
        "norms": [
            {"channel": n.channel, "label": n.label, "seconds": n.seconds, "target": n.target}
            for n in config.norms
        ],
        "sample_seconds": config.sample_seconds,
        "today": config.day_start(services.clock.now()).date().isoformat(),
    }


async def desk_page(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    agent, current = await page_agent(request, STAFF_ROLES, "/desk")
    if agent is None:
        return page("forbidden.html", 403, agent=current.agent)
    return page(
        "desk.html",
        agent=agent,
        csrf=current.csrf_token,
        is_lead=agent.role in LEAD_ROLES,
        config=page_config(services),
    )


async def dashboard_page(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    agent, current = await page_agent(request, LEAD_ROLES, "/dashboard")
    if agent is None:
        return page("forbidden.html", 403, agent=current.agent)
    return page(
        "dashboard.html", agent=agent, csrf=current.csrf_token, config=page_config(services)
    )


# --- live streams -------------------------------------------------------------------------------


async def desk_events(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    agent = await authenticate(request, services)
    require_role(agent, STAFF_ROLES)
    hub = request.app[HUB]
    store = desk_store(services)
    agent_id = agent.id or 0
    response = await open_stream(request)
    wake = hub.subscribe(agent_id)
    last: list[tuple[Any, ...]] | None = None
    checked = services.clock.now()
    try:
        while not hub.closing:
            now = services.clock.now()
            if await still_signed_in(request, services, checked, now) is False:
                await send(response, "signed_out", {})
                break
            if now - checked > timedelta(seconds=60):
                checked = now
            items = [
                desk_item(c, now, store.config.at_risk_fraction_left)
                for c in await store.desk_contacts(agent_id)
            ]
            signature = [
                (i["reference"], i["status"], i["offered"], i["deadline_state"]) for i in items
            ]
            if signature != last:
                await send(response, "list", {"contacts": items})
                last = signature
            else:
                await ping(response)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), store.config.refresh_seconds)
            wake.clear()
    except (ConnectionResetError, asyncio.CancelledError):
        pass  # the page went away
    finally:
        hub.unsubscribe(agent_id, wake)
    return response


async def still_signed_in(
    request: web.Request, services: Services, checked: datetime, now: datetime
) -> bool | None:
    """Re-check a cookie session once a minute: a stream ends when its session does."""
    if request.headers.get("Authorization") or now - checked <= timedelta(seconds=60):
        return None
    request.pop(SESSION_KEY, None)
    return await signed_in(request, services) is not None


async def dashboard_events(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    agent = await authenticate(request, services)
    require_role(agent, LEAD_ROLES)
    hub = request.app[HUB]
    dashboard = request.app[DASHBOARD]
    response = await open_stream(request)
    checked = services.clock.now()
    try:
        while not hub.closing:
            now = services.clock.now()
            if await still_signed_in(request, services, checked, now) is False:
                await send(response, "signed_out", {})
                break
            if now - checked > timedelta(seconds=60):
                checked = now
            await send(response, "snapshot", await dashboard.snapshot())
            await asyncio.sleep(dashboard.config.push_seconds)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return response


# --- dashboard API --------------------------------------------------------------------------------


async def dashboard_snapshot(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    agent = await authenticate(request, services)
    require_role(agent, LEAD_ROLES)
    return web.json_response(await request.app[DASHBOARD].snapshot())


async def dashboard_series(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    agent = await authenticate(request, services)
    require_role(agent, LEAD_ROLES)
    dashboard = request.app[DASHBOARD]
    day = dashboard.config.day_start(services.clock.now())
    return web.json_response(
        {
            "date": day.date().isoformat(),
            "day_start": day.isoformat(),
            "samples": await dashboard.series(day),
        }
    )


def add_routes(app: web.Application, services: Services, start: bool) -> None:
    hub = Hub()
    config = desk_config.load(services.settings.config_dir)
    dashboard = Dashboard(services, desk_store(services), config)
    app[HUB] = hub
    app[DASHBOARD] = dashboard
    services.router.listeners.append(hub.announce)

    async def stop_streams(_app: web.Application) -> None:
        await hub.close()

    app.on_shutdown.append(stop_streams)
    if start:

        async def sampler(_app: web.Application) -> AsyncIterator[None]:
            task = asyncio.create_task(dashboard.run_sampler(), name="dashboard-sampler")
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        app.cleanup_ctx.append(sampler)

    app.router.add_get("/signin", signin_form)
    app.router.add_post("/signin", signin)
    app.router.add_post("/signout", signout)
    app.router.add_get("/desk", desk_page)
    app.router.add_get("/dashboard", dashboard_page)
    app.router.add_get("/desk/events", desk_events)
    app.router.add_get("/dashboard/events", dashboard_events)
    app.router.add_get("/api/dashboard", dashboard_snapshot)
    app.router.add_get("/api/dashboard/series", dashboard_series)
    app.router.add_static("/static/desk/", STATIC, append_version=False)
