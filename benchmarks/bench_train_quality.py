"""Training precision guard: does a network trained in bf16 score as well as one trained in fp32?

A johnson network is trained ``--steps`` steps with impasto's recipe (its TrainConfig defaults:
VGG16 loss network, batch 4, Adam, cosine schedule over the run, same seed) on random crops of
the photos: in fp32, and as ``impasto train --precision bf16`` does it (the frozen loss network
in bfloat16, features back in float32; ``--amp``: as ``--amp`` does it, the whole step under
autocast), each once more from the photos moved by 1e-6 (far below an 8-bit step): the spread a
run shows in its own precision. Each trained network is then scored in fp32: the perceptual loss
of its outputs on the photos' centre crops at 256 px (lower is better).

Training is chaotic: two fp32 runs whose photos differ by 1e-6 end up to 5 % apart after a few
hundred steps, so a single pair says little; the table gives every run and the summary compares
the means per precision. The guard: the bf16 mean is at most 2 % above the fp32 mean.

  python benchmarks/bench_train_quality.py --photos ../shared/images/content   # 2 styles x 2 seeds, 128 px, 300 steps (about 40 min on 2 idle cores)
  python benchmarks/bench_train_quality.py --amp      # the whole step in bf16 instead
  python benchmarks/bench_train_quality.py --quick    # tiny sizes (CI: checks the code runs)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from _bench import table  # noqa: E402
from impasto.features import build_encoder  # noqa: E402
from impasto.losses import PerceptualLoss  # noqa: E402
from impasto.methods.ff_train import PerceptualObjective, TrainConfig, parse_layers  # noqa: E402
from impasto.nets import build_net  # noqa: E402
from impasto.optim.training import make_optimizer, make_scheduler  # noqa: E402
from impasto.optim.train_loop import resolve_precision  # noqa: E402

EXAMPLES = HERE.parent / "examples"


def load(path: Path, edge: int) -> torch.Tensor:
    """3xHxW in [0, 1], the shortest side resized to ``edge``."""
    im = Image.open(path).convert("RGB")
    s = edge / min(im.size)
    im = im.resize((max(edge, round(im.width * s)), max(edge, round(im.height * s))), Image.BICUBIC)
    return torch.from_numpy(np.array(im)).permute(2, 0, 1).float().div(255)


def centre(t: torch.Tensor, edge: int) -> torch.Tensor:
    """The centre ``edge`` x ``edge`` crop of a 3xHxW image."""
    i, j = (t.shape[1] - edge) // 2, (t.shape[2] - edge) // 2
    return t[:, i:i + edge, j:j + edge]


def run(cfg: TrainConfig, photos: list[torch.Tensor], style: torch.Tensor, test: torch.Tensor, low: bool, seed: int, nudge: bool, amp: bool = False) -> tuple[float, float]:
    """Train ``cfg.steps`` steps, in fp32 or (``low``) as ``--precision bf16`` does (the loss
    network in bf16), or as ``--amp`` does (the whole step under autocast); returns the trained
    network's fp32 loss on ``test`` and the seconds per step."""
    cl, sl = parse_layers(cfg.content_layers), parse_layers(cfg.style_layers)
    encoder = build_encoder(cfg.encoder, weights=cfg.weights, layers=list(dict.fromkeys([*cl, *sl])))
    precision = resolve_precision(torch.device("cpu"), amp=low and amp, precision="bf16" if low else "fp32")
    precision.prepare_encoder(encoder)
    loss_fn = PerceptualLoss(encoder, content_layers=cl, style_layers=sl, content_weight=cfg.content_weight, style_weight=cfg.style_weight,
                             tv_weight=cfg.tv_weight, style_loss=cfg.style_loss, seed=cfg.seed)
    loss_fn.set_style([style])
    torch.manual_seed(seed)
    net, _ = build_net(cfg.arch)
    net.train()
    objective = PerceptualObjective(loss_fn, size=(cfg.train_size,) * 2, batch_size=cfg.batch_size, noise=torch.Generator().manual_seed(1))
    optimizer = make_optimizer(net.parameters(), cfg.lr)
    scheduler = make_scheduler(optimizer, cfg.lr_schedule, cfg.steps)
    data, noise, px = torch.Generator().manual_seed(1234), torch.Generator().manual_seed(99), cfg.train_size  # same batches every run
    t0 = time.perf_counter()
    for _ in range(cfg.steps):
        crops = []
        for k in torch.randint(0, len(photos), (cfg.batch_size,), generator=data).tolist():
            p = photos[k]
            i, j = (int(torch.randint(0, n - px + 1, (1,), generator=data)) for n in p.shape[1:])
            crops.append(p[:, i:i + px, j:j + px])
        x = torch.stack(crops)
        if nudge:
            x = x + 1e-6 * torch.randn(x.shape, generator=noise)
        with precision.autocast():
            loss, _ = objective(net, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    per_step = (time.perf_counter() - t0) / cfg.steps
    net.eval()
    with torch.no_grad():
        out = net.generate(test, size=tuple(test.shape[-2:]), seed=None, batch=len(test), style=None)
        return float(loss_fn(out, content=test)[0]), per_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CI): checks the code runs, not the guard")
    ap.add_argument("--amp", action="store_true", help="compare --amp (the whole step under bf16 autocast) instead of --precision bf16 (the loss network)")
    ap.add_argument("--photos", type=Path, default=EXAMPLES / "content", help="folder of training photos (default: the bundled ones)")
    ap.add_argument("--styles", default="starry_night,the_scream", help="paintings from examples/style, comma-separated")
    ap.add_argument("--seeds", type=int, default=2, help="network initialisations per style")
    ap.add_argument("--steps", type=int, default=300, help="training steps per run")
    ap.add_argument("--px", type=int, default=128, help="training crop size")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    q = args.quick
    steps, px, test_px, seeds = (3, 32, 48, 1) if q else (args.steps, args.px, 256, args.seeds)
    styles = ["starry_night"] if q else [s for s in args.styles.split(",") if s]
    cfg = TrainConfig(encoder="tiny_vgg" if q else "vgg16", weights="random", train_size=px, steps=steps)
    files = sorted(f for f in args.photos.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
    photos = [load(f, max(px, test_px) + px // 4) for f in files]
    test = torch.stack([centre(p, test_px) for p in photos])
    low_name = "amp" if args.amp else "bf16"
    print(f"bench_train_quality ({'quick' if q else 'full'} mode): johnson, {cfg.encoder} (random weights), {px} px crops of {len(files)} photos "
          f"({args.photos}), batch {cfg.batch_size}, {steps} steps; loss on the {test_px} px centre crops, in fp32", flush=True)
    rows, by_precision = [], {"fp32": [], low_name: []}
    t0 = time.time()
    for name in styles:
        style = load(EXAMPLES / "style" / f"{name}.jpg", cfg.style_edge)[None]
        for seed in range(seeds):
            got = {}
            for label, low, nudge in (("fp32", False, False), ("fp32", False, True), (low_name, True, False), (low_name, True, True)):
                loss, per_step = run(cfg, photos, style, test, low, seed, nudge, amp=args.amp)
                got[(label, nudge)] = loss
                by_precision[label].append(loss)
                base = got[("fp32", False)]
                rows.append([name, str(seed), label + (" + 1e-6" if nudge else ""), f"{loss:.5f}", f"{100 * (loss / base - 1):+.2f} %", f"{per_step:.2f} s"])
                print("  " + "  ".join(rows[-1]), flush=True)
    table("each run (difference: against the fp32 run of the same style and seed)", ["style", "seed", "run", "loss", "difference", "per step"], rows)
    m32, mlo = statistics.mean(by_precision["fp32"]), statistics.mean(by_precision[low_name])
    rel = mlo / m32 - 1
    table("guard: mean loss per precision", ["precision", "runs", "mean loss", "vs fp32", "target", "met"],
          [["fp32", str(len(by_precision["fp32"])), f"{m32:.5f}", "-", "-", "-"],
           [low_name, str(len(by_precision[low_name])), f"{mlo:.5f}", f"{100 * rel:+.2f} %", "<= +2 %", "yes" if rel <= 0.02 else "no"]])
    print(f"\n(total {time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
