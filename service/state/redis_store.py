"""Redis-backed `StateStore` (redis.asyncio): state shared by every service process.

Keys (prefix `tad:` by default; the stream id in braces is a Redis Cluster hash tag):
  {p}stream:{id}   hash  v (version counter), meta (JSON), state (encode_state bytes)
  {p}alarms:{id}   list  alarm events (JSON), oldest first, capped
  {p}raw:{id}      list  raw points: since the accumulator was last zero (episode history),
                        or the last TAD_HISTORY_POINTS (recorded history), whichever is more
  {p}episodes:{id} list  closed alarm episodes with their raw points (JSON), capped
  {p}open          hash  stream id → open alarm (JSON)
  {p}gauges        hash  stream id → {"model", "s", "alarm"} for /metrics
  {p}streams       set   stream ids

A request's updates are applied by one Lua script that first compares every stream's version
and then writes all or nothing (optimistic concurrency: the caller re-reads and retries the
conflicting streams). The global keys make that script single-node; with Redis Cluster one would
commit per stream instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import BusyLoadingError, OutOfMemoryError, ReadOnlyError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.state.store import GAUGE_CHUNK, StoredStream, StoreUnavailable, StreamUpdate

LANDED_TRIES = 3  # reads of an uncertain commit's outcome, 50 and 100 ms apart

_COMMIT = """
local cap = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
local conflicts = {}
local offsets = {}
local a = 4
for i = 1, n do
  offsets[i] = a
  local v = redis.call('HGET', KEYS[4 * i], 'v') or '0'
  if v ~= ARGV[a + 1] then table.insert(conflicts, ARGV[a]) end
  local r = a + 7 + tonumber(ARGV[a + 6])
  local p = r + 2 + tonumber(ARGV[r + 1])
  a = p + 1 + tonumber(ARGV[p])
end
if #conflicts > 0 then return conflicts end
for i = 1, n do
  local o = offsets[i]
  local sid, hist, raw, eps = ARGV[o], KEYS[4 * i + 1], KEYS[4 * i + 2], KEYS[4 * i + 3]
  redis.call('HSET', KEYS[4 * i], 'v', tonumber(ARGV[o + 1]) + 1,
             'meta', ARGV[o + 2], 'state', ARGV[o + 3])
  local ne = tonumber(ARGV[o + 6])
  for j = 1, ne do redis.call('RPUSH', hist, ARGV[o + 6 + j]) end
  if ne > 0 then redis.call('LTRIM', hist, -cap, -1) end
  if ARGV[o + 4] == '' then redis.call('HDEL', KEYS[1], sid)
  else redis.call('HSET', KEYS[1], sid, ARGV[o + 4]) end
  redis.call('HSET', KEYS[2], sid, ARGV[o + 5])
  redis.call('SADD', KEYS[3], sid)
  local r = o + 7 + ne
  local keep, nr = tonumber(ARGV[r]), tonumber(ARGV[r + 1])
  if keep >= 0 then
    for j = 1, nr do redis.call('RPUSH', raw, ARGV[r + 1 + j]) end
    if keep == 0 then redis.call('DEL', raw) else redis.call('LTRIM', raw, -keep, -1) end
  end
  local p = r + 2 + nr
  local nep = tonumber(ARGV[p])
  for j = 1, nep do redis.call('RPUSH', eps, ARGV[p + j]) end
  if nep > 0 then redis.call('LTRIM', eps, -budget, -1) end
end
return conflicts
"""
# KEYS: open, gauges, streams, then (stream, alarms, raw, episodes) per update → stream i at 4i.


def _text(x: bytes | str) -> str:
    return x.decode() if isinstance(x, bytes) else x


def _bytes(x: bytes | str) -> bytes:
    return x.encode() if isinstance(x, str) else x


@contextlib.contextmanager
def _reachable() -> Iterator[None]:
    """Turn Redis failures that a retry can outlive — unreachable, loading, read-only replica,
    out of memory under `noeviction` — into StoreUnavailable (→ 503 / close 1013)."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise StoreUnavailable(f"redis: {type(exc).__name__}", in_transit=True) from exc
    except (BusyLoadingError, OutOfMemoryError, ReadOnlyError) as exc:
        raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc
    except ResponseError as exc:  # a script's write refused for memory arrives as a plain error
        if "OOM" not in str(exc):
            raise
        raise StoreUnavailable("redis: out of memory (maxmemory with noeviction)") from exc


class RedisStore:
    kind = "redis"

    def __init__(
        self,
        url: str,
        prefix: str = "tad:",
        history_cap: int = 1000,
        timeout_s: float = 2.0,
        episode_budget: int = 50,
    ) -> None:
        self._redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1),
            decode_responses=False,
        )
        self._p = prefix
        self._cap = history_cap
        self._budget = episode_budget
        self._commit = self._redis.register_script(_COMMIT)

    def _stream_key(self, sid: str) -> str:
        return f"{self._p}stream:{{{sid}}}"

    def _alarms_key(self, sid: str) -> str:
        return f"{self._p}alarms:{{{sid}}}"

    def _raw_key(self, sid: str) -> str:
        return f"{self._p}raw:{{{sid}}}"

    def _episodes_key(self, sid: str) -> str:
        return f"{self._p}episodes:{{{sid}}}"

    async def get_many(self, stream_ids: Sequence[str]) -> list[StoredStream | None]:
        with _reachable():
            async with self._redis.pipeline(transaction=False) as pipe:
                for sid in stream_ids:
                    pipe.hmget(self._stream_key(sid), "v", "meta", "state")
                rows = await pipe.execute()
        out: list[StoredStream | None] = []
        for sid, (v, meta, state) in zip(stream_ids, rows, strict=True):
            out.append(None if v is None else StoredStream(sid, int(v), meta, state))
        return out

    def _script_call(self, updates: Sequence[StreamUpdate]) -> tuple[list[str], list[Any]]:
        keys: list[str] = [f"{self._p}open", f"{self._p}gauges", f"{self._p}streams"]
        args: list[Any] = [self._cap, len(updates), self._budget]
        for u in updates:
            sid = u.stream_id
            keys += [
                self._stream_key(sid),
                self._alarms_key(sid),
                self._raw_key(sid),
                self._episodes_key(sid),
            ]
            args += [
                u.stream_id,
                str(u.expected_version),
                u.record.meta_bytes(),
                u.record.state_bytes(),
                u.open_alarm or b"",
                u.gauge,
                len(u.events),
                *u.events,
                u.raw_keep,
                len(u.raw),
                *u.raw,
                len(u.episodes),
                *u.episodes,
            ]
        return keys, args

    async def commit(self, updates: Sequence[StreamUpdate]) -> list[str]:
        return (await self.commit_many([updates]))[0]

    async def commit_many(self, groups: Sequence[Sequence[StreamUpdate]]) -> list[list[str]]:
        """One script call per group, pipelined without MULTI: each group is atomic on its own
        (a script runs alone), and one round trip carries them all.

        A reply lost in transit (a timeout, a dropped connection) does not say whether the
        scripts ran. Rather than answer 503 for work that may be stored — a client would resend
        it — the groups' first streams are read back: a group whose state is the one written
        landed (no conflict). When none landed, the original error stands (503: nothing was
        stored; a command still queued in a paused server may land later, and a resend is
        then acknowledged as duplicates); in a pipelined batch where some landed, the others
        are reported as conflicts and redone from the stored state."""
        try:
            return await self._commit_groups(groups)
        except StoreUnavailable as exc:
            if not exc.in_transit:  # refused by Redis (memory, read-only): nothing was written
                raise
            landed = await self._landed(groups, exc)
            if not any(landed):
                raise StoreUnavailable(
                    f"{exc}; nothing of it is stored: resend it", in_transit=True
                ) from exc
        return [
            [] if ok else [u.stream_id for u in g] for g, ok in zip(groups, landed, strict=True)
        ]

    async def _commit_groups(self, groups: Sequence[Sequence[StreamUpdate]]) -> list[list[str]]:
        if len(groups) == 1:
            keys, args = self._script_call(groups[0])
            with _reachable():
                conflicts = await self._commit(keys=keys, args=args)
            return [[_text(c) for c in conflicts]]
        with _reachable():
            async with self._redis.pipeline(transaction=False) as pipe:
                for g in groups:
                    keys, args = self._script_call(g)
                    await self._commit(keys=keys, args=args, client=pipe)
                replies = await pipe.execute()
        return [[_text(c) for c in conflicts] for conflicts in replies]

    async def _landed(
        self, groups: Sequence[Sequence[StreamUpdate]], cause: StoreUnavailable
    ) -> list[bool]:
        """Whether each group's commit is stored, read back within a few short retries."""
        first = [g[0] for g in groups]
        for attempt in range(LANDED_TRIES):
            try:
                with _reachable():
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for u in first:
                            pipe.hmget(self._stream_key(u.stream_id), "v", "state")
                        rows = await pipe.execute()
                break
            except StoreUnavailable:
                if attempt == LANDED_TRIES - 1:
                    raise StoreUnavailable(
                        f"{cause}; whether the points were stored is unknown: resend them "
                        "(points already stored are acknowledged as duplicates)"
                    ) from cause
                await asyncio.sleep(0.05 * 2**attempt)
        return [
            v is not None and int(v) == u.expected_version + 1 and state == u.record.state_bytes()
            for u, (v, state) in zip(first, rows, strict=True)
        ]

    async def delete(self, stream_id: str) -> bool:
        with _reachable():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(
                    self._stream_key(stream_id),
                    self._alarms_key(stream_id),
                    self._raw_key(stream_id),
                    self._episodes_key(stream_id),
                )
                pipe.hdel(f"{self._p}open", stream_id)
                pipe.hdel(f"{self._p}gauges", stream_id)
                pipe.srem(f"{self._p}streams", stream_id)
                deleted, *_ = await pipe.execute()
        return bool(deleted)

    async def list_streams(self) -> list[str]:
        with _reachable():
            members = await self._redis.smembers(f"{self._p}streams")
        return sorted(_text(m) for m in members)

    async def alarm_history(self, stream_id: str) -> list[bytes]:
        with _reachable():
            return [_bytes(e) for e in await self._redis.lrange(self._alarms_key(stream_id), 0, -1)]

    async def open_alarms(self) -> list[bytes]:
        with _reachable():
            found = await self._redis.hgetall(f"{self._p}open")
        return [_bytes(found[k]) for k in sorted(found)]

    async def stream_page(
        self, cursor: str | None, limit: int, prefix: str = ""
    ) -> tuple[list[str], str | None]:
        """SSCAN from `cursor`: about `limit` ids a page (Redis's guarantee: every id present
        for the whole walk comes at least once; one may repeat across a rehash)."""
        with _reachable():
            nxt, found = await self._redis.sscan(
                f"{self._p}streams", _scan_cursor(cursor), match=_glob(prefix), count=limit
            )
        return sorted(_text(m) for m in found), (None if int(nxt) == 0 else str(nxt))

    async def open_alarm_page(
        self, cursor: str | None, limit: int, prefix: str = ""
    ) -> tuple[list[bytes], str | None]:
        """HSCAN of the open alarms from `cursor`, with SSCAN's guarantee (above)."""
        with _reachable():
            nxt, reply = await self._redis.hscan(
                f"{self._p}open", _scan_cursor(cursor), match=_glob(prefix), count=limit
            )
        found = cast(dict[bytes, bytes], reply)
        alarms = [_bytes(found[k]) for k in sorted(found)]
        return alarms, (None if int(nxt) == 0 else str(nxt))

    async def gauge_chunks(self) -> AsyncIterator[list[tuple[str, bytes]]]:
        """HSCAN, GAUGE_CHUNK entries a round trip (HGETALL of 100,000 entries is one reply
        decoded in one piece on the event loop). HSCAN may repeat an entry across a rehash:
        the `seen` set keeps each stream once."""
        seen: set[bytes] = set()
        cursor = 0
        while True:
            with _reachable():
                cursor, reply = await self._redis.hscan(
                    f"{self._p}gauges", cursor, count=GAUGE_CHUNK
                )
            found = cast(dict[bytes, bytes], reply)
            chunk = [(_text(k), _bytes(v)) for k, v in found.items() if k not in seen]
            seen.update(found)
            yield chunk
            if cursor == 0:
                return

    async def raw_history(self, stream_id: str) -> list[bytes]:
        with _reachable():
            return [_bytes(e) for e in await self._redis.lrange(self._raw_key(stream_id), 0, -1)]

    async def raw_range(self, stream_id: str, start: int, stop: int) -> list[bytes]:
        with _reachable():
            found = await self._redis.lrange(self._raw_key(stream_id), start, stop)
        return [_bytes(e) for e in found]

    async def raw_length(self, stream_id: str) -> int:
        with _reachable():
            return int(await self._redis.llen(self._raw_key(stream_id)))

    async def episodes(self, stream_id: str) -> list[bytes]:
        with _reachable():
            found = await self._redis.lrange(self._episodes_key(stream_id), 0, -1)
        return [_bytes(e) for e in found]

    async def ping(self) -> bool:
        try:
            with _reachable():
                return bool(await self._redis.ping())
        except StoreUnavailable:
            return False

    async def close(self) -> None:
        await self._redis.aclose()


def _scan_cursor(cursor: str | None) -> int:
    """A page cursor as Redis's SCAN cursor; ValueError for one this store did not hand out."""
    if cursor is None:
        return 0
    if not cursor.isdigit():
        raise ValueError(f"cursor {cursor!r} is not one this service handed out")
    return int(cursor)


def _glob(prefix: str) -> str | None:
    """A SCAN MATCH pattern for keys starting with `prefix` (glob characters escaped)."""
    return None if not prefix else re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"
