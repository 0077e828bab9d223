"""E-mail channel settings: servers and credentials from the environment (`KCC_IMAP_*`,
`KCC_SMTP_*`, `KCC_LMTP_*` through `Settings.secrets`), limits and behaviour from
`config/email.toml`. A part without its host is off: no IMAP host, no poller; no SMTP host, no
sender (replies wait in the outbox); no LMTP port, no endpoint."""

from __future__ import annotations

import ssl
import tomllib
from dataclasses import dataclass, field, replace
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from adapters.email.parse import MailLimits
from kcc.settings import REPO_CONFIG, Settings

TLS_MODES = ("tls", "starttls", "none")


@dataclass(frozen=True)
class ImapSettings:
    host: str = ""
    port: int = 0
    user: str = ""
    password: str = ""
    mailbox: str = "INBOX"
    tls: str = "tls"  # tls (implicit, 993) | starttls (143) | none (loopback tests only)
    ca_file: str = ""  # extra trusted certificates (a municipality's own CA, a test's)
    poll_seconds: float = 60.0
    processed_folder: str = "Verwerkt"
    processed_keyword: str = "KccVerwerkt"
    batch: int = 50
    lease_seconds: float = 120.0

    @property
    def enabled(self) -> bool:
        return bool(self.host)

    @property
    def account(self) -> str:
        """The mailbox's identity for its checkpoint and lease (no password)."""
        return f"{self.user}@{self.host}:{self.port}/{self.mailbox}"[:200]


@dataclass(frozen=True)
class SmtpSettings:
    host: str = ""
    port: int = 0
    user: str = ""
    password: str = ""
    sender: str = ""  # KCC_SMTP_FROM, e.g. "Gemeente Groningen <kcc@groningen.nl>"
    tls: str = "starttls"  # starttls (when offered) | tls (implicit, 465) | none
    ca_file: str = ""
    timeout: float = 30.0
    html_alternative: bool = True

    @property
    def enabled(self) -> bool:
        return bool(self.host and self.sender)

    @property
    def domain(self) -> str:
        """Our Message-IDs are of the sender's domain."""
        address = parseaddr(self.sender)[1]
        return address.rpartition("@")[2] or "kcc.invalid"


@dataclass(frozen=True)
class LmtpSettings:
    host: str = "127.0.0.1"
    port: int | None = None  # None: off; 0: a free port (tests)

    @property
    def enabled(self) -> bool:
        return self.port is not None


@dataclass(frozen=True)
class EmailSettings:
    imap: ImapSettings = field(default_factory=ImapSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    lmtp: LmtpSettings = field(default_factory=LmtpSettings)
    limits: MailLimits = field(default_factory=MailLimits)

    @classmethod
    def from_settings(cls, settings: Settings) -> EmailSettings:
        config = _load(settings.config_dir)
        env = settings.secret
        limits_config = config.get("limits", {})
        limits = MailLimits(
            max_message_bytes=min(
                int(limits_config.get("max_message_bytes", MailLimits.max_message_bytes)),
                settings.max_attachment_bytes,
            ),
            max_attachment_bytes=min(
                int(limits_config.get("max_attachment_bytes", MailLimits.max_attachment_bytes)),
                settings.max_attachment_bytes,
            ),
            max_attachments=int(limits_config.get("max_attachments", MailLimits.max_attachments)),
            min_inline_image_bytes=int(
                limits_config.get("min_inline_image_bytes", MailLimits.min_inline_image_bytes)
            ),
        )
        imap_config = config.get("imap", {})
        imap_tls = _tls(env("KCC_IMAP_TLS") or "tls", "KCC_IMAP_TLS")
        imap = ImapSettings(
            host=env("KCC_IMAP_HOST"),
            port=int(env("KCC_IMAP_PORT") or (993 if imap_tls == "tls" else 143)),
            user=env("KCC_IMAP_USER"),
            password=env("KCC_IMAP_PASSWORD"),
            mailbox=env("KCC_IMAP_MAILBOX") or "INBOX",
            tls=imap_tls,
            ca_file=env("KCC_IMAP_CA_FILE"),
            poll_seconds=float(env("KCC_IMAP_POLL_SECONDS") or imap_config.get("poll_seconds", 60)),
            processed_folder=str(imap_config.get("processed_folder", "Verwerkt")),
            processed_keyword=str(imap_config.get("processed_keyword", "KccVerwerkt")),
            batch=int(imap_config.get("batch", 50)),
            lease_seconds=float(imap_config.get("lease_seconds", 120)),
        )
        if "KCC_IMAP_PROCESSED_FOLDER" in settings.secrets:
            imap = replace(imap, processed_folder=settings.secrets["KCC_IMAP_PROCESSED_FOLDER"])
        smtp_config = config.get("smtp", {})
        smtp_tls = _tls(env("KCC_SMTP_TLS") or "starttls", "KCC_SMTP_TLS")
        smtp = SmtpSettings(
            host=env("KCC_SMTP_HOST"),
            port=int(env("KCC_SMTP_PORT") or (465 if smtp_tls == "tls" else 587)),
            user=env("KCC_SMTP_USER"),
            password=env("KCC_SMTP_PASSWORD"),
            sender=env("KCC_SMTP_FROM"),
            tls=smtp_tls,
            ca_file=env("KCC_SMTP_CA_FILE"),
            timeout=float(smtp_config.get("timeout_seconds", 30)),
            html_alternative=bool(smtp_config.get("html_alternative", True)),
        )
        lmtp_port = env("KCC_LMTP_PORT")
        lmtp = LmtpSettings(
            host=env("KCC_LMTP_HOST") or "127.0.0.1",
            port=int(lmtp_port) if lmtp_port else None,
        )
        return cls(imap=imap, smtp=smtp, lmtp=lmtp, limits=limits)


def tls_context(ca_file: str) -> ssl.SSLContext:
    """Certificates are always verified; `ca_file` adds trusted roots (never turns checks off)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def _load(config_dir: Path) -> dict[str, Any]:
    path = config_dir / "email.toml"
    if not path.exists():
        path = REPO_CONFIG / "email.toml"
    if not path.exists():
        return {}
    return tomllib.loads(path.read_text(encoding="utf-8"))


def _tls(value: str, name: str) -> str:
    value = value.strip().lower()
    if value not in TLS_MODES:
        raise ValueError(f"{name} must be one of {', '.join(TLS_MODES)}")
    return value
