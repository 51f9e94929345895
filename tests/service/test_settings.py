"""Settings come from TAD_* variables; a bad one stops start-up naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.settings import SettingsError, load_settings
from tests.support.processes import ROOT


def test_environment_is_read_with_the_tad_prefix(
    monkeypatch: pytest.MonkeyPatch, model_dir: Path
) -> None:
    monkeypatch.setenv("TAD_MODEL_DIR", str(model_dir))
    monkeypatch.setenv("TAD_API_KEYS", " k-one, k-two ,,")
    monkeypatch.setenv("TAD_MQTT_PASSWORD", "mqtt-secret")
    monkeypatch.setenv("TAD_NONFINITE_POLICY", "hold")
    monkeypatch.setenv("TAD_REDIS_URL", "redis://127.0.0.1:6379/2")
    monkeypatch.setenv("TAD_MAX_BODY_BYTES", "65536")
    s = load_settings()
    assert s.model_dir == model_dir and s.key_entries() == ["k-one", "k-two"]
    assert s.nonfinite_policy == "hold" and s.max_body_bytes == 65536
    assert s.redis_url == "redis://127.0.0.1:6379/2"
    for secret in ("k-one", "k-two", "mqtt-secret"):
        assert secret not in repr(s) and secret not in str(s.model_dump())


@pytest.mark.parametrize(
    ("var", "value", "says"),
    [
        ("TAD_NONFINITE_POLICY", "ignore", "'reject' or 'hold'"),
        ("TAD_MODEL_DIR", "/no/such/dir", "is not a directory"),
        ("TAD_REDIS_URL", "http://x", "must start with redis://"),
        ("TAD_MAX_BODY_BYTES", "ten", "valid integer"),
        ("TAD_PORT", "70000", "less than or equal to 65535"),
    ],
)
def test_a_bad_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, model_dir: Path, var: str, value: str, says: str
) -> None:
    monkeypatch.setenv("TAD_MODEL_DIR", str(model_dir))
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert var in str(info.value) and says in str(info.value)


def test_serve_exits_with_the_variable_named(model_dir: Path) -> None:
    env = {
        **os.environ,
        "TAD_MODEL_DIR": str(model_dir),
        "TAD_NONFINITE_POLICY": "drop",
        "TAD_API_KEYS": "sekrit-key-1",
    }
    out = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "TAD_NONFINITE_POLICY" in out.stderr and "sekrit" not in out.stderr + out.stdout


def test_import_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAD_PORT", "not a port")
    code = "import service.app, service.cli, service.routes.points; print('ok')"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "ok", out.stderr
