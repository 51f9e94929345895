"""Property: however a stream is cut into requests, and whatever a client resends, the service's
results equal one offline pass of the core over the same points."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.data import points, series
from tests.support.results import assert_same_results, collect, reference

N = 80


def test_any_batching_with_any_resends_gives_the_offline_results(
    client: Any, bundle_v1: Path
) -> None:
    x = series(N, anomaly=(40, 60))
    want = reference(bundle_v1, x)
    ids = itertools.count()

    @settings(max_examples=30, deadline=None, database=None)
    @given(
        cuts=st.lists(st.integers(1, N - 1), max_size=8, unique=True).map(sorted),
        resends=st.lists(st.integers(0, 12), min_size=9, max_size=9),
        by_name=st.booleans(),
    )
    def check(cuts: list[int], resends: list[int], by_name: bool) -> None:
        sid = f"p{next(ids)}"
        results = []
        for k, (lo, hi) in enumerate(zip([0, *cuts], [*cuts, N], strict=True)):
            back = min(resends[k], lo)  # resend the tail of what was already acknowledged
            r = client.post(
                f"/v1/streams/{sid}/points",
                json={"points": points(x[lo - back : hi], lo - back, by_name)},
            )
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["status"] == ["duplicate"] * back + ["accepted"] * (hi - lo)
            results.append(body)
        assert_same_results(collect(results), want)
        assert client.get(f"/v1/streams/{sid}").json()["count"] == N

    check()
