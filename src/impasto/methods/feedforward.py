"""Feed-forward stylisation: train a network per style, apply it fast at any size, export it.

Training (Johnson, Alahi & Fei-Fei 2016; Ulyanov et al. 2016): a generator (``johnson``,
``johnson-small`` or ``texture``) is trained with Adam to minimise the perceptual loss of its
output against the input photo (content) and one style image (style), on a folder of photos.
``texture=True`` trains a texture network that synthesises the style's texture from noise alone.

Applying: a self-describing model file (``model.pt``) is loaded without any flags; images (or
folders) are stylised one by one, whole or tile by tile (see :mod:`.ff_tiling`): the
whole image's instance-norm statistics are computed exactly in streaming passes over the tiles,
so tiled output equals the whole-image output, with PyTorch and with ONNX Runtime.

Exporting: ONNX (dynamic height and width, opset 17) or TorchScript; ``runtime="onnx"`` applies
an exported model with ONNX Runtime on the CPU.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from .. import __version__
from ..atomic import atomic_path
from ..config import config_from_mapping, config_to_dict
from ..errors import ConfigError, ImageError, Interrupted, ModelFileError, OutputError, RuntimeFailure, UsageError
from ..losses import STYLE_LOSSES
from ..nets.registry import ARCHS, build_net, net_from_config
from ..optim.training import SCHEDULES
from ..provenance import sha256_file, versions, write_json
from ..progress import Event, MessageEvent, SnapshotEvent, StageEvent, StepEvent, emit
from .ff_tiling import OnnxRunner, TorchRunner, auto_tile, cells, stylise_tensor

__all__ = [
    "TrainConfig",
    "ApplyConfig",
    "ApplyResult",
    "LoadedModel",
    "MODEL_FORMAT",
    "train",
    "apply_model",
    "export_model",
    "load_model",
    "stylise_tensor",
    "TorchRunner",
    "OnnxRunner",
    "auto_tile",
    "parse_layers",
]

MODEL_FORMAT = "impasto.feedforward"
MODEL_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.json"
MODEL_NAME = "model.pt"
LOG_NAME = "log.jsonl"
PREVIEW_DIR = "previews"
COLOR_MODES = ("none", "luminance", "histogram")
RUNTIMES = ("auto", "torch", "onnx")
OUTPUT_FORMATS = ("png", "jpg", "webp", "tif")
EXPORT_FORMATS = ("onnx", "torchscript")
DEFAULT_NOTICE = (
    "Trained with impasto. The model reproduces the style of its style image; respect that "
    "image's licence and its author's rights when you publish results."
)

#: training options that may change when a run is resumed (the rest must match the checkpoint)
RESUMABLE_CHANGES = ("steps", "checkpoint_every", "log_every", "preview_every", "preview_count", "workers", "device", "licence")


def parse_layers(spec: str | Sequence[str] | Mapping[str, float]) -> dict[str, float]:
    """``"relu1_1:0.2,relu2_1"`` -> ``{"relu1_1": 0.2, "relu2_1": 1.0}`` (the syntax of every method)."""
    from .gatys import parse_layers as _parse

    return _parse(dict(spec) if isinstance(spec, Mapping) else spec)


def _layers_arg(text: str) -> str:
    """Validate a layer list at parse time (keeps it as text so configs stay JSON-friendly)."""
    parse_layers(text)
    return text


def _h(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of feed-forward training. Defaults follow Johnson et al. (2016)."""

    arch: str = field(default="johnson", metadata=_h("generator: " + "; ".join(f"{k}: {v}" for k, v in ARCHS.items()), choices=tuple(ARCHS)))
    texture: bool = field(default=False, metadata=_h("train a texture synthesiser (noise only, no photos; needs --arch texture)"))
    encoder: str = field(default="vgg16", metadata=_h("loss network: vgg16 (Johnson et al.), vgg19, resnet50, inception_v3, tiny_vgg"))
    weights: str = field(default="auto", metadata=_h("loss-network weights: auto, random, a name such as vgg16.torchvision, or a .pth file", metavar="auto|random|NAME|FILE"))
    preprocessing: str = field(default="auto", metadata=_h("input convention of a --weights file: auto (from its record; a file matching none needs one of the others), caffe or torchvision", choices=("auto", "caffe", "torchvision")))
    pooling: str = field(default="max", metadata=_h("pooling in VGG", choices=("max", "avg")))
    content_layers: str = field(default="relu2_2", metadata=_h("content layers, NAME[:WEIGHT],...", metavar="LAYERS", parse=_layers_arg))
    style_layers: str = field(default="relu1_2,relu2_2,relu3_3,relu4_3", metadata=_h("style layers, NAME[:WEIGHT],... e.g. relu1_2:0.5,relu2_2,relu3_3,relu4_3", metavar="LAYERS", parse=_layers_arg))
    content_weight: float = field(default=1.0, metadata=_h("weight of the content loss (per-layer normalised)"))
    style_weight: float = field(default=10.0, metadata=_h("weight of the style loss (per-layer normalised)"))
    tv_weight: float = field(default=1.0, metadata=_h("weight of the total-variation smoothness loss"))
    style_loss: str = field(default="gram", metadata=_h("style statistic", choices=STYLE_LOSSES))
    style_edge: int = field(default=512, metadata=_h("longest side of the style image when its statistics are computed (larger = bigger brush strokes); 0 = as is"))
    train_size: int = field(default=256, metadata=_h("photos are resized (shortest side) and cropped to this square size"))
    batch_size: int = field(default=4, metadata=_h("photos per step"))
    steps: int = field(default=40000, metadata=_h("training steps (Johnson et al.: 40000, about two epochs of MS-COCO)", short="-n"))
    lr: float = field(default=1e-3, metadata=_h("Adam learning rate"))
    lr_schedule: str = field(default="cosine", metadata=_h("learning-rate schedule: constant, cosine (down to 1%% at the end), step (x0.1 after 2/3)", choices=SCHEDULES))
    seed: int = field(default=0, metadata=_h("random seed (network init, data order, crops, noise)"))
    checkpoint_every: int = field(default=1000, metadata=_h("save a resumable checkpoint every N steps (0 = only at the end)", metavar="N"))
    log_every: int = field(default=50, metadata=_h("append the mean losses to log.jsonl every N steps", metavar="N"))
    preview_every: int = field(default=500, metadata=_h("stylise the preview photos every N steps into previews/step_N/ (0 = never)", metavar="N"))
    preview_count: int = field(default=4, metadata=_h("how many photos (the first in sorted order) to preview"))
    workers: int = field(default=-1, metadata=_h("background photo-loading processes; -1 = min(2, CPUs); 0 = load in the main process"))
    device: str = field(default="auto", metadata=_h("compute device: auto, cpu, cuda, cuda:N, mps"))
    amp: bool = field(default=False, metadata=_h("mixed precision (CUDA only: bfloat16 where supported, else float16 with loss scaling)"))
    channels_last: bool = field(default=False, metadata=_h("channels-last memory format (faster convolutions on CUDA tensor cores)"))
    licence: str = field(default="", metadata=_h("licence or notice stored in the model file (e.g. the style image's licence and author)", metavar="TEXT"))

    def __post_init__(self) -> None:
        checks = [
            (self.content_weight >= 0, f"--content-weight must be >= 0, got {self.content_weight}"),
            (self.style_weight >= 0, f"--style-weight must be >= 0, got {self.style_weight}"),
            (self.tv_weight >= 0, f"--tv-weight must be >= 0, got {self.tv_weight}"),
            (self.train_size >= 16, f"--train-size must be >= 16 px, got {self.train_size}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.steps >= 1, f"--steps must be >= 1, got {self.steps}"),
            (self.lr > 0 and math.isfinite(self.lr), f"--lr must be > 0, got {self.lr}"),
            (self.style_edge >= 0, f"--style-edge must be >= 0, got {self.style_edge}"),
            (self.checkpoint_every >= 0, f"--checkpoint-every must be >= 0, got {self.checkpoint_every}"),
            (self.log_every >= 1, f"--log-every must be >= 1, got {self.log_every}"),
            (self.preview_every >= 0, f"--preview-every must be >= 0, got {self.preview_every}"),
            (self.preview_count >= 0, f"--preview-count must be >= 0, got {self.preview_count}"),
            (self.workers >= -1, f"--workers must be >= -1, got {self.workers}"),
            (self.arch in ARCHS, f"--arch {self.arch!r}: choose from {', '.join(ARCHS)}"),
            (self.lr_schedule in SCHEDULES, f"--lr-schedule {self.lr_schedule!r}: choose from {', '.join(SCHEDULES)}"),
            (self.style_loss in STYLE_LOSSES, f"--style-loss {self.style_loss!r}: choose from {', '.join(STYLE_LOSSES)}"),
            (not self.texture or self.arch == "texture", f"--texture synthesises from noise and needs --arch texture (not {self.arch})"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        parse_layers(self.content_layers)
        if not parse_layers(self.style_layers):
            raise ConfigError("--style-layers: give at least one layer")


@dataclass(frozen=True)
class ApplyConfig:
    """Options of ``impasto apply``."""

    edge: int = field(default=0, metadata=_h("resize so the longest side is this many px before stylising (0 = keep the size)"))
    strength: float = field(default=1.0, metadata=_h("blend with the photo: 0 = the photo, 1 = fully stylised"))
    preserve_colors: str = field(default="none", metadata=_h("keep the photo's colours: luminance (stylised luminance + photo chroma) or histogram (match the result's colour statistics to the photo)", choices=COLOR_MODES))
    tile: int = field(default=0, metadata=_h("tile side in px (the network's memory stays constant); 0 = automatic: images up to --whole-pixels run whole, bigger ones in tiles of at most --max-tile"))
    whole_pixels: int = field(default=1024 * 1024, metadata=_h("automatic tiling: images with at most this many pixels run whole (about 0.9 GB for johnson at 1024x1024)"))
    max_tile: int = field(default=768, metadata=_h("automatic tiling: largest tile side in px"))
    overlap: int = field(default=64, metadata=_h("automatic tile size and --stats-edge mode: overlap between tiles in px (exact tiles always extend the network's receptive radius beyond their core)"))
    stats_edge: int = field(default=0, metadata=_h("tiled mode: 0 = exact whole-image instance-norm statistics (streamed over the tiles; tiles equal the whole-image result); N = approximate them on a copy downscaled to N px (faster; torch runtime only)"))
    runtime: str = field(default="auto", metadata=_h("inference engine: torch, onnx (ONNX Runtime on the CPU), auto (onnx for .onnx files, else torch)", choices=RUNTIMES))
    device: str = field(default="cpu", metadata=_h("torch runtime device: cpu, auto, cuda, cuda:N, mps"))
    channels_last: bool = field(default=False, metadata=_h("torch runtime: channels-last memory format (try it on GPUs; slower on CPUs here)"))
    seed: int = field(default=0, metadata=_h("noise seed for texture networks (different seeds, different textures)"))
    size: str = field(default="512x512", metadata=_h("texture synthesis (--texture models, no input images): output size HxW", metavar="HxW"))
    suffix: str = field(default="", metadata=_h("added to each output name before the extension, e.g. _styled"))
    format: str = field(default="png", metadata=_h("output format", choices=OUTPUT_FORMATS))
    bit_depth: int = field(default=8, metadata=_h("bits per channel (16 for png/tif)", choices=(8, 16)))
    max_pixels: int = field(default=100_000_000, metadata=_h("refuse input images with more pixels than this (decompression-bomb guard)"))

    def __post_init__(self) -> None:
        checks = [
            (self.edge >= 0, f"--edge must be >= 0, got {self.edge}"),
            (0.0 <= self.strength <= 1.0, f"--strength must be in [0, 1], got {self.strength}"),
            (self.tile == 0 or self.tile >= 16, f"--tile must be 0 (automatic) or >= 16 px, got {self.tile}"),
            (self.max_tile >= 64, f"--max-tile must be >= 64 px, got {self.max_tile}"),
            (self.whole_pixels >= 0, f"--whole-pixels must be >= 0, got {self.whole_pixels}"),
            (self.tile or self.overlap < self.max_tile, f"--overlap ({self.overlap}) must be smaller than --max-tile ({self.max_tile})"),
            (self.overlap >= 0, f"--overlap must be >= 0, got {self.overlap}"),
            (self.tile == 0 or self.overlap < self.tile, f"--overlap ({self.overlap}) must be smaller than --tile ({self.tile})"),
            (self.stats_edge == 0 or self.stats_edge >= 16, f"--stats-edge must be 0 (exact) or >= 16 px, got {self.stats_edge}"),
            (self.preserve_colors in COLOR_MODES, f"--preserve-colors {self.preserve_colors!r}: choose from {', '.join(COLOR_MODES)}"),
            (self.runtime in RUNTIMES, f"--runtime {self.runtime!r}: choose from {', '.join(RUNTIMES)}"),
            (self.format in OUTPUT_FORMATS, f"--format {self.format!r}: choose from {', '.join(OUTPUT_FORMATS)}"),
            (self.bit_depth in (8, 16), f"--bit-depth must be 8 or 16, got {self.bit_depth}"),
            (self.bit_depth == 8 or self.format in ("png", "tif"), "--bit-depth 16 needs --format png or tif"),
            ("/" not in self.suffix and "\\" not in self.suffix, f"--suffix {self.suffix!r} must not contain a path separator"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        parse_size(self.size)


def parse_size(text: str) -> tuple[int, int]:
    """``"512x768"`` (height x width) or ``"512"`` (square) -> (h, w)."""
    parts = str(text).lower().replace("×", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ConfigError(f"--size {text!r}: expected HxW in pixels, e.g. 512x768") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 16:
        raise ConfigError(f"--size {text!r}: expected HxW with both sides >= 16 px")
    return values[0], values[1]


# ------------------------------------------------------------------------------------------
# helpers


def _emit_warning(callback: Callable[[Event], None] | None, text: str) -> None:
    emit(callback, MessageEvent(text, level="warning"))


# ------------------------------------------------------------------------------------------
# model files


@dataclass
class LoadedModel:
    """A trained generator and its description (everything in the model file but the weights)."""

    net: torch.nn.Module
    meta: dict[str, Any]
    path: Path

    @property
    def arch(self) -> str:
        return str(self.meta["arch"])

    @property
    def texture(self) -> bool:
        return self.arch == "texture" and not bool(self.meta["net_config"].get("content", True))


def _model_payload(net: torch.nn.Module, arch: str, net_config: Mapping[str, Any], config: TrainConfig, style: Mapping[str, Any], steps: int, encoder_info: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "arch": arch,
        "net_config": dict(net_config),
        "train_config": config_to_dict(config),
        "style_name": style["name"],
        "style_sha256": style["sha256"],
        "steps": int(steps),
        "licence": config.licence,
        "notice": DEFAULT_NOTICE,
        "encoder": dict(encoder_info),
        "impasto_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "state_dict": {k: v.detach().to("cpu", memory_format=torch.contiguous_format).clone() for k, v in net.state_dict().items()},
    }


def save_model(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> Path:
    """Write a model file atomically."""
    with atomic_path(path) as tmp:
        torch.save(dict(payload), tmp)
    return Path(path)


def load_model(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a model file written by :func:`train` (``torch.load(weights_only=True)``).

    Anything wrong (missing, not a torch file, truncated, not an impasto model, unknown
    architecture, weights that do not fit) raises ModelFileError with a one-line message.
    """
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"{p}: no such model file")
    if p.is_dir():
        if (p / MODEL_NAME).is_file():
            p = p / MODEL_NAME
        else:
            raise ModelFileError(f"{p}: is a folder without a {MODEL_NAME} (give the model file or the training folder)")
    if p.suffix.lower() == ".onnx":
        raise ModelFileError(f"{p}: an ONNX model; apply it with --runtime onnx")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad model file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{p}: not a readable impasto model file ({reason[:160]})") from None
    if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
        what = "a training checkpoint (use the model.pt written at the end, or --resume to continue training)" if isinstance(data, dict) and data.get("format") == "impasto.checkpoint" else "not an impasto feed-forward model"
        raise ModelFileError(f"{p}: {what}")
    version = data.get("version")
    if not isinstance(version, int) or version > MODEL_VERSION:
        raise ModelFileError(f"{p}: model format version {version!r} is newer than this impasto understands ({MODEL_VERSION}); upgrade impasto")
    for key in ("arch", "net_config", "state_dict"):
        if key not in data:
            raise ModelFileError(f"{p}: model file lacks {key!r}")
    net = net_from_config(str(data["arch"]), dict(data["net_config"]))
    try:
        net.load_state_dict(data["state_dict"], strict=True)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{p}: weights do not fit a {data['arch']} network ({str(exc).splitlines()[0][:160]})") from None
    net.eval().requires_grad_(False)
    from ..features import resolve_device

    net.to(resolve_device(device))
    meta = {k: v for k, v in data.items() if k != "state_dict"}
    return LoadedModel(net, meta, p)


# ------------------------------------------------------------------------------------------
# training


def _init_net(arch: str, texture: bool, seed: int) -> tuple[torch.nn.Module, dict[str, Any]]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_net(arch, texture=texture)


class _Window:
    """Sums of the loss terms since the last log line."""

    def __init__(self, state: Mapping[str, Any] | None = None) -> None:
        self.sums: dict[str, float] = dict(state["sums"]) if state else {}
        self.count: int = int(state["count"]) if state else 0

    def add(self, losses: Mapping[str, float]) -> None:
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.count += 1

    def mean(self) -> dict[str, float]:
        return {k: v / max(1, self.count) for k, v in self.sums.items()}

    def reset(self) -> None:
        self.sums, self.count = {}, 0

    def state(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "count": self.count}


def train(
    config: TrainConfig | None = None,
    style_path: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] = "model",
    *,
    callback: Callable[[Event], None] | None = None,
    resume: bool = False,
    **overrides: Any,
) -> Path:
    """Train a feed-forward network for one style; returns the path of ``OUT_DIR/model.pt``.

    ``OUT_DIR`` receives ``checkpoint.pt`` + ``config.json`` (every ``checkpoint_every`` steps),
    ``log.jsonl`` (mean losses every ``log_every`` steps), ``previews/step_NNNNNN/*.png`` and, at
    the end, ``model.pt``. ``resume=True`` continues from ``checkpoint.pt`` exactly (same data
    order, crops, noise and random states; bit-identical on the CPU with the same thread count).
    Ctrl-C saves a checkpoint of the last finished step and raises :class:`Interrupted`.
    Keyword ``overrides`` replace fields of ``config``.
    """
    from ..data.folder import PhotoFolder, default_workers, make_loader
    from ..features import build_encoder, resolve_device
    from ..image.io import load_image, save_image
    from ..image.resize import resize_to_edge
    from ..losses import PerceptualLoss
    from ..optim.training import LossLog, TensorBoardLog, capture_rng, deferred_interrupt, load_checkpoint, make_optimizer, make_scheduler, restore_rng, save_checkpoint

    config = config or TrainConfig()
    if overrides:
        config = config_from_mapping(TrainConfig, {**config_to_dict(config), **overrides})
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT_NAME
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder (give a folder for the model, checkpoints and logs)")
    if not resume and ckpt_path.exists():
        raise UsageError(f"{out}: already holds a training run ({CHECKPOINT_NAME}); continue it with --resume or choose another folder")
    if resume and not ckpt_path.exists():
        raise UsageError(f"{out}: nothing to resume (no {CHECKPOINT_NAME})")
    if style_path is None:
        raise UsageError("give the style image (--style STYLE.jpg)")
    if not config.texture and data_dir is None:
        raise UsageError("give a folder of training photos (--data PHOTOS_DIR), or --texture for texture synthesis")

    # ---- inputs ------------------------------------------------------------------------
    style_loaded = load_image(style_path)
    style_img = style_loaded.image
    if config.style_edge and max(style_img.shape[-2:]) != config.style_edge:
        style_img = resize_to_edge(style_img, config.style_edge)
    style_info = {"name": Path(style_path).name, "path": str(Path(style_path).resolve()), "sha256": sha256_file(style_path)}
    folder = None
    if not config.texture:
        folder = PhotoFolder(data_dir, config.train_size, crop="random", seed=config.seed)  # type: ignore[arg-type]
        if folder.skipped:
            _emit_warning(callback, f"{data_dir}: skipped {folder.skipped} unreadable file(s) (e.g. {folder.skipped_files[0].name})")
    out.mkdir(parents=True, exist_ok=True)

    # ---- device and precision ------------------------------------------------------------
    device = resolve_device(config.device)
    amp_dtype: torch.dtype | None = None
    if config.amp:
        if device.type == "cuda":
            amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            _emit_warning(callback, f"--amp works on CUDA only; training in float32 on {device.type}")
    channels_last = config.channels_last
    if channels_last and device.type != "cuda":
        _emit_warning(callback, f"--channels-last is for CUDA; ignored on {device.type}")
        channels_last = False
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    # ---- loss network, loss and generator ------------------------------------------------
    content_layers, style_layers = parse_layers(config.content_layers), parse_layers(config.style_layers)
    encoder = build_encoder(config.encoder, weights=config.weights, layers=list(dict.fromkeys([*content_layers, *style_layers])), pooling=config.pooling, device=device, preprocessing=config.preprocessing)
    if getattr(encoder.weights, "warning", None):
        _emit_warning(callback, str(encoder.weights.warning))
    if channels_last:
        encoder.to(memory_format=torch.channels_last)
    encoder_info = {"name": config.encoder, "weights": getattr(encoder.weights, "name", config.weights), "kind": getattr(encoder.weights, "kind", None), "sha256": getattr(encoder.weights, "sha256", None)}
    loss_fn = PerceptualLoss(
        encoder,
        content_layers=content_layers,
        style_layers=style_layers,
        content_weight=0.0 if config.texture else config.content_weight,
        style_weight=config.style_weight,
        tv_weight=config.tv_weight,
        style_loss=config.style_loss,
        seed=config.seed,
    )
    loss_fn.set_style([style_img.to(device)])
    net, net_config = _init_net(config.arch, config.texture, config.seed)
    net.to(device=device, memory_format=memory_format).train()
    optimizer = make_optimizer(net.parameters(), config.lr)
    scheduler = make_scheduler(optimizer, config.lr_schedule, config.steps)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    noise_gen = torch.Generator().manual_seed(config.seed * 7 + 1)  # texture-network noise seeds

    # ---- state ---------------------------------------------------------------------------
    log = LossLog(out / LOG_NAME)
    start = 0
    elapsed_before = 0.0
    window = _Window()
    failed_seen: set[int] = set()
    if resume:
        ckpt = load_checkpoint(ckpt_path, map_location=device)
        saved = dict(ckpt.get("train_config", {}))
        now = config_to_dict(config)
        diff = sorted(k for k in now if k not in RESUMABLE_CHANGES and k in saved and saved[k] != now[k])
        if diff:
            details = ", ".join(f"{k}: {saved[k]!r} -> {now[k]!r}" for k in diff[:4])
            raise ConfigError(f"{out}: cannot resume with different settings ({details}); only {', '.join(RESUMABLE_CHANGES)} may change")
        if ckpt.get("style_sha256") not in (None, style_info["sha256"]):
            raise ConfigError(f"{out}: the checkpoint was trained on another style image ({ckpt.get('style_name')})")
        start = int(ckpt["step"])
        if start > config.steps:
            raise ConfigError(f"{out}: the checkpoint is at step {start}, beyond --steps {config.steps}")
        net.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("steps") != config.steps:  # more (or fewer) steps than planned: follow the new schedule from here
            for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
                group["lr"] = base * scheduler.lr_lambdas[0](start)
            scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]  # type: ignore[attr-defined]
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        restore_rng(ckpt["rng"], {"noise": noise_gen})
        window = _Window(ckpt.get("log_window"))
        elapsed_before = float(ckpt.get("elapsed_s", 0.0))
        failed_seen = set(int(i) for i in ckpt.get("failed", []))
        log.truncate(start)
        emit(callback, MessageEvent(f"resuming {out} at step {start} of {config.steps}"))
    else:
        log.path.unlink(missing_ok=True)

    resolved = {
        "config": config_to_dict(config),
        "style": style_info,
        "data": None if data_dir is None else str(Path(data_dir).resolve()),
        "net": {"arch": config.arch, "config": net_config},
        "encoder": encoder_info,
        "device": str(device),
        "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else None,
        "threads": torch.get_num_threads(),
        "versions": versions(),
    }

    # ---- previews ------------------------------------------------------------------------
    previews: list[torch.Tensor] = []
    if config.preview_every and config.preview_count:
        if folder is not None:
            for i in range(len(folder)):
                if len(previews) >= config.preview_count:
                    break
                try:
                    previews.append(folder.load(i, crop="center"))
                except (ImageError, OSError, ValueError):
                    continue
        else:
            previews = [torch.empty(0)] * config.preview_count

    def write_previews(step: int) -> None:
        if not previews:
            return
        folder_out = out / PREVIEW_DIR / f"step_{step:06d}"
        folder_out.mkdir(parents=True, exist_ok=True)
        was_training = net.training
        net.eval()
        first = None
        with torch.no_grad():
            for i, photo in enumerate(previews):
                if config.texture:
                    y = net(None, (config.train_size, config.train_size), seed=10_000 + i)  # fixed noise: comparable over time
                elif config.arch == "texture":
                    y = net(photo[None].to(device), seed=10_000 + i)
                else:
                    y = net(photo[None].to(device=device, memory_format=memory_format))
                y = y.float().cpu().contiguous()
                save_image(folder_out / f"{i:02d}.png", y, metadata={"step": step, "style": style_info["name"]})
                first = y if first is None else first
        net.train(was_training)
        if first is not None:
            emit(callback, SnapshotEvent(step=step, image=first))

    def checkpoint(step: int, rng: dict[str, Any] | None = None) -> None:
        """Save the state after ``step`` steps; ``rng``: the random states at that point (default: now)."""
        save_checkpoint(
            ckpt_path,
            {
                "step": step,
                "steps": config.steps,
                "model": {k: v.detach().clone() for k, v in net.state_dict().items()},
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "rng": rng if rng is not None else capture_rng({"noise": noise_gen}),
                "train_config": config_to_dict(config),
                "net_config": net_config,
                "style_name": style_info["name"],
                "style_sha256": style_info["sha256"],
                "log_window": window.state(),
                "elapsed_s": elapsed_before + (time.perf_counter() - t_start),
                "failed": sorted(failed_seen),
            },
        )
        write_json(out / CONFIG_NAME, {**resolved, "step": step}, sort_keys=True)

    # ---- data ----------------------------------------------------------------------------
    batches: Iterable[Any] | None = None
    loader = None
    if folder is not None:
        workers = default_workers() if config.workers < 0 else config.workers
        loader = make_loader(folder, config.batch_size, seed=config.seed, start=start * config.batch_size, workers=workers, pin_memory=device.type == "cuda")
        batches = iter(loader)

    tb = TensorBoardLog(out / "tensorboard")
    emit(callback, StageEvent(0, 1, f"training {config.arch}{' (texture)' if config.texture else ''}", config.steps - start))
    t_start = time.perf_counter()
    t_window = time.perf_counter()
    completed = start
    updating = False
    step_rng: dict[str, Any] | None = None  # random states at the start of an unfinished step
    size = (config.train_size, config.train_size)
    if start == 0:
        write_json(out / CONFIG_NAME, {**resolved, "step": 0}, sort_keys=True)
    try:
        for step in range(start, config.steps):
            step_rng = capture_rng({"noise": noise_gen})  # a Ctrl-C inside this step resumes from here
            content = None
            if batches is not None:
                content, failed = next(batches)  # type: ignore[call-overload]
                new = [i for i in failed if i not in failed_seen]
                if new:
                    failed_seen.update(new)
                    assert folder is not None
                    for i in new:
                        _emit_warning(callback, f"skipped unreadable photo {folder.files[i]}")
                content = content.to(device=device, memory_format=memory_format, non_blocking=True)
            seeds = torch.randint(0, 2**31 - 1, (config.batch_size,), generator=noise_gen).tolist() if config.arch == "texture" else None
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                if config.texture:
                    output = net(None, size, seed=seeds, batch=config.batch_size)
                elif config.arch == "texture":
                    output = net(content, seed=seeds)
                else:
                    output = net(content)
                loss, terms = loss_fn(output, content=content)
            optimizer.zero_grad(set_to_none=True)
            (scaler.scale(loss) if scaler is not None else loss).backward()
            with deferred_interrupt():  # Ctrl-C waits until model, optimiser, step and log agree
                updating = True
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                scheduler.step()
                updating = False
                completed, step_rng = step + 1, None
                losses = {"total": float(loss.detach())}
                losses.update({k: float(v.detach()) for k, v in terms.items()})
                if not all(math.isfinite(v) for v in losses.values()):
                    raise RuntimeFailure(f"training diverged at step {completed} (loss {losses['total']}); lower --lr or the loss weights, or resume from the last checkpoint")
                window.add(losses)
                if completed % config.log_every == 0 or completed == config.steps:
                    now_t = time.perf_counter()
                    record = {
                        "step": completed,
                        **window.mean(),
                        "lr": scheduler.get_last_lr()[0],
                        "images_per_s": window.count * config.batch_size / max(1e-9, now_t - t_window),
                        "elapsed_s": round(elapsed_before + now_t - t_start, 3),
                        "skipped": (folder.scan_skipped if folder else 0) + len(failed_seen),
                    }
                    log.append(record)
                    tb.scalars(completed, {k: v for k, v in record.items() if k not in ("step",)})
                    window.reset()
                    t_window = now_t
            if config.checkpoint_every and completed % config.checkpoint_every == 0 and completed != config.steps:
                checkpoint(completed)
            if config.preview_every and (completed % config.preview_every == 0 or completed == config.steps):
                write_previews(completed)
            emit(callback, StepEvent(step=completed - start, total=config.steps - start, losses=losses))
    except KeyboardInterrupt:
        tb.close()
        if (completed > start or step_rng is not None) and not updating:  # the state after `completed` steps, RNGs as then
            checkpoint(completed, step_rng)
            raise Interrupted(f"training interrupted at step {completed}; saved {ckpt_path} (continue with --resume -o {out})") from None
        last = f"continue from the last checkpoint with --resume -o {out}" if ckpt_path.exists() else "no checkpoint was saved"
        raise Interrupted(f"training interrupted; {last}") from None
    finally:
        tb.close()
        del batches, loader

    checkpoint(config.steps)
    net.eval()
    model_path = save_model(out / MODEL_NAME, _model_payload(net, config.arch, net_config, config, style_info, config.steps, encoder_info))
    emit(callback, MessageEvent(f"wrote {model_path} ({config.steps} steps)"))
    return model_path


# ------------------------------------------------------------------------------------------
# applying


@dataclass
class ApplyResult:
    """What ``apply_model`` wrote and which inputs failed (with the reason)."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def _expand_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[tuple[Path, Path]]:
    """(file, relative output stem) for every input file; folders are scanned recursively."""
    from ..data.folder import IMAGE_EXTENSIONS

    items: list[tuple[Path, Path]] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            files = sorted((f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS), key=lambda f: f.relative_to(p).as_posix())
            items += [(f, f.relative_to(p).with_suffix("")) for f in files]
        else:
            items.append((p, Path(p.stem)))
    return items


def _onnx_for(model_path: Path, *, callback: Callable[[Event], None] | None) -> tuple[Path, dict[str, Any], Any]:
    """An ONNX file for ``model_path`` (itself, a sibling ``.onnx``, or exported to a temp dir)."""
    if model_path.suffix.lower() == ".onnx":
        return model_path, read_onnx_meta(model_path), None
    sibling = model_path.with_suffix(".onnx")
    if sibling.is_file() and sibling.stat().st_mtime >= model_path.stat().st_mtime:
        return sibling, read_onnx_meta(sibling), None
    tmpdir = tempfile.TemporaryDirectory(prefix="impasto-onnx-")
    target = Path(tmpdir.name) / "model.onnx"
    emit(callback, MessageEvent(f"exporting {model_path} to ONNX for this run (save time next run: impasto export {model_path})"))
    export_model(model_path, target, format="onnx")
    return target, read_onnx_meta(target), tmpdir


def read_onnx_meta(path: Path) -> dict[str, Any]:
    """The impasto description stored in an exported ONNX file."""
    try:
        import onnx
    except ImportError:
        raise UsageError("reading ONNX models needs the onnx package: pip install 'impasto[onnx]'") from None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001
        raise ModelFileError(f"{path}: not a readable ONNX file ({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__})") from None
    props = {p.key: p.value for p in model.metadata_props}
    if "impasto" not in props:
        raise ModelFileError(f"{path}: an ONNX file that impasto did not export (no 'impasto' metadata)")
    try:
        meta = json.loads(props["impasto"])
    except json.JSONDecodeError:
        raise ModelFileError(f"{path}: corrupt impasto metadata in the ONNX file") from None
    if meta.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path}: not an impasto feed-forward model")
    return meta


def apply_model(
    model_path: str | os.PathLike[str],
    images: Sequence[str | os.PathLike[str]] | str | os.PathLike[str] = (),
    out_dir: str | os.PathLike[str] = "styled",
    *,
    config: ApplyConfig | None = None,
    callback: Callable[[Event], None] | None = None,
    **overrides: Any,
) -> ApplyResult:
    """Stylise ``images`` (files and/or folders) with a trained model into ``out_dir``.

    Outputs are ``OUT_DIR/<stem><suffix>.<format>`` (a folder input keeps its subfolders), with
    the input's alpha channel re-attached and the parameters stored as metadata. A texture
    model (trained with ``texture=True``) needs no images: it writes ``texture_<seed>.<format>``
    at ``config.size``. One bad input file raises its ImageError; in a batch, bad files are
    skipped, reported in ``ApplyResult.failed`` and as warnings, and the rest is written.
    Keyword ``overrides`` (edge=, strength=, tile=, runtime=, ...) replace fields of ``config``.
    """
    from ..image.color import match_color, transfer_luminance
    from ..image.io import load_image, save_image
    from ..image.resize import resize_to_edge

    config = config or ApplyConfig()
    if overrides:
        config = config_from_mapping(ApplyConfig, {**config_to_dict(config), **overrides})
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    model_file = Path(model_path)
    if model_file.is_dir() and (model_file / MODEL_NAME).is_file():
        model_file = model_file / MODEL_NAME
    runtime = config.runtime
    if runtime == "auto":
        runtime = "onnx" if model_file.suffix.lower() == ".onnx" else "torch"
    tmp_holder = None
    if runtime == "onnx":
        if not model_file.exists():
            raise ModelFileError(f"{model_file}: no such model file")
        onnx_path, meta, tmp_holder = _onnx_for(model_file, callback=callback)
        runner: Any = OnnxRunner(onnx_path, meta, config)
        cell = int(meta.get("multiple", 4))
    else:
        loaded = load_model(model_file, device=config.device)
        meta = loaded.meta
        runner = TorchRunner(loaded, config)
        cell = cells(loaded.net)
    texture_only = meta["arch"] == "texture" and not bool(meta.get("net_config", {}).get("content", True))
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    base_meta = {
        "impasto": __version__,
        "method": "feedforward",
        "arch": meta.get("arch"),
        "model": model_file.name,
        "style": meta.get("style_name"),
        "style_sha256": meta.get("style_sha256"),
        "steps": meta.get("steps"),
        "licence": meta.get("licence", ""),
        "runtime": runtime,
        "strength": config.strength,
        "preserve_colors": config.preserve_colors,
    }
    result = ApplyResult()
    t0 = time.perf_counter()
    ext = "." + config.format

    if texture_only:
        if images:
            raise UsageError(f"{model_file}: a texture-synthesis model takes no input images; set the size with --size HxW")
        size = parse_size(config.size)
        tile = config.tile or auto_tile(size, config.max_tile, config.overlap, cell, whole_pixels=config.whole_pixels)
        y = stylise_tensor(runner, None, size, tile=tile, overlap=config.overlap, stats_edge=config.stats_edge, cell=cell)
        target = out / f"texture_{config.seed}{config.suffix}{ext}"
        save_image(target, y, metadata={**base_meta, "seed": config.seed, "size": list(size)}, bit_depth=config.bit_depth)
        result.written.append(target)
        result.seconds = time.perf_counter() - t0
        return result

    items = _expand_inputs(images)
    if not items:
        raise UsageError("no input images (give image files or folders)" if not images else f"no images found in {', '.join(str(i) for i in images)}")
    single = len(items) == 1 and not Path(images[0]).is_dir()
    taken: set[Path] = set()
    emit(callback, StageEvent(0, 1, "stylising", len(items)))
    try:
        for n, (src, rel) in enumerate(items, 1):
            target = out / rel.parent / f"{rel.name}{config.suffix}{ext}"
            k = 1
            while target in taken:
                target = out / rel.parent / f"{rel.name}{config.suffix}_{k}{ext}"
                k += 1
            taken.add(target)
            try:
                img = load_image(src, max_pixels=config.max_pixels)
            except ImageError as exc:
                if single:
                    raise
                result.failed.append((str(src), str(exc)))
                _emit_warning(callback, str(exc))
                emit(callback, StepEvent(step=n, total=len(items), losses={}))
                continue
            photo = img.image
            if config.edge and max(photo.shape[-2:]) != config.edge:
                photo = resize_to_edge(photo, config.edge)
            size = (int(photo.shape[-2]), int(photo.shape[-1]))
            tile = config.tile or auto_tile(size, config.max_tile, config.overlap, cell, whole_pixels=config.whole_pixels)
            y = stylise_tensor(runner, photo, size, tile=tile, overlap=config.overlap, stats_edge=config.stats_edge, cell=cell)
            if config.preserve_colors == "luminance":
                y = transfer_luminance(y, photo)
            elif config.preserve_colors == "histogram":
                y = match_color(y, photo)
            if config.strength < 1.0:
                y = config.strength * y + (1.0 - config.strength) * photo
            y = y.clamp(0, 1)
            target.parent.mkdir(parents=True, exist_ok=True)
            save_image(target, y, alpha=img.alpha, metadata={**base_meta, "source": src.name, "size": list(size), "tile": tile}, bit_depth=config.bit_depth)
            result.written.append(target)
            emit(callback, StepEvent(step=n, total=len(items), losses={}))
    finally:
        if tmp_holder is not None:
            tmp_holder.cleanup()
    result.seconds = time.perf_counter() - t0
    return result


# ------------------------------------------------------------------------------------------
# export


class _JohnsonExport(torch.nn.Module):
    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net.core(image)  # type: ignore[operator]


class _TextureExport(torch.nn.Module):
    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.net.uses_content:  # type: ignore[union-attr]
            return self.net.core(inputs[0], *inputs[1:])  # type: ignore[operator]
        return self.net.core(None, *inputs)  # type: ignore[operator]


def export_model(model_path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *, format: str = "onnx", opset: int = 17) -> Path:
    """Export a model file to ONNX (dynamic batch, height and width) or TorchScript.

    The exported network takes sides that are multiples of ``multiple`` (4 for Johnson networks,
    16 for texture networks; stored in the metadata): ``apply`` pads and crops around it. The
    model's description (architecture, style, steps, licence) is stored in the file (ONNX
    metadata ``impasto``; TorchScript extra file ``impasto.json``).
    """
    if format not in EXPORT_FORMATS:
        raise ConfigError(f"--format {format!r}: choose from {', '.join(EXPORT_FORMATS)}")
    if opset < 17:
        raise ConfigError(f"--opset must be >= 17, got {opset}")
    loaded = load_model(model_path)
    net = loaded.net.cpu().eval()
    target = Path(out) if out is not None else loaded.path.with_suffix(".onnx" if format == "onnx" else ".torchscript.pt")
    if target.is_dir():
        target = target / (loaded.path.stem + (".onnx" if format == "onnx" else ".torchscript.pt"))
    meta = dict(loaded.meta)
    if loaded.arch == "texture":
        wrapper: torch.nn.Module = _TextureExport(net)
        tnet = net
        size = (32, 48)
        ph, pw = tnet.padded_size(size)  # type: ignore[operator]
        noise = tnet.noise([0], (ph, pw))  # type: ignore[operator]
        args: tuple[torch.Tensor, ...] = tuple(noise)
        names = [f"noise{k}" for k in range(len(noise))]
        if tnet.uses_content:  # type: ignore[union-attr]
            args = (torch.rand(1, 3, ph, pw), *args)
            names = ["image", *names]
        multiple = int(tnet.multiple)  # type: ignore[arg-type]
    else:
        wrapper = _JohnsonExport(net)
        args = (torch.rand(1, 3, 64, 48),)
        names = ["image"]
        multiple = 4
    meta["multiple"] = multiple
    meta["inputs"] = names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if format == "onnx":
            dynamic = {n: {0: "batch", 2: f"height{k}" if n.startswith("noise") else "height", 3: f"width{k}" if n.startswith("noise") else "width"} for k, n in enumerate(names)}
            dynamic["stylised"] = {0: "batch", 2: "height", 3: "width"}
            try:
                import onnx
            except ImportError:
                raise UsageError("ONNX export needs the onnx package: pip install 'impasto[onnx]'") from None
            with atomic_path(target) as tmp:
                torch.onnx.export(wrapper, args, str(tmp), dynamo=False, opset_version=opset, input_names=names, output_names=["stylised"], dynamic_axes=dynamic, do_constant_folding=True)
                model = onnx.load(str(tmp))
                entry = model.metadata_props.add()
                entry.key, entry.value = "impasto", json.dumps(meta, default=str)
                model.producer_name = "impasto"
                onnx.save(model, str(tmp))
        else:
            traced = torch.jit.trace(wrapper, args, check_trace=False)
            with atomic_path(target) as tmp:
                torch.jit.save(traced, str(tmp), _extra_files={"impasto.json": json.dumps(meta, default=str)})
    return target
