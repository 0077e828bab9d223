"""Bearer-token authentication and role checks for the API."""

from __future__ import annotations

from aiohttp import web

from agents.tokens import hash_token
from contacts.models import Agent, AgentRole
from kcc.services import Services

STAFF_ROLES = frozenset({AgentRole.agent, AgentRole.teamlead, AgentRole.admin})
INGEST_ROLES = frozenset({AgentRole.integration, AgentRole.admin})
LEAD_ROLES = frozenset({AgentRole.teamlead, AgentRole.admin})


async def authenticate(request: web.Request, services: Services) -> Agent:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise web.HTTPUnauthorized(
            text="a bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    agent = await services.store.agent_by_token_hash(hash_token(token.strip()))
    if agent is None:
        raise web.HTTPUnauthorized(
            text="unknown or revoked token", headers={"WWW-Authenticate": "Bearer"}
        )
    return agent


def require_role(agent: Agent, roles: frozenset[str]) -> None:
    if agent.role not in roles:
        raise web.HTTPForbidden(text=f"this needs one of the roles: {', '.join(sorted(roles))}")
