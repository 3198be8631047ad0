"""impasto on a CUDA GPU beside plain PyTorch on the same GPU, and beside the published figures
(issue 18, item 5). One process; every timing is bracketed by ``torch.cuda.synchronize()``.

Tables:

- the bench_perf table on the GPU: Gatys evaluation (one L-BFGS step) at 512x384 with impasto in
  fp32, bf16 (autocast) and bf16 + channels-last, against the fp32 reference (PyTorch's defaults:
  cuDNN may use TF32); peak GPU memory of each; Johnson inference (whole pipeline: upload,
  network, download) and a training step (256 px, batch 4); AdaIN, multistyle and superres;
- the published figures (../shared/BRIEF.md): 500 L-BFGS iterations at 256 and 512 px (Johnson
  et al. on a GTX Titan X: 15.9 s and 54.9 s) and the Johnson network at 256/512/1024 px
  (15 / 50 / 210 ms);
- quality: impasto's bf16 Gatys against its fp32 run (final loss measured in fp32, 256 px, 100
  iterations), with fp32 from a photo moved by 1e-6 as L-BFGS's own spread.

Weights: the seeded random VGG19 checkpoint file bench_perf writes (the same file for both sides).

  python benchmarks/bench_cuda.py            # on a CUDA machine (about 3 minutes on an H200)
  python benchmarks/bench_cuda.py --quick    # tiny sizes; on the CPU where no GPU is (CI: checks the code runs)

Without CUDA and without --quick it says so and exits 0. Each part (gatys, networks, training,
published, quality) runs on its own: one that fails is reported and the others still run (exit 1).
On a GPU machine with PyTorch but without impasto installed:
``PYTHONUNBUFFERED=1 PYTHONPATH=src python3 benchmarks/bench_cuda.py`` (impasto's core needs
only torch, numpy, pillow and tqdm).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import bench_perf as bp  # noqa: E402
from _bench import table  # noqa: E402

#: published figures (../shared/BRIEF.md): Johnson et al., GTX Titan X
PUBLISHED_GATYS_500 = {256: 15.9, 512: 54.9}
PUBLISHED_JOHNSON_MS = {256: 15, 512: 50, 1024: 210}


def sync(device: Any) -> None:
    """Wait for the GPU's queued work (nothing on a CPU)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: Any, fn: Callable[[], Any]) -> bp.Sampler:
    """A sampler timing one call of ``fn``, synchronised before and after."""

    def sample() -> list[float]:
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        return [time.perf_counter() - t]

    return sample


def peak_gpu_mb(device: Any, fn: Callable[[], Any]) -> float:
    """Peak GPU memory allocated by PyTorch while ``fn`` runs, in MB (NaN on a CPU)."""
    import torch

    if device.type != "cuda":
        fn()
        return float("nan")
    sync(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    sync(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def row(name: str, what: str, ref: list[float], imp: list[float], target: float | None) -> list[str]:
    """A table row of medians (in ms: GPU times are short) and their ratio, as bench_perf prints it."""
    return bp.ratio_row(name, what, {"ref": [1000 * t for t in ref], "imp": [1000 * t for t in imp]}, target, unit="ms")


def gatys_rows(base: dict, device: Any, size: tuple[int, int], steps: int, rounds: int) -> tuple[list[list[str]], list[list[str]]]:
    """Gatys evaluation at ``size``: reference fp32 vs impasto fp32 / bf16 / bf16 + channels-last
    (seconds per step; peak GPU memory of one short run each)."""
    import reference as ref

    h, w = size
    content, style = bp.image(h, w, 1), bp.image(h, w, 2)
    model = ref.GatysReference(base["checkpoint"], widths=base["widths"], hidden=base["hidden"]).to(device)
    model.set_targets(content.to(device), style.to(device))

    def ref_round() -> list[float]:
        img, opt = model.lbfgs(content.to(device))
        times = []
        for _ in range(steps):
            sync(device)
            t = time.perf_counter()
            model.step(img, opt)  # returns a float: synchronised
            times.append(time.perf_counter() - t)
        return times[1:]

    rows, mem = [], [["reference (fp32)", f"{peak_gpu_mb(device, ref_round):.0f} MB"]]
    for label, precision, channels_last in (("fp32", "fp32", None), ("bf16", "bf16", None), ("bf16, channels-last", "bf16", True)):
        case = {**base, "precision": precision}
        encoder = bp.impasto_gatys(case, content, style, 1, precision)[2]
        encoder.channels_last = channels_last

        def imp_round() -> list[float]:
            return bp.impasto_gatys(case, content, style, steps, precision, encoder)[1]  # noqa: B023 (used at once)

        a, b = bp.interleave(ref_round, imp_round, rounds)
        rows.append(row(f"Gatys evaluation, impasto {label}", f"{w}x{h}", a, b, bp.TARGETS["gatys"]))
        mem.append([f"impasto {label}", f"{peak_gpu_mb(device, imp_round):.0f} MB"])
        del encoder
    return rows, mem


def gatys_published(base: dict, device: Any, edges: tuple[int, ...], iterations: int) -> list[list[str]]:
    """Whole single-scale runs of ``iterations`` L-BFGS steps at each square ``edge``: reference
    fp32, impasto at ``--precision auto`` and bf16, against Johnson et al.'s Titan X figures."""
    import reference as ref

    rows = []
    for edge in edges:
        content, style = bp.image(edge, edge, 1), bp.image(edge, edge, 2)
        model = ref.GatysReference(base["checkpoint"], widths=base["widths"], hidden=base["hidden"]).to(device)
        model.set_targets(content.to(device), style.to(device))

        def ref_run() -> None:
            img, opt = model.lbfgs(content.to(device))  # noqa: B023 (used at once)
            for _ in range(iterations):
                model.step(img, opt)  # noqa: B023

        published = PUBLISHED_GATYS_500.get(edge) if iterations == 500 else None
        cells = [f"{timed(device, ref_run)()[0]:.1f} s"]
        for precision in ("auto", "bf16"):
            case = {**base, "precision": precision}
            encoder = bp.impasto_gatys(case, content, style, 1, precision)[2]
            cells.append(f"{timed(device, lambda: bp.impasto_gatys(case, content, style, iterations, precision, encoder))()[0]:.1f} s")  # noqa: B023
        rows.append([f"{iterations} L-BFGS iterations", f"{edge}x{edge}", *cells, f"{published} s (Titan X)" if published else "-"])
        del model
    return rows


def net_rows(base: dict, device: Any, folder: Path, quick: bool, rounds: int) -> tuple[list[list[str]], list[list[str]]]:
    """Inference of each network, whole pipeline (photo on the CPU in, image on the CPU out)."""
    import torch

    import reference as ref

    dev = str(device)
    rows, published = [], []
    johnson_sizes = (64,) if quick else (256, 512, 1024)
    plan: list[tuple[str, int, int | None]] = [("johnson", s, None) for s in johnson_sizes]
    plan += [("adain", 64 if quick else 512, 64 if quick else 512), ("multistyle", 64 if quick else 512, None), ("superres", 16 if quick else 256, None)]
    models = {arch: bp.impasto_model_file(arch, folder, quick) for arch in dict.fromkeys(a for a, _, _ in plan)}
    for arch, s, style_px in plan:
        photo = bp.image(s, s, 1)
        painting = bp.image(style_px, style_px, 2) if style_px else None
        torch.manual_seed(0)
        if arch == "johnson":
            net: Any = ref.TransformerNet().to(device).eval()
            reference = lambda: (net(photo.to(device) * 255).clamp(0, 255) / 255).cpu()  # noqa: E731,B023
        elif arch == "multistyle":
            net = ref.CondTransformerNet(4).to(device).eval()
            vec = torch.tensor([[1.0, 0.0, 0.0, 0.0]], device=device)
            reference = lambda: (net(photo.to(device) * 255, vec).clamp(0, 255) / 255).cpu()  # noqa: E731,B023
        elif arch == "adain":
            net = ref.AdaINReference(widths=ref.TINY_WIDTHS if quick else ref.VGG_WIDTHS).to(device).eval()
            reference = lambda: net(photo.to(device), painting.to(device)).cpu()  # noqa: E731,B023
        else:
            net = ref.SuperResNet(4).to(device).eval()
            reference = lambda: net(photo.to(device)).cpu()  # noqa: E731,B023
        apply = bp.impasto_apply(models[arch], base["precision"], painting, device=dev)

        def ref_call() -> Any:
            with torch.no_grad():
                return reference()  # noqa: B023

        a, b = bp.interleave(timed(device, ref_call), timed(device, lambda: apply(photo)), rounds)  # noqa: B023
        what = f"{s}x{s}" + (f" -> {4 * s}x{4 * s}" if arch == "superres" else "") + (f", style {style_px}" if style_px else "")
        rows.append(row(f"{arch} inference", what, a, b, bp.TARGETS["johnson" if arch == "johnson" else arch]))
        if arch == "johnson":
            published.append(["Johnson network", f"{s}x{s}", f"{1000 * statistics.median(a):.1f} ms", f"{1000 * statistics.median(b):.1f} ms",
                              f"{PUBLISHED_JOHNSON_MS[s]} ms (Titan X)" if s in PUBLISHED_JOHNSON_MS else "-"])
        del net, apply
    return rows, published


def train_row(base: dict, device: Any, quick: bool, rounds: int) -> list[str]:
    """One Johnson training step both ways (256 px, batch 4; impasto's recipe precision)."""
    import reference as ref

    b, s = (2, 32) if quick else (4, 256)
    batch, style = bp.image(s, s, 1, batch=b), bp.image(64 if quick else 512, 64 if quick else 512, 2)
    vgg = "vgg19" if quick else "vgg16"
    trainer = ref.JohnsonTrainer(style * 255, b, vgg=vgg, widths=ref.TINY_WIDTHS if quick else ref.VGG_WIDTHS)
    trainer.transformer.to(device)  # the optimiser's parameters move with it (same objects)
    trainer.vgg.to(device)
    trainer.gram_style = [g.to(device) for g in trainer.gram_style]
    step = bp.impasto_train_step("tiny_vgg" if quick else "vgg16", batch, style, base["precision"], device=str(device))
    x = batch.to(device) * 255
    a, b_ = bp.interleave(timed(device, lambda: trainer.step(x)), timed(device, step), rounds)
    return row("Johnson training step", f"{s} px, batch {b}", a, b_, bp.TARGETS["train"])


def header(device: Any, precision: str) -> str:
    """GPU (or CPU), torch, CUDA and the TF32 settings."""
    import torch

    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        what = f"GPU: {props.name} ({props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs); CUDA {torch.version.cuda}"
    else:
        what = "no CUDA device: CPU plumbing check only (the numbers mean nothing)"
    tf32 = f"cuDNN TF32 {torch.backends.cudnn.allow_tf32}, matmul TF32 {torch.backends.cuda.matmul.allow_tf32}"
    return f"{what}; torch {torch.__version__}; {tf32}; impasto --precision {precision} where not stated"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes; runs on the CPU where no GPU is (checks the code runs)")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"), help="impasto's precision for the network rows")
    ap.add_argument("--rounds", type=int, default=0, help="interleaved rounds per row (0 = the mode's default)")
    ap.add_argument("--threads", type=int, default=0, help="accepted for run_all.py; CPU threads of the plumbing check (default 1)")
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available() and not args.quick:
        print("bench_cuda: no CUDA device here; nothing to measure (--quick runs a CPU plumbing check)")
        return
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(args.threads or 1)
    q, rounds = args.quick, args.rounds or (1 if args.quick else 5)
    t0 = time.time()
    print(f"bench_cuda ({'quick' if q else 'full'} mode)\n{header(device, args.precision)}", flush=True)
    import reference as ref

    widths, hidden = (ref.TINY_WIDTHS, 64) if q else (ref.VGG_WIDTHS, 4096)
    base = {"precision": args.precision, "quick": q, "widths": list(widths), "hidden": hidden, "encoder": "tiny_vgg" if q else "vgg19", "device": str(device)}
    title = f"impasto vs plain PyTorch on the same device, medians of interleaved runs ({rounds} rounds)"
    cols = ["workload", "size", "reference", "impasto", "ratio", "target", "met", "samples"]
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench_cuda_") as tmp:
        base["checkpoint"] = str(ref.write_random_vgg19(Path(tmp) / "vgg19_random.pth", widths=widths, hidden=hidden))

        def gatys() -> None:
            rows, mem = gatys_rows(base, device, (48, 64) if q else (384, 512), 3 if q else 8, rounds)
            table(f"{title}: Gatys", cols, rows)
            table("peak GPU memory, a few Gatys steps at the size above (torch.cuda.max_memory_allocated)", ["side", "peak"], mem)

        def nets() -> None:
            rows, published = net_rows(base, device, Path(tmp), q, rounds)
            table(f"{title}: networks (whole pipeline: upload, network, download)", cols, rows)
            table("Johnson network against the published figures (Johnson et al. 2016, GTX Titan X)", ["network", "size", "reference", "impasto", "published"], published)

        def train() -> None:
            table(f"{title}: training", cols, [train_row(base, device, q, rounds)])

        def published() -> None:
            runs = gatys_published(base, device, (64,) if q else (256, 512), 5 if q else 500)
            table("whole Gatys runs against the published figures (Johnson et al. 2016, GTX Titan X)", ["workload", "size", "reference", "impasto auto", "impasto bf16", "published"], runs)

        def quality() -> None:
            edge, iters = (48, 10) if q else (256, 100)
            res = bp.case_quality({**base, "precision": "bf16", "size": [edge * 3 // 4, edge], "iterations": iters})
            rel = lambda loss: f"{100 * (loss / res['loss_fp32'] - 1):+.2f} %"  # noqa: E731
            table(f"quality: Gatys {edge}x{edge * 3 // 4}, {iters} iterations, final loss in fp32 (target: within 2 % of fp32)", ["run", "final loss", "vs fp32", "PSNR vs fp32"],
                  [["fp32", f"{res['loss_fp32']:.5g}", "-", "-"], ["bf16", f"{res['loss']:.5g}", rel(res["loss"]), f"{res['psnr']:.1f} dB"],
                   ["fp32, photo + 1e-6", f"{res['loss_perturbed']:.5g}", rel(res["loss_perturbed"]), f"{res['psnr_perturbed']:.1f} dB"]])

        # each part on its own: on a GPU lent for minutes, one failure must not cost the others
        for name, part in (("gatys", gatys), ("networks", nets), ("training", train), ("published", published), ("quality", quality)):
            try:
                part()
            except Exception:  # noqa: BLE001 (reported, then the next part runs)
                failed.append(name)
                print(f"\n{name}: FAILED\n{traceback.format_exc(limit=-4)}", file=sys.stderr, flush=True)
    print(f"\n(total {time.time() - t0:.0f} s{'; failed: ' + ', '.join(failed) if failed else ''})")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
