"""A gateway and a watcher for the MQTT tests: publishes readings, collects what the service
publishes back (paho-mqtt, the library the service uses, on its own thread)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.processes import wait_for


class MqttPeer:
    """One MQTT client: `publish` waits for the broker's PUBACK; `messages` collects what
    arrives on the topics given to `subscribe` (JSON-decoded, in arrival order)."""

    def __init__(self, url: str, client_id: str) -> None:
        parts = urlsplit(url)
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.messages: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self.client.on_message = self._on_message
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, m: Any) -> None:
        with self._lock:
            self.messages.append((m.topic, orjson.loads(m.payload)))

    def subscribe(self, *filters: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        self.client.subscribe([(f, 1) for f in filters])
        if not done.wait(10):
            raise TimeoutError(f"no SUBACK for {filters}")

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> None:
        self.client.publish(topic, payload, qos=qos).wait_for_publish(10)

    def publish_points(self, topic: str, payloads: Iterable[bytes]) -> None:
        infos = [self.client.publish(topic, p, qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(30)

    def on(self, prefix: str) -> list[Any]:
        with self._lock:
            return [body for topic, body in self.messages if topic.startswith(prefix)]

    def wait_on(self, prefix: str, n: int, timeout: float = 30) -> list[Any]:
        wait_for(lambda: len(self.on(prefix)) >= n, timeout, f"{n} messages on {prefix}")
        return self.on(prefix)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
