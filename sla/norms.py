"""Service norms and legal terms as configuration (`config/sla.toml`), and the deadlines they
give a contact on receipt.

A norm says what is measured (`acknowledgement`, `answer`, `taken`: time until an agent took the
contact, `call` and `callback`: the phone adapter's call data, see `sla/report.py`, or
`external`: needs data another component records), within which term, for which
channels and kinds, and its target percentage. Kind-specific norms (klacht, bezwaar: their Awb
terms) win over the channel's answer norm.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sla.calendar import BusinessCalendar, OpeningHours

MEASURES = frozenset({"acknowledgement", "answer", "taken", "call", "callback", "external"})
UNITS = ("seconds", "minutes", "hours", "days", "weeks", "working_days")
ALL_CHANNELS = "*"


class NormConfigError(ValueError):
    """sla.toml is inconsistent; the message says where."""


@dataclass(frozen=True)
class Term:
    amount: int
    unit: str  # one of UNITS

    @classmethod
    def parse(cls, value: Mapping[str, Any], where: str) -> Term:
        if len(value) != 1:
            raise NormConfigError(f"sla.toml: {where} needs exactly one of {', '.join(UNITS)}")
        unit, amount = next(iter(value.items()))
        if unit not in UNITS or not isinstance(amount, int) or amount < 0:
            raise NormConfigError(f"sla.toml: {where} = {dict(value)} is not a term")
        return cls(amount, unit)

    @property
    def day_based(self) -> bool:
        return self.unit in ("days", "weeks", "working_days")

    def text(self) -> str:
        names = {
            "seconds": "s",
            "minutes": "min",
            "hours": "uur",
            "days": "dagen",
            "weeks": "weken",
            "working_days": "werkdagen",
        }
        return f"{self.amount} {names[self.unit]}"

    def end(
        self,
        calendar: BusinessCalendar,
        start: datetime,
        *,
        termijnenwet: bool = False,
        opening_hours: bool = False,
    ) -> datetime:
        """The deadline of this term counted from `start` (the moment of receipt)."""
        if not self.day_based:
            seconds = self.amount * {"seconds": 1, "minutes": 60, "hours": 3600}[self.unit]
            if opening_hours:
                return calendar.add_open_seconds(start, seconds)
            return start + timedelta(seconds=seconds)
        return calendar.end_of_day(
            self.end_date(calendar, calendar.local_date(start), termijnenwet)
        )

    def end_date(self, calendar: BusinessCalendar, received: date, termijnenwet: bool) -> date:
        """Day terms start the day after receipt (Awb 8:1 style): 6 weeks from Monday 23
        November end on Monday 4 January."""
        if self.unit == "working_days":
            day = calendar.add_working_days(received, self.amount)
        else:
            day = received + timedelta(days=self.amount * (7 if self.unit == "weeks" else 1))
        return calendar.termijnenwet_end(day) if termijnenwet else day


@dataclass(frozen=True)
class Norm:
    id: str
    norm: str  # the report's norm name: acknowledgement, answer, klacht, first_response, ...
    label: str
    measure: str
    term: Term
    target: float
    channels: tuple[str, ...]
    kinds: tuple[str, ...] = ()
    termijnenwet: bool = False
    opening_hours: bool = False
    pause_on_resident: bool = False
    # Verdaging: the furthest a deadline may be moved beyond the norm's own deadline (None:
    # no legal maximum, any later date the agent gives).
    max_extension: Term | None = None
    extension_allowed: bool = True
    warn_at: tuple[float, ...] = ()
    note: str = ""

    def applies(self, channel: str, kind: str) -> bool:
        channel_ok = ALL_CHANNELS in self.channels or channel in self.channels
        return channel_ok and (not self.kinds or kind in self.kinds)

    def deadline(self, calendar: BusinessCalendar, received_at: datetime) -> datetime:
        return self.term.end(
            calendar,
            received_at,
            termijnenwet=self.termijnenwet,
            opening_hours=self.opening_hours,
        )

    def latest_extension(self, calendar: BusinessCalendar, norm_due: datetime) -> datetime | None:
        """The latest date a verdaging may set, counted from the norm's own deadline."""
        if self.max_extension is None:
            return None
        # The norm's deadline is the end of its day; the extension counts from that day.
        last_day = calendar.local_date(norm_due - timedelta(microseconds=1))
        if not self.max_extension.day_based:
            return norm_due + (self.max_extension.end(calendar, norm_due) - norm_due)
        return calendar.end_of_day(self.max_extension.end_date(calendar, last_day, True))


@dataclass(frozen=True)
class TimerSettings:
    sweep_seconds: float = 1.0
    batch: int = 500
    # A claimed timer whose process died is tried again after this long.
    lease_seconds: float = 120.0
    ack_delay_seconds: float = 0.0
    ack_recheck_seconds: float = 60.0
    warn_at: tuple[float, ...] = (0.8,)


@dataclass(frozen=True)
class Deadlines:
    """What intake stores on a new contact, in the same transaction."""

    columns: dict[str, Any]
    timers: list[tuple[str, datetime, datetime]]  # (kind, due_at, run_at)


@dataclass(frozen=True)
class NormBook:
    calendar: BusinessCalendar
    norms: tuple[Norm, ...]
    timers: TimerSettings = field(default_factory=TimerSettings)
    organisation: dict[str, str] = field(default_factory=dict)

    def by_id(self, norm_id: str | None) -> Norm | None:
        return next((n for n in self.norms if n.id == norm_id), None)

    def _first(self, measure: str, channel: str, kind: str) -> Norm | None:
        matching = [n for n in self.norms if n.measure == measure and n.applies(channel, kind)]
        # A norm naming the kind (klacht, bezwaar) wins over the channel's general one.
        specific = [n for n in matching if n.kinds]
        found = specific or matching
        return found[0] if found else None

    def acknowledgement_norm(self, channel: str, kind: str) -> Norm | None:
        return self._first("acknowledgement", channel, kind)

    def answer_norm(self, channel: str, kind: str) -> Norm | None:
        return self._first("answer", channel, kind)

    def warn_points(self, norm: Norm) -> tuple[float, ...]:
        return norm.warn_at or self.timers.warn_at

    def deadlines(self, channel: str, kind: str, received_at: datetime, now: datetime) -> Deadlines:
        columns: dict[str, Any] = {}
        timers: list[tuple[str, datetime, datetime]] = []
        ack = self.acknowledgement_norm(channel, kind)
        if ack is not None:
            ack_due = ack.deadline(self.calendar, received_at)
            send_at = now + timedelta(seconds=self.timers.ack_delay_seconds)
            columns["ack_due"] = ack_due
            timers.append(("acknowledgement", send_at, send_at))
            timers.append(("ack_breach", ack_due, ack_due))
        answer = self.answer_norm(channel, kind)
        if answer is not None:
            answer_due = answer.deadline(self.calendar, received_at)
            columns.update(sla_norm=answer.id, answer_due=answer_due, norm_due=answer_due)
            warnings = self.warning_times(answer, received_at, answer_due)
            if warnings:
                columns["at_risk_at"] = warnings[0]
            timers.extend(("warning", at, at) for at in warnings)
            timers.append(("answer_breach", answer_due, answer_due))
        return Deadlines(columns, timers)

    def warning_times(self, norm: Norm, start: datetime, due: datetime) -> list[datetime]:
        return [start + (due - start) * fraction for fraction in self.warn_points(norm)]

    @classmethod
    def load(cls, config_dir: Path) -> NormBook:
        raw = tomllib.loads((config_dir / "sla.toml").read_text(encoding="utf-8"))
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> NormBook:
        cal = raw.get("calendar", {})
        atw = raw.get("termijnenwet", {})
        every_year = tuple(
            (int(md.split("-")[0]), int(md.split("-")[1])) for md in atw.get("every_year", [])
        )
        decree = frozenset(date.fromisoformat(d["date"]) for d in atw.get("decree_days", []))
        closing = frozenset(date.fromisoformat(d) for d in cal.get("closing_days", []))
        calendar = BusinessCalendar(
            timezone=ZoneInfo(cal.get("timezone", "Europe/Amsterdam")),
            termijnenwet_every_year=every_year,
            decree_days=decree,
            closing_days=closing,
            opening_hours=OpeningHours.from_config(raw.get("opening_hours", {})),
        )
        t = raw.get("timers", {})
        timers = TimerSettings(
            sweep_seconds=float(t.get("sweep_seconds", 1.0)),
            batch=int(t.get("batch", 500)),
            lease_seconds=float(t.get("lease_seconds", 120)),
            ack_delay_seconds=float(t.get("ack_delay_seconds", 0)),
            ack_recheck_seconds=float(t.get("ack_recheck_seconds", 60)),
            warn_at=_fractions(t.get("warn_at", [0.8]), "timers.warn_at"),
        )
        norms = tuple(_norm(entry) for entry in raw.get("norm", []))
        ids = [n.id for n in norms]
        if len(set(ids)) != len(ids):
            raise NormConfigError("sla.toml: norm ids must be unique")
        return cls(calendar, norms, timers, dict(raw.get("organisation", {})))


def _fractions(values: Sequence[Any], where: str) -> tuple[float, ...]:
    fractions = tuple(sorted(float(v) for v in values))
    if any(not 0 < f < 1 for f in fractions):
        raise NormConfigError(f"sla.toml: {where} must be fractions between 0 and 1")
    return fractions


def _norm(entry: Mapping[str, Any]) -> Norm:
    norm_id = str(entry.get("id", ""))
    where = f"norm {norm_id!r}"
    measure = entry.get("measure", "")
    if not norm_id or measure not in MEASURES:
        raise NormConfigError(f"sla.toml: {where} needs an id and a measure in {sorted(MEASURES)}")
    max_extension = entry.get("max_extension")
    return Norm(
        id=norm_id,
        norm=str(entry.get("norm", measure)),
        label=str(entry.get("label", norm_id)),
        measure=measure,
        term=Term.parse(entry.get("term", {}), f"{where}.term"),
        target=float(entry.get("target", 0)),
        channels=tuple(entry.get("channels", [ALL_CHANNELS])),
        kinds=tuple(entry.get("kinds", [])),
        termijnenwet=bool(entry.get("termijnenwet", False)),
        opening_hours=bool(entry.get("opening_hours", False)),
        pause_on_resident=bool(entry.get("pause_on_resident", False)),
        max_extension=Term.parse(max_extension, f"{where}.max_extension")
        if max_extension
        else None,
        extension_allowed=bool(entry.get("extension_allowed", True)),
        warn_at=_fractions(entry.get("warn_at", []), f"{where}.warn_at"),
        note=str(entry.get("note", "")),
    )
