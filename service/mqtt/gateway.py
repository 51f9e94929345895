"""`tad replay --mqtt`: publish recorded data to a broker as a gateway would, print the alarms
the service publishes back.

Each message is one point (or `--batch` points) in the WebSocket form with values by channel
name, published with QoS 1 and waited for (the broker has it once `publish` returns), at the
given rate. The alarm topic is watched from before the first point until the service has been
quiet for `linger_s` after the last one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from service.replay import ReplayData, ReplaySummary, describe, points_json


class GatewayError(RuntimeError):
    """The broker could not be reached or refused a publish."""


def replay_mqtt(
    url: str,
    topic: str,
    alarm_topic: str | None,
    data: ReplayData,
    rate: float = 0.0,
    batch: int = 1,
    linger_s: float = 3.0,
    username: str | None = None,
    password: str | None = None,
    echo: Callable[[str], None] = print,
) -> ReplaySummary:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise GatewayError(f"--mqtt {url!r}: give mqtt://host[:port] or mqtts://host[:port]")
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=paho.MQTTv5)
    if username:
        client.username_pw_set(username, password)
    if parts.scheme == "mqtts":
        client.tls_set()
    summary = ReplaySummary()
    last_event = [time.monotonic()]

    def on_message(c: Any, u: Any, m: Any) -> None:
        event = orjson.loads(m.payload)
        summary.events.append(event)
        last_event[0] = time.monotonic()
        echo(describe(event))

    client.on_message = on_message
    try:
        client.connect(parts.hostname, parts.port or (8883 if parts.scheme == "mqtts" else 1883))
    except OSError as exc:
        raise GatewayError(f"--mqtt {url}: cannot connect: {exc}") from exc
    client.loop_start()
    try:
        if alarm_topic:
            subscribed = threading.Event()
            client.on_subscribe = lambda *a: subscribed.set()
            client.subscribe(alarm_topic, qos=1)
            if not subscribed.wait(10):
                raise GatewayError(f"the broker did not confirm the subscription to {alarm_topic}")
        _publish_all(client, topic, data, rate, batch, summary)
        last_event[0] = time.monotonic()
        while alarm_topic and time.monotonic() - last_event[0] < linger_s:
            time.sleep(0.1)
    finally:
        client.disconnect()
        client.loop_stop()
    return summary


def _publish_all(
    client: paho.Client,
    topic: str,
    data: ReplayData,
    rate: float,
    batch: int,
    summary: ReplaySummary,
) -> None:
    n = len(data.values)
    t0 = time.monotonic()
    for lo in range(0, n, batch):
        hi = min(lo + batch, n)
        pts = points_json(data, lo, hi)
        info = client.publish(topic, orjson.dumps(pts[0] if len(pts) == 1 else pts), qos=1)
        try:
            info.wait_for_publish(30)
        except (RuntimeError, ValueError) as exc:
            raise GatewayError(f"publish to {topic} failed: {exc}") from exc
        if not info.is_published():
            raise GatewayError(f"the broker did not acknowledge a publish to {topic} in 30 s")
        summary.sent = hi
        if rate > 0:
            time.sleep(max(0.0, t0 + hi / rate - time.monotonic()))
