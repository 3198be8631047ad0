"""The Ray backend end to end, on a two-node Ray cluster on this machine (run by test_ray.py).

Run it inside a network namespace that has only loopback (``unshare --net``), so every byte Ray
sends stays on 127.0.0.1 whatever address Ray would otherwise pick. It writes what it saw as JSON
to the path given as its argument; the test asserts on that.

1. Two jobs on two one-CPU nodes: one runs on the second node. Mid-job, that node's worker is
   killed (SIGKILL) and the node with it. The job is retried on the head and completes; its
   result equals the same job run directly; its SSE stream showed progress, a snapshot and the
   retry.
2. A running job is cancelled: the cluster gets its CPU back.
3. The server stops while a job runs; a new server on the same home re-queues it and it completes.
4. A job past the time limit fails with that reason, and its task is stopped.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import ray
from fastapi.testclient import TestClient
from PIL import Image
from ray.cluster_utils import Cluster

from impasto import api
from impasto.service.app import ServiceSettings, create_app

ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT / "examples" / "content" / "chelsea.jpg"
PAINTING = "painting:starry_night.jpg"
JOB = {"encoder": "vgg19", "weights": "random", "edge": 64, "iterations": 80, "scales": "64", "save_every": 10}
# job 5 runs past a 3 s limit (about 8 s on one CPU)


def submit(client: TestClient, seed: int) -> str:
    r = client.post(
        "/jobs", files={"content": ("chelsea.jpg", PHOTO.read_bytes(), "image/jpeg")},
        data={"method": "gatys", "options": json.dumps({**JOB, "seed": seed}), "style_name": PAINTING},
    )
    assert r.status_code == 202, r.text
    return r.json()["id"]


def until(what: str, predicate, timeout: float = 90.0, every: float = 0.05):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def job(client: TestClient, job_id: str) -> dict:
    return client.get(f"/jobs/{job_id}").json()


def finished(client: TestClient, job_id: str, timeout: float = 120.0) -> dict:
    return until(f"job {job_id} to finish", lambda: (j := job(client, job_id))["status"] in ("done", "failed", "cancelled") and j, timeout)


def follow(client: TestClient, job_id: str, into: list) -> threading.Thread:
    """Collect the job's SSE events in a thread, as the page does."""

    def read() -> None:
        with client.stream("GET", f"/jobs/{job_id}/events") as stream:
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    into.append(json.loads(line[6:]))

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


def main(out: Path) -> None:
    t0 = time.time()
    facts: dict = {}
    from impasto.errors import UsageError
    from impasto.service.jobs import JobStore
    from impasto.service.ray_backend import RayBackend

    try:  # no cluster yet: "auto" finds none, at once
        RayBackend(JobStore(out.parent / "nowhere"), address="auto").connect()
    except UsageError as exc:
        facts["auto_without_cluster"] = str(exc)
    fast_health = {"health_check_period_ms": 500, "health_check_failure_threshold": 3, "health_check_initial_delay_ms": 0}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1", "_system_config": fast_health})
    second = cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    head_id, second_id = cluster.head_node.node_id, second.node_id
    facts["cluster_seconds"] = round(time.time() - t0, 1)
    home = out.parent / "home"
    settings = ServiceSettings(home=home, backend="ray", ray_address=cluster.address, ray_node_ip="127.0.0.1", workers=0, rate_per_minute=0)
    try:
        with TestClient(create_app(settings)) as client:
            ready = client.get("/ready").json()
            facts["ready"] = {"backend": ready["backend"], "workers": ready["workers"]}
            facts["driver_on_head"] = ray.get_runtime_context().get_node_id() == head_id

            # 1. kill the second node's worker mid-job
            ids = [submit(client, seed) for seed in (1, 2)]
            on_second = until("a job running on the second node", lambda: next((i for i in ids if job(client, i)["detail"].get("node") == second_id), None))
            events: list = []
            reader = follow(client, on_second, events)
            until("progress past 20 %", lambda: job(client, on_second)["progress"] >= 0.2)
            before = job(client, on_second)
            facts["killed_at_progress"] = before["progress"]
            os.kill(before["detail"]["pid"], signal.SIGKILL)
            cluster.remove_node(second, allow_graceful=False)
            facts["killed"] = True
            done = {i: finished(client, i) for i in ids}
            reader.join(10)
            facts["statuses"] = {("killed" if i == on_second else "other"): d["status"] for i, d in done.items()}
            facts["killed_job"] = {k: done[on_second].get(k) for k in ("status", "progress", "attempts", "error")}
            facts["killed_job"]["final_node_is_head"] = done[on_second]["detail"].get("node") == head_id
            facts["events"] = {
                "progress": sum(e["type"] == "progress" for e in events),
                "snapshot": sum(e["type"] == "snapshot" for e in events),
                "retry_messages": [e["text"] for e in events if e["type"] == "message" and "retrying" in e["text"]],
                "last": events[-1] if events else None,
                "progress_after_retry": any(e["type"] == "progress" for e in events[next((n for n, e in enumerate(events) if e["type"] == "message"), len(events)):]),
            }
            facts["snapshot_served"] = client.get(f"/jobs/{on_second}/snapshot").status_code
            served = np.asarray(Image.open(io.BytesIO(client.get(f"/jobs/{on_second}/result").content)).convert("RGB"), dtype=np.int16)
            seed = 1 if on_second == ids[0] else 2
            import torch

            torch.set_num_threads(1)  # as the task ran (one CPU per job)
            direct = api.run("gatys", content=PHOTO, style=ROOT / "examples" / "style" / "starry_night.jpg", **{**JOB, "save_every": 0, "seed": seed})
            direct.save(out.parent / "direct.png", sidecar=False)
            reference = np.asarray(Image.open(out.parent / "direct.png").convert("RGB"), dtype=np.int16)
            facts["result_vs_direct_max_diff"] = int(np.abs(served - reference).max()) if served.shape == reference.shape else f"shapes {served.shape} {reference.shape}"

            # 2. cancel a running job: its CPU comes back
            c = submit(client, 3)
            until("the job to run", lambda: job(client, c)["progress"] > 0.05)
            facts["cancel_status"] = client.delete(f"/jobs/{c}").json()["status"]
            facts["cpu_back_after_cancel"] = bool(until("the CPU to come back", lambda: ray.available_resources().get("CPU", 0) >= 1, 30))
            facts["cancelled_stays_cancelled"] = job(client, c)["status"]

            # 3. stop the server mid-job ...
            r = submit(client, 4)
            until("the job to run", lambda: job(client, r)["progress"] > 0.05)
        ray.shutdown()  # the server's process would end here
        # ... and start it again on the same home: the job is re-queued and completes
        with TestClient(create_app(settings)) as client:
            again = finished(client, r)
            facts["restarted_job"] = {"status": again["status"], "has_result": again["has_result"]}
            facts["all_jobs"] = sorted(j["status"] for j in client.get("/jobs").json()["jobs"])
        ray.shutdown()
        # 4. the time limit: the task is cancelled and the job fails, saying why
        from dataclasses import replace

        with TestClient(create_app(replace(settings, home=out.parent / "home-limit", time_limit_s=3))) as client:
            late = finished(client, submit(client, 5), 60)
            facts["time_limit"] = {"status": late["status"], "error": late["error"]}
            facts["cpu_back_after_time_limit"] = bool(until("the CPU to come back", lambda: ray.available_resources().get("CPU", 0) >= 1, 30))
    finally:
        ray.shutdown()
        cluster.shutdown()
    facts["seconds"] = round(time.time() - t0, 1)
    out.write_text(json.dumps(facts, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
