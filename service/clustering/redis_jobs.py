"""Clustering jobs in Redis: they survive restarts and are shared by every replica.

Keys (after TAD_REDIS_PREFIX):
  cjob:{id}        hash    the job record (`JobRecord` fields); expires keep_s after it ends
  cjob:{id}:data   string  the input as .npz bytes; deleted when the job ends
  cjobs:queue      list    queued job ids, oldest first
  cjobs:running    zset    running job id → lease deadline (Redis server time, ms)

Every transition is one Lua script, so a job is never in two states. A worker renews its lease
(heartbeat) while it trains; a worker that dies (kill -9, OOM, lost host) stops renewing, and
the first `recover` after the deadline — every replica runs it at start-up and periodically —
re-queues the job (or fails it after TAD_CLUSTERING_MAX_RECOVERIES), never leaving it "running"
forever. Writes check the claim token, so a worker that lost its lease cannot overwrite the
outcome of the one that took over. Lease deadlines use the Redis server's clock (TIME).

Why one file of ~300 lines: every state change is a Lua script next to the Python that calls
it, so each transition's atomicity can be read in one place (the contract test covers them).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any, cast

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.clustering.jobstore import (
    DIED,
    INTERRUPTED,
    LOST_WHILE_CANCELLING,
    Beat,
    JobExists,
    JobRecord,
)
from service.state.store import StoreUnavailable

_NOW_MS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

_ENQUEUE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
redis.call('SET', KEYS[3], ARGV[3])
redis.call('RPUSH', KEYS[1], ARGV[2])
return 1
"""

_CLAIM = (
    _NOW_MS
    + """
while true do
  local id = redis.call('LPOP', KEYS[1])
  if not id then return false end
  local job = ARGV[1] .. id
  if redis.call('HGET', job, 'status') == 'queued' then
    local attempts = redis.call('HINCRBY', job, 'attempts', 1)
    local token = ARGV[2] .. ':' .. attempts
    redis.call('HSET', job, 'status', 'running', 'token', token, 'started_at', ARGV[4])
    redis.call('HDEL', job, 'progress')
    redis.call('ZADD', KEYS[2], now_ms() + tonumber(ARGV[3]), id)
    return {id, token}
  end
end
"""
)

_HEARTBEAT = (
    _NOW_MS
    + """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[2]
   or redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 'lost' end
redis.call('ZADD', KEYS[2], now_ms() + tonumber(ARGV[3]), ARGV[1])
if redis.call('HGET', KEYS[1], 'cancel') == '1' then return 'cancel' end
return 'ok'
"""
)

_PROGRESS = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[2])
return 1
"""

_FINISH = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'finished_at', ARGV[6])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'result', ARGV[4]) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[5]) end
redis.call('HDEL', KEYS[1], 'token')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
return 1
"""

_REQUEUE = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued')
redis.call('HDEL', KEYS[1], 'token', 'progress')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('LPUSH', KEYS[3], ARGV[1])
return 1
"""

_RECOVER = (
    _NOW_MS
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms())
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local job = ARGV[1] .. id
  if redis.call('HGET', job, 'status') == 'running' then
    local n = redis.call('HINCRBY', job, 'recoveries', 1)
    redis.call('HDEL', job, 'token')
    local final = nil
    if redis.call('HGET', job, 'cancel') == '1' then
      final = {'cancelled', ARGV[5]}
    elseif n > tonumber(ARGV[2]) then
      final = {'failed', (string.gsub(ARGV[6], '{n}', tostring(n)))}
    end
    if final then
      redis.call('HSET', job, 'status', final[1], 'error', final[2], 'finished_at', ARGV[3])
      redis.call('DEL', job .. ':data')
      redis.call('EXPIRE', job, tonumber(ARGV[4]))
    else
      redis.call('HSET', job, 'status', 'queued')
      redis.call('HDEL', job, 'progress')
      redis.call('LPUSH', KEYS[2], id)
    end
  end
end
return ids
"""
)

_DIED = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then return 'lost' end
local n = redis.call('HINCRBY', KEYS[1], 'recoveries', 1)
redis.call('HDEL', KEYS[1], 'token')
redis.call('ZREM', KEYS[2], ARGV[1])
local final = nil
if redis.call('HGET', KEYS[1], 'cancel') == '1' then
  final = {'cancelled', ARGV[5]}
elseif n > tonumber(ARGV[3]) then
  final = {'failed', (string.gsub(ARGV[6], '{n}', tostring(n)))}
end
if final then
  redis.call('HSET', KEYS[1], 'status', final[1], 'error', final[2], 'finished_at', ARGV[4])
  redis.call('DEL', KEYS[4])
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
  return final[1]
end
redis.call('HSET', KEYS[1], 'status', 'queued')
redis.call('HDEL', KEYS[1], 'progress')
redis.call('LPUSH', KEYS[3], ARGV[1])
return 'queued'
"""

_CANCEL = """
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return false end
if st == 'queued' then
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'cancel', '1', 'finished_at', ARGV[2],
             'error', 'cancelled by request')
  redis.call('DEL', KEYS[3])
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
elseif st == 'running' then
  redis.call('HSET', KEYS[1], 'cancel', '1')
end
return st
"""


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


@contextlib.contextmanager
def _reachable() -> Iterator[None]:
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc


class RedisJobStore:
    kind = "redis"

    def __init__(self, url: str, prefix: str, keep_s: int, timeout_s: float = 2.0) -> None:
        self._r = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._job = f"{prefix}cjob:"
        self._queue = f"{prefix}cjobs:queue"
        self._running = f"{prefix}cjobs:running"
        self._keep_s = keep_s
        reg = self._r.register_script
        self._enqueue, self._claim, self._heartbeat = reg(_ENQUEUE), reg(_CLAIM), reg(_HEARTBEAT)
        self._progress, self._finish, self._requeue = reg(_PROGRESS), reg(_FINISH), reg(_REQUEUE)
        self._recover, self._cancel, self._died = reg(_RECOVER), reg(_CANCEL), reg(_DIED)

    def _keys(self, job_id: str) -> tuple[str, str]:
        return self._job + job_id, self._job + job_id + ":data"

    def enqueue(self, job_id: str, fields: dict[str, str], data: bytes, max_queue: int) -> bool:
        key, data_key = self._keys(job_id)
        pairs = [x for kv in fields.items() for x in kv]
        with _reachable():
            done = self._enqueue(
                keys=[self._queue, key, data_key], args=[max_queue, job_id, data, *pairs]
            )
        if done == -1:
            raise JobExists(job_id)
        return bool(done)

    def get(self, job_id: str) -> JobRecord | None:
        with _reachable():
            raw = cast(dict[bytes, bytes], self._r.hgetall(self._keys(job_id)[0]))
        return JobRecord.from_hash(job_id, raw) if raw else None

    def data(self, job_id: str) -> bytes | None:
        with _reachable():
            return cast(bytes | None, self._r.get(self._keys(job_id)[1]))

    def claim(self, worker: str, lease_s: float) -> tuple[str, str] | None:
        with _reachable():
            got = self._claim(
                keys=[self._queue, self._running],
                args=[self._job, worker, int(lease_s * 1000), repr(time.time())],
            )
        return None if not got else (_text(got[0]), _text(got[1]))

    def heartbeat(self, job_id: str, token: str, lease_s: float) -> Beat:
        with _reachable():
            beat = self._heartbeat(
                keys=[self._keys(job_id)[0], self._running],
                args=[job_id, token, int(lease_s * 1000)],
            )
        return cast(Beat, _text(beat))

    def progress(self, job_id: str, token: str, progress: str) -> bool:
        with _reachable():
            return bool(self._progress(keys=[self._keys(job_id)[0]], args=[token, progress]))

    def finish(
        self, job_id: str, token: str, status: str, result: str = "", error: str = ""
    ) -> bool:
        key, data_key = self._keys(job_id)
        with _reachable():
            done = self._finish(
                keys=[key, self._running, data_key],
                args=[job_id, token, status, result, error, repr(time.time()), self._keep_s],
            )
        return bool(done)

    def requeue(self, job_id: str, token: str) -> bool:
        with _reachable():
            done = self._requeue(
                keys=[self._keys(job_id)[0], self._running, self._queue], args=[job_id, token]
            )
        return bool(done)

    def recover(self, max_recoveries: int) -> list[str]:
        with _reachable():
            ids = self._recover(
                keys=[self._running, self._queue],
                args=[
                    self._job,
                    max_recoveries,
                    repr(time.time()),
                    self._keep_s,
                    LOST_WHILE_CANCELLING,
                    INTERRUPTED,
                ],
            )
        return [_text(i) for i in ids]

    def died(self, job_id: str, token: str, max_recoveries: int, reason: str) -> str:
        key, data_key = self._keys(job_id)
        failed = DIED.replace("{reason}", reason)
        with _reachable():
            status = self._died(
                keys=[key, self._running, self._queue, data_key],
                args=[
                    job_id,
                    token,
                    max_recoveries,
                    repr(time.time()),
                    LOST_WHILE_CANCELLING,
                    failed,
                    self._keep_s,
                ],
            )
        return _text(status)

    def cancel(self, job_id: str) -> JobRecord | None:
        key, data_key = self._keys(job_id)
        with _reachable():
            st = self._cancel(
                keys=[key, self._queue, data_key], args=[job_id, repr(time.time()), self._keep_s]
            )
        return None if not st else self.get(job_id)

    def ping(self) -> bool:
        try:
            with _reachable():
                return bool(self._r.ping())
        except StoreUnavailable:
            return False

    def close(self) -> None:
        self._r.close()
