"""Benchmarks for pretrained-weight files: encoder start-up time and peak memory of a run.

A torchvision-layout VGG19 checkpoint with random weights *and the classifier* (~548 MB, like
torchvision's vgg19-dcbb9e9d.pth) is written to a temporary folder and registered as a record, so
the runs below take the path a real checkpoint takes (hash check, load, build). Each measurement
runs in a fresh subprocess so its peak memory (ru_maxrss) is its own.

  start-up   build_encoder from the file: cold (no verified-files record: the file is hashed),
             with the record (not hashed), and through the cache (``--weights NAME``)
  memory     peak RSS of ``impasto gatys --edge 512 --scales 512 -n 5`` (512x384) with the
             checkpoint file vs built-in random weights

  python benchmarks/bench_weights.py            # VGG19, a 548 MB file (a few minutes on 2 cores)
  python benchmarks/bench_weights.py --quick    # tiny_vgg and a small file (checks the code runs)
  python benchmarks/bench_weights.py --file F   # reuse a checkpoint file written earlier
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: registers the bench file as a record named ARCH.bench, then runs one measurement
CHILD = r"""
import json, os, resource, sys, time
args = json.loads(sys.argv[1])
import torch
torch.set_num_threads(args["threads"])
from impasto.weights import IMAGENET, WeightSpec, registry
spec = WeightSpec(name=args["arch"] + ".bench", arch=args["arch"], filename=args["filename"], urls=("https://invalid/" + args["filename"],),
                  sha256=args["sha256"], size=args["size"], licence="benchmark", preprocessing=IMAGENET, description="benchmark file")
registry.REGISTRY[spec.name] = spec
if args["mode"] == "startup":
    from impasto.features import build_encoder
    t = time.perf_counter()
    enc = build_encoder(args["arch"], weights=args["weights"])
    dt = time.perf_counter() - t
    print(json.dumps({"s": dt, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "params": sum(p.numel() for p in enc.parameters())}))
else:
    from impasto.cli.main import main
    t = time.perf_counter()
    code = main(["gatys", args["content"], args["style"], "-o", args["out"], "--encoder", args["arch"], "--weights", args["weights"],
                 "--edge", str(args["edge"]), "--scales", str(args["edge"]), "-n", str(args["iters"]), "-q"])
    dt = time.perf_counter() - t
    print(json.dumps({"s": dt, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "code": code}))
"""


def make_checkpoint(path: Path, arch: str) -> None:
    """A torchvision-layout state dict for ``arch`` with random weights and a VGG classifier."""
    import torch

    from impasto.features.vgg import build_vgg

    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=gen) * 0.01 for k, v in build_vgg(arch).state_dict().items()}
    width, channels = (4096, 512) if arch != "tiny_vgg" else (256, 64)
    for index, (rows, cols) in {0: (width, channels * 49), 3: (width, width), 6: (1000, width)}.items():
        state[f"classifier.{index}.weight"] = torch.randn(rows, cols, generator=gen) * 0.01
        state[f"classifier.{index}.bias"] = torch.zeros(rows)
    torch.save(state, path)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def child(args: dict, home: Path, threads: int) -> dict:
    env = {**os.environ, "IMPASTO_HOME": str(home)}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps({**args, "threads": threads})], capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"benchmark child failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny_vgg, a small file, a 64 px run")
    parser.add_argument("--file", type=Path, help="a checkpoint written by an earlier run (default: write a new one)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per child (default: 2)")
    parser.add_argument("--repeat", type=int, default=2, help="start-up measurements per row; the best is shown (default: 2)")
    args = parser.parse_args()
    arch, edge, iters = ("tiny_vgg", 64, 2) if args.quick else ("vgg19", 512, 5)
    with tempfile.TemporaryDirectory(prefix="impasto-bench-weights-") as tmp:
        tmpdir = Path(tmp)
        path = args.file or tmpdir / f"{arch}-bench.pth"
        if args.file is None:
            t = time.perf_counter()
            make_checkpoint(path, arch)
            print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t:.1f} s", flush=True)
        old = time.time() - 3600  # an old mtime: the verified-files record may remember it
        os.utime(path, (old, old))
        digest = sha256(path)
        base = {"arch": arch, "sha256": digest, "size": path.stat().st_size, "filename": f"{arch}-{digest[:8]}.pth"}
        cached_home = tmpdir / "cached"
        (cached_home / "weights").mkdir(parents=True)
        os.link(path, cached_home / "weights" / base["filename"])  # same inode: the cache holds the file

        def startup(weights: str, home: Path, fresh: bool) -> dict:
            best: dict | None = None
            for i in range(args.repeat):
                if fresh:
                    record = home / "weights" / "verified-files.json"
                    record.unlink(missing_ok=True)
                r = child({**base, "mode": "startup", "weights": weights}, home, args.threads)
                best = r if best is None or r["s"] < best["s"] else best
            assert best is not None
            return best

        rows = [("measurement", "seconds", "peak MB")]
        file_home = tmpdir / "filehome"
        for label, weights, home, fresh in (
            ("start-up, --weights FILE, cold (hashes the file)", str(path), file_home, True),
            ("start-up, --weights FILE, verified-files record", str(path), file_home, False),
            (f"start-up, --weights {arch}.bench (cache), cold", f"{arch}.bench", cached_home, True),
            (f"start-up, --weights {arch}.bench (cache), record", f"{arch}.bench", cached_home, False),
            ("start-up, --weights random", "random", file_home, False),
        ):
            r = startup(weights, home, fresh)
            rows.append((label, f"{r['s']:.2f}", f"{r['peak_mb']:.0f}"))
            print(f"  {label}: {r['s']:.2f} s, {r['peak_mb']:.0f} MB", flush=True)
        size = "512x384" if not args.quick else "64x48"
        run = {**base, "mode": "gatys", "content": str(ROOT / "examples/content/tubingen.jpg"), "style": str(ROOT / "examples/style/starry_night.jpg"),
               "out": str(tmpdir / "out.png"), "edge": edge, "iters": iters}
        for label, weights in ((f"gatys {size} -n {iters}, --weights FILE", str(path)), (f"gatys {size} -n {iters}, --weights random", "random")):
            r = child({**run, "weights": weights}, file_home, args.threads)
            if r["code"] != 0:
                raise SystemExit(f"{label}: exit code {r['code']}")
            rows.append((label, f"{r['s']:.1f}", f"{r['peak_mb']:.0f}"))
            print(f"  {label}: {r['s']:.1f} s, {r['peak_mb']:.0f} MB", flush=True)
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    print(f"\nWeights ({arch}, file {base['size'] / 1e6:.0f} MB incl. classifier, {args.threads} threads):")
    for row in rows:
        print("  ".join([row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].rjust(widths[2])]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
