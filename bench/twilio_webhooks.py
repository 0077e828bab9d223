"""What the Twilio channels cost per inbound message: signed webhooks next to the plain API.

    .venv/bin/python bench/twilio_webhooks.py [--messages 1000] [--concurrency 16]

A `kcc serve` process (SQLite, embedded queues, Twilio credentials pointing at the sandbox) gets,
from `--concurrency` clients on keep-alive connections:

1. baseline: `POST /api/contacts` (JSON, integration token), one new contact each;
2. `POST /channels/whatsapp`: Twilio's signed form posts, one new contact each (signature check,
   form parsing, the same intake);
3. `POST /channels/phone/voice?menu=done`: a call with a menu choice becomes a contact and gets
   its `<Enqueue>` TwiML (plus the call's own row).

Signatures are computed before the clock starts. Figures: requests per second, latency p50/p99,
and each channel's rate as a share of the baseline measured in the same run. Results are kept in
bench/results/twilio-<date>.json. Only 127.0.0.1 is contacted; the temporary data directory and
the service process are removed and stopped whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from twilio.request_validator import RequestValidator

from sandbox.twilio import FakeTwilio, new_sid

ROOT = Path(__file__).resolve().parent.parent
KCC = Path(sys.executable).with_name("kcc")
ACCOUNT_SID = "AC" + "be" * 16
AUTH_TOKEN = "bench-auth-token"
TEXTS = [
    "Wanneer wordt mijn grofvuil opgehaald?",
    "Ik wil een nieuw paspoort aanvragen.",
    "Hoe krijg ik een parkeervergunning voor bewoners?",
]


@dataclass
class Request:
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failures: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


@contextlib.asynccontextmanager
async def service(data_dir: Path, api_base: str) -> AsyncIterator[tuple[str, str]]:
    """(URL, integration token) of a fresh `kcc serve` with the sandbox's credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KCC_", "TWILIO_"))}
    env |= {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_WHATSAPP_FROM": "+3150000000",
        "TWILIO_API_BASE_URL": api_base,
    }
    common = ["--data-dir", str(data_dir)]
    added = await asyncio.create_subprocess_exec(
        str(KCC),
        "agents",
        "add",
        "--name",
        "bench",
        "--role",
        "integration",
        *common,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(added.communicate(), 120)
    token = out.decode().strip().splitlines()[-1]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (data_dir / "serve.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            str(KCC), "serve", "--port", str(port), *common, env=env, stdout=log, stderr=log
        )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(f"{url}/healthz") as response:
                        if response.status == 200:
                            break
                await asyncio.sleep(0.1)
            else:
                raise TimeoutError("kcc serve did not come up")
        yield url, token
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()


def api_requests(count: int, token: str, run: str) -> list[Request]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return [
        Request(
            "/api/contacts",
            json.dumps(
                {
                    "channel": "whatsapp",
                    "channel_message_id": f"api-{run}-{i}",
                    "from": f"+3161{i:07d}",
                    "text": TEXTS[i % 3],
                }
            ).encode(),
            headers,
        )
        for i in range(count)
    ]


def signed(url: str, path: str, form: dict[str, str]) -> Request:
    validator = RequestValidator(AUTH_TOKEN)
    form = {"AccountSid": ACCOUNT_SID, **form}
    return Request(
        path,
        urlencode(form).encode(),
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": validator.compute_signature(url + path, form),
        },
    )


def whatsapp_requests(url: str, count: int) -> list[Request]:
    return [
        signed(
            url,
            "/channels/whatsapp",
            {
                "MessageSid": new_sid("SM"),
                "From": f"whatsapp:+3162{i:07d}",
                "To": "whatsapp:+3150000000",
                "Body": TEXTS[i % 3],
                "NumMedia": "0",
                "ProfileName": "Bench",
            },
        )
        for i in range(count)
    ]


def call_requests(url: str, count: int) -> list[Request]:
    return [
        signed(
            url,
            "/channels/phone/voice?menu=done",
            {"CallSid": new_sid("CA"), "From": f"+3163{i:07d}", "To": "+3150000001", "Digits": "2"},
        )
        for i in range(count)
    ]


async def fire(name: str, url: str, requests: list[Request], concurrency: int) -> Result:
    latencies: list[float] = []
    failures = 0
    pending = iter(requests)

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal failures
        for request in pending:
            started = time.perf_counter()
            async with http.post(
                url + request.path, data=request.body, headers=request.headers
            ) as r:
                await r.read()
                if r.status not in (200, 201):
                    failures += 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return Result(
        name,
        len(requests),
        seconds,
        percentile(latencies, 0.5) * 1000,
        percentile(latencies, 0.99) * 1000,
        failures,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    fake = FakeTwilio(ACCOUNT_SID, AUTH_TOKEN)
    await fake.start()
    results: list[Result] = []
    try:
        with tempfile.TemporaryDirectory(prefix="kcc-twilio-bench-") as tmp:
            async with service(Path(tmp), fake.base_url) as (url, token):
                n, c = args.messages, args.concurrency
                # A short warm-up, then baseline and channels; the baseline again at the end, so
                # a drift of the machine during the run shows.
                await fire("warm-up", url, api_requests(100, token, "warm"), c)
                results.append(await fire("API (baseline)", url, api_requests(n, token, "a"), c))
                results.append(await fire("WhatsApp webhook", url, whatsapp_requests(url, n), c))
                results.append(await fire("phone voice webhook", url, call_requests(url, n), c))
                results.append(
                    await fire("API (baseline, again)", url, api_requests(n, token, "b"), c)
                )
    finally:
        await fake.stop()
    baseline = (results[0].rate + results[-1].rate) / 2
    print(f"\n{args.messages} requests each, {args.concurrency} clients, SQLite + embedded queues")
    print(f"{'':24} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'vs API':>8} {'failed':>7}")
    for result in results:
        print(
            f"{result.name:24} {result.rate:8.0f} {result.p50_ms:8.1f} {result.p99_ms:8.1f} "
            f"{result.rate / baseline:8.0%} {result.failures:7d}"
        )
    out = ROOT / "bench" / "results" / f"twilio-{date.today().isoformat()}.json"
    out.write_text(
        json.dumps(
            {
                "messages": args.messages,
                "concurrency": args.concurrency,
                "results": [
                    {
                        "name": r.name,
                        "per_second": round(r.rate, 1),
                        "p50_ms": round(r.p50_ms, 2),
                        "p99_ms": round(r.p99_ms, 2),
                        "failures": r.failures,
                    }
                    for r in results
                ],
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"\nresults: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
