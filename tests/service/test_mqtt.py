"""MQTT (issue 27) against a real mosquitto started by the test kit and a real service process.

- a fault published as a gateway would (flat readings, one per message) opens an alarm that the
  service publishes back, the same events as the core's reference; a malformed payload and a
  topic that names no valid stream are counted by reason and skipped, the stream goes on;
- kill -9 of the service mid-stream (Redis store): every published point ends up in the stream
  exactly once (its recorded history), every score published equals the uninterrupted run's,
  and the alarm history is the uninterrupted run's;
- two replicas on one shared subscription and one Redis: every point committed once.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.demo import DEMO_CHANNELS
from service.mqtt.payload import decode
from service.mqtt.topics import TopicConfigError, TopicMap, TopicRoute
from service.settings import SettingsError, load_settings
from tests.support.data import series
from tests.support.mosquitto import Mosquitto, make_certificates, require_mosquitto
from tests.support.mqtt_peer import MqttPeer
from tests.support.processes import ROOT, ServerProcess, scaled, wait_for
from tests.support.results import assert_history, assert_replies_match, reference

FAULT = (200, 230)


def flat(i: int, row: list[float]) -> bytes:
    """One reading as a PLC bridge publishes it: the clock and a key per channel."""
    return orjson.dumps({"seq": i, **dict(zip(DEMO_CHANNELS, row, strict=True))})


def metric(base: str, name: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{") and name.endswith("}"):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(name)


def test_topic_routes_name_streams_and_refuse_what_cannot_work() -> None:
    topics = TopicMap.parse(
        ["plant/{site}/{machine}/data", "fleet/{stream_id}/#"], "{site}.{machine}"
    )
    assert topics.stream_for("plant/a/m-1/data") == ("a.m-1", None)
    with pytest.raises(TopicConfigError, match="machine"):
        TopicRoute.parse("x/{site}", "{site}.{machine}")
    with pytest.raises(TopicConfigError, match="last level"):
        TopicRoute.parse("x/#/{stream_id}")
    with pytest.raises(TopicConfigError, match="mixes"):
        TopicRoute.parse("x/pre{stream_id}")
    route = TopicMap.parse(["t/{stream_id}/{model}"], "{stream_id}")
    assert route.stream_for("t/s1/demo") == ("s1", "demo")
    with pytest.raises(Exception, match="not a valid stream id"):
        route.stream_for("t/bad id/demo")


def test_payload_forms() -> None:
    _, cols = decode(b'{"name": "pump", "tags": {}, "fields": {"a": 1.0}, "timestamp": 5}')
    assert cols.times.tolist() == [5.0] and cols.rows == [{"a": 1.0}]
    model, cols = decode(b'{"model": "m", "points": [{"seq": 3, "values": [1, 2]}]}')
    assert model == "m" and cols.clock(0) == "seq"
    _, cols = decode(b'[{"ts": 1, "a": 2}, {"ts": 2, "a": 3}]')
    assert cols.times.tolist() == [1.0, 2.0]
    for bad in (b"\xff", b"not json", b'{"a": 1}', b'{"ts": "x", "a": 1}'):
        with pytest.raises(Exception):  # noqa: B017 - each is a ServiceError naming the field
            decode(bad)


def test_settings_refuse_unworkable_mqtt(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="TAD_MQTT_URL"):
        load_settings(model_dir=tmp_path, mqtt_url="mqtt://user:secret@broker")
    with pytest.raises(SettingsError, match="TAD_DUPLICATE_WINDOW"):
        load_settings(
            model_dir=tmp_path, mqtt_url="mqtt://b", mqtt_max_inflight=100, duplicate_window=64
        )
    load_settings(model_dir=tmp_path, duplicate_window=4)  # without MQTT the rule is moot
    with pytest.raises(SettingsError, match="TAD_MQTT_TOPICS"):
        load_settings(model_dir=tmp_path, mqtt_topics="a/b")  # names no stream


def _env(model_dir: Path, broker: str, client_id: str, prefix: str, **extra: str) -> dict[str, str]:
    return {
        "TAD_MODEL_DIR": str(model_dir),
        "TAD_MQTT_URL": broker,
        "TAD_MQTT_TOPICS": f"{prefix}/readings/{{stream_id}}",
        "TAD_MQTT_ALARM_TOPIC": f"{prefix}/alarms/{{stream_id}}",
        "TAD_MQTT_CLIENT_ID": client_id,
        **extra,
    }


def _connected(server: ServerProcess) -> bool:
    server.check_alive()
    return metric(server.http, "tad_mqtt_connected") == 1.0


def test_fault_over_mqtt_is_alarmed_and_published_back(
    model_dir: Path, bundle_v1: Path, mqtt_broker: str, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    x = series(400, anomaly=FAULT)
    want = reference(bundle_v1, x)
    assert want["events"], "the reference run alarms on the fault"
    env = _env(
        model_dir,
        mqtt_broker,
        f"{prefix}-svc",
        prefix,
        TAD_MQTT_STATE_TOPIC=f"{prefix}/state/{{stream_id}}",
    )
    server = ServerProcess(env, log=tmp_path / "server.log").start()
    watcher = MqttPeer(mqtt_broker, f"{prefix}-watch")
    gateway = MqttPeer(mqtt_broker, f"{prefix}-gw")
    try:
        wait_for(lambda: _connected(server), 20, "the service's MQTT connection")
        watcher.subscribe(f"{prefix}/alarms/#")
        topic = f"{prefix}/readings/pump-1"
        payloads = [flat(i, row) for i, row in enumerate(x.tolist())]
        payloads.insert(150, b'{"seq": 150.5, "temperature": "hot"}')  # malformed: skipped
        gateway.publish_points(topic, payloads)
        gateway.publish(f"{prefix}/readings/bad id", flat(0, x[0].tolist()))  # no valid stream
        got = watcher.wait_on(f"{prefix}/alarms/pump-1", len(want["events"]))
        assert_history(got, want)  # the same events as the core, in order, published back
        assert all(e["stream_id"] == "pump-1" and e["model"] for e in got)
        base = server.http
        wait_for(lambda: metric(base, 'tad_mqtt_messages_refused_total{reason="topic"}') == 1)
        assert metric(base, 'tad_mqtt_messages_refused_total{reason="malformed"}') == 1
        assert metric(base, "tad_mqtt_messages_accepted_total") == len(x)
        stream = httpx.get(f"{base}/v1/streams/pump-1", timeout=10).json()
        assert stream["count"] == len(x)
        alarms = httpx.get(f"{base}/v1/streams/pump-1/alarms", timeout=10).json()["events"]
        assert_history(alarms, want)
        assert server.log().count("refused (malformed)") == 1  # logged, once a minute at most
        # the retained current state: what a dashboard connecting later is handed at once
        late = MqttPeer(mqtt_broker, f"{prefix}-late")
        try:
            late.subscribe(f"{prefix}/state/#")
            (state,) = late.wait_on(f"{prefix}/state/pump-1", 1)
            closed = want["events"][-1].kind == "closed"
            assert state["in_alarm"] is not closed and state["stream_id"] == "pump-1"
        finally:
            late.close()
    finally:
        gateway.close()
        watcher.close()
        server.stop()


def test_tad_replay_publishes_as_a_gateway_and_prints_the_alarms(
    model_dir: Path, mqtt_broker: str, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    server = ServerProcess(
        _env(model_dir, mqtt_broker, f"{prefix}-svc", prefix), log=tmp_path / "server.log"
    ).start()
    try:
        wait_for(lambda: _connected(server), 20, "the service's MQTT connection")
        argv = [
            sys.executable,
            "-m",
            "service.cli",
            "replay",
            "--mqtt",
            mqtt_broker,
            "--demo",
            "--stream",
            "gw-1",
            "--topic",
            f"{prefix}/readings/{{stream_id}}",
            "--alarm-topic",
            f"{prefix}/alarms/{{stream_id}}",
        ]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=scaled(120), cwd=ROOT)
        assert done.returncode == 0, done.stderr
        assert "ALARM OPENED  gw-1 #1" in done.stdout, done.stdout
        assert "done: 1000 points published, 1 alarms opened" in done.stdout
        assert httpx.get(f"{server.http}/v1/streams/gw-1", timeout=10).json()["count"] == 1000
        # a CSV with a column the model does not have: --url tells which channels to send
        csv = tmp_path / "plant.csv"
        rows = series(300, anomaly=None).tolist()
        csv.write_text(
            "time,ambient,"
            + ",".join(DEMO_CHANNELS)
            + "\n"
            + "".join(f"{i},20.5," + ",".join(map(repr, r)) + "\n" for i, r in enumerate(rows))
        )
        fitted = [*argv[:6], "--url", server.http, "--csv", str(csv), "--stream", "gw-2", *argv[9:]]
        done = subprocess.run(fitted, capture_output=True, text=True, timeout=scaled(120), cwd=ROOT)
        assert done.returncode == 0, done.stderr
        assert "not sent (model 'demo' does not use them): ambient" in done.stderr
        wait_for(
            lambda: (
                httpx.get(f"{server.http}/v1/streams/gw-2", timeout=5).json().get("count") == 300
            )
        )
        bad = subprocess.run(
            [*argv[:5], "http://broker", "--demo"], capture_output=True, text=True, cwd=ROOT
        )
        assert bad.returncode == 1 and "--mqtt 'http://broker'" in bad.stderr
    finally:
        server.stop()


class Gateway(threading.Thread):
    """Publishes every point at a steady pace whatever happens to the service; after the first
    `hold_after` points it waits for `go` (set by the test once it has killed the service), so
    the kill lands mid-stream however slow the machine is."""

    def __init__(
        self, url: str, topic: str, payloads: list[bytes], per_s: float, hold_after: int
    ) -> None:
        super().__init__(daemon=True)
        self.peer = MqttPeer(url, f"gw-{uuid.uuid4().hex[:8]}")
        self.topic, self.payloads, self.per_s = topic, payloads, per_s
        self.hold_after = hold_after
        self.go = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            pause = threading.Event()
            for i, p in enumerate(self.payloads):
                if i == self.hold_after and not self.go.wait(scaled(120)):
                    raise TimeoutError("the test never let the gateway go on")
                self.peer.publish(self.topic, p)
                pause.wait(1 / self.per_s)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.done.set()


def _history(base: str, stream: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor: Any = None
    while True:
        params = {"limit": 10_000, **({"cursor": cursor} if cursor is not None else {})}
        page = httpx.get(f"{base}/v1/streams/{stream}/points", params=params, timeout=10).json()
        out.extend(page["points"])
        cursor = page["next_cursor"]
        if cursor is None:
            return out


def test_kill_9_mid_stream_loses_nothing_and_counts_nothing_twice(
    model_dir: Path,
    bundle_v1: Path,
    mqtt_broker: str,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
) -> None:
    n = 600
    x = series(n, anomaly=FAULT)
    want = reference(bundle_v1, x)
    prefix = f"t{uuid.uuid4().hex[:8]}"
    env = _env(
        model_dir,
        mqtt_broker,
        f"{prefix}-svc",  # the same client id after the restart: the broker keeps its session
        prefix,
        TAD_REDIS_URL=redis_url,
        TAD_REDIS_PREFIX=redis_prefix,
        TAD_HISTORY_POINTS="10000",
        TAD_MQTT_SCORE_TOPIC=f"{prefix}/scores/{{stream_id}}",
        TAD_MQTT_SCORE_INTERVAL_S="0",
    )
    log = tmp_path / "server.log"
    server = ServerProcess(env, log=log).start()
    watcher = MqttPeer(mqtt_broker, f"{prefix}-watch")
    watcher.subscribe(f"{prefix}/scores/#", f"{prefix}/alarms/#")
    wait_for(lambda: _connected(server), 20, "the service's MQTT connection")
    payloads = [flat(i, row) for i, row in enumerate(x.tolist())]
    gateway = Gateway(mqtt_broker, f"{prefix}/readings/s", payloads, per_s=300, hold_after=n // 2)
    gateway.start()
    base = server.http
    try:
        # kill once a third of the points are in; the gateway holds its second half until then
        wait_for(
            lambda: httpx.get(f"{base}/v1/streams/s", timeout=5).json().get("count", 0) >= n // 3,
            30,
            "a third of the points",
        )
        server.kill9()
        gateway.go.set()  # the second half is published while the service is down
        assert not gateway.done.is_set()
        server.start()  # the same process settings, port and client id
        wait_for(lambda: gateway.done.is_set(), 60, "the gateway")
        assert gateway.error is None, gateway.error
        wait_for(
            lambda: httpx.get(f"{base}/v1/streams/s", timeout=5).json()["count"] == n,
            60,
            "every point committed",
        )
        kept = _history(base, "s")
        assert [p["index"] for p in kept] == list(range(n))  # each point once, none lost
        assert [p["timestamp"] for p in kept] == [float(i) for i in range(n)]
        replies = watcher.on(f"{prefix}/scores/s")
        seen = assert_replies_match(replies, want)  # no point scored twice, each as uninterrupted
        # what a kill can cost: score messages of points committed but not yet published
        assert len(seen) >= n - 2 * 64, f"{n - len(seen)} points without a published score"
        alarms = httpx.get(f"{base}/v1/streams/s/alarms", timeout=10).json()["events"]
        assert_history(alarms, want)
    finally:
        gateway.peer.close()
        watcher.close()
        server.stop()


def test_replicas_on_a_shared_subscription_split_the_messages_and_commit_each_once(
    model_dir: Path,
    mqtt_broker: str,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
) -> None:
    """Two replicas, one shared subscription, one Redis: the broker hands each message to one
    replica; the per-stream commits keep every point once. A stream's points that two replicas
    hold at the same moment may be committed out of order: the later-arriving older point is
    then refused and counted (reason out_of_order), never stored twice or silently lost."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    streams, per_stream = 8, 60
    servers = [
        ServerProcess(
            _env(
                model_dir,
                mqtt_broker,
                f"{prefix}-svc-{k}",
                prefix,
                TAD_REDIS_URL=redis_url,
                TAD_REDIS_PREFIX=redis_prefix,
                TAD_HISTORY_POINTS="1000",
                TAD_MQTT_SHARED_GROUP="tad",
            ),
            log=tmp_path / f"server-{k}.log",
        ).start()
        for k in range(2)
    ]
    x = series(per_stream, anomaly=None)
    gateway = MqttPeer(mqtt_broker, f"{prefix}-gw")
    try:
        for s in servers:
            wait_for(lambda s=s: _connected(s), 20, "each replica's MQTT connection")
        for i in range(per_stream):  # round by round, as gateways publishing at 1 Hz would
            for k in range(streams):
                gateway.publish(f"{prefix}/readings/s{k}", flat(i, x[i].tolist()))

        def settled() -> bool:
            done = sum(
                metric(s.http, "tad_mqtt_messages_accepted_total")
                + metric(s.http, 'tad_mqtt_messages_refused_total{reason="out_of_order"}')
                for s in servers
            )
            return done == streams * per_stream

        wait_for(settled, 60, "every message handled by one replica")
        shares = [metric(s.http, "tad_mqtt_messages_received_total") for s in servers]
        assert all(n > 0 for n in shares) and sum(shares) == streams * per_stream, shares
        refused = sum(
            metric(s.http, 'tad_mqtt_messages_refused_total{reason="out_of_order"}')
            for s in servers
        )
        stored = 0
        for k in range(streams):
            kept = _history(servers[k % 2].http, f"s{k}")  # either replica: one Redis
            seqs = [p["timestamp"] for p in kept]
            assert seqs == sorted(set(seqs)), "a point stored twice or out of order"
            stored += len(kept)
        assert stored + refused == streams * per_stream
    finally:
        gateway.close()
        for s in servers:
            s.stop()


def test_tls_with_a_client_certificate(model_dir: Path, tmp_path: Path) -> None:
    """mqtts:// against a mosquitto that requires a client certificate from a private CA."""
    require_mosquitto()
    certs = make_certificates(tmp_path / "certs")
    broker = Mosquitto(
        tmp_path / "broker", tls=(certs["ca_crt"], certs["server_crt"], certs["server_key"])
    ).start()
    env = {
        "TAD_MODEL_DIR": str(model_dir),
        "TAD_MQTT_URL": broker.url,
        "TAD_MQTT_CA_FILE": str(certs["ca_crt"]),
        "TAD_MQTT_CERT_FILE": str(certs["client_crt"]),
        "TAD_MQTT_KEY_FILE": str(certs["client_key"]),
        "TAD_MQTT_CLIENT_ID": "tls-svc",
    }
    server = ServerProcess(env, log=tmp_path / "server.log").start()
    try:
        wait_for(lambda: _connected(server), 30, "a TLS connection with the client certificate")
        without = ServerProcess(
            {**env, "TAD_MQTT_CERT_FILE": "", "TAD_MQTT_KEY_FILE": "", "TAD_MQTT_CLIENT_ID": "x"},
            log=tmp_path / "refused.log",
        ).start()
        try:  # the broker refuses a client without a certificate: never connected
            assert metric(without.http, "tad_mqtt_connected") == 0
        finally:
            without.stop()
    finally:
        server.stop()
        broker.stop()


def test_a_backlog_stays_in_the_broker_and_the_service_holds_at_most_its_inflight(
    model_dir: Path, mqtt_broker: str, tmp_path: Path
) -> None:
    """Back-pressure: 1,500 messages queued for the service's session while it was down are
    all committed after it starts, and it never held more than TAD_MQTT_MAX_INFLIGHT at once."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    env = _env(model_dir, mqtt_broker, f"{prefix}-svc", prefix, TAD_MQTT_MAX_INFLIGHT="8")
    server = ServerProcess(env, log=tmp_path / "server.log").start()
    wait_for(lambda: _connected(server), 20, "the first connection (the session is made)")
    server.stop()  # the broker now queues for the session
    n, streams = 1500, 5
    x = series(n // streams, anomaly=None)
    gateway = MqttPeer(mqtt_broker, f"{prefix}-gw")
    try:
        for k in range(streams):
            gateway.publish_points(
                f"{prefix}/readings/s{k}", [flat(i, row) for i, row in enumerate(x.tolist())]
            )
        server.start()
        wait_for(
            lambda: metric(server.http, "tad_mqtt_messages_accepted_total") == n,
            60,
            "the backlog committed",
        )
        assert 1 <= metric(server.http, "tad_mqtt_messages_held_max") <= 8
        assert metric(server.http, "tad_mqtt_lag_seconds") == 0
    finally:
        gateway.close()
        server.stop()


_LEVEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=8)


@given(
    before=st.lists(_LEVEL, max_size=3),
    after=st.lists(_LEVEL, max_size=3),
    stream=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,20}", fullmatch=True),
    other=_LEVEL,
)
def test_a_route_gives_back_the_level_it_names(
    before: list[str], after: list[str], stream: str, other: str
) -> None:
    route = TopicRoute.parse("/".join([*before, "{stream_id}", *after]))
    assert route.subscription == "/".join([*before, "+", *after])
    assert route.match("/".join([*before, stream, *after])) == (stream, None)
    assert route.match("/".join([*before, stream, *after, other])) is None  # one level more
    if before and other != before[0]:
        assert route.match("/".join([other, *before[1:], stream, *after])) is None


def test_a_broker_account_is_used_and_a_wrong_password_never_connects(
    model_dir: Path, tmp_path: Path
) -> None:
    require_mosquitto()
    broker = Mosquitto(tmp_path / "broker", users={"tad": "s3cret-pw"}).start()
    env = {
        "TAD_MODEL_DIR": str(model_dir),
        "TAD_MQTT_URL": broker.url,
        "TAD_MQTT_USERNAME": "tad",
        "TAD_MQTT_PASSWORD": "s3cret-pw",
        "TAD_MQTT_CLIENT_ID": "account-svc",
        "TAD_LOG_LEVEL": "info",
    }
    server = ServerProcess(env, log=tmp_path / "server.log").start()
    try:
        wait_for(lambda: _connected(server), 30, "a connection with the account")
        wrong = ServerProcess(
            {**env, "TAD_MQTT_PASSWORD": "wrong", "TAD_MQTT_CLIENT_ID": "account-x"},
            log=tmp_path / "wrong.log",
        ).start()
        try:
            wait_for(lambda: "refused the connection" in wrong.log(), 30, "the refusal logged")
            assert metric(wrong.http, "tad_mqtt_connected") == 0
        finally:
            wrong.stop()
        assert "s3cret-pw" not in server.log() + wrong.log()
    finally:
        server.stop()
        broker.stop()
