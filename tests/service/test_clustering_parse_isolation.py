"""Issue 25: clustering inputs are sized by counting and parsed in their own process, so one
submission cannot take the service's memory or its event loop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.clustering import parse_process
from service.clustering.inputs import UploadLimits
from service.clustering.parse_process import count_ts
from service.errors import TooLarge
from tests.service.clustering_helpers import npz_bytes, three_groups

JOBS = "/v1/clustering/jobs"
IN_PROCESS = {"clustering_parse_in_process_bytes": 0, "clustering_workers": 0}


def _ts(lines: list[str]) -> bytes:
    head = "@problemName t\n@univariate false\n@dimensions 2\n@classLabel true 0 1 2\n@data\n"
    return (head + "\n".join(lines) + "\n").encode()


def test_a_30_mb_line_is_refused_by_counting_before_any_parse(
    make_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: 413 after 64 s at 3.0 GB of service memory (15 M values on one line)."""
    c = make_client(**IN_PROCESS)
    called: list[str] = []
    monkeypatch.setattr(parse_process, "parse_isolated", lambda *a, **k: called.append("x"))
    data = b"@data\n" + b"1.5," * 7_500_000 + b"1.5:0\n"  # 30 MB
    r = c.post(JOBS, files={"file": ("big.ts", data)}, data={"n_clusters": "2"})
    assert r.status_code == 413, r.text
    err = r.json()["error"]
    assert err["field"] == "file" and "TAD_CLUSTERING_MAX_T" in err["message"]
    assert called == []  # refused from the counts: no parser started


def test_too_many_lines_are_refused_by_counting(make_client: Callable[..., Any]) -> None:
    c = make_client(clustering_max_n=50, **IN_PROCESS)
    r = c.post(JOBS, files={"file": ("x.ts", _ts(["1,2,3:a"] * 51))}, data={"n_clusters": "2"})
    assert r.status_code == 413 and "TAD_CLUSTERING_MAX_N" in r.json()["error"]["message"]


def test_large_inputs_are_parsed_in_another_process(
    make_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service's own parsers are never called for an input over the in-process size."""
    from service.routes import clustering as route

    def refuse(*_: Any) -> Any:
        raise AssertionError("parsed in the service process")

    for name in ("from_upload", "from_json", "parse_request"):
        monkeypatch.setattr(route, name, refuse)
    c = make_client(**IN_PROCESS)
    x, y = three_groups(n_per=4, t=16)
    r = c.post(JOBS, files={"file": ("x.npz", npz_bytes(X=x, y=y))}, data={"n_clusters": "3"})
    assert r.status_code == 202, r.text
    assert r.json()["input"] | {"n": 12, "t": 16, "d": 2, "source": "npz"} == r.json()["input"]
    lines = [":".join(",".join(f"{v:.3f}" for v in s[:, j]) for j in range(2)) for s in x]
    ts = _ts([f"{a}:{b}" for a, b in zip(lines, y, strict=True)])
    r = c.post(JOBS, files={"file": ("x.ts", ts)}, data={"n_clusters": "3"})
    assert r.status_code == 202, r.text
    assert r.json()["input"]["source"] == "ts" and r.json()["input"]["labels"] is True
    r = c.post(JOBS, json={"series": x.tolist(), "n_clusters": 3})
    assert r.status_code == 202 and r.json()["input"]["source"] == "json"
    # a body asking for streams' episodes comes back to the service, which reads the store
    monkeypatch.undo()
    r = c.post(JOBS, json={"streams": ["nobody"], "n_clusters": 2})
    assert r.status_code == 404 and r.json()["error"]["field"] == "streams[0]", r.text


def _expected(lines: list[bytes], limits: UploadLimits) -> bool:
    """Refused? — by a plain reading of the lines."""
    data = [ln for ln in lines if ln[:1] not in (b"@", b"#", b"", b"\r")]
    widest = max((ln.count(b",") + ln.count(b":") + 1 for ln in lines), default=0)
    return len(data) > limits.max_n or widest > limits.max_t * limits.max_d + 1


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(
        st.one_of(
            st.sampled_from([b"@data", b"# note", b"", b"  @x"]),
            st.lists(st.sampled_from([b"1", b"2.5"]), min_size=1, max_size=12).map(
                lambda v: b",".join(v)
            ),
            st.tuples(st.integers(1, 6), st.integers(1, 3)).map(
                lambda td: b":".join([b",".join([b"1"] * td[0])] * td[1])
            ),
        ),
        max_size=30,
    ),
    chunk=st.integers(1, 17),
)
def test_counting_agrees_with_reading_the_lines(
    lines: list[bytes], chunk: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Chunk boundaries anywhere (down to one byte) give the same verdict as whole lines."""
    limits = UploadLimits(max_n=5, max_t=4, max_d=2, max_values=10**6, max_epochs=1)
    path = tmp_path_factory.mktemp("ts") / "x.ts"
    path.write_bytes(b"\n".join(lines) + b"\n")
    original = parse_process.CHUNK_BYTES
    parse_process.CHUNK_BYTES = chunk
    try:
        count_ts(path, limits)
        refused = False
    except TooLarge:
        refused = True
    finally:
        parse_process.CHUNK_BYTES = original
    assert refused == _expected(lines, limits)


def test_a_spooled_copy_is_removed_after_the_request(
    make_client: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    c = make_client(**IN_PROCESS)
    x, _ = three_groups(n_per=2, t=16)
    assert c.post(JOBS, json={"series": x.tolist(), "n_clusters": 9}).status_code == 422
    assert c.post(JOBS, json={"series": x.tolist(), "n_clusters": 2}).status_code == 202
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("tad-upload-")] == []


def test_a_large_form_is_split_off_the_loop_with_the_same_refusals(
    make_client: Callable[..., Any],
) -> None:
    """multipart_spool: the form of a large upload, parsed in a worker thread."""
    c = make_client(**IN_PROCESS)
    boundary = "b0undary"
    head = f"multipart/form-data; boundary={boundary}"
    broken = f"--{boundary}\r\nContent-Disposition: form-data; name=file\r\n\r\nabc".encode()
    r = c.post(JOBS, content=broken, headers={"content-type": head})
    assert r.status_code == 422 and r.json()["error"]["field"] == "file", r.text
    x, _ = three_groups(n_per=2, t=16)
    r = c.post(
        JOBS,
        files={"file": ("x.npz", npz_bytes(X=x))},
        data={"n_clusters": "2", "options": "x" * (65 << 10)},
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "options", r.text
    r = c.post(JOBS, files={"n_clusters": ("n.txt", b"2"), "file": ("x.npz", npz_bytes(X=x))})
    assert r.status_code == 422 and r.json()["error"]["field"] == "n_clusters", r.text
