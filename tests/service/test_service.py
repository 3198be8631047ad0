"""`impasto serve`: every endpoint and error through TestClient, the embedded queue under load
(40 jobs, none lost, none run twice), the result cache, cancel, restart persistence, tokens."""

from __future__ import annotations

import io
import json
import threading
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("multipart")
from fastapi.testclient import TestClient  # noqa: E402

from impasto.errors import UsageError  # noqa: E402
from impasto.service.app import ServiceSettings, create_app  # noqa: E402
from impasto.service.jobs import JobStore  # noqa: E402

FAST = {"encoder": "tiny_vgg", "weights": "random", "edge": 32, "iterations": 2}


def png(h=40, w=48, seed=0, fmt="PNG") -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def settings(tmp_path, **kw):
    return ServiceSettings(home=tmp_path / "home", **{"workers": 1, "rate_per_minute": 0, **kw})


def submit(client, *, options=FAST, style_name="painting:starry_night.jpg", content=None, method="gatys", **extra):
    files = {"content": ("photo.png", content if content is not None else png(), "image/png")}
    files.update(extra.pop("files", {}))
    data = {"method": method, "options": json.dumps(options), **({"style_name": style_name} if style_name else {}), **extra}
    return client.post("/jobs", files=files, data=data)


def wait(client, job_id, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_a_job_runs_and_every_read_endpoint_answers(tmp_path):
    with TestClient(create_app(settings(tmp_path))) as client:
        assert client.get("/health").json()["ok"] is True
        ready = client.get("/ready").json()
        assert ready["ready"] is True and ready["backend"] == "local"
        methods = {m["name"]: m["schema"] for m in client.get("/methods").json()["methods"]}
        assert "gatys" in methods and "iterations" in methods["gatys"]["properties"]
        assert methods["gatys"]["x-main"] == ["edge", "iterations", "strength", "style_weight", "preserve_colors", "seed"]
        assert "style_mix" in methods["apply"]["x-main"] and set(methods["apply"]["x-main"]) <= set(methods["apply"]["properties"])
        styles = [s["name"] for s in client.get("/styles").json()["styles"]]
        assert "painting:starry_night.jpg" in styles
        r = submit(client)
        assert r.status_code == 202 and r.json()["cached"] is False
        job_id = r.json()["id"]
        job = wait(client, job_id)
        assert job["status"] == "done" and job["progress"] == 1.0 and job["has_result"] and job["seconds"] > 0
        result = client.get(f"/jobs/{job_id}/result")
        assert result.status_code == 200 and result.headers["content-type"] == "image/png"
        img = Image.open(io.BytesIO(result.content))
        assert max(img.size) == 32 and "impasto" in img.info  # the parameters as metadata
        events = client.get(f"/jobs/{job_id}/events").text
        assert "event: status" in events and '"status": "done"' in events
        assert [j["id"] for j in client.get("/jobs").json()["jobs"]] == [job_id]
        # another client (the page's random id) sees only its own history
        assert client.get("/jobs", headers={"X-Impasto-Client": "someone-else"}).json()["jobs"] == []
        assert "/jobs" in client.get("/openapi.json").json()["paths"]
        assert client.get("/").status_code == 200 and "<title>impasto</title>" in client.get("/").text
        # the same request again: answered from the cache, same image
        again = submit(client)
        assert again.json()["cached"] is True
        assert client.get(f"/jobs/{again.json()['id']}/result").content == result.content
        # delete with purge removes the job and its files
        assert client.delete(f"/jobs/{job_id}?purge=true").json()["deleted"] is True
        assert client.get(f"/jobs/{job_id}").status_code == 404


def test_every_error_is_one_line_json(tmp_path):
    with TestClient(create_app(settings(tmp_path, max_upload_mb=0.05))) as client:
        cases = [
            (submit(client, method="nope"), 404, "unknown method 'nope' (GET /methods lists them)"),
            (submit(client, options={"iterations": -1}), 422, "iterations must be >= 0, got -1"),
            (client.post("/jobs", files={"content": ("p.png", png(), "image/png")}, data={"method": "gatys", "options": "{not json"}), 422, "options: not JSON"),
            (submit(client, options={"itrations": 3}), 422, "itrations"),
            (submit(client, options={"scales": 1}), 422, "options:"),
            (submit(client, style_name="painting:../../etc/passwd"), 404, "unknown style 'painting:../../etc/passwd'"),
            (submit(client, style_name=None), 422, "style: required by method gatys"),
            (submit(client, content=png(200, 200) + b"x" * 60_000), 413, "content: larger than the upload limit of 0.05 MB"),
            (submit(client, content=b"GIF89a this is not really a gif"), 415, "content: not an image"),
            (submit(client, content=b"%PDF-1.4 hello"), 415, "content: not an image"),
            (submit(client, content=b""), 400, "content: empty file"),
            (submit(client, content=png(60, 60)[:300]), 400, "content: truncated or corrupt PNG image"),
            # options that could read the server's disk
            (submit(client, options={**FAST, "content_mask": "/etc/hosts"}), 422, "options: content_mask names a file on the server, which the service does not allow"),
            (submit(client, options={**FAST, "init": "/etc/passwd"}), 422, "options: init: '/etc/passwd' is a file; the service takes only built-in names here"),
            (submit(client, options={**FAST, "weights": "../model.pth"}), 422, "options: weights: '../model.pth' is a file"),
            (submit(client, options={**FAST, "weights": "pyproject.toml"}), 422, "options: weights: 'pyproject.toml' is a file"),
            (client.get("/jobs/0123456789abcdef0123456789abcdef"), 404, "no job"),
            (client.get("/jobs/../../secret"), 404, ""),
        ]
        for response, status, message in cases:
            assert response.status_code == status, (response.status_code, response.text)
            body = response.json()
            assert set(body) == {"error"} and "\n" not in body["error"] and message in body["error"], body
        # a job that fails says why in one line, naming the input, not a server path
        tiny = submit(client, content=png(1, 1)).json()["id"]
        failed = wait(client, tiny)
        assert failed["status"] == "failed" and failed["error"].startswith("content.png: image is 1x1"), failed["error"]
        # a result that is not there yet
        slow = submit(client, options={**FAST, "iterations": 400}).json()["id"]
        assert client.get(f"/jobs/{slow}/result").status_code == 409
        assert client.delete(f"/jobs/{slow}").json()["status"] == "cancelled"
        assert wait(client, slow)["status"] == "cancelled"


def test_tokens_rate_limit_and_hosts(tmp_path):
    from impasto.cli.serve import check_host

    with TestClient(create_app(settings(tmp_path, token="s3cret", rate_per_minute=2))) as client:
        assert client.get("/health").status_code == 200  # liveness stays open
        assert client.get("/methods").status_code == 401
        assert client.get("/methods", headers={"Authorization": "Bearer wrong"}).json() == {"error": "missing or wrong bearer token"}
        auth = {"Authorization": "Bearer s3cret"}
        assert client.get("/methods", headers=auth).status_code == 200
        assert client.get("/styles?token=s3cret").status_code == 200
        codes = [client.post("/jobs", headers=auth, files={"content": ("p.png", png(seed=i), "image/png")}, data={"method": "gatys", "options": json.dumps(FAST), "style_name": "painting:wave.jpg"}).status_code for i in range(3)]
        assert codes == [202, 202, 429]
    check_host("127.0.0.1", None, False)
    check_host("::1", None, False)
    with pytest.raises(UsageError, match="--host 0.0.0.0 exposes the service"):
        check_host("0.0.0.0", None, False)
    check_host("0.0.0.0", "token", False)


def test_forty_concurrent_jobs_all_complete_once(tmp_path):
    with TestClient(create_app(settings(tmp_path, workers=2))) as client:
        ids: list[str] = []
        lock = threading.Lock()

        def post(i):
            r = submit(client, content=png(24, 32, seed=i), options={**FAST, "iterations": 1})
            assert r.status_code == 202, r.text
            with lock:
                ids.append(r.json()["id"])

        threads = [threading.Thread(target=post, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(ids)) == 40
        jobs = [wait(client, i, timeout=300) for i in ids]
        assert all(j["status"] == "done" for j in jobs), [j["error"] for j in jobs if j["status"] != "done"][:3]
        assert all(j["attempts"] == 1 for j in jobs), "a job ran twice"


def test_restart_keeps_results_and_requeues_interrupted_jobs(tmp_path):
    s = settings(tmp_path)
    with TestClient(create_app(s)) as client:
        done_id = submit(client).json()["id"]
        assert wait(client, done_id)["status"] == "done"
        first = client.get(f"/jobs/{done_id}/result").content
    # a second process that died: one job queued, one left running
    with TestClient(create_app(ServiceSettings(home=s.home, start_workers=False, rate_per_minute=0))) as client:
        assert client.get("/ready").status_code == 503
        queued = submit(client, content=png(seed=5)).json()["id"]
        running = submit(client, content=png(seed=6)).json()["id"]
    store = JobStore(s.home)
    claimed = store.claim()
    assert claimed is not None and claimed.id == queued  # oldest first
    assert store.get(queued).status == "running"
    with TestClient(create_app(s)) as client:  # restart: running -> queued, both complete
        assert wait(client, queued)["status"] == "done" and wait(client, running)["status"] == "done"
        assert client.get(f"/jobs/{done_id}/result").content == first
        assert client.get(f"/jobs/{queued}").json()["attempts"] == 2


def test_trained_models_are_styles_for_apply(tmp_path):
    from impasto.methods.feedforward import TrainConfig, train

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        (photos / f"p{i}.png").write_bytes(png(40, 48, seed=i))
    (tmp_path / "style.png").write_bytes(png(48, 48, seed=9))
    models = tmp_path / "models"
    train(TrainConfig(arch="johnson-small", encoder="tiny_vgg", weights="random", train_size=32, batch_size=2, steps=1, workers=0, preview_every=0), tmp_path / "style.png", photos, models / "stripes")
    with TestClient(create_app(settings(tmp_path, models=models))) as client:
        styles = {s["name"]: s["kind"] for s in client.get("/styles").json()["styles"]}
        assert styles["model:stripes"] == "model"
        r = submit(client, method="apply", options={"strength": 0.8}, style_name="model:stripes")
        assert r.status_code == 202, r.text
        assert wait(client, r.json()["id"])["status"] == "done"
        bad = submit(client, method="gatys", options=FAST, style_name="model:stripes")
        assert bad.status_code == 422 and bad.json() == {"error": "style_name: method gatys cannot use a model"}
