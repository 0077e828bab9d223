"""The OpenAPI 3.1 document, built from the same pydantic models that validate requests."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from adapters.phone.adapter import CallRequest
from kcc.api.desk_actions import OPENAPI_BODIES as DESK_BODIES
from kcc.api.desk_actions import openapi_paths as desk_paths
from kcc.api.kennisbank import OPENAPI_BODIES as KENNISBANK_BODIES
from kcc.api.kennisbank import openapi_paths as kennisbank_paths
from kcc.api.notes import NoteRequest
from kcc.api.openapi_channels import channel_paths
from kcc.api.quarantine import ResolveRequest
from kcc.api.schemas import (
    CloseRequest,
    IngestRequest,
    ReplyRequest,
    StatusRequest,
    TransferRequest,
    WaitRequest,
    WebformPost,
)
from kcc.api.sla import ExtensionRequest

BODIES: dict[str, type[BaseModel]] = {
    "IngestRequest": IngestRequest,
    "ReplyRequest": ReplyRequest,
    "TransferRequest": TransferRequest,
    "CloseRequest": CloseRequest,
    "WaitRequest": WaitRequest,
    "StatusRequest": StatusRequest,
    "WebformPost": WebformPost,
    "NoteRequest": NoteRequest,
    "CallRequest": CallRequest,
    "ResolveRequest": ResolveRequest,
    "ExtensionRequest": ExtensionRequest,
    **KENNISBANK_BODIES,
    **DESK_BODIES,
}

ERROR = {
    "description": "Error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
REFERENCE = {
    "name": "reference",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "example": "KCC-2026-000123"},
}


def _op(
    summary: str,
    body: str | None = None,
    ok: str = "200",
    secure: bool = True,
    params: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {
            ok: {"description": "OK", "content": {"application/json": {}}},
            "400": ERROR,
            "401": ERROR,
            "403": ERROR,
            "404": ERROR,
            "409": ERROR,
            "422": ERROR,
            **(extra or {}),
        },
    }
    if not secure:
        operation["security"] = []
    if body:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    if params:
        operation["parameters"] = params
    return operation


def document() -> dict[str, Any]:
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}, "details": {"type": "array"}},
        },
    }
    for name, model in BODIES.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    ref = [REFERENCE]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "KCC contact-routing engine",
            "version": "0.1.0",
            "description": "Channels in, one contact model, skill-based queues, agents.",
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/contacts": {
                "post": _op(
                    "Ingest a contact (integration or admin token). 201 new, 200 duplicate or "
                    "follow-up.",
                    "IngestRequest",
                    ok="201",
                    extra={"200": {"description": "known"}},
                )
            },
            "/api/contacts/{reference}": {
                "get": _op(
                    "A contact with its messages, history, events and the resident", params=ref
                )
            },
            "/api/contacts/{reference}/reply": {
                "post": _op("Reply on the contact's channel", "ReplyRequest", ok="201", params=ref)
            },
            "/api/contacts/{reference}/transfer": {
                "post": _op("Transfer to another queue or skill", "TransferRequest", params=ref)
            },
            "/api/contacts/{reference}/wait": {
                "post": _op(
                    "Ask the resident something: waiting on the resident", "WaitRequest", params=ref
                )
            },
            "/api/contacts/{reference}/close": {
                "post": _op("Close with an outcome code", "CloseRequest", params=ref)
            },
            "/api/contacts/{reference}/note": {
                "post": _op("The agent's note (e.g. a call summary)", "NoteRequest", params=ref)
            },
            "/api/contacts/{reference}/call": {
                "post": _op(
                    "Phone contact: Twilio calls the agent's phone and bridges the waiting caller,"
                    " or for a callback request dials the resident",
                    "CallRequest",
                    ok="201",
                    params=ref,
                    extra={"502": ERROR, "503": ERROR},
                )
            },
            "/api/phone/norms": {
                "get": _op(
                    "Team leads: phone service level (answered within the threshold) and "
                    "abandoned rate over the last `hours` (default 24)",
                    params=[
                        {"name": "hours", "in": "query", "schema": {"type": "number"}},
                    ],
                )
            },
            "/api/queues": {"get": _op("Per queue: waiting, oldest wait, agents available")},
            "/api/agents/me": {"get": _op("Who am I, my status, load and open contacts")},
            "/api/agents/me/status": {"post": _op("Set my status", "StatusRequest")},
            "/api/agents/me/next": {
                "post": _op(
                    "The router's choice for me (204 when there is none)",
                    extra={"204": {"description": "nothing for you now"}},
                )
            },
            "/channels/webform": {
                "get": {
                    "summary": "The accessible contact form (HTML)",
                    "security": [],
                    "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
                },
                "post": _op(
                    "Submit the contact form (JSON or form post)",
                    "WebformPost",
                    ok="201",
                    secure=False,
                ),
            },
            **kennisbank_paths(_op),
            **desk_paths(_op, ref),
            **channel_paths(_op, ref),
            "/api/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "security": [],
                    "responses": {
                        "200": {"description": "text exposition", "content": {"text/plain": {}}}
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness and database check",
                    "security": [],
                    "responses": {
                        "200": {"description": "OK", "content": {"application/json": {}}}
                    },
                }
            },
        },
    }


async def serve(request: web.Request) -> web.Response:
    return web.json_response(document())
