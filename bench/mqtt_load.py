"""The MQTT row of `make perf` (issue 27): 100 publishers, 1 point per message, closed loop.

Each publisher is its own MQTT client publishing (QoS 1) one point of its own stream and waiting
for the service's result on the score topic before the next, as each WebSocket connection of
the WebSocket rows waits for its answer: the rows compare the same work. Latency is from the
publish to the result's arrival (publisher → broker → service → broker → watcher), so it
includes two broker hops the WebSocket rows do not have. The broker (a private mosquitto,
tests/support/mosquitto.py) runs on the load generator's core.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

WARMUP = 25  # messages per publisher before the clock starts (the stream's 24-point warm-up)


def server_env(broker_url: str, tag: str) -> dict[str, str]:
    """What the service under test is started with."""
    return {
        "TAD_MQTT_URL": broker_url,
        "TAD_MQTT_TOPICS": f"{tag}/readings/{{stream_id}}",
        "TAD_MQTT_SCORE_TOPIC": f"{tag}/scores/{{stream_id}}",
        "TAD_MQTT_SCORE_INTERVAL_S": "0",
        "TAD_MQTT_ALARM_TOPIC": "off",
        "TAD_MQTT_CLIENT_ID": f"{tag}-service",
    }


def _client(port: int, client_id: str) -> paho.Client:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def mqtt_load(
    broker_port: int, publishers: int, msgs: int, tag: str, make_points: Any, out: Any
) -> None:
    """Publisher i's message m is `{"model": "smd", "points": make_points(rng, m, 1)}`, as the
    WebSocket rows send. Puts (points/s, latencies in s) on `out`."""
    answered = [threading.Event() for _ in range(publishers)]
    watcher = _client(broker_port, f"{tag}-watch")
    ready = threading.Event()
    watcher.on_subscribe = lambda *a: ready.set()
    watcher.on_message = lambda c, u, m: answered[int(m.topic.rsplit("-", 1)[1])].set()
    watcher.subscribe(f"{tag}/scores/#", qos=0)
    ready.wait(10)
    lat: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(publishers + 1)
    errors: list[BaseException] = []

    def publisher(i: int) -> None:
        try:
            c = _client(broker_port, f"{tag}-pub-{i}")
            topic, mine = f"{tag}/readings/s-{i}", []
            for m in range(WARMUP + msgs):
                if m == WARMUP:
                    start.wait(120)
                answered[i].clear()
                t1 = time.perf_counter()
                rng = np.random.default_rng(i * 100_003 + m)
                body = orjson.dumps({"model": "smd", "points": make_points(rng, m, 1)})
                c.publish(topic, body, qos=1)
                if not answered[i].wait(60):
                    raise TimeoutError(f"publisher {i}: no result for message {m}")
                if m >= WARMUP:
                    mine.append(time.perf_counter() - t1)
            c.disconnect()
            c.loop_stop()
            with lock:
                lat.extend(mine)
        except BaseException as exc:  # reported below
            errors.append(exc)
            start.abort()

    threads = [threading.Thread(target=publisher, args=(i,)) for i in range(publishers)]
    for t in threads:
        t.start()
    start.wait(300)
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    watcher.disconnect()
    watcher.loop_stop()
    if errors:
        raise RuntimeError(f"an MQTT publisher failed: {errors[0]!r}")
    out.put((publishers * msgs / elapsed, lat))
