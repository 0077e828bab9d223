"""Redis queue backend: the index shared by every router process on every machine.

Each operation that reads and then writes is one Lua script, so Redis runs it atomically: two
processes can never claim the same contact or both fill an agent's last free slot.

Key layout (`{P}` is the hash tag of the prefix, so all keys share one cluster slot; scripts build
the dynamic key names from it, which is allowed because they hash to the same slot):

    {P}:waiting          hash   contact_id -> JSON record of the WaitingContact
    {P}:buckets          hash   bucket id -> "<channel class>|<req1+req2...>" (non-empty buckets)
    {P}:bucket:<id>      zset   member -> score; bucket id = "<channel class>:<bucket_key>"
    {P}:age              zset   contact_id -> enqueued_at (escalation sweep)
    {P}:age:<queue>      zset   contact_id -> enqueued_at (stats per queue)
    {P}:queues           set    queues with anyone waiting
    {P}:agents           hash   agent_id -> JSON presence
    {P}:ready            set    agents available with room for one more contact (kept in step
                                by every script that changes an agent)
    {P}:built            string present once the index was rebuilt from the database

The bucket id names the channel class because `bucket_key` does not: once escalation drops the
channel skill, a phone and a chat contact can need the same skills yet use different capacities.

A bucket member is "<enqueued_at key><contact_id key>:<contact_id>" with both keys fixed-width
hex that sorts like the numbers. Redis orders equal scores by member bytes, so inside a bucket
ties go to the earliest enqueued_at, then the lowest contact id: the same order as the memory
backend.

Records keep floats as Python `repr` strings: Lua's cjson re-encodes numbers with 14 significant
digits, which would round epoch seconds with fractions when a script rewrites a record.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis

from queues.base import AgentPresence, QueueBackend, QueueStats, WaitingContact

_LUA_COMMON = r"""
local P = ARGV[1]
local WAITING, BUCKETS, AGE, QUEUES = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

local function bucket_id(queue, reqs, class)
  return class .. ':' .. queue .. '|' .. reqs
end

local function bucket_zset(id)
  return P .. ':bucket:' .. id
end

local function age_zset(queue)
  return P .. ':age:' .. queue
end

local function leave_bucket(id, member)
  local zset = bucket_zset(id)
  redis.call('ZREM', zset, member)
  if redis.call('EXISTS', zset) == 0 then
    redis.call('HDEL', BUCKETS, id)
  end
end

local function join_bucket(id, class, reqs, score, member)
  redis.call('ZADD', bucket_zset(id), score, member)
  redis.call('HSET', BUCKETS, id, class .. '|' .. reqs)
end

-- Take a waiting contact out of every structure; `rec` is its decoded record.
local function forget(cid, rec)
  redis.call('HDEL', WAITING, cid)
  leave_bucket(bucket_id(rec.q, rec.r, rec.c), rec.m)
  redis.call('ZREM', AGE, cid)
  local age = age_zset(rec.q)
  redis.call('ZREM', age, cid)
  if redis.call('EXISTS', age) == 0 then
    redis.call('SREM', QUEUES, rec.q)
  end
end

-- Byte order, as Redis orders equal scores; Lua's own `<` on strings follows the locale.
local function bytes_before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x < y
    end
  end
  return #a < #b
end
"""

# ARGV: P, contact_id, record JSON, queue, reqs, channel class, score, enqueued_at, member
_ENQUEUE = (
    _LUA_COMMON
    + r"""
local cid = ARGV[2]
local old = redis.call('HGET', WAITING, cid)
if old then
  forget(cid, cjson.decode(old))
end
local queue, reqs, class = ARGV[4], ARGV[5], ARGV[6]
redis.call('HSET', WAITING, cid, ARGV[3])
join_bucket(bucket_id(queue, reqs, class), class, reqs, ARGV[7], ARGV[9])
redis.call('ZADD', AGE, ARGV[8], cid)
redis.call('ZADD', age_zset(queue), ARGV[8], cid)
redis.call('SADD', QUEUES, queue)
return 1
"""
)

# ARGV: P, contact_id
_WITHDRAW = (
    _LUA_COMMON
    + r"""
local raw = redis.call('HGET', WAITING, ARGV[2])
if not raw then
  return false
end
forget(ARGV[2], cjson.decode(raw))
return raw
"""
)

# ARGV: P, contact_id, reqs, score
_RESCORE = (
    _LUA_COMMON
    + r"""
local cid = ARGV[2]
local raw = redis.call('HGET', WAITING, cid)
if not raw then
  return 0
end
local rec = cjson.decode(raw)
leave_bucket(bucket_id(rec.q, rec.r, rec.c), rec.m)
rec.r = ARGV[3]
rec.s = ARGV[4]
join_bucket(bucket_id(rec.q, rec.r, rec.c), rec.c, rec.r, rec.s, rec.m)
redis.call('HSET', WAITING, cid, cjson.encode(rec))
return 1
"""
)

# ARGV: P, n, skill_1 .. skill_n, class_1 .. class_m
_CLAIM_BEST = (
    _LUA_COMMON
    + r"""
local n = tonumber(ARGV[2])
local skills, classes = {}, {}
for i = 3, 2 + n do
  skills[ARGV[i]] = true
end
for i = 3 + n, #ARGV do
  classes[ARGV[i]] = true
end

local function number(s)
  if s == 'inf' then return math.huge end
  if s == '-inf' then return -math.huge end
  return tonumber(s)
end

local function eligible(meta)
  local bar = string.find(meta, '|', 1, true)
  if not classes[string.sub(meta, 1, bar - 1)] then
    return false
  end
  for skill in string.gmatch(string.sub(meta, bar + 1), '[^+]+') do
    if not skills[skill] then
      return false
    end
  end
  return true
end

-- Only a damaged index (keys deleted by hand, eviction) makes this loop more than once.
while true do
  local registry = redis.call('HGETALL', BUCKETS)
  local best_zset, best_member, best_score
  for i = 1, #registry, 2 do
    if eligible(registry[i + 1]) then
      local zset = bucket_zset(registry[i])
      local head = redis.call('ZRANGE', zset, 0, 0, 'WITHSCORES')
      if head[1] == nil then
        redis.call('HDEL', BUCKETS, registry[i])
      else
        local score = number(head[2])
        if best_score == nil or score < best_score
            or (score == best_score and bytes_before(head[1], best_member)) then
          best_zset, best_member, best_score = zset, head[1], score
        end
      end
    end
  end
  if best_member == nil then
    return false
  end
  local cid = string.match(best_member, ':(.+)$')
  local raw = redis.call('HGET', WAITING, cid)
  if raw then
    forget(cid, cjson.decode(raw))
    return raw
  end
  redis.call('ZREM', best_zset, best_member)
end
"""
)

# ARGV: P, enqueued_before, limit
_WAITING_SINCE = (
    _LUA_COMMON
    + r"""
local ids = redis.call('ZRANGEBYSCORE', AGE, '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
local out = {}
for _, cid in ipairs(ids) do
  local raw = redis.call('HGET', WAITING, cid)
  if raw then
    out[#out + 1] = raw
  end
end
return out
"""
)

# ARGV: P. Returns queue, count, oldest enqueued_at, queue, count, ...
_STATS = (
    _LUA_COMMON
    + r"""
local out = {}
for _, queue in ipairs(redis.call('SMEMBERS', QUEUES)) do
  local age = age_zset(queue)
  local head = redis.call('ZRANGE', age, 0, 0, 'WITHSCORES')
  if head[1] then
    out[#out + 1] = queue
    out[#out + 1] = redis.call('ZCARD', age)
    out[#out + 1] = head[2]
  end
end
return out
"""
)

# ARGV: P, contact_id. Returns how many of its queue and channel class are ahead, or false.
_AHEAD = (
    _LUA_COMMON
    + r"""
local raw = redis.call('HGET', WAITING, ARGV[2])
if not raw then
  return false
end
local rec = cjson.decode(raw)

local prefix = rec.c .. ':' .. rec.q .. '|'
local ahead = 0
local registry = redis.call('HGETALL', BUCKETS)
for i = 1, #registry, 2 do
  local id = registry[i]
  if string.sub(id, 1, #prefix) == prefix then
    local zset = bucket_zset(id)
    ahead = ahead + redis.call('ZCOUNT', zset, '-inf', '(' .. rec.s)
    for _, member in ipairs(redis.call('ZRANGEBYSCORE', zset, rec.s, rec.s)) do
      if bytes_before(member, rec.m) then
        ahead = ahead + 1
      end
    end
  end
end
return ahead
"""
)

_LUA_AGENT = r"""
local AGENTS, READY = KEYS[1], KEYS[2]

local function total_load(agent)
  local total = 0
  for _, held in pairs(agent.load) do
    total = total + tonumber(held)
  end
  return total
end

-- Keep READY (available agents with room for one more contact of some kind) in step.
local function update_ready(id, agent)
  if agent.status == 'available' then
    for class, cap in pairs(agent.capacity) do
      if tonumber(cap) - tonumber(agent.load[class] or 0) > 0 then
        redis.call('SADD', READY, id)
        return
      end
    end
  end
  redis.call('SREM', READY, id)
end
"""

# ARGV: agent_id, channel class
_RESERVE = (
    _LUA_AGENT
    + r"""
local raw = redis.call('HGET', AGENTS, ARGV[1])
if not raw then
  return 0
end
local agent = cjson.decode(raw)
local class = ARGV[2]
local held = tonumber(agent.load[class] or 0)
if agent.status ~= 'available' or tonumber(agent.capacity[class] or 0) - held <= 0 then
  return 0
end
agent.load[class] = held + 1
redis.call('HSET', AGENTS, ARGV[1], cjson.encode(agent))
update_ready(ARGV[1], agent)
return 1
"""
)

# ARGV: agent_id, channel class, now
_RELEASE = (
    _LUA_AGENT
    + r"""
local raw = redis.call('HGET', AGENTS, ARGV[1])
if not raw then
  return 0
end
local agent = cjson.decode(raw)
local class = ARGV[2]
local held = tonumber(agent.load[class] or 0)
if held <= 0 then
  return 0  -- nothing to release: in particular the agent's place in line stays
end
agent.load[class] = held - 1
if total_load(agent) <= 0 then
  agent.idle_since = ARGV[3]
end
redis.call('HSET', AGENTS, ARGV[1], cjson.encode(agent))
update_ready(ARGV[1], agent)
return 1
"""
)

# ARGV: agent_id, status, now
# idle_since restarts also when the agent was available already: the database restarts
# status_since on every status change and a rebuild takes idle_since from it.
_SET_STATUS = (
    _LUA_AGENT
    + r"""
local raw = redis.call('HGET', AGENTS, ARGV[1])
if not raw then
  return false
end
local agent = cjson.decode(raw)
agent.status = ARGV[2]
if agent.status == 'available' and total_load(agent) <= 0 then
  agent.idle_since = ARGV[3]
end
raw = cjson.encode(agent)
redis.call('HSET', AGENTS, ARGV[1], raw)
update_ready(ARGV[1], agent)
return raw
"""
)


def _float_key(value: float) -> str:
    """16 hex digits that sort (as text) in the order of the floats."""
    (bits,) = struct.unpack(">Q", struct.pack(">d", value))
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | 1 << 63
    return f"{bits:016x}"


def _int_key(value: int) -> str:
    """16 hex digits that sort (as text) in the order of signed 64-bit integers."""
    return f"{(value + (1 << 63)) & 0xFFFFFFFFFFFFFFFF:016x}"


def _member(item: WaitingContact) -> str:
    return f"{_float_key(item.enqueued_at)}{_int_key(item.contact_id)}:{item.contact_id}"


def _joined(requirements: Iterable[str]) -> str:
    return "+".join(sorted(set(requirements)))


def _encode_item(item: WaitingContact) -> str:
    return json.dumps(
        {
            "id": str(item.contact_id),
            "q": item.queue,
            "r": _joined(item.requirements),
            "c": item.channel_class,
            "s": repr(item.score),
            "e": repr(item.enqueued_at),
            "m": _member(item),
        }
    )


def _decode_item(raw: str | bytes) -> WaitingContact:
    record = json.loads(raw)
    return WaitingContact(
        contact_id=int(record["id"]),
        queue=record["q"],
        requirements=frozenset(s for s in record["r"].split("+") if s),
        channel_class=record["c"],
        score=float(record["s"]),
        enqueued_at=float(record["e"]),
    )


def _encode_agent(presence: AgentPresence) -> str:
    return json.dumps(
        {
            "agent_id": presence.agent_id,
            "skills": presence.skills,
            "capacity": presence.capacity,
            "load": presence.load,
            "status": presence.status,
            "idle_since": repr(presence.idle_since),
        }
    )


def _decode_agent(raw: str | bytes) -> AgentPresence:
    record: dict[str, Any] = json.loads(raw)

    # cjson writes whole numbers it computed as integers, but be lenient with "2.0" anyway.
    def counts(values: dict[str, Any]) -> dict[str, int]:
        return {key: int(value) for key, value in values.items()}

    return AgentPresence(
        agent_id=int(record["agent_id"]),
        skills=counts(record["skills"]),
        capacity=counts(record["capacity"]),
        load=counts(record["load"]),
        status=record["status"],
        idle_since=float(record["idle_since"]),
    )


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


class RedisQueueBackend(QueueBackend):
    def __init__(self, url: str, prefix: str = "kcc") -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError("the prefix becomes a cluster hash tag: no braces in it")
        # A blocking pool: with the default one, redis-py 8 raises MaxConnectionsError as soon as
        # more than 100 coroutines use Redis at once (a burst of HTTP requests); these should
        # wait for a connection instead. Query-string options in the URL still win.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, decode_responses=True, max_connections=100, timeout=20
        )
        self._client: aioredis.Redis = aioredis.Redis.from_pool(pool)
        self._p = "{" + prefix + "}"
        self._waiting_keys = [
            f"{self._p}:waiting",
            f"{self._p}:buckets",
            f"{self._p}:age",
            f"{self._p}:queues",
        ]
        self._agents_key = f"{self._p}:agents"
        self._ready_key = f"{self._p}:ready"
        self._built_key = f"{self._p}:built"
        script = self._client.register_script
        self._enqueue = script(_ENQUEUE)
        self._withdraw = script(_WITHDRAW)
        self._rescore = script(_RESCORE)
        self._claim_best = script(_CLAIM_BEST)
        self._waiting_since = script(_WAITING_SINCE)
        self._stats = script(_STATS)
        self._ahead = script(_AHEAD)
        self._reserve = script(_RESERVE)
        self._release = script(_RELEASE)
        self._set_status = script(_SET_STATUS)

    # --- waiting contacts ---------------------------------------------------------------------

    async def enqueue(self, item: WaitingContact) -> None:
        await self._enqueue(
            keys=self._waiting_keys,
            args=[
                self._p,
                str(item.contact_id),
                _encode_item(item),
                item.queue,
                _joined(item.requirements),
                item.channel_class,
                repr(item.score),
                repr(item.enqueued_at),
                _member(item),
            ],
        )

    async def withdraw(self, contact_id: int) -> WaitingContact | None:
        raw = await self._withdraw(keys=self._waiting_keys, args=[self._p, str(contact_id)])
        return _decode_item(raw) if raw else None

    async def get(self, contact_id: int) -> WaitingContact | None:
        raw = await self._client.hget(self._waiting_keys[0], str(contact_id))
        return _decode_item(raw) if raw else None

    async def claim_best(
        self, agent_skills: Iterable[str], channel_classes: Iterable[str]
    ) -> WaitingContact | None:
        skills = list(agent_skills)
        raw = await self._claim_best(
            keys=self._waiting_keys,
            args=[self._p, len(skills), *skills, *channel_classes],
        )
        return _decode_item(raw) if raw else None

    async def rescore(self, contact_id: int, requirements: frozenset[str], score: float) -> bool:
        moved = await self._rescore(
            keys=self._waiting_keys,
            args=[self._p, str(contact_id), _joined(requirements), repr(score)],
        )
        return bool(moved)

    async def waiting_since(
        self, enqueued_before: float, limit: int = 1000
    ) -> list[WaitingContact]:
        if limit <= 0:
            return []
        raws = await self._waiting_since(
            keys=self._waiting_keys, args=[self._p, repr(enqueued_before), limit]
        )
        return [_decode_item(raw) for raw in raws]

    async def stats(self) -> dict[str, QueueStats]:
        flat = await self._stats(keys=self._waiting_keys, args=[self._p])
        result: dict[str, QueueStats] = {}
        for i in range(0, len(flat), 3):
            queue = flat[i]
            result[queue] = QueueStats(queue, int(flat[i + 1]), float(flat[i + 2]))
        return result

    async def count(self) -> int:
        return int(await self._client.hlen(self._waiting_keys[0]))

    async def ahead(self, contact_id: int) -> int | None:
        found = await self._ahead(keys=self._waiting_keys, args=[self._p, str(contact_id)])
        return None if found is None else int(found)

    # --- agent presence -----------------------------------------------------------------------

    async def put_agent(self, presence: AgentPresence) -> None:
        ready = presence.status == "available" and any(
            presence.spare(c) > 0 for c in presence.capacity
        )
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(self._agents_key, str(presence.agent_id), _encode_agent(presence))
            if ready:
                pipe.sadd(self._ready_key, str(presence.agent_id))
            else:
                pipe.srem(self._ready_key, str(presence.agent_id))
            await pipe.execute()

    async def remove_agent(self, agent_id: int) -> None:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hdel(self._agents_key, str(agent_id))
            pipe.srem(self._ready_key, str(agent_id))
            await pipe.execute()

    async def ready_agents(self) -> list[AgentPresence]:
        ids = await self._client.smembers(self._ready_key)
        if not ids:
            return []  # the usual case when contacts wait: no agent data is read at all
        raws = await self._client.hmget(self._agents_key, list(ids))
        return [_decode_agent(raw) for raw in raws if raw]

    async def get_agent(self, agent_id: int) -> AgentPresence | None:
        raw = await self._client.hget(self._agents_key, str(agent_id))
        return _decode_agent(raw) if raw else None

    async def agents(self) -> list[AgentPresence]:
        return [_decode_agent(raw) for raw in await self._client.hvals(self._agents_key)]

    async def set_status(self, agent_id: int, status: str, now: float) -> AgentPresence | None:
        raw = await self._set_status(
            keys=[self._agents_key, self._ready_key], args=[str(agent_id), status, repr(now)]
        )
        return _decode_agent(raw) if raw else None

    async def reserve(self, agent_id: int, channel_class: str) -> bool:
        done = await self._reserve(
            keys=[self._agents_key, self._ready_key], args=[str(agent_id), channel_class]
        )
        return bool(done)

    async def release(self, agent_id: int, channel_class: str, now: float) -> None:
        await self._release(
            keys=[self._agents_key, self._ready_key],
            args=[str(agent_id), channel_class, repr(now)],
        )

    # --- lifecycle ----------------------------------------------------------------------------

    async def reset(self) -> None:
        # SCAN rather than a key registry: it also finds keys a damaged index left behind.
        # Never FLUSHDB: the database may hold other prefixes (other tenants, tests).
        batch: list[str] = []
        async for key in self._client.scan_iter(match=_glob_escape(self._p) + ":*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                await self._client.unlink(*batch)
                batch = []
        if batch:
            await self._client.unlink(*batch)

    async def mark_built(self) -> None:
        await self._client.set(self._built_key, "1")

    async def is_built(self) -> bool:
        return bool(await self._client.exists(self._built_key))

    async def close(self) -> None:
        await self._client.aclose()
