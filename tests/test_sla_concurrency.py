"""Several service processes sweep the same timers: each timer fires once. Two `Services` on
one PostgreSQL database, and two on one SQLite file, sweeping concurrently in small batches."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from adapters.outbound import Purpose
from kcc.clock import ManualClock
from kcc.services import Services
from tests.helpers import settings_for
from tests.sla_helpers import MONDAY, local, receive, record

CONTACTS = 30


def small_batches(services: Services, lease_seconds: float = 120) -> None:
    """Small claims, so the two processes' sweeps interleave instead of one taking all."""
    book = services.sla.book
    services.sla.book = replace(
        book, timers=replace(book.timers, batch=3, lease_seconds=lease_seconds)
    )


async def two_processes_fire_once(first: Services, second: Services) -> None:
    clock = first.clock
    assert isinstance(clock, ManualClock)
    sent = [record(first, "email")["email"], record(second, "email")["email"]]
    # Warm both connection pools, so neither process is still connecting while the other
    # sweeps everything.
    assert await first.sla.sweep() == 0 and await second.sla.sweep() == 0
    contacts = [
        await receive(services, email=f"inwoner{i}@example.nl")
        for i in range(CONTACTS)
        for services in [(first, second)[i % 2]]
    ]
    small_batches(first)
    small_batches(second)
    await asyncio.gather(*(s.sla.sweep() for s in (first, second, first, second)))

    # Every contact acknowledged exactly once, whichever process sent it.
    assert sorted(m.reference for s in sent for m in s.sent) == sorted(
        c.reference for c in contacts
    )
    assert all(s.sent for s in sent), "both processes took part"
    for contact in contacts:
        messages = await first.store.messages(contact.id or 0)
        assert [m.purpose for m in messages if m.direction == "outbound"] == [
            Purpose.acknowledgement
        ]

    # Past the answer deadline, with leases of zero: even a timer claimed by both processes
    # records its breach once.
    clock.set(local(2027, 1, 5, 0, 0, 5))
    small_batches(first, lease_seconds=0)
    small_batches(second, lease_seconds=0)
    await asyncio.gather(*(s.sla.sweep() for s in (first, second, first, second)))
    for contact in contacts:
        events = await first.store.events(contact.id or 0)
        assert [e.type for e in events].count("sla_breach") == 1
        assert [e.type for e in events].count("sla_warning") == 1
    assert await first.sla.sweep() == 0 and await second.sla.sweep() == 0


@pytest.mark.postgres
async def test_two_services_on_one_postgres_fire_each_timer_once(
    tmp_path: Path, fresh_postgres: str
) -> None:
    clock = ManualClock(MONDAY)
    first = await Services.build(settings_for(tmp_path / "a", fresh_postgres), clock)
    second = await Services.build(settings_for(tmp_path / "b", fresh_postgres), clock)
    try:
        await two_processes_fire_once(first, second)
    finally:
        await first.close()
        await second.close()


async def test_concurrent_sweeps_on_one_sqlite_file_fire_each_timer_once(tmp_path: Path) -> None:
    clock = ManualClock(MONDAY)
    first = await Services.build(settings_for(tmp_path), clock)
    second = await Services.build(settings_for(tmp_path), clock)
    try:
        await two_processes_fire_once(first, second)
    finally:
        await first.close()
        await second.close()


async def test_a_timer_fires_within_seconds_of_its_due_time(tmp_path: Path) -> None:
    """The scheduler's sweep (every `sweep_seconds`) fires a due timer on the real clock."""
    services = await Services.build(settings_for(tmp_path))
    try:
        sent = record(services, "email")["email"]
        await services.start()
        contact = await receive(services)
        for _ in range(200):
            timers = await services.sla.db.timers(contact.id or 0)
            ack = next(t for t in timers if t["kind"] == "acknowledgement")
            if ack["fired_at"] is not None:
                break
            await asyncio.sleep(0.05)
        assert [m.reference for m in sent.sent] == [contact.reference]
        assert ack["fired_at"] - ack["due_at"] < timedelta(
            seconds=services.sla.book.timers.sweep_seconds + 2
        )
    finally:
        await services.close()
