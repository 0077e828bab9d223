"""The scanner's drop folder: PDFs (with an optional sidecar `<name>.json` or `<name>.toml` of
metadata) become contacts; the files then move to `processed/`, or to `failed/` (and into
quarantine with the reason) when they cannot be read.

Half-written files are never read: a name ending in `.part` is ignored (a scanner that can
should write `brief.pdf.part` and rename it), and any other file is taken only once its size and
modification time are unchanged between two polls. A sidecar must be in place before its PDF
(write it first). Restart-safe: intake is idempotent on the scan id or the PDF's sha256, so a
crash between intake and the move takes the file in again without a second contact. Several
processes may watch one folder; the loser of a race finds the file gone and moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from pathlib import Path

from adapters.post.intake import PostIntake
from adapters.post.metadata import LetterMetadata, parse_sidecar
from adapters.post.reading import PostInputError
from contacts.inbound import InboundError
from contacts.models import Channel
from kcc.services import Services

log = logging.getLogger(__name__)

SIDECARS = (".json", ".toml")
# A file that fails this many polls for a reason other than its content goes to failed/ (when
# the database itself is down, quarantining fails too and the file stays where it is).
MAX_ATTEMPTS = 10


class DropFolder:
    def __init__(
        self, services: Services, intake: PostIntake, root: Path, poll_seconds: float = 5.0
    ) -> None:
        self.services = services
        self.intake = intake
        self.root = root
        self.poll_seconds = poll_seconds
        self.processed = root / "processed"
        self.failed = root / "failed"
        self._seen: dict[str, tuple[int, int]] = {}
        self._attempts: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="post-drop-folder")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.scan_once()
            except Exception:  # a full disk or a database outage: try again next poll
                log.exception("drop folder poll failed")
            await asyncio.sleep(self.poll_seconds)

    async def scan_once(self) -> int:
        """One poll: take in every PDF that is complete; returns how many were handled."""
        files = await asyncio.to_thread(self._stable_pdfs)
        handled = 0
        for path in files:
            try:
                done = await self._handle(path)
            except Exception as error:
                # A database outage or a bug: leave the file for the next poll, unless it keeps
                # failing, so one file never blocks the folder for good.
                done = await self._failed_again(path, error)
            if done:
                handled += 1
        return handled

    async def _failed_again(self, path: Path, error: Exception) -> bool:
        attempts = self._attempts.get(path.name, 0) + 1
        self._attempts[path.name] = attempts
        log.warning(
            "drop folder file not taken in (attempt %d): %s", attempts, type(error).__name__
        )
        if attempts < MAX_ATTEMPTS:
            return False
        self._attempts.pop(path.name, None)
        await self._fail(
            path, _sidecar(path), f"na {attempts} pogingen niet ingelezen ({type(error).__name__})"
        )
        return True

    def _stable_pdfs(self) -> list[Path]:
        self.root.mkdir(parents=True, exist_ok=True)
        current: dict[str, tuple[int, int]] = {}
        stable = []
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            # Not `.part` files, sidecars, processed/ and failed/; never a symbolic link, which
            # could bring any file of this machine into the contact store.
            if not entry.is_file(follow_symlinks=False) or not entry.name.lower().endswith(".pdf"):
                continue
            info = entry.stat()
            signature = (info.st_size, info.st_mtime_ns)
            current[entry.name] = signature
            if self._seen.get(entry.name) == signature:
                stable.append(Path(entry.path))
        self._seen = current
        return stable

    async def _handle(self, path: Path) -> bool:
        sidecar = _sidecar(path)
        limit = self.intake.config.intake.max_pdf_bytes
        try:
            if (await asyncio.to_thread(path.stat)).st_size > limit:
                # Not read into memory at all; the original stays in failed/.
                await self._fail(path, sidecar, f"het bestand is groter dan {limit} bytes", b"")
                return True
            pdf = await asyncio.to_thread(path.read_bytes)
            raw_meta = await asyncio.to_thread(sidecar.read_bytes) if sidecar else None
        except FileNotFoundError:
            return False  # another process took it
        try:
            meta = (
                parse_sidecar(sidecar.name, raw_meta)
                if sidecar and raw_meta is not None
                else (LetterMetadata())
            )
            result = await self.intake.receive(pdf, meta, path.name)
        except (PostInputError, InboundError) as error:
            await self._fail(path, sidecar, str(error), pdf)
            return True
        self._attempts.pop(path.name, None)
        await asyncio.to_thread(self._move, path, sidecar, self.processed, None)
        log.info("drop folder file taken in as %s (%s)", result.reference, result.outcome)
        return True

    async def _fail(
        self, path: Path, sidecar: Path | None, reason: str, pdf: bytes | None = None
    ) -> None:
        """Quarantine (once per file content) with the reason, then move to failed/."""
        if pdf is None:
            with contextlib.suppress(FileNotFoundError):
                pdf = await asyncio.to_thread(path.read_bytes)
        # Without content to tell files apart (too large to read), name, size and time do.
        if pdf:
            key = f"sha256:{hashlib.sha256(pdf).hexdigest()}"
        else:
            identity = path.name
            with contextlib.suppress(FileNotFoundError):
                info = await asyncio.to_thread(path.stat)
                identity = f"{path.name}|{info.st_size}|{info.st_mtime_ns}"
            key = f"file-sha256:{hashlib.sha256(identity.encode()).hexdigest()}"
        await self.services.quarantine.keep(
            Channel.post,
            f"brief uit de scanmap niet ingelezen: {reason}",
            self.services.clock.now(),
            raw=pdf or None,
            provider_id=f"file:{key}",
            content_type="application/pdf",
        )
        await asyncio.to_thread(self._move, path, sidecar, self.failed, reason)
        log.warning("drop folder file moved to failed/ and quarantined: %s", reason)

    @staticmethod
    def _move(path: Path, sidecar: Path | None, target: Path, reason: str | None) -> None:
        target.mkdir(parents=True, exist_ok=True)
        destination = _free_name(target, path.name)
        for source in [sidecar] if sidecar else []:
            with contextlib.suppress(FileNotFoundError):
                os.replace(source, destination.with_name(destination.stem + source.suffix))
        if reason is not None:
            destination.with_name(destination.name + ".reden.txt").write_text(
                reason + "\n", encoding="utf-8"
            )
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, destination)


def _sidecar(path: Path) -> Path | None:
    for suffix in SIDECARS:
        candidate = path.with_suffix(suffix)
        if candidate.is_file() and not candidate.is_symlink():
            return candidate
    return None


def _free_name(folder: Path, name: str) -> Path:
    """`brief.pdf`, else `brief-1.pdf`, ...: a rescanned letter with the same file name must not
    overwrite the earlier one."""
    candidate = folder / name
    stem, suffix = candidate.stem, candidate.suffix
    number = 0
    while candidate.exists():
        number += 1
        candidate = folder / f"{stem}-{number}{suffix}"
    return candidate
