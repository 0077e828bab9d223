"""PostgreSQL + Redis: the same flow as on SQLite, and two real `kcc serve` processes sharing
one database and one Redis, with agents pulling work from both, never getting one contact twice."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import sys
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa

from contacts.database import create_engine
from kcc.clock import ManualClock, SystemClock
from kcc.services import Services
from tests.helpers import running_service, settings_for, token_for
from tests.test_service_flow import assert_history_is_append_only, full_flow

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def test_full_flow_on_postgres_and_redis(
    tmp_path: Path, fresh_postgres: str, fresh_redis: str
) -> None:
    async with running_service(tmp_path, fresh_postgres, fresh_redis, ManualClock()) as (
        services,
        client,
    ):
        await full_flow(services, client)
        await assert_history_is_append_only(services, client)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_until_up(session: aiohttp.ClientSession, url: str) -> None:
    # Start-up imports every channel and migrates the database; on a loaded 2-core machine that
    # can take a while. This checks that the process comes up, not how fast.
    for _ in range(600):
        try:
            async with session.get(f"{url}/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


async def test_two_processes_share_the_work_and_never_hand_out_a_contact_twice(
    tmp_path: Path, fresh_postgres: str, fresh_redis: str
) -> None:
    setup = await Services.build(settings_for(tmp_path / "setup", fresh_postgres), SystemClock())
    integration = await token_for(setup, "website", role="integration")
    agents = [
        await token_for(
            setup,
            f"agent {i}",
            skills="afval,burgerzaken,parkeren,nl,written",
            capacity={"written": 2},
        )
        for i in range(8)
    ]
    await setup.close()

    ports = [free_port(), free_port()]
    processes = []
    for index, port in enumerate(ports):
        environment = dict(
            os.environ,
            KCC_DATABASE_URL=fresh_postgres,
            KCC_REDIS_URL=fresh_redis,
            KCC_DATA_DIR=str(tmp_path / f"node{index}"),
        )
        processes.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "kcc.cli",
                "serve",
                "--port",
                str(port),
                env=environment,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        )
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    total = 60
    taken: list[tuple[str, str]] = []
    try:
        async with aiohttp.ClientSession() as session:
            for url in urls:
                await wait_until_up(session, url)
            texts = [
                "Wanneer wordt mijn grofvuil opgehaald?",
                "Ik wil een nieuw paspoort aanvragen.",
                "Hoe krijg ik een parkeervergunning voor bewoners?",
            ]
            for number in range(total):
                async with session.post(
                    f"{urls[number % 2]}/api/contacts",
                    json={
                        "channel": "email",
                        "channel_message_id": f"<m{number}@example.nl>",
                        "from": f"r{number}@example.nl",
                        "subject": "Vraag",
                        "text": texts[number % 3],
                    },
                    headers={"Authorization": f"Bearer {integration}"},
                ) as response:
                    assert response.status == 201, await response.text()

            async def work(token: str) -> None:
                headers = {"Authorization": f"Bearer {token}"}
                for url in urls:
                    async with session.post(
                        f"{url}/api/agents/me/status", json={"status": "available"}, headers=headers
                    ) as r:
                        assert r.status == 200
                idle_rounds = 0
                while idle_rounds < 20:
                    url = random.choice(urls)
                    async with session.post(f"{url}/api/agents/me/next", headers=headers) as r:
                        if r.status == 204:
                            idle_rounds += 1
                            await asyncio.sleep(0.05)
                            continue
                        assert r.status == 200, await r.text()
                        reference = (await r.json())["reference"]
                    idle_rounds = 0
                    taken.append((token, reference))
                    async with session.post(
                        f"{random.choice(urls)}/api/contacts/{reference}/close",
                        json={"outcome": "beantwoord"},
                        headers=headers,
                    ) as r:
                        assert r.status == 200, await r.text()

            await asyncio.wait_for(asyncio.gather(*(work(t) for t in agents)), timeout=90)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            await asyncio.wait_for(process.wait(), timeout=60)

    counts = Counter(reference for _, reference in taken)
    assert len(counts) == total, f"only {len(counts)} of {total} contacts were handed out"
    assert max(counts.values()) == 1, "a contact was handed out twice"
    engine = create_engine(fresh_postgres)
    async with engine.connect() as connection:
        assignments = (
            await connection.execute(
                sa.text(
                    "SELECT contact_id, count(*) FROM contactevent WHERE to_status = 'assigned' "
                    "GROUP BY contact_id"
                )
            )
        ).all()
        open_contacts = (
            await connection.execute(
                sa.text("SELECT count(*) FROM contact WHERE status <> 'closed'")
            )
        ).scalar_one()
    await engine.dispose()
    assert len(assignments) == total and all(count == 1 for _, count in assignments)
    assert open_contacts == 0
    assert len({token for token, _ in taken}) > 1, "the work was not shared"
