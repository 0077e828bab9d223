"""Shared fixtures. Integration tests use the real PostgreSQL and Redis services.

Outside CI a missing service skips its tests; with CI=true it fails them, so a green CI run
always means the real services were exercised.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest

POSTGRES_URL = os.environ.get(
    "KCC_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("KCC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url.replace("+asyncpg", ""))
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), 1
        ):
            return True
    except OSError:
        return False


def _require(url: str, port: int, name: str) -> str:
    if _reachable(url, port):
        return url
    message = f"{name} is not reachable at {url}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: integration tests must run)")
    pytest.skip(message)


@pytest.fixture
def redis_url() -> str:
    return _require(REDIS_URL, 6379, "Redis")


@pytest.fixture
def postgres_url() -> str:
    return _require(POSTGRES_URL, 5432, "PostgreSQL")
