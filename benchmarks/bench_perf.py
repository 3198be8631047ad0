"""impasto beside plain PyTorch: each classic workload run both ways in one process, interleaved
(reference, impasto, reference, impasto, ... after a warm-up of each; ONNX Runtime rows run
the reference rounds first, see case_net), reported as medians and
the ratio impasto / reference, with the target of issue 18 for that row. The references are in
``benchmarks/reference.py`` (neural-style-pt, pytorch/examples' fast_neural_style and
pytorch-AdaIN written the plain way; nothing from impasto).

Rows (one fresh subprocess each, ``--threads`` threads):

- Gatys evaluation: seconds per L-BFGS step (one forward + backward of the loss: VGG19 to
  relu5_1, content relu4_2, Gram style relu1_1..relu5_1) at 512x384, both sides loading the same
  seeded random VGG19 checkpoint file (features + classifier, torchvision's layout, ~548 MB);
- Johnson inference at 1024x1024; a Johnson training step (256 px, batch 4, VGG16 loss net, Adam);
- AdaIN (512 px photo, 512 px painting; both encoded every call), multistyle (512 px) and
  superres (256 -> 1024 px) inference;
- memory: peak RSS of a fresh process per side, 512x384 Gatys with the checkpoint file, a few
  L-BFGS steps;
- quality, where impasto's precision is below fp32: Gatys at 256 px, 100 iterations, final loss
  (measured in fp32) and PSNR against impasto's fp32 run; each network's largest output
  difference from fp32.

impasto runs as a user gets it (default settings; ``--precision`` is passed on where its config
has that option). The glibc allocator is left as a plain script has it unless
``--tune-allocator`` (``impasto``'s commands tune it; process-wide, so both sides gain).

  python benchmarks/bench_perf.py             # full table (about 8 minutes on 2 idle cores)
  python benchmarks/bench_perf.py --quick     # tiny sizes, for CI (checks the code runs)
  python benchmarks/bench_perf.py --only gatys,johnson --precision fp32
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from _bench import run_child, table

HERE = Path(__file__).resolve().parent
CHILD = f"import sys; sys.path.insert(0, {str(HERE)!r}); import bench_perf; bench_perf.child_main(sys.argv[1], int(sys.argv[2]))"
ROWS = ("gatys", "memory", "johnson", "train", "adain", "multistyle", "superres", "quality")
#: issue 18's targets: impasto / reference (time or memory)
TARGETS = {"gatys": 0.6, "memory": 0.8, "johnson": 0.5, "train": 0.6, "adain": 0.6, "multistyle": 0.6, "superres": 0.6}
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
Sampler = Callable[[], "list[float]"]


def cpu_flags() -> list[str]:
    """The speed-relevant flags of this CPU (from /proc/cpuinfo; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    have = set(line.split(":", 1)[-1].split())
    return [f for f in CPU_FLAGS if f in have]


def cpu_has_bf16() -> bool:
    """Whether bf16 arithmetic is native here (AVX512-BF16 or AMX)."""
    return any(f in cpu_flags() for f in ("avx512_bf16", "amx_bf16"))


def precision_kwargs(cls: type, wanted: str) -> dict[str, str]:
    """``{"precision": ...}`` for the config dataclass ``cls`` if it has that field, else {}.

    ``wanted`` is auto|fp32|bf16; a config that spells its choices float32|bfloat16 gets those
    (auto: bfloat16 where the CPU has native bf16)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if "precision" not in fields:
        return {}
    choices = fields["precision"].metadata.get("choices")
    if not choices or wanted in choices:
        return {"precision": wanted}
    spelled = {"fp32": "float32", "bf16": "bfloat16", "auto": "bfloat16" if cpu_has_bf16() else "float32"}.get(wanted, wanted)
    return {"precision": spelled if spelled in choices else wanted}


def has_onnxruntime() -> bool:
    """Whether ONNX Runtime is installed (the ``onnx`` extra): then ``--runtime onnx`` rows run too."""
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def is_fp32(kwargs: dict[str, str], method: str) -> bool:
    """Whether impasto runs ``method`` (gatys or a network architecture) in float32 at this
    precision setting (no option, fp32, or auto where impasto's policy keeps fp32; auto's bf16
    residual blocks count as bf16)."""
    from impasto.precision import residual_precision, resolve_precision

    name = kwargs.get("precision", "fp32")
    return resolve_precision(name, "cpu", method) is None and residual_precision(name, "cpu", method) is None


def image(h: int, w: int, seed: int = 0, batch: int = 1) -> Any:
    """A smooth seeded random image batch in [0, 1] (a photo-like spectrum, not white noise)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    low = torch.rand(batch, 3, max(1, h // 32), max(1, w // 32), generator=g)
    fine = torch.rand(batch, 3, h, w, generator=g) * 0.1
    return (torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False) * 0.9 + fine).contiguous()


def timed(fn: Callable[[], Any]) -> Sampler:
    """A sampler timing one call of ``fn``."""

    def sample() -> list[float]:
        t = time.perf_counter()
        fn()
        return [time.perf_counter() - t]

    return sample


def interleave(ref: Sampler, imp: Sampler, rounds: int, warmup: int = 1) -> tuple[list[float], list[float]]:
    """Warm both up, then alternate reference and impasto ``rounds`` times; all samples of each."""
    for _ in range(warmup):
        ref()
        imp()
    a: list[float] = []
    b: list[float] = []
    for _ in range(rounds):
        a += ref()
        b += imp()
    return a, b


def phase(sampler: Sampler, rounds: int, warmup: int = 1) -> list[float]:
    """Warm up, then ``rounds`` samples of one side alone (see case_net's ONNX Runtime rows)."""
    for _ in range(warmup):
        sampler()
    return [t for _ in range(rounds) for t in sampler()]


def peak_mb() -> float:
    """Peak RSS of this process in MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def psnr(a: Any, b: Any) -> float:
    """PSNR in dB of two images in [0, 1]."""
    mse = float((a.float() - b.float()).square().mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


# =============================================================================================
# impasto's side of each workload (adjust here when impasto's API changes)
# =============================================================================================
def impasto_gatys_config(case: dict, iterations: int, edge: int, precision: str) -> Any:
    """The GatysConfig of one single-scale run with the checkpoint file (defaults otherwise)."""
    from impasto.methods.gatys import GatysConfig

    return GatysConfig(
        edge=edge, scales=str(edge), iterations=iterations, encoder=case["encoder"], weights=case["checkpoint"],
        preprocessing="torchvision", device=case.get("device", "cpu"), **precision_kwargs(GatysConfig, precision),
    )


def impasto_gatys(case: dict, content: Any, style: Any, iterations: int, precision: str, encoder: Any = None) -> tuple[Any, list[float], Any]:
    """One ``impasto.methods.gatys.run``: (output, seconds between consecutive steps, encoder)."""
    from impasto.methods.gatys import StyleInput, run
    from impasto.methods.gatys_method import build_gatys_encoder
    from impasto.progress import StepEvent

    cfg = impasto_gatys_config(case, iterations, max(content.shape[-2:]), precision)
    encoder = encoder if encoder is not None else build_gatys_encoder(cfg)
    stamps: list[float] = []
    out = run(cfg, content, [StyleInput(style)], encoder=encoder, callback=lambda e: stamps.append(time.perf_counter()) if isinstance(e, StepEvent) else None)
    return out.image, [b - a for a, b in zip(stamps, stamps[1:])], encoder


def impasto_gatys_loss_fp32(case: dict, encoder: Any, content: Any, style: Any, images: list[Any]) -> list[float]:
    """The fp32 loss (impasto's default weights and padding) of each of ``images``."""
    import torch

    from impasto.features.padding import padding_mode
    from impasto.methods.gatys import build_loss

    cfg = impasto_gatys_config(case, 1, max(content.shape[-2:]), "fp32")
    loss = build_loss(cfg, encoder)
    with padding_mode(encoder, cfg.padding), torch.no_grad():
        device = images[0].device
        loss.set_style([style.to(device)])
        loss.set_content(content.to(device))
        return [float(loss(x)[0]) for x in images]


def impasto_model_file(arch: str, folder: Path, quick: bool) -> Path:
    """A model file of ``arch`` with seeded random weights (as bench_styles writes them)."""
    import torch

    from impasto.methods.ff_model import model_payload, save_model
    from impasto.methods.ff_train import TrainConfig
    from impasto.nets import build_net

    torch.manual_seed(0)
    overrides: dict[str, Any] = {"n_styles": 4} if arch == "multistyle" else {}
    if arch == "adain":
        overrides = {"weights": "random", "encoder": "tiny_vgg" if quick else "vgg19"}
    net, net_config = build_net(arch, overrides=overrides)
    if arch == "adain":
        net_config["weights_id"] = net.config["weights_id"] = net.encoder.weights_id
    if arch == "superres":  # its last convolution starts at zero (the bicubic upscale): give it detail to differ in
        torch.nn.init.normal_(net.tail.conv.weight, std=0.01)
    styles = [{"index": k, "name": f"s{k}", "sha256": "0" * 64} for k in range(4)] if arch == "multistyle" else None
    return save_model(folder / f"{arch}.pt", model_payload(net, arch, net_config, TrainConfig(steps=1), {"name": "random", "sha256": "0" * 64}, 1, {}, styles=styles))


def impasto_apply(model: Path, precision: str, painting: Any = None, runtime: str = "torch", device: str = "cpu") -> Callable[[Any], Any]:
    """``photo -> stylised`` through ModelSession + stylise_photo (the path of ``impasto apply``).
    An AdaIN painting is encoded on every call, as the reference does. ``runtime="onnx"``: ONNX
    Runtime on the model exported once when the session opens (``impasto apply --runtime onnx``)."""
    from impasto.methods.ff_apply import ApplyConfig, ModelSession, stylise_photo

    config = ApplyConfig(device=device, runtime=runtime, **(precision_kwargs(ApplyConfig, precision) if runtime != "onnx" else {"precision": "fp32"}))
    session = ModelSession(model, config, styles=[painting] if painting is not None else [])

    def apply(photo: Any) -> Any:
        if painting is not None:
            session.runner.style = session.runner.net.prepare_style([painting])
        return stylise_photo(session, photo, config)[0]

    return apply


def impasto_train_step(encoder: str, batch: Any, style: Any, precision: str, device: str = "cpu") -> Callable[[], None]:
    """One step of ``impasto train`` (johnson): its loss network, objective, optimiser and
    schedule, under the recipe's precision; returns the step."""
    import torch

    from impasto.features import build_encoder
    from impasto.losses import PerceptualLoss
    from impasto.methods.ff_train import PerceptualObjective, TrainConfig, parse_layers, training_device
    from impasto.nets import build_net
    from impasto.optim.training import make_optimizer, make_scheduler

    cfg = TrainConfig(encoder=encoder, weights="random", batch_size=batch.shape[0], train_size=batch.shape[-1], device=device, **precision_kwargs(TrainConfig, precision))
    device, prec = training_device(cfg, None)
    content_layers, style_layers = parse_layers(cfg.content_layers), parse_layers(cfg.style_layers)
    enc = build_encoder(cfg.encoder, weights=cfg.weights, layers=list(dict.fromkeys([*content_layers, *style_layers])), device=device)
    prec.prepare_encoder(enc)
    loss_fn = PerceptualLoss(enc, content_layers=content_layers, style_layers=style_layers, content_weight=cfg.content_weight,
                             style_weight=cfg.style_weight, tv_weight=cfg.tv_weight, style_loss=cfg.style_loss, seed=cfg.seed)
    loss_fn.set_style([style.to(device)])
    torch.manual_seed(cfg.seed)
    net, _ = build_net(cfg.arch)
    net.to(device=device, memory_format=prec.memory_format).train()
    objective = PerceptualObjective(loss_fn, size=(cfg.train_size, cfg.train_size), batch_size=cfg.batch_size, noise=torch.Generator().manual_seed(1))
    optimizer = make_optimizer(net.parameters(), cfg.lr)
    scheduler = make_scheduler(optimizer, cfg.lr_schedule, cfg.steps)
    x = batch.to(device=device, memory_format=prec.memory_format)

    def step() -> None:
        with prec.autocast():
            loss, _ = objective(net, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()

    return step


def impasto_precision_name(precision: str) -> str:
    """What impasto's configs make of ``--precision`` (for the header)."""
    from impasto.methods.ff_apply import ApplyConfig
    from impasto.methods.ff_train import TrainConfig
    from impasto.methods.gatys import GatysConfig

    parts = []
    for cls in (GatysConfig, ApplyConfig, TrainConfig):
        kw = precision_kwargs(cls, precision)
        parts.append(f"{cls.__name__}: {kw['precision'] if kw else 'no precision option (fp32)'}")
    return "; ".join(parts)


# =============================================================================================
# the cases (run in a child process each)
# =============================================================================================
def case_gatys(case: dict) -> dict:
    """Seconds per L-BFGS step (one evaluation), interleaved rounds of ``steps`` steps."""
    import reference as ref

    h, w = case["size"]
    content, style = image(h, w, 1), image(h, w, 2)
    model = ref.GatysReference(case["checkpoint"], widths=case["widths"], hidden=case["hidden"])
    model.set_targets(content, style)
    steps = case["steps"]
    encoder = impasto_gatys(case, content, style, 1, case["precision"])[2]

    def ref_round() -> list[float]:
        img, opt = model.lbfgs(content)
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            model.step(img, opt)
            times.append(time.perf_counter() - t)
        return times[1:]  # the first step's time is not counted on either side

    def imp_round() -> list[float]:
        return impasto_gatys(case, content, style, steps, case["precision"], encoder)[1]

    a, b = interleave(ref_round, imp_round, case["rounds"])
    return {"ref": a, "imp": b}


def case_memory(case: dict) -> dict:
    """Peak RSS of one side: load the checkpoint, a few L-BFGS steps at the size."""
    import reference as ref

    h, w = case["size"]
    content, style = image(h, w, 1), image(h, w, 2)
    if case["side"] == "ref":
        model = ref.GatysReference(case["checkpoint"], widths=case["widths"], hidden=case["hidden"])
        model.set_targets(content, style)
        img, opt = model.lbfgs(content)
        for _ in range(case["steps"]):
            model.step(img, opt)
    else:
        impasto_gatys(case, content, style, case["steps"], case["precision"])
    return {"peak_mb": peak_mb()}


def case_net(case: dict) -> dict:
    """Inference of one network both ways, interleaved; and impasto's output vs its fp32 output.

    ONNX Runtime rows are phased instead: every reference round first, then the ORT session is
    opened and timed. ORT keeps its memory arena (the pages of its last run) mapped, and a plain
    PyTorch run after it in the same process page-faults more: interleaved, the reference took
    3.1-3.4 s at 1024x1024 against 2.8 s alone, which flattered ORT (0.43x against 0.52x)."""
    import torch

    import reference as ref

    arch, quick = case["arch"], case["quick"]
    h, w = case["size"]
    folder = Path(tempfile.mkdtemp(prefix="bench_perf_"))
    model = impasto_model_file(arch, folder, quick)
    photo, painting = image(h, w, 1), None
    torch.manual_seed(0)
    if arch == "johnson":
        net: Any = ref.TransformerNet().eval()
        reference = lambda: net(photo * 255).clamp(0, 255) / 255  # noqa: E731 (pytorch/examples' convention)
    elif arch == "multistyle":
        net = ref.CondTransformerNet(4).eval()
        vec = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
        reference = lambda: net(photo * 255, vec).clamp(0, 255) / 255  # noqa: E731
    elif arch == "adain":
        net = ref.AdaINReference(widths=ref.TINY_WIDTHS if quick else ref.VGG_WIDTHS).eval()
        painting = image(*case["style_size"], 2)
        reference = lambda: net(photo, painting)  # noqa: E731
    else:
        net = ref.SuperResNet(4).eval()
        reference = lambda: net(photo)  # noqa: E731
    def ref_call() -> Any:
        with torch.no_grad():
            return reference()

    if case.get("runtime", "torch") == "onnx":
        a = phase(timed(ref_call), case["rounds"])
        apply = impasto_apply(model, case["precision"], painting, "onnx")
        b = phase(timed(lambda: apply(photo)), case["rounds"])
    else:
        apply = impasto_apply(model, case["precision"], painting)
        a, b = interleave(timed(ref_call), timed(lambda: apply(photo)), case["rounds"])
    result: dict[str, Any] = {"ref": a, "imp": b}
    from impasto.methods.ff_apply import ApplyConfig

    if case.get("runtime", "torch") != "onnx" and not is_fp32(precision_kwargs(ApplyConfig, case["precision"]), case["arch"]):
        y = apply(photo)
        y32 = impasto_apply(model, "fp32", painting)(photo)
        result["max_diff"] = float((y - y32).abs().max())
    return result


def case_train(case: dict) -> dict:
    """Seconds per training step both ways, interleaved."""
    import reference as ref

    b, s = case["batch"], case["px"]
    batch, style = image(s, s, 1, batch=b), image(case["style_px"], case["style_px"], 2)
    vgg = "vgg19" if case["quick"] else "vgg16"  # tiny_vgg (quick) has VGG19's topology
    trainer = ref.JohnsonTrainer(style * 255, b, vgg=vgg, widths=ref.TINY_WIDTHS if case["quick"] else ref.VGG_WIDTHS)
    step = impasto_train_step("tiny_vgg" if case["quick"] else "vgg16", batch, style, case["precision"])
    a, b_ = interleave(timed(lambda: trainer.step(batch * 255)), timed(step), case["rounds"])
    return {"ref": a, "imp": b_}


def case_quality(case: dict) -> dict:
    """Gatys at ``case["size"]``: impasto at the precision vs impasto in fp32 (loss, PSNR)."""
    import torch

    h, w = case["size"]
    content, style = image(h, w, 1), image(h, w, 2)
    x32, _, encoder = impasto_gatys(case, content, style, case["iterations"], "fp32")
    x, _, _ = impasto_gatys(case, content, style, case["iterations"], case["precision"], encoder)
    # L-BFGS's own sensitivity: fp32 again from a photo perturbed by 1e-6 (far below 8-bit steps)
    noise = torch.randn(content.shape, generator=torch.Generator().manual_seed(0)) * 1e-6
    xp, _, _ = impasto_gatys(case, content + noise, style, case["iterations"], "fp32", encoder)
    l32, lp, lpert = impasto_gatys_loss_fp32(case, encoder, content, style, [x32, x, xp])
    return {"loss_fp32": l32, "loss": lp, "psnr": psnr(x, x32), "loss_perturbed": lpert, "psnr_perturbed": psnr(xp, x32)}


CASES: dict[str, Callable[[dict], dict]] = {"gatys": case_gatys, "memory": case_memory, "net": case_net, "train": case_train, "quality": case_quality}


def child_main(arg: str, threads: int) -> None:
    """Entry point of a child process: run the case in ``arg`` (JSON), print its result as JSON."""
    case = json.loads(arg)
    if case.get("tune_allocator"):
        from impasto.cli.runtime import tune_allocator

        tune_allocator()
    if case.get("lean"):  # what impasto gatys does for memory-bound runs (--max-memory, large images)
        from impasto.cli.runtime import lean_allocator

        lean_allocator()
    import torch

    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    print(json.dumps(CASES[case["kind"]](case)), flush=True)


# =============================================================================================
# the parent: plan, run, print
# =============================================================================================
def ratio_row(name: str, what: str, res: dict, target: float | None, unit: str = "s") -> list[str]:
    """One table row from a child's result (medians of its samples)."""
    if "error" in res:
        return [name, what, res["error"], "", "", "", "", ""]
    a, b = statistics.median(res["ref"]), statistics.median(res["imp"])
    r = b / a
    met = "-" if target is None else ("yes" if r <= target else "no")
    n = f"{len(res['ref'])}+{len(res['imp'])}"
    return [name, what, f"{a:.3f} {unit}", f"{b:.3f} {unit}", f"{r:.2f}x", f"<= {target}" if target else "-", met, n]


def header(args: argparse.Namespace) -> str:
    """Machine, torch, threads and precision line of the table titles."""
    import torch

    sys.path.insert(0, str(HERE.parent / "src"))
    try:
        prec = impasto_precision_name(args.precision)
    except Exception as exc:  # noqa: BLE001 (the header must not stop the benchmark)
        prec = f"? ({exc})"
    flags = ", ".join(cpu_flags()) or "none of " + "/".join(CPU_FLAGS)
    return (f"CPU: {platform.processor() or platform.machine()} [{flags}], {os.cpu_count()} CPUs; torch {torch.__version__}; "
            f"{args.threads} threads; --precision {args.precision} -> {prec}; allocator {'tuned' if args.tune_allocator else 'as is'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CI): checks the code runs, not the speed")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: 2; 1 in --quick mode, where spin-waiting threads on a busy machine cost more than the tiny work)")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"), help="impasto's precision (where its configs have the option)")
    ap.add_argument("--only", default="", help=f"comma-separated rows: {','.join(ROWS)}")
    ap.add_argument("--rounds", type=int, default=0, help="interleaved rounds per row (0 = the mode's default)")
    ap.add_argument("--tune-allocator", action="store_true", help="glibc allocator tuned as impasto's commands do (both sides)")
    args = ap.parse_args()
    only = [r for r in args.only.split(",") if r] or list(ROWS)
    bad = [r for r in only if r not in ROWS]
    if bad:
        raise SystemExit(f"--only: unknown rows {', '.join(bad)} (choose from {', '.join(ROWS)})")
    q = args.quick
    args.threads = args.threads or (1 if q else 2)
    rounds = args.rounds or (2 if q else 4)
    t0 = time.time()
    print(f"bench_perf ({'quick' if q else 'full'} mode)\n{header(args)}", flush=True)

    sys.path.insert(0, str(HERE))
    import reference as ref

    widths, hidden = (ref.TINY_WIDTHS, 64) if q else (ref.VGG_WIDTHS, 4096)
    base = {"precision": args.precision, "quick": q, "tune_allocator": args.tune_allocator, "widths": list(widths), "hidden": hidden,
            "encoder": "tiny_vgg" if q else "vgg19"}
    with tempfile.TemporaryDirectory(prefix="bench_perf_") as tmp:
        if any(r in only for r in ("gatys", "memory", "quality")):
            t = time.perf_counter()
            base["checkpoint"] = str(ref.write_random_vgg19(Path(tmp) / "vgg19_random.pth", widths=widths, hidden=hidden))
            size = os.path.getsize(base["checkpoint"]) / 2**20
            print(f"wrote a seeded random VGG19 checkpoint ({size:.0f} MB) in {time.perf_counter() - t:.1f} s", flush=True)
        run = lambda case: run_child(CHILD, {**base, **case}, args.threads)  # noqa: E731
        rows: list[list[str]] = []
        diffs: list[list[str]] = []
        gh, gw = (48, 64) if q else (384, 512)
        if "gatys" in only:
            res = run({"kind": "gatys", "size": [gh, gw], "steps": 3 if q else 6, "rounds": rounds if q else 3})
            rows.append(ratio_row("Gatys evaluation (L-BFGS step)", f"{gw}x{gh}", res, TARGETS["gatys"]))
        if "memory" in only:
            mem = {side: run({"kind": "memory", "side": side, "size": [gh, gw], "steps": 2 if q else 5}) for side in ("ref", "impasto")}
            err = next((m["error"] for m in mem.values() if "error" in m), None)
            res = {"error": err} if err else {"ref": [mem["ref"]["peak_mb"]], "imp": [mem["impasto"]["peak_mb"]]}
            rows.append(ratio_row("peak RSS, Gatys + checkpoint file", f"{gw}x{gh}", res, TARGETS["memory"], unit="MB"))
            lean = run({"kind": "memory", "side": "impasto", "size": [gh, gw], "steps": 2 if q else 5, "lean": True})
            res = {"error": lean["error"]} if "error" in lean else {**res, "imp": [lean["peak_mb"]]}
            rows.append(ratio_row("  same, memory-bound run (lean allocator)", f"{gw}x{gh}", res, TARGETS["memory"], unit="MB"))
        if "johnson" in only:
            s = 64 if q else 1024
            res = run({"kind": "net", "arch": "johnson", "size": [s, s], "rounds": rounds})
            rows.append(ratio_row("Johnson inference", f"{s}x{s}", res, TARGETS["johnson"]))
            diffs.append(["johnson", f"{s}x{s}", res.get("error") or (f"{res['max_diff']:.2e}" if "max_diff" in res else "-")])
            if has_onnxruntime():
                res = run({"kind": "net", "arch": "johnson", "size": [s, s], "rounds": rounds, "runtime": "onnx"})
                rows.append(ratio_row("Johnson inference, --runtime onnx", f"{s}x{s}", res, TARGETS["johnson"]))
        if "train" in only:
            px, b = (32, 2) if q else (256, 4)
            res = run({"kind": "train", "px": px, "batch": b, "style_px": 64 if q else 512, "rounds": rounds if q else 3})
            rows.append(ratio_row("Johnson training step", f"{px} px, batch {b}", res, TARGETS["train"]))
        for arch, size, style_size, label in (
            ("adain", (64, 64) if q else (512, 512), (64, 64) if q else (512, 512), "AdaIN inference"),
            ("multistyle", (64, 64) if q else (512, 512), None, "multistyle inference"),
            ("superres", (16, 16) if q else (256, 256), None, "superres x4 inference"),
        ):
            if arch in only:
                res = run({"kind": "net", "arch": arch, "size": list(size), "style_size": style_size and list(style_size), "rounds": rounds})
                what = f"{size[1]}x{size[0]}" + (f" -> {size[1] * 4}x{size[0] * 4}" if arch == "superres" else "") + (f", style {style_size[0]}" if style_size else "")
                rows.append(ratio_row(label, what, res, TARGETS[arch]))
                diffs.append([arch, what, res.get("error") or (f"{res['max_diff']:.2e}" if "max_diff" in res else "-")])
                if arch in ("multistyle", "superres") and has_onnxruntime():
                    res = run({"kind": "net", "arch": arch, "size": list(size), "style_size": None, "rounds": rounds, "runtime": "onnx"})
                    rows.append(ratio_row(label + ", --runtime onnx", what, res, TARGETS[arch]))
        table(f"impasto vs plain PyTorch, medians of interleaved runs (ONNX Runtime rows: phased; ratio = impasto / reference; {rounds} rounds)\n{header(args)}",
              ["workload", "size", "reference", "impasto", "ratio", "target", "met", "samples"], rows)

        from impasto.methods.gatys import GatysConfig

        if "quality" in only and is_fp32(precision_kwargs(GatysConfig, args.precision), "gatys"):
            print(f"\nquality rows skipped: impasto's Gatys runs in fp32 at --precision {args.precision} (nothing drops)")
        elif "quality" in only:
            edge, iters = (48, 10) if q else (256, 100)
            res = run({"kind": "quality", "size": [edge * 3 // 4, edge], "iterations": iters})
            if "error" in res:
                qrow = ["gatys", f"{edge} px, {iters} it", res["error"], "", "", "", ""]
            else:
                rel = abs(res["loss"] - res["loss_fp32"]) / res["loss_fp32"]
                qrow = ["gatys", f"{edge}x{edge * 3 // 4}, {iters} it", f"{res['loss_fp32']:.5g}", f"{res['loss']:.5g}", f"{100 * rel:.2f} % (<= 2 %)",
                        f"{res['psnr']:.1f} dB (>= 35)", "yes" if rel <= 0.02 and res["psnr"] >= 35 else "no"]
            rows_q = [qrow]
            if "error" not in res:
                rel_p = abs(res["loss_perturbed"] - res["loss_fp32"]) / res["loss_fp32"]
                rows_q.append(["gatys fp32, photo + 1e-6 noise", qrow[1], qrow[2], f"{res['loss_perturbed']:.5g}", f"{100 * rel_p:.2f} %",
                               f"{res['psnr_perturbed']:.1f} dB", "(L-BFGS's own sensitivity)"])
            table(f"quality at --precision {args.precision} vs fp32 (impasto both; final loss measured in fp32)",
                  ["method", "run", "fp32 loss", "loss", "loss difference", "PSNR vs fp32", "met"], rows_q)
        if "quality" in only:
            print("\n(training in bf16 has its own guard, over several runs: benchmarks/bench_train_quality.py)")
        if diffs:
            table(f"network outputs at --precision {args.precision}: largest difference from fp32 on [0, 1] ('-': runs in fp32; target <= 1e-2)",
                  ["network", "size", "max abs diff"], diffs)
    print(f"\n(total {time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
