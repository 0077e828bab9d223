"""Browser sessions for the desk: secure cookies, CSRF protection, and who is signed in.

The cookie carries a random session id (the database keeps only its hash). Unsafe methods on a
cookie session need the session's CSRF token in the `X-CSRF-Token` header (or the `csrf_token`
form field): a synchronizer token, which the pages read from their own HTML. Cookies are
HttpOnly and SameSite=Strict; over https they are Secure and carry the `__Host-` prefix."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from aiohttp import web

from contacts.models import Agent
from desk import config as desk_config
from desk.store import DeskStore
from kcc.services import Services

COOKIE = "kcc_session"
SECURE_COOKIE = "__Host-kcc_session"
SIGNIN_COOKIE = "kcc_signin"
SECURE_SIGNIN_COOKIE = "__Host-kcc_signin"
CSRF_HEADER = "X-CSRF-Token"
# The pages' own periodic refreshes and live streams say so: they keep nobody signed in, so an
# unattended desk still ends after the idle time.
BACKGROUND_HEADER = "X-KCC-Background"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# How the request was authenticated ("session" or "token"), for the audit log.
AUTH_VIA = web.RequestKey("kcc_auth_via", str)
SESSION_KEY = web.RequestKey("kcc_session", object)

_stores: dict[int, tuple[Services, DeskStore]] = {}


def desk_store(services: Services) -> DeskStore:
    """One DeskStore per service (built lazily, so the API works without the pages mounted)."""
    entry = _stores.get(id(services))
    if entry is None or entry[0] is not services:
        config = desk_config.load(services.settings.config_dir)
        entry = (services, DeskStore(services.store, config))
        if len(_stores) > 64:
            _stores.clear()
        _stores[id(services)] = entry
    return entry[1]


@dataclass(frozen=True)
class SignedIn:
    agent: Agent
    session_id: str
    csrf_token: str


def secure_cookies(request: web.Request, services: Services) -> bool:
    choice = (
        services.settings.secret("KCC_COOKIE_SECURE")
        or desk_config.load(services.settings.config_dir).secure_cookies
    ).lower()
    if choice in ("always", "true", "1", "yes"):
        return True
    if choice in ("never", "false", "0", "no"):
        return False
    return request.secure or services.settings.public_url.startswith("https://")


def cookie_names(request: web.Request, services: Services) -> tuple[str, str]:
    if secure_cookies(request, services):
        return SECURE_COOKIE, SECURE_SIGNIN_COOKIE
    return COOKIE, SIGNIN_COOKIE


def set_cookie(
    response: web.StreamResponse,
    request: web.Request,
    services: Services,
    name: str,
    value: str,
    max_age: int | None = None,
) -> None:
    response.set_cookie(
        name,
        value,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=secure_cookies(request, services),
        max_age=max_age,
    )


def session_cookie(request: web.Request) -> str | None:
    return request.cookies.get(SECURE_COOKIE) or request.cookies.get(COOKIE) or None


async def signed_in(request: web.Request, services: Services) -> SignedIn | None:
    """The live session of this request, if any (cached on the request)."""
    if SESSION_KEY in request:
        cached = request[SESSION_KEY]
        return cached if isinstance(cached, SignedIn) else None
    found: SignedIn | None = None
    session_id = session_cookie(request)
    if session_id and len(session_id) <= 100:
        background = request.headers.get(BACKGROUND_HEADER) == "1" or request.path.endswith(
            "/events"
        )
        row = await desk_store(services).session(
            session_id, services.clock.now(), touch=not background
        )
        if row is not None:
            found = SignedIn(row[0], session_id, row[1].csrf_token)
    request[SESSION_KEY] = found
    return found


def csrf_matches(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


async def session_agent(request: web.Request, services: Services) -> Agent | None:
    """The agent of a cookie session; unsafe methods must also carry the CSRF token."""
    current = await signed_in(request, services)
    if current is None:
        return None
    if request.method not in SAFE_METHODS:
        given = request.headers.get(CSRF_HEADER)
        if given is None and request.content_type == "application/x-www-form-urlencoded":
            form = await request.post()
            field = form.get("csrf_token")
            given = field if isinstance(field, str) else None
        if not csrf_matches(current.csrf_token, given):
            raise web.HTTPForbidden(text="the CSRF token is missing or wrong; reload the page")
    request[AUTH_VIA] = "session"
    return current.agent
