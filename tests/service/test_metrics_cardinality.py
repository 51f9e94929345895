"""/metrics stays small at many streams: streams in alarm plus the top N by evidence have their
own series; the aggregates count every stream."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from tests.service.helpers import points, series


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
