"""Per-stream locks: mutual exclusion, FIFO hand-over, and cancellation that leaks nothing."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from service.ingest.streams import StreamLocks


@settings(max_examples=40, deadline=None)
@given(
    requests=st.lists(
        st.lists(st.sampled_from("abcd"), min_size=1, max_size=3), min_size=1, max_size=12
    ),
    cancel=st.sets(st.integers(0, 11)),
)
def test_no_two_holders_share_a_stream_and_nothing_leaks(
    requests: list[list[str]], cancel: set[int]
) -> None:
    async def run() -> None:
        locks = StreamLocks()
        inside: set[str] = set()

        async def request(ids: list[str]) -> None:
            async with locks.hold(ids):
                assert not inside & set(ids)
                inside.update(ids)
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                inside.difference_update(ids)

        tasks = [asyncio.create_task(request(ids)) for ids in requests]
        await asyncio.sleep(0)
        for i in cancel:
            if i < len(tasks):
                tasks[i].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert locks._held == {}  # every lock released, no waiter left behind

    asyncio.run(run())


def test_waiters_get_the_lock_in_arrival_order() -> None:
    async def run() -> list[int]:
        locks = StreamLocks()
        order: list[int] = []

        async def request(i: int) -> None:
            async with locks.hold(["s"]):
                order.append(i)
                await asyncio.sleep(0)

        await asyncio.gather(*(request(i) for i in range(5)))
        return order

    assert asyncio.run(run()) == [0, 1, 2, 3, 4]


def test_a_waiter_cancelled_as_the_lock_is_handed_to_it_passes_it_on() -> None:
    async def run() -> None:
        locks = StreamLocks()
        first = locks.hold(["s"])
        await first.__aenter__()
        second = asyncio.create_task(locks.hold(["s"]).__aenter__())
        third_got = asyncio.Event()

        async def third() -> None:
            async with locks.hold(["s"]):
                third_got.set()

        t3 = asyncio.create_task(third())
        await asyncio.sleep(0)
        await first.__aexit__()  # hands the lock to `second`'s future …
        second.cancel()  # … which is cancelled before it runs
        await asyncio.wait_for(third_got.wait(), 1)
        await t3
        assert second.cancelled()
        assert locks._held == {}

    asyncio.run(run())
