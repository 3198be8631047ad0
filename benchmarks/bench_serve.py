"""Benchmark of `impasto serve`: jobs per minute for a small fast-model job (apply,
johnson-small, random weights) with 1 and 2 local workers and through Ray with 2 nodes, and the
service's overhead on one job against the same job through the CLI.

The app runs in-process (FastAPI TestClient: no network); every job goes through POST /jobs, the
SQLite store, a worker (or a Ray task) and the result file; the clock runs from the first
submission until the last job is done. Each job gets a different photo (no result-cache hits).
The Ray rows run a two-node cluster on this machine (one CPU per node) inside a network
namespace with only loopback (`unshare --net`), so Ray's traffic stays on 127.0.0.1.

  python benchmarks/bench_serve.py            # 40 jobs at 512x384 per row
  python benchmarks/bench_serve.py --quick    # 6 jobs at 64x48 (CI: checks the code runs)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench import table


def photo(h: int, w: int, seed: int) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def measure(workers: int, jobs: int, size: tuple[int, int], models: Path, home: Path, **backend: object) -> dict:
    from fastapi.testclient import TestClient

    from impasto.service.app import ServiceSettings, create_app

    settings = ServiceSettings(home=home, workers=workers, models=models, rate_per_minute=0, **backend)  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as client:
        payloads = [photo(*size, seed=i) for i in range(jobs)]
        t0 = time.perf_counter()
        ids = []
        for data in payloads:
            r = client.post("/jobs", files={"content": ("p.png", data, "image/png")}, data={"method": "apply", "style_name": "model:fast", "options": json.dumps({"device": "cpu"})})
            ids.append(r.json()["id"])
        pending = set(ids)
        while pending:
            for job_id in list(pending):
                status = client.get(f"/jobs/{job_id}").json()["status"]
                if status in ("done", "failed", "cancelled"):
                    if status != "done":
                        raise SystemExit(f"job {job_id} {status}")
                    pending.discard(job_id)
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
    return {"seconds": elapsed, "per_minute": 60 * jobs / elapsed}


def one_job_latency(client: object, data: bytes) -> float:
    """Seconds from POST /jobs to the result downloaded, one job on an idle queue."""
    t0 = time.perf_counter()
    r = client.post("/jobs", files={"content": ("p.png", data, "image/png")}, data={"method": "apply", "style_name": "model:fast", "options": json.dumps({"device": "cpu"})})  # type: ignore[attr-defined]
    job_id = r.json()["id"]
    while client.get(f"/jobs/{job_id}").json()["status"] not in ("done", "failed", "cancelled"):  # type: ignore[attr-defined]
        time.sleep(0.01)
    assert client.get(f"/jobs/{job_id}/result").status_code == 200  # type: ignore[attr-defined]
    return time.perf_counter() - t0


def overhead(rounds: int, size: tuple[int, int], models: Path, root: Path) -> list[list[str]]:
    """The same apply job through the CLI (a fresh process, as users run it), in-process
    (impasto.run), and through the service (submit -> result), interleaved, as medians."""
    from fastapi.testclient import TestClient

    from impasto import api
    from impasto.service.app import ServiceSettings, create_app

    src = root / "photo.png"
    times: dict[str, list[float]] = {"cli": [], "api": [], "service": []}
    cli = [str(Path(sys.executable).with_name("impasto")), "apply", str(models / "fast.pt"), str(src), "-o", str(root / "cli.png"), "--device", "cpu", "-q"]
    with TestClient(create_app(ServiceSettings(home=root / "home-overhead", workers=1, models=models, rate_per_minute=0))) as client:
        for n in range(rounds):
            data = photo(*size, seed=1000 + n)  # a new photo each round: no cache hits
            src.write_bytes(data)
            t0 = time.perf_counter()
            subprocess.run(cli, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times["cli"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            api.run("apply", model=models / "fast.pt", image=src, device="cpu").save(root / "api.png", sidecar=False)
            times["api"].append(time.perf_counter() - t0)
            times["service"].append(one_job_latency(client, data))
    med = {k: statistics.median(v) for k, v in times.items()}
    return [
        ["CLI (new process)", f"{med['cli']:.2f}", "1.00", ""],
        ["impasto.run (in-process)", f"{med['api']:.2f}", f"{med['api'] / med['cli']:.2f}", ""],
        ["service (POST -> result)", f"{med['service']:.2f}", f"{med['service'] / med['cli']:.2f}", f"{100 * (med['service'] / med['cli'] - 1):+.0f} % vs CLI, {100 * (med['service'] / med['api'] - 1):+.0f} % vs in-process"],
    ]


def ray_rows(jobs: int, size: tuple[int, int], models: Path, root: Path) -> list[list[str]]:
    """The Ray rows, measured in a child process inside a loopback-only network namespace."""
    unshare = shutil.which("unshare")
    try:
        import ray  # noqa: F401
    except ImportError:
        return [["ray, 2 nodes", str(jobs), f"{size[1]}x{size[0]}", "-", "skipped: pip install 'impasto[ray]'"]]
    if unshare is None:
        return [["ray, 2 nodes", str(jobs), f"{size[1]}x{size[0]}", "-", "skipped: no unshare"]]
    out = root / "ray.json"
    cmd = [unshare, "--net", "--map-root-user", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", sys.executable, __file__, "--ray-child", str(out), str(jobs), str(size[0]), str(size[1]), str(models)]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0 or not out.is_file():
        return [["ray, 2 nodes", str(jobs), f"{size[1]}x{size[0]}", "-", "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:80]]]
    res = json.loads(out.read_text())
    return [["ray, 2 nodes x 1 CPU", str(jobs), f"{size[1]}x{size[0]}", f"{res['seconds']:.1f}", f"{res['per_minute']:.0f}"]]


def ray_child(out: Path, jobs: int, size: tuple[int, int], models: Path) -> None:
    """Inside the namespace: a two-node cluster (one CPU each), the service on it, the jobs."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1"})
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    try:
        home = out.parent / "home-ray"
        measure(0, 2, size, models, home / "warm", backend="ray", ray_address=cluster.address, ray_node_ip="127.0.0.1")  # workers import torch once
        res = measure(0, jobs, size, models, home / "run", backend="ray", ray_address=cluster.address, ray_node_ip="127.0.0.1")
    finally:
        ray.shutdown()
        cluster.shutdown()
    out.write_text(json.dumps(res))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few tiny jobs (CI)")
    ap.add_argument("--ray-child", nargs=5, metavar=("OUT", "JOBS", "H", "W", "MODELS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ray_child:
        out, jobs_, h, w, models = args.ray_child
        ray_child(Path(out), int(jobs_), (int(h), int(w)), Path(models))
        return
    jobs, size = (6, (48, 64)) if args.quick else (40, (384, 512))
    print(f"bench_serve: python {sys.version.split()[0]}, {'quick' if args.quick else 'full'} mode")
    from impasto.methods.ff_model import model_payload, save_model
    from impasto.methods.ff_train import TrainConfig
    from impasto.nets import build_net

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        net, config = build_net("johnson-small")
        (root / "models").mkdir()
        save_model(root / "models" / "fast.pt", model_payload(net, "johnson-small", config, TrainConfig(steps=1), {"name": "random", "sha256": "0" * 64}, 1, {}))
        rows = []
        for workers in (1, 2):
            res = measure(workers, jobs, size, root / "models", root / f"home{workers}")
            rows.append([f"local, {workers}", str(jobs), f"{size[1]}x{size[0]}", f"{res['seconds']:.1f}", f"{res['per_minute']:.0f}"])
        rows += ray_rows(jobs, size, root / "models", root)
        table("jobs per minute (apply, johnson-small; in-process client)", ["workers", "jobs", "photo", "seconds", "jobs/min"], rows)
        big = (96, 128) if args.quick else (768, 1024)
        table(
            f"one apply job at {big[1]}x{big[0]}: service overhead (median of {3 if args.quick else 7}, interleaved; target <= +10 % vs CLI)",
            ["how", "seconds", "x CLI", "overhead"], overhead(3 if args.quick else 7, big, root / "models", root),
        )


if __name__ == "__main__":
    main()
