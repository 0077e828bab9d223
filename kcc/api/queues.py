"""Queue overview for agents and team leads."""

from __future__ import annotations

from aiohttp import web

from kcc.api.auth import STAFF_ROLES, authenticate, require_role
from kcc.web_keys import SERVICES


async def list_queues(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    agent = await authenticate(request, services)
    require_role(agent, STAFF_ROLES)
    now = services.clock.now().timestamp()
    stats = await services.backend.stats()
    present = await services.backend.agents()
    queues = []
    for queue in services.config.queues.values():
        entry = stats.get(queue.name)
        serving = [a for a in present if a.serves(queue.skills)]
        queues.append(
            {
                "queue": queue.name,
                "skills": sorted(queue.skills),
                "waiting": entry.waiting if entry else 0,
                "oldest_wait_seconds": round(now - entry.oldest_enqueued_at, 1)
                if entry and entry.oldest_enqueued_at is not None
                else 0,
                "agents_available": sum(1 for a in serving if a.status == "available"),
                "agents_present": len(serving),
            }
        )
    return web.json_response({"queues": queues})
