"""The norm report against a scenario computed by hand, over the API and the command line."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from contacts.models import Contact
from kcc.cli import main
from kcc.clock import ManualClock
from kcc.services import Services
from tests.helpers import bearer, running_service, settings_for, token_for
from tests.sla_helpers import KLACHT, MONDAY, clock_of, local, receive, record


async def set_fields(services: Services, contact: Contact, **values: Any) -> None:
    async with services.store.sessions() as session, session.begin():
        await session.execute(
            sa.update(Contact).where(sa.column("id") == contact.id).values(**values)
        )


async def at(services: Services, moment: datetime) -> None:
    clock_of(services).set(moment)


async def build_scenario(services: Services) -> None:
    """Contacts received Friday 20 to Friday 27 November 2026 (and two outside it)."""
    record(services, "email", "post")
    await at(services, local(2026, 11, 19))
    await receive(services, email="outside@example.nl")  # the day before the period

    # E-mail, Monday 23 and Tuesday 24 November; acknowledged at once by the sweep.
    await at(services, MONDAY)
    e1 = await receive(services, email="e1@example.nl")
    e2 = await receive(services, email="e2@example.nl")
    await services.sla.sweep()
    await at(services, local(2026, 11, 24))
    e3 = await receive(services, email="e3@example.nl")
    e4 = await receive(services, KLACHT, email="e4@example.nl")
    await services.sla.sweep()
    await at(services, local(2026, 11, 25))
    w1 = await receive(services, channel="webform", email="w1@example.nl")
    await services.sla.sweep()
    # A letter received Friday 20 November, scanned a week later: acknowledged too late.
    await at(services, local(2026, 11, 27))
    p1 = await receive(
        services,
        channel="post",
        email=None,
        postal_address="Grote Markt 1",
        received_at=local(2026, 11, 20, 9),
    )
    await services.sla.sweep()
    await at(services, local(2026, 11, 28))
    await receive(services, email="after@example.nl")  # the day after the period

    # Phone on Monday 23 November 11:00: taken after 20 s, after 45 s, and hung up.
    for seconds, number in ((20, "+31612340001"), (45, "+31612340002"), (None, "+31612340003")):
        call = await receive(
            services,
            channel="phone",
            email=None,
            phone=number,
            received_at=local(2026, 11, 23, 11),
        )
        if seconds is None:
            await set_fields(services, call, status="closed", closed_at=local(2026, 11, 23, 11, 2))
        else:
            await set_fields(
                services, call, taken_at=local(2026, 11, 23, 11) + timedelta(seconds=seconds)
            )
    # WhatsApp: 10 s before opening on Monday, taken 20 opening seconds later (within); and
    # on Tuesday morning taken after a minute (missed).
    wa1 = await receive(
        services,
        channel="whatsapp",
        email=None,
        phone="+31612340004",
        received_at=local(2026, 11, 23, 12, 59, 50),
    )
    await set_fields(services, wa1, taken_at=local(2026, 11, 23, 13, 0, 20))
    wa2 = await receive(
        services,
        channel="whatsapp",
        email=None,
        phone="+31612340005",
        received_at=local(2026, 11, 24, 10),
    )
    await set_fields(services, wa2, taken_at=local(2026, 11, 24, 10, 1))

    # Answers: e1 in time, e3 after its deadline (4 January), w1 closed in time; e2 and the
    # letter never answered; the klacht extended on 20 December to 25 January.
    await set_fields(services, e1, status="answered", answered_at=local(2026, 12, 10))
    await set_fields(services, e3, status="answered", answered_at=local(2027, 1, 10))
    await set_fields(services, w1, status="closed", closed_at=local(2026, 11, 30))
    await at(services, local(2026, 12, 20))
    klacht = await services.store.get(e4.id or 0)
    assert klacht is not None
    await services.sla.extend(klacht, "agent:1", "Hoorzitting gepland", date(2027, 1, 25))
    assert e2.id and p1.id
    await at(services, local(2027, 1, 20))


# (channel, norm id) -> (total, within, missed, open_overdue, pending, percentage), by hand.
EXPECTED = {
    ("email", "written-ack"): (4, 4, 0, 0, 0, 100.0),
    ("email", "written-answer"): (3, 1, 2, 1, 0, 33.3),
    ("webform", "written-ack"): (1, 1, 0, 0, 0, 100.0),
    ("webform", "written-answer"): (1, 1, 0, 0, 0, 100.0),
    ("post", "post-ack"): (1, 0, 1, 0, 0, 0.0),
    ("post", "post-answer"): (1, 0, 1, 1, 0, 0.0),
    ("phone", "phone-answered"): (3, 1, 2, 0, 0, 33.3),
    ("whatsapp", "chat-first-response"): (2, 1, 1, 0, 0, 50.0),
    ("telegram", "chat-first-response"): (0, 0, 0, 0, 0, None),
    ("alle", "klacht"): (1, 0, 0, 0, 1, None),
    ("alle", "bezwaar"): (0, 0, 0, 0, 0, None),
    ("counter", "counter-walk-in"): (0, 0, 0, 0, 0, None),
}


async def test_norm_report_matches_a_hand_computed_scenario(tmp_path: Path) -> None:
    async with running_service(tmp_path, clock=ManualClock(MONDAY)) as (services, client):
        await build_scenario(services)
        lead = await token_for(services, "Lead", role="teamlead")
        response = await client.get(
            "/api/reports/norms?from=2026-11-20&to=2026-11-27", headers=bearer(lead)
        )
        assert response.status == 200
        report = await response.json()
        assert report["from"] == "2026-11-20" and report["to"] == "2026-11-27"
        rows = {(r["channel"], r["norm_id"]): r for r in report["norms"]}
        for key, (total, within, missed, overdue, pending, percentage) in EXPECTED.items():
            row = rows[key]
            found = (
                row["total"],
                row["within"],
                row["missed"],
                row["open_overdue"],
                row["pending"],
                row["percentage"],
            )
            assert found == (total, within, missed, overdue, pending, percentage), key
        assert rows[("alle", "klacht")]["extended"] == 1
        assert rows[("email", "written-answer")]["target"] == 95
        assert rows[("post", "post-answer")]["target"] == 100
        assert rows[("email", "written-ack")]["norm"] == "acknowledgement"
        assert rows[("email", "written-ack")]["label"] == "Ontvangstbevestiging binnen 5 dagen"
        assert rows[("phone", "phone-transfer")]["measured"] is False
        assert {"channel", "norm", "label", "target", "total", "within", "missed"} <= set(
            report["norms"][0]
        )

        bad = await client.get("/api/reports/norms?from=2026-11&to=x", headers=bearer(lead))
        assert bad.status == 400
        agent = await token_for(services, "Agent", skills="afval,nl,written")
        denied = await client.get(
            "/api/reports/norms?from=2026-11-20&to=2026-11-27", headers=bearer(agent)
        )
        assert denied.status == 403


def test_kcc_report_norms_prints_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def scenario() -> None:
        services = await Services.build(settings_for(tmp_path), ManualClock(MONDAY))
        try:
            await build_scenario(services)
        finally:
            await services.close()

    asyncio.run(scenario())
    code = main(
        [
            "report",
            "norms",
            "--data-dir",
            str(tmp_path),
            "--from",
            "2026-11-20",
            "--to",
            "2026-11-27",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "Normen 2026-11-20 t/m 2026-11-27" in out
    phone = next(line for line in out.splitlines() if "Telefoon opgenomen" in line)
    assert phone.split()[0] == "phone" and "33.3%" in phone
    assert "niet gemeten" in out
