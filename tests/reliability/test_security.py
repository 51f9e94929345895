"""Security promises that tests/service does not already prove (API keys constant-time and never
logged, size limits: see tests/service/test_auth.py and test_bad_input.py):

- a per-client rate limit (token bucket per API key, else per address): HTTP 429 with
  Retry-After, WebSocket close 1013 with the wait in its reason, messages delayed, not dropped;
- CORS off unless TAD_CORS_ORIGINS is set, and then only for the listed origins;
- no pickle, marshal, shelve, eval or exec anywhere in the code that handles input.
"""

from __future__ import annotations

import ast
import time
from pathlib import Path
from typing import Any

import pytest
from starlette.websockets import WebSocketDisconnect

from service.middleware.rate_limit import TokenBuckets
from service.settings import SettingsError, load_settings
from tests.support.data import points, series
from tests.support.processes import ROOT

KEYS = ("rl-key-one-7c1f", "rl-key-two-9d2e")


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_token_bucket_refills_at_its_rate_and_caps_at_its_burst() -> None:
    clock = Clock()
    b = TokenBuckets(rate=2.0, burst=3, max_clients=2, clock=clock)
    assert [b.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take("a") == pytest.approx(0.5)  # one token every 0.5 s
    assert b.take("b") == 0.0  # another client, its own bucket
    clock.t = 0.5
    assert b.take("a") == 0.0 and b.take("a") == pytest.approx(0.5)
    clock.t = 100.0
    assert [b.take("a") for _ in range(3)] == [0.0] * 3 and b.take("a") > 0  # capped at burst
    # reservations queue up: each waits one more token's time
    assert [b.reserve("c") for _ in range(5)] == pytest.approx([0, 0, 0, 0.5, 1.0])
    assert len(b) == 2  # at most max_clients buckets are kept (least recently used dropped)


def test_http_over_the_rate_is_429_with_retry_after_per_key(make_client: Any) -> None:
    c = make_client(api_keys=",".join(KEYS), rate_limit_per_s=0.5, rate_limit_burst=3)
    one, two = ({"X-API-Key": k} for k in KEYS)
    body = {"points": points(series(3))}
    assert c.post("/v1/streams/a/points", json=body, headers=one).status_code == 200
    assert c.get("/v1/streams/a", headers=one).status_code == 200
    assert c.get("/v1/models", headers=one).status_code == 200
    r = c.get("/v1/models", headers=one)
    assert r.status_code == 429, r.text
    assert r.headers["retry-after"] in ("1", "2")  # a whole token at 0.5/s
    err = r.json()["error"]
    assert err["type"] == "rate_limited"
    assert f"retry after {r.headers['retry-after']} s" in err["message"]
    assert c.get("/v1/models", headers=two).status_code == 200  # each key has its own budget
    bearer = {"Authorization": f"Bearer {KEYS[0]}"}  # the same key however it is presented
    assert c.get("/v1/models", headers=bearer).status_code == 429
    for _ in range(5):  # probes are never limited
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
    # wrong keys share the address's bucket, so guessing keys cannot buy fresh budgets
    wrong = [c.get("/v1/models", headers={"X-API-Key": f"guess-{i}"}) for i in range(5)]
    assert [r.status_code for r in wrong] == [401, 401, 401, 429, 429]
    text = c.get("/metrics", headers=two).text
    assert 'tad_rate_limited_total{action="http"} 4.0' in text
    # the 429 is documented on the routes it can come from
    paths = c.get("/openapi.json", headers=two).json()["paths"]
    assert "429" in paths["/v1/streams/{stream_id}/points"]["post"]["responses"]
    assert "429" not in paths["/healthz"]["get"]["responses"]


def test_websocket_over_the_rate_is_refused_at_the_handshake_and_delayed_after(
    make_client: Any,
) -> None:
    c = make_client(rate_limit_per_s=20, rate_limit_burst=2)
    x = series(12)
    with c.websocket_connect("/v1/streams/w/ws") as ws:  # takes 1 token
        t0 = time.monotonic()
        for i in range(6):  # 1 token left, then 20/s: the messages wait, none is dropped
            ws.send_json({"points": points(x[i : i + 1], i)})
            assert ws.receive_json()["index"] == [i]
        assert time.monotonic() - t0 >= 4 / 20 * 0.9
        with c.websocket_connect("/v1/streams/w2/ws") as refused:
            err = refused.receive_json()["error"]
            assert err["type"] == "rate_limited"
            with pytest.raises(WebSocketDisconnect) as info:
                refused.receive_json()
        assert info.value.code == 1013 and "retry after 1 s" in info.value.reason
        ws.send_json({"points": points(x[6:7], 6)})  # the open socket is still served
        assert ws.receive_json()["index"] == [6]
    time.sleep(0.3)  # let the bucket refill: /metrics is a request like any other
    text = c.get("/metrics").text
    assert 'tad_rate_limited_total{action="websocket"} 1.0' in text
    assert 'tad_rate_limited_total{action="delayed"}' in text


def test_no_rate_limit_by_default(make_client: Any) -> None:
    c = make_client()
    assert all(c.get("/v1/models").status_code == 200 for _ in range(150))


PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key"}
CORS_PROBES = (("OPTIONS", PREFLIGHT), ("GET", {}))


@pytest.mark.parametrize(("method", "extra"), CORS_PROBES)
def test_cors_is_off_by_default(make_client: Any, method: str, extra: dict[str, str]) -> None:
    c = make_client()
    r = c.request(method, "/v1/models", headers={"Origin": "https://evil.example", **extra})
    assert not [h for h in r.headers if h.lower().startswith("access-control-")], r.headers


def test_cors_allows_only_the_configured_origins(make_client: Any) -> None:
    c = make_client(cors_origins="https://ops.example.com, http://localhost:3000")
    ok = c.options(
        "/v1/streams/s/points",
        headers={
            "Origin": "https://ops.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key,content-type",
        },
    )
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "https://ops.example.com"
    assert "x-api-key" in ok.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in ok.headers
    r = c.get("/v1/models", headers={"Origin": "http://localhost:3000"})
    assert r.headers["access-control-allow-origin"] == "http://localhost:3000"
    other = c.get("/v1/models", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    bad = c.options(
        "/v1/models",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert bad.status_code == 400 and "access-control-allow-origin" not in bad.headers


def test_cors_origins_are_validated(model_dir: Path) -> None:
    with pytest.raises(SettingsError, match="TAD_CORS_ORIGINS"):
        load_settings(model_dir=model_dir, cors_origins="ops.example.com")
    s = load_settings(model_dir=model_dir, cors_origins="*")
    assert s.cors_origins == ["*"]


# -- no deserialisation or evaluation of input ---------------------------------------------

SCANNED = ("detector", "model_training", "service", "tad", "bench", "deploy")
FORBIDDEN_MODULES = {
    "pickle",
    "cPickle",
    "_pickle",
    "marshal",
    "shelve",
    "dill",
    "cloudpickle",
    "joblib",
}
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}


def _findings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(ROOT)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
            for name in names:
                if name.split(".")[0] in FORBIDDEN_MODULES:
                    out.append(f"{where}:{node.lineno}: imports {name}")
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in FORBIDDEN_CALLS:
                out.append(f"{where}:{node.lineno}: calls {f.id}()")
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            kwargs = {k.arg: k.value for k in node.keywords}
            pickled = kwargs.get("allow_pickle")
            if isinstance(pickled, ast.Constant) and pickled.value is True:
                out.append(f"{where}:{node.lineno}: allow_pickle=True")
            if name == "load" and isinstance(f, ast.Attribute):
                base = ast.unparse(f.value)
                if base in ("np", "numpy") and not (
                    isinstance(pickled, ast.Constant) and pickled.value is False
                ):
                    out.append(f"{where}:{node.lineno}: np.load without allow_pickle=False")
                if base == "torch" and not (
                    isinstance(kwargs.get("weights_only"), ast.Constant)
                    and kwargs["weights_only"].value is True  # type: ignore[union-attr]
                ):
                    out.append(f"{where}:{node.lineno}: torch.load without weights_only=True")
                if base == "yaml":
                    out.append(f"{where}:{node.lineno}: yaml.load (use yaml.safe_load)")
            if name in ("read_pickle", "to_pickle", "unsafe_load", "full_load"):
                out.append(f"{where}:{node.lineno}: {name}()")
            if name in ("run", "Popen", "call", "check_call", "check_output"):
                shell = kwargs.get("shell")
                if isinstance(shell, ast.Constant) and shell.value is True:
                    out.append(f"{where}:{node.lineno}: subprocess with shell=True")
    return out


def test_no_pickle_eval_or_exec_in_the_source_tree() -> None:
    files = [p for d in SCANNED for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 50, "the scan found the source tree"
    findings = [f for p in files for f in _findings(p)]
    assert not findings, "\n".join(findings)


def test_the_scan_catches_what_it_looks_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tests.reliability.test_security.ROOT", tmp_path)
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import pickle\nfrom marshal import loads\nimport numpy as np\nimport torch, yaml\n"
        "eval('1')\nexec('x = 1')\nnp.load('f.npy')\nnp.load('g', allow_pickle=True)\n"
        "torch.load('m.pt')\nyaml.load(s)\nimport subprocess\nsubprocess.run('ls', shell=True)\n"
        "model.eval()\nimport ast\nast.literal_eval('1')\nnp.load('ok', allow_pickle=False)\n"
    )
    found = "\n".join(_findings(bad))
    for what in (
        "imports pickle",
        "imports marshal",
        "calls eval()",
        "calls exec()",
        "np.load without allow_pickle=False",
        "allow_pickle=True",
        "torch.load without weights_only=True",
        "yaml.load",
        "shell=True",
    ):
        assert what in found, (what, found)
    assert ":13:" not in found and ":15:" not in found and ":16:" not in found, found
