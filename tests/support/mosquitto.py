"""A private `mosquitto` broker for the MQTT tests and benchmark (never a broker already running).

Started on a free loopback port with its own config: anonymous clients, no persistence of its
own (a test kills the *service*, not the broker), no limit on messages queued for a
disconnected persistent session (a service that is down misses nothing). Without the binary the
constructor raises `MosquittoMissing`; `require_mosquitto()` turns that into a failure in CI and
a skip elsewhere.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
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
    """`tls`: (CA file, server certificate, server key) → the listener speaks TLS and requires
    a client certificate signed by that CA."""

    def __init__(
        self,
        workdir: Path,
        tls: tuple[Path, Path, Path] | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise MosquittoMissing("mosquitto is not installed (apt-get install mosquitto)")
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            # as root mosquitto would switch to user "mosquitto", who cannot read the test's
            # private temporary files: stay the user the tests run as
            f"user {getpass.getuser()}\n"
            + ("allow_anonymous false\n" if users else "allow_anonymous true\n")
            + "persistence false\n"
            "max_queued_messages 0\n"
            "max_inflight_messages 0\n"
            + (
                f"cafile {tls[0]}\ncertfile {tls[1]}\nkeyfile {tls[2]}\nrequire_certificate true\n"
                if tls
                else ""
            )
        )
        self.tls = tls is not None
        if users:  # a password file made with mosquitto_passwd, as an operator would
            passwd = workdir / "passwd"
            passwd.write_text("")
            for user, password in users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(passwd), user, password],
                    check=True,
                    capture_output=True,
                    timeout=30,
                )
            with conf.open("a") as fh:
                fh.write(f"password_file {passwd}\n")
        super().__init__("mosquitto", [binary, "-c", str(conf)], workdir / "mosquitto.log")

    @property
    def url(self) -> str:
        if self.tls:  # the name the server certificate carries
            return f"mqtts://localhost:{self.port}"
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


def make_certificates(workdir: Path) -> dict[str, Path]:
    """A private CA, a server certificate for localhost/127.0.0.1 and a client certificate,
    made with the openssl command (for the TLS test)."""
    d = workdir
    d.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=tad-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, cn in (("server", "localhost"), ("client", "tad-service")):
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={cn}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
        )
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            f"{name}.crt",
            *(["-extfile", "san.ext"] if name == "server" else []),
        )
    return {p.stem + p.suffix.replace(".", "_"): d / p.name for p in d.iterdir()}
