"""Wiring: one place that builds the store, queue backend, router, intake and outbox from the
settings, starts them in order and stops them in reverse."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.intake import Intake
from adapters.outbound import Outbox
from contacts.attachments import AttachmentStore
from contacts.database import (
    create_engine,
    create_sync_sqlite_engine,
    is_sqlite,
    read_session_factory,
    session_factory,
)
from contacts.quarantine import Quarantine
from contacts.schema import upgrade
from contacts.store import ContactStore
from kcc.clock import Clock, SystemClock
from kcc.metrics import Metrics
from kcc.settings import Settings
from kennisbank.search import Kennisbank, KennisbankConfig, load_products
from kennisbank.store import ArticleStore
from queues.base import QueueBackend
from router.classify import Classifier
from router.config import RoutingConfig
from router.planner import RoutePlanner
from router.router import Router
from sla.norms import NormBook
from sla.templates import Templates
from sla.timers import SlaEngine

log = logging.getLogger(__name__)


def make_backend(redis_url: str) -> QueueBackend:
    if redis_url:
        from queues.redis import RedisQueueBackend

        return RedisQueueBackend(redis_url)
    from queues.memory import MemoryQueueBackend

    return MemoryQueueBackend()


@dataclass
class Services:
    settings: Settings
    clock: Clock
    config: RoutingConfig
    engine: AsyncEngine
    store: ContactStore
    backend: QueueBackend
    planner: RoutePlanner
    router: Router
    intake: Intake
    outbox: Outbox
    attachments: AttachmentStore
    quarantine: Quarantine
    metrics: Metrics
    sla: SlaEngine
    kennisbank: Kennisbank
    scheduler: AsyncIOScheduler | None = field(default=None)

    @classmethod
    async def build(
        cls, settings: Settings, clock: Clock | None = None, migrate: bool = True
    ) -> Services:
        clock = clock or SystemClock()
        config = RoutingConfig.load(settings.config_dir)
        classifier = Classifier.from_config(settings.config_dir)
        url = settings.effective_database_url
        if migrate:
            await upgrade(url)
        engine = create_engine(url)
        store = ContactStore(
            session_factory(engine),
            read_session_factory(engine),
            sync_writer=create_sync_sqlite_engine(url) if is_sqlite(url) else None,
        )
        backend = make_backend(settings.redis_url)
        kennisbank = Kennisbank(
            ArticleStore(session_factory(engine), read_session_factory(engine)),
            KennisbankConfig.load(settings.config_dir),
            settings.config_dir / "kennisbank",
            load_products(settings.config_dir),
        )
        await kennisbank.start(clock.now())
        classifier.use_search(kennisbank.finder())
        planner = RoutePlanner(config, classifier)
        router = Router(store, backend, planner, clock)
        metrics = Metrics()
        attachments = AttachmentStore(
            settings.data_dir / "attachments", settings.max_attachment_bytes
        )
        outbox = Outbox(store, clock)
        sla = SlaEngine(
            store,
            outbox,
            NormBook.load(settings.config_dir),
            Templates.load(settings.config_dir),
            clock,
            metrics.registry,
        )
        intake = Intake(store, router, attachments, clock, metrics, deadlines=sla.with_deadlines)
        router.listeners.append(
            lambda contact, _agent: metrics.assignments.labels(contact.queue or "").inc()
        )
        return cls(
            settings=settings,
            clock=clock,
            config=config,
            engine=engine,
            store=store,
            backend=backend,
            planner=planner,
            router=router,
            intake=intake,
            outbox=outbox,
            attachments=attachments,
            quarantine=Quarantine(session_factory(engine), attachments),
            metrics=metrics,
            sla=sla,
            kennisbank=kennisbank,
        )

    async def start(self, sweep: bool = True) -> None:
        await self.router.start()
        if sweep:
            self.scheduler = AsyncIOScheduler()
            self.scheduler.add_job(
                self.router.sweep,
                "interval",
                seconds=self.config.sweep_seconds,
                id="router-sweep",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=30,
            )
            self.scheduler.add_job(
                self.outbox.retry_unsent,
                "interval",
                seconds=self.config.sweep_seconds,
                id="outbox-retry",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=30,
            )
            self.scheduler.add_job(
                self.sla.sweep,
                "interval",
                seconds=self.sla.book.timers.sweep_seconds,
                id="sla-sweep",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=30,
            )
            self.scheduler.add_job(
                self._kennisbank_tick,
                "interval",
                seconds=self.kennisbank.config.refresh_seconds,
                id="kennisbank-refresh",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=30,
            )
            self.scheduler.start()

    async def _kennisbank_tick(self) -> None:
        """Pick up article edits made by other processes; write the gaps counted meanwhile."""
        await self.kennisbank.refresh()
        await self.kennisbank.flush_gaps(self.clock.now())

    async def close(self) -> None:
        if self.scheduler is not None:
            # No new sweeps, and a running one finishes: shutting down under it would cancel it
            # half-way.
            self.scheduler.pause()
            await self.router.wait_for_sweep()
            await self.sla.wait_for_sweep()
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        await self.router.stop()
        try:
            await self.kennisbank.flush_gaps(self.clock.now())
        except Exception:  # statistics only; never block a shutdown on them
            log.warning("kennisbank gaps not written at shutdown", exc_info=True)
        await self.backend.close()
        await self.engine.dispose()
