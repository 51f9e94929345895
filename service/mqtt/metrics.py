"""The MQTT subscriber's metrics, in the service's registry (`tad_mqtt_*`).

Made for alert rules: a broker that is away (`tad_mqtt_connected == 0`), a subscriber that
falls behind (`tad_mqtt_lag_seconds`, the age of the oldest message received and not yet
acknowledged), and refusals by reason (a gateway publishing the wrong shape).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from service.metrics import LATENCY_BUCKETS

REFUSE_REASONS = (
    "malformed",
    "topic",
    "out_of_order",
    "non_finite",
    "channels",
    "invalid",
    "too_large",
    "unknown_stream",
    "unknown_model",
    "not_found",
    "conflict",
)


class MqttMetrics:
    def __init__(self, registry: CollectorRegistry, oldest_pending_s: Callable[[], float | None]):
        r = registry
        self.received = Counter("tad_mqtt_messages_received", "messages received", registry=r)
        self.accepted = Counter(
            "tad_mqtt_messages_accepted",
            "messages whose points were committed (or recognised as already committed)",
            registry=r,
        )
        self.refused = Counter(
            "tad_mqtt_messages_refused",
            "messages skipped (acknowledged, nothing committed), by reason",
            ["reason"],
            registry=r,
        )
        for reason in REFUSE_REASONS:
            self.refused.labels(reason)
        self.published = Counter(
            "tad_mqtt_messages_published",
            "alarm, state and score messages sent",
            ["kind"],
            registry=r,
        )
        for kind in ("alarm", "state", "score"):  # exported from the start, at 0
            self.published.labels(kind)
        self.publish_dropped = Counter(
            "tad_mqtt_publish_dropped",
            "publishes dropped: the outgoing queue was full while the broker was away",
            registry=r,
        )
        self.connected = Gauge("tad_mqtt_connected", "1 while connected to the broker", registry=r)
        self.reconnects = Counter(
            "tad_mqtt_reconnects", "connections to the broker after the first", registry=r
        )
        self.store_retries = Counter(
            "tad_mqtt_store_retries",
            "commits retried because the state store was unavailable (messages kept, not acked)",
            registry=r,
        )
        self.commit_latency = Histogram(
            "tad_mqtt_commit_latency_seconds",
            "from a message's receipt to its acknowledgement",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.held_most = Gauge(
            "tad_mqtt_messages_held_max",
            "the most messages this process has held at once, received and not yet "
            "acknowledged: bounded by TAD_MQTT_MAX_INFLIGHT (the broker keeps the rest)",
            registry=r,
        )
        lag = Gauge(
            "tad_mqtt_lag_seconds",
            "age of the oldest message received and not yet acknowledged (0: none waiting)",
            registry=r,
        )

        def age() -> float:
            oldest = oldest_pending_s()
            return 0.0 if oldest is None else time.monotonic() - oldest

        lag.set_function(age)
