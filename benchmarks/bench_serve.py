"""Benchmark of `impasto serve`'s embedded queue: jobs per minute for a small fast-model job
(apply, johnson-small, random weights) with 1 and 2 local workers. The app runs in-process
(FastAPI TestClient: no network), every job goes through POST /jobs, the SQLite store, a worker
and the result file; the clock runs from the first submission until the last job is done.
Each job gets a different photo (no result-cache hits).

  python benchmarks/bench_serve.py            # 40 jobs at 512x384 per row
  python benchmarks/bench_serve.py --quick    # 6 jobs at 64x48 (CI: checks the code runs)
"""

from __future__ import annotations

import argparse
import io
import json
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


def measure(workers: int, jobs: int, size: tuple[int, int], models: Path, home: Path) -> dict:
    from fastapi.testclient import TestClient

    from impasto.service.app import ServiceSettings, create_app

    settings = ServiceSettings(home=home, workers=workers, models=models, rate_per_minute=0)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few tiny jobs (CI)")
    args = ap.parse_args()
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
            rows.append([str(workers), str(jobs), f"{size[1]}x{size[0]}", f"{res['seconds']:.1f}", f"{res['per_minute']:.0f}"])
        table("embedded queue (apply, johnson-small; in-process client)", ["workers", "jobs", "photo", "seconds", "jobs/min"], rows)


if __name__ == "__main__":
    main()
