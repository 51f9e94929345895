"""The StateStore contract, for the in-memory store and for Redis (a real redis-server)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from service.state.redis_store import RedisStore
from service.state.store import MemoryStore, RawRecord, StateStore, StoreUnavailable, StreamUpdate


def run(coro_fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(coro_fn())


@pytest.fixture(params=["memory", "redis"])
def make_store(request: pytest.FixtureRequest) -> Callable[[], StateStore]:
    if request.param == "memory":
        return lambda: MemoryStore(history_cap=3)
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    return lambda: RedisStore(url, prefix, history_cap=3)


async def gauges(store: StateStore) -> dict[str, bytes]:
    """Every chunk of the store's /metrics entries, each stream once."""
    out: dict[str, bytes] = {}
    async for chunk in store.gauge_chunks():
        for sid, entry in chunk:
            assert sid not in out
            out[sid] = entry
    return out


def upd(sid: str, version: int, state: bytes = b"s", **kw: Any) -> StreamUpdate:
    return StreamUpdate(sid, version, RawRecord(b'{"m":1}', state), **kw)


def test_commit_is_compare_and_set_on_the_version(make_store: Callable[[], StateStore]) -> None:
    async def go() -> None:
        store = make_store()
        assert await store.commit([upd("a", 0, b"one")]) == []
        assert await store.commit([upd("a", 0, b"two")]) == ["a"]  # it exists now
        assert await store.commit([upd("a", 1, b"three")]) == []
        assert await store.commit([upd("a", 1, b"four")]) == ["a"]  # stale version
        (got,) = await store.get_many(["a"])
        assert got is not None and (got.version, got.state) == (2, b"three")
        await store.close()

    run(go)


def test_commit_is_all_or_nothing_across_streams(make_store: Callable[[], StateStore]) -> None:
    async def go() -> None:
        store = make_store()
        await store.commit([upd("a", 0)])
        conflicts = await store.commit([upd("b", 0, b"b1"), upd("a", 0, b"a2")])
        assert conflicts == ["a"]
        assert await store.get_many(["b", "zz"]) == [None, None]
        await store.close()

    run(go)


def test_concurrent_writers_one_wins(make_store: Callable[[], StateStore]) -> None:
    async def go() -> None:
        stores = [make_store() for _ in range(8)]
        await stores[0].commit([upd("a", 0)])
        outcomes = await asyncio.gather(*(s.commit([upd("a", 1, b"w")]) for s in stores))
        assert sorted(len(o) for o in outcomes) == [0] + [1] * 7
        for s in stores:
            await s.close()

    run(go)


def test_history_open_alarms_gauges_and_delete(make_store: Callable[[], StateStore]) -> None:
    async def go() -> None:
        store = make_store()
        events = tuple(f'{{"e":{i}}}'.encode() for i in range(5))
        await store.commit([upd("a", 0, events=events[:2], open_alarm=b'{"id":1}', gauge=b"g1")])
        await store.commit(
            [
                upd("a", 1, events=events[2:], gauge=b"g2"),
                upd("b", 0, open_alarm=b'{"id":7}', gauge=b"g3"),
            ]
        )
        assert await store.alarm_history("a") == list(events[2:])  # capped at 3, oldest dropped
        assert await store.open_alarms() == [b'{"id":7}']
        assert await gauges(store) == {"a": b"g2", "b": b"g3"}
        assert await store.list_streams() == ["a", "b"]
        assert await store.delete("a") is True and await store.delete("a") is False
        assert await store.list_streams() == ["b"] and await store.alarm_history("a") == []
        assert await gauges(store) == {"b": b"g3"}
        assert await store.ping() is True
        await store.close()

    run(go)


def test_unreachable_redis_is_store_unavailable() -> None:
    from tests.support.processes import free_port

    async def go() -> None:
        store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
        assert await store.ping() is False
        with pytest.raises(StoreUnavailable):
            await store.get_many(["a"])
        with pytest.raises(StoreUnavailable):
            await store.commit([upd("a", 0)])
        await store.close()

    run(go)


def test_pages_walk_every_stream_and_open_alarm_once(make_store: Any) -> None:
    """Issue 25: lists come a page at a time; following next_cursor visits each entry."""

    async def go() -> None:
        store = make_store()
        await store.commit(
            [
                upd(f"s{i:03d}", 0, open_alarm=b'{"id":%d}' % i if i % 3 == 0 else None)
                for i in range(250)
            ]
        )
        for page_of, want in (
            (store.stream_page, {f"s{i:03d}" for i in range(250)}),
            (store.open_alarm_page, {b'{"id":%d}' % i for i in range(0, 250, 3)}),
        ):
            seen: list[Any] = []
            cursor, pages = None, 0
            while True:
                items, cursor = await page_of(cursor, 40)
                seen += items
                pages += 1
                if cursor is None:
                    break
            assert set(seen) == want
            assert len(seen) == len(want)  # nothing repeated while nothing changed
            # Redis answers a small hash (≤ 128 entries, one listpack) in one page: COUNT is
            # a hint there; 250 streams are large enough to page
            assert pages >= (2 if page_of == store.stream_page else 1)

    run(go)


def test_a_cursor_the_store_did_not_hand_out_is_a_value_error(make_store: Any) -> None:
    async def go() -> None:
        store = make_store()
        if isinstance(store, RedisStore):
            with pytest.raises(ValueError, match="cursor"):
                await store.stream_page("not-a-cursor", 10)

    run(go)
