"""The team lead's numbers: per queue, per agent, deadlines at risk, and samples for the chart.

One snapshot per process per push interval, shared by every open dashboard: the cost does not
grow with the number of team leads watching. Queue depth comes from the shared queue backend
(right across processes); arrivals, handled and deadlines from the database."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from contacts.models import Contact, QueueSample, Status
from desk.config import DeskConfig
from desk.store import DESK_STATUSES, DeskStore
from desk.views import deadline_state
from kcc.api.views import iso
from kcc.services import Services

log = logging.getLogger(__name__)

# Open contacts with a deadline this close are looked at for "at risk" (covers a 6-week term's
# last fifth; shorter terms are always within it).
RISK_HORIZON = timedelta(days=10)
AT_RISK_LIMIT = 200


class Dashboard:
    def __init__(self, services: Services, store: DeskStore, config: DeskConfig) -> None:
        self.services = services
        self.store = store
        self.config = config
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()
        self._names: dict[int, str] = {}

    async def snapshot(self) -> dict[str, Any]:
        async with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < self.config.push_seconds * 0.9:
                return self._cached[1]
            data = await self._build()
            self._cached = (time.monotonic(), data)
            return data

    async def _agent_names(self, ids: set[int]) -> dict[int, str]:
        missing = ids - set(self._names)
        if missing:
            for agent in await self.services.store.agents():
                if agent.id is not None:
                    self._names[agent.id] = agent.name
        return self._names

    async def _build(self) -> dict[str, Any]:
        services = self.services
        now = services.clock.now()
        hour_ago = now - timedelta(hours=1)
        stats = await services.backend.stats()
        present = await services.backend.agents()
        async with self.store.readers() as session:
            arrivals = dict(
                (
                    await session.execute(
                        sa.select(col(Contact.queue), sa.func.count())
                        .where(col(Contact.received_at) >= hour_ago)
                        .group_by(col(Contact.queue))
                    )
                ).all()
            )
            handled = dict(
                (
                    await session.execute(
                        sa.select(col(Contact.queue), sa.func.count())
                        .where(col(Contact.closed_at) >= hour_ago)
                        .group_by(col(Contact.queue))
                    )
                ).all()
            )
            working = (
                await session.execute(
                    sa.select(
                        col(Contact.assigned_agent_id),
                        col(Contact.reference),
                        col(Contact.channel),
                        col(Contact.status),
                        col(Contact.taken_at),
                    )
                    .where(col(Contact.status).in_(DESK_STATUSES))
                    .where(col(Contact.assigned_agent_id).is_not(None))
                )
            ).all()
            deadline_rows = list(
                (
                    await session.execute(
                        select(Contact)
                        .where(Contact.status != Status.closed)
                        .where(
                            sa.or_(
                                sa.and_(
                                    col(Contact.answer_due).is_not(None),
                                    col(Contact.answered_at).is_(None),
                                    col(Contact.answer_due) <= now + RISK_HORIZON,
                                ),
                                sa.and_(
                                    col(Contact.ack_due).is_not(None),
                                    col(Contact.acked_at).is_(None),
                                    col(Contact.ack_due) <= now + RISK_HORIZON,
                                ),
                            )
                        )
                        .order_by(col(Contact.answer_due))
                        .limit(2000)
                    )
                ).scalars()
            )
        queues = []
        for queue in services.config.queues.values():
            entry = stats.get(queue.name)
            oldest = entry.oldest_enqueued_at if entry else None
            serving = [a for a in present if a.serves(queue.skills)]
            queues.append(
                {
                    "queue": queue.name,
                    "waiting": entry.waiting if entry else 0,
                    "oldest_wait_seconds": round(max(0.0, now.timestamp() - oldest), 1)
                    if oldest
                    else 0,
                    "arrivals_last_hour": int(arrivals.get(queue.name, 0)),
                    "handled_last_hour": int(handled.get(queue.name, 0)),
                    "agents_available": sum(1 for a in serving if a.status == "available"),
                }
            )
        on: dict[int, list[dict[str, Any]]] = {}
        for agent_id, reference, channel, status, taken_at in working:
            on.setdefault(int(agent_id or 0), []).append(
                {
                    "reference": reference,
                    "channel": channel,
                    "status": "offered" if status == Status.assigned and not taken_at else status,
                }
            )
        names = await self._agent_names({a.agent_id for a in present})
        agents = [
            {
                "id": a.agent_id,
                "name": names.get(a.agent_id, f"#{a.agent_id}"),
                "status": a.status,
                "load": a.load,
                "capacity": a.capacity,
                "on": on.get(a.agent_id, []),
            }
            for a in sorted(present, key=lambda a: names.get(a.agent_id, ""))
        ]
        by_status: dict[str, int] = {"available": 0, "busy": 0, "away": 0}
        for a in present:
            by_status[a.status] = by_status.get(a.status, 0) + 1
        risks = []
        for contact in deadline_rows:
            state, norm, due = deadline_state(contact, now, self.config.at_risk_fraction_left)
            if state in ("at_risk", "breached"):
                risks.append(
                    {
                        "reference": contact.reference,
                        "channel": contact.channel,
                        "queue": contact.queue,
                        "status": contact.status,
                        "norm": norm,
                        "due": iso(due),
                        "state": state,
                        "assigned_agent_id": contact.assigned_agent_id,
                    }
                )
        risks.sort(key=lambda r: (r["state"] != "breached", r["due"] or ""))
        return {
            "at": iso(now),
            "queues": queues,
            "totals": {
                "waiting": sum(q["waiting"] for q in queues),
                "arrivals_last_hour": sum(q["arrivals_last_hour"] for q in queues),
                "handled_last_hour": sum(q["handled_last_hour"] for q in queues),
            },
            "agents_by_status": by_status,
            "agents": agents,
            "at_risk": risks[:AT_RISK_LIMIT],
            "at_risk_count": sum(1 for r in risks if r["state"] == "at_risk"),
            "breached_count": sum(1 for r in risks if r["state"] == "breached"),
        }

    async def service_level(self, now: datetime) -> float | None:
        """Share of phone and chat contacts taken within the norm, over the recent window."""
        since = now - timedelta(minutes=self.config.service_level_window_minutes)
        async with self.store.readers() as session:
            rows = (
                await session.execute(
                    sa.select(col(Contact.received_at), col(Contact.assigned_at))
                    .where(col(Contact.assigned_at) >= since)
                    .where(col(Contact.channel).in_(list(self.config.service_level_channels)))
                    .limit(20_000)
                )
            ).all()
        if not rows:
            return None
        limit = self.config.service_level_seconds
        within = sum(
            1
            for received, assigned in rows
            if assigned is not None and (assigned - received).total_seconds() <= limit
        )
        return round(within / len(rows), 4)

    async def sample(self) -> bool:
        """One point for the chart, at a moment rounded to the sample interval (so several
        processes store it once)."""
        now = self.services.clock.now()
        step = max(1, int(self.config.sample_seconds))
        moment = datetime.fromtimestamp(int(now.timestamp()) // step * step, tz=now.tzinfo)
        stats = await self.services.backend.stats()
        oldest = [s.oldest_enqueued_at for s in stats.values() if s.oldest_enqueued_at]
        return await self.store.add_sample(
            QueueSample(
                at=moment,
                waiting=sum(s.waiting for s in stats.values()),
                oldest_wait_seconds=round(max(0.0, now.timestamp() - min(oldest)), 1)
                if oldest
                else 0.0,
                service_level=await self.service_level(now),
                per_queue={name: s.waiting for name, s in stats.items()},
            )
        )

    async def run_sampler(self) -> None:
        while True:
            try:
                await self.sample()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dashboard sample failed")
            await asyncio.sleep(self.config.sample_seconds)

    async def series(self, day_start: datetime) -> list[dict[str, Any]]:
        samples = await self.store.samples(day_start, day_start + timedelta(days=1))
        return [
            {
                "at": iso(s.at),
                "waiting": s.waiting,
                "oldest_wait_seconds": s.oldest_wait_seconds,
                "service_level": s.service_level,
            }
            for s in samples
        ]
