"""Service settings: command-line flags win over `KCC_*` environment variables over defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from contacts.database import sqlite_url

REPO_CONFIG = Path(__file__).resolve().parent.parent / "config"
SECRET_PREFIXES = ("TWILIO_", "TELEGRAM_", "KCC_")


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    config_dir: Path = REPO_CONFIG
    database_url: str = ""  # empty: SQLite file in the data directory
    redis_url: str = ""  # empty: the embedded in-process queue backend
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""
    max_request_bytes: int = 1024 * 1024
    max_attachment_bytes: int = 20 * 1024 * 1024
    extra: dict[str, str] = field(default_factory=dict)
    # Channel credentials under the providers' usual names (TWILIO_*, TELEGRAM_*, KCC_IMAP_*,
    # KCC_SMTP_*...). Read from the environment only, never from files in the repo; tests pass
    # their own.
    secrets: dict[str, str] = field(default_factory=dict)

    def secret(self, name: str) -> str:
        """A credential, or "" when it is not configured."""
        return self.secrets.get(name, "").strip()

    @property
    def effective_database_url(self) -> str:
        return self.database_url or sqlite_url(self.data_dir)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        values: dict[str, object] = {
            "data_dir": Path(env.get("KCC_DATA_DIR", "data")),
            "config_dir": Path(env.get("KCC_CONFIG_DIR", str(REPO_CONFIG))),
            "database_url": env.get("KCC_DATABASE_URL", ""),
            "redis_url": env.get("KCC_REDIS_URL", ""),
            "host": env.get("KCC_HOST", "127.0.0.1"),
            "port": int(env.get("KCC_PORT", "8080")),
            "public_url": env.get("KCC_PUBLIC_URL", ""),
        }
        values["secrets"] = {
            key: value for key, value in env.items() if key.startswith(SECRET_PREFIXES)
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
