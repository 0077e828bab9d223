"""The foundation's benchmark: ingest through the HTTP API and routing decision time, each next to
the raw speed of the store underneath, measured in the same run on the same machine.

    .venv/bin/python bench/foundation.py [--contacts 3000] [--concurrency 16]
        [--waiting 100000] [--agents 1000] [--quick] [--only sqlite|postgres|routing]

1. Ingest: contacts per second through `POST /api/contacts` (durable in the database and queued
   in the index before the 201), on (a) SQLite + in-process queues and (b) PostgreSQL + Redis.
   The service runs as a separate `kcc serve` process; next to it the raw insert rate of the same
   database (one row per committed transaction, same durability settings), measured right
   before and right after the ingest run, and the ratio ingest / raw (aim: >= 50%).
2. Routing: with N agents online and M contacts waiting, the time of one routing decision
   (`QueueBackend.claim_best`) and of the full `Router.next_for_agent` (decision + database
   claim + event), on the memory and the Redis backend; next to it raw Redis PING and raw SQLite
   UPDATE+commit round trips. Aim: decision p99 under 5 ms.
3. A summary table, and the results as JSON in bench/results/foundation-<date>.json.

Only 127.0.0.1 is contacted. PostgreSQL: a database `kcc_bench`, dropped and created fresh, dropped
at the end. Redis: database 14 only, flushed before and after. Temporary directories and the
service processes are removed and stopped whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import platform
import random
import signal
import socket
import sqlite3
import tempfile
import time
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp
import asyncpg
import redis.asyncio as aioredis
import sqlalchemy as sa
from sqlmodel import SQLModel

from contacts.database import (
    SQLITE_PRAGMAS,
    WRITE_OPTION,
    create_engine,
    create_sync_sqlite_engine,
)
from contacts.models import AgentStatus, Kind, Status
from kcc.services import Services
from kcc.settings import REPO_CONFIG, Settings
from queues.base import AgentPresence, QueueBackend
from router.planner import RoutePlanner

ROOT = Path(__file__).resolve().parent.parent
KCC = ROOT / ".venv" / "bin" / "kcc"  # the installed entry point (`make setup`)
RESULTS = ROOT / "bench" / "results"
LOOPBACK = frozenset({"127.0.0.1", "localhost"})
PG_DATABASE = "kcc_bench"
# Hard bounds: no phase of this script may run away on a stuck service or database.
PHASE_TIMEOUT = 1200.0
START_TIMEOUT = 90.0
STOP_TIMEOUT = 20.0
COMMAND_TIMEOUT = 120.0

TABLES = SQLModel.metadata.tables
CONTACT, AGENT = TABLES["contact"], TABLES["agent"]


# --- measurements -------------------------------------------------------------------------------


@dataclass
class Latency:
    """Round-trip times of one kind of call, in milliseconds."""

    n: int
    p50_ms: float
    p99_ms: float
    mean_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        ordered = sorted(seconds)
        if not ordered:
            return cls(0, math.nan, math.nan, math.nan)

        def rank(q: float) -> float:  # nearest-rank percentile: always an observed value
            return ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000

        return cls(len(ordered), rank(0.50), rank(0.99), sum(ordered) / len(ordered) * 1000)

    def __str__(self) -> str:
        return f"p50 {self.p50_ms:7.3f} ms  p99 {self.p99_ms:7.3f} ms  (n={self.n})"


@dataclass
class IngestResult:
    setup: str
    contacts: int
    concurrency: int
    seconds: float
    per_second: float
    request: Latency
    failures: int
    service_cpu_percent: float  # of one core, during the timed run
    client_cpu_percent: float  # this script (the load), % of one core: it shares the machine
    raw_method: str
    raw_before_per_second: float
    raw_after_per_second: float
    raw_per_second: float  # mean of before and after: the machine drifts
    ratio: float  # ingest / raw
    notes: dict[str, str] = field(default_factory=dict)


@dataclass
class RoutingResult:
    backend: str
    waiting: int
    agents: int
    rebuild_seconds: float
    decision: Latency
    next_for_agent: Latency
    next_for_agent_empty: int  # calls that found nothing for the agent


async def timed(call: Callable[[], Awaitable[object]], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return samples


# --- realistic messages -------------------------------------------------------------------------

STREETS = (
    "Herestraat",
    "Oosterstraat",
    "Paterswoldseweg",
    "Korreweg",
    "Vinkhuizen-Zuid",
    "Helperzoom",
    "Damsterdiep",
    "Peizerweg",
    "Zonnelaan",
    "Verlengde Hereweg",
)
DAYS = ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag")
MONTHS = ("januari", "februari", "maart", "april", "mei", "juni", "september", "oktober")

# (subject, text): short questions as residents write them, over all ten product queues.
TEMPLATES: tuple[tuple[str, str], ...] = (
    (
        "Paspoort verlopen",
        "Mijn paspoort is {datum} verlopen. Kan ik deze week nog een afspraak "
        "maken voor een nieuw paspoort?",
    ),
    (
        "Verhuizing",
        "Ik ben {datum} verhuisd naar de {straat} {nr}. Hoe geef ik mijn verhuizing door?",
    ),
    (
        "ID-kaart",
        "Mijn dochter heeft een identiteitskaart nodig voor een schoolreis. Wat moet ik "
        "meenemen naar de afspraak?",
    ),
    ("Uittreksel", "Ik heb een uittreksel uit de BRP nodig voor mijn werkgever. Kan dat digitaal?"),
    (
        "Parkeervergunning",
        "Ik woon sinds kort aan de {straat} {nr} en wil een parkeervergunning "
        "voor bewoners aanvragen.",
    ),
    ("Bezoekersparkeren", "Hoe regel ik bezoekersparkeren voor mijn ouders die {datum} komen?"),
    (
        "Container",
        "De grijze container aan de {straat} {nr} is {datum} niet geleegd. Wanneer "
        "komen jullie alsnog?",
    ),
    ("Grofvuil", "Ik wil grofvuil laten ophalen, een oude bank en een kast. Kan dat op {datum}?"),
    (
        "Lantaarnpaal",
        "De lantaarnpaal bij {straat} {nr} doet het al een week niet. Het is 's "
        "avonds erg donker op de stoep.",
    ),
    (
        "Gat in de weg",
        "Er zit een groot gat in het fietspad op de {straat}. Vanochtend viel er bijna iemand.",
    ),
    (
        "Hulp thuis",
        "Mijn moeder van 84 heeft hulp nodig in het huishouden. Hoe vragen we dat aan bij de Wmo?",
    ),
    (
        "Bijstand",
        "Ik ben mijn baan kwijt en heb geen inkomen meer. Kan ik een bijstandsuitkering aanvragen?",
    ),
    (
        "Aanslag",
        "Ik heb de aanslag gemeentelijke belastingen ontvangen. Kan ik in termijnen betalen?",
    ),
    (
        "WOZ-waarde",
        "Ik ben het niet eens met de WOZ-waarde van mijn woning aan de {straat} {nr}. "
        "Ik maak bezwaar.",
    ),
    (
        "Kwijtschelding",
        "Ik kan de afvalstoffenheffing niet betalen. Kom ik in aanmerking voor kwijtschelding?",
    ),
    (
        "Dakkapel",
        "Heb ik een omgevingsvergunning nodig voor een dakkapel aan de achterkant van mijn huis?",
    ),
    (
        "Buurtfeest",
        "Wij willen {datum} een buurtfeest houden in de {straat}. Welke vergunning "
        "hebben we nodig?",
    ),
    (
        "Klacht",
        "Ik heb al drie keer gebeld over mijn aanvraag en niemand belt terug. Ik wil een "
        "klacht indienen over de behandeling.",
    ),
    ("Openingstijden", "Wat zijn de openingstijden van het stadhuis op {datum}?"),
    (
        "Overlast",
        "Mijn buren aan de {straat} maken elke nacht veel lawaai. Waar kan ik dat melden?",
    ),
    (
        "Moving",
        "I am moving to Groningen on {datum}. How do I register my new address at the "
        "municipality?",
    ),
)

# Channel mix of an ordinary day at the KCC (integrations deliver every channel but the counter).
INGEST_CHANNELS = {
    "email": 30,
    "webform": 20,
    "whatsapp": 25,
    "telegram": 5,
    "phone": 15,
    "post": 5,
}


def dutch_date(rng: random.Random) -> str:
    return f"{rng.choice(DAYS)} {rng.randint(1, 28)} {rng.choice(MONTHS)}"


def sender(channel: str, rng: random.Random, i: int) -> str:
    """`from` as each channel's adapter delivers it. Every request a resident of its own: a chat
    message from a resident with an open contact is a follow-up (200), not a new contact (201)."""
    who = 10_000 + i
    if channel in ("email", "webform"):
        return f"inwoner{who}@example.nl"
    if channel == "telegram":
        return str(7_000_000 + who)
    if channel == "post":
        return f"{rng.choice(STREETS)} {who % 300 + 1}, 9712 AB Groningen"
    return f"+316{20_000_000 + who:08d}"


def ingest_body(i: int, run: str, rng: random.Random) -> dict[str, str]:
    channel = rng.choices(list(INGEST_CHANNELS), weights=list(INGEST_CHANNELS.values()))[0]
    subject, text = rng.choice(TEMPLATES)
    fill = {"straat": rng.choice(STREETS), "nr": str(rng.randint(1, 250)), "datum": dutch_date(rng)}
    return {
        "channel": channel,
        "channel_message_id": f"bench-{run}-{i}",  # unique per run: every request is a new contact
        "from": sender(channel, rng, i),
        "subject": subject if channel in ("email", "webform") else "",
        "text": text.format(**fill),
    }


# --- safety -------------------------------------------------------------------------------------


def require_loopback(url: str) -> str:
    host = urlparse(url.replace("+asyncpg", "")).hostname or ""
    if host not in LOOPBACK:
        raise SystemExit(f"refusing {url}: this benchmark only talks to 127.0.0.1")
    return url


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc); None where that is not available."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the service as a separate process ----------------------------------------------------------


@dataclass
class Service:
    url: str
    token: str
    process: asyncio.subprocess.Process


def service_env(database_url: str, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KCC_")}
    if database_url:
        env["KCC_DATABASE_URL"] = database_url
    if redis_url:
        env["KCC_REDIS_URL"] = redis_url
    return env


async def run_kcc(args: list[str], env: dict[str, str], log: Path) -> str:
    """Run a `kcc` command to completion (bounded in time); its stdout, or an error with its log."""
    process = await asyncio.create_subprocess_exec(
        str(KCC), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    await asyncio.to_thread(log.write_bytes, out + err)
    if process.returncode != 0:
        raise RuntimeError(f"kcc {' '.join(args[:2])} failed:\n{err.decode()[-2000:]}")
    return out.decode()


async def wait_healthy(url: str, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"kcc serve exited with {process.returncode}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"kcc serve did not become healthy within {START_TIMEOUT:.0f} s")


async def stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM (aiohttp shuts down gracefully), then SIGKILL if it hangs."""
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def kcc_service(data_dir: Path, database_url: str, redis_url: str) -> AsyncIterator[Service]:
    """A fresh `kcc serve` on a free port, with an integration token made by `kcc agents add`
    (which also migrates the database, before the service starts)."""
    env = service_env(database_url, redis_url)
    common = ["--data-dir", str(data_dir)]
    added = await run_kcc(
        ["agents", "add", "--name", "bench-integration", "--role", "integration", *common],
        env,
        data_dir / "agents-add.log",
    )
    token = added.strip().splitlines()[-1]
    port = free_port()
    with (data_dir / "serve.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            str(KCC), "serve", "--port", str(port), *common, env=env, stdout=log, stderr=log
        )
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_healthy(url, process)
        yield Service(url, token, process)
    finally:
        await stop(process)


# --- ingest -------------------------------------------------------------------------------------


@dataclass
class Fired:
    seconds: float
    latencies: list[float]
    failures: list[str]


async def fire(service: Service, bodies: list[dict[str, str]], concurrency: int) -> Fired:
    """POST every body with `concurrency` clients on keep-alive connections; wall time of all."""
    headers = {"Authorization": f"Bearer {service.token}"}
    latencies: list[float] = []
    failures: list[str] = []
    pending = iter(bodies)  # shared: each client takes the next body until none are left

    async def client(http: aiohttp.ClientSession) -> None:
        for body in pending:
            start = time.perf_counter()
            try:
                async with http.post(f"{service.url}/api/contacts", json=body) as response:
                    answer = await response.text()
                    if response.status != 201:
                        failures.append(f"{response.status}: {answer[:200]}")
            except (aiohttp.ClientError, TimeoutError) as error:
                failures.append(f"{type(error).__name__}: {error}")
            latencies.append(time.perf_counter() - start)

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    return Fired(seconds, latencies, failures)


async def measure_ingest(
    setup: str, service: Service, count: int, concurrency: int, seed: int
) -> tuple[Fired, float, float]:
    """Warm up (connection pools, statement caches), then time `count` requests. Returns the run
    and the CPU use of the service and of this script during it, in % of one core."""
    rng = random.Random(seed)
    run = f"{setup}-{int(time.time())}"
    warmup = [ingest_body(i, run, rng) for i in range(min(200, max(20, count // 20)))]
    bodies = [ingest_body(len(warmup) + i, run, rng) for i in range(count)]
    await fire(service, warmup, concurrency)
    service_cpu = cpu_seconds(service.process.pid)
    client_cpu = time.process_time()
    fired = await fire(service, bodies, concurrency)
    service_after = cpu_seconds(service.process.pid)
    service_share = (
        (service_after - service_cpu) / fired.seconds * 100
        if service_cpu is not None and service_after is not None
        else math.nan
    )
    client_share = (time.process_time() - client_cpu) / fired.seconds * 100
    return fired, service_share, client_share


def raw_sqlite_rate(path: Path, count: int) -> float:
    """Plain sqlite3 (the standard library driver the service's intake writer uses), one
    connection, one INSERT per BEGIN IMMEDIATE..COMMIT, with the service's PRAGMAs (WAL,
    synchronous=FULL). SQLite has one writer, so more connections would only queue."""
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in SQLITE_PRAGMAS:
            db.execute(pragma)
        db.execute(
            "CREATE TABLE raw (id INTEGER PRIMARY KEY, channel TEXT NOT NULL, "
            "channel_message_id TEXT NOT NULL, received_at TEXT NOT NULL, body TEXT NOT NULL, "
            "UNIQUE (channel, channel_message_id))"
        )
        rng = random.Random(7)
        rows = [ingest_body(i, "raw", rng) for i in range(count)]
        start = time.perf_counter()
        for row in rows:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT INTO raw (channel, channel_message_id, received_at, body) "
                "VALUES (?, ?, ?, ?)",
                (
                    row["channel"],
                    row["channel_message_id"],
                    datetime.now(UTC).isoformat(),
                    row["text"],
                ),
            )
            db.execute("COMMIT")
        return count / (time.perf_counter() - start)
    finally:
        db.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


async def raw_postgres_rate(dsn: str, count: int, concurrency: int) -> float:
    """asyncpg, `concurrency` connections, each INSERT its own (autocommit) transaction, into a
    table of the benchmark database: same server, same durability settings as the service."""
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    try:
        await pool.execute(
            "DROP TABLE IF EXISTS bench_raw; CREATE TABLE bench_raw (id BIGSERIAL PRIMARY KEY, "
            "channel TEXT NOT NULL, channel_message_id TEXT NOT NULL, "
            "received_at TIMESTAMPTZ NOT NULL, body TEXT NOT NULL, "
            "UNIQUE (channel, channel_message_id))"
        )
        rng = random.Random(7)
        rows = iter([ingest_body(i, "raw", rng) for i in range(count)])

        async def writer() -> None:
            async with pool.acquire() as connection:
                for row in rows:
                    await connection.execute(
                        "INSERT INTO bench_raw (channel, channel_message_id, received_at, body) "
                        "VALUES ($1, $2, $3, $4)",
                        row["channel"],
                        row["channel_message_id"],
                        datetime.now(UTC),
                        row["text"],
                    )

        start = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
        await pool.execute("DROP TABLE bench_raw")
        return count / seconds
    finally:
        await pool.close()


def ingest_result(
    setup: str,
    fired: Fired,
    cpu: tuple[float, float],  # service, this script: from measure_ingest
    concurrency: int,
    raw_method: str,
    raw: tuple[float, float],
    notes: dict[str, str],
) -> IngestResult:
    count = len(fired.latencies)
    per_second = (count - len(fired.failures)) / fired.seconds  # only 201s count
    raw_mean = (raw[0] + raw[1]) / 2
    return IngestResult(
        setup=setup,
        contacts=count,
        concurrency=concurrency,
        seconds=fired.seconds,
        per_second=per_second,
        request=Latency.of(fired.latencies),
        failures=len(fired.failures),
        service_cpu_percent=cpu[0],
        client_cpu_percent=cpu[1],
        raw_method=raw_method,
        raw_before_per_second=raw[0],
        raw_after_per_second=raw[1],
        raw_per_second=raw_mean,
        ratio=per_second / raw_mean,
        notes=notes | ({"first_failure": fired.failures[0]} if fired.failures else {}),
    )


def print_ingest(result: IngestResult) -> None:
    print(
        f"  ingest   {result.per_second:8.1f} contacts/s  ({result.contacts} in "
        f"{result.seconds:.1f} s, C={result.concurrency}, {result.failures} failed)\n"
        f"  request  {result.request}\n"
        f"  cpu      service {result.service_cpu_percent:.0f}% of a core, "
        f"this script {result.client_cpu_percent:.0f}%\n"
        f"  raw      {result.raw_per_second:8.1f} rows/s  "
        f"(before {result.raw_before_per_second:.1f}, after {result.raw_after_per_second:.1f}; "
        f"{result.raw_method})\n"
        f"  ratio    {result.ratio * 100:6.1f}% of raw  (aim >= 50%: "
        f"{'met' if result.ratio >= 0.5 else 'NOT met'})"
    )


async def ingest_sqlite(count: int, concurrency: int) -> IngestResult:
    print(f"\n[1a] ingest: SQLite + in-process queues, {count} contacts, C={concurrency}")
    with tempfile.TemporaryDirectory(prefix="kcc-bench-sqlite-") as tmp:
        data_dir = Path(tmp)
        raw_file = data_dir / "raw.sqlite3"  # same file system as the service's database
        before = await asyncio.to_thread(raw_sqlite_rate, raw_file, count)
        async with kcc_service(data_dir, "", "") as service:
            fired, service_cpu, client_cpu = await measure_ingest(
                "sqlite", service, count, concurrency, 11
            )
        after = await asyncio.to_thread(raw_sqlite_rate, raw_file, count)
    method = "plain sqlite3, 1 connection, WAL + synchronous=FULL, 1 INSERT per transaction"
    result = ingest_result(
        "sqlite", fired, (service_cpu, client_cpu), concurrency, method, (before, after), {}
    )
    print_ingest(result)
    return result


@contextlib.asynccontextmanager
async def fresh_postgres(admin_dsn: str) -> AsyncIterator[str]:
    """Database `kcc_bench`, dropped if it exists, created empty, dropped afterwards."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {PG_DATABASE}")
    finally:
        await admin.close()
    base, _, _ = admin_dsn.rpartition("/")
    try:
        yield f"{base}/{PG_DATABASE}"
    finally:
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def flushed_redis(url: str) -> AsyncIterator[aioredis.Redis]:
    """The benchmark's own Redis database number, empty before and after."""
    client: aioredis.Redis = aioredis.Redis.from_url(url)
    try:
        await client.flushdb()
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


async def postgres_settings(dsn: str) -> dict[str, str]:
    connection = await asyncpg.connect(dsn)
    try:
        names = ("server_version", "fsync", "synchronous_commit", "wal_sync_method")
        return {name: str(await connection.fetchval(f"SHOW {name}")) for name in names}
    finally:
        await connection.close()


async def ingest_postgres(
    count: int, concurrency: int, admin_dsn: str, redis_url: str
) -> IngestResult:
    print(f"\n[1b] ingest: PostgreSQL + Redis, {count} contacts, C={concurrency}")
    async with fresh_postgres(admin_dsn) as dsn, flushed_redis(redis_url):
        settings = await postgres_settings(dsn)
        print("  server   " + ", ".join(f"{k}={v}" for k, v in settings.items()))
        before = await raw_postgres_rate(dsn, count, concurrency)
        with tempfile.TemporaryDirectory(prefix="kcc-bench-pg-") as tmp:
            async with kcc_service(Path(tmp), dsn, redis_url) as service:
                fired, service_cpu, client_cpu = await measure_ingest(
                    "postgres", service, count, concurrency, 12
                )
        after = await raw_postgres_rate(dsn, count, concurrency)
    method = f"asyncpg, {concurrency} connections, 1 INSERT per (autocommit) transaction"
    result = ingest_result(
        "postgres+redis",
        fired,
        (service_cpu, client_cpu),
        concurrency,
        method,
        (before, after),
        settings,
    )
    print_ingest(result)
    return result


# --- routing: the state -------------------------------------------------------------------------

# A big backlog is mostly written work; the phone and counter lines are short even on a bad day.
WAITING_CHANNELS = {
    "email": 45,
    "webform": 28,
    "post": 6,
    "whatsapp": 12,
    "telegram": 3,
    "phone": 5,
    "counter": 1,
}
LONGEST_WAIT = {"written": 10 * 86400, "chat": 1800, "phone": 900, "counter": 1200}  # seconds
LANGUAGES = {"nl": 80, "en": 8, "pl": 4, "de": 3, "tr": 3, "ar": 2}
# Contacts per product skill: some queues are much busier than others.
SKILL_WEIGHT = {
    "burgerzaken": 25,
    "afval": 15,
    "parkeren": 12,
    "belastingen": 10,
    "zorg": 8,
    "werk-inkomen": 8,
    "openbare-ruimte": 8,
    "vergunningen": 6,
    "klachten": 3,
    "algemeen": 5,
}
KINDS = [k.value for k in Kind]


def products(config_dir: Path) -> dict[str, list[str]]:
    """Product slugs (topics) per product skill, from the repository's products.toml."""
    by_skill: dict[str, list[str]] = {}
    for product in tomllib.loads((config_dir / "products.toml").read_text())["product"]:
        by_skill.setdefault(product["skill"], []).append(product["slug"])
    return by_skill


def contact_rows(count: int, planner: RoutePlanner, rng: random.Random) -> list[dict[str, Any]]:
    """Queued contacts as intake would have stored them: route, skills, priority and escalation
    level from the planner, so the index the router rebuilds is the one the service would have."""
    now = datetime.now(UTC)
    topics = products(REPO_CONFIG)
    skills = [s for s in SKILL_WEIGHT if s in topics]
    rows = []
    for i in range(count):
        channel = rng.choices(list(WAITING_CHANNELS), list(WAITING_CHANNELS.values()))[0]
        skill = rng.choices(skills, [SKILL_WEIGHT[s] for s in skills])[0]
        language = rng.choices(list(LANGUAGES), list(LANGUAGES.values()))[0]
        route = planner.route(
            rng.choice(topics[skill]), skill, rng.choice(KINDS), language, channel
        )
        channel_class = planner.channel_class(channel)
        waited = rng.uniform(0, LONGEST_WAIT[channel_class])
        received = now - timedelta(seconds=waited)
        at_risk = rng.random() < 0.05  # the sweep raised these near their deadline
        subject, text = rng.choice(TEMPLATES)
        rows.append(
            {
                "reference": f"KCC-{received.year}-B{i:07d}",
                "channel": channel,
                "direction": "inbound",
                "received_at": received,
                "channel_message_id": f"bench-waiting-{i}",
                "subject": subject,
                "body": text,
                "language": route.language,
                "kind": route.kind,
                "topic": route.topic,
                "skills": route.skills,
                "status": Status.queued.value,
                "priority": route.priority + (planner.config.at_risk_boost if at_risk else 0),
                "queue": route.queue,
                "escalation_level": planner.escalation_level(channel_class, waited),
                "enqueued_at": received,
            }
        )
    return rows


def agent_rows(count: int, planner: RoutePlanner, rng: random.Random) -> list[dict[str, Any]]:
    """Agents with varied skills: 1-3 products (a few generalists), Dutch plus maybe others,
    some channel kinds, the default capacity; all available, idle for a while."""
    config = planner.config
    now = datetime.now(UTC)
    product_skills = sorted(config.product_skills)
    rows = []
    for i in range(count):
        chosen = rng.sample(product_skills, 6 if rng.random() < 0.1 else rng.randint(1, 3))
        languages = ["nl"] + [
            lang
            for lang in ("en", "pl", "de", "tr", "ar")
            if rng.random() < (0.4 if lang == "en" else 0.06)
        ]
        kinds = [
            k
            for k, p in (("written", 0.8), ("chat", 0.5), ("phone", 0.5), ("counter", 0.15))
            if rng.random() < p
        ] or ["written"]
        rows.append(
            {
                "name": f"bench-agent-{i:04d}",
                "role": "agent",
                "token_hash": hashlib.sha256(f"bench-agent-{i}".encode()).hexdigest(),
                "skills": {s: rng.randint(1, 3) for s in chosen}
                | {s: 1 for s in languages + kinds},
                "capacity": dict(config.default_capacity),
                "status": AgentStatus.available.value,
                "status_since": now - timedelta(seconds=rng.uniform(0, 3600)),
                "active": True,
                "created_at": now,
            }
        )
    return rows


def fill_database(url: str, planner: RoutePlanner, waiting: int, agents: int) -> None:
    """Bulk insert (SQLAlchemy Core, one transaction): the state without the intake path."""
    rng = random.Random(3)
    engine = create_sync_sqlite_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.insert(CONTACT), contact_rows(waiting, planner, rng))
            connection.execute(sa.insert(AGENT), agent_rows(agents, planner, rng))
    finally:
        engine.dispose()


def restore_queued(url: str) -> None:
    """Undo what next_for_agent did, so the next backend starts from the same waiting contacts
    (their events stay: the history is append-only, and routing never reads it)."""
    engine = create_sync_sqlite_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.update(CONTACT)
                .where(CONTACT.c.status == Status.assigned.value)
                .values(
                    status=Status.queued.value,
                    assigned_agent_id=None,
                    assigned_at=None,
                    taken_at=None,
                )
            )
    finally:
        engine.dispose()


# --- routing: the measurements ------------------------------------------------------------------


def claim_arguments(presence: AgentPresence) -> tuple[list[str], list[str]]:
    """What Router._claim_for passes to claim_best for this agent."""
    return list(presence.skills), [c for c in presence.capacity if presence.can_take(c)]


async def decisions(backend: QueueBackend, rounds: int, seed: int) -> list[float]:
    """claim_best for random agents; each claimed contact is put back (untimed), so the index
    keeps its size and stays equal to the database."""
    rng = random.Random(seed)
    present = await backend.agents()
    samples = []
    for _ in range(rounds):
        skills, classes = claim_arguments(rng.choice(present))
        start = time.perf_counter()
        item = await backend.claim_best(skills, classes)
        samples.append(time.perf_counter() - start)
        if item is not None:
            await backend.enqueue(item)
    return samples


async def next_for_agent(services: Services, calls: int, seed: int) -> tuple[list[float], int]:
    """The full path an agent's "next" takes: offers, decision, reserve, the conditional UPDATE
    + event in one committed transaction (synchronous=FULL), the assignment listeners."""
    rng = random.Random(seed)
    agent_ids = [p.agent_id for p in await services.backend.agents()]
    samples, empty = [], 0
    for _ in range(calls):
        agent_id = rng.choice(agent_ids)
        start = time.perf_counter()
        contact = await services.router.next_for_agent(agent_id)
        samples.append(time.perf_counter() - start)
        empty += contact is None
    return samples, empty


async def routing_on(
    backend_name: str, data_dir: Path, redis_url: str, args: argparse.Namespace
) -> RoutingResult:
    services = await Services.build(Settings(data_dir=data_dir, redis_url=redis_url))
    try:
        start = time.perf_counter()
        await services.router.rebuild()  # the router's own start-up path: DB -> index
        rebuild = time.perf_counter() - start
        waiting = await services.backend.count()
        print(f"  {backend_name:6s} rebuild  {rebuild:6.1f} s  ({waiting} waiting)")
        await decisions(services.backend, min(100, args.decisions), seed=90)  # warm-up
        decision = Latency.of(await decisions(services.backend, args.decisions, seed=2))
        print(f"  {backend_name:6s} decision       {decision}")
        full, empty = await next_for_agent(services, args.calls, seed=4)
        full_latency = Latency.of(full)
        print(f"  {backend_name:6s} next_for_agent {full_latency}  ({empty} empty)")
        return RoutingResult(
            backend_name, waiting, args.agents, rebuild, decision, full_latency, empty
        )
    finally:
        await services.close()


def sqlite_update_commit(path: Path, rounds: int, ids: int) -> list[float]:
    """Raw: one single-row UPDATE + COMMIT on the routing database, plain sqlite3, same PRAGMAs."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in SQLITE_PRAGMAS:
            db.execute(pragma)
        rng = random.Random(5)
        samples = []
        for i in range(rounds):
            start = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            db.execute("UPDATE contact SET note = ? WHERE id = ?", (f"b{i}", rng.randint(1, ids)))
            db.execute("COMMIT")
            samples.append(time.perf_counter() - start)
        return samples
    finally:
        db.close()


async def aiosqlite_update_commit(data_dir: Path, rounds: int, ids: int) -> list[float]:
    """The same UPDATE + COMMIT through the service's async engine (aiosqlite, a thread hop per
    call): the floor under the store's claim, as the router pays it."""
    engine = create_engine(Settings(data_dir=data_dir).effective_database_url)
    writer = engine.execution_options(**{WRITE_OPTION: True})
    rng = random.Random(6)

    async def update() -> None:
        async with writer.begin() as connection:
            await connection.execute(
                sa.update(CONTACT).where(CONTACT.c.id == rng.randint(1, ids)).values(note="a")
            )

    try:
        await timed(update, 20)  # warm-up: pool, statement cache
        return await timed(update, rounds)
    finally:
        await engine.dispose()


async def routing(args: argparse.Namespace) -> dict[str, Any]:
    print(f"\n[2] routing: {args.agents} agents online, {args.waiting} contacts waiting")
    with tempfile.TemporaryDirectory(prefix="kcc-bench-routing-") as tmp:
        data_dir = Path(tmp)
        settings = Settings(data_dir=data_dir)
        services = await Services.build(settings)  # migrates the fresh database
        planner = services.planner
        await services.close()
        start = time.perf_counter()
        await asyncio.to_thread(
            fill_database, settings.effective_database_url, planner, args.waiting, args.agents
        )
        print(f"  state    bulk insert {time.perf_counter() - start:6.1f} s")

        results = [await routing_on("memory", data_dir, "", args)]
        database_file = data_dir / "kcc.sqlite3"
        raw_sqlite = Latency.of(sqlite_update_commit(database_file, args.calls, args.waiting))
        print(f"  raw      SQLite UPDATE+commit (sqlite3)   {raw_sqlite}")
        async_sqlite = Latency.of(await aiosqlite_update_commit(data_dir, args.calls, args.waiting))
        print(f"  raw      SQLite UPDATE+commit (aiosqlite) {async_sqlite}")

        baselines: dict[str, Any] = {
            "sqlite_update_commit_sqlite3": asdict(raw_sqlite),
            "sqlite_update_commit_aiosqlite": asdict(async_sqlite),
        }
        restore_queued(settings.effective_database_url)
        async with flushed_redis(args.redis_url) as client:
            results.append(await routing_on("redis", data_dir, args.redis_url, args))
            await timed(client.ping, 100)  # warm-up
            ping = Latency.of(await timed(client.ping, args.decisions))
            print(f"  raw      Redis PING                       {ping}")
            baselines["redis_ping"] = asdict(ping)
    decision_p99 = max(r.decision.p99_ms for r in results)
    return {
        "results": [asdict(r) for r in results],
        "baselines": baselines,
        "aim": {
            "judged_on": "decision (QueueBackend.claim_best) p99, worst backend",
            "limit_ms": 5.0,
            "p99_ms": decision_p99,
            "met": decision_p99 < 5.0,
        },
    }


# --- report -------------------------------------------------------------------------------------


def summary(ingest: list[IngestResult], route: dict[str, Any] | None) -> Iterator[str]:
    yield ""
    yield "=" * 96
    yield "SUMMARY"
    if ingest:
        yield (
            f"{'ingest':18s} {'contacts/s':>11s} {'p50 ms':>8s} {'p99 ms':>8s} "
            f"{'raw rows/s':>11s} {'ratio':>7s} {'>=50%':>8s}"
        )
        for r in ingest:
            yield (
                f"{r.setup:18s} {r.per_second:11.1f} {r.request.p50_ms:8.2f} "
                f"{r.request.p99_ms:8.2f} {r.raw_per_second:11.1f} {r.ratio * 100:6.1f}% "
                f"{'met' if r.ratio >= 0.5 else 'NOT met':>8s}"
            )
    if route is not None:
        yield ""
        yield f"{'routing':18s} {'decision p50':>13s} {'p99':>8s} {'next p50':>10s} {'p99':>8s}"
        for r in route["results"]:
            d, n = r["decision"], r["next_for_agent"]
            yield (
                f"{r['backend']:18s} {d['p50_ms']:10.3f} ms {d['p99_ms']:8.3f} "
                f"{n['p50_ms']:7.3f} ms {n['p99_ms']:8.3f}"
            )
        for name, b in route["baselines"].items():
            yield f"{'raw ' + name:34s} {b['p50_ms']:7.3f} ms {b['p99_ms']:8.3f}"
        aim = route["aim"]
        yield (
            f"aim: {aim['judged_on']} < {aim['limit_ms']} ms: {aim['p99_ms']:.3f} ms -> "
            f"{'met' if aim['met'] else 'NOT met'}"
        )
    yield "=" * 96


def save(report: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"foundation-{date.today().isoformat()}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--contacts", type=int, default=3000, help="ingest requests per setup")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent HTTP clients")
    parser.add_argument("--waiting", type=int, default=100_000, help="contacts waiting (routing)")
    parser.add_argument("--agents", type=int, default=1000, help="agents online (routing)")
    parser.add_argument("--decisions", type=int, default=2000, help="claim_best samples")
    parser.add_argument("--calls", type=int, default=500, help="next_for_agent samples")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--only", choices=["sqlite", "postgres", "routing"])
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="admin DSN; the benchmark creates and drops database kcc_bench next to it",
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/14",
        help="a Redis database the benchmark may flush",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.contacts, args.waiting, args.agents = 300, 5000, 100
        args.decisions, args.calls = 300, 100
    require_loopback(args.postgres)
    require_loopback(args.redis_url)
    if not os.access(KCC, os.X_OK):
        parser.error(f"{KCC} not found: run `make setup` first")
    return args


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    ingest: list[IngestResult] = []
    route: dict[str, Any] | None = None
    async with asyncio.timeout(PHASE_TIMEOUT * 3):
        if args.only in (None, "sqlite"):
            async with asyncio.timeout(PHASE_TIMEOUT):
                ingest.append(await ingest_sqlite(args.contacts, args.concurrency))
        if args.only in (None, "postgres"):
            async with asyncio.timeout(PHASE_TIMEOUT):
                ingest.append(
                    await ingest_postgres(
                        args.contacts, args.concurrency, args.postgres, args.redis_url
                    )
                )
        if args.only in (None, "routing"):
            async with asyncio.timeout(PHASE_TIMEOUT):
                route = await routing(args)
    elapsed = time.perf_counter() - started
    for line in summary(ingest, route):
        print(line)
    report = {
        "benchmark": "foundation",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(elapsed, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "arguments": vars(args),
        "ingest": [asdict(r) for r in ingest],
        "routing": route,
    }
    print(f"took {elapsed:.0f} s; results in {save(report).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
