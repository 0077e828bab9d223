"""The SLA engine: deadlines on receipt, and timers that keep the promise.

On receipt intake stores the contact's deadlines and its due timers in the same transaction
(`with_deadlines`). A periodic sweep in every service process (APScheduler, `sweep_seconds`)
claims what is due and fires it:
- `acknowledgement`: the acknowledgement goes out on the contact's channel (checked again
  until the channel has sent it); `acked_at` is set when it was sent or an agent answered first;
- `ack_breach`, `answer_breach`: a deadline passed unmet is recorded (field, event, state);
- `warning`: at configured fractions of the answer term, an event and the `at_risk` state for
  the team lead's list (the router raises the priority at `at_risk_at`, the first warning);
- `extension_notice`: after a verdaging, the resident is told on their channel.
Waiting on the resident moves the answer deadline on by the time waited, for norms that allow
it, when a warning or breach timer finds such a pause in the history.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from adapters.outbound import Outbox, Purpose
from contacts.inbound import InboundMessage
from contacts.intake_writer import PlanFn, RoutePlan
from contacts.models import Contact, ContactEvent, Status
from contacts.store import ContactStore
from kcc.clock import Clock
from sla.norms import Norm, NormBook
from sla.store import Decision, DueTimer, SlaStore, event_row, paused_seconds
from sla.templates import Templates, written_date

log = logging.getLogger(__name__)

ACTOR = "system:sla"
SENT = frozenset({"sent", "delivered", "read"})
MAX_BATCHES_PER_SWEEP = 50


class SlaError(ValueError):
    """A verdaging that cannot be accepted; the message is safe to show."""


class TooLate(SlaError):
    """The deadline has passed: that is a breach, not a verdaging."""


@dataclass(frozen=True)
class Flagged:
    contact: Contact
    norm: str
    due: datetime | None
    state: str


class SlaEngine:
    def __init__(
        self,
        store: ContactStore,
        outbox: Outbox,
        book: NormBook,
        templates: Templates,
        clock: Clock,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.contacts = store
        self.db = SlaStore(store.sessions, store.readers)
        self.outbox = outbox
        self.book = book
        self.calendar = book.calendar
        self.templates = templates
        self.clock = clock
        self._sweeping = asyncio.Lock()
        registry = registry or CollectorRegistry()
        self.at_risk_gauge = Gauge(
            "kcc_sla_at_risk",
            "Open unanswered contacts past a warning point, per queue",
            ["queue"],
            registry=registry,
        )
        self.breached_gauge = Gauge(
            "kcc_sla_breached",
            "Open unanswered contacts past a deadline, per queue",
            ["queue"],
            registry=registry,
        )
        self.fired = Counter(
            "kcc_sla_timers_fired",
            "SLA timers fired, by kind and outcome",
            ["kind", "outcome"],
            registry=registry,
        )
        self.delay = Histogram(
            "kcc_sla_timer_delay_seconds",
            "Delay between a timer's due time and its firing",
            registry=registry,
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 300),
        )

    # --- on receipt -------------------------------------------------------------------------

    def with_deadlines(self, plan: PlanFn, now: datetime) -> PlanFn:
        """The router's plan plus the SLA deadlines and timers of the new contact."""

        def planned(inbound: InboundMessage) -> RoutePlan:
            route = plan(inbound)
            received_at = inbound.received_at or now
            found = self.book.deadlines(inbound.channel, route.kind, received_at, now)
            return replace(route, sla=found.columns, timers=tuple(found.timers))

        return planned

    # --- the sweep --------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Fire every due timer (claimed once across processes). Returns how many were run."""
        async with self._sweeping:
            settings = self.book.timers
            run = 0
            for _ in range(MAX_BATCHES_PER_SWEEP):
                batch = await self.db.claim_due(
                    self.clock.now(), timedelta(seconds=settings.lease_seconds), settings.batch
                )
                await self._process(batch)
                run += len(batch)
                if len(batch) < settings.batch:
                    break
            return run

    async def wait_for_sweep(self) -> None:
        async with self._sweeping:
            pass

    async def run_timer(self, timer_id: int) -> bool:
        """Fire one timer now if it is due and nobody else has it (the API's notice)."""
        claimed = await self.db.claim_due(
            self.clock.now(), timedelta(seconds=self.book.timers.lease_seconds), 1, timer_id
        )
        await self._process(claimed)
        return bool(claimed)

    async def _process(self, batch: list[DueTimer]) -> None:
        """Decide every claimed timer, then record all plain effects in one transaction (the
        contacts and their history read once per batch, not per timer)."""
        if not batch:
            return
        contacts = await self.db.contacts([t.contact_id for t in batch])
        pausing = [
            contact_id
            for contact_id, contact in contacts.items()
            if (norm := self.book.by_id(contact.sla_norm)) is not None and norm.pause_on_resident
        ]
        waits = await self.db.waiting_events(pausing)
        decisions: list[Decision] = []
        for timer in batch:
            decision: Decision | None
            try:
                contact = contacts.get(timer.contact_id)
                handler = HANDLERS.get(timer.kind)
                if contact is None or handler is None:
                    decision = self._finish(timer, "gone" if contact is None else "unknown")
                else:
                    decision = await handler(self, timer, contact, waits.get(timer.contact_id, []))
            except Exception:
                # The lease runs out and another sweep tries again; never lose the timer.
                log.exception(
                    "SLA timer %s (%s) of contact %s failed", timer.id, timer.kind,
                    timer.contact_id,
                )  # fmt: skip
                continue
            if decision is not None:
                decisions.append(decision)
        now = self.clock.now()
        done = await self.db.finish_many(decisions, now)
        for decision in decisions:
            if decision.timer.id in done:
                self.fired.labels(decision.timer.kind, decision.outcome).inc()
                self.delay.observe(max(0.0, (now - decision.timer.due_at).total_seconds()))

    def _finish(
        self,
        timer: DueTimer,
        outcome: str,
        contact: Contact | None = None,
        values: dict[str, Any] | None = None,
        only_if_null: str | None = None,
        event: tuple[str, str, dict[str, Any]] | None = None,
    ) -> Decision:
        row = None
        if event is not None and contact is not None:
            kind, reason, data = event
            row = event_row(contact.id or 0, self.clock.now(), kind, ACTOR, reason, data)
        return Decision(
            timer, outcome, contact.id if contact else None, values or {}, only_if_null, row
        )

    # --- acknowledgement --------------------------------------------------------------------

    async def _acknowledge(
        self, timer: DueTimer, contact: Contact, waits: list[ContactEvent]
    ) -> Decision | None:
        if contact.acked_at is not None:
            return self._finish(timer, "already")
        handled = contact.answered_at or contact.closed_at
        if handled is not None:
            return self._finish(
                timer,
                "answered",
                contact,
                {"acked_at": handled},
                "acked_at",
            )
        sent = await self.db.outbound_with_purpose(contact.id or 0, Purpose.acknowledgement)
        message = sent[-1] if sent else None
        if message is None:
            values, dates = self.texts_for(contact)
            text = self.templates.render(
                "acknowledgement", contact.kind, contact.language, values, dates
            )
            message = await self.outbox.send(
                contact,
                text,
                purpose=Purpose.acknowledgement,
                variables=self.variables(values, dates),
            )
        if message.delivery_status in SENT:
            return self._finish(
                timer,
                "sent",
                contact,
                {"acked_at": self.clock.now()},
                "acked_at",
                (
                    "sla_acknowledgement",
                    f"ontvangstbevestiging verstuurd via {message.channel}",
                    {"channel": message.channel},
                ),
            )
        # Not sent yet (no adapter, provider down): the outbox retries; look again later.
        await self.db.postpone(
            timer.id, self.clock.now() + timedelta(seconds=self.book.timers.ack_recheck_seconds)
        )
        return None

    # --- breaches and warnings --------------------------------------------------------------

    async def _ack_breach(
        self, timer: DueTimer, contact: Contact, waits: list[ContactEvent]
    ) -> Decision | None:
        due = contact.ack_due or timer.due_at
        handled = [t for t in (contact.acked_at, contact.answered_at, contact.closed_at) if t]
        if handled and min(handled) <= due:
            return self._finish(timer, "met")
        ack = self.book.acknowledgement_norm(contact.channel, contact.kind)
        return self._finish(
            timer,
            "breached",
            contact,
            {"ack_breached_at": due, "sla_state": "breached"},
            "ack_breached_at",
            (
                "sla_breach",
                "termijn ontvangstbevestiging verstreken zonder bevestiging",
                {"norm": ack.id if ack else "acknowledgement", "due": due.isoformat()},
            ),
        )

    async def _warning(
        self, timer: DueTimer, contact: Contact, waits: list[ContactEvent]
    ) -> Decision | None:
        if contact.answered_at or contact.status == Status.closed:
            return self._finish(timer, "handled")
        norm = self.book.by_id(contact.sla_norm)
        if norm is not None and await self._apply_pause(contact, norm, waits):
            return None  # the timers were replaced by ones on the new deadline
        due = contact.answer_due
        return self._finish(
            timer,
            "warned",
            contact,
            {"sla_state": "at_risk"},
            "sla_state",
            (
                "sla_warning",
                "termijn bijna verstreken: beantwoord of stuur tijdig een verdaging",
                {
                    "norm": contact.sla_norm,
                    "due": due.isoformat() if due else None,
                    "queue": contact.queue,
                },
            ),
        )

    async def _answer_breach(
        self, timer: DueTimer, contact: Contact, waits: list[ContactEvent]
    ) -> Decision | None:
        due = contact.answer_due or timer.due_at
        handled = contact.answered_at or contact.closed_at
        if handled is not None and handled <= due:
            return self._finish(timer, "met")
        norm = self.book.by_id(contact.sla_norm)
        if handled is None and norm is not None and await self._apply_pause(contact, norm, waits):
            return None
        if due > self.clock.now():
            await self.db.postpone(timer.id, due)
            return None
        return self._finish(
            timer,
            "breached",
            contact,
            {"answer_breached_at": due, "sla_state": "breached"},
            "answer_breached_at",
            (
                "sla_breach",
                "antwoordtermijn verstreken zonder antwoord of verdaging",
                {"norm": contact.sla_norm, "due": due.isoformat()},
            ),
        )

    async def _apply_pause(self, contact: Contact, norm: Norm, waits: list[ContactEvent]) -> bool:
        """Norms that allow it: move the answer deadline on by the time spent waiting on the
        resident not yet accounted for. True when the deadline moved."""
        if not norm.pause_on_resident or contact.answer_due is None:
            return False
        now = self.clock.now()
        total, reasons = paused_seconds(waits, now)
        extra = total - contact.sla_paused_seconds
        if extra < 1:
            return False
        new_due = contact.answer_due + timedelta(seconds=extra)
        if norm.term.day_based:
            day = self.calendar.local_date(new_due - timedelta(microseconds=1))
            if norm.termijnenwet:
                day = self.calendar.termijnenwet_end(day)
            new_due = self.calendar.end_of_day(day)
        moved = await self.db.move_answer_due(
            contact.id or 0,
            now,
            new_due,
            self._answer_timers(norm, contact, new_due, now),
            {"sla_paused_seconds": total},
            event_row(
                contact.id or 0,
                now,
                "sla_paused",
                ACTOR,
                f"antwoordtermijn opgeschort: gewacht op de inwoner ({'; '.join(reasons)})"[:500],
                {
                    "paused_seconds": total,
                    "old_due": contact.answer_due.isoformat(),
                    "new_due": new_due.isoformat(),
                },
            ),
            expect_due=contact.answer_due,
        )
        return moved is not None

    def _answer_timers(
        self, norm: Norm, contact: Contact, due: datetime, now: datetime
    ) -> list[tuple[str, datetime]]:
        warnings = self.book.warning_times(norm, contact.received_at, due)
        return [("warning", at) for at in warnings if at > now] + [("answer_breach", due)]

    # --- verdaging --------------------------------------------------------------------------

    async def extend(self, contact: Contact, actor: str, reason: str, new_day: date) -> Contact:
        """Record a verdaging and tell the resident on their channel, before the deadline."""
        now = self.clock.now()
        norm = self.book.by_id(contact.sla_norm)
        if norm is None or contact.answer_due is None:
            raise SlaError("dit contact heeft geen antwoordtermijn")
        if contact.status == Status.closed or contact.answered_at is not None:
            raise SlaError("dit contact is al beantwoord of gesloten")
        if not norm.extension_allowed:
            raise SlaError(f"de norm {norm.label!r} kent geen verdaging")
        if now >= contact.answer_due:
            raise TooLate(
                "de termijn is al verstreken: een verdaging moet vóór de termijn "
                "(dit is een overschrijding)"
            )
        day = self.calendar.termijnenwet_end(new_day) if norm.termijnenwet else new_day
        new_due = self.calendar.end_of_day(day)
        if new_due <= contact.answer_due:
            raise SlaError("de nieuwe datum moet na de huidige termijn liggen")
        latest = norm.latest_extension(self.calendar, contact.norm_due or contact.answer_due)
        if latest is not None and new_due > latest:
            last_day = self.calendar.local_date(latest - timedelta(microseconds=1))
            raise SlaError(
                f"verder dan de wettelijke termijn toestaat ({norm.label}; verdagen met ten "
                f"hoogste {norm.max_extension.text() if norm.max_extension else ''}): "
                f"uiterlijk {last_day.isoformat()}"
            )
        old_day = self.due_day(contact.answer_due)
        values: dict[str, Any] = {"extended_at": now}
        timers = self._answer_timers(norm, contact, new_due, now)
        warnings = [at for kind, at in timers if kind == "warning"]
        if contact.at_risk_at is not None and warnings:
            values["at_risk_at"] = warnings[0]
        extra = await self.db.move_answer_due(
            contact.id or 0,
            now,
            new_due,
            timers,
            values,
            event_row(
                contact.id or 0,
                now,
                "verdaging",
                actor,
                reason[:500],
                {
                    "old_due": contact.answer_due.isoformat(),
                    "new_due": new_due.isoformat(),
                    "old_day": old_day.isoformat(),
                    "new_day": day.isoformat(),
                    "reason": reason[:500],
                },
            ),
            expect_due=contact.answer_due,
            extra_timers=[("extension_notice", now)],
        )
        if extra is None:
            raise SlaError("de termijn is intussen gewijzigd; probeer het opnieuw")
        for timer_id in extra:
            await self.run_timer(timer_id)
        updated = await self.contacts.get(contact.id or 0)
        assert updated is not None
        return updated

    async def _extension_notice(
        self, timer: DueTimer, contact: Contact, waits: list[ContactEvent]
    ) -> Decision | None:
        events = [e for e in await self.db.status_events(contact.id or 0) if e.type == "verdaging"]
        if not events:
            return self._finish(timer, "nothing")
        data = events[-1].data
        sent = await self.db.outbound_with_purpose(contact.id or 0, Purpose.extension)
        message = next((m for m in sent if m.variables.get("new_due_iso") == data["new_day"]), None)
        if message is None:
            values, dates = self.texts_for(contact)
            values["reason"] = str(data.get("reason", ""))
            dates["answer_due"] = date.fromisoformat(data["old_day"])
            dates["new_due"] = date.fromisoformat(data["new_day"])
            text = self.templates.render("extension", contact.kind, contact.language, values, dates)
            variables = self.variables(values, dates) | {"new_due_iso": data["new_day"]}
            message = await self.outbox.send(
                contact, text, purpose=Purpose.extension, variables=variables
            )
        return self._finish(
            timer,
            "sent" if message.delivery_status in SENT else "queued",
            contact,
            event=(
                "verdaging_bericht",
                f"verdaging aan de inwoner via {message.channel} ({message.delivery_status})",
                {"channel": message.channel, "delivery": message.delivery_status},
            ),
        )

    # --- texts ------------------------------------------------------------------------------

    def due_day(self, due: datetime) -> date:
        """The last day of a day-based deadline (which ends at the next local midnight)."""
        return self.calendar.local_date(due - timedelta(microseconds=1))

    def texts_for(self, contact: Contact) -> tuple[dict[str, str], dict[str, date]]:
        organisation = self.book.organisation
        values = {
            "reference": contact.reference,
            "organisation": organisation.get("name", ""),
            "phone": organisation.get("phone", ""),
            "status_url": organisation.get("status_url", ""),
        }
        dates = {"received_date": self.calendar.local_date(contact.received_at)}
        if contact.answer_due is not None:
            dates["answer_due"] = self.due_day(contact.answer_due)
        return values, dates

    @staticmethod
    def variables(values: dict[str, str], dates: dict[str, date]) -> dict[str, str]:
        """Template variables for the channel (a WhatsApp template): dates in Dutch."""
        return values | {name: written_date(day, "nl") for name, day in dates.items()}

    # --- team leads -------------------------------------------------------------------------

    async def flagged(self) -> list[Flagged]:
        found = []
        for contact in await self.db.flagged():
            if contact.answer_breached_at is not None or (
                contact.sla_state == "at_risk" and contact.ack_breached_at is None
            ):
                found.append(
                    Flagged(
                        contact,
                        contact.sla_norm or "",
                        contact.answer_due,
                        contact.sla_state or "at_risk",
                    )
                )
            else:
                ack = self.book.acknowledgement_norm(contact.channel, contact.kind)
                found.append(
                    Flagged(
                        contact, ack.id if ack else "acknowledgement", contact.ack_due, "breached"
                    )
                )
        return found

    async def refresh_gauges(self, queues: list[str]) -> None:
        counts = await self.db.flagged_counts()
        for queue in set(queues) | {q for q, _ in counts}:
            self.at_risk_gauge.labels(queue).set(counts.get((queue, "at_risk"), 0))
            self.breached_gauge.labels(queue).set(counts.get((queue, "breached"), 0))


Handler = Callable[[SlaEngine, DueTimer, Contact, list[ContactEvent]], Awaitable[Decision | None]]
HANDLERS: dict[str, Handler] = {
    "acknowledgement": SlaEngine._acknowledge,
    "ack_breach": SlaEngine._ack_breach,
    "warning": SlaEngine._warning,
    "answer_breach": SlaEngine._answer_breach,
    "extension_notice": SlaEngine._extension_notice,
}
