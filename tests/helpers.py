"""Building a real service (real database, real queue backend) for tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from agents.registry import add_agent
from kcc.app import create_app
from kcc.clock import ManualClock
from kcc.services import Services
from kcc.settings import REPO_CONFIG, Settings


def settings_for(tmp_path: Path, database_url: str = "", redis_url: str = "") -> Settings:
    return Settings(
        data_dir=tmp_path, config_dir=REPO_CONFIG, database_url=database_url, redis_url=redis_url
    )


@asynccontextmanager
async def running_service(
    tmp_path: Path,
    database_url: str = "",
    redis_url: str = "",
    clock: ManualClock | None = None,
) -> AsyncIterator[tuple[Services, TestClient[object, object]]]:
    clock = clock or ManualClock()
    services = await Services.build(settings_for(tmp_path, database_url, redis_url), clock)
    client: TestClient[object, object] = TestClient(TestServer(create_app(services, sweep=False)))
    await client.start_server()
    try:
        yield services, client
    finally:
        await client.close()


async def token_for(
    services: Services,
    name: str,
    role: str = "agent",
    skills: str | None = None,
    capacity: dict[str, int] | None = None,
) -> str:
    from agents.registry import parse_skills

    _, token = await add_agent(
        services.store,
        services.config,
        services.clock,
        name,
        role,
        parse_skills(skills) if skills is not None else None,
        capacity,
    )
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
