"""Passwords for the desk: Argon2id (RFC 9106) through argon2-cffi, never stored in clear.

Hashing costs tens of milliseconds of CPU and 64 MiB by design, so it runs in a worker thread and
never stalls the event loop."""

from __future__ import annotations

import asyncio
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
MAX_LENGTH = 1024

_hasher = PasswordHasher()


class PasswordError(ValueError):
    pass


def check_policy(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise PasswordError(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordError(f"a password has at most {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    check_policy(password)
    return _hasher.hash(password)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash("no such account: spend the same time as a real check")


def verify(password_hash: str | None, password: str) -> bool:
    """True when the password matches. Without a hash (unknown name, no password set) the same
    work is done against a dummy hash, so the answer's timing does not tell names apart."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


async def verify_async(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(verify, password_hash, password)


async def hash_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)
