"""What the mail room tells about a letter besides its scan: sender, consent, date received.

The same fields arrive as multipart form fields on the API and as a sidecar file (`.json` or
`.toml`) next to a PDF in the drop folder. Every field is optional.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from contacts.inbound import InboundError, normalise_email, normalise_phone

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
FIELDS = (
    "sender_name",
    "postal_address",
    "email",
    "email_consent",
    "phone",
    "received_on",
    "scan_id",
    "reference",
)
_POSTCODE = re.compile(r"\b(\d{4})\s*([A-Za-z]{2})\b")
_REFERENCE = re.compile(r"\bKCC-(\d{4})-(\d{6})\b")
_YES = {"1", "true", "yes", "ja", "j", "y", "on"}
_NO = {"0", "false", "no", "nee", "n", "off", ""}


@dataclass(frozen=True)
class LetterMetadata:
    sender_name: str | None = None
    postal_address: str | None = None
    email: str | None = None
    email_consent: bool | None = None  # None: the letter does not say
    phone: str | None = None
    received_on: date | datetime | None = None
    scan_id: str | None = None
    reference: str | None = None


def parse_metadata(values: Mapping[str, Any]) -> LetterMetadata:
    """Validate and normalise; raises `InboundError` with a message safe to show (no values)."""
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise InboundError(f"onbekende metadatavelden: {', '.join(unknown)[:200]}")

    def text(name: str, limit: int) -> str | None:
        value = values.get(name)
        if value is None:
            return None
        value = " ".join(str(value).split())
        if len(value) > limit:
            raise InboundError(f"metadataveld {name} is te lang (max {limit} tekens)")
        return value or None

    reference = text("reference", 32)
    if reference is not None and not _REFERENCE.fullmatch(reference.upper()):
        raise InboundError("metadataveld reference is geen kenmerk als KCC-2026-000123")
    scan_id = text("scan_id", 150)
    return LetterMetadata(
        sender_name=text("sender_name", 200),
        postal_address=normalise_address(values.get("postal_address")),
        email=normalise_email(text("email", 320)),
        email_consent=_consent(values.get("email_consent")),
        phone=normalise_phone(text("phone", 40)),
        received_on=_received_on(values.get("received_on")),
        scan_id=scan_id,
        reference=reference.upper() if reference else None,
    )


def parse_sidecar(name: str, data: bytes) -> LetterMetadata:
    """A sidecar file's bytes: JSON object or TOML table with the same fields as the API."""
    try:
        text = data.decode("utf-8-sig")
        values = json.loads(text) if name.lower().endswith(".json") else tomllib.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError):
        raise InboundError("metadatabestand is geen geldige JSON/TOML") from None
    if not isinstance(values, dict):
        raise InboundError("metadatabestand moet een object met velden zijn")
    return parse_metadata(values)


def normalise_address(value: object) -> str | None:
    """One line, parts separated by ", " (a newline or comma in the input starts a part),
    spaces collapsed and the postcode written as "9712 AB"."""
    if value is None:
        return None
    parts = [" ".join(p.split()) for p in re.split(r"[\n\r,;]+", str(value))]
    line = ", ".join(p for p in parts if p)
    line = _POSTCODE.sub(lambda m: f"{m.group(1)} {m.group(2).upper()}", line)
    if len(line) > 500:
        raise InboundError("metadataveld postal_address is te lang (max 500 tekens)")
    return line or None


def address_lines(address: str | None) -> list[str]:
    return [part.strip() for part in (address or "").split(",") if part.strip()]


def references_in(text: str) -> list[str]:
    """Our references mentioned in a letter, in order, each once."""
    seen: list[str] = []
    for match in _REFERENCE.finditer(text.upper()):
        if match.group(0) not in seen:
            seen.append(match.group(0))
    return seen


def received_at(meta: LetterMetadata, now: datetime, hour: int, max_age_days: int) -> datetime:
    """When the letter was received: its date at `hour` in Europe/Amsterdam (or the moment of
    intake if that hour is still to come today), defaulting to now. The date of receipt, not
    of scanning, starts the answer term."""
    value = meta.received_on
    if value is None:
        return now
    today = now.astimezone(AMSTERDAM).date()
    if isinstance(value, datetime):
        day = value.astimezone(AMSTERDAM).date()
        # A time given by the mail room may run a little ahead of ours, not more.
        if value > now + timedelta(minutes=5):
            raise InboundError("de ontvangstdatum ligt in de toekomst")
        moment = value
    else:
        day = value
        moment = datetime.combine(day, time(hour), AMSTERDAM)
    if day > today:
        raise InboundError("de ontvangstdatum ligt in de toekomst")
    if day < today - timedelta(days=max_age_days):
        raise InboundError(f"de ontvangstdatum is meer dan {max_age_days} dagen geleden")
    return min(moment, now)


def _consent(value: object) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in _YES:
        return True
    if word in _NO:
        return False
    raise InboundError("metadataveld email_consent moet ja of nee zijn")


def _received_on(value: object) -> date | datetime | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        return value
    else:
        raw = str(value).strip()
        try:
            if len(raw) == 10:
                return date.fromisoformat(raw)
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise InboundError(
                "metadataveld received_on moet een datum zijn als 2026-11-23"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=AMSTERDAM)  # the mail room's clock is Dutch time
    return moment
