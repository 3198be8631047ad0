"""Training a feed-forward network for one style: the recipe over :func:`impasto.optim.train_loop.train_loop`.

Johnson, Alahi & Fei-Fei (2016); Ulyanov et al. (2016): a generator chosen by name (any
architecture registered in :mod:`impasto.nets.registry`) is trained with Adam to minimise the
perceptual loss of its output against the input photo (content) and one style image (style), on
a folder of photos. ``texture=True`` trains a network that synthesises the style's texture from
noise alone (an architecture registered with ``synthesis``).

The recipe builds the loss network, :class:`~impasto.losses.PerceptualLoss`, the generator and
the photo stream, wraps them in a :class:`PerceptualObjective`, and hands them to the generic
loop with hooks for what only it knows: the resolved ``config.json``, previews, resume checks
and the model file written at the end (:mod:`.ff_model`).
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch

from ..config import check_rules, config_from_mapping, config_to_dict
from ..errors import ConfigError, ImageError, OutputError, UsageError
from ..features import DEFAULT_DEVICE
from ..losses import STYLE_LOSSES
from ..nets.registry import ARCHS, build_net, get_arch, synthesis_archs
from ..optim.training import SCHEDULES
from ..precision import DEFAULT_PRECISION, PRECISION_CHOICES, PRECISIONS, TRAIN_PRECISION_HELP, is_precision, normalise_precision
from ..progress import Event, MessageEvent, SnapshotEvent, emit
from ..provenance import sha256_file, versions, write_json
from .ff_model import CHECKPOINT_NAME, CONFIG_NAME, MODEL_NAME, PREVIEW_DIR, LoadedModel, load_model, model_payload, save_model

__all__ = ["TrainConfig", "RESUMABLE_CHANGES", "ADD_STYLE_STEPS", "PerceptualObjective", "StyleBank", "parse_layers", "style_files", "train"]

#: training steps of an added style when none are given (only its γ/β are trained)
ADD_STYLE_STEPS = 4000

#: training options that may change when a run is resumed (the rest must match the checkpoint)
RESUMABLE_CHANGES = ("steps", "checkpoint_every", "log_every", "preview_every", "preview_count", "workers", "device", "precision", "licence")


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

    #: this recipe's key in :data:`impasto.precision.AUTO_BF16` (what ``precision="auto"`` may pick)
    PRECISION_KEY = "train"

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
    device: str = field(default=DEFAULT_DEVICE, metadata=_h("compute device: auto, cpu, cuda, cuda:N, mps"))
    precision: str = field(default=DEFAULT_PRECISION, metadata=_h(TRAIN_PRECISION_HELP, choices=PRECISION_CHOICES))
    amp: bool = field(default=False, metadata=_h("mixed precision over the whole step (generator and loss network): on CUDA bfloat16 where supported, else float16 with loss scaling; on a CPU bfloat16"))
    channels_last: bool = field(default=False, metadata=_h("channels-last memory format (faster convolutions on CUDA tensor cores)"))
    licence: str = field(default="", metadata=_h("licence or notice stored in the model file (e.g. the style image's licence and author)", metavar="TEXT"))

    def __post_init__(self) -> None:
        synth = synthesis_archs()
        check_rules([
            (self.content_weight >= 0, "content_weight", f"content_weight must be >= 0, got {self.content_weight}"),
            (self.style_weight >= 0, "style_weight", f"style_weight must be >= 0, got {self.style_weight}"),
            (self.tv_weight >= 0, "tv_weight", f"tv_weight must be >= 0, got {self.tv_weight}"),
            (self.train_size >= 16, "train_size", f"train_size must be >= 16 px, got {self.train_size}"),
            (self.batch_size >= 1, "batch_size", f"batch_size must be >= 1, got {self.batch_size}"),
            (self.steps >= 1, "steps", f"steps must be >= 1, got {self.steps}"),
            (self.lr > 0 and math.isfinite(self.lr), "lr", f"lr must be > 0, got {self.lr}"),
            (self.style_edge >= 0, "style_edge", f"style_edge must be >= 0, got {self.style_edge}"),
            (self.checkpoint_every >= 0, "checkpoint_every", f"checkpoint_every must be >= 0, got {self.checkpoint_every}"),
            (self.log_every >= 1, "log_every", f"log_every must be >= 1, got {self.log_every}"),
            (self.preview_every >= 0, "preview_every", f"preview_every must be >= 0, got {self.preview_every}"),
            (self.preview_count >= 0, "preview_count", f"preview_count must be >= 0, got {self.preview_count}"),
            (is_precision(self.precision), "precision", f"precision {self.precision!r}: choose from {', '.join(PRECISIONS)}"),
            (not (self.amp and is_precision(self.precision) and normalise_precision(self.precision) == "fp32"), ("amp", "precision"), "amp and precision fp32 contradict each other: give one of them"),
            (self.workers >= -1, "workers", f"workers must be >= -1, got {self.workers}"),
            (self.arch in ARCHS, "arch", f"arch {self.arch!r}: choose from {', '.join(ARCHS)}"),
            (self.lr_schedule in SCHEDULES, "lr_schedule", f"lr_schedule {self.lr_schedule!r}: choose from {', '.join(SCHEDULES)}"),
            (self.style_loss in STYLE_LOSSES, "style_loss", f"style_loss {self.style_loss!r}: choose from {', '.join(STYLE_LOSSES)}"),
            (not self.texture or self.arch in synth, "arch", f"texture synthesis from noise needs arch {' or '.join(synth)} (not {self.arch})"),
        ])
        object.__setattr__(self, "precision", normalise_precision(self.precision))  # float32/bfloat16 are accepted spellings
        parse_layers(self.content_layers)
        if not parse_layers(self.style_layers):
            raise ConfigError("style_layers: give at least one layer", params="style_layers")


class PerceptualObjective:
    """One step's loss: the generator's output against the content batch and the style.

    ``net.generate`` gets the content batch (None for texture synthesis), the training size, one
    noise seed per sample (drawn from ``noise`` when the network takes noise) and the batch size;
    ``loss`` (a :class:`~impasto.losses.PerceptualLoss` with its style set) scores the output.
    """

    def __init__(
        self,
        loss: Callable[..., tuple[torch.Tensor, Mapping[str, torch.Tensor]]],
        *,
        size: tuple[int, int],
        batch_size: int,
        noise: torch.Generator,
        styles: StyleBank | None = None,
    ) -> None:
        self.loss, self.size, self.batch_size, self.noise, self.styles = loss, size, batch_size, noise, styles

    def __call__(self, net: torch.nn.Module, content: torch.Tensor | None) -> tuple[torch.Tensor, Mapping[str, torch.Tensor]]:
        seeds = torch.randint(0, 2**31 - 1, (self.batch_size,), generator=self.noise).tolist() if "noise" in net.takes else None  # type: ignore[operator]
        style = self.styles.draw(self.loss) if self.styles is not None else None
        output = net.generate(content, size=self.size, seed=seeds, batch=self.batch_size, style=style)  # type: ignore[operator]
        return self.loss(output, content=content)


class StyleBank:
    """The styles of a multi-style network during training: each style's loss targets, computed
    once and cached, and a generator that picks the style of each step (one style per batch,
    as in Dumoulin et al.). ``trained``: the indices drawn from (an added style: only the new one)."""

    def __init__(self, stats: Mapping[int, Any], n_styles: int, generator: torch.Generator) -> None:
        self.stats, self.n_styles, self.generator = dict(stats), int(n_styles), generator
        self.trained = sorted(self.stats)

    def vector(self, index: int) -> torch.Tensor:
        """The one-hot 1 x S style vector of style ``index``."""
        w = torch.zeros(1, self.n_styles)
        w[0, index] = 1.0
        return w

    def draw(self, loss: Any) -> torch.Tensor:
        """Pick this step's style, point ``loss`` at its cached targets, return its style vector."""
        k = self.trained[int(torch.randint(len(self.trained), (1,), generator=self.generator))]
        loss.set_style([], stats=[self.stats[k]])
        return self.vector(k)


def style_files(style: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The style images of a run: one file, several, or every image in a folder (recursive,
    sorted: the order is the style index order)."""
    from ..data.folder import IMAGE_EXTENSIONS

    items = [style] if isinstance(style, (str, os.PathLike)) else list(style)
    files: list[Path] = []
    for raw in items:
        p = Path(raw)
        if p.is_dir():
            found = sorted((f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS), key=lambda f: f.relative_to(p).as_posix())
            if not found:
                raise UsageError(f"{p}: no style images found in the folder", params="style")
            files += found
        else:
            files.append(p)
    return files


def check_run_folder(out_dir: str | os.PathLike[str], *, resume: bool) -> Path:
    """The run folder of a training: not a file; a fresh run must not overwrite a checkpoint and
    a resumed one needs one (one-line errors naming ``resume``)."""
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT_NAME
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder (give a folder for the model, checkpoints and logs)")
    if not resume and ckpt_path.exists():
        raise UsageError(f"{out}: already holds a training run ({CHECKPOINT_NAME}); continue it with resume or choose another folder", params="resume")
    if resume and not ckpt_path.exists():
        raise UsageError(f"{out}: nothing to resume (no {CHECKPOINT_NAME})")
    return out


def check_same_settings(ckpt: Mapping[str, Any], config: TrainConfig, out: Path) -> None:
    """Refuse to resume ``out``'s checkpoint with settings other than :data:`RESUMABLE_CHANGES`."""
    saved = dict(ckpt.get("train_config", {}))
    now = config_to_dict(config)
    diff = sorted(k for k in now if k not in RESUMABLE_CHANGES and k in saved and saved[k] != now[k])
    if diff:
        details = ", ".join(f"{k}: {saved[k]!r} -> {now[k]!r}" for k in diff[:4])
        raise ConfigError(f"{out}: cannot resume with different settings ({details}); only {', '.join(RESUMABLE_CHANGES)} may change")


def loop_options(config: TrainConfig) -> Any:
    """The generic loop's options (:class:`~impasto.optim.train_loop.TrainLoopOptions`) of a training config."""
    from ..optim.train_loop import TrainLoopOptions

    return TrainLoopOptions(
        steps=config.steps, lr=config.lr, lr_schedule=config.lr_schedule, batch_size=config.batch_size,
        checkpoint_every=config.checkpoint_every, log_every=config.log_every, preview_every=config.preview_every,
    )


def _load_base(path: str | os.PathLike[str]) -> LoadedModel:
    """The multi-style model a style is added to."""
    base = load_model(path)
    if "n_styles" not in base.meta.get("net_config", {}):
        raise UsageError(f"{base.path}: a {base.arch} model holds one style; adding a style needs a model trained with arch multistyle", params="add_style_from")
    return base


def _style_info(path: Path) -> dict[str, Any]:
    return {"name": path.name, "path": str(path.resolve()), "sha256": sha256_file(path)}


def _init_net(arch: str, texture: bool, seed: int, overrides: Mapping[str, Any] | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_net(arch, texture=texture, overrides=overrides)


def training_device(config: Any, callback: Callable[[Event], None] | None) -> tuple[torch.device, Any]:
    """The device and precision of a training run (``device``, ``precision``, ``amp``,
    ``channels_last``; ``auto`` looks up the config's ``PRECISION_KEY``), with a warning for each
    flag the device cannot honour. Every recipe starts with it."""
    from ..features import resolve_device
    from ..optim.train_loop import resolve_precision

    device = resolve_device(config.device)
    precision = resolve_precision(device, amp=config.amp, channels_last=config.channels_last, precision=config.precision, method=config.PRECISION_KEY)
    if precision.amp_ignored:
        _warn(callback, f"--amp works on CUDA and CPUs only; training in float32 on {device.type}")
    if precision.channels_last_ignored:
        _warn(callback, f"--channels-last is for CUDA; ignored on {device.type}")
    return device, precision


def _warn(callback: Callable[[Event], None] | None, text: str) -> None:
    emit(callback, MessageEvent(text, level="warning"))


def train(
    config: TrainConfig | None = None,
    style_path: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] = "model",
    *,
    callback: Callable[[Event], None] | None = None,
    resume: bool = False,
    add_style_from: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> Path:
    """Train a feed-forward network; returns the path of ``OUT_DIR/model.pt``.

    ``style_path``: the style image; for a multi-style architecture (``multistyle``) several
    images or a folder of them (their sorted order is the style index order; each step trains
    one style drawn at random, each style's targets computed once). ``add_style_from``: a
    multi-style model (file or training folder) to which the style image(s) are added: only
    their γ/β are trained, every other parameter stays bit-identical; without ``config`` the
    settings are the model's own with ``steps`` = :data:`ADD_STYLE_STEPS` (``overrides`` apply).

    ``OUT_DIR`` receives ``checkpoint.pt`` + ``config.json`` (every ``checkpoint_every`` steps),
    ``log.jsonl`` (mean losses every ``log_every`` steps), ``previews/step_NNNNNN/*.png`` and, at
    the end, ``model.pt``. ``resume=True`` continues from ``checkpoint.pt`` exactly (same data
    order, crops, noise and random states; bit-identical on the CPU with the same thread count).
    Ctrl-C saves a checkpoint of the last finished step and raises :class:`Interrupted`.
    Keyword ``overrides`` replace fields of ``config``.
    """
    from ..data.folder import PhotoFolder, default_workers, make_loader
    from ..features import build_encoder
    from ..image.io import load_image, save_image
    from ..image.resize import resize_to_edge
    from ..losses import PerceptualLoss
    from ..optim.train_loop import LoopHooks, train_loop

    base = None
    if add_style_from is not None:
        base = _load_base(add_style_from)
        if config is None:
            saved = {k: v for k, v in dict(base.meta.get("train_config", {})).items() if k in TrainConfig.__dataclass_fields__ and k not in RESUMABLE_CHANGES}
            config = config_from_mapping(TrainConfig, {**saved, "steps": ADD_STYLE_STEPS})
        if config.arch != base.arch:
            raise ConfigError(f"add_style_from: {base.path} is a {base.arch} model; arch must match (got {config.arch})", params="arch")
    config = config or TrainConfig()
    recipe = get_arch(config.arch).recipe
    if recipe is not None:
        raise UsageError(f"arch {config.arch} trains on folders of photos and paintings: use impasto.train(..., style_data=PAINTINGS) or {recipe.split(':')[0]}.{recipe.split(':')[2]}", params="arch")
    if overrides:
        config = config_from_mapping(TrainConfig, {**config_to_dict(config), **overrides})
    out = check_run_folder(out_dir, resume=resume)
    if style_path is None:
        raise UsageError("give the style image (style_path)" if base is None else "give the style image(s) to add (style_path)")
    if not config.texture and data_dir is None:
        raise UsageError("give a folder of training photos (data_dir) or, for a synthesiser trained from noise alone, set texture", params=("data_dir", "texture"))

    # ---- inputs ------------------------------------------------------------------------
    files = style_files(style_path)
    multi = "n_styles" in get_arch(config.arch).defaults
    if len(files) > 1 and not multi:
        raise UsageError(f"{len(files)} style images: one network for several styles needs arch multistyle (or train one model per style)", params="arch")
    style_imgs = []
    for f in files:
        img = load_image(f).image
        style_imgs.append(resize_to_edge(img, config.style_edge) if config.style_edge and max(img.shape[-2:]) != config.style_edge else img)
    infos = [_style_info(f) for f in files]
    old_styles = list(base.meta.get("styles", [])) if base is not None else []
    styles_meta = old_styles + [{"index": len(old_styles) + i, **{k: v for k, v in info.items() if k != "path"}} for i, info in enumerate(infos)]
    if multi:
        combined = hashlib.sha256("".join(x["sha256"] for x in infos).encode()).hexdigest()
        style_info = {"name": ", ".join(x["name"] for x in infos), "path": [x["path"] for x in infos], "sha256": combined}
    else:
        style_info = infos[0]
    folder = None
    if not config.texture:
        folder = PhotoFolder(data_dir, config.train_size, crop="random", seed=config.seed)  # type: ignore[arg-type]
        if folder.skipped:
            _warn(callback, f"{data_dir}: skipped {folder.skipped} unreadable file(s) (e.g. {folder.skipped_files[0].name})")
    out.mkdir(parents=True, exist_ok=True)

    # ---- device and precision ------------------------------------------------------------
    device, precision = training_device(config, callback)
    memory_format = precision.memory_format

    # ---- loss network, loss and generator ------------------------------------------------
    content_layers, style_layers = parse_layers(config.content_layers), parse_layers(config.style_layers)
    encoder = build_encoder(config.encoder, weights=config.weights, layers=list(dict.fromkeys([*content_layers, *style_layers])), pooling=config.pooling, device=device, preprocessing=config.preprocessing)
    if getattr(encoder.weights, "warning", None):
        _warn(callback, str(encoder.weights.warning))
    if precision.channels_last:
        encoder.to(memory_format=torch.channels_last)
    precision.prepare_encoder(encoder)
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
    bank: StyleBank | None = None
    params: list[torch.nn.Parameter] | None = None
    style_gen = torch.Generator().manual_seed(config.seed * 7 + 2)  # the style of each step (multi-style)
    if base is not None:  # add styles: only their γ/β are trained
        net = base.net.requires_grad_(False)
        params = [p for _ in infos for p in net.add_style()]  # type: ignore[operator]
        net_config = dict(net.config)  # type: ignore[arg-type]
    elif multi:
        net, net_config = _init_net(config.arch, config.texture, config.seed, {"n_styles": len(infos)})
    else:
        net, net_config = _init_net(config.arch, config.texture, config.seed)
    if multi:
        bank = StyleBank({len(old_styles) + i: loss_fn.style_stats(img.to(device)) for i, img in enumerate(style_imgs)}, int(net_config["n_styles"]), style_gen)
        loss_fn.set_style([], stats=[bank.stats[bank.trained[0]]])
    else:
        loss_fn.set_style([style_imgs[0].to(device)])
    size = (config.train_size, config.train_size)
    noise_gen = torch.Generator().manual_seed(config.seed * 7 + 1)  # noise seeds of networks that take noise
    objective = PerceptualObjective(loss_fn, size=size, batch_size=config.batch_size, noise=noise_gen, styles=bank)

    resolved = {
        "config": config_to_dict(config),
        "style": style_info,
        **({"styles": styles_meta} if multi else {}),
        **({"add_style_from": str(base.path.resolve())} if base is not None else {}),
        "data": None if data_dir is None else str(Path(data_dir).resolve()),
        "net": {"arch": config.arch, "config": net_config},
        "encoder": encoder_info,
        "device": str(device),
        "amp": precision.amp_name,
        "loss_network_precision": precision.loss_network,
        "threads": torch.get_num_threads(),
        "versions": versions(),
    }

    # ---- previews ------------------------------------------------------------------------
    previews: list[torch.Tensor | None] = []
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
            previews = [None] * config.preview_count

    def write_previews(step: int) -> None:
        if not previews:
            return
        folder_out = out / PREVIEW_DIR / f"step_{step:06d}"
        folder_out.mkdir(parents=True, exist_ok=True)
        was_training = net.training
        net.eval()
        first = None
        shown = [(None, "")] if bank is None else [(k, f"_style{k}") for k in bank.trained[:8]]
        with torch.no_grad():
            for i, photo in enumerate(previews):
                x = photo[None].to(device=device, memory_format=memory_format) if photo is not None and "content" in net.takes else None  # type: ignore[operator]
                for k, tag in shown:
                    style = None if bank is None or k is None else bank.vector(k)
                    y = net.generate(x, size=size, seed=10_000 + i, style=style)  # type: ignore[operator]  # fixed noise: comparable over time
                    y = y.float().cpu().contiguous()
                    save_image(folder_out / f"{i:02d}{tag}.png", y, metadata={"step": step, "style": style_info["name"] if k is None else styles_meta[k]["name"]})
                    first = y if first is None else first
        net.train(was_training)
        if first is not None:
            emit(callback, SnapshotEvent(step=step, image=first))

    # ---- data ----------------------------------------------------------------------------
    failed_seen: set[int] = set()

    def photo_batches(start: int) -> Iterator[torch.Tensor]:
        """Batches from step ``start`` on, on the device; new unreadable photos are reported."""
        assert folder is not None
        workers = default_workers() if config.workers < 0 else config.workers
        loader = make_loader(folder, config.batch_size, seed=config.seed, start=start * config.batch_size, workers=workers, pin_memory=device.type == "cuda")
        batches = iter(loader)  # now: the loader's base seed is drawn from the global random state here

        def stream() -> Iterator[torch.Tensor]:
            for content, failed in batches:
                new = [i for i in failed if i not in failed_seen]
                if new:
                    failed_seen.update(new)
                    for i in new:
                        _warn(callback, f"skipped unreadable photo {folder.files[i]}")
                yield content.to(device=device, memory_format=memory_format, non_blocking=True)

        return stream()

    def check_resume(ckpt: Mapping[str, Any]) -> None:
        check_same_settings(ckpt, config, out)
        if ckpt.get("style_sha256") not in (None, style_info["sha256"]):
            raise ConfigError(f"{out}: the checkpoint was trained on another style image ({ckpt.get('style_name')})")

    hooks = LoopHooks(
        check_resume=check_resume,
        checkpoint_extra=lambda: {
            "train_config": config_to_dict(config),
            "net_config": net_config,
            "style_name": style_info["name"],
            "style_sha256": style_info["sha256"],
            "failed": sorted(failed_seen),
        },
        restore_extra=lambda ckpt: failed_seen.update(int(i) for i in ckpt.get("failed", [])),
        saved=lambda step: write_json(out / CONFIG_NAME, {**resolved, "step": step}, sort_keys=True),
        preview=write_previews,
        log_extra=lambda: {"skipped": (folder.scan_skipped if folder else 0) + len(failed_seen)},
    )
    train_loop(
        net,
        objective,
        loop_options(config),
        precision=precision,
        run_dir=out,
        data=photo_batches if folder is not None else None,
        generators={"noise": noise_gen, "style": style_gen},
        params=params,
        resume=resume,
        hooks=hooks,
        callback=callback,
        description=f"training {config.arch}{' (texture)' if config.texture else ''}",
        resume_how=f"--resume -o {out}",
    )
    net.eval()
    extra = {"added_from": {"model": str(base.path.resolve()), "steps": base.meta.get("steps")}} if base is not None else None
    payload = model_payload(net, config.arch, net_config, config, style_info, config.steps, encoder_info, styles=styles_meta if multi else None, extra=extra)
    model_path = save_model(out / MODEL_NAME, payload)
    emit(callback, MessageEvent(f"wrote {model_path} ({config.steps} steps)"))
    return model_path
