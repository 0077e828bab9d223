"""From a classified message to a route: queue, required skills, priority and queue score."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from contacts.inbound import InboundMessage
from contacts.intake_writer import RoutePlan
from router.classify import Classifier
from router.config import RoutingConfig

# Score = (PRIORITY_CEILING - priority) * PRIORITY_STEP + arrival time in epoch seconds. Lower is
# served first, so a higher priority always wins (strict priority) and within one priority the
# oldest wins (FCFS). The step dwarfs any epoch value, and the sum stays exact in a double.
PRIORITY_CEILING = 100
PRIORITY_STEP = 1e10


def queue_score(priority: int, enqueued_at: float) -> float:
    bounded = max(0, min(PRIORITY_CEILING - 1, priority))
    return (PRIORITY_CEILING - bounded) * PRIORITY_STEP + enqueued_at


class RoutePlanner:
    def __init__(self, config: RoutingConfig, classifier: Classifier) -> None:
        self.config = config
        self.classifier = classifier

    def channel_class(self, channel: str) -> str:
        return self.config.channels[channel].channel_class

    def plan(self, inbound: InboundMessage) -> RoutePlan:
        found = self.classifier.classify(inbound.text, inbound.subject, inbound.channel)
        # What the resident told us about their language beats what we guess from the text.
        language = inbound.sender.language or found.language
        return self.route(found.topic, found.skill, found.kind, language, inbound.channel)

    def route(self, topic: str, skill: str, kind: str, language: str, channel: str) -> RoutePlan:
        rule = self.config.channels[channel]
        skills = [skill, rule.channel_class]
        if language in self.config.languages:
            skills.insert(1, language)
        return RoutePlan(
            topic=topic,
            kind=kind,
            language=language,
            skills=skills,
            queue=self.config.queue_for_skill(skill),
            priority=rule.priority,
        )

    def requirements(self, skills: Sequence[str], channel: str, level: int) -> frozenset[str]:
        """The skills a contact needs after `level` escalation steps of its channel kind."""
        return self.widen(frozenset(skills), self.channel_class(channel), level)

    def widen(self, skills: frozenset[str], channel_class: str, level: int) -> frozenset[str]:
        """Drop the requirement kinds that the first `level` escalation steps name. Widening
        an already widened set is harmless, so the sweep can apply it to what is waiting."""
        dropped: set[str] = set()
        for step in self.config.escalation.get(channel_class, ())[:level]:
            dropped |= step.drop
        kinds = {
            "topic": self.config.product_skills,
            "language": self.config.languages,
            "channel": self.config.channel_skills,
        }
        removed = set().union(*(kinds[kind] for kind in dropped)) if dropped else set()
        return frozenset(skills - removed)

    def escalation_level(self, channel_class: str, waited_seconds: float) -> int:
        steps = self.config.escalation.get(channel_class, ())
        return sum(1 for step in steps if waited_seconds >= step.after_seconds)

    def first_escalation_after(self) -> float | None:
        """The shortest wait after which any escalation applies (bounds the sweep's look-up)."""
        delays = [s.after_seconds for steps in self.config.escalation.values() for s in steps]
        return min(delays) if delays else None

    def at_risk_priority(self, channel: str) -> int:
        return self.config.channels[channel].priority + self.config.at_risk_boost

    def at_risk_at(self, received_at: datetime, answer_due: datetime) -> datetime:
        return received_at + (answer_due - received_at) * self.config.at_risk_fraction
