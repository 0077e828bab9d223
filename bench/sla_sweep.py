"""The SLA timer sweep with 1,000,000 open contacts in the database, next to a baseline
measured in the same run.

    .venv/bin/python bench/sla_sweep.py [--contacts 1000000] [--due 500] [--only sqlite|postgres]

Per database (SQLite file, PostgreSQL):
1. Bulk-load N open contacts, each with its pending warning and answer-breach timers (2N timer
   rows), plus `--due` warning timers that are due now (executemany on SQLite, COPY on
   PostgreSQL).
2. Baseline: the bare indexed SELECT of the due timer rows (what any sweep must read).
3. One sweep firing the due timers (claim, read the contact and its history, record the warning
   and its event, finish): wall time and Python memory (tracemalloc peak), then an idle sweep
   (nothing due, the common case) p50.
4. Delay: timers due over the next seconds, fired by the real APScheduler job (the service's
   `sweep_seconds`); due -> fired p50 / p99 / max.
Aims from the issue: a sweep under 1 s, delay under 5 s.

Only 127.0.0.1 is contacted. PostgreSQL: a database `kcc_bench_sla`, created fresh and dropped at
the end. Temporary directories are removed whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import resource
import sqlite3
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from kcc.clock import SystemClock
from kcc.services import Services
from kcc.settings import Settings
from sla.store import TIMER

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES_DB = "kcc_bench_sla"
RESULTS = Path(__file__).with_name("results")
CONTACT_COLUMNS = (
    "reference", "channel", "direction", "received_at", "channel_message_id", "subject", "body",
    "language", "kind", "topic", "skills", "status", "priority", "queue", "escalation_level",
    "enqueued_at", "ack_due", "answer_due", "acked_at", "sla_norm", "norm_due",
    "sla_paused_seconds",
)  # fmt: skip
TIMER_COLUMNS = ("contact_id", "kind", "due_at", "run_at", "attempts")


@dataclass
class Result:
    database: str
    contacts: int
    timer_rows: int
    load_seconds: float
    baseline_select_ms_p50: float
    sweep_due: int
    sweep_seconds: float
    warm_sweep_seconds: float
    sweep_peak_python_kib: float
    idle_sweep_ms_p50: float
    delay_timers: int
    delay_p50_s: float
    delay_p99_s: float
    delay_max_s: float
    rss_max_mib: float


def due_rows(n: int, due: int, now: datetime) -> list[tuple[Any, ...]]:
    """`due` warning timers due a second ago, on random contacts."""
    at = now - timedelta(seconds=1)
    return [(i, "warning", at, at, 0) for i in random.Random(7).sample(range(1, n + 1), due)]


def contact_select(n: int, now: datetime, stamp: Callable[[str], str], seq: str) -> str:
    """The N generated contacts as one INSERT ... SELECT (rows made by the database itself:
    1,000,000 in seconds instead of minutes of client round trips)."""
    received, due = stamp("-2592000 - i % 86400"), stamp("1036800 + i % 86400")
    queue = "CASE i % 5 WHEN 0 THEN 'afval' WHEN 1 THEN 'burgerzaken' WHEN 2 THEN 'parkeren' " \
        "WHEN 3 THEN 'belastingen' ELSE 'zorg' END"  # fmt: skip
    return (
        f"INSERT INTO contact ({','.join(CONTACT_COLUMNS)}) {seq} SELECT "
        f"'KCC-2026-' || lpad_i, 'email', 'inbound', {received}, 'bench-' || i, '', "
        f"'vraag', 'nl', 'vraag', 't', '[\"afval\", \"nl\", \"written\"]', 'assigned', 10, "
        f"{queue}, 0, {received}, {stamp('-2160000 - i % 86400')}, {due}, {received}, "
        f"'written-answer', {due}, 0 FROM numbers"
    )


def timer_select(kind: str, offset: str, stamp: Callable[[str], str], seq: str) -> str:
    at = stamp(offset)
    return (
        f"INSERT INTO sla_timer ({','.join(TIMER_COLUMNS)}) {seq} "
        f"SELECT i, '{kind}', {at}, {at}, 0 FROM numbers"
    )


def sqlite_value(value: Any) -> Any:
    """The storage format SQLAlchemy's SQLite DateTime reads back (naive UTC, microseconds)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def load_sqlite(path: Path, n: int, due: int, now: datetime) -> None:
    """Rows first, then the service's own indexes rebuilt over them (far faster than keeping
    them up to date row by row); the result is the same database."""
    base = int(now.timestamp())

    def stamp(offset: str) -> str:
        return f"(datetime({base} + ({offset}), 'unixepoch') || '.000000')"

    seq = (
        "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < "
        f"{n}), numbers(i, lpad_i) AS (SELECT i, printf('%07d', i) FROM seq)"
    )
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA synchronous=OFF")  # generated data: no need to fsync it
        indexes = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            " AND tbl_name IN ('contact', 'sla_timer')"
        ).fetchall()
        for name, _ in indexes:
            connection.execute(f'DROP INDEX "{name}"')
        with connection:
            connection.execute(contact_select(n, now, stamp, seq))
            connection.execute(timer_select("warning", "259200 + i % 86400", stamp, seq))
            connection.execute(timer_select("answer_breach", "1036800 + i % 86400", stamp, seq))
            connection.executemany(
                f"INSERT INTO sla_timer ({','.join(TIMER_COLUMNS)}) VALUES (?,?,?,?,?)",
                [tuple(map(sqlite_value, row)) for row in due_rows(n, due, now)],
            )
        for _, sql in indexes:
            connection.execute(sql)
        connection.execute("ANALYZE")
    finally:
        connection.close()


async def load_postgres(dsn: str, n: int, due: int, now: datetime) -> None:
    base = int(now.timestamp())

    def stamp(offset: str) -> str:
        return f"to_timestamp({base} + ({offset}))"

    seq = (
        "WITH numbers AS (SELECT i, lpad(i::text, 7, '0') AS lpad_i "
        f"FROM generate_series(1, {n}) i)"
    )
    connection = await asyncpg.connect(dsn)
    try:
        # Plain indexes are rebuilt after the load (constraints' indexes stay).
        indexes = await connection.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('contact', "
            "'sla_timer') AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        )
        for index in indexes:
            await connection.execute(f'DROP INDEX "{index["indexname"]}"')
        await connection.execute(contact_select(n, now, stamp, seq))
        await connection.execute(timer_select("warning", "259200 + i % 86400", stamp, seq))
        await connection.execute(timer_select("answer_breach", "1036800 + i % 86400", stamp, seq))
        await connection.copy_records_to_table(
            "sla_timer", records=due_rows(n, due, now), columns=list(TIMER_COLUMNS)
        )
        for index in indexes:
            await connection.execute(index["indexdef"])
        await connection.execute("ANALYZE contact")
        await connection.execute("ANALYZE sla_timer")
    finally:
        await connection.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def measure(services: Services, n: int, due: int, delay_timers: int) -> dict[str, Any]:
    engine = services.sla
    due_rows = (
        sa.select(TIMER.c.id)
        .where(TIMER.c.fired_at.is_(None), TIMER.c.run_at <= sa.bindparam("now"))
        .order_by(TIMER.c.run_at)
        .limit(engine.book.timers.batch)
    )
    times = []
    for _ in range(20):
        started = time.perf_counter()
        async with services.store.readers() as session:
            found = (await session.execute(due_rows, {"now": datetime.now(UTC)})).all()
        times.append(time.perf_counter() - started)
    assert len(found) == min(due, engine.book.timers.batch), len(found)

    tracemalloc.start()
    started = time.perf_counter()
    fired = await engine.sweep()
    sweep_seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert fired == due, (fired, due)

    # The same burst again in a process that has swept before (statements compiled, pools warm):
    # the steady state of a running service.
    rng = random.Random(5)
    burst = [
        {
            "contact_id": c,
            "kind": "warning",
            "due_at": datetime.now(UTC),
            "run_at": datetime.now(UTC),
        }
        for c in rng.sample(range(1, n + 1), due)
    ]
    async with services.store.sessions() as session, session.begin():
        await session.execute(sa.insert(TIMER), burst)
    started = time.perf_counter()
    assert await engine.sweep() == due
    warm_seconds = time.perf_counter() - started

    idle = []
    for _ in range(20):
        started = time.perf_counter()
        assert await engine.sweep() == 0
        idle.append(time.perf_counter() - started)

    # Delay: timers due over the next seconds, fired by the real periodic job.
    now = datetime.now(UTC)
    rng = random.Random(11)
    rows = []
    for contact_id in rng.sample(range(1, n + 1), delay_timers):
        at = now + timedelta(seconds=rng.uniform(1.0, 6.0))
        rows.append({"contact_id": contact_id, "kind": "warning", "due_at": at, "run_at": at})
    async with services.store.sessions() as session, session.begin():
        await session.execute(sa.insert(TIMER), rows)
    scheduler = AsyncIOScheduler()
    scheduler.add_job(
        engine.sweep,
        "interval",
        seconds=engine.book.timers.sweep_seconds,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=30,
    )
    scheduler.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            async with services.store.readers() as session:
                left = (
                    await session.execute(
                        sa.select(sa.func.count())
                        .select_from(TIMER)
                        .where(TIMER.c.fired_at.is_(None), TIMER.c.run_at <= datetime.now(UTC))
                    )
                ).scalar_one()
            if left == 0 and datetime.now(UTC) > now + timedelta(seconds=6.5):
                break
    finally:
        scheduler.shutdown(wait=False)
        await engine.wait_for_sweep()
    async with services.store.readers() as session:
        fired_rows = (
            await session.execute(
                sa.select(TIMER.c.due_at, TIMER.c.fired_at).where(
                    TIMER.c.due_at > now, TIMER.c.due_at < now + timedelta(seconds=7)
                )
            )
        ).all()
    delays = [(f - d).total_seconds() for d, f in fired_rows if f is not None]
    assert len(delays) == delay_timers, (len(delays), delay_timers)
    return {
        "baseline_select_ms_p50": statistics.median(times) * 1000,
        "sweep_due": fired,
        "sweep_seconds": sweep_seconds,
        "warm_sweep_seconds": warm_seconds,
        "sweep_peak_python_kib": peak / 1024,
        "idle_sweep_ms_p50": statistics.median(idle) * 1000,
        "delay_timers": delay_timers,
        "delay_p50_s": percentile(delays, 0.5),
        "delay_p99_s": percentile(delays, 0.99),
        "delay_max_s": max(delays),
    }


async def run_sqlite(n: int, due: int, delay_timers: int) -> Result:
    with tempfile.TemporaryDirectory(prefix="kcc-bench-sla-") as tmp:
        settings = Settings(data_dir=Path(tmp))
        services = await Services.build(settings, SystemClock())  # migrates the new file
        try:
            now = datetime.now(UTC)
            started = time.perf_counter()
            await asyncio.to_thread(load_sqlite, Path(tmp) / "kcc.sqlite3", n, due, now)
            load = time.perf_counter() - started
            figures = await measure(services, n, due, delay_timers)
        finally:
            await services.close()
    return result("sqlite", n, due, load, figures)


async def run_postgres(n: int, due: int, delay_timers: int) -> Result:
    admin = await asyncpg.connect(POSTGRES_ADMIN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{POSTGRES_DB}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{POSTGRES_DB}"')
    finally:
        await admin.close()
    dsn = f"postgresql://postgres@127.0.0.1:5432/{POSTGRES_DB}"
    try:
        with tempfile.TemporaryDirectory(prefix="kcc-bench-sla-") as tmp:
            settings = Settings(data_dir=Path(tmp), database_url=dsn)
            services = await Services.build(settings, SystemClock())
            try:
                now = datetime.now(UTC)
                started = time.perf_counter()
                await load_postgres(dsn, n, due, now)
                load = time.perf_counter() - started
                figures = await measure(services, n, due, delay_timers)
            finally:
                await services.close()
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{POSTGRES_DB}" WITH (FORCE)')
        finally:
            await admin.close()
    return result("postgresql", n, due, load, figures)


def result(database: str, n: int, due: int, load: float, figures: dict[str, Any]) -> Result:
    return Result(
        database=database,
        contacts=n,
        timer_rows=2 * n + due,
        load_seconds=load,
        rss_max_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **figures,
    )


def table(results: list[Result]) -> str:
    lines = [
        "| database | open contacts | baseline: bare SELECT of due rows | sweep firing "
        "due timers (first / warm) | idle sweep | sweep peak Python memory | "
        "due -> fired p50 / p99 / max |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.database} | {r.contacts:,} | {r.baseline_select_ms_p50:.2f} ms | "
            f"{r.sweep_due} in {r.sweep_seconds:.2f} / {r.warm_sweep_seconds:.2f} s | "
            f"{r.idle_sweep_ms_p50:.2f} ms | "
            f"{r.sweep_peak_python_kib / 1024:.1f} MiB | {r.delay_p50_s:.2f} / "
            f"{r.delay_p99_s:.2f} / {r.delay_max_s:.2f} s |"
        )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=500, help="timers due in the measured sweep")
    parser.add_argument("--delay-timers", type=int, default=200)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    results = []
    if args.only in (None, "sqlite"):
        results.append(await run_sqlite(args.contacts, args.due, args.delay_timers))
        print(f"sqlite done: {asdict(results[-1])}", flush=True)
    if args.only in (None, "postgres"):
        results.append(await run_postgres(args.contacts, args.due, args.delay_timers))
        print(f"postgresql done: {asdict(results[-1])}", flush=True)
    print()
    print(table(results))
    print("\nload: " + ", ".join(f"{r.database} {r.load_seconds:.0f} s" for r in results))
    print(f"RSS max of this process: {max(r.rss_max_mib for r in results):.0f} MiB")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"sla-{date.today().isoformat()}.json"
    out.write_text(
        json.dumps(
            {"machine": platform.platform(), "results": [asdict(r) for r in results]}, indent=2
        )
    )
    print(f"results: {out}")


if __name__ == "__main__":
    asyncio.run(main())
