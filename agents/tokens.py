"""API tokens: shown once, stored only as a SHA-256 hash (a leaked database leaks no tokens)."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "kcc_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
