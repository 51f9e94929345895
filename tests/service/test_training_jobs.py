"""Training through the API (issue 26, part 2): record a stream, train a new model from its
history in a job process, load it, move the stream to it, and an injected fault alarms."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.data import points, series
from tests.support.processes import wait_for

SMALL = {"epochs": 2, "d_model": 16, "expansion": 1, "seed": 0}


def finished(c: Any, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body = c.get(f"/v1/training/jobs/{job_id}").json()
        return body if body["status"] in ("succeeded", "failed", "cancelled") else None

    result: dict[str, Any] = wait_for(done, timeout, "the training job to finish")
    return result


def serving(c: Any, name: str) -> bool:
    return any(m["name"] == name for m in c.get("/v1/models").json()["models"])


@pytest.fixture
def recorder(make_client: Any, store_settings: dict[str, Any]) -> Any:
    return make_client(history_points=5000, **store_settings)


def test_record_train_reload_switch_alarm(recorder: Any) -> None:
    c = recorder
    x = series(2000, anomaly=(1200, 1230))  # a recorded fault the job must leave out
    for lo in range(0, 1600, 400):
        assert c.post("/v1/streams/p/points", json={"points": points(x[lo : lo + 400], lo)})
    r = c.post("/v1/training/jobs", json={"model": "plant", "streams": ["p"], "options": SMALL})
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/v1/training/jobs/{job['job_id']}"
    (used,) = job["input"]["streams"]
    assert used["in_range"] == 1600 and used["left_out_as_alarms"] > 0
    assert used["used"] == 1600 - used["left_out_as_alarms"]
    done = finished(c, job["job_id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["model"] == "plant" and done["progress"]["epoch"] >= 1
    assert "fault_auc" in done["progress"]
    wait_for(lambda: serving(c, "plant"), 60, "the trained model to load")
    r = c.put("/v1/streams/p", json={"model": "plant"})
    assert r.status_code == 200 and r.json()["model"] == "plant", r.text
    after = c.post("/v1/streams/p/points", json={"points": points(x[1600:1800], 1600)}).json()
    assert not any(after["warmup"]) and not after["events"]  # nominal: quiet
    fault = series(2000, anomaly=(1850, 1900))
    out = c.post("/v1/streams/p/points", json={"points": points(fault[1800:2000], 1800)}).json()
    assert [e["kind"] for e in out["events"]][:1] == ["opened"], out["events"]
    assert c.get(f"/v1/clustering/jobs/{job['job_id']}").status_code == 404  # not its kind


def test_training_requests_are_checked(make_client: Any) -> None:
    c = make_client(history_points=0, api_keys="root-key-0001,ingest:ingest-key-02")
    admin, ingest = {"X-API-Key": "root-key-0001"}, {"X-API-Key": "ingest-key-02"}
    x = series(300, anomaly=None)
    c.post("/v1/streams/q/points", json={"points": points(x)}, headers=ingest)
    body = {"model": "m", "streams": ["q"]}
    assert c.post("/v1/training/jobs", json=body, headers=ingest).status_code == 403
    r = c.post("/v1/training/jobs", json=body, headers=admin)  # no history recorded
    assert r.status_code == 422 and r.json()["error"]["field"] == "streams", r.text
    r = c.post("/v1/training/jobs", json={**body, "streams": ["nobody"]}, headers=admin)
    assert r.status_code == 404
    r = c.post("/v1/training/jobs", json={**body, "options": {"epochs": 0}}, headers=admin)
    assert r.status_code == 422 and "epochs" in r.json()["error"]["field"]
    r = c.post("/v1/training/jobs", json={**body, "options": {"bogus": 1}}, headers=admin)
    assert r.status_code == 422
    assert c.get("/v1/training/jobs/" + "0" * 32, headers=admin).status_code == 404


def test_a_cancelled_training_job_writes_no_bundle(make_client: Any, model_dir: Any) -> None:
    c = make_client(history_points=5000)
    x = series(3000, anomaly=None)
    c.post("/v1/streams/p/points", json={"points": points(x)})
    long = {"epochs": 500, "patience": 100, "d_model": 64, "seed": 0}
    r = c.post("/v1/training/jobs", json={"model": "slow", "streams": ["p"], "options": long})
    assert r.status_code == 202, r.text
    job = r.json()
    wait_for(
        lambda: c.get(f"/v1/training/jobs/{job['job_id']}").json()["progress"],
        120,
        "the job's first epoch",
    )
    assert c.delete(f"/v1/training/jobs/{job['job_id']}").status_code == 202
    done = finished(c, job["job_id"])
    assert done["status"] == "cancelled"
    assert not [p for p in model_dir.iterdir() if p.name.startswith("slow")]
    assert not serving(c, "slow")


def test_without_torch_a_training_request_names_the_trainer_image(
    make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.training import jobs

    monkeypatch.setattr(jobs.backend, "torch_missing", lambda: "no torch")
    c = make_client(history_points=1000)
    r = c.post("/v1/training/jobs", json={"model": "m", "streams": ["q"]})
    assert r.status_code == 503 and "trainer" in r.json()["error"]["message"], r.text


def test_tad_train_url_trains_on_a_running_service(
    model_dir: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tad train --url` submits the job, follows it and says how to move a stream."""
    import httpx

    from tad.cli import main
    from tests.support.processes import ServerProcess

    env = {"TAD_MODEL_DIR": str(model_dir), "TAD_HISTORY_POINTS": "2000"}
    server = ServerProcess(env, log=tmp_path / "server.log").start()
    try:
        x = series(600, anomaly=None)
        r = httpx.post(f"{server.http}/v1/streams/p/points", json={"points": points(x)})
        assert r.status_code == 200, r.text
        argv = ["train", "--url", server.http, "--stream", "p", "--name", "plant"]
        small = ["--epochs", "2", "--d-model", "16", "--expansion", "1", "--seed", "0"]
        main([*argv, *small])
        out = capsys.readouterr().out
        assert "plant: version" in out and '{"model": "plant"}' in out, out
        models = httpx.get(f"{server.http}/v1/models").json()["models"]
        assert "plant" in {m["name"] for m in models}
        # the same with a file: uploaded (POST /v1/training/uploads), read there
        csv = tmp_path / "plant.csv"
        csv.write_text(
            "time,temperature,pressure,flow,vibration\n"
            + "".join(f"{i}," + ",".join(map(repr, r)) + "\n" for i, r in enumerate(x.tolist()))
        )
        main(["train", "--url", server.http, "--data", str(csv), "--name", "from-file", *small])
        out = capsys.readouterr().out
        assert "from-file: version" in out and "600 rows of plant.csv" in out, out
        with pytest.raises(SystemExit) as exc:
            main(["train", "--url", server.http, "--stream", "p"])
        assert exc.value.code == 2 and "--name" in capsys.readouterr().err
        with pytest.raises(SystemExit) as exc:
            main([*argv[:-2], "--name", "again", "--stream", "nobody"])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and "404" in err and err.count("\n") == 1, err
    finally:
        server.stop()
    with pytest.raises(SystemExit) as exc:
        main(["train", "--out", str(tmp_path)])
    assert exc.value.code == 2 and "--data" in capsys.readouterr().err


def test_a_killed_training_process_is_retried_once_then_failed_with_the_reason(
    make_client: Any, model_dir: Any
) -> None:
    """kill -9 of a training job's process (as the OOM killer would): re-queued once and
    started afresh, failed with the reason the second time; no bundle appears."""
    import os
    import signal

    from tests.service.clustering_helpers import job_processes

    c = make_client(history_points=5000)
    c.post("/v1/streams/p/points", json={"points": points(series(3000, anomaly=None))})
    long = {"epochs": 500, "patience": 100, "d_model": 64, "seed": 0}
    r = c.post("/v1/training/jobs", json={"model": "doomed", "streams": ["p"], "options": long})
    assert r.status_code == 202, r.text
    loc = r.headers["location"]

    def running_process() -> int | None:
        found = job_processes(os.getpid())
        return found[0] if c.get(loc).json()["status"] == "running" and found else None

    first = wait_for(running_process, 120, "the job's process")
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: c.get(loc).json()["recoveries"] == 1, 60, "the job to be re-queued")
    second = wait_for(lambda: (p := running_process()) != first and p, 120, "its second start")
    os.kill(second, signal.SIGKILL)
    done = finished(c, loc.rsplit("/", 1)[1])
    assert done["status"] == "failed" and "SIGKILL" in done["error"], done
    assert not [p for p in model_dir.iterdir() if p.name.startswith("doomed")]


def test_a_job_over_the_point_limit_is_refused_before_its_history_is_read(
    make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.training import input as training_input

    c = make_client(history_points=5000, clustering_workers=0)
    c.post("/v1/streams/p/points", json={"points": points(series(1200, anomaly=None))})
    monkeypatch.setattr(training_input, "MAX_TRAINING_POINTS", 1000)
    reads: list[int] = []
    real = training_input._history

    async def counted(*args: Any) -> Any:
        reads.append(1)
        return await real(*args)

    monkeypatch.setattr(training_input, "_history", counted)
    r = c.post("/v1/training/jobs", json={"model": "m", "streams": ["p"]})
    assert r.status_code == 422 and "1,200 recorded points" in r.json()["error"]["message"]
    assert reads == []
    ranged = {"model": "m", "streams": ["p"], "from": 100.0, "to": 900.0}
    r = c.post("/v1/training/jobs", json=ranged)  # seq = timestamp here: 800 points in range
    assert r.status_code == 202, r.text
    (used,) = r.json()["input"]["streams"]
    assert used["in_range"] == 800 and (used["first_index"], used["last_index"]) == (100, 899)
