"""The Telegram channel's policy from `config/telegram.toml`: limits, texts for residents and the
notes that describe non-text messages in a contact."""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from router.config import ConfigError

DEFAULT_API_BASE_URL = "https://api.telegram.org"


@dataclass(frozen=True)
class TelegramConfig:
    max_update_bytes: int = 256 * 1024
    max_file_bytes: int = 10 * 1024 * 1024
    allowed_file_types: tuple[str, ...] = ("image/*", "application/pdf")
    welcome: str = "Welkom bij de gemeente. / Welcome to the municipality."
    file_not_stored: str = ""
    notes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, config_dir: Path) -> TelegramConfig:
        path = config_dir / "telegram.toml"
        if not path.exists():
            return cls()
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
            limits = raw.get("limits", {})
            texts = raw.get("texts", {})
            config = cls(
                max_update_bytes=int(limits.get("max_update_bytes", cls.max_update_bytes)),
                max_file_bytes=int(limits.get("max_file_bytes", cls.max_file_bytes)),
                allowed_file_types=tuple(
                    str(t).lower() for t in limits.get("allowed_file_types", cls.allowed_file_types)
                ),
                welcome=str(texts.get("welcome", cls.welcome)).strip(),
                file_not_stored=str(texts.get("file_not_stored", "")).strip(),
                notes={str(k): str(v) for k, v in raw.get("notes", {}).items()},
            )
        except (tomllib.TOMLDecodeError, TypeError, ValueError, AttributeError) as error:
            raise ConfigError(f"{path}: {error}") from error
        if config.max_update_bytes <= 0 or config.max_file_bytes <= 0:
            raise ConfigError(f"{path}: limits must be positive")
        return config

    def allows(self, content_type: str) -> bool:
        kind = content_type.split(";")[0].strip().lower()
        return any(fnmatch.fnmatchcase(kind, pattern) for pattern in self.allowed_file_types)

    def note(self, which: str, **values: object) -> str:
        """The configured note, filled in; a missing note falls back to its name."""
        template = self.notes.get(which, f"[{which}]")
        try:
            return template.format(**values)
        except (KeyError, IndexError, ValueError):
            return template


def api_urls(base: str) -> tuple[str, str]:
    """The Bot API's method and file base URLs (python-telegram-bot appends the token) for a
    server root such as https://api.telegram.org or a local Bot API server."""
    root = (base or DEFAULT_API_BASE_URL).rstrip("/")
    return f"{root}/bot", f"{root}/file/bot"
