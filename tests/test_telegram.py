"""The Telegram channel end to end, offline: our service with python-telegram-bot in webhook mode,
against the fake Bot API of `sandbox/telegram.py` on loopback."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from adapters.outbound import RETRY_AFTER as OUTBOX_BACKOFF
from adapters.outbound import OutboundMessage
from adapters.telegram.adapter import PATH, SECRET_HEADER
from adapters.telegram.sender import split_text
from kcc.app import create_app
from kcc.clock import ManualClock
from kcc.services import Services
from kcc.settings import REPO_CONFIG, Settings
from sandbox.telegram import FakeBotApi, post_update
from tests.helpers import bearer, token_for

SECRET = "webhook-secret_123"
CHAT = 424242
QUESTION = "Mijn groene container is vanochtend niet geleegd. Wanneer komen jullie terug?"


@dataclass
class Harness:
    api: FakeBotApi
    services: Services
    client: TestClient[Any, Any]

    @property
    def webhook(self) -> str:
        return str(self.client.make_url(PATH))

    async def post(self, update: dict[str, Any], secret: str | None = SECRET) -> tuple[int, Any]:
        return await post_update(self.webhook, update, secret)

    async def count(self, table: str) -> int:
        async with self.services.engine.connect() as connection:
            return int(
                (await connection.execute(sa.text(f"SELECT count(*) FROM {table}"))).scalar()
            )

    async def agent(self, name: str = "Anna", skills: str = "afval,nl,chat") -> str:
        token = await token_for(self.services, name, skills=skills)
        status = await self.client.post(
            "/api/agents/me/status", json={"status": "available"}, headers=bearer(token)
        )
        assert status.status == 200
        return token

    async def take(self, token: str) -> dict[str, Any]:
        taken = await self.client.post("/api/agents/me/next", headers=bearer(token))
        assert taken.status == 200
        return dict(await taken.json())

    async def contact(self, token: str, reference: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/contacts/{reference}", headers=bearer(token))
        assert response.status == 200
        return dict(await response.json())


@asynccontextmanager
async def telegram_service(
    tmp_path: Path,
    database_url: str = "",
    redis_url: str = "",
    secrets: dict[str, str] | None = None,
    config_dir: Path = REPO_CONFIG,
    api_failures: int = 0,
) -> AsyncIterator[Harness]:
    api = FakeBotApi(failures=api_failures)
    await api.start()
    if secrets is None:
        secrets = {"TELEGRAM_BOT_TOKEN": api.token, "TELEGRAM_WEBHOOK_SECRET": SECRET}
    settings = Settings(
        data_dir=tmp_path,
        config_dir=config_dir,
        database_url=database_url,
        redis_url=redis_url,
        secrets={**secrets, "TELEGRAM_API_BASE_URL": api.url},
    )
    services = await Services.build(settings, ManualClock())
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(services, sweep=False)))
    await client.start_server()
    try:
        yield Harness(api, services, client)
    finally:
        await client.close()
        await api.close()


async def _happy_flow(harness: Harness) -> None:
    api = harness.api
    anna = await harness.agent()
    status, body = await harness.post(
        api.text_update(CHAT, QUESTION, first_name="Jan", last_name="de Vries")
    )
    assert status == 200 and body["outcome"] == "created"
    reference = body["reference"]

    taken = await harness.take(anna)
    assert taken["reference"] == reference
    assert taken["channel"] == "telegram"
    assert taken["queue"] == "afval"
    assert taken["resident"]["telegram_id"] == str(CHAT)
    assert taken["resident"]["name"] == "Jan de Vries"
    assert taken["messages"][0]["body"] == QUESTION

    answer = "Wij komen morgen langs om de container alsnog te legen. <b>geen opmaak</b>"
    replied = await harness.client.post(
        f"/api/contacts/{reference}/reply", json={"text": answer}, headers=bearer(anna)
    )
    assert replied.status == 201
    message = (await replied.json())["message"]
    assert message["channel"] == "telegram"
    assert message["delivery_status"] == "sent"
    [sent] = api.sent
    assert sent.chat_id == CHAT
    assert sent.text == answer
    assert sent.parse_mode is None  # plain text: nothing typed becomes markup
    assert sent.reply_to_message_id == 1  # quotes the resident's message
    stored = await harness.services.store.messages(await _contact_id(harness, reference))
    assert stored[-1].channel_message_id == f"{CHAT}:{sent.message_id}"

    # The resident answers: a follow-up on the same contact, not a new one.
    status, body = await harness.post(api.text_update(CHAT, "Dank u, tot morgen."))
    assert (status, body["outcome"], body["reference"]) == (200, "follow_up", reference)
    assert await harness.count("contact") == 1


async def _contact_id(harness: Harness, reference: str) -> int:
    contact = await harness.services.store.by_reference(reference)
    assert contact is not None and contact.id is not None
    return contact.id


async def test_message_to_agent_and_reply_back_to_the_chat(tmp_path: Path) -> None:
    async with telegram_service(tmp_path) as harness:
        assert ("getMe", {}) in harness.api.calls  # initialised at start-up
        await _happy_flow(harness)


@pytest.mark.postgres
@pytest.mark.redis
async def test_the_same_flow_on_postgres_and_redis(
    tmp_path: Path, fresh_postgres: str, fresh_redis: str
) -> None:
    async with telegram_service(tmp_path, fresh_postgres, fresh_redis) as harness:
        await _happy_flow(harness)
        # A retried delivery is stored once on PostgreSQL too.
        update = harness.api.text_update(CHAT + 1, "Hoe vraag ik een parkeervergunning aan?")
        first = await harness.post(update)
        again = await harness.post(update)
        assert first[1]["outcome"] == "created" and again[1]["outcome"] == "duplicate"
        assert await harness.count("contact") == 2


async def test_sandbox_delivers_to_the_webhook_our_set_webhook_registered(tmp_path: Path) -> None:
    from adapters.telegram.cli import set_webhook

    async with telegram_service(tmp_path) as harness:
        registered = await set_webhook(harness.services.settings, url=harness.webhook)
        assert harness.api.webhook_url == registered == harness.webhook
        status, body = await harness.api.deliver(harness.api.text_update(CHAT, QUESTION))
        assert (status, body["outcome"]) == (200, "created")


async def test_the_same_update_twice_is_stored_once(tmp_path: Path) -> None:
    async with telegram_service(tmp_path) as harness:
        update = harness.api.text_update(CHAT, QUESTION)
        results = await asyncio.gather(harness.post(update), harness.post(update))
        assert sorted(b["outcome"] for _, b in results) == ["created", "duplicate"]
        assert {b["reference"] for _, b in results} == {results[0][1]["reference"]}
        assert await harness.count("contact") == 1
        assert await harness.count("message") == 1


async def test_webhook_answers_only_after_the_contact_is_durable(tmp_path: Path) -> None:
    async with telegram_service(tmp_path) as harness:
        intake = harness.services.intake
        real_receive = intake.receive
        calls = 0

        async def slow_then_real(inbound: Any) -> Any:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.2)  # a handler run with block=False would be answered by now
            if calls == 1:
                raise ConnectionError("database went away")
            return await real_receive(inbound)

        intake.receive = slow_then_real  # type: ignore[method-assign]
        update = harness.api.text_update(CHAT, QUESTION)
        status, body = await harness.post(update)
        assert status == 503  # Telegram delivers it again
        assert await harness.count("contact") == 0

        status, body = await harness.post(update)  # Telegram's retry
        assert (status, body["outcome"]) == (200, "created")
        # Already durable when the 200 arrived, without waiting for anything.
        assert await harness.count("contact") == 1


async def test_bot_api_down_at_start_up_is_tried_again_on_the_first_update(
    tmp_path: Path,
) -> None:
    async with telegram_service(tmp_path, api_failures=2) as harness:
        api = harness.api
        assert [c[0] for c in api.calls] == ["getMe"]  # failed: the service runs anyway
        update = api.text_update(CHAT, QUESTION)
        status, _ = await harness.post(update)
        assert status == 503  # still down: Telegram delivers it again
        status, body = await harness.post(update)
        assert (status, body["outcome"]) == (200, "created")
        assert await harness.count("contact") == 1


@pytest.mark.parametrize("secret", [None, "", "wrong-secret", SECRET + "x"])
async def test_forged_or_missing_secret_is_refused_and_nothing_stored(
    tmp_path: Path, secret: str | None
) -> None:
    async with telegram_service(tmp_path) as harness:
        status, _ = await harness.post(harness.api.text_update(CHAT, QUESTION), secret)
        assert status == 403
        assert await harness.count("contact") == 0
        assert await harness.count("quarantine") == 0


async def test_without_credentials_the_webhook_refuses_and_replies_wait(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with telegram_service(tmp_path, secrets={"TELEGRAM_BOT_TOKEN": "123:abc"}) as harness:
        status, body = await harness.post(harness.api.text_update(CHAT, QUESTION))
        assert status == 403
        assert "niet ingericht" in body["error"]
        assert await harness.count("contact") == 0
        assert "telegram" not in harness.services.outbox.channels
        assert harness.api.calls == []  # never talked to the Bot API
        refusals = [r for r in caplog.records if "TELEGRAM_WEBHOOK_SECRET" in r.getMessage()]
        assert len(refusals) == 1


async def test_photo_and_document_are_stored_as_attachments(tmp_path: Path) -> None:
    async with telegram_service(tmp_path) as harness:
        api = harness.api
        anna = await harness.agent(skills="afval,openbare-ruimte,nl,chat")
        photo = b"\xff\xd8\xff\xe0" + b"foto van de kapotte lantaarnpaal" * 100
        status, body = await harness.post(
            api.photo_update(CHAT, photo, caption="De lantaarnpaal bij mijn huis is kapot.")
        )
        assert (status, body["outcome"]) == (200, "created")
        reference = body["reference"]
        pdf = b"%PDF-1.4 brief van de gemeente"
        status, body = await harness.post(
            api.document_update(CHAT, pdf, "brief.pdf", "application/pdf", caption="De brief")
        )
        assert (status, body["outcome"], body["reference"]) == (200, "follow_up", reference)
        ogg = b"OggS spraakbericht"
        stored_voice = api.add_file(ogg, "voice", ".oga")
        voice = {
            "voice": {
                "file_id": stored_voice.file_id,
                "file_unique_id": stored_voice.file_unique_id,
                "duration": 4,
                "mime_type": "audio/ogg",
                "file_size": len(ogg),
            }
        }
        status, body = await harness.post(api.message_update(CHAT, voice))
        assert (status, body["outcome"]) == (200, "follow_up")
        # The largest photo size was fetched, not the thumbnail.
        fetched = [str(p["file_id"]) for m, p in api.calls if m == "getFile"]
        assert len(fetched) == 3 and fetched[0].endswith(f"-{len(photo)}")
        await harness.take(anna)
        view = await harness.contact(anna, reference)
        attachments = {(a["content_type"], a["size"]) for a in view["attachments"]}
        assert attachments == {
            ("image/jpeg", len(photo)),
            ("application/pdf", len(pdf)),
            ("audio/ogg", len(ogg)),
        }
        bodies = [m["body"] for m in view["messages"]]
        assert bodies == ["De lantaarnpaal bij mijn huis is kapot.", "De brief", "[Spraakbericht]"]
        stored = await harness.services.store.attachments(await _contact_id(harness, reference))
        assert {await harness.services.attachments.read(a.storage_key) for a in stored} == {
            photo,
            pdf,
            ogg,
        }


async def test_files_over_the_limits_are_not_stored_but_the_message_is(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(REPO_CONFIG, config)
    toml = config / "telegram.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace(
            "max_file_bytes = 10485760", "max_file_bytes = 1000"
        ),
        encoding="utf-8",
    )
    async with telegram_service(tmp_path / "data", config_dir=config) as harness:
        api = harness.api
        big = harness.api.document_update(
            CHAT, b"x" * 5000, "scan.pdf", "application/pdf", caption="Mijn bezwaar"
        )
        status, body = await harness.post(big)
        assert (status, body["outcome"]) == (200, "created")
        exe = api.document_update(
            CHAT, b"MZ" + b"\0" * 100, "factuur.exe", "application/x-msdownload"
        )
        status, body = await harness.post(exe)
        assert (status, body["outcome"]) == (200, "follow_up")

        assert await harness.count("attachment") == 0
        assert not [c for c in api.calls if c[0] == "getFile"]  # refused before downloading
        messages = await harness.services.store.messages(
            await _contact_id(harness, body["reference"])
        )
        assert "Bijlage niet opgeslagen: groter dan" in messages[0].body
        assert "Mijn bezwaar" in messages[0].body
        assert "wordt niet aangenomen" in messages[1].body
        # The resident is told, once per message.
        assert [s.chat_id for s in api.sent] == [CHAT, CHAT]
        assert "bestand" in api.sent[0].text


async def test_start_sends_the_welcome_and_is_no_contact(tmp_path: Path) -> None:
    async with telegram_service(tmp_path) as harness:
        status, body = await harness.post(harness.api.command_update(CHAT, "start"))
        assert (status, body["outcome"]) == (200, "welcome")
        [welcome] = harness.api.sent
        assert welcome.chat_id == CHAT
        assert "gemeente Groningen" in welcome.text and "municipality" in welcome.text
        assert await harness.count("contact") == 0


async def test_other_message_kinds_are_handled_deliberately(tmp_path: Path) -> None:
    async with telegram_service(tmp_path) as harness:
        api = harness.api
        text_update = api.text_update(CHAT, "Er ligt grofvuil op de stoep")
        status, body = await harness.post(text_update)
        reference = body["reference"]

        # An edit, a location, a sticker: accepted as text with a note, on the same contact.
        status, body = await harness.post(api.edited(text_update, "Er ligt grofvuil bij nr. 12"))
        assert (status, body["outcome"]) == (200, "follow_up")
        location = {"location": {"latitude": 53.2194, "longitude": 6.5665}}
        status, body = await harness.post(api.message_update(CHAT, location))
        assert (status, body["outcome"]) == (200, "follow_up")
        sticker = {
            "sticker": {
                "file_id": "S1",
                "file_unique_id": "S1u",
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "emoji": "👍",
            }
        }
        status, body = await harness.post(api.message_update(CHAT, sticker))
        assert (status, body["outcome"]) == (200, "follow_up")
        bodies = [
            m.body
            for m in await harness.services.store.messages(await _contact_id(harness, reference))
        ]
        assert bodies[1:] == [
            "[Bewerkt bericht]\nEr ligt grofvuil bij nr. 12",
            "[Locatie: 53.219400, 6.566500]",
            "[Sticker 👍]",
        ]

        # A dice, a group message: quarantined with a reason, answered 200 (no retries).
        dice = {"dice": {"emoji": "🎲", "value": 3}}
        status, body = await harness.post(api.message_update(CHAT, dice))
        assert (status, body["outcome"]) == (200, "quarantined")
        group = api.text_update(-100123, "Hallo allemaal", chat_type="supergroup")
        status, body = await harness.post(group)
        assert (status, body["outcome"]) == (200, "quarantined")
        again = await harness.post(group)  # Telegram's retry is kept once
        assert again[1]["outcome"] == "quarantined"
        # A shape python-telegram-bot cannot read (a newer Bot API, a broken message) is kept.
        unreadable = {"update_id": 8, "message": {"message_id": 5, "text": "zonder chat"}}
        status, body = await harness.post(unreadable)
        assert (status, body["outcome"]) == (200, "quarantined")
        reasons = sorted(i.reason for i in await harness.services.quarantine.items())
        assert reasons == [
            "bericht uit een groep of kanaal; alleen privéchats worden behandeld",
            "berichttype dice wordt niet ondersteund",
            "update kon niet worden gelezen (KeyError)",
        ]
        # The resident blocking the bot carries no message: answered, nothing kept.
        blocked = {
            "update_id": 9,
            "my_chat_member": {
                "chat": {"id": CHAT, "type": "private", "first_name": "Jan"},
                "from": {"id": CHAT, "is_bot": False, "first_name": "Jan"},
                "date": 1_700_000_000,
                "old_chat_member": {"status": "member", "user": _bot_user()},
                "new_chat_member": {"status": "kicked", "user": _bot_user(), "until_date": 0},
            },
        }
        status, body = await harness.post(blocked)
        assert (status, body["outcome"]) == (200, "ignored")
        assert await harness.count("contact") == 1
        assert await harness.count("quarantine") == 3


def _bot_user() -> dict[str, Any]:
    return {"id": 7000000001, "is_bot": True, "first_name": "Gemeente Groningen"}


async def test_bad_requests_get_a_clear_4xx_and_store_nothing(tmp_path: Path) -> None:
    async with telegram_service(tmp_path) as harness:
        headers = {SECRET_HEADER: SECRET}
        url = harness.webhook
        async with aiohttp.ClientSession() as session:

            async def post(data: bytes, content_type: str = "application/json") -> int:
                async with session.post(
                    url, data=data, headers={**headers, "Content-Type": content_type}
                ) as response:
                    body = await response.json()
                    assert body.get("error")
                    return response.status

            assert await post(b'{"update_id": 1, "message":') == 400
            assert await post(b"\xff\xfe") == 400
            assert await post(b'{"update_id": 1}', "text/plain") == 415
            assert await post(b"[1, 2]") == 422
            assert await post(b'{"message": {"text": "hoi"}}') == 422
            assert await post(b'{"update_id": "1"}') == 422
            oversized = b'{"update_id": 1, "x": "' + b"a" * 300_000 + b'"}'
            assert await post(oversized) == 413
        assert await harness.count("contact") == 0
        assert await harness.count("quarantine") == 0


async def test_blocked_bot_shows_failed_to_the_agent_and_outages_retry(tmp_path: Path) -> None:
    async with telegram_service(tmp_path) as harness:
        api = harness.api
        anna = await harness.agent()
        _, body = await harness.post(api.text_update(CHAT, QUESTION))
        reference = body["reference"]
        await harness.take(anna)

        api.blocked.add(CHAT)
        replied = await harness.client.post(
            f"/api/contacts/{reference}/reply",
            json={"text": "Wij komen morgen."},
            headers=bearer(anna),
        )
        message = (await replied.json())["message"]
        assert message["delivery_status"] == "failed"
        assert "geblokkeerd" in message["delivery_detail"]
        view = await harness.contact(anna, reference)
        assert view["messages"][-1]["delivery_status"] == "failed"

        # Telegram unreachable: the reply stays queued and goes out on the next retry.
        api.blocked.clear()
        api.failures = 1
        replied = await harness.client.post(
            f"/api/contacts/{reference}/reply",
            json={"text": "Tweede poging."},
            headers=bearer(anna),
        )
        message = (await replied.json())["message"]
        assert message["delivery_status"] == "queued"
        assert [s.text for s in api.sent] == []
        harness.services.clock.advance(OUTBOX_BACKOFF)  # type: ignore[attr-defined]
        assert await harness.services.outbox.retry_unsent() == 1
        assert [s.text for s in api.sent] == ["Tweede poging."]
        view = await harness.contact(anna, reference)
        assert view["messages"][-1]["delivery_status"] == "sent"


async def test_long_replies_are_split_at_telegrams_limit(tmp_path: Path) -> None:
    async with telegram_service(tmp_path) as harness:
        api = harness.api
        anna = await harness.agent()
        _, body = await harness.post(api.text_update(CHAT, QUESTION))
        await harness.take(anna)
        paragraph = "Dit is een lange uitleg over de afvalinzameling in Groningen. " * 25
        text = "\n\n".join([paragraph.strip()] * 3)  # about 4,650 characters
        replied = await harness.client.post(
            f"/api/contacts/{body['reference']}/reply", json={"text": text}, headers=bearer(anna)
        )
        assert (await replied.json())["message"]["delivery_status"] == "sent"
        assert len(api.sent) == 2
        assert all(len(s.text) <= 4096 for s in api.sent)
        assert "\n\n".join(s.text for s in api.sent) == text


def test_split_text_counts_utf16_and_keeps_everything() -> None:
    emoji = "👍" * 3000  # 6,000 UTF-16 units
    parts = split_text(emoji)
    assert [len(p.encode("utf-16-le")) // 2 <= 4096 for p in parts] == [True, True]
    assert "".join(parts) == emoji
    assert split_text("kort") == ["kort"]
    assert split_text("   ") == []
    words = " ".join(["woord"] * 2000)
    assert " ".join(split_text(words, 100)) == words


async def test_sender_without_a_chat_fails_clearly(tmp_path: Path) -> None:
    async with telegram_service(tmp_path) as harness:
        sender = harness.services.outbox.channels["telegram"]
        delivery = await sender.send(
            OutboundMessage(
                reference="KCC-2026-000001",
                channel="telegram",
                resident=None,
                subject="",
                text="Hallo",
            )
        )
        assert delivery.status == "failed"
        assert "geen Telegram-chat" in (delivery.detail or "")


def test_kcc_telegram_commands_set_and_show_the_webhook(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kcc.cli import main

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    api = FakeBotApi()
    try:
        base = asyncio.run_coroutine_threadsafe(api.start(), loop).result(10)
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", api.token)
        monkeypatch.setenv("TELEGRAM_API_BASE_URL", base)
        monkeypatch.setenv("KCC_PUBLIC_URL", "https://kcc.groningen.example/")
        monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", "bad secret!")
        assert main(["telegram", "set-webhook"]) == 1
        assert "TELEGRAM_WEBHOOK_SECRET" in capsys.readouterr().err
        assert api.webhook_url == ""

        monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", SECRET)
        assert main(["telegram", "set-webhook"]) == 0
        assert api.webhook_url == "https://kcc.groningen.example/channels/telegram"
        assert api.webhook_secret == SECRET
        [(_, params)] = [c for c in api.calls if c[0] == "setWebhook"]
        assert params["allowed_updates"] == ["message", "edited_message"]
        assert main(["telegram", "webhook-info"]) == 0
        assert "url: https://kcc.groningen.example/channels/telegram" in capsys.readouterr().out
        assert main(["telegram", "delete-webhook"]) == 0
        assert api.webhook_url == ""

        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "999:wrong")
        assert main(["telegram", "webhook-info"]) == 1
        error = capsys.readouterr().err
        assert "InvalidToken" in error and "999:wrong" not in error
    finally:
        asyncio.run_coroutine_threadsafe(api.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
