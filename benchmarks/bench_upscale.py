"""Benchmarks for super-resolution: upscaling a 512x512 image x4 to 2048x2048 (time and peak
memory, whole and in tiles, against the bicubic and lanczos baselines) and the time of one
training step of the superres recipe. Plain tables.

Each measurement runs in a fresh subprocess (2 threads) so its peak memory (ru_maxrss) is its
own; networks have seeded random weights (speed does not depend on them; the detail branch is
given weights so it is computed like a trained one). Times are the best of several runs after a
warm-up run.

  python benchmarks/bench_upscale.py            # full tables (about 3 minutes on 2 cores)
  python benchmarks/bench_upscale.py --quick    # tiny sizes, for CI (checks the code runs)
  python benchmarks/bench_upscale.py --only upscale|train
"""

from __future__ import annotations

import argparse

from _bench import CHILD_TIMING, fmt, run_child, table

CHILD = r"""
import json, resource, sys, time
args = json.loads(sys.argv[1])
import torch
torch.set_num_threads(int(sys.argv[2]))
torch.set_flush_denormal(True)
""" + CHILD_TIMING + r"""


def image(h, w):
    g = torch.Generator().manual_seed(0)
    low = torch.rand(1, 3, max(1, h // 16), max(1, w // 16), generator=g)
    return torch.nn.functional.interpolate(low, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1).contiguous()

from impasto.nets import build_net
torch.manual_seed(0)
if args["mode"] == "upscale":
    from impasto.methods.upscale import Upscaler, bicubic_upscale, lanczos_upscale, upscale_tensor
    s = args["scale"]
    if args["model"] == "superres":
        net, _ = build_net("superres", overrides={"scale": s, "channels": args["channels"], "n_res": 4})
        torch.nn.init.normal_(net.tail.conv.weight, std=1e-3)
        net.eval().requires_grad_(False)
        def fn(x):
            with torch.inference_mode():
                return net(x)
        up = Upscaler(fn, s, net.radius, {}, torch.device("cpu"))
    else:
        op = bicubic_upscale if args["model"] == "bicubic" else lanczos_upscale
        up = Upscaler(lambda x: op(x, s), s, 3, {}, torch.device("cpu"))
    x = image(args["size"], args["size"])
    dt = best(lambda: upscale_tensor(up, x, tile=args["tile"]), args["repeat"])
    print(json.dumps({"seconds": dt, "peak_mb": peak_mb()}))
else:
    from impasto.features import build_encoder
    from impasto.losses import PerceptualLoss
    from impasto.methods.superres_train import SuperResObjective, degrade
    s = args["scale"]
    net, _ = build_net("superres", overrides={"scale": s, "channels": args["channels"], "n_res": 4})
    enc = build_encoder(args["encoder"], weights="random", layers=["relu2_2"])
    objective = SuperResObjective(PerceptualLoss(enc, content_layers=["relu2_2"], style_layers=[], content_weight=1.0, style_weight=0.0, tv_weight=0.0), 1.0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    high = torch.cat([image(args["size"], args["size"]) for _ in range(args["batch"])])
    low = degrade(high, s)
    def step():
        loss, _ = objective(net, (low, high))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    dt = best(step, args["repeat"])
    print(json.dumps({"seconds": dt, "peak_mb": peak_mb()}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CI)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=("upscale", "train"))
    args = ap.parse_args()
    q, threads = args.quick, args.threads
    size, repeat = (64, 1) if q else (512, 2)
    if args.only in (None, "upscale"):
        rows = []
        cases = [("bicubic", 0), ("lanczos", 0), ("superres", 0), *([("superres", 48)] if q else [("superres", 256), ("superres", 128)])]
        for model, tile in cases:
            res = run_child(CHILD, {"mode": "upscale", "model": model, "scale": 4, "channels": 16 if q else 64, "size": size, "tile": tile, "repeat": repeat}, threads)
            rows.append([model, f"{size}->{size * 4}", "whole" if not tile else f"tiles of {tile}", fmt(res, "seconds", ".2f"), fmt(res, "peak_mb", ".0f")])
        table(f"x4 upscale ({threads} threads; superres: 64 channels, 4 residual blocks)", ["model", "size", "run", "seconds", "peak MB"], rows)
    if args.only in (None, "train"):
        rows = []
        cases = [{"size": 32, "batch": 1, "encoder": "tiny_vgg", "channels": 16}] if q else [{"size": 288, "batch": 4, "encoder": "vgg16", "channels": 64}, {"size": 96, "batch": 4, "encoder": "vgg16", "channels": 64}]
        for case in cases:
            res = run_child(CHILD, {"mode": "train", "scale": 4, "repeat": 1 if q else 2, **case}, threads)
            rows.append([f"{case['size']} px x{case['batch']}", case["encoder"], fmt(res, "seconds", ".2f"), fmt(res, "peak_mb", ".0f")])
        table(f"superres x4 training step (relu2_2 + pixel loss, Adam; {threads} threads)", ["crops", "encoder", "s/step", "peak MB"], rows)


if __name__ == "__main__":
    main()
