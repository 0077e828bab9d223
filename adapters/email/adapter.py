"""The e-mail channel: IMAP poller and/or LMTP endpoint in, SMTP sender out, each on only when
configured (see `settings.py`). Web-form contacts are answered by e-mail too: their reply
channel is `email`, so this sender serves them."""

from __future__ import annotations

import logging
from email.utils import parseaddr

from adapters.channel import ChannelAdapter
from adapters.email.imap import ImapPoller
from adapters.email.lmtp import LmtpServer
from adapters.email.mailbox_state import MailboxStateStore
from adapters.email.receive import MailReceiver
from adapters.email.settings import EmailSettings
from adapters.email.smtp import SmtpSender
from kcc.services import Services

log = logging.getLogger(__name__)


class EmailAdapter(ChannelAdapter):
    channel = "email"

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.settings = EmailSettings.from_settings(services.settings)
        own = parseaddr(self.settings.smtp.sender)[1]
        self.receiver = MailReceiver(
            services, self.settings.limits, frozenset({own} if own else set())
        )
        self.poller: ImapPoller | None = None
        self.lmtp: LmtpServer | None = None
        self.sender: SmtpSender | None = None

    async def start(self) -> None:
        settings = self.settings
        if settings.smtp.enabled:
            self.sender = SmtpSender(settings.smtp, self.services.store, self.services.clock)
            self.services.outbox.register(self.channel, self.sender)
        if settings.lmtp.enabled:
            self.lmtp = LmtpServer(
                self.receiver,
                settings.lmtp.host,
                settings.lmtp.port or 0,
                settings.limits.max_message_bytes,
            )
            await self.lmtp.start()
        if settings.imap.enabled:
            self.poller = ImapPoller(
                settings.imap,
                self.receiver,
                MailboxStateStore(self.services.engine),
                self.services.clock,
            )
            self.poller.start()
        log.info(
            "e-mail channel: imap %s, lmtp %s, smtp %s",
            "on" if self.poller else "off",
            "on" if self.lmtp else "off",
            "on" if self.sender else "off",
        )

    async def stop(self) -> None:
        if self.poller is not None:
            await self.poller.stop()
            self.poller = None
        if self.lmtp is not None:
            await self.lmtp.stop()
            self.lmtp = None
        if self.sender is not None:
            self.services.outbox.unregister(self.channel)
            self.sender = None
