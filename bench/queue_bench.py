"""claim_best latency on both queue backends with a realistic index size.

    .venv/bin/python bench/queue_bench.py [--redis redis://127.0.0.1:6379/15] [--contacts 100000]

Fills each backend with N waiting contacts over ~180 buckets (15 topics x 4 languages x 3 channel
classes), then times claim_best for agents with random skill sets, putting each claimed contact
back so the index keeps its size. Next to it, the raw round trip of PING and ZRANGE on the same
Redis, so the script's own cost can be told apart from the network and the client library.
Uses its own random key prefix and removes it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis.asyncio as aioredis

from queues.base import QueueBackend, WaitingContact
from queues.memory import MemoryQueueBackend
from queues.redis import RedisQueueBackend

TOPICS = [f"topic{i:02d}" for i in range(15)]
LANGUAGES = ["nl", "en", "tr", "ar"]
CLASSES = ["phone", "chat", "written"]
T0 = 1_700_000_000.0


def contacts(n: int, rng: random.Random) -> list[WaitingContact]:
    items = []
    for i in range(n):
        topic, language, channel = rng.choice(TOPICS), rng.choice(LANGUAGES), rng.choice(CLASSES)
        enqueued = T0 + rng.uniform(0, 3600)
        priority_step = rng.choice([40, 60, 80])
        items.append(
            WaitingContact(
                contact_id=i + 1,
                queue=f"q{TOPICS.index(topic) % 5}",
                requirements=frozenset({topic, language, channel}),
                channel_class=channel,
                score=priority_step * 1e10 + enqueued,
                enqueued_at=enqueued,
            )
        )
    return items


def agent_skills(rng: random.Random) -> tuple[list[str], list[str]]:
    skills = rng.sample(TOPICS, rng.randint(2, 8)) + rng.sample(LANGUAGES, rng.randint(1, 2))
    classes = rng.sample(CLASSES, rng.randint(1, 3))
    return skills + classes, classes


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    return f"p50 {p50:7.3f} ms   p99 {p99:7.3f} ms   (n={len(ordered)})"


async def timed(call: Callable[[], Awaitable[object]], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return samples


async def fill(backend: QueueBackend, items: list[WaitingContact]) -> None:
    # Concurrent batches: a Redis fill one round trip at a time would dominate the run.
    for start in range(0, len(items), 500):
        await asyncio.gather(*(backend.enqueue(item) for item in items[start : start + 500]))


async def claims(backend: QueueBackend, rounds: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    samples = []
    for _ in range(rounds):
        skills, classes = agent_skills(rng)
        start = time.perf_counter()
        item = await backend.claim_best(skills, classes)
        samples.append(time.perf_counter() - start)
        if item is not None:
            await backend.enqueue(item)
    return samples


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5000)
    args = parser.parse_args()

    rng = random.Random(1)
    items = contacts(args.contacts, rng)
    buckets = {(item.bucket, item.channel_class) for item in items}
    print(f"{len(items)} waiting contacts in {len(buckets)} buckets, {args.rounds} claims each\n")

    memory = MemoryQueueBackend()
    start = time.perf_counter()
    await fill(memory, items)
    print(f"memory  fill {time.perf_counter() - start:6.2f} s")
    print(f"memory  claim_best   {percentiles(await claims(memory, args.rounds, 2))}")

    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    backend = RedisQueueBackend(args.redis, prefix)
    client: aioredis.Redis = aioredis.Redis.from_url(args.redis, decode_responses=True)
    try:
        start = time.perf_counter()
        await fill(backend, items)
        print(f"redis   fill {time.perf_counter() - start:6.2f} s")
        await claims(backend, 200, 99)  # warm up: script cache, connections
        print(f"redis   claim_best   {percentiles(await claims(backend, args.rounds, 2))}")
        print(f"redis   PING         {percentiles(await timed(client.ping, args.rounds))}")
        some_bucket = f"{{{prefix}}}:bucket:{items[0].channel_class}:{items[0].bucket}"
        print(
            "redis   ZRANGE 0 0   "
            + percentiles(
                await timed(lambda: client.zrange(some_bucket, 0, 0, withscores=True), args.rounds)
            )
        )
    finally:
        await backend.reset()
        await backend.close()
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
