"""Browser tests' plumbing: the real service on a free port in a thread of its own, and Debian's
Chromium driven by Playwright (never `playwright install`: no browser downloads)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from agents.registry import add_agent, parse_skills
from desk.passwords import hash_password
from desk.sessions import desk_store
from kcc.app import create_app
from kcc.services import Services
from tests.helpers import settings_for

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = REPO / "test-output" / "screenshots"


def require(path: Path | str, what: str) -> None:
    """Outside CI a missing browser or axe-core skips; with CI=true it fails."""
    if Path(path).exists():
        return
    message = f"{what} is missing at {path} (run `make setup`)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


class LiveService:
    """`kcc serve` in-process: the real app, services and wall clock, on 127.0.0.1 and a port
    the system picks, run by an event loop in its own thread so the test drives a browser."""

    def __init__(self, data_dir: Path, database_url: str = "", redis_url: str = "") -> None:
        self.settings = settings_for(data_dir, database_url, redis_url)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.services: Services | None = None
        self.runner: web.AppRunner | None = None
        self.port = 0

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()
        self.call(self._start())

    async def _start(self) -> None:
        self.services = await Services.build(self.settings)
        self.runner = web.AppRunner(create_app(self.services), shutdown_timeout=5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self.runner is not None:
            self.call(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def person(self, name: str, role: str, skills: str | None, password: str) -> str:
        async def make() -> str:
            assert self.services is not None
            agent, token = await add_agent(
                self.services.store,
                self.services.config,
                self.services.clock,
                name,
                role,
                parse_skills(skills) if skills is not None else None,
            )
            await desk_store(self.services).set_password_hash(
                agent.id or 0, hash_password(password)
            )
            return token

        return self.call(make())

    def api(
        self, method: str, path: str, token: str, body: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


def save_screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / name
    page.screenshot(path=str(target), full_page=True)
    docs = REPO / "docs" / "screenshots"
    if os.environ.get("KCC_UPDATE_DOC_SCREENSHOTS"):
        docs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, docs / name)
    return target


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Serious and critical WCAG 2.1 A/AA violations found by axe-core on the page as it is.
    Evaluated through the DevTools protocol, which the pages' CSP does not block."""
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {
                runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}
            });
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 5)}));
        }"""
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]
