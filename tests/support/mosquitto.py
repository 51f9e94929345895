"""A private `mosquitto` broker for the MQTT tests and benchmark (never a broker already running).

Started on a free loopback port with its own config: anonymous clients, no persistence of its
own (a test kills the *service*, not the broker), no limit on messages queued for a
disconnected persistent session (a service that is down misses nothing). Without the binary the
constructor raises `MosquittoMissing`; `require_mosquitto()` turns that into a failure in CI and
a skip elsewhere.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

from tests.support.processes import ManagedProcess, free_port, wait_for


class MosquittoMissing(FileNotFoundError):
    """No `mosquitto` on the PATH (or in /usr/sbin, where Debian puts it)."""


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")


def require_mosquitto() -> None:
    """In a test: fail in CI (a missing component is a failure there), skip elsewhere."""
    import pytest

    if mosquitto_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto is required in CI (apt-get install mosquitto)")
        pytest.skip("mosquitto not installed")


class Mosquitto(ManagedProcess):
    def __init__(self, workdir: Path) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise MosquittoMissing("mosquitto is not installed (apt-get install mosquitto)")
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "max_queued_messages 0\n"
            "max_inflight_messages 0\n"
        )
        super().__init__("mosquitto", [binary, "-c", str(conf)], workdir / "mosquitto.log")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Mosquitto:
        super().start()
        wait_for(self.listening, 15, f"mosquitto on {self.port}")
        return self

    def listening(self) -> bool:
        self.check_alive()
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False
