"""A real service wired to the Twilio sandbox (sandbox/twilio.py) on loopback, for the WhatsApp
and phone tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from kcc.app import create_app
from kcc.clock import ManualClock
from kcc.services import Services
from kcc.settings import REPO_CONFIG, Settings
from sandbox.twilio import FakeTwilio, TwilioWebhooks
from tests.helpers import bearer, token_for

ACCOUNT_SID = "AC" + "1f" * 16
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
WHATSAPP_FROM = "+3150000000"
PHONE_NUMBER = "+3150000001"
PUBLIC_URL = "https://kcc.groningen.example"


@dataclass
class TwilioWorld:
    services: Services
    client: TestClient[object, object]
    fake: FakeTwilio
    hooks: TwilioWebhooks
    clock: ManualClock
    service_url: str


def twilio_secrets(base_url: str, **overrides: str | None) -> dict[str, str]:
    values: dict[str, str | None] = {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_WHATSAPP_FROM": WHATSAPP_FROM,
        "TWILIO_PHONE_NUMBER": PHONE_NUMBER,
        "TWILIO_API_BASE_URL": base_url,
        **overrides,
    }
    return {k: v for k, v in values.items() if v is not None}


@asynccontextmanager
async def twilio_world(
    tmp_path: Path,
    *,
    public_url: str | None = PUBLIC_URL,
    database_url: str = "",
    redis_url: str = "",
    secrets: dict[str, str | None] | None = None,
    clock: ManualClock | None = None,
) -> AsyncIterator[TwilioWorld]:
    clock = clock or ManualClock()
    fake = FakeTwilio(ACCOUNT_SID, AUTH_TOKEN)
    await fake.start()
    settings = Settings(
        data_dir=tmp_path,
        config_dir=REPO_CONFIG,
        database_url=database_url,
        redis_url=redis_url,
        public_url=public_url or "",
        secrets=twilio_secrets(fake.base_url, **(secrets or {})),
    )
    services = await Services.build(settings, clock)
    client: TestClient[object, object] = TestClient(TestServer(create_app(services, sweep=False)))
    await client.start_server()
    service_url = str(client.make_url("")).rstrip("/")
    if public_url:
        fake.route(public_url, service_url)
    hooks = TwilioWebhooks(service_url, ACCOUNT_SID, AUTH_TOKEN, public_url)
    try:
        yield TwilioWorld(services, client, fake, hooks, clock, service_url)
    finally:
        await client.close()
        await fake.stop()


async def available_agent(world: TwilioWorld, name: str, skills: str) -> dict[str, str]:
    token = await token_for(world.services, name, skills=skills)
    headers = bearer(token)
    answer = await world.client.post(
        "/api/agents/me/status", json={"status": "available"}, headers=headers
    )
    assert answer.status == 200
    return headers
