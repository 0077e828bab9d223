"""Whatever a client sends, the answer is a clear 2xx or 4xx: never a 500, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import bearer, running_service, token_for

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=50),
    st.sampled_from(
        [
            "email",
            "whatsapp",
            "<b>x</b>",
            "+31612345678",
            "a@example.nl",
            "2026-11-23T10:00:00+01:00",
            "",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
INGEST_KEYS = [
    "channel",
    "channel_message_id",
    "from",
    "subject",
    "text",
    "received_at",
    "thread_key",
    "extra",
]
FORM_KEYS = ["name", "email", "phone", "subject", "message", "submission_id", "bsn"]
bodies = st.one_of(
    st.dictionaries(st.sampled_from(INGEST_KEYS + FORM_KEYS), values, max_size=8),
    values,
)
FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


HTML = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]
PATHS = [
    "/api/contacts",
    "/channels/webform",
    "/api/agents/me/status",
    "/api/contacts/KCC-2026-000001/close",
    "/api/contacts/KCC-2026-000001/transfer",
]


def examples(strategy: st.SearchStrategy[Any]) -> list[Any]:
    """Draw examples with hypothesis up front; the async client then replays them."""
    drawn: list[Any] = []

    @FUZZ
    @given(strategy)
    def collect(example: Any) -> None:
        drawn.append(example)

    collect()
    return drawn


async def test_random_json_never_breaks_the_api(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (services, client):
        integration = await token_for(services, "fuzzer", role="integration")
        agent = await token_for(services, "agent", skills="afval,nl,written")
        statuses = []
        for body, path in examples(st.tuples(bodies, st.sampled_from(PATHS))):
            token = agent if "agents" in path or "KCC" in path else integration
            response = await client.post(
                path,
                data=json.dumps(body),
                headers={**bearer(token), "Content-Type": "application/json"},
            )
            text = await response.text()
            assert response.status < 500, (path, body, text)
            assert "Traceback" not in text
            statuses.append(response.status)
        assert any(status >= 400 for status in statuses)


async def test_random_form_posts_never_break_the_web_form(tmp_path: Path) -> None:
    async with running_service(tmp_path) as (_services, client):
        field_values = st.one_of(st.text(max_size=300), st.sampled_from(HTML))
        for form in examples(st.dictionaries(st.sampled_from(FORM_KEYS), field_values, max_size=7)):
            response = await client.post(
                "/channels/webform", data=form, headers={"Accept": "text/html"}
            )
            text = await response.text()
            assert response.status in (200, 201, 422), (form, response.status)
            for payload in HTML:
                assert payload not in text, "resident input must be escaped"
