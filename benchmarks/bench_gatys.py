"""Benchmarks for the optimisation method: seconds per step, peak memory, high resolution and
time-to-quality. Prints plain tables. Each measurement runs in a fresh subprocess so its peak
memory (ru_maxrss) is its own.

  python benchmarks/bench_gatys.py            # full tables (tens of minutes on 2 cores)
  python benchmarks/bench_gatys.py --quick    # tiny sizes, for CI (checks the code runs)
  python benchmarks/bench_gatys.py --only steps|ladder|highres|tiledloss|quality
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CHILD = r"""
import json, resource, sys, time, torch
torch.set_num_threads(int(sys.argv[2]))
import os
args = json.loads(sys.argv[1])
# allocator tuning as `impasto gatys` decides it: on, except for large or memory-budgeted runs
tune = os.environ.get("IMPASTO_BENCH_TUNE", "cli")
if tune == "1" or (tune == "cli" and not (args["mode"] == "highres" and (args["edge"] > 1024 or args["budget"] != "auto"))):
    from impasto.cli.runtime import tune_allocator; tune_applied = tune_allocator()
else:
    tune_applied = False
torch.set_flush_denormal(True)
from impasto.features import build_encoder
from impasto.losses import PerceptualLoss
from impasto.optim.pixel import optimise_pixels
mode = args["mode"]
if mode == "steps":
    h, w = args["size"]
    enc = build_encoder(args["encoder"], weights="random", layers=["relu4_2","relu1_1","relu2_1","relu3_1","relu4_1","relu5_1"])
    L = PerceptualLoss(enc, content_layers=["relu4_2"], style_layers=["relu1_1","relu2_1","relu3_1","relu4_1","relu5_1"], style_weight=1e3)
    g = torch.Generator().manual_seed(0)
    c, s = torch.rand(1, 3, h, w, generator=g), torch.rand(1, 3, h, w, generator=g)
    L.set_content(c); L.set_style([s])
    optimise_pixels(c, lambda x: L(x), iterations=args["warmup"], optimizer=args["opt"])
    t = time.perf_counter()
    optimise_pixels(c, lambda x: L(x), iterations=args["steps"], optimizer=args["opt"])
    dt = (time.perf_counter() - t) / args["steps"]
    print(json.dumps({"s_per_step": dt, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
elif mode == "highres":
    from impasto.methods.gatys import GatysConfig, StyleInput, run
    edge = args["edge"]
    enc = build_encoder(args["encoder"], weights="random", layers=["relu4_2","relu1_1","relu2_1","relu3_1","relu4_1","relu5_1"])
    g = torch.Generator().manual_seed(0)
    h = edge * 3 // 4
    c = torch.nn.functional.interpolate(torch.rand(1, 3, h // 16, edge // 16, generator=g), size=(h, edge), mode="bilinear")
    s = torch.rand(1, 3, 512, 512, generator=g)
    cfg = GatysConfig(edge=edge, scales=str(edge), iterations=args["iters"], max_memory=args["budget"], encoder=args["encoder"], weights="random", optimizer="lbfgs", tile_overlap=64)
    msgs = []
    from impasto.progress import MessageEvent
    t = time.perf_counter()
    out = run(cfg, c, [StyleInput(s)], encoder=enc, callback=lambda e: msgs.append(e.text) if isinstance(e, MessageEvent) else None)
    dt = time.perf_counter() - t
    from impasto.methods.gatys import build_loss, tiling_options
    from impasto.optim.tiled import lbfgs_history_for, plan_for
    plan = plan_for(tiling_options(cfg), build_loss(cfg, enc), (h, edge), torch.device("cpu"), optimizer=cfg.optimizer)
    pairs = lbfgs_history_for(plan, "lbfgs", h * edge * 12) if plan else 100
    # L-BFGS adds one pair of image-sized vectors per iteration until its history is full
    missing = max(0, pairs - max(0, args["iters"] - 1)) * 2 * h * edge * 12 / 2**20 if plan else 0.0
    print(json.dumps({"time_s": dt / args["iters"], "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "tiled": out.levels[-1]["tiled"], "plan": msgs[0] if msgs else "untiled", "pairs": pairs if plan else None, "missing_mb": missing, "estimate_mb": ((plan.tile_estimate + plan.overhead + (pairs * 2 + 4) * h * edge * 12) / 2**20) if plan else None, "tuned": tune_applied}))
elif mode == "ladder":
    # s/iteration at each level of the default coarse-to-fine ladder vs a single-scale run of the final size
    from impasto.methods.gatys import GatysConfig, StyleInput, run
    from impasto.progress import StepEvent
    edge = args["edge"]
    enc = build_encoder(args["encoder"], weights="random", layers=["relu4_2","relu1_1","relu2_1","relu3_1","relu4_1","relu5_1"])
    g = torch.Generator().manual_seed(0)
    c = torch.nn.functional.interpolate(torch.rand(1, 3, 24, 32, generator=g), size=(edge * 3 // 4, edge), mode="bilinear")
    s = torch.rand(1, 3, 512, 512, generator=g)
    stamps = []
    def cb(e):
        if isinstance(e, StepEvent):
            stamps.append((e.stage, time.perf_counter()))
    n = args["iters"]
    cfg = GatysConfig(edge=edge, scales=args["scales"], iterations=n, encoder=args["encoder"], weights="random")
    run(cfg, c, [StyleInput(s)], encoder=enc, callback=cb)
    per = {}
    for (st0, t0), (st1, t1) in zip(stamps, stamps[1:]):
        if st0 == st1:
            per.setdefault(st1, []).append(t1 - t0)
    med = {k: sorted(v)[len(v) // 2] for k, v in per.items()}
    print(json.dumps({"levels": cfg.ladder(), "iters": cfg.iterations_per_scale(len(cfg.ladder())), "median_s": [med[k] for k in sorted(med)], "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
elif mode == "tiledloss":
    # the same number of L-BFGS iterations untiled and tiled at one size: final whole-image loss and time
    from impasto.methods.gatys import GatysConfig, StyleInput, run, build_loss
    edge = args["edge"]
    enc = build_encoder(args["encoder"], weights="random", layers=["relu4_2","relu1_1","relu2_1","relu3_1","relu4_1","relu5_1"])
    from PIL import Image
    import numpy as np
    def load(p, e):
        im = Image.open(p).convert("RGB"); im.thumbnail((e, e))
        return torch.from_numpy(np.asarray(im)).permute(2, 0, 1)[None].float() / 255
    c, s = load("examples/content/tubingen.jpg", edge), load("examples/style/starry_night.jpg", edge)
    cfg = GatysConfig(edge=edge, scales=str(edge), iterations=args["iters"], encoder=args["encoder"], weights="random", tile=args["tile"])
    t = time.perf_counter()
    out = run(cfg, c, [StyleInput(s)], encoder=enc)
    dt = time.perf_counter() - t
    L = build_loss(cfg, enc)
    L.set_style([s]); L.set_content(c)
    with torch.no_grad():
        start, final = float(L(c)[0]), float(L(out.image)[0])
    print(json.dumps({"time_s": dt, "start_loss": start, "final_loss": final, "tiled": out.levels[-1]["tiled"], "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
elif mode == "quality":
    from impasto.methods.gatys import GatysConfig, StyleInput, run, build_loss
    from impasto.progress import StepEvent
    from PIL import Image
    import numpy as np
    def load(p, edge):
        im = Image.open(p).convert("RGB"); im.thumbnail((edge, edge))
        return torch.from_numpy(np.asarray(im)).permute(2, 0, 1)[None].float() / 255
    edge = args["edge"]
    c, s = load("examples/content/tubingen.jpg", edge), load("examples/style/starry_night.jpg", edge)
    enc = build_encoder(args["encoder"], weights="random", layers=["relu4_2","relu1_1","relu2_1","relu3_1","relu4_1","relu5_1"])
    ref_cfg = GatysConfig(edge=edge, scales=str(edge), iterations=args["ref_steps"], encoder=args["encoder"], weights="random", init=args["init"], seed=0)
    times = []
    t0 = time.perf_counter()
    ref = run(ref_cfg, c, [StyleInput(s)], encoder=enc, callback=lambda e: times.append((time.perf_counter() - t0, e.losses["total"])) if isinstance(e, StepEvent) else None)
    target = ref.history[-1]["total"]
    ref_time = times[-1][0]
    # coarse-to-fine: optimise at each coarse level of the ladder, then at full size until the target is reached
    coarse = args["ladder"]  # [[edge, iterations], ...] below the final scale
    ctf_cfg = GatysConfig(edge=edge, scales=",".join(str(e) for e, _ in coarse) + f",{edge}", scale_iterations=",".join(str(n) for _, n in coarse) + f",{args['ref_steps']}", encoder=args["encoder"], weights="random", init=args["init"], seed=0)
    last = len(coarse)
    times2 = []
    t1 = time.perf_counter()
    def cb(e):
        if isinstance(e, StepEvent):
            times2.append((time.perf_counter() - t1, e.stage, e.losses["total"]))
            if e.stage == last and e.losses["total"] <= target:
                raise KeyboardInterrupt
    run(ctf_cfg, c, [StyleInput(s)], encoder=enc, callback=cb)
    final = [t for t in times2 if t[1] == last]
    reached = final[-1][0] if final and final[-1][2] <= target else None
    # equal-time comparison: each run's loss when the other stopped / after the same seconds
    def at(curve, secs):
        before = [l for t, l in curve if t <= secs]
        return before[-1] if before else None
    fine = [(t, l) for t, _, l in final]
    print(json.dumps({"ref_steps": args["ref_steps"], "ref_time_s": ref_time, "target_loss": target, "ctf_time_s": reached, "ctf_final_steps": len(final),
                      "fine_start_loss": fine[0][1] if fine else None, "ctf_loss_at_ref_time": at(fine, ref_time), "ref_loss_at_half": at(times, ref_time / 2),
                      "ctf_loss_at_half": at(fine, ref_time / 2), "coarse_s": final[0][0] if final else None}))
"""


def child(args: dict, threads: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args), str(threads)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"benchmark child failed: {args}\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def parse_ladder(text: str, edge: int, steps: int) -> list[list[int]]:
    """The coarse levels of the time-to-quality run as [[edge, iterations], ...] (see --quality-ladder)."""
    if not text:
        return [[edge // 4, steps * 2 // 5], [edge // 2, steps // 5]]
    parts = text.split(",")
    try:
        if all(":" in p for p in parts):
            ladder = [[int(e), int(n)] for e, n in (p.split(":") for p in parts)]
        elif len(parts) == 2:
            ladder = [[edge // 4, int(parts[0])], [edge // 2, int(parts[1])]]
        else:
            raise ValueError
    except ValueError:
        raise SystemExit(f"--quality-ladder: expected 'A,B' or EDGE:ITERS pairs, got {text!r}") from None
    if any(e >= edge or e < 1 or n < 0 for e, n in ladder) or [e for e, _ in ladder] != sorted({e for e, _ in ladder}):
        raise SystemExit(f"--quality-ladder: coarse edges must rise and stay below the final {edge} px, got {text!r}")
    return ladder


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    sys.stdout.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CI)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=("steps", "ladder", "highres", "tiledloss", "quality"))
    ap.add_argument("--ladder-edge", type=int, default=512, help="final edge of the default-ladder timing")
    ap.add_argument("--tiled-edge", type=int, default=1024, help="size of the tiled-vs-untiled loss comparison")
    ap.add_argument("--tiled-iters", type=int, default=10, help="L-BFGS iterations of the tiled-vs-untiled comparison")
    ap.add_argument("--edges", default="1024:auto,2048:auto,4096:8G", help="high-res cases EDGE:BUDGET,...")
    ap.add_argument("--highres-iters", type=int, default=1, help="L-BFGS iterations per high-res case")
    ap.add_argument("--quality-edge", type=int, default=512)
    ap.add_argument("--quality-steps", type=int, default=500)
    ap.add_argument("--quality-ladder", default="", help="coarse levels before the final scale: 'A,B' = A iterations at edge/4 and B at edge/2 "
                    "(default: 2/5 and 1/5 of --quality-steps), or EDGE:ITERS pairs, e.g. 128:200,256:100,384:60")
    ap.add_argument("--quality-init", default="content,noise", help="comma-separated inits to compare (content: our default; noise: Gatys et al.'s original start)")
    a = ap.parse_args()
    enc = "tiny_vgg" if a.quick else "vgg19"
    print(f"impasto gatys benchmarks ({'quick' if a.quick else 'full'}; encoder {enc}, random weights, {a.threads} threads)")

    if a.only in (None, "steps"):
        sizes = [(48, 64)] if a.quick else [(192, 256), (384, 512)]
        rows = []
        for h, w in sizes:
            for opt in ("lbfgs", "adam"):
                r = child({"mode": "steps", "size": [h, w], "encoder": enc, "opt": opt, "warmup": 2, "steps": 3 if a.quick else 10}, a.threads)
                rows.append([f"{w}x{h}", opt, f"{r['s_per_step']:.3f}", f"{r['peak_mb']:.0f}"])
        table("seconds per optimisation step (content relu4_2, style relu1_1..relu5_1)", ["size", "optimizer", "s/step", "peak MB"], rows)

    if a.only in (None, "ladder"):
        edge, n = (64, 3) if a.quick else (a.ladder_edge, 10)
        rows = []
        for scales in ("auto", str(edge), "auto", str(edge)):  # interleaved twice
            r = child({"mode": "ladder", "edge": edge, "encoder": enc, "iters": n, "scales": scales}, a.threads)
            for lv, it, med in zip(r["levels"], r["iters"], r["median_s"]):
                rows.append([scales, f"{lv}px", str(it), f"{med:.3f}", f"{r['peak_mb']:.0f}"])
        table(f"default coarse-to-fine ladder vs single scale at {edge}px: median seconds per L-BFGS iteration at each level",
              ["--scales", "level", "iterations", "s/iter (median)", "peak MB"], rows)

    if a.only in (None, "tiledloss"):
        edge, n, tile = (96, 3, 64) if a.quick else (a.tiled_edge, a.tiled_iters, 512)
        rows = []
        for t_ in (0, tile):
            r = child({"mode": "tiledloss", "edge": edge, "encoder": enc, "iters": n, "tile": t_}, a.threads)
            rows.append([f"{edge}px", f"{t_}px tiles" if r["tiled"] else "whole image", str(n), f"{r['start_loss']:.4f}", f"{r['final_loss']:.4f}", f"{r['time_s']:.1f}", f"{r['peak_mb']:.0f}"])
        table(f"tiled vs untiled: whole-image loss after the same {n} L-BFGS iterations (tubingen x starry_night)",
              ["size", "how", "iterations", "start loss", "final loss", "time s", "peak MB"], rows)

    if a.only in (None, "highres"):
        edges = [(96, "1G")] if a.quick else [(int(e.split(":")[0]), e.split(":")[1]) for e in a.edges.split(",")]
        rows = []
        for edge, budget in edges:
            r = child({"mode": "highres", "edge": edge, "encoder": enc, "iters": a.highres_iters, "budget": budget}, a.threads)
            full = f"{r['peak_mb'] + r['missing_mb']:.0f}" if r["tiled"] else "-"
            est = f"{r['estimate_mb']:.0f}" if r["estimate_mb"] else "-"
            rows.append([f"{edge}x{edge * 3 // 4}", budget, "yes" if r["tiled"] else "no", "yes" if r["tuned"] else "no", str(r["pairs"] or "-"), f"{r['time_s']:.1f}", f"{r['peak_mb']:.0f}", full, est])
            print(f"  {edge}: {r['plan']}", flush=True)
        table(
            f"high resolution: seconds per L-BFGS iteration over the whole image (mean of {a.highres_iters}, incl. targets); "
            "peak = measured; +history = measured plus the L-BFGS pairs not yet filled; planned = the planner's estimate",
            ["size", "budget", "tiled", "alloc tuned", "L-BFGS pairs", "s/iter", "peak MB", "+history MB", "planned MB"], rows)

    if a.only in (None, "quality"):
        edge, steps = (64, 10) if a.quick else (a.quality_edge, a.quality_steps)
        fmt = lambda v: f"{v:.4f}" if v is not None else "-"
        ladder = parse_ladder(a.quality_ladder, edge, steps)
        rows = []
        for init in a.quality_init.split(","):
            r = child({"mode": "quality", "edge": edge, "encoder": enc, "ref_steps": steps, "init": init, "ladder": ladder}, a.threads)
            speed = f"{r['ref_time_s'] / r['ctf_time_s']:.1f}x" if r["ctf_time_s"] else "not reached"
            rows.append([init, f"{r['target_loss']:.4f}", f"{r['ref_time_s']:.1f}", f"{r['ctf_time_s']:.1f}" if r["ctf_time_s"] else "-", speed,
                         f"{r['coarse_s']:.1f}" if r["coarse_s"] else "-", str(r["ctf_final_steps"]), fmt(r["fine_start_loss"]),
                         f"{fmt(r['ref_loss_at_half'])} / {fmt(r['ctf_loss_at_half'])}", fmt(r["ctf_loss_at_ref_time"])])
            print(f"  init {init}: done", flush=True)
        table(
            f"time to quality at {edge}px: until the loss of {steps} single-scale L-BFGS steps (target) is reached; "
            f"coarse-to-fine = {', '.join(f'{e}px x{n}' for e, n in ladder)}, then {edge}px until the target (at most {steps} steps)",
            ["init", "target", "single-scale s", "coarse-to-fine s", "speed-up", "coarse levels s", "final-scale steps", "final-scale start loss",
             "loss at half time (single / c2f)", "c2f loss at single's end"],
            rows,
        )


if __name__ == "__main__":
    t = time.time()
    main()
    print(f"\n(total {time.time() - t:.0f} s)")
