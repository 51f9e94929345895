"""The MQTT subscriber: messages → the ingest pipeline → alarms published back.

Delivery, for QoS 1 (the default): a message is acknowledged to the broker only after the
pipeline has committed its points to the stream state (memory or Redis) or refused them. A
`kill -9` before that leaves the message with the broker, which delivers it again to the
restarted service's session; points that had been committed are then recognised as duplicates
by their timestamps, as over HTTP, so nothing acknowledged is lost and nothing is counted twice.
While the state store is unavailable the messages are kept (not acknowledged) and the commit is
retried with a growing pause; the broker holds everything behind them.

Messages are taken in arrival order, in groups of what has arrived (one pipeline request per
group, each stream at most once in it, so 100 gateways publishing one point each cost one
scoring pass, not 100), and acknowledged in arrival order. A refused message (bad payload, a
topic that names no valid stream, an out-of-order point) is acknowledged and skipped, counted by
reason and logged at most once a minute per stream; it never stops the subscriber.

Alarm events are published after the commit (QoS 1, the API's JSON). A crash between the commit
and the publish loses that publish (the delivery again is a duplicate, which raises no event):
the API's alarm history (`GET /v1/streams/{id}/alarms`) is the record; MQTT is the notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from service.errors import ServiceError, Unavailable
from service.ingest.pipeline import Ingestor, PointBatch
from service.ingest.wire import PointColumns
from service.mqtt.connection import BrokerConnection, Message
from service.mqtt.metrics import REFUSE_REASONS, MqttMetrics
from service.mqtt.payload import decode
from service.mqtt.topics import TopicMap
from service.settings import Settings
from service.state.store import StoreUnavailable

log = logging.getLogger(__name__)
GROUP_MAX_MESSAGES = 1000  # messages taken into one pipeline request at most
LOG_EVERY_S = 60.0  # a stream's refusals are logged at most this often
RETRY_MAX_S = 5.0  # longest pause between commits while the store is unavailable


@dataclass(slots=True)
class _Entry:
    """One stream's messages of a group, merged into one pipeline batch."""

    stream_id: str
    model: str | None
    messages: list[Message] = field(default_factory=list)
    points: list[PointColumns] = field(default_factory=list)

    def add(self, msg: Message, points: PointColumns) -> None:
        self.messages.append(msg)
        self.points.append(points)

    def batch(self) -> PointBatch:
        if len(self.points) == 1:
            return PointBatch(self.stream_id, self.model, self.points[0])
        rows = [r for p in self.points for r in p.rows or ()]
        clocks = [p.clock(i) for p in self.points for i in range(len(p))]
        times = np.concatenate([p.times for p in self.points])
        return PointBatch(self.stream_id, self.model, PointColumns(times, rows, clocks))

    def split(self) -> list[_Entry]:
        return [
            _Entry(self.stream_id, self.model, [m], [p])
            for m, p in zip(self.messages, self.points, strict=True)
        ]


class MqttBridge:
    """Owns the broker connection and the task that feeds the pipeline."""

    def __init__(self, settings: Settings, ingestor: Ingestor, metrics: MqttMetrics) -> None:
        self.settings = settings
        self.ingestor = ingestor
        self.metrics = metrics
        self.topics = TopicMap.parse(settings.mqtt_topics, settings.mqtt_stream_id)
        group = settings.mqtt_shared_group
        subs = [r.subscription for r in self.topics.routes]
        self.subscriptions = [f"$share/{group}/{s}" for s in subs] if group else subs
        self.pending: deque[Message] = deque()  # received, not yet taken
        self.unacked: deque[Message] = deque()  # taken, not yet acknowledged (arrival order)
        self.ready = asyncio.Event()
        self.connection = BrokerConnection(settings, self.subscriptions, self._receive, self._up)
        self._ever_connected = False
        self._held_most = 0
        self._logged: dict[str, float] = {}
        self._scores_sent: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def oldest_pending_s(self) -> float | None:
        first = self.unacked[0] if self.unacked else self.pending[0] if self.pending else None
        return None if first is None else first.received_s

    def start(self) -> None:
        self.connection.start()
        self._task = asyncio.create_task(self._run(), name="mqtt-bridge")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self.connection.stop)

    # on the loop, from paho's thread ------------------------------------------------------
    def _receive(self, msg: Message) -> None:
        self.metrics.received.inc()
        self.pending.append(msg)
        held = len(self.pending) + len(self.unacked)
        if held > self._held_most:
            self._held_most = held
            self.metrics.held_most.set(held)
        self.ready.set()

    def _up(self, connected: bool) -> None:
        self.metrics.connected.set(int(connected))
        if connected:
            if self._ever_connected:
                self.metrics.reconnects.inc()
            self._ever_connected = True
        else:
            # paho forgets unacknowledged messages with the connection; the broker sends them
            # again on the next one, so what was received and not yet taken is dropped here
            self.connection.release(len(self.pending))
            self.pending.clear()

    # the feeding task ----------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            await self.ready.wait()
            self.ready.clear()
            while self.pending:
                n = min(len(self.pending), GROUP_MAX_MESSAGES)
                taken = [self.pending.popleft() for _ in range(n)]
                self.unacked.extend(taken)
                try:
                    await self._handle(taken)
                except Exception:  # never let one bad group stop the subscriber
                    log.exception("MQTT messages could not be handled; they are skipped")
                    for msg in taken:
                        self._refuse(msg, "invalid", "internal error")
                for msg in taken:
                    self.connection.ack(msg)
                    self.metrics.commit_latency.observe(time.monotonic() - msg.received_s)
                    self.unacked.popleft()

    async def _handle(self, taken: list[Message]) -> None:
        """Commit (or refuse) every taken message; return when each may be acknowledged.
        Consecutive messages of one stream are merged into one batch (a gateway's burst of
        32 one-point messages is one scoring pass), each stream once per pipeline request."""
        groups: list[dict[str, _Entry]] = [{}]
        for msg in taken:
            try:
                stream_id, model = self.topics.stream_for(msg.topic)
                named, points = decode(msg.payload)
            except ServiceError as err:
                self._refuse(msg, err.kind, err.message, msg.topic)
                continue
            model = model or named
            entry = groups[-1].get(stream_id)
            if entry is not None and entry.model != model:  # another model: a later request
                groups.append({})
                entry = None
            if entry is None:
                entry = groups[-1][stream_id] = _Entry(stream_id, model)
            entry.add(msg, points)
        for group in groups:
            if group:
                await self._commit(list(group.values()))

    async def _commit(self, entries: list[_Entry]) -> None:
        pause = 0.05
        while True:
            try:
                results = await self.ingestor.ingest([e.batch() for e in entries])
                break
            except (StoreUnavailable, Unavailable) as exc:
                self.metrics.store_retries.inc()
                self._log_once("", f"state store unavailable ({exc}); MQTT messages kept")
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_MAX_S)
            except ServiceError as err:
                if len(entries) > 1:  # find the bad stream: the others are committed alone
                    for entry in entries:
                        await self._commit([entry])
                elif len(entries[0].messages) > 1:  # find the bad message of the stream
                    for single in entries[0].split():
                        await self._commit([single])
                else:
                    msg = entries[0].messages[0]
                    self._refuse(msg, err.kind, err.message, entries[0].stream_id)
                return
        for entry, result in zip(entries, results, strict=True):
            self.metrics.accepted.inc(len(entry.messages))
            self._publish(entry.stream_id, result)

    def _publish(self, stream_id: str, result: dict[str, Any]) -> None:
        s = self.settings
        for event in result["events"]:
            if s.mqtt_alarm_topic != "off":
                self._send("alarm", s.mqtt_alarm_topic, stream_id, event, retain=False)
            if s.mqtt_state_topic:
                state = {"stream_id": stream_id, "in_alarm": event["kind"] == "opened"}
                self._send("state", s.mqtt_state_topic, stream_id, state | {"event": event}, True)
        if s.mqtt_score_topic and result["accepted"]:
            now = time.monotonic()
            if now - self._scores_sent.get(stream_id, -1e18) >= s.mqtt_score_interval_s:
                if len(self._scores_sent) > 100_000:
                    self._scores_sent.clear()
                self._scores_sent[stream_id] = now
                self._send("score", s.mqtt_score_topic, stream_id, result, retain=False, qos=0)

    def _send(
        self, kind: str, template: str, stream_id: str, body: Any, retain: bool, qos: int = 1
    ) -> None:
        topic = template.format(stream_id=stream_id)
        if self.connection.publish(topic, orjson.dumps(body), qos, retain):
            self.metrics.published.labels(kind).inc()
        else:
            self.metrics.publish_dropped.inc()

    def _refuse(self, msg: Message, kind: str, why: str, stream_id: str = "") -> None:
        reason = kind if kind in REFUSE_REASONS else "invalid"
        self.metrics.refused.labels(reason).inc()
        self._log_once(stream_id, f"MQTT message on {msg.topic!r} refused ({reason}): {why}")

    def _log_once(self, key: str, text: str) -> None:
        now = time.monotonic()
        if now - self._logged.get(key, -1e18) < LOG_EVERY_S:
            return
        if len(self._logged) > 10_000:  # many bad streams: forget the oldest notes
            self._logged.clear()
        self._logged[key] = now
        log.warning("%s", text)
