"""Inbound e-mail from a real mailbox over IMAP (aioimaplib), as municipalities' shared
mailboxes work.

A round: select the mailbox, find the mails after the checkpoint that are not yet processed,
and for each (oldest first): fetch it (only its headers when it is above the size limit), hand
it to `MailReceiver` (which returns once the outcome is durable), THEN mark it processed (moved
to the processed folder, or the processed keyword set) and move the checkpoint. A crash between
the intake and the marking leaves the mail unmarked; the next round fetches it again and the
intake answers "duplicate" on its Message-ID: nothing lost, nothing stored twice. A failure to
store (database away) stops the round before that mail; it is tried again next round.

IDLE, where the server has it, only wakes the poller early; a poll every `poll_seconds` runs
regardless, so a missed notification costs at most one interval. One process polls a mailbox
at a time (a lease in the database, see `mailbox_state.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from datetime import datetime

import aioimaplib

from adapters.email.mailbox_state import Checkpoint, MailboxStateStore
from adapters.email.receive import MailReceiver
from adapters.email.settings import ImapSettings, tls_context
from kcc.clock import Clock

log = logging.getLogger(__name__)
# aioimaplib logs whole server responses (mail content) at debug and some at info: personal data.
logging.getLogger("aioimaplib.aioimaplib").setLevel(logging.WARNING)

LOOPBACK = ("127.0.0.1", "::1", "localhost")
COMMAND_TIMEOUT = 120.0
_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
_INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')


class ImapError(RuntimeError):
    """The server refused something we need (login, select, STARTTLS); no personal data."""


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ok(response: aioimaplib.Response, what: str) -> aioimaplib.Response:
    if response.result != "OK":
        raise ImapError(f"IMAP {what} refused ({response.result})")
    return response


class ImapConnection:
    """One logged-in connection with the mailbox selected."""

    def __init__(self, settings: ImapSettings) -> None:
        self.settings = settings
        self.client: aioimaplib.IMAP4 | None = None
        self.uidvalidity = 0
        # Set when the server drops the connection (a restart, a kick): reconnect at once.
        self.lost = asyncio.Event()

    @property
    def capabilities(self) -> set[str]:
        return set(self.client.protocol.capabilities) if self.client else set()

    async def open(self) -> None:
        settings = self.settings
        if settings.tls == "none" and settings.host not in LOOPBACK:
            raise ImapError("KCC_IMAP_TLS=none is only allowed on loopback")
        client: aioimaplib.IMAP4
        if settings.tls == "tls":
            client = aioimaplib.IMAP4_SSL(
                settings.host,
                settings.port,
                timeout=COMMAND_TIMEOUT,
                ssl_context=tls_context(settings.ca_file),
            )
            client.protocol.conn_lost_cb = self._connection_lost
        else:
            client = aioimaplib.IMAP4(
                settings.host,
                settings.port,
                timeout=COMMAND_TIMEOUT,
                conn_lost_cb=self._connection_lost,
            )
        self.client = client
        await client.wait_hello_from_server()
        if settings.tls == "starttls":
            await self._starttls(client)
        _ok(await client.login(settings.user, settings.password), "login")
        await client.protocol.capability()  # the list may grow after login
        if settings.processed_folder:
            response = await client.create(_quote(settings.processed_folder))
            if response.result != "OK" and b"ALREADYEXISTS" not in b" ".join(
                bytes(line) for line in response.lines
            ):
                log.info("IMAP processed folder not created (%s)", response.result)
        await self.select()

    async def select(self) -> None:
        """(Re)select the mailbox: a fresh view of it and its UIDVALIDITY."""
        selected = _ok(await self._client().select(_quote(self.settings.mailbox)), "select")
        found = _UIDVALIDITY.search(b" ".join(bytes(line) for line in selected.lines))
        self.uidvalidity = int(found.group(1)) if found else 0

    def _connection_lost(self, error: Exception | None) -> None:
        self.lost.set()

    async def _starttls(self, client: aioimaplib.IMAP4) -> None:
        """aioimaplib has no STARTTLS: send the command, then upgrade the transport."""
        protocol = client.protocol
        if "STARTTLS" not in protocol.capabilities:
            raise ImapError("the IMAP server offers no STARTTLS")
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        _ok(await asyncio.wait_for(protocol.execute(command), COMMAND_TIMEOUT), "STARTTLS")
        loop = asyncio.get_running_loop()
        transport = await loop.start_tls(
            protocol.transport,
            protocol,
            tls_context(self.settings.ca_file),
            server_hostname=self.settings.host,
        )
        protocol.transport = transport
        await protocol.capability()  # capabilities from before TLS must not be trusted

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            if client.has_pending_idle():
                client.idle_done()
            await asyncio.wait_for(client.logout(), 5)
        with contextlib.suppress(Exception):
            transport = client.protocol.transport
            if transport is not None:
                transport.close()

    def _client(self) -> aioimaplib.IMAP4:
        if self.client is None:
            raise ImapError("not connected")
        return self.client

    async def unprocessed(self, after_uid: int) -> list[int]:
        criteria = [f"UID {after_uid + 1}:*", "UNDELETED"]
        if not self.settings.processed_folder:
            criteria.append(f"UNKEYWORD {self.settings.processed_keyword}")
        response = _ok(await self._client().uid_search(*criteria, charset=None), "search")
        uids: list[int] = []
        for line in response.lines[:-1]:
            text = bytes(line).decode("ascii", "replace")
            uids.extend(int(word) for word in text.split() if word.isdigit())
        # "n:*" also matches the highest UID when it is below n: keep only what is new.
        return sorted(uid for uid in set(uids) if uid > after_uid)

    async def meta(self, uid: int) -> tuple[int, datetime | None] | None:
        """(size, INTERNALDATE) of a mail, or None when it is gone."""
        response = _ok(
            await self._client().uid("fetch", str(uid), "(UID RFC822.SIZE INTERNALDATE)"),
            "fetch",
        )
        joined = b" ".join(bytes(line) for line in response.lines)
        size = _SIZE.search(joined)
        if size is None:
            return None
        date = _INTERNALDATE.search(joined)
        internal = None
        if date:
            with contextlib.suppress(ValueError):
                internal = datetime.strptime(date.group(1).decode().strip(), "%d-%b-%Y %H:%M:%S %z")
        return int(size.group(1)), internal

    async def fetch(self, uid: int, headers_only: bool = False) -> bytes | None:
        part = "BODY.PEEK[HEADER]" if headers_only else "BODY.PEEK[]"
        response = _ok(await self._client().uid("fetch", str(uid), f"(UID {part})"), "fetch")
        for line in response.lines:
            if isinstance(line, bytearray):
                return bytes(line)
        return None

    async def mark_processed(self, uid: int) -> bool:
        client = self._client()
        settings = self.settings
        if not settings.processed_folder:
            response = await client.uid(
                "store", str(uid), "+FLAGS.SILENT", f"({settings.processed_keyword} \\Seen)"
            )
            return response.result == "OK"
        folder = _quote(settings.processed_folder)
        if "MOVE" in self.capabilities:
            return (await client.uid("move", str(uid), folder)).result == "OK"
        if (await client.uid("copy", str(uid), folder)).result != "OK":
            return False
        await client.uid("store", str(uid), "+FLAGS.SILENT", "(\\Deleted)")
        if "UIDPLUS" in self.capabilities:
            await client.uid("expunge", str(uid))
        else:
            await client.expunge()
        return True

    async def wait_for_change(self, seconds: float, stop: asyncio.Event) -> None:
        """Return when the server announces a change (IDLE), `stop` is set or `seconds` passed."""
        client = self._client()
        if "IDLE" not in self.capabilities:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds)
            return
        queue = client.protocol.idle_queue
        while not queue.empty():  # notifications of an earlier IDLE
            queue.get_nowait()
        idle = await client.idle_start(timeout=seconds)
        push = asyncio.ensure_future(client.wait_server_push(seconds + 5))
        stopped = asyncio.ensure_future(stop.wait())
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            await asyncio.wait({push, stopped, lost, idle}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (push, stopped, lost):
                task.cancel()
            if self.lost.is_set():
                idle.cancel()  # nobody will answer it
            else:
                if client.has_pending_idle():
                    client.idle_done()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(idle, 10)


class ImapPoller:
    def __init__(
        self,
        settings: ImapSettings,
        receiver: MailReceiver,
        state: MailboxStateStore,
        clock: Clock,
        owner: str | None = None,
    ) -> None:
        self.settings = settings
        self.receiver = receiver
        self.state = state
        self.clock = clock
        self.owner = owner or f"imap-{uuid.uuid4().hex[:12]}"
        self.connection: ImapConnection | None = None
        self.stopping = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.rounds = 0  # finished poll rounds (for tests and the log)

    @property
    def account(self) -> str:
        return self.settings.account

    def start(self) -> None:
        self.stopping.clear()
        self.task = asyncio.create_task(self.run(), name="imap-poller")

    async def stop(self) -> None:
        self.stopping.set()
        if self.task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.task), 15)
            except TimeoutError:
                self.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.task
            self.task = None
        await self._disconnect()
        with contextlib.suppress(Exception):
            await self.state.release(self.account, self.owner)

    async def run(self) -> None:
        backoff = 1.0
        while not self.stopping.is_set():
            try:
                handled = await self.poll_once()
                backoff = 1.0
                if handled is not None and handled >= self.settings.batch:
                    continue  # more waiting: the next batch at once
                if handled is None or self.connection is None:
                    await self._pause(self.settings.poll_seconds)  # another process polls
                else:
                    await self.connection.wait_for_change(self.settings.poll_seconds, self.stopping)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # server or database away: back off, then again
                # Our own ImapError texts are safe to log; others may quote server data.
                detail = str(error) if isinstance(error, ImapError) else type(error).__name__
                log.warning("IMAP poll failed: %s", detail)
                await self._disconnect()
                await self._pause(min(backoff, self.settings.poll_seconds))
                backoff = min(backoff * 2, 300.0)

    async def poll_once(self) -> int | None:
        """One round; returns how many mails were handled, or None when another process holds
        the mailbox's lease."""
        lease = max(self.settings.lease_seconds, self.settings.poll_seconds * 2)
        if not await self.state.acquire(self.account, self.owner, self.clock.now(), lease):
            await self._disconnect()
            return None
        if self.connection is not None and self.connection.lost.is_set():
            log.info("IMAP connection lost; reconnecting")
            await self._disconnect()
        if self.connection is None:
            connection = ImapConnection(self.settings)
            try:
                await connection.open()
            except BaseException:
                await connection.close()
                raise
            self.connection = connection
        else:
            connection = self.connection
            await connection.select()
        checkpoint = await self.state.checkpoint(self.account)
        if checkpoint.uidvalidity != connection.uidvalidity:
            if checkpoint.uidvalidity:
                log.info("IMAP UIDVALIDITY changed: reading the mailbox from the start")
            checkpoint = Checkpoint(connection.uidvalidity, 0)
        handled = 0
        for uid in (await connection.unprocessed(checkpoint.last_uid))[: self.settings.batch]:
            if self.stopping.is_set():
                break
            if not await self._handle(connection, uid):
                continue
            handled += 1
            checkpoint = Checkpoint(connection.uidvalidity, uid)
            if not await self.state.save_checkpoint(
                self.account, self.owner, checkpoint, self.clock.now()
            ):
                log.warning("IMAP lease lost during a round; stopping it")
                break
        self.rounds += 1
        return handled

    async def _handle(self, connection: ImapConnection, uid: int) -> bool:
        """Store one mail durably, then mark it; False when it vanished meanwhile."""
        meta = await connection.meta(uid)
        if meta is None:
            return False
        size, internal_date = meta
        limit = self.receiver.limits.max_message_bytes
        if size > limit:
            headers = await connection.fetch(uid, headers_only=True)
            if headers is None:
                return False
            await self.receiver.quarantine(headers, f"bericht groter dan {limit} bytes ({size})")
            outcome = "quarantined"
        else:
            raw = await connection.fetch(uid)
            if raw is None:
                return False
            outcome = (await self.receiver.receive(raw, internal_date)).outcome
        if not await connection.mark_processed(uid):
            # Durable already; the checkpoint keeps it from being read again.
            log.warning("IMAP could not mark mail uid %d processed", uid)
        log.info("IMAP mail uid %d: %s", uid, outcome)
        return True

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def _disconnect(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            await connection.close()
