"""Benchmark of the patch-based (MRF, CNNMRF) style loss against the Gram loss: seconds per L-BFGS
iteration and peak memory of ``impasto gatys`` at one scale, VGG19 with random weights (speed does
not depend on them). Each case runs in a fresh subprocess so its peak memory (ru_maxrss) is its own.

Cases: gram (the encoder's five style layers), mrf (relu3_1 + relu4_1, 3x3 patches, stride 1) and
mrf with ``--patch-stride 2``. "s/iter" is the median step time after the first step; "first" is
the first step (with the style targets), "style" the time to encode the style and cut its
patches, "patches" the style patches per layer, "final/first loss" the total loss after the last
step relative to the first.

  python benchmarks/bench_mrf.py            # 512 px, 10 iterations per case (about 10 minutes on 2 cores)
  python benchmarks/bench_mrf.py --quick    # 64 px, 3 iterations (checks the code runs)
  python benchmarks/bench_mrf.py --edge 512 --iterations 3   # a shorter full-size measurement
"""

from __future__ import annotations

import argparse

from _bench import fmt, run_child, table

CHILD = r"""
import gc, json, resource, sys, time
args = json.loads(sys.argv[1])
import torch
torch.set_num_threads(int(sys.argv[2]))
torch.set_flush_denormal(True)
from impasto.features import build_encoder, get_encoder_spec
from impasto.methods import gatys
from impasto.progress import StepEvent

def image(h, w, seed):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, max(1, h // 16), max(1, w // 16), generator=g)
    img = torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
    return (img + 0.1 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)

edge = args["edge"]
cfg = gatys.GatysConfig(edge=edge, scales=str(edge), iterations=args["iters"], encoder="vgg19", weights="random", device="cpu",
                        style_loss=args["loss"], patch_stride=args["stride"], max_memory="64G")
content_layers, style_layers = gatys.loss_layers(cfg, get_encoder_spec("vgg19"))
enc = build_encoder("vgg19", weights="random", layers=[*content_layers, *style_layers])
content, style = image(edge * 3 // 4, edge, 1), image(edge, edge, 2)
loss = gatys.build_loss(cfg, enc)
t = time.perf_counter()
stats = loss.style_stats(style)
loss.set_style([], stats=[stats])
style_s = time.perf_counter() - t
patches = {}
if args["loss"] == "mrf":
    from impasto.losses.mrf import PatchTarget
    patches = {k: len(PatchTarget.from_stats(v[0])) for k, v in loss.style_term.targets.items()}
del loss, stats  # the run builds its own targets: keep the peak its own
gc.collect()
stamps = []
t0 = time.perf_counter()
out = gatys.run(cfg, content, [gatys.StyleInput(style)], encoder=enc,
                callback=lambda e: stamps.append(time.perf_counter()) if isinstance(e, StepEvent) else None)
steps = [b - a for a, b in zip([t0] + stamps, stamps)]
later = sorted(steps[1:]) or steps
print(json.dumps({"s_per_iter": later[len(later) // 2], "first": steps[0], "style_s": style_s, "iters": len(steps),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "patches": patches,
                  "loss": out.history[-1]["total"] / max(out.history[0]["total"], 1e-12)}))
"""

CASES = [("gram", "gram", 1), ("mrf", "mrf", 1), ("mrf stride 2", "mrf", 2)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="64 px, 3 iterations")
    parser.add_argument("--edge", type=int, help="output edge in px (default 512, --quick 64)")
    parser.add_argument("--iterations", type=int, help="L-BFGS iterations per case (default 10, --quick 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per case (default: 2)")
    args = parser.parse_args()
    edge = args.edge or (64 if args.quick else 512)
    iters = args.iterations or (3 if args.quick else 10)
    rows = []
    for label, loss, stride in CASES:
        r = run_child(CHILD, {"edge": edge, "iters": iters, "loss": loss, "stride": stride}, args.threads)
        patches = ", ".join(f"{k} {v}" for k, v in r.get("patches", {}).items()) or "-"
        rows.append([label, f"{edge}x{edge * 3 // 4}", fmt(r, "s_per_iter", ".3f"), fmt(r, "first", ".2f"), fmt(r, "style_s", ".2f"),
                     fmt(r, "peak_mb", ".0f"), fmt(r, "loss", ".3f"), patches])
        print(f"  {label}: {r}", flush=True)
    table(f"gatys, vgg19 (random weights), {iters} L-BFGS iterations, {args.threads} threads",
          ["style loss", "size", "s/iter", "first s", "style s", "peak MB", "final/first loss", "style patches"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
