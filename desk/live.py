"""Live updates for open pages over server-sent events.

The desk hears of an offer the moment this process's router makes it (`router.listeners`) and
checks the agent's list every few seconds anyway, so offers made by another process (several
`kcc serve` behind one Redis) arrive too. The dashboard gets a fresh snapshot every second."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from contacts.models import Contact


class Hub:
    def __init__(self) -> None:
        self._waiters: dict[int, set[asyncio.Event]] = {}
        self.closing = False

    def announce(self, contact: Contact, agent_id: int) -> None:
        """A router listener: wake the desks of this agent."""
        for event in self._waiters.get(agent_id, ()):
            event.set()

    def subscribe(self, agent_id: int) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters.setdefault(agent_id, set()).add(event)
        return event

    def unsubscribe(self, agent_id: int, event: asyncio.Event) -> None:
        waiters = self._waiters.get(agent_id)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del self._waiters[agent_id]

    def wake_all(self) -> None:
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    async def close(self) -> None:
        """Let open streams end so the server can stop without waiting on them."""
        self.closing = True
        self.wake_all()


async def open_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    # The browser reconnects after this many milliseconds if the stream breaks.
    await response.write(b"retry: 2000\n\n")
    return response


async def send(response: web.StreamResponse, event: str, data: Any) -> None:
    payload = json.dumps(data, separators=(",", ":"))
    await response.write(f"event: {event}\ndata: {payload}\n\n".encode())


async def ping(response: web.StreamResponse) -> None:
    await response.write(b": ping\n\n")
