"""Prometheus metrics of one app instance (own CollectorRegistry, so tests can run many apps).

Per-stream gauges (`tad_stream_alarm_active`, `tad_stream_evidence`) are not kept in this
process: they are read from the state store at scrape time, so after a restart they are right
from the first scrape.

Cardinality is bounded: per-stream series exist for every stream with an open alarm (exported
by every replica, with the same current value: alert rules aggregate with
`max by (stream, model)`, and an alarm outlives the replica that raised it) plus the
`TAD_METRICS_TOP_STREAMS` streams with the most evidence *among those this replica serves*
(0: no per-stream series at all), so a scrape at 100,000 streams is ~N series, not 200,000;
in an alarm storm at most `TAD_METRICS_MAX_ALARM_STREAMS` streams in alarm (the most evidence)
keep their series and `tad_alarm_streams_without_series` counts the rest.
The aggregates stay complete and are the store's, the same on every replica (aggregate them
with `max by (model)`): `tad_streams` and `tad_alarms_open` per model, and the distribution of
the streams' evidence (`tad_stream_evidence_distribution`, a histogram per model). The
store's entries are read and parsed in chunks with the event loop let in between
(StreamGauges.update).
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
from collections.abc import AsyncIterable, Container, Iterable, Iterator

import orjson
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from service.registry import LoadedModel

REJECT_REASONS = (
    "out_of_order",
    "non_finite",
    "channels",
    "malformed",
    "too_large",
    "unknown_stream",
    "unknown_model",
    "conflict",
    "unavailable",
)
EVIDENCE_BUCKETS = (0.0, 1.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0)
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _Distribution:
    """One model's streams: count, open alarms, evidence sum and bucket counts, filled entry by
    entry: no list of 100,000 values to sort at the end of a scrape (that sort alone stalled
    the loop ~6 ms)."""

    __slots__ = ("alarms", "buckets", "count", "total")

    def __init__(self) -> None:
        self.count, self.alarms, self.total = 0, 0, 0.0
        self.buckets = [0] * (len(EVIDENCE_BUCKETS) + 1)  # last: above every bound

    def add(self, value: float, alarm: int) -> None:
        self.count += 1
        self.alarms += alarm
        self.total += value
        self.buckets[bisect.bisect_left(EVIDENCE_BUCKETS, value)] += 1


class StreamGauges(Collector):
    """Exports the last snapshot of per-stream gauges read from the store: alarmed streams and
    the top `top_n` by evidence one by one, every stream in the aggregates.

    `update` digests the store's entries chunk by chunk and yields to the event loop between
    them: parsing 100,000 entries is ~0.3 s of Python, which in one piece (or in a thread
    holding the GIL) stalls every request of the process; the store's chunks
    (`service.state.store.GAUGE_CHUNK`) keep each stall to a few milliseconds
    (bench/metrics_scrape.py)."""

    def __init__(self, top_n: int = 100, max_alarmed: int = 1000) -> None:
        self.top_n = top_n
        self.max_alarmed = max_alarmed
        self.alarmed_without_series = 0  # streams in alarm beyond max_alarmed at the last scrape
        self._exported: list[tuple[str, tuple[str, float, int]]] = []
        self._by_model: dict[str, _Distribution] = {}  # model → its streams

    async def update(
        self, chunks: AsyncIterable[Iterable[tuple[str, bytes]]], served: Container[str] | None
    ) -> None:
        """Digest the store's (stream, entry) chunks; the snapshot changes only once all were
        read (a store error midway keeps the last one). `served`: the streams this replica
        serves; only they compete for the top N (every replica still exports every alarmed
        stream, so an alarm outlives its replica)."""
        alarmed: list[tuple[str, tuple[str, float, int]]] = []
        top: list[tuple[float, str, tuple[str, float, int]]] = []  # min-heap of the top N
        by_model: dict[str, _Distribution] = {}
        async for chunk in chunks:
            for stream, blob in chunk:
                try:
                    g = orjson.loads(blob)
                    row = (str(g["model"]), float(g["s"]), int(g["alarm"]))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue  # a foreign or damaged entry must not break the scrape
                dist = by_model.get(row[0])
                if dist is None:
                    dist = by_model[row[0]] = _Distribution()
                dist.add(row[1], row[2])
                if row[2]:
                    alarmed.append((stream, row))
                elif self.top_n > 0 and (served is None or stream in served):
                    if len(top) < self.top_n:
                        heapq.heappush(top, (row[1], stream, row))
                    elif row[1] > top[0][0]:
                        heapq.heapreplace(top, (row[1], stream, row))
            await asyncio.sleep(0)  # let requests in between chunks
        if len(alarmed) > self.max_alarmed:  # an alarm storm: the most evidence keeps a series
            dropped = len(alarmed) - self.max_alarmed
            alarmed = heapq.nlargest(self.max_alarmed, alarmed, key=lambda a: (a[1][1], a[0]))
        else:
            dropped = 0
        kept = alarmed + [(stream, row) for _, stream, row in top] if self.top_n > 0 else []
        self._exported, self._by_model = sorted(kept), by_model
        self.alarmed_without_series = dropped

    def exported(self) -> list[tuple[str, tuple[str, float, int]]]:
        """The streams with their own series: every open alarm, then the top N by evidence."""
        return self._exported

    def collect(self) -> Iterator[Metric]:
        active = GaugeMetricFamily(
            "tad_stream_alarm_active",
            "1 while the stream has an open alarm (streams in alarm and the top "
            "TAD_METRICS_TOP_STREAMS by evidence)",
            labels=["stream", "model"],
        )
        evidence = GaugeMetricFamily(
            "tad_stream_evidence",
            "accumulated evidence s of the stream (as tad_stream_alarm_active)",
            labels=["stream", "model"],
        )
        for stream, (model, s, alarm) in self.exported():
            active.add_metric([stream, model], alarm)
            evidence.add_metric([stream, model], s)
        yield active
        yield evidence
        yield from self._aggregates()

    def _aggregates(self) -> Iterator[Metric]:
        streams = GaugeMetricFamily("tad_streams", "streams in the store", labels=["model"])
        alarms = GaugeMetricFamily(
            "tad_alarms_open", "streams with an open alarm", labels=["model"]
        )
        dist = HistogramMetricFamily(
            "tad_stream_evidence_distribution",
            "accumulated evidence s over all streams (one observation per stream)",
            labels=["model"],
        )
        for model, d in sorted(self._by_model.items()):
            streams.add_metric([model], d.count)
            alarms.add_metric([model], d.alarms)
            cumulative = list(itertools.accumulate(d.buckets))
            buckets = [(repr(b), c) for b, c in zip(EVIDENCE_BUCKETS, cumulative, strict=False)]
            dist.add_metric([model], buckets + [("+Inf", d.count)], sum_value=d.total)
        yield streams
        yield alarms
        yield dist
        yield GaugeMetricFamily(
            "tad_alarm_streams_without_series",
            "streams in alarm beyond TAD_METRICS_MAX_ALARM_STREAMS, without their own "
            "tad_stream_* series at this scrape (tad_alarms_open counts them)",
            value=self.alarmed_without_series,
        )


class ServiceMetrics:
    """Every metric the service exports; counters are per process, as Prometheus expects."""

    def __init__(self, top_streams: int = 100, max_alarm_streams: int = 1000) -> None:
        disable_created_metrics()  # *_created series only add noise to every scrape
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.points_accepted = Counter("tad_points_accepted", "points scored", registry=r)
        self.points_duplicate = Counter(
            "tad_points_duplicate", "points acknowledged again, not counted twice", registry=r
        )
        self.points_rejected = Counter(
            "tad_points_rejected", "points refused, by reason", ["reason"], registry=r
        )
        for reason in REJECT_REASONS:
            self.points_rejected.labels(reason)
        self.points_unscored = Counter(
            "tad_points_unscored",
            "points accepted without a usable score (no evidence added), by reason",
            ["reason"],
            registry=r,
        )
        self.points_unscored.labels("non_finite_score")  # export 0 before the first
        self.values_held = Counter(
            "tad_values_held", "non-finite values replaced by the last value", registry=r
        )
        self.alarms_opened = Counter("tad_alarms_opened", "alarms opened", ["model"], registry=r)
        self.alarms_closed = Counter("tad_alarms_closed", "alarms closed", ["model"], registry=r)
        self.alarms_rebaselined = Counter(
            "tad_alarms_rebaselined",
            "alarms closed because their stream re-baselined itself after a long alarm (the "
            "model's rebaseline_after_points): a regime the model was not trained on",
            ["model"],
            registry=r,
        )
        self.scoring_latency = Histogram(
            "tad_scoring_latency_seconds",
            "duration of one batched model call",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ws_connections = Gauge("tad_websocket_connections", "open WebSockets", registry=r)
        self.model_info = Gauge(
            "tad_model_info",
            "serving model versions (value 1)",
            ["name", "version", "hash"],
            registry=r,
        )
        self.models_loaded = Gauge("tad_models_loaded", "model names serving", registry=r)
        self.bundles_refused = Counter(
            "tad_bundles_refused", "bundles refused at (re)load", registry=r
        )
        self.store_errors = Counter("tad_store_errors", "failed state-store calls", registry=r)
        self.store_conflicts = Counter(
            "tad_store_conflicts", "optimistic-concurrency retries", registry=r
        )
        self.store_up = Gauge("tad_store_up", "1 if the state store answered", registry=r)
        self.rate_limited = Counter(
            "tad_rate_limited",
            "per-client rate limit: HTTP requests refused (http), WebSockets refused at the "
            "handshake (websocket), WebSocket messages delayed (delayed)",
            ["action"],
            registry=r,
        )
        self.streams = StreamGauges(top_streams, max_alarm_streams)
        r.register(self.streams)

    def reject(self, reason: str, points: int = 1) -> None:
        self.points_rejected.labels(reason).inc(max(points, 1))

    def set_models(self, active: Iterable[LoadedModel]) -> None:
        self.model_info.clear()
        n = 0
        for m in active:
            self.model_info.labels(m.name, m.version, m.bundle.content_hash).set(1)
            self.alarms_opened.labels(m.name)  # export 0 before the first alarm
            self.alarms_closed.labels(m.name)
            self.alarms_rebaselined.labels(m.name)
            n += 1
        self.models_loaded.set(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def scrape(
        self,
        chunks: AsyncIterable[Iterable[tuple[str, bytes]]] | None,
        served: Container[str] | None = None,
    ) -> bytes:
        """Update the stream snapshot from the store's chunks (None: keep the last), then
        render the bounded exposition (a few hundred series whatever the number of streams).
        A `StoreUnavailable` from the chunks propagates, with the last snapshot kept."""
        if chunks is not None:
            await self.streams.update(chunks, served)
            await asyncio.sleep(0)  # the render is its own slice of the loop
        return self.render()
