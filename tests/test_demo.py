"""`kcc demo` for a few seconds, sped up: residents arrive on the channels, the router fills
several queues, simulated agents close contacts, and no contact is ever held by two agents."""

from __future__ import annotations

import io
import json
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from contacts.database import create_engine, sqlite_url
from kcc.demo import MARKER, PROFILES, TEMPLATES, Demo, roster
from kcc.settings import REPO_CONFIG, Settings
from router.config import RoutingConfig


async def test_demo_fills_and_drains_queues(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    out = io.StringIO()
    demo = Demo(
        Settings(data_dir=tmp_path, config_dir=REPO_CONFIG),
        minutes=0.08,
        port=0,  # the system picks a free port
        agents=6,
        rate=20,
        speed=10,
        report_every=1.0,
        seed=7,
        out=out,
        handle_signals=False,
    )
    assert await demo.run() == 0

    printed = out.getvalue()
    assert re.search(r"http://127\.0\.0\.1:\d+/channels/webform", printed)
    assert "/metrics" in printed
    assert printed.count("queue            waiting") >= 3  # a table about every second
    assert "KCC demo stopped" in printed
    tokens = re.findall(r"kcc_[A-Za-z0-9_-]{20,}", printed)
    assert len(tokens) == 2  # team lead and the agent for the person at the keyboard
    assert not any(token in caplog.text for token in tokens)

    stats = demo.stats
    assert stats.double_assignments == 0
    assert stats.duplicate_mismatches == 0
    assert stats.duplicates_confirmed == stats.duplicates_sent
    assert stats.resident_errors == 0
    assert stats.actor_errors == 0
    assert stats.closed > 0

    contacts, events = await read_database(tmp_path)
    channels = Counter(c["channel"] for c in contacts)
    queues = Counter(c["queue"] for c in contacts)
    assert len(channels) >= 4, channels
    assert len(queues) >= 4, queues
    closed_by_agents = [
        e for e in events if e["to_status"] == "closed" and e["actor"].startswith("agent:")
    ]
    assert closed_by_agents
    assert sum(1 for c in contacts if c["status"] == "closed") >= len(closed_by_agents)
    assert held_by_two_agents(events) == []


async def read_database(data_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    engine = create_engine(sqlite_url(data_dir))
    try:
        async with engine.connect() as connection:
            contacts = [
                dict(row._mapping)
                for row in await connection.execute(
                    sa.text("SELECT id, reference, channel, queue, status FROM contact")
                )
            ]
            events = [
                dict(row._mapping)
                for row in await connection.execute(
                    sa.text(
                        "SELECT contact_id, type, from_status, to_status, actor, data "
                        "FROM contactevent ORDER BY contact_id, id"
                    )
                )
            ]
    finally:
        await engine.dispose()
    return contacts, events


def held_by_two_agents(events: list[dict[str, Any]]) -> list[str]:
    """Replay each contact's history: an assignment while another agent holds the contact, or an
    agent acting on a contact that is not theirs, is a violation."""
    holder: dict[int, int | None] = {}
    problems = []
    for event in events:
        contact = event["contact_id"]
        current = holder.get(contact)
        actor = str(event["actor"])
        if actor.startswith("agent:") and int(actor.removeprefix("agent:")) != current:
            problems.append(f"contact {contact}: {actor} acted while agent {current} held it")
        to_status = event["to_status"]
        if to_status == "assigned":
            data = event["data"]
            data = json.loads(data) if isinstance(data, str) else data or {}
            # A resident's answer gives a waiting contact back to the same agent: no agent_id.
            new = data.get("agent_id", current)
            if current is not None and new != current:
                problems.append(f"contact {contact}: assigned to {new} while {current} held it")
            holder[contact] = new
        elif to_status in ("queued", "transferred", "closed"):
            holder[contact] = None
    return problems


async def test_demo_leaves_a_directory_it_did_not_make_alone(tmp_path: Path) -> None:
    database = tmp_path / "kcc.sqlite3"
    database.write_bytes(b"a real service's data")
    out = io.StringIO()
    demo = Demo(Settings(data_dir=tmp_path), 0, 0, 1, 1.0, out=out, handle_signals=False)
    assert await demo.run() == 2
    assert database.read_bytes() == b"a real service's data"
    assert "left alone" in out.getvalue()
    assert not (tmp_path / MARKER).exists()


def test_every_team_size_covers_what_residents_send() -> None:
    config = RoutingConfig.load(REPO_CONFIG)
    wanted = {t.queue for t in TEMPLATES} | {t.language for t in TEMPLATES}
    for size in (1, 3, 6, len(PROFILES), 25):
        team = roster(size, config.product_skills)
        assert len({name for name, _ in team}) == size
        skills = set().union(*(set(s) for _, s in team))
        assert wanted <= skills, (size, wanted - skills)
        assert {"phone", "chat", "written", "counter"} <= skills
        assert all(s.get("nl") and s.get("written") for _, s in team)
        assert config.all_skills >= skills
