"""Prometheus metrics. Counters are updated where things happen; queue and agent gauges are
read from the queue backend at scrape time, so every process reports the shared truth."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from queues.base import QueueBackend


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.contacts_received = Counter(
            "kcc_contacts_received",
            "Inbound messages by channel and outcome (created, follow_up, duplicate)",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.assignments = Counter(
            "kcc_assignments",
            "Contacts assigned to an agent, by queue",
            ["queue"],
            registry=self.registry,
        )
        self.replies = Counter(
            "kcc_replies",
            "Replies sent by agents, by channel and delivery status",
            ["channel", "status"],
            registry=self.registry,
        )
        self.closed = Counter(
            "kcc_contacts_closed",
            "Contacts closed, by outcome code",
            ["outcome"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "kcc_inbound_rejected",
            "Inbound requests refused, by channel and reason",
            ["channel", "reason"],
            registry=self.registry,
        )
        self.queue_waiting = Gauge(
            "kcc_queue_waiting", "Contacts waiting per queue", ["queue"], registry=self.registry
        )
        self.queue_oldest_wait = Gauge(
            "kcc_queue_oldest_wait_seconds",
            "Wait of the oldest contact per queue",
            ["queue"],
            registry=self.registry,
        )
        self.agents = Gauge(
            "kcc_agents", "Signed-in agents by status", ["status"], registry=self.registry
        )
        self.routing_seconds = Histogram(
            "kcc_routing_decision_seconds",
            "Time to pick a contact for an agent",
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 1.0),
        )

        # The phone norms: answered within 30 s (wait of answered calls) and the abandoned rate
        # (abandoned / all settled calls).
        self.phone_calls = Counter(
            "kcc_phone_calls",
            "Calls that left the waiting line, by outcome (answered, abandoned, callback)",
            ["outcome"],
            registry=self.registry,
        )
        self.phone_wait_seconds = Histogram(
            "kcc_phone_wait_seconds",
            "How long callers waited in the queue, by outcome",
            ["outcome"],
            registry=self.registry,
            buckets=(5, 10, 20, 30, 45, 60, 90, 120, 300, 600, 1800),
        )
        self.phone_call_seconds = Histogram(
            "kcc_phone_call_duration_seconds",
            "Duration of finished calls (Twilio's CallDuration)",
            registry=self.registry,
            buckets=(30, 60, 120, 300, 600, 1200, 1800, 3600),
        )

    async def refresh(self, backend: QueueBackend, queues: list[str], now: float) -> None:
        stats = await backend.stats()
        for queue in queues:
            entry = stats.get(queue)
            self.queue_waiting.labels(queue).set(entry.waiting if entry else 0)
            oldest = entry.oldest_enqueued_at if entry else None
            self.queue_oldest_wait.labels(queue).set(max(0.0, now - oldest) if oldest else 0)
        counts = {"available": 0, "away": 0, "busy": 0}
        for agent in await backend.agents():
            counts[agent.status] = counts.get(agent.status, 0) + 1
        for status, count in counts.items():
            self.agents.labels(status).set(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
