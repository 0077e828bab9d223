"""Local stand-ins for the mail world, for the tests and the demo (never used in production).

- `resident_mail(...)`: a resident's mail as RFC 5322 bytes (optionally answering one of ours).
- `deliver_lmtp(host, port, raw, ...)`: hand a mail to our LMTP endpoint, as Postfix would;
  returns the server's (code, text) reply per recipient.
- `SmtpSink`: a real SMTP server (aiosmtpd) on loopback that records what our SMTP sender
  sends; optional STARTTLS (required when a certificate is given), login, implicit TLS, and
  refusals on demand (`refuse_next(code, text)`).

Signatures (all on 127.0.0.1, port 0 = a free port):

    resident_mail(sender: str, subject: str, text: str, *, to: str = "kcc@gemeente.example.nl",
                  in_reply_to: str | None = None, message_id: str | None = None,
                  name: str | None = None) -> bytes
    await deliver_lmtp(host: str, port: int, raw: bytes, *, sender: str = ...,
                       recipients: Sequence[str] = ("kcc@gemeente.example.nl",),
                       announce_size: bool = True) -> list[tuple[int, str]]
    sink = SmtpSink(cert: Path | None = None, key: Path | None = None,
                    login: tuple[str, str] | None = None, implicit_tls: bool = False)
    port = await sink.start(host="127.0.0.1", port=0); ...; await sink.stop()
    sink.messages: list[SinkMessage]  (mail_from, rcpt_tos, raw, message: EmailMessage, tls)
    await sink.wait_for(count: int, seconds: float = 10) -> list[SinkMessage]
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

DEFAULT_MAILBOX = "kcc@gemeente.example.nl"


def resident_mail(
    sender: str,
    subject: str,
    text: str,
    *,
    to: str = DEFAULT_MAILBOX,
    in_reply_to: str | None = None,
    message_id: str | None = None,
    name: str | None = None,
) -> bytes:
    mail = EmailMessage()
    mail["From"] = formataddr((name or "", sender))
    mail["To"] = to
    mail["Subject"] = subject
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@bewoner.example.nl>"
    if in_reply_to:
        mail["In-Reply-To"] = in_reply_to
        mail["References"] = in_reply_to
    mail.set_content(text)
    return mail.as_bytes(policy=policy.SMTP)


async def deliver_lmtp(
    host: str,
    port: int,
    raw: bytes,
    *,
    sender: str = "bewoner@example.nl",
    recipients: Sequence[str] = (DEFAULT_MAILBOX,),
    announce_size: bool = True,
) -> list[tuple[int, str]]:
    """One LMTP transaction (RFC 2033) as a mail server runs it; returns the reply for each
    recipient (after DATA an LMTP server answers once per recipient, which the standard
    library's `smtplib.LMTP` does not read). A refusal before DATA is every recipient's reply."""
    reader, writer = await asyncio.open_connection(host, port)

    async def reply() -> tuple[int, str]:
        lines = []
        while True:
            line = (await asyncio.wait_for(reader.readline(), 30)).decode("utf-8", "replace")
            if not line:
                raise ConnectionError("LMTP server closed the connection")
            lines.append(line[4:].rstrip())
            if line[3:4] != "-":
                return int(line[:3]), " ".join(lines)

    async def command(text: str) -> tuple[int, str]:
        writer.write(text.encode() + b"\r\n")
        await writer.drain()
        return await reply()

    try:
        await reply()  # greeting
        await command("LHLO sandbox.example.nl")
        size = f" SIZE={len(raw)}" if announce_size else ""
        answer = await command(f"MAIL FROM:<{sender}>{size}")
        if answer[0] >= 400:
            return [answer] * len(recipients)
        accepted = []
        results: dict[str, tuple[int, str]] = {}
        for recipient in recipients:
            answer = await command(f"RCPT TO:<{recipient}>")
            results[recipient] = answer
            if answer[0] < 400:
                accepted.append(recipient)
        if accepted:
            answer = await command("DATA")
            if answer[0] != 354:
                results.update({recipient: answer for recipient in accepted})
            else:
                body = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                if not body.endswith(b"\r\n"):
                    body += b"\r\n"
                body = b"\r\n".join(
                    b"." + line if line.startswith(b".") else line for line in body.split(b"\r\n")
                )
                writer.write(body + b".\r\n")
                await writer.drain()
                for recipient in accepted:
                    results[recipient] = await reply()
        with contextlib.suppress(Exception):
            await command("QUIT")
        return [results[recipient] for recipient in recipients]
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


@dataclass(frozen=True)
class SinkMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage
    tls: bool


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.sink.refusals:
            return self.sink.refusals.pop(0)
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        parsed = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(parsed, EmailMessage)
        self.sink.messages.append(
            SinkMessage(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                raw=raw,
                message=parsed,
                tls=_encrypted(server),
            )
        )
        self.sink.arrived.set()
        return "250 2.0.0 OK"


def _encrypted(server: SMTP) -> bool:
    transport = server.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


class SmtpSink:
    def __init__(
        self,
        cert: Path | None = None,
        key: Path | None = None,
        login: tuple[str, str] | None = None,
        implicit_tls: bool = False,
    ) -> None:
        self.context: ssl.SSLContext | None = None
        if cert and key:
            self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.context.load_cert_chain(str(cert), str(key))
        self.login = login
        self.implicit_tls = implicit_tls
        self.messages: list[SinkMessage] = []
        self.refusals: list[str] = []
        self.arrived = asyncio.Event()
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    def refuse_next(self, code: int, text: str = "refused") -> None:
        """The next mail gets this answer instead of 250 (e.g. 550 or 451)."""
        self.refusals.append(f"{code} {text}")

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if self.login and isinstance(data, LoginPassword):
            user, password = self.login
            if data.login.decode() == user and data.password.decode() == password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def _protocol(self) -> SMTP:
        starttls = self.context if not self.implicit_tls else None
        return SMTP(
            _SinkHandler(self),
            hostname="sink.example.nl",
            tls_context=starttls,
            require_starttls=starttls is not None,
            authenticator=self._authenticate if self.login else None,
            auth_required=self.login is not None,
            auth_require_tls=True,
        )

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            self._protocol,
            host=host,
            port=port,
            ssl=self.context if self.implicit_tls else None,
        )
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def wait_for(self, count: int, seconds: float = 10) -> list[SinkMessage]:
        async def arrived() -> None:
            while len(self.messages) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(arrived(), seconds)
        return self.messages
