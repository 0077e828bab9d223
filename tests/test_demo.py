"""`kcc demo` for a few seconds, sped up: residents arrive on the channels (through each wired
channel's real inbound path, against the providers' stand-ins), the router fills several queues,
simulated agents close contacts, their replies reach the stand-ins, and no contact is ever held
by two agents."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from contacts.database import create_engine, sqlite_url
from kcc.demo import LEAD_NAME, MARKER, OWN_NAME, PROFILES, TEMPLATES, Demo, roster
from kcc.settings import REPO_CONFIG, Settings
from router.config import RoutingConfig

# More chats and mails than in a real KCC, where phone calls (served first) dominate: on a loaded
# machine the agents would otherwise answer few chats before the test ends.
TEST_MIX = {
    "telegram": 20,
    "post": 15,
    "whatsapp": 15,
    "email": 15,
    "phone": 15,
    "webform": 10,
    "counter": 5,
}
# The demo stops as soon as it has shown what the test looks for, or after this long: on a
# loaded machine it runs longer instead of failing on a count of seconds.
LONGEST_MINUTES = 0.4


async def stop_when_shown(demo: Demo) -> None:
    """Stop the demo once agents closed contacts, a provider resent a message on a real path,
    and every channel with a real path has had contacts and delivered replies."""
    while True:
        await asyncio.sleep(0.25)
        routes = demo.routes
        s = demo.stats
        if (
            s.closed >= 5
            and any(s.resent[name] for name in routes)
            and len(s.created) >= 4
            and all(s.created[name] for name in routes)
            and all(route.replies_delivered() for route in routes.values())
            # Agents' replies, not only the acknowledgements the written channels send by
            # themselves (a call is answered by talking).
            and all(s.replied[name] for name in routes if name != "phone")
        ):
            demo.stop()
            return


async def test_demo_fills_and_drains_queues(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # Every SQL statement at DEBUG costs seconds on a loaded machine; it carries no secrets
    # (tokens are stored as hashes, channel credentials not at all).
    caplog.set_level(logging.INFO, logger="aiosqlite")
    out = io.StringIO()
    demo = Demo(
        Settings(
            data_dir=tmp_path,
            config_dir=REPO_CONFIG,
            # Real credentials in the environment must never reach the demo's service.
            secrets={"TELEGRAM_BOT_TOKEN": "1:real-token-from-the-environment"},
        ),
        minutes=LONGEST_MINUTES,
        port=0,  # the system picks a free port
        agents=6,
        rate=2,
        speed=20,
        report_every=1.0,
        seed=7,
        out=out,
        handle_signals=False,
        channel_mix=TEST_MIX,
        resend_share=0.3,
    )
    watcher = asyncio.ensure_future(stop_when_shown(demo))
    try:
        assert await demo.run() == 0
    finally:
        watcher.cancel()

    printed = out.getvalue()
    print(printed)  # shown when an assertion fails
    assert re.search(r"http://127\.0\.0\.1:\d+/channels/webform", printed)
    assert "/metrics" in printed
    # The people at the keyboard can sign in to the desk and the dashboard with the printed
    # password (kept out of the log like the tokens).
    assert re.search(r"http://127\.0\.0\.1:\d+/desk ", printed)
    assert re.search(r"http://127\.0\.0\.1:\d+/dashboard ", printed)
    found = re.search(r"password for both \(this run only, not logged\): (\S+)", printed)
    assert found is not None
    password = found.group(1)
    assert password not in caplog.text
    assert await password_opens(tmp_path, [OWN_NAME, LEAD_NAME], password)
    assert "queue            waiting" in printed  # the periodic report
    assert "KCC demo stopped" in printed
    tokens = re.findall(r"kcc_[A-Za-z0-9_-]{20,}", printed)
    assert len(tokens) == 2  # team lead and the agent for the person at the keyboard
    assert not any(token in caplog.text for token in tokens)

    # Every wired channel: its traffic flow in the welcome, its made-up credentials nowhere on
    # screen or in the log, replies counted in the report and the farewell.
    assert set(demo.routes) == {"telegram", "whatsapp", "phone", "email", "post"}
    assert demo.settings.secret("TELEGRAM_BOT_TOKEN") != "1:real-token-from-the-environment"
    for name in demo.routes:
        assert re.search(rf"^    {name}\s+\S", printed, re.MULTILINE), name
        for key, value in route_secrets(demo, name).items():
            assert value not in printed, key
            assert value not in caplog.text, key
        label = demo.routes[name].label or name
        assert re.search(rf"delivered out: .*{label} \d", printed), name
        assert re.search(rf"delivered through the channels .*: .*{label} [1-9]", printed), name

    stats = demo.stats
    assert stats.double_assignments == 0
    assert stats.duplicate_mismatches == 0
    assert stats.duplicates_confirmed == stats.duplicates_sent
    # A provider's retry on a real path (the same update, webhook or scan again) was recognised.
    assert any(stats.resent[name] for name in demo.routes), stats.resent
    assert stats.resident_errors == 0
    assert stats.actor_errors == 0
    assert stats.closed > 0

    contacts, events = await read_database(tmp_path)
    channels = Counter(c["channel"] for c in contacts)
    queues = Counter(c["queue"] for c in contacts)
    assert len(channels) >= 4, channels
    assert len(queues) >= 4, queues
    inbound, outbound = await read_messages(tmp_path)
    for name, route in demo.routes.items():
        # Every resident's message on a wired channel came in through its real path (the
        # adapter stored the provider's ids, the ingest API was not used), and each is stored
        # once although some were delivered twice.
        assert channels[name] > 0, name
        assert inbound[name] == demo.delivered_ids[name], name
        if name == "phone":
            # A call is answered by talking: each time our service had Twilio ring an agent to
            # bridge a caller, the contact's history says so.
            rung = [e for e in events if e["type"] == "call" and "agent_call_sid" in str(e["data"])]
            assert 0 < route.replies_delivered() == len(rung)
        else:
            # What the stand-in received are messages the outbox recorded as sent (replies and
            # acknowledgements), among them agents' replies.
            assert 0 < route.replies_delivered() <= sum(outbound[name].values()), name
            assert outbound[name]["reply"] > 0, name
    closed_by_agents = [
        e for e in events if e["to_status"] == "closed" and e["actor"].startswith("agent:")
    ]
    assert closed_by_agents
    assert sum(1 for c in contacts if c["status"] == "closed") >= len(closed_by_agents)
    assert held_by_two_agents(events, {agent.id for agent in demo.agents}) == []


async def password_opens(data_dir: Path, names: list[str], password: str) -> bool:
    from desk.passwords import verify

    engine = create_engine(sqlite_url(data_dir))
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                sa.text("SELECT name, password_hash FROM agent WHERE name IN (:a, :b)"),
                {"a": names[0], "b": names[1]},
            )
            hashes = {row.name: row.password_hash for row in rows}
    finally:
        await engine.dispose()
    return sorted(hashes) == sorted(names) and all(verify(h, password) for h in hashes.values())


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


def route_secrets(demo: Demo, channel: str) -> dict[str, str]:
    """The credentials the demo made up for one channel's stand-in (long enough to be unique).
    Not Twilio's Account SID: an identifier that is part of every Twilio API URL (the fake
    Twilio's access log shows it, as Twilio's own logs would); its auth token is the secret."""
    prefix = {"telegram": "TELEGRAM_", "whatsapp": "TWILIO_", "phone": "TWILIO_"}.get(
        channel, f"KCC_{channel.upper()}"
    )
    return {
        key: value
        for key, value in demo.settings.secrets.items()
        if key.startswith(prefix) and not key.endswith(("_URL", "_SID")) and len(value) >= 16
    }


async def read_messages(
    data_dir: Path,
) -> tuple[dict[str, set[str]], defaultdict[str, Counter[str]]]:
    """Inbound provider ids per channel, and per channel and purpose the outbound messages the
    channel took."""
    engine = create_engine(sqlite_url(data_dir))
    inbound: dict[str, set[str]] = {}
    outbound: defaultdict[str, Counter[str]] = defaultdict(Counter)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                sa.text(
                    "SELECT channel, direction, channel_message_id, delivery_status, purpose "
                    "FROM message"
                )
            )
            for channel, direction, message_id, status, purpose in rows:
                if direction == "inbound":
                    inbound.setdefault(channel, set()).add(message_id)
                elif status in ("sent", "delivered", "read"):
                    outbound[channel][purpose] += 1
    finally:
        await engine.dispose()
    return inbound, outbound


def held_by_two_agents(events: list[dict[str, Any]], agents: set[int]) -> list[str]:
    """Replay each contact's history: an assignment while another agent holds the contact, or
    one of `agents` acting on a contact that is not theirs, is a violation. (Other accounts act
    too: the mail room marks reply letters printed and posted with its integration token.)"""
    holder: dict[int, int | None] = {}
    problems = []
    for event in events:
        contact = event["contact_id"]
        current = holder.get(contact)
        actor = str(event["actor"])
        acting = int(actor.removeprefix("agent:")) if actor.startswith("agent:") else None
        if acting in agents and acting != current:
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
