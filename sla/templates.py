"""Texts to residents from `config/sla_templates.toml`: plain Dutch first, then the resident's
own language where we know it and have a text."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

DAY_NAMES = {
    "nl": ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
MONTH_NAMES = {
    "nl": (
        "januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus",
        "september", "oktober", "november", "december",
    ),
    "en": (
        "January", "February", "March", "April", "May", "June", "July", "August",
        "September", "October", "November", "December",
    ),
}  # fmt: skip


def written_date(day: date, language: str = "nl") -> str:
    """'maandag 4 januari 2027' (Dutch unless we have the language's names)."""
    lang = language if language in DAY_NAMES else "nl"
    return (
        f"{DAY_NAMES[lang][day.weekday()]} {day.day} {MONTH_NAMES[lang][day.month - 1]} {day.year}"
    )


class _Keep(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@dataclass(frozen=True)
class Templates:
    texts: Mapping[str, Mapping[str, Mapping[str, str]]]  # purpose -> kind -> language -> text

    @classmethod
    def load(cls, config_dir: Path) -> Templates:
        raw = tomllib.loads((config_dir / "sla_templates.toml").read_text(encoding="utf-8"))
        for purpose, kinds in raw.items():
            if "nl" not in kinds.get("default", {}):
                raise ValueError(f"sla_templates.toml: {purpose}.default needs a Dutch text")
        return cls(raw)

    def render(
        self,
        purpose: str,
        kind: str,
        language: str,
        values: Mapping[str, str],
        dates: Mapping[str, date],
    ) -> str:
        """The Dutch text, followed by the resident's language when we have it. `dates` are
        written out per language."""
        kinds = self.texts[purpose]
        chosen = kinds.get(kind) or kinds["default"]
        parts = [self._fill(chosen["nl"], "nl", values, dates)]
        if language != "nl":
            other = chosen.get(language) or kinds["default"].get(language)
            if other:
                parts.append(self._fill(other, language, values, dates))
        return "\n\n---\n\n".join(parts)

    @staticmethod
    def _fill(
        text: str, language: str, values: Mapping[str, str], dates: Mapping[str, date]
    ) -> str:
        filled = _Keep(values)
        filled.update({name: written_date(day, language) for name, day in dates.items()})
        return text.strip().format_map(filled)
