"""Settings of the desk and dashboard from `config/desk.toml`."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True)
class Partner:
    slug: str
    name: str
    description: str = ""


@dataclass(frozen=True)
class Norm:
    channel: str
    label: str
    seconds: int
    target: float


@dataclass(frozen=True)
class DeskConfig:
    idle_minutes: int = 120
    max_hours: int = 10
    free_attempts: int = 5
    block_seconds: int = 30
    max_block_seconds: int = 900
    secure_cookies: str = "auto"
    at_risk_fraction_left: float = 0.2
    refresh_seconds: float = 5.0
    whatsapp_window_hours: int = 24
    push_seconds: float = 1.0
    sample_seconds: float = 60.0
    service_level_seconds: int = 30
    service_level_window_minutes: int = 15
    service_level_channels: tuple[str, ...] = ("phone", "counter", "whatsapp", "telegram")
    timezone: str = "Europe/Amsterdam"
    norms: tuple[Norm, ...] = ()
    partners: tuple[Partner, ...] = field(default_factory=tuple)

    def zone(self) -> tzinfo:
        try:
            return ZoneInfo(self.timezone)
        except ZoneInfoNotFoundError:
            return UTC

    def day_start(self, now: datetime) -> datetime:
        """Midnight of the municipality's day that `now` falls in."""
        local = now.astimezone(self.zone())
        return local.replace(hour=0, minute=0, second=0, microsecond=0)

    def partner(self, slug: str) -> Partner | None:
        return next((p for p in self.partners if p.slug == slug), None)


@lru_cache(maxsize=8)
def load(config_dir: Path) -> DeskConfig:
    path = config_dir / "desk.toml"
    if not path.exists():
        return DeskConfig()
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    sign_in = data.get("sign_in", {})
    desk = data.get("desk", {})
    dashboard = data.get("dashboard", {})
    defaults = DeskConfig()
    return DeskConfig(
        idle_minutes=int(sign_in.get("idle_minutes", defaults.idle_minutes)),
        max_hours=int(sign_in.get("max_hours", defaults.max_hours)),
        free_attempts=int(sign_in.get("free_attempts", defaults.free_attempts)),
        block_seconds=int(sign_in.get("block_seconds", defaults.block_seconds)),
        max_block_seconds=int(sign_in.get("max_block_seconds", defaults.max_block_seconds)),
        secure_cookies=str(sign_in.get("secure_cookies", defaults.secure_cookies)),
        at_risk_fraction_left=float(
            desk.get("at_risk_fraction_left", defaults.at_risk_fraction_left)
        ),
        refresh_seconds=float(desk.get("refresh_seconds", defaults.refresh_seconds)),
        whatsapp_window_hours=int(
            desk.get("whatsapp_window_hours", defaults.whatsapp_window_hours)
        ),
        push_seconds=float(dashboard.get("push_seconds", defaults.push_seconds)),
        sample_seconds=float(dashboard.get("sample_seconds", defaults.sample_seconds)),
        service_level_seconds=int(
            dashboard.get("service_level_seconds", defaults.service_level_seconds)
        ),
        service_level_window_minutes=int(
            dashboard.get("service_level_window_minutes", defaults.service_level_window_minutes)
        ),
        service_level_channels=tuple(
            dashboard.get("service_level_channels", defaults.service_level_channels)
        ),
        timezone=str(dashboard.get("timezone", defaults.timezone)),
        norms=tuple(
            Norm(
                channel=str(n["channel"]),
                label=str(n["label"]),
                seconds=int(n["seconds"]),
                target=float(n["target"]),
            )
            for n in data.get("norms", [])
        ),
        partners=tuple(
            Partner(slug=str(p["slug"]), name=str(p["name"]), description=p.get("description", ""))
            for p in data.get("partners", [])
        ),
    )
