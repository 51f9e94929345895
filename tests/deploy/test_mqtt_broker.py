"""The compose stack's MQTT broker (profile `mqtt`) on loopback: the real mosquitto with
deploy/mosquitto/mosquitto.conf (listener → a free loopback port, the data volume → a
temporary directory), its compose health check, the service subscribing to it, and a broker
restart the service rides through (it reconnects; its persistent session kept what was
published meanwhile)."""

from __future__ import annotations

import getpass
import signal
from pathlib import Path

import httpx
import orjson

from tests.deploy.stack import healthcheck_argv, load_compose, mounts, run_healthcheck
from tests.support.data import series
from tests.support.mosquitto import mosquitto_binary, require_mosquitto
from tests.support.mqtt_peer import MqttPeer
from tests.support.processes import ROOT, ManagedProcess, ServerProcess, free_port, wait_for

CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"


def localized_broker(tmp: Path, port: int) -> ManagedProcess:
    svc = load_compose({"GRAFANA_ADMIN_PASSWORD": "pw"})["services"]["mosquitto"]
    data = mounts(svc, tmp)["/mosquitto/data"]
    text = CONF.read_text()
    assert "listener 1883\n" in text and "persistence_location /mosquitto/data/" in text
    text = text.replace("listener 1883\n", f"listener {port} 127.0.0.1\nuser {getpass.getuser()}\n")
    text = text.replace("persistence_location /mosquitto/data/", f"persistence_location {data}/")
    conf = tmp / "mosquitto.conf"
    conf.write_text(text)
    binary = mosquitto_binary()
    assert binary is not None
    return ManagedProcess("mosquitto", [binary, "-c", str(conf)], tmp / "mosquitto.log")


def metric(base: str, name: str) -> float:
    for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


def test_the_compose_broker_serves_the_service_and_survives_a_restart(
    model_dir: Path, tmp_path: Path
) -> None:
    require_mosquitto()
    port = free_port()
    broker = localized_broker(tmp_path, port).start()
    svc = load_compose({"GRAFANA_ADMIN_PASSWORD": "pw"})["services"]["mosquitto"]
    check = [*healthcheck_argv(svc), "-p", str(port)]
    wait_for(lambda: broker.check_alive() or run_healthcheck(check) == 0, 15, "the health check")
    url = f"mqtt://127.0.0.1:{port}"
    server = ServerProcess(
        {"TAD_MODEL_DIR": str(model_dir), "TAD_MQTT_URL": url, "TAD_MQTT_CLIENT_ID": "tad-deploy"},
        log=tmp_path / "server.log",
    ).start()
    x = series(300, anomaly=None)
    gateway: MqttPeer | None = None
    try:
        wait_for(lambda: metric(server.http, "tad_mqtt_connected") == 1, 20, "a connection")
        gateway = MqttPeer(url, "gw-deploy")
        for i in range(100):
            body = orjson.dumps({"seq": i, "values": x[i].tolist()})
            gateway.publish("tad/readings/plant-1", body)
        count = lambda: httpx.get(f"{server.http}/v1/streams/plant-1", timeout=5).json()  # noqa: E731
        wait_for(lambda: count().get("count") == 100, 20, "100 points in")
        gateway.close()
        gateway = None
        broker.signal(signal.SIGTERM)  # saved to the data volume
        assert broker.proc is not None
        broker.proc.wait(15)
        assert (tmp_path / "volumes" / "mosquitto-data" / "mosquitto.db").exists()  # sessions kept
        wait_for(lambda: metric(server.http, "tad_mqtt_connected") == 0, 20, "the disconnect")
        broker.start()
        wait_for(lambda: metric(server.http, "tad_mqtt_connected") == 1, 60, "the reconnect")
        assert metric(server.http, "tad_mqtt_reconnects_total") >= 1
        gateway = MqttPeer(url, "gw-deploy-2")
        for i in range(100, 300):
            gateway.publish(
                "tad/readings/plant-1", orjson.dumps({"seq": i, "values": x[i].tolist()})
            )
        wait_for(lambda: count().get("count") == 300, 30, "every point after the restart")
        assert "Traceback" not in server.log()
    finally:
        if gateway is not None:
            gateway.close()
        server.stop()
        broker.stop()
