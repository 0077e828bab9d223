"""An LMTP endpoint (aiosmtpd) for the municipality's own mail server (Postfix, Exim) to hand
mail to us directly, instead of us polling a mailbox.

The answer after DATA is 250 only once `MailReceiver.receive` returned, i.e. the contact (or the
quarantine entry, or the bounce record) is durable; when the database cannot be reached the
answer is 451 and the mail server keeps the mail and tries again (intake is idempotent). Mail
above the size limit is refused with 552 (announced in LHLO as SIZE). LMTP answers once per
recipient; every recipient gets the same answer, since all of them are the same mailbox here.
"""

from __future__ import annotations

import asyncio
import logging

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from adapters.email.receive import MailReceiver

log = logging.getLogger(__name__)
# aiosmtpd logs envelope addresses (and at debug, every line) under "mail.log": personal data.
logging.getLogger("mail.log").setLevel(logging.WARNING)


class _Handler:
    def __init__(self, receiver: MailReceiver) -> None:
        self.receiver = receiver

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        recipients = max(1, len(envelope.rcpt_tos))
        try:
            received = await self.receiver.receive(raw)
        except Exception as error:  # the database or disk is away: the sender must retry
            log.warning("LMTP delivery deferred: %s", type(error).__name__)
            return _each(recipients, "451 4.3.0 Tijdelijke storing, probeer het later opnieuw")
        return _each(recipients, f"250 2.0.0 Ontvangen ({received.outcome})")


def _each(recipients: int, reply: str) -> str:
    return "\r\n".join([reply] * recipients)


class LmtpServer:
    def __init__(
        self, receiver: MailReceiver, host: str, port: int, max_message_bytes: int
    ) -> None:
        self.receiver = receiver
        self.host = host
        self.port = port
        self.max_message_bytes = max_message_bytes
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        """Listen; returns the port (useful when 0 asked for a free one)."""
        handler = _Handler(self.receiver)
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: LMTP(
                handler,
                data_size_limit=self.max_message_bytes,
                hostname="kcc",
                ident="KCC LMTP",
            ),
            host=self.host,
            port=self.port,
        )
        socket = self.server.sockets[0]
        self.port = int(socket.getsockname()[1])
        log.info("LMTP endpoint listening on %s:%d", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
