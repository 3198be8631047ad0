"""Training a super-resolution network with perceptual losses (Johnson, Alahi & Fei-Fei 2016, sec. 4.2):
the recipe over :func:`impasto.optim.train_loop.train_loop`.

Each step takes a batch of random ``train_size`` px crops of the photos (the high-resolution
targets, 288 px in the paper), makes the low-resolution inputs the paper's way (Gaussian blur,
sigma ``blur_sigma`` = 1.0, then bicubic downsampling by ``scale``, antialiased as MATLAB's
``imresize``, which makes the LR images of the SR benchmarks; see :func:`degrade`) and scores the
network's upscale against the target by

- feature reconstruction at ``content_layers`` (relu2_2 of a frozen VGG-16 in the paper),
  normalised like every content loss of the project (:class:`~impasto.losses.PerceptualLoss`);
- optionally the pixel mean squared error (``pixel_weight``, 0 by default: the paper's "perceptual"
  model) and total variation (``tv_weight``).

The network is built with a linear last upsampling stage and an output convolution scaled by
1/sqrt(fan-in) (``--sr-legacy-tail``: the original output end, which Adam stalls; the measurements
are in :mod:`impasto.nets.superres`).

Everything else is shared with the other recipes: the run folder checks
(:func:`~.ff_train.check_run_folder`), the photo stream (:class:`~impasto.data.folder.PhotoFolder`,
a pure function of the step), the generic loop (Adam, schedule, exact checkpoints and bit-identical
resume, ``log.jsonl`` for ``impasto monitor``, previews) and the model file
(:func:`~.ff_model.model_payload`), whose ``net_config`` records ``scale``; ``impasto export``
and ``impasto upscale`` read it from there.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch
import torch.nn.functional as F

from ..config import check_rules, config_from_mapping, config_to_dict
from ..errors import ConfigError, ImageError, UsageError
from ..nets.registry import ARCHS, build_net
from ..nets.superres import equalized_tail_scale
from ..progress import Event, MessageEvent, SnapshotEvent, emit
from ..provenance import versions, write_json
from .ff_model import CONFIG_NAME, MODEL_NAME, PREVIEW_DIR, model_payload, save_model
from .ff_train import TrainConfig, _h, _layers_arg, _warn, check_run_folder, check_same_settings, loop_options, parse_layers, training_device

__all__ = ["SuperResTrainConfig", "SuperResObjective", "check_same_net", "degrade", "gaussian_kernel", "psnr", "train_superres"]


@dataclass(frozen=True)
class SuperResTrainConfig(TrainConfig):
    """Every knob of super-resolution training. Defaults follow Johnson et al. (2016, sec. 4.2); the
    fields not redeclared here mean what they mean in :class:`~impasto.methods.ff_train.TrainConfig`
    (the style options are unused)."""

    PRECISION_KEY = "train-superres"

    arch: str = field(default="superres", metadata=_h("generator: " + "; ".join(f"{k}: {v}" for k, v in ARCHS.items()), choices=tuple(ARCHS)))
    scale: int = field(default=4, metadata=_h("upscaling factor (x4 or x8 in the paper; recorded in the model file)", choices=(2, 4, 8)))
    content_layers: str = field(default="relu2_2", metadata=_h("feature reconstruction layers, NAME[:WEIGHT],... (Johnson et al.: relu2_2)", metavar="LAYERS", parse=_layers_arg))
    style_weight: float = field(default=0.0, metadata=_h("weight of the style loss (unused by super-resolution: keep 0)"))
    tv_weight: float = field(default=0.0, metadata=_h("weight of the total-variation smoothness loss"))
    pixel_weight: float = field(default=0.0, metadata=_h("weight of the pixel mean squared error against the high-resolution crop (0: the paper's perceptual-only loss)"))
    blur_sigma: float = field(default=1.0, metadata=_h("Gaussian blur (sigma, in high-resolution px) before the bicubic downsampling that makes the low-resolution input"))
    train_size: int = field(default=288, metadata=_h("high-resolution crop side in px (Johnson et al.: 288; a multiple of --scale)"))
    steps: int = field(default=200000, metadata=_h("training steps (Johnson et al.: 200000 with batches of 4)", short="-n"))
    sr_channels: int = field(default=64, metadata=_h("superres: width of the network (Johnson et al.: 64)"))
    sr_blocks: int = field(default=4, metadata=_h("superres: residual blocks (Johnson et al.: 4)"))
    residual: bool = field(default=True, metadata=_h("superres: predict the detail on top of the bicubic upscale (global skip); --no-residual: the paper's plain network"))
    sr_legacy_tail: bool = field(default=False, metadata=_h("superres: the original output end (a ReLU before the output convolution, unscaled), which short trainings leave at bicubic; default: a linear last stage and an output convolution scaled by 1/sqrt(fan-in)"))

    def __post_init__(self) -> None:
        super().__post_init__()
        check_rules([
            (self.scale in (2, 4, 8), "scale", f"scale must be 2, 4 or 8, got {self.scale}"),
            (self.train_size % self.scale == 0, ("train_size", "scale"), f"train_size ({self.train_size}) must be a multiple of scale ({self.scale})"),
            (self.train_size // max(self.scale, 1) >= 8, ("train_size", "scale"), f"train_size / scale must be >= 8 px (the low-resolution crop), got {self.train_size}/{self.scale}"),
            (self.pixel_weight >= 0, "pixel_weight", f"pixel_weight must be >= 0, got {self.pixel_weight}"),
            (self.blur_sigma >= 0 and math.isfinite(self.blur_sigma), "blur_sigma", f"blur_sigma must be >= 0, got {self.blur_sigma}"),
            (self.sr_channels >= 1, "sr_channels", f"sr_channels must be >= 1, got {self.sr_channels}"),
            (self.sr_blocks >= 0, "sr_blocks", f"sr_blocks must be >= 0, got {self.sr_blocks}"),
            (not self.texture, "texture", "super-resolution upscales photos: texture must be off"),
            (self.content_weight > 0 or self.pixel_weight > 0, ("content_weight", "pixel_weight"), "give a loss: content_weight or pixel_weight must be > 0"),
        ])

    def net_overrides(self) -> dict[str, Any]:
        """The network configuration these options choose."""
        legacy = self.sr_legacy_tail
        tail_scale = 1.0 if legacy else equalized_tail_scale(self.sr_channels)
        return {"scale": self.scale, "channels": self.sr_channels, "n_res": self.sr_blocks, "residual": self.residual, "last_relu": legacy, "tail_scale": tail_scale}


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """The normalised 1-D Gaussian of ``sigma`` px, radius ``ceil(3 sigma)``."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def degrade(hr: torch.Tensor, scale: int, sigma: float = 1.0, *, antialias: bool = True) -> torch.Tensor:
    """The low-resolution input of a high-resolution batch (sides multiples of ``scale``): Gaussian
    blur (reflection at the borders; none for sigma 0), then bicubic downsampling, clamped to [0, 1].

    ``antialias`` (default): the bicubic kernel is stretched by ``scale`` (MATLAB ``imresize``,
    which makes the low-resolution images of the SR benchmarks, and what a camera or a resizer
    gives). Without it the downsampling reads only the 4 x 4 high-resolution pixels around each
    sample: with sigma 1 at x4 or x8 the input aliases, and the short training of
    tests/superres/test_superres_training.py fitted its training crops (about +0.1 dB over
    bicubic) but gained nothing on held-out ones (-0.02 to +0.00 dB, seeds 0-2; antialiased:
    +0.20 to +0.24 dB).
    """
    x = hr
    if sigma > 0:
        k = gaussian_kernel(sigma).to(dtype=hr.dtype, device=hr.device)
        r = k.numel() // 2
        c = hr.shape[1]
        x = F.pad(x, (r, r, r, r), mode="reflect" if min(hr.shape[-2:]) > r else "replicate")
        x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        x = F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    h, w = hr.shape[-2:]
    return F.interpolate(x, size=(h // scale, w // scale), mode="bicubic", align_corners=False, antialias=antialias).clamp(0.0, 1.0)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of two images in [0, 1]."""
    mse = float(F.mse_loss(a.float(), b.float()))
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


class SuperResObjective:
    """One step's loss for a (low, high) batch: the perceptual loss of ``net(low)`` against ``high``
    (its features at the content layers, plus TV), plus ``pixel_weight`` x the pixel MSE."""

    def __init__(self, loss: Any, pixel_weight: float) -> None:
        self.loss, self.pixel_weight = loss, float(pixel_weight)

    def __call__(self, net: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, Mapping[str, torch.Tensor]]:
        low, high = batch
        output = net(low)
        total, terms = self.loss(output, content=high)
        terms = dict(terms)
        pixel = F.mse_loss(output.float(), high.float())
        terms["pixel"] = pixel.detach()
        if self.pixel_weight > 0:
            total = total + self.pixel_weight * pixel
        return total, terms


def check_same_net(ckpt: Mapping[str, Any], net_config: Mapping[str, Any], out: Path) -> None:
    """Refuse to resume a checkpoint whose network differs from ``net_config`` (a checkpoint from
    before the output-end options has the original end: ``last_relu`` True, ``tail_scale`` 1)."""
    saved = {"last_relu": True, "tail_scale": 1.0, **dict(ckpt.get("net_config") or {})}
    diff = sorted(k for k in net_config if k in saved and saved[k] != net_config[k])
    if diff:
        details = ", ".join(f"{k}: {saved[k]!r} -> {net_config[k]!r}" for k in diff[:4])
        raise ConfigError(f"{out}: the checkpoint's network differs ({details}); resume with the settings it was trained with (--sr-legacy-tail for the original output end)", params="sr_legacy_tail")


def train_superres(
    config: SuperResTrainConfig | None,
    data_dir: str | os.PathLike[str] | None,
    style_dir: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] = "model",
    *,
    callback: Callable[[Event], None] | None = None,
    resume: bool = False,
    **overrides: Any,
) -> Path:
    """Train a super-resolution network on the photos in ``data_dir``; returns ``OUT_DIR/model.pt``.

    ``style_dir`` must be None (the signature is that of every arch recipe). ``OUT_DIR`` receives
    what :func:`impasto.methods.ff_train.train` writes (``checkpoint.pt``, ``config.json``,
    ``log.jsonl`` with ``content``/``pixel``/``tv``/``total``, ``previews/step_N/NN.png``: the
    network's upscale of the first ``preview_count`` centre crops, ``model.pt``). ``resume=True``
    continues from ``checkpoint.pt`` bit for bit. Keyword ``overrides`` replace fields of ``config``.
    """
    from ..data.folder import PhotoFolder, default_workers, make_loader
    from ..features import build_encoder
    from ..image.io import save_image
    from ..losses import PerceptualLoss
    from ..optim.train_loop import LoopHooks, train_loop

    config = config or SuperResTrainConfig()
    if not isinstance(config, SuperResTrainConfig):
        raise UsageError(f"config must be a SuperResTrainConfig (its defaults are the paper's), got {type(config).__name__}", params="config")
    if overrides:
        config = config_from_mapping(SuperResTrainConfig, {**config_to_dict(config), **overrides})
    if style_dir is not None:
        raise UsageError("super-resolution trains on photos only: give no paintings (style_data)", params="style_data")
    out = check_run_folder(out_dir, resume=resume)
    if data_dir is None:
        raise UsageError("give a folder of training photos (data_dir)", params="data_dir")
    folder = PhotoFolder(data_dir, config.train_size, crop="random", seed=config.seed)
    if folder.skipped:
        _warn(callback, f"{data_dir}: skipped {folder.skipped} unreadable file(s) (e.g. {folder.skipped_files[0].name})")
    out.mkdir(parents=True, exist_ok=True)
    device, precision = training_device(config, callback)
    memory_format = precision.memory_format

    # ---- loss network, loss and generator ------------------------------------------------
    content_layers = parse_layers(config.content_layers)
    encoder = build_encoder(config.encoder, weights=config.weights, layers=list(content_layers), pooling=config.pooling, device=device, preprocessing=config.preprocessing)
    if getattr(encoder.weights, "warning", None):
        _warn(callback, str(encoder.weights.warning))
    if precision.channels_last:
        encoder.to(memory_format=torch.channels_last)
    precision.prepare_encoder(encoder)
    encoder_info = {"name": config.encoder, "weights": getattr(encoder.weights, "name", config.weights), "kind": getattr(encoder.weights, "kind", None), "sha256": getattr(encoder.weights, "sha256", None)}
    loss_fn = PerceptualLoss(encoder, content_layers=content_layers, style_layers=[], content_weight=config.content_weight, style_weight=0.0, tv_weight=config.tv_weight, seed=config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net, net_config = build_net(config.arch, overrides=config.net_overrides())
    if int(getattr(net, "scale", 0)) != config.scale:
        raise ConfigError(f"arch {config.arch} is not a super-resolution network; use arch superres", params="arch")
    objective = SuperResObjective(loss_fn, config.pixel_weight)

    resolved = {
        "config": config_to_dict(config),
        "style": {"name": f"superres x{config.scale}", "sha256": None},
        "data": str(Path(data_dir).resolve()),
        "net": {"arch": config.arch, "config": net_config},
        "encoder": encoder_info,
        "device": str(device),
        "amp": precision.amp_name,
        "loss_network_precision": precision.loss_network,
        "threads": torch.get_num_threads(),
        "versions": versions(),
    }

    # ---- previews: the first photos' centre crops, upscaled from their degraded copies -----
    previews: list[torch.Tensor] = []
    if config.preview_every and config.preview_count:
        for i in range(len(folder)):
            if len(previews) >= config.preview_count:
                break
            try:
                previews.append(folder.load(i, crop="center"))
            except (ImageError, OSError, ValueError):
                continue

    def write_previews(step: int) -> None:
        if not previews:
            return
        folder_out = out / PREVIEW_DIR / f"step_{step:06d}"
        folder_out.mkdir(parents=True, exist_ok=True)
        was_training = net.training
        net.eval()
        first = None
        with torch.no_grad():
            for i, hr in enumerate(previews):
                low = degrade(hr[None].to(device), config.scale, config.blur_sigma)
                y = net(low.to(memory_format=memory_format)).float().cpu().contiguous()
                save_image(folder_out / f"{i:02d}.png", y, metadata={"step": step, "psnr": round(psnr(y, hr[None]), 3)})
                first = y if first is None else first
        net.train(was_training)
        if first is not None:
            emit(callback, SnapshotEvent(step=step, image=first))

    # ---- data: (low, high) pairs, a pure function of the step ------------------------------
    failed_seen: set[int] = set()

    def pairs(start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        workers = default_workers() if config.workers < 0 else config.workers
        batches = iter(make_loader(folder, config.batch_size, seed=config.seed, start=start * config.batch_size, workers=workers, pin_memory=device.type == "cuda"))

        def stream() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            for high, failed in batches:
                for i in [i for i in failed if i not in failed_seen]:
                    failed_seen.add(i)
                    _warn(callback, f"skipped unreadable photo {folder.files[i]}")
                high = high.to(device=device, non_blocking=True)
                low = degrade(high, config.scale, config.blur_sigma)
                yield low.contiguous(memory_format=memory_format), high.contiguous(memory_format=memory_format)

        return stream()

    def check_resume(ckpt: Mapping[str, Any]) -> None:
        check_same_settings(ckpt, config, out)
        check_same_net(ckpt, net_config, out)

    hooks = LoopHooks(
        check_resume=check_resume,
        checkpoint_extra=lambda: {
            "train_config": config_to_dict(config),
            "net_config": net_config,
            "style_name": resolved["style"]["name"],
            "style_sha256": None,
            "failed": sorted(failed_seen),
        },
        restore_extra=lambda ckpt: failed_seen.update(int(i) for i in ckpt.get("failed", [])),
        saved=lambda step: write_json(out / CONFIG_NAME, {**resolved, "step": step}, sort_keys=True),
        preview=write_previews,
        log_extra=lambda: {"skipped": folder.scan_skipped + len(failed_seen)},
    )
    train_loop(
        net,
        objective,
        loop_options(config),
        precision=precision,
        run_dir=out,
        data=pairs,
        resume=resume,
        hooks=hooks,
        callback=callback,
        description=f"training {config.arch} x{config.scale}",
        resume_how=f"--resume -o {out}",
    )
    net.eval()
    payload = model_payload(net, config.arch, net_config, config, resolved["style"], config.steps, encoder_info)
    payload["scale"] = config.scale
    model_path = save_model(out / MODEL_NAME, payload)
    emit(callback, MessageEvent(f"wrote {model_path} ({config.steps} steps)"))
    return model_path
