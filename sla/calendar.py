"""The Dutch business calendar behind every SLA deadline.

Three kinds of day questions, each from configuration (`config/sla.toml`):
- working days: not a Saturday, Sunday or Dutch public holiday (the `holidays` package's public
  category, plus the municipality's own closing days);
- the Algemene termijnenwet (Atw): a term ending on a Saturday, Sunday or generally recognised
  holiday runs on to the next day that is none of those (art. 1). Its holidays (art. 3) are the
  Christian holidays and Koningsdag of the public category, 5 May every year (the package counts
  it only in lustrum years) and days equalised by Royal Decree (a dated table in the config);
- opening hours: the seconds that count for norms measured in seconds or minutes.

Day-based deadlines end at the end of their day in local time (the next local midnight), so "by
4 January" holds until 4 January 23:59:59 in Groningen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@lru_cache(maxsize=64)
def _public_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.Netherlands(years=year, categories=("public",)).keys())


@dataclass(frozen=True)
class OpeningHours:
    """Per weekday (0 = Monday) a list of (open, close) local times; closed on holidays."""

    slots: Mapping[int, tuple[tuple[time, time], ...]]

    @classmethod
    def from_config(cls, table: Mapping[str, list[list[str]] | list[str]]) -> OpeningHours:
        slots: dict[int, tuple[tuple[time, time], ...]] = {}
        for name, value in table.items():
            if name not in WEEKDAYS:
                raise ValueError(f"sla.toml: opening_hours.{name} is not a weekday")
            pairs = [value] if value and isinstance(value[0], str) else value
            parsed = []
            for pair in pairs:
                start, end = (time.fromisoformat(str(t)) for t in pair)
                if end <= start:
                    raise ValueError(f"sla.toml: opening_hours.{name} closes before it opens")
                parsed.append((start, end))
            slots[WEEKDAYS.index(name)] = tuple(sorted(parsed))
        return cls(slots)


@dataclass(frozen=True)
class BusinessCalendar:
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Amsterdam"))
    # Atw art. 3: holidays beyond the public category, every year, as (month, day).
    termijnenwet_every_year: tuple[tuple[int, int], ...] = ((5, 5),)
    # Atw art. 3 lid 3: days equalised to holidays by Royal Decree.
    decree_days: frozenset[date] = frozenset()
    # Days the municipality is closed beyond the public holidays (working days, opening hours).
    closing_days: frozenset[date] = frozenset()
    opening_hours: OpeningHours = field(default_factory=lambda: OpeningHours({}))

    # --- which days -------------------------------------------------------------------------

    def is_public_holiday(self, day: date) -> bool:
        return day in _public_holidays(day.year)

    def is_termijnenwet_holiday(self, day: date) -> bool:
        """A generally recognised holiday in the sense of Atw art. 3."""
        return (
            self.is_public_holiday(day)
            or (day.month, day.day) in self.termijnenwet_every_year
            or day in self.decree_days
        )

    def is_working_day(self, day: date) -> bool:
        return (
            day.weekday() < 5 and not self.is_public_holiday(day) and day not in self.closing_days
        )

    def termijnenwet_end(self, day: date) -> date:
        """Atw art. 1: a term ending on a Saturday, Sunday or holiday runs on to the next day
        that is none of those."""
        while day.weekday() >= 5 or self.is_termijnenwet_holiday(day):
            day += timedelta(days=1)
        return day

    def add_working_days(self, day: date, count: int) -> date:
        """The `count`-th working day after `day` (the day of receipt itself never counts)."""
        while count > 0:
            day += timedelta(days=1)
            if self.is_working_day(day):
                count -= 1
        return day

    # --- moments ----------------------------------------------------------------------------

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.timezone).date()

    def end_of_day(self, day: date) -> datetime:
        """The end of a local day as an aware UTC moment (the next local midnight)."""
        midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.timezone)
        return midnight.astimezone(UTC)

    def _slots(self, day: date) -> Iterable[tuple[datetime, datetime]]:
        if self.is_public_holiday(day) or day in self.closing_days:
            return ()
        return [
            (
                datetime.combine(day, start, tzinfo=self.timezone).astimezone(UTC),
                datetime.combine(day, end, tzinfo=self.timezone).astimezone(UTC),
            )
            for start, end in self.opening_hours.slots.get(day.weekday(), ())
        ]

    def open_seconds(self, start: datetime, end: datetime) -> float:
        """Seconds between two moments that fall within opening hours."""
        if end <= start:
            return 0.0
        total = 0.0
        day = self.local_date(start)
        last = self.local_date(end)
        while day <= last:
            for opens, closes in self._slots(day):
                overlap = (min(end, closes) - max(start, opens)).total_seconds()
                if overlap > 0:
                    total += overlap
            day += timedelta(days=1)
        return total

    def add_open_seconds(self, start: datetime, seconds: float, horizon_days: int = 60) -> datetime:
        """The moment `seconds` of opening time after `start` (for "30 s during opening
        hours"). Looks at most `horizon_days` ahead; a calendar without opening hours falls
        back to plain time."""
        if not self.opening_hours.slots:
            return start + timedelta(seconds=seconds)
        left = seconds
        day = self.local_date(start)
        for _ in range(horizon_days):
            for opens, closes in self._slots(day):
                begin = max(start, opens)
                if closes <= begin:
                    continue
                room = (closes - begin).total_seconds()
                if left <= room:
                    return begin + timedelta(seconds=left)
                left -= room
            day += timedelta(days=1)
        return start + timedelta(seconds=seconds)
