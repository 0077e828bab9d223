"""Authentication (a bearer token, or the desk's session cookie) and role checks for the API."""

from __future__ import annotations

import time

from aiohttp import web

from agents.tokens import hash_token
from contacts.models import Agent, AgentRole
from desk.sessions import AUTH_VIA, session_agent
from kcc.services import Services

STAFF_ROLES = frozenset({AgentRole.agent, AgentRole.teamlead, AgentRole.admin})
INGEST_ROLES = frozenset({AgentRole.integration, AgentRole.admin})
LEAD_ROLES = frozenset({AgentRole.teamlead, AgentRole.admin})
# The kennisbank: staff read and search it; editors (and leads) write it and see its gaps.
KENNISBANK_READ_ROLES = STAFF_ROLES | {AgentRole.editor}
KENNISBANK_EDIT_ROLES = LEAD_ROLES | {AgentRole.editor}


# Tokens checked in the last moments are remembered, so a busy integration does not cost a
# database query per request. A revoked token stops working within this many seconds.
TOKEN_CACHE_SECONDS = 30.0
_recent: dict[str, tuple[float, Agent]] = {}


async def agent_for_token(services: Services, token: str) -> Agent | None:
    token_hash = hash_token(token)
    now = time.monotonic()
    cached = _recent.get(token_hash)
    if cached is not None and now - cached[0] < TOKEN_CACHE_SECONDS:
        return cached[1]
    agent = await services.store.agent_by_token_hash(token_hash)
    if agent is None:
        _recent.pop(token_hash, None)
        return None
    if len(_recent) > 10_000:
        _recent.clear()
    _recent[token_hash] = (now, agent)
    return agent


async def authenticate(request: web.Request, services: Services) -> Agent:
    """The agent behind a bearer token, or behind the desk's session cookie (with its CSRF
    token on unsafe methods)."""
    header = request.headers.get("Authorization", "")
    if not header:
        from_session = await session_agent(request, services)
        if from_session is not None:
            return from_session
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise web.HTTPUnauthorized(
            text="a bearer token or a signed-in session is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    agent = await agent_for_token(services, token.strip())
    if agent is None:
        raise web.HTTPUnauthorized(
            text="unknown or revoked token", headers={"WWW-Authenticate": "Bearer"}
        )
    request[AUTH_VIA] = "token"
    return agent


def require_role(agent: Agent, roles: frozenset[str]) -> None:
    if agent.role not in roles:
        raise web.HTTPForbidden(text=f"this needs one of the roles: {', '.join(sorted(roles))}")
