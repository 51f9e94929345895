"""The broker connection: paho-mqtt on its own network thread, messages handed to the loop.

paho-mqtt rather than an asyncio wrapper (aiomqtt) because delivery rests on *manual*
acknowledgement: a QoS 1 message is acknowledged (PUBACK) only once its points are committed
(`ack`), which paho supports (`manual_ack=True`) and aiomqtt does not expose. The session is
persistent (MQTT 5, clean start off, a session expiry), so after a crash or a restart the broker
delivers again every message that was not acknowledged, and holds what arrives meanwhile.

Back-pressure: at most TAD_MQTT_MAX_INFLIGHT messages are held here between receipt and
acknowledgement. The connection asks the broker for that window (MQTT 5 receive maximum), and
enforces it itself: a message takes a slot on paho's thread before it is handed on, and gives
it back when it is acknowledged; with no slot free, paho's thread waits, stops reading the
socket, and the backlog stays in the broker (TCP flow control). The broker's window alone is
not enough: mosquitto 2.0.11 (Debian 12) answers each PUBACK with up to a window more messages
(tests/service/test_mqtt.py measured 847 held with a window of 8 before this).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from service.settings import Settings

log = logging.getLogger(__name__)
OUTGOING_QUEUE = 10_000  # alarm/score publishes paho holds while the broker is away


@dataclass(slots=True)
class Message:
    """One received PUBLISH, as the loop sees it."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    received_s: float  # time.monotonic() at receipt


def client_id(settings: Settings) -> str:
    """TAD_MQTT_CLIENT_ID, or `tad-<hostname>`: stable across restarts of the same host or pod,
    so the broker hands the restarted service its own session (and unacknowledged messages)."""
    return settings.mqtt_client_id or f"tad-{socket.gethostname()}"[:64]


class BrokerConnection:
    """Connects, subscribes, reconnects (paho's loop thread); `on_message` runs on the loop."""

    def __init__(
        self,
        settings: Settings,
        subscriptions: list[str],
        on_message: Callable[[Message], None],
        on_state: Callable[[bool], None],
    ) -> None:
        self.settings = settings
        self.subscriptions = subscriptions
        self.on_message = on_message
        self.on_state = on_state  # called on the loop: connected or not
        self.loop: asyncio.AbstractEventLoop | None = None
        self.slots = threading.Semaphore(settings.mqtt_max_inflight)
        self.stopping = threading.Event()
        self.client = self._client()

    def _client(self) -> paho.Client:
        s = self.settings
        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id(s),
            protocol=paho.MQTTv5,
            manual_ack=True,
        )
        if s.mqtt_username:
            password = s.mqtt_password.get_secret_value() if s.mqtt_password else None
            c.username_pw_set(s.mqtt_username, password)
        if urlsplit(s.mqtt_url or "").scheme == "mqtts":
            c.tls_set(
                ca_certs=str(s.mqtt_ca_file) if s.mqtt_ca_file else None,
                certfile=str(s.mqtt_cert_file) if s.mqtt_cert_file else None,
                keyfile=str(s.mqtt_key_file) if s.mqtt_key_file else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        c.max_queued_messages_set(OUTGOING_QUEUE)
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        return c

    def start(self) -> None:
        """Connect in the background (a broker that is down is retried, start-up goes on)."""
        self.loop = asyncio.get_running_loop()
        parts = urlsplit(self.settings.mqtt_url or "")
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.mqtt_session_expiry_s
        props.ReceiveMaximum = self.settings.mqtt_max_inflight
        self.client.connect_async(
            parts.hostname or "localhost",
            port,
            keepalive=self.settings.mqtt_keepalive_s,
            clean_start=False,
            properties=props,
        )
        self.client.loop_start()

    def stop(self) -> None:
        self.stopping.set()  # a paho thread waiting for a slot gives up (the message stays unacked)
        self.client.disconnect()
        self.client.loop_stop()

    def ack(self, msg: Message) -> None:
        """Acknowledge (QoS > 0) and give the message's slot back."""
        if msg.qos > 0:
            self.client.ack(msg.mid, msg.qos)
        self.release()

    def release(self, n: int = 1) -> None:
        """Give back the slots of `n` messages let go without an acknowledgement (dropped when
        the connection went: the broker sends them again)."""
        for _ in range(n):
            self.slots.release()

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> bool:
        """Queue a publish (sent now, or after a reconnect); False when paho's queue is full."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        return info.rc in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN)

    # paho's thread ---------------------------------------------------------------------
    def _call(self, fn: Callable[..., None], *args: object) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(fn, *args)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("MQTT broker refused the connection: %s", reason_code)
            return
        qos = self.settings.mqtt_qos
        client.subscribe([(f, qos) for f in self.subscriptions])
        log.info(
            "MQTT connected (session present: %s), subscribed to %s",
            flags.session_present,
            ", ".join(self.subscriptions),
        )
        self._call(self.on_state, True)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        log.warning("MQTT disconnected: %s; reconnecting", reason_code)
        self._call(self.on_state, False)

    def _on_message(self, client, userdata, m) -> None:
        while not self.slots.acquire(timeout=0.5):  # the window is full: wait, stop reading
            if self.stopping.is_set():
                return
        msg = Message(m.topic, bytes(m.payload), m.mid, m.qos, time.monotonic())
        self._call(self.on_message, msg)
