"""Bad input gets a clear JSON error; nothing reaches the client as a traceback."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import ValidationError

from contacts.inbound import InboundError
from contacts.store import TransitionError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, message: str, **details: object) -> web.Response:
    return web.json_response({"error": message, **details}, status=status)


def validation_details(exc: ValidationError) -> list[dict[str, object]]:
    """Field and message only: the rejected input itself may hold personal data."""
    return [
        {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
    ]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # aiohttp's own refusals (413 too large, 405, 404) in the same JSON shape as ours.
        message = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
        return error(
            exc.status,
            message,
            **({"allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}),
        )
    except ValidationError as exc:
        return error(422, "invalid request", details=validation_details(exc))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return error(400, "the body is not valid JSON")
    except InboundError as exc:
        return error(422, str(exc))
    except TransitionError as exc:
        return error(409, str(exc))
    except ConnectionResetError:
        # The client went away while sending: nothing was stored, nobody is left to answer.
        log.info("client disconnected during %s %s", request.method, request.path)
        return error(400, "the request was not received completely")
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error(500, "internal error; it has been logged")
