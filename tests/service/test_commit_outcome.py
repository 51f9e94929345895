"""Issue 25: a commit whose reply is lost in transit (a timeout, a dropped connection after
Redis ran the script) is answered from what Redis holds — never a 503 for stored work, and a
503 that says so when nothing was stored."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from service.state.redis_store import RedisStore
from service.state.store import StoreUnavailable, StreamUpdate
from tests.support.data import points, series


def _batch(x: Any, lo: int, hi: int, n_streams: int) -> dict[str, Any]:
    return {
        "streams": [
            {"stream_id": f"s{i}", "points": points(x[lo:hi] + 0.01 * i, lo)}
            for i in range(n_streams)
        ]
    }


def _scores(body: dict[str, Any]) -> list[list[float]]:
    return [r["score"] for r in body["results"]]


@pytest.mark.parametrize("when", ["after the script ran", "before it ran"])
def test_a_lost_reply_is_answered_from_what_redis_holds(
    make_client: Callable[..., Any],
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    when: str,
) -> None:
    x = series(120)
    reference = make_client()  # memory store: the answers a fault-free run gives
    expected = [reference.post("/v1/points", json=_batch(x, lo, lo + 40, 5)).json()
                for lo in (0, 40, 80)]  # fmt: skip
    c = make_client(redis_url=redis_url, redis_prefix=redis_prefix)
    assert c.post("/v1/points", json=_batch(x, 0, 40, 5)).status_code == 200
    real = RedisStore._commit_groups
    lost: list[int] = []

    async def flaky(self: RedisStore, groups: Sequence[Sequence[StreamUpdate]]) -> Any:
        if not lost:
            lost.append(1)
            if when == "after the script ran":
                await real(self, groups)
            raise StoreUnavailable("redis: TimeoutError", in_transit=True)
        return await real(self, groups)

    monkeypatch.setattr(RedisStore, "_commit_groups", flaky)
    r = c.post("/v1/points", json=_batch(x, 40, 80, 5))
    assert lost == [1]
    again = c.post("/v1/points", json=_batch(x, 40, 80, 5)).json()  # the client resends
    if when == "after the script ran":  # stored: answered from what Redis holds, not 503
        assert r.status_code == 200, r.text
        assert _scores(r.json()) == _scores(expected[1])
        assert all(res["status"] == ["duplicate"] * 40 for res in again["results"])
    else:  # nothing stored: 503 saying so, and the resend is scored as the first attempt
        assert r.status_code == 503 and "nothing of it is stored" in r.text, r.text
        assert _scores(again) == _scores(expected[1])
    r = c.post("/v1/points", json=_batch(x, 80, 120, 5))
    assert _scores(r.json()) == _scores(expected[2])  # the stored state went on exactly


def test_a_refusal_by_redis_is_not_read_back(
    make_client: Callable[..., Any],
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Out of memory or read-only: Redis wrote nothing, the answer is 503 at once."""
    c = make_client(redis_url=redis_url, redis_prefix=redis_prefix)

    async def refused(self: RedisStore, groups: Any) -> Any:
        raise StoreUnavailable("redis: OutOfMemoryError")

    async def never(self: RedisStore, groups: Any, cause: Any) -> Any:
        raise AssertionError("read back")

    monkeypatch.setattr(RedisStore, "_commit_groups", refused)
    monkeypatch.setattr(RedisStore, "_landed", never)
    r = c.post("/v1/points", json=_batch(series(30), 0, 30, 2))
    assert r.status_code == 503 and "OutOfMemoryError" in r.text
