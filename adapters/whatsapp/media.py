"""Downloading the media of an inbound WhatsApp message from Twilio.

Twilio's `MediaUrl`s need the account's credentials (HTTP Basic, SID:token) and redirect to a
signed storage URL; aiohttp drops the credentials when the redirect leaves Twilio's origin. The
credentials go only to Twilio's hosts (or the configured API base URL), never to a host a message
names. A medium that is refused, too large or cannot be fetched is left out with a reason the
agent sees: the resident's message itself always becomes a contact.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import mimetypes
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from adapters.twilio_common import TWILIO_DOMAIN, TwilioAccount, WhatsAppConfig
from contacts.inbound import InboundAttachment

log = logging.getLogger(__name__)

DOWNLOAD_ATTEMPTS = 2
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)


@dataclass(frozen=True)
class Medium:
    index: int
    url: str
    content_type: str

    @property
    def media_sid(self) -> str:
        """The medium's own id (ME...), the last segment of its URL; no personal data."""
        return urlsplit(self.url).path.rstrip("/").rsplit("/", 1)[-1][:64]

    @property
    def filename(self) -> str:
        extension = mimetypes.guess_extension(self.content_type.split(";")[0].strip()) or ""
        return f"whatsapp-{self.media_sid or self.index}{extension}"


@dataclass(frozen=True)
class Skipped:
    medium: Medium
    why: str  # refused_type | too_large | untrusted_host | unavailable
    text: str  # for the agent, Dutch


def describe(content_type: str) -> str:
    kind = content_type.split("/", 1)[0]
    return {"image": "afbeelding", "audio": "geluidsfragment", "video": "video"}.get(
        kind, "bestand"
    )


def trusted(url: str, account: TwilioAccount) -> bool:
    parts = urlsplit(url)
    if account.api_base_url:
        base = urlsplit(account.api_base_url)
        if (parts.scheme, parts.netloc) == (base.scheme, base.netloc):
            return True
    return parts.scheme == "https" and (parts.hostname or "").endswith(TWILIO_DOMAIN)


class TooLarge(Exception):
    pass


async def _fetch(
    session: aiohttp.ClientSession, url: str, limit: int, authorization: str
) -> tuple[bytes, str]:
    # aiohttp drops the Authorization header when a redirect leaves the origin.
    headers = {"Authorization": authorization}
    async with session.get(url, headers=headers, allow_redirects=True) as response:
        if response.status >= 400:
            raise aiohttp.ClientResponseError(
                response.request_info, (), status=response.status, message="media download"
            )
        if response.content_length is not None and response.content_length > limit:
            raise TooLarge
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise TooLarge
            chunks.append(chunk)
        return b"".join(chunks), response.headers.get("Content-Type", "")


async def download_all(
    media: list[Medium], account: TwilioAccount, config: WhatsAppConfig, max_bytes: int
) -> tuple[list[InboundAttachment], list[Skipped]]:
    """Fetch what may be kept; `max_bytes`: the smaller of the channel's and the store's limit."""
    kept: list[InboundAttachment] = []
    skipped: list[Skipped] = []
    limit_mb = f"{max_bytes / (1024 * 1024):.0f} MB"
    credentials = f"{account.account_sid}:{account.auth_token}".encode()
    auth = "Basic " + base64.b64encode(credentials).decode("ascii")
    async with aiohttp.ClientSession(timeout=DOWNLOAD_TIMEOUT) as session:
        for medium in media:
            what = f"{describe(medium.content_type)} ({medium.content_type})"
            if not config.allows(medium.content_type):
                skipped.append(
                    Skipped(
                        medium,
                        "refused_type",
                        f"{what} niet overgenomen: dit type wordt niet aangenomen",
                    )
                )
                continue
            if not trusted(medium.url, account):
                skipped.append(
                    Skipped(medium, "untrusted_host", f"{what} niet opgehaald: onbekende bron")
                )
                continue
            for attempt in range(DOWNLOAD_ATTEMPTS):
                try:
                    data, _ = await _fetch(session, medium.url, max_bytes, auth)
                except TooLarge:
                    skipped.append(
                        Skipped(
                            medium, "too_large", f"{what} niet overgenomen: groter dan {limit_mb}"
                        )
                    )
                    break
                except (aiohttp.ClientError, TimeoutError) as error:
                    if attempt + 1 < DOWNLOAD_ATTEMPTS:
                        await asyncio.sleep(0.5)
                        continue
                    log.warning(
                        "whatsapp: medium %s could not be fetched: %s",
                        medium.media_sid,
                        type(error).__name__,
                    )
                    skipped.append(
                        Skipped(
                            medium,
                            "unavailable",
                            f"{what} kon niet worden opgehaald bij Twilio (media-id "
                            f"{medium.media_sid}); vraag de inwoner het opnieuw te sturen",
                        )
                    )
                    break
                kept.append(InboundAttachment(medium.filename, medium.content_type, data))
                break
    return kept, skipped
