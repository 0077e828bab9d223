"""Routing configuration from `config/routing.toml` (product skills from products.toml)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

DROPPABLE = frozenset({"topic", "language", "channel"})


class ConfigError(ValueError):
    """The configuration is inconsistent; the message says where."""


@dataclass(frozen=True)
class ChannelRule:
    channel_class: str
    priority: int


@dataclass(frozen=True)
class QueueRule:
    name: str
    skills: frozenset[str]


@dataclass(frozen=True)
class EscalationStep:
    after_seconds: float
    drop: frozenset[str]


@dataclass(frozen=True)
class RoutingConfig:
    channels: dict[str, ChannelRule]
    queues: dict[str, QueueRule]
    product_skills: frozenset[str]
    languages: frozenset[str]
    channel_skills: frozenset[str]
    escalation: dict[str, tuple[EscalationStep, ...]]
    at_risk_fraction: float = 0.8
    at_risk_boost: int = 40
    sweep_seconds: float = 2.0
    reconcile_seconds: float = 30.0
    default_skills: dict[str, int] = field(default_factory=dict)
    default_capacity: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)

    @property
    def all_skills(self) -> frozenset[str]:
        return self.product_skills | self.languages | self.channel_skills

    def queue_for_skill(self, skill: str) -> str:
        """The queue whose required skills include this product skill, else `algemeen`."""
        for queue in self.queues.values():
            if skill in queue.skills:
                return queue.name
        return "algemeen" if "algemeen" in self.queues else next(iter(self.queues))

    @classmethod
    def load(cls, config_dir: Path) -> RoutingConfig:
        routing = tomllib.loads((config_dir / "routing.toml").read_text(encoding="utf-8"))
        products = tomllib.loads((config_dir / "products.toml").read_text(encoding="utf-8"))
        product_skills = frozenset(p["skill"] for p in products.get("product", []))

        channels = {
            name: ChannelRule(channel_class=rule["class"], priority=int(rule["priority"]))
            for name, rule in routing["channels"].items()
        }
        skills = routing.get("skills", {})
        channel_skills = frozenset(skills.get("channels", []))
        for name, channel_rule in channels.items():
            if channel_rule.channel_class not in channel_skills:
                raise ConfigError(
                    f"routing.toml: channel {name!r} has class {channel_rule.channel_class!r}, "
                    "which is not in skills.channels"
                )
        queues = {
            q["name"]: QueueRule(name=q["name"], skills=frozenset(q["skills"]))
            for q in routing["queues"]
        }
        known = product_skills | frozenset(skills.get("languages", [])) | channel_skills
        for queue in queues.values():
            unknown = queue.skills - known
            if unknown:
                raise ConfigError(f"routing.toml: queue {queue.name!r} needs unknown {unknown}")
        escalation: dict[str, tuple[EscalationStep, ...]] = {}
        for channel_class, steps in routing.get("escalation", {}).items():
            parsed = []
            for step in steps:
                drop = frozenset(step["drop"])
                if drop - DROPPABLE:
                    raise ConfigError(
                        f"routing.toml: escalation.{channel_class} drops {sorted(drop - DROPPABLE)}"
                        f"; allowed: {sorted(DROPPABLE)}"
                    )
                parsed.append(EscalationStep(float(step["after_seconds"]), drop))
            escalation[channel_class] = tuple(sorted(parsed, key=lambda s: s.after_seconds))
        priority = routing.get("priority", {})
        agents = routing.get("agents", {})
        return cls(
            channels=channels,
            queues=queues,
            product_skills=product_skills,
            languages=frozenset(skills.get("languages", [])),
            channel_skills=channel_skills,
            escalation=escalation,
            at_risk_fraction=float(priority.get("at_risk_fraction", 0.8)),
            at_risk_boost=int(priority.get("at_risk_boost", 40)),
            sweep_seconds=float(routing.get("router", {}).get("sweep_seconds", 2.0)),
            reconcile_seconds=float(routing.get("router", {}).get("reconcile_seconds", 30.0)),
            default_skills=dict(agents.get("default_skills", {})),
            default_capacity=dict(agents.get("default_capacity", {})),
            outcomes=dict(routing.get("outcomes", {})),
        )
