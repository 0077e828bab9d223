"""Creating agents (people and integrations) with their skills, capacity and a token."""

from __future__ import annotations

from agents.tokens import hash_token, new_token
from contacts.models import Agent, AgentRole, AgentStatus
from contacts.store import ContactStore
from kcc.clock import Clock
from router.config import RoutingConfig


class AgentError(ValueError):
    pass


def parse_skills(text: str) -> dict[str, int]:
    """'burgerzaken:3,nl,en:2' -> {'burgerzaken': 3, 'nl': 1, 'en': 2} (level 1 by default)."""
    skills: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, level = part.partition(":")
        try:
            skills[name.strip()] = int(level) if level else 1
        except ValueError as error:
            raise AgentError(f"skill level must be a whole number: {part!r}") from error
    return skills


async def add_agent(
    store: ContactStore,
    config: RoutingConfig,
    clock: Clock,
    name: str,
    role: str = AgentRole.agent,
    skills: dict[str, int] | None = None,
    capacity: dict[str, int] | None = None,
) -> tuple[Agent, str]:
    """Create an agent; returns it with its token (the only time the token is visible)."""
    if role not in set(AgentRole):
        raise AgentError(f"role must be one of {', '.join(AgentRole)}")
    if not name.strip():
        raise AgentError("name is required")
    chosen = dict(config.default_skills) if skills is None else skills
    unknown = set(chosen) - config.all_skills
    if unknown:
        raise AgentError(f"unknown skills: {', '.join(sorted(unknown))}")
    token = new_token()
    agent = Agent(
        name=name.strip(),
        role=role,
        token_hash=hash_token(token),
        skills=chosen if role in (AgentRole.agent, AgentRole.teamlead) else {},
        capacity=dict(config.default_capacity) if capacity is None else capacity,
        status=AgentStatus.offline,
        status_since=clock.now(),
    )
    return await store.add_agent(agent), token
