"""Attachment files live outside the database, content-addressed under the data directory.

Content addressing makes a provider's retry harmless (same bytes, same file) and lets the row in
the database be written after the file is safely on disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import uuid
from pathlib import Path

_KEY = re.compile(r"[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}")


class AttachmentTooLarge(ValueError):
    pass


class AttachmentStore:
    def __init__(self, root: Path, max_bytes: int = 20 * 1024 * 1024) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError("bad attachment key")
        return self.root / key

    async def save(self, data: bytes) -> tuple[str, str]:
        """Store bytes durably; returns (sha256, storage key)."""
        if len(data) > self.max_bytes:
            raise AttachmentTooLarge(f"attachment larger than {self.max_bytes} bytes")
        digest = hashlib.sha256(data).hexdigest()
        key = f"{digest[:2]}/{digest[2:4]}/{digest}"
        await asyncio.to_thread(self._write, self.root / key, data)
        return digest, key

    @staticmethod
    def _write(target: Path, data: bytes) -> None:
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        # A name of its own per write: a provider's retry can save the same bytes concurrently,
        # in this process or another, and the two must not share (and lose) one temporary file.
        temporary = target.with_suffix(f".tmp-{os.getpid()}-{uuid.uuid4().hex}")
        try:
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)

    async def read(self, key: str) -> bytes:
        return await asyncio.to_thread(self.path(key).read_bytes)
