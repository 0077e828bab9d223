"""The scanned-post channel's settings, from `config/post.toml`."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class IntakeConfig:
    max_pdf_bytes: int = 20_000_000
    max_pages: int = 60
    min_text_chars: int = 20
    ocr_language: str = "nld"
    ocr_dpi: int = 300
    ocr_max_pages: int = 20
    ocr_page_timeout_seconds: float = 90.0
    max_age_days: int = 120
    received_hour: int = 12
    empty_text: str = "Brief zonder leesbare tekst, zie bijlage"


@dataclass(frozen=True)
class LetterConfig:
    city: str = "Groningen"
    sender_block: tuple[str, ...] = ("Gemeente Groningen",)
    return_address: str = ""
    salutation: str = "Beste {name},"
    salutation_unknown: str = "Beste inwoner,"
    closing: tuple[str, ...] = ("Met vriendelijke groet,",)
    footer: str = ""
    subject_unknown: str = "Uw {what} van {date}"
    font: str = ""
    font_bold: str = ""
    email_copy_note: str = ""


@dataclass(frozen=True)
class PostConfig:
    intake: IntakeConfig = field(default_factory=IntakeConfig)
    letter: LetterConfig = field(default_factory=LetterConfig)
    poll_seconds: float = 5.0

    @classmethod
    def load(cls, config_dir: Path) -> PostConfig:
        path = config_dir / "post.toml"
        if not path.exists():
            return cls()
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        letter = dict(data.get("letter", {}))
        for name in ("sender_block", "closing"):
            if name in letter:
                letter[name] = tuple(str(line) for line in letter[name])
        return cls(
            intake=IntakeConfig(**data.get("intake", {})),
            letter=LetterConfig(**letter),
            poll_seconds=float(data.get("folder", {}).get("poll_seconds", 5.0)),
        )
