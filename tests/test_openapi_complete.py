"""The OpenAPI document describes every API and channel endpoint the app serves, so clients and
schemathesis-style checks never meet an undocumented route."""

from __future__ import annotations

from pathlib import Path

from kcc.api.openapi import document
from kcc.app import create_app
from kcc.services import Services
from tests.helpers import settings_for


async def test_every_api_and_channel_route_is_documented(tmp_path: Path) -> None:
    services = await Services.build(settings_for(tmp_path))
    try:
        app = create_app(services, start=False)
        paths = document()["paths"]
        documented = {(path, method) for path, ops in paths.items() for method in ops}
        served = set()
        for route in app.router.routes():
            info = route.resource.get_info() if route.resource else {}
            path = str(info.get("path") or info.get("formatter") or "")
            if route.method == "HEAD" or not path.startswith(("/api/", "/channels/")):
                continue
            served.add((path, route.method.lower()))
        assert served - documented == set()
        # And nothing documented that is not served.
        assert {p for p in documented if p[0].startswith(("/api/", "/channels/"))} <= served
    finally:
        await services.engine.dispose()
