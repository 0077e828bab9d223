"""The scanned-post channel: `POST /channels/post` for the mail room's scanner, a watched drop
folder, and the mail room's list of reply letters to print (`/api/post/outgoing`)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from adapters.channel import ChannelAdapter
from adapters.post.config import PostConfig
from adapters.post.dropfolder import DropFolder
from adapters.post.intake import PostIntake
from adapters.post.metadata import FIELDS, parse_metadata
from adapters.post.reading import PostInputError
from adapters.post.records import LETTER_STATUSES, PostRecords
from adapters.post.sender import READY, PostSender, letter_provider_id
from contacts.models import AgentRole, Channel, PostLetter
from kcc.api.auth import INGEST_ROLES, authenticate, require_role
from kcc.api.views import iso
from kcc.services import Services

log = logging.getLogger(__name__)

MAIL_ROOM_ROLES = frozenset({AgentRole.integration, AgentRole.teamlead, AgentRole.admin})
_FIELD_LIMIT = 2000


class PostAdapter(ChannelAdapter):
    channel = Channel.post

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        config = PostConfig.load(services.settings.config_dir)
        # The PDF is kept in the attachment store: never accept more than it takes.
        limit = min(config.intake.max_pdf_bytes, services.attachments.max_bytes)
        self.config = replace(config, intake=replace(config.intake, max_pdf_bytes=limit))
        self.records = PostRecords(services.store.sessions)
        self.intake = PostIntake(services, self.config, self.records)
        self.sender = PostSender(services, self.config, self.records)
        self.folder: DropFolder | None = None
        drop_dir = services.settings.secret("KCC_POST_DROP_DIR")
        if drop_dir:
            poll = services.settings.secret("KCC_POST_POLL_SECONDS")
            self.folder = DropFolder(
                services, self.intake, Path(drop_dir), float(poll or self.config.poll_seconds)
            )

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/channels/post", self.receive)
        app.router.add_get("/api/post/outgoing", self.list_letters)
        app.router.add_get("/api/post/outgoing/{letter_id}/pdf", self.download)
        app.router.add_post("/api/post/outgoing/{letter_id}/printed", self.mark_printed)
        app.router.add_post("/api/post/outgoing/{letter_id}/posted", self.mark_posted)

    async def start(self) -> None:
        self.services.outbox.register(Channel.post, self.sender)
        if self.folder is not None:
            self.folder.start()

    async def stop(self) -> None:
        if self.folder is not None:
            await self.folder.stop()
        self.services.outbox.unregister(Channel.post)

    # --- inbound ------------------------------------------------------------------------------

    async def receive(self, request: web.Request) -> web.Response:
        require_role(await authenticate(request, self.services), INGEST_ROLES)
        if not request.content_type.startswith("multipart/"):
            raise web.HTTPUnsupportedMediaType(
                text="stuur multipart/form-data met de PDF in het veld 'file'"
            )
        pdf, filename, fields = await self._read_form(request)
        meta = parse_metadata(fields)
        try:
            result = await self.intake.receive(pdf, meta, filename)
        except PostInputError as error:
            return web.json_response({"error": str(error)}, status=error.status)
        return web.json_response(
            {"reference": result.reference, "outcome": result.outcome, "pages": result.pages},
            status=201 if result.outcome == "created" else 200,
        )

    async def _read_form(self, request: web.Request) -> tuple[bytes, str, dict[str, str]]:
        limit = self.config.intake.max_pdf_bytes
        reader = await request.multipart()
        pdf: bytes | None = None
        filename = "brief.pdf"
        fields: dict[str, str] = {}
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise web.HTTPBadRequest(text="geneste multipart wordt niet ondersteund")
            if part.name == "file":
                if pdf is not None:
                    raise web.HTTPUnprocessableEntity(text="stuur één PDF per verzoek")
                pdf = await _read_part(part, limit)
                filename = part.filename or filename
            elif part.name in FIELDS:
                raw = await _read_part(part, _FIELD_LIMIT)
                fields[part.name] = raw.decode("utf-8", errors="replace")
            else:
                raise web.HTTPUnprocessableEntity(
                    text=f"onbekend veld {str(part.name)[:40]!r}; velden: file, {', '.join(FIELDS)}"
                )
        if pdf is None:
            raise web.HTTPUnprocessableEntity(text="de PDF ontbreekt (veld 'file')")
        return pdf, filename, fields

    # --- outgoing letters for the mail room ---------------------------------------------------

    async def list_letters(self, request: web.Request) -> web.Response:
        require_role(await authenticate(request, self.services), MAIL_ROOM_ROLES)
        status: str | None = request.query.get("status", "ready")
        if status == "all":
            status = None
        elif status not in LETTER_STATUSES:
            raise web.HTTPUnprocessableEntity(
                text=f"status is one of: {', '.join(LETTER_STATUSES)}, all"
            )
        letters = await self.records.letters(status)
        return web.json_response({"letters": [_letter_view(letter) for letter in letters]})

    async def _letter(self, request: web.Request) -> PostLetter:
        try:
            letter_id = int(request.match_info["letter_id"])
        except ValueError:
            raise web.HTTPNotFound(text="no such letter") from None
        letter = await self.records.letter(letter_id)
        if letter is None:
            raise web.HTTPNotFound(text="no such letter")
        return letter

    async def download(self, request: web.Request) -> web.Response:
        require_role(await authenticate(request, self.services), MAIL_ROOM_ROLES)
        letter = await self._letter(request)
        data = await self.services.attachments.read(letter.storage_key)
        return web.Response(
            body=data,
            headers={
                "Content-Type": "application/pdf",
                "Content-Disposition": f'attachment; filename="brief-{letter.reference}'
                f'-{letter.id}.pdf"',
                "X-Content-Type-Options": "nosniff",
            },
        )

    async def mark_printed(self, request: web.Request) -> web.Response:
        return await self._mark(request, "printed")

    async def mark_posted(self, request: web.Request) -> web.Response:
        return await self._mark(request, "posted")

    async def _mark(self, request: web.Request, status: str) -> web.Response:
        who = await authenticate(request, self.services)
        require_role(who, MAIL_ROOM_ROLES)
        letter = await self._letter(request)
        now = self.services.clock.now()
        updated = await self.records.mark(letter.id or 0, status, f"agent:{who.id}", now)
        assert updated is not None
        if updated.status == status:
            day = now.strftime("%d-%m-%Y")
            detail = (
                f"geprint op {day}, nog te versturen"
                if status == "printed"
                else f"per post verstuurd op {day}"
            )
            await self.services.store.set_delivery_by_provider_id(
                Channel.post, letter_provider_id(updated.id or 0), "sent", detail
            )
        return web.json_response(_letter_view(updated))


async def _read_part(part: BodyPartReader, limit: int) -> bytes:
    chunks = bytearray()
    while chunk := await part.read_chunk(64 * 1024):
        chunks.extend(chunk)
        if len(chunks) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(chunks))
    return bytes(chunks)


def _letter_view(letter: PostLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "reference": letter.reference,
        "status": letter.status,
        "detail": READY if letter.status == "ready" else None,
        "pages": letter.pages,
        "size": letter.size,
        "created_at": iso(letter.created_at),
        "printed_at": iso(letter.printed_at),
        "posted_at": iso(letter.posted_at),
        "download": f"/api/post/outgoing/{letter.id}/pdf",
    }
