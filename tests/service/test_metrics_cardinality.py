"""/metrics stays small at many streams: streams in alarm plus the top N by evidence have their
own series; the aggregates count every stream."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from tests.support.data import points, series


def stream_series(text: str, name: str) -> set[str]:
    return set(re.findall(rf'^{name}{{model="[^"]+",stream="([^"]+)"', text, re.M))


def value(text: str, sample: str) -> float:
    m = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M)
    assert m, sample
    return float(m.group(1))


def test_per_stream_series_are_bounded_and_aggregates_complete(
    make_client: Callable[..., Any],
) -> None:
    c = make_client(metrics_top_streams=3)
    quiet = series(60, anomaly=None)
    for i in range(12):
        c.post(f"/v1/streams/q{i}/points", json={"points": points(quiet)})
    faulty = series(260, anomaly=(200, 260))
    c.post("/v1/streams/hot/points", json={"points": points(faulty)})
    assert c.get("/v1/streams/hot").json()["open_alarm"] is not None
    text = c.get("/metrics").text
    exported = stream_series(text, "tad_stream_evidence")
    assert "hot" in exported and len(exported) <= 1 + 3, exported
    assert stream_series(text, "tad_stream_alarm_active") == exported
    assert value(text, 'tad_streams{model="demo"}') == 13
    assert value(text, 'tad_alarms_open{model="demo"}') == 1
    assert value(text, 'tad_stream_evidence_distribution_count{model="demo"}') == 13
    off = make_client(metrics_top_streams=0)
    off.post("/v1/streams/x/points", json={"points": points(faulty)})
    text = off.get("/metrics").text
    assert not stream_series(text, "tad_stream_evidence")
    assert value(text, 'tad_alarms_open{model="demo"}') == 1
    assert np.isfinite(value(text, 'tad_stream_evidence_distribution_sum{model="demo"}'))


def test_a_replica_exports_the_streams_it_serves_and_every_open_alarm(
    make_client: Callable[..., Any], redis_url: str, redis_prefix: str
) -> None:
    a, b = (make_client(redis_url=redis_url, redis_prefix=redis_prefix) for _ in range(2))
    quiet = series(60, anomaly=None)
    a.post("/v1/streams/on-a/points", json={"points": points(quiet)})
    b.post("/v1/streams/on-b/points", json={"points": points(quiet)})
    b.post("/v1/streams/hot/points", json={"points": points(series(260, anomaly=(200, 260)))})
    assert b.get("/v1/streams/hot").json()["open_alarm"] is not None
    ta, tb = a.get("/metrics").text, b.get("/metrics").text
    assert stream_series(ta, "tad_stream_evidence") == {"on-a", "hot"}  # hot: alarmed, on b
    assert stream_series(tb, "tad_stream_evidence") == {"on-b", "hot"}
    for text in (ta, tb):  # the store's aggregates, the same on every replica
        assert value(text, 'tad_streams{model="demo"}') == 3
        assert value(text, 'tad_alarms_open{model="demo"}') == 1


def test_gauges_are_read_from_redis_in_pieces_and_all_counted(
    make_client: Callable[..., Any], redis_url: str, redis_prefix: str
) -> None:
    import orjson
    import redis

    from service.state.store import GAUGE_CHUNK

    n = 10 * GAUGE_CHUNK + 30  # a dozen HSCAN rounds
    entries = {
        f"s{i}": orjson.dumps({"model": "m", "s": i / n, "alarm": int(i < 7)}) for i in range(n)
    }
    r = redis.Redis.from_url(redis_url)
    r.hset(f"{redis_prefix}gauges", mapping=entries)  # type: ignore[arg-type]
    r.close()
    text = make_client(redis_url=redis_url, redis_prefix=redis_prefix).get("/metrics").text
    assert value(text, 'tad_streams{model="m"}') == n
    assert value(text, 'tad_alarms_open{model="m"}') == 7
    assert len(stream_series(text, "tad_stream_evidence")) == 7  # served none: alarms only


def test_an_alarm_storm_keeps_per_stream_series_capped(make_client: Callable[..., Any]) -> None:
    """Issue 25: 20,001 open alarms made a 2.5 MB scrape; past TAD_METRICS_MAX_ALARM_STREAMS
    the streams in alarm with the most evidence keep their series, the rest are counted."""
    c = make_client(metrics_top_streams=2, metrics_max_alarm_streams=3)
    faulty = series(260, anomaly=(200, 260))
    for i in range(6):
        c.post(f"/v1/streams/hot{i}/points", json={"points": points(faulty * (1 + 0.1 * i))})
    assert len(c.get("/v1/alarms").json()["alarms"]) == 6
    text = c.get("/metrics").text
    exported = stream_series(text, "tad_stream_alarm_active")
    assert len(exported) == 3, exported
    assert value(text, 'tad_alarms_open{model="demo"}') == 6  # the aggregate counts every one
    assert value(text, "tad_alarm_streams_without_series") == 3
