"""Optimisation-based style transfer (Gatys, Ecker & Bethge 2016; Gatys et al. 2017 controls).

The recipe: encode content and style once, then optimise the pixels against content + style
(+ TV) losses, coarse to fine over a pyramid of sizes, optionally tile by tile with whole-image
style statistics when the image does not fit the memory budget.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from ..config import check_rules
from ..errors import ConfigError, ImageTooSmallError, UsageError
from ..features import DEFAULT_DEVICE
from ..image.io import DEFAULT_MAX_PIXELS
from ..features.padding import PADDINGS, padding_mode
from ..losses import STYLE_LOSSES, PerceptualLoss
from ..losses.statistics import statistic_names, unknown_statistic_message
from ..optim.options import LoopOptions, TilingOptions
from ..optim.pixel import OPTIMIZERS, PixelLoopResult, optimise_pixels
from ..precision import DEFAULT_PRECISION, PRECISION_CHOICES, PRECISION_HELP, PRECISIONS, encoder_precision, is_precision, precision_name, resolve_precision
from ..progress import Event, MessageEvent, SnapshotEvent, StageEvent, emit
from .gatys_state import ResumePoint, StyleCache

__all__ = [
    "GatysConfig",
    "StyleInput",
    "GatysOutput",
    "ResumePoint",
    "StyleCache",
    "run",
    "parse_layers",
    "parse_scales",
    "parse_patch_scales",
    "style_statistic",
    "scale_ladder",
    "strength_multiplier",
    "loss_layers",
    "loop_options",
    "tiling_options",
    "INITS",
]

INITS = ("content", "style", "noise", "uniform")
COLOR_MODES = ("none", "luminance", "histogram")
#: the style layers of style_loss mrf when none are given (those the encoder's preset has)
MRF_LAYERS = ("relu3_1", "relu4_1")


def parse_layers(spec: str | Sequence[str] | dict[str, float]) -> dict[str, float]:
    """``"relu1_1:0.2,relu2_1"`` -> ``{"relu1_1": 0.2, "relu2_1": 1.0}`` (empty -> {})."""
    if isinstance(spec, dict):
        return {str(k): float(v) for k, v in spec.items()}
    items = [p.strip() for p in (spec.split(",") if isinstance(spec, str) else spec) if p.strip()]
    out: dict[str, float] = {}
    for item in items:
        name, _, weight = item.partition(":")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise ConfigError(f"layer {item!r}: weight {weight!r} is not a number (use NAME or NAME:WEIGHT)") from None
        if w < 0 or not math.isfinite(w):
            raise ConfigError(f"layer {item!r}: weight must be a finite number >= 0")
        out[name.strip()] = w
    return out


def parse_scales(spec: str | Sequence[int]) -> tuple[int, ...]:
    """``"256,512,1024"`` -> (256, 512, 1024); ``"auto"`` or "" -> () (automatic ladder)."""
    if isinstance(spec, str):
        if spec.strip().lower() in ("", "auto"):
            return ()
        try:
            values = tuple(int(p) for p in spec.split(",") if p.strip())
        except ValueError:
            raise ConfigError(f"scales {spec!r}: expected edges in px like 256,512,1024 or 'auto'", params="scales") from None
    else:
        values = tuple(int(v) for v in spec)
    if any(v < 16 for v in values) or list(values) != sorted(values):
        raise ConfigError(f"scales {spec!r}: edges must be increasing and >= 16 px", params="scales")
    return values


def parse_patch_scales(spec: str) -> tuple[float, ...]:
    """``"0.8,1.25"`` -> (0.8, 1.25): extra sizes of the style's feature maps for mrf ("" -> ())."""
    try:
        values = tuple(float(p) for p in spec.split(",") if p.strip())
    except ValueError:
        raise ConfigError(f"patch_scales {spec!r}: expected factors like 0.8,1.25", params="patch_scales") from None
    if any(not (0 < v <= 4) for v in values):
        raise ConfigError(f"patch_scales {spec!r}: factors must be > 0 and <= 4", params="patch_scales")
    return values


def scale_ladder(edge: int, *, smallest: int = 256) -> tuple[int, ...]:
    """Automatic coarse-to-fine ladder: halve ``edge`` while it stays >= ``smallest``."""
    ladder = [edge]
    while ladder[0] // 2 >= smallest:
        ladder.insert(0, ladder[0] // 2)
    return tuple(ladder)


def strength_multiplier(strength: float) -> float:
    """Map ``--strength`` in [0, 1] to a factor on the style weight: 0 -> 0 (content only),
    0.5 -> 1 (the raw weights), 1 -> 100; log-linear in between (each 0.25 is 10x)."""
    if strength <= 0:
        return 0.0
    return float(10 ** (4.0 * (strength - 0.5)))


def _parse_iteration_list(spec: str) -> tuple[int, ...]:
    if not spec.strip():
        return ()
    try:
        values = tuple(int(p) for p in spec.split(",") if p.strip())
    except ValueError:
        raise ConfigError(f"scale_iterations {spec!r}: expected counts like 500,200,100", params="scale_iterations") from None
    if any(v < 0 for v in values):
        raise ConfigError("scale_iterations: counts must be >= 0", params="scale_iterations")
    return values


def _h(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass(frozen=True)
class GatysConfig:
    """Every knob of the optimisation method. Defaults are the recommended settings."""

    content_weight: float = field(default=1.0, metadata=_h("weight of the content loss (per-layer normalised)"))
    style_weight: float = field(default=1e3, metadata=_h("weight of the style loss (per-layer normalised)"))
    tv_weight: float = field(default=0.0, metadata=_h("weight of the total-variation smoothness loss"))
    strength: float = field(default=0.5, metadata=_h("style strength 0..1 on top of the weights: 0 = content only, 0.5 = the weights as given, each +0.25 = 10x more style"))
    content_layers: str = field(default="", metadata=_h("content layers by name, optional weights: relu4_2 or relu3_1:0.5,relu4_2; empty = the encoder's preset", metavar="LAYERS"))
    style_layers: str = field(default="", metadata=_h("style layers, e.g. relu1_1,relu2_1,relu3_1,relu4_1,relu5_1 or relu1_1:0.2,...; empty = the encoder's preset", metavar="LAYERS"))
    style_loss: str = field(default="gram", metadata=_h("style statistic: gram (Gatys), mean_std (AdaIN), wasserstein (Gaussian W2), sliced_wasserstein (Heitz et al. 2021), mrf (nearest style patches, CNNMRF; style layers default to relu3_1 and relu4_1)", choices=STYLE_LOSSES))
    patch_size: int = field(default=3, metadata=_h("mrf: patch side in feature pixels"))
    patch_stride: int = field(default=0, metadata=_h("mrf: step between patches in feature pixels (2 = a quarter of the patches: faster, coarser; 0 = auto: the smallest step leaving at most 8192 of the painting's patches per layer, i.e. 1 up to about 350 px and 2 at 512 px)"))
    patch_rotations: int = field(default=0, metadata=_h("mrf: also match the style's patches rotated by 90, 180, 270 degrees: 0..3 extra rotations"))
    patch_scales: str = field(default="", metadata=_h("mrf: also match the style's patches at these relative sizes, e.g. 0.8,1.25", metavar="F,F,..."))
    variety: float = field(default=0.0, metadata=_h("mrf: prefer style patches used less often (0 = plain nearest patch; e.g. 0.2)"))
    init: str = field(default="content", metadata=_h("start image: content, style, noise (grey + Gaussian noise), uniform (white noise), or an image FILE", metavar="content|style|noise|uniform|FILE"))
    optimizer: str = field(default="lbfgs", metadata=_h("optimiser on the pixels", choices=OPTIMIZERS))
    lr: float = field(default=0.0, metadata=_h("learning rate; 0 = the optimiser's default (L-BFGS 1.0, Adam 0.02 for 0..1 pixels)"))
    iterations: int = field(default=300, metadata=_h("iterations at the final scale", short="-n"))
    scale_iterations: str = field(default="", metadata=_h("iterations per scale, coarse to fine, e.g. 500,200,100 (overrides --iterations)", metavar="N,N,..."))
    edge: int = field(default=512, metadata=_h("longest side of the output in px"))
    scales: str = field(default="auto", metadata=_h("coarse-to-fine edges, e.g. 256,512,1024; 'auto' = halve --edge down to 256; a single value = no pyramid", metavar="EDGES"))
    style_scale: float = field(default=1.0, metadata=_h("size of the style image relative to the output (style features grow with it)"))
    preserve_colors: str = field(default="none", metadata=_h("keep the photo's colours: luminance (transfer on luminance only, Gatys et al. 2017) or histogram (recolour the style to the photo first)", choices=COLOR_MODES))
    content_mask: str = field(default="", metadata=_h("region map of the content (colour-coded or grey); each region takes its style from the same colour in --style-mask", metavar="FILE"))
    style_mask: str = field(default="", metadata=_h("region map of the style image, same colours as --content-mask", metavar="FILE"))
    encoder: str = field(default="vgg19", metadata=_h("feature network: vgg19, vgg16, resnet50, inception_v3, tiny_vgg"))
    weights: str = field(default="auto", metadata=_h("encoder weights: auto (pretrained if available, else random with a warning), random, a name such as vgg19.torchvision, or a .pth file", metavar="auto|random|NAME|FILE"))
    preprocessing: str = field(default="auto", metadata=_h("input convention of the --weights file: auto (from the checkpoint's record; a file matching none needs one of the others), caffe (BGR 0-255 minus the mean: neural-style's VGG files), torchvision (RGB ImageNet mean/std)", choices=("auto", "caffe", "torchvision")))
    pooling: str = field(default="max", metadata=_h("pooling in VGG (avg as in Gatys et al.)", choices=("max", "avg")))
    padding: str = field(default="reflect", metadata=_h("how the encoder's convolutions see past the image border: reflect (no frame along the borders), replicate, or zeros (as trained; leaves a smooth, brighter band along the borders)", choices=PADDINGS))
    seed: int = field(default=0, metadata=_h("random seed: same seed, same device -> same output"))
    device: str = field(default=DEFAULT_DEVICE, metadata=_h("compute device: auto, cpu, cuda, cuda:N, mps"))
    precision: str = field(default=DEFAULT_PRECISION, metadata=_h(PRECISION_HELP, choices=PRECISION_CHOICES))
    save_every: int = field(default=0, metadata=_h("write a snapshot every N iterations (0 = never)", metavar="N"))
    early_stop: float = field(default=0.0, metadata=_h("stop a scale when the loss changes less than this fraction over --patience steps (e.g. 0.001); 0 = off"))
    patience: int = field(default=50, metadata=_h("window (steps) for --early-stop"))
    average: float = field(default=0.0, metadata=_h("exponential averaging of the iterates (e.g. 0.9) for a smoother result; 0 = off"))
    max_memory: str = field(default="auto", metadata=_h("memory budget, e.g. 8G or 6000M; above it the image is optimised tile by tile with whole-image style statistics; auto = the device's free memory", metavar="SIZE"))
    tile: int = field(default=0, metadata=_h("force tiled optimisation with this tile edge in px (0 = only when needed)"))
    tile_overlap: int = field(default=64, metadata=_h("overlap between tiles in px (context for the features at tile borders)"))
    max_pixels: int = field(default=DEFAULT_MAX_PIXELS, metadata=_h("refuse input images with more pixels than this (decompression-bomb guard)"))

    def __post_init__(self) -> None:
        check_rules([
            (self.content_weight >= 0, "content_weight", f"content_weight must be >= 0, got {self.content_weight}"),
            (self.style_weight >= 0, "style_weight", f"style_weight must be >= 0, got {self.style_weight}"),
            (self.tv_weight >= 0, "tv_weight", f"tv_weight must be >= 0, got {self.tv_weight}"),
            (0 <= self.strength <= 1, "strength", f"strength must be in [0, 1], got {self.strength}"),
            (self.iterations >= 0, "iterations", f"iterations must be >= 0, got {self.iterations}"),
            (self.edge >= 16, "edge", f"edge must be >= 16 px, got {self.edge}"),
            (self.style_scale > 0, "style_scale", f"style_scale must be > 0, got {self.style_scale}"),
            (self.lr >= 0, "lr", f"lr must be >= 0, got {self.lr}"),
            (self.save_every >= 0, "save_every", f"save_every must be >= 0, got {self.save_every}"),
            (0 <= self.early_stop < 1, "early_stop", f"early_stop must be in [0, 1), got {self.early_stop}"),
            (self.patience >= 1, "patience", f"patience must be >= 1, got {self.patience}"),
            (0 <= self.average < 1, "average", f"average must be in [0, 1), got {self.average}"),
            (self.tile == 0 or self.tile >= 64, "tile", f"tile must be 0 or >= 64 px, got {self.tile}"),
            (self.tile_overlap >= 0, "tile_overlap", f"tile_overlap must be >= 0, got {self.tile_overlap}"),
            (self.max_pixels > 0, "max_pixels", f"max_pixels must be > 0, got {self.max_pixels}"),
            (self.optimizer in OPTIMIZERS, "optimizer", f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"),
            # the registry as it is now: a statistic registered after import is a valid choice
            (self.style_loss in statistic_names(), "style_loss", unknown_statistic_message(self.style_loss)),
            (self.patch_size >= 1, "patch_size", f"patch_size must be >= 1, got {self.patch_size}"),
            (self.patch_stride >= 0, "patch_stride", f"patch_stride must be >= 0 (0 = auto), got {self.patch_stride}"),
            (0 <= self.patch_rotations <= 3, "patch_rotations", f"patch_rotations must be in 0..3, got {self.patch_rotations}"),
            (self.variety >= 0, "variety", f"variety must be >= 0, got {self.variety}"),
            (self.preserve_colors in COLOR_MODES, "preserve_colors", f"preserve_colors must be one of {', '.join(COLOR_MODES)}, got {self.preserve_colors!r}"),
            (self.pooling in ("max", "avg"), "pooling", f"pooling must be max or avg, got {self.pooling!r}"),
            (self.padding in PADDINGS, "padding", f"padding must be one of {', '.join(PADDINGS)}, got {self.padding!r}"),
            (is_precision(self.precision), "precision", f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"),
        ])
        parse_layers(self.content_layers)
        parse_layers(self.style_layers)
        parse_scales(self.scales)
        parse_patch_scales(self.patch_scales)
        _parse_iteration_list(self.scale_iterations)
        check_rules([(bool(self.content_mask) == bool(self.style_mask), ("content_mask", "style_mask"),
                      "content_mask and style_mask go together: give both or neither")])

    # derived -------------------------------------------------------------------------------
    def ladder(self) -> tuple[int, ...]:
        """The edges to optimise at, coarse to fine (the last is ``edge``)."""
        explicit = parse_scales(self.scales)
        if not explicit:
            return scale_ladder(self.edge)
        return explicit if explicit[-1] == self.edge else tuple(e for e in explicit if e < self.edge) + (self.edge,)

    def iterations_per_scale(self, levels: int) -> tuple[int, ...]:
        """Iterations at each level: explicit list, or ``iterations`` at the final scale and twice
        as many at each coarser one (they cost a quarter per halving), capped at 4x."""
        explicit = _parse_iteration_list(self.scale_iterations)
        if explicit:
            if len(explicit) != levels:
                raise ConfigError(f"scale_iterations has {len(explicit)} counts for {levels} scales", params="scale_iterations")
            return explicit
        return tuple(self.iterations * min(4, 2 ** (levels - 1 - k)) for k in range(levels))


@dataclass
class StyleInput:
    """One style image with its blend weight and scale (relative to the output size)."""

    image: torch.Tensor  # 1x3xHxW [0, 1] at full resolution
    weight: float = 1.0
    scale: float = 1.0
    name: str = "style"
    mask: torch.Tensor | None = None  # Kx1xHxW regions (spatial control)


@dataclass
class GatysOutput:
    """What ``run`` returns: the image and everything needed for the manifest."""

    image: torch.Tensor
    history: list[dict[str, float]]
    levels: list[dict[str, Any]]
    stopped: str
    encoder_info: dict[str, Any]
    elapsed_s: float
    resume: ResumePoint | None = None  # set when interrupted


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    from ..image.resize import resize

    return image if tuple(image.shape[-2:]) == tuple(size) else resize(image, size)


def _fit(size: tuple[int, int], edge: int) -> tuple[int, int]:
    from ..image.resize import fit_edge

    return fit_edge(size, edge)


def make_init(config: GatysConfig, content: torch.Tensor, style: torch.Tensor, init_image: torch.Tensor | None) -> torch.Tensor:
    """The starting image at ``content``'s size."""
    size = tuple(content.shape[-2:])
    gen = torch.Generator().manual_seed(config.seed)
    if config.init == "content":
        return content.clone()
    if config.init == "style":
        return _resize(style, size)  # type: ignore[arg-type]
    if config.init == "noise":
        return (0.5 + 0.15 * torch.randn(content.shape, generator=gen)).clamp(0, 1).to(content.device)
    if config.init == "uniform":
        return torch.rand(content.shape, generator=gen).to(content.device)
    if init_image is None:
        raise ConfigError(f"init {config.init!r}: not content, style, noise or uniform, and no image was loaded", params="init")
    return _resize(init_image.to(content.device), size)  # type: ignore[arg-type]


def loss_layers(config: GatysConfig, spec: Any) -> tuple[dict[str, float], dict[str, float]]:
    """The content and style layers (name -> weight) for ``config`` on an encoder described by
    ``spec`` (an EncoderSpec): the configured ones, or the encoder's presets where empty."""
    content = parse_layers(config.content_layers) or {n: 1.0 for n in spec.default_content_layers}
    preset = tuple(spec.default_style_layers)
    if config.style_loss == "mrf":  # CNNMRF's layers; elsewhere the preset's at 1/4 and 1/8 resolution
        preset = tuple(n for n in MRF_LAYERS if n in preset) or preset[1:3] or preset
    style = parse_layers(config.style_layers) or {n: 1.0 for n in preset}
    return content, style


def style_statistic(config: GatysConfig) -> Any:
    """The style statistic ``config`` asks for: its name, or for mrf an instance with the patch
    options."""
    if config.style_loss != "mrf":
        return config.style_loss
    from ..losses.mrf import MRF

    return MRF(size=config.patch_size, stride=config.patch_stride, rotations=config.patch_rotations,
               scales=parse_patch_scales(config.patch_scales), variety=config.variety)


def build_loss(config: GatysConfig, encoder: Any) -> PerceptualLoss:
    """The perceptual loss for ``config`` on ``encoder`` (layer presets filled in)."""
    content_layers, style_layers = loss_layers(config, encoder.spec)
    return PerceptualLoss(
        encoder,
        content_layers=content_layers,
        style_layers=style_layers,
        content_weight=config.content_weight,
        style_weight=config.style_weight * strength_multiplier(config.strength),
        tv_weight=config.tv_weight,
        style_loss=style_statistic(config),
        seed=config.seed,
    )


def loop_options(config: GatysConfig, iterations: int, level: int = 0, levels: int = 1) -> LoopOptions:
    """The pixel-loop settings of one pyramid level."""
    return LoopOptions(
        iterations=iterations, optimizer=config.optimizer, lr=config.lr or None, save_every=config.save_every,
        early_stop=(config.early_stop, config.patience) if config.early_stop > 0 else None, average=config.average,
        stage=level, stages=levels,
    )


def tiling_options(config: GatysConfig) -> TilingOptions:
    """When and how to tile (parses ``max_memory``)."""
    from ..optim.tiled import parse_memory

    return TilingOptions(tile=config.tile, overlap=config.tile_overlap, max_memory=parse_memory(config.max_memory))


def run(
    config: GatysConfig,
    content: torch.Tensor,
    styles: Sequence[StyleInput],
    *,
    encoder: Any,
    callback: Callable[[Event], None] | None = None,
    init_image: torch.Tensor | None = None,
    content_mask: torch.Tensor | None = None,
    style_cache: StyleCache | None = None,
    resume: ResumePoint | None = None,
    extra_loss: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> GatysOutput:
    """Stylise ``content`` (1x3xHxW in [0, 1], full resolution) with ``styles``.

    ``encoder`` is a FeatureExtractor whose layers include the loss's layers. ``init_image``
    is the image for ``--init FILE``. ``resume``: continue an interrupted run (its
    ``GatysOutput.resume``, or the point saved with a snapshot) with absolute step numbers.
    Snapshot events carry a ``ResumePoint`` as their ``state``; Ctrl-C between two steps or
    between two levels returns the last completed step's image with ``stopped="interrupted"``.
    ``extra_loss(image) -> scalar`` is added to the loss at the final scale (reported as
    ``extra``; e.g. the temporal loss of video frames); it needs untiled optimisation.
    """
    if not styles:
        raise UsageError("at least one style image is needed")
    t0 = time.perf_counter()
    device = next((b.device for b in encoder.buffers()), torch.device("cpu"))
    torch.manual_seed(config.seed)
    with padding_mode(encoder, config.padding), encoder_precision(encoder, resolve_precision(config.precision, device, "gatys")):
        return _run(config, content, styles, encoder, callback, init_image, content_mask, style_cache, resume, t0, device, extra_loss)


def _run(config: GatysConfig, content: torch.Tensor, styles: Sequence[StyleInput], encoder: Any, callback: Callable[[Event], None] | None,
         init_image: torch.Tensor | None, content_mask: torch.Tensor | None, style_cache: StyleCache | None, resume: ResumePoint | None,
         t0: float, device: torch.device, extra_loss: Callable[[torch.Tensor], torch.Tensor] | None = None) -> GatysOutput:
    cache = style_cache if style_cache is not None else StyleCache()
    loss = build_loss(config, encoder)
    full_size = _fit(tuple(content.shape[-2:]), config.edge)  # type: ignore[arg-type]
    ladder = config.ladder()
    iters = config.iterations_per_scale(len(ladder))
    min_side = encoder.min_side

    style_images = [s.image for s in styles]
    if config.preserve_colors != "none":
        from ..image import color
    if config.preserve_colors == "histogram":
        style_images = [color.match_color(img, content) for img in style_images]
    content_in = content
    if config.preserve_colors == "luminance":
        content_in = color.luminance_only(content)
        style_images = [color.luminance_only(_match_luminance(img, content)) for img in style_images]

    current: torch.Tensor | None = None
    history: list[dict[str, float]] = list(resume.history) if resume is not None else []
    levels: list[dict[str, Any]] = list(resume.levels) if resume is not None else []
    start_level = resume.level if resume is not None else 0
    stopped = "completed"
    point: ResumePoint | None = None

    def relay(event: Event) -> None:
        if isinstance(event, SnapshotEvent) and event.state is not None:  # make the snapshot resumable
            event = dataclasses.replace(event, state=ResumePoint(event.stage, event.step, event.state, None, list(history), list(levels)))
        emit(callback, event)

    style_prints = [cache.fingerprint(img, s.mask) for s, img in zip(styles, style_images)]  # the images the statistics see
    level = start_level
    try:
        for level, edge in enumerate(ladder):
            size = _fit(tuple(content.shape[-2:]), edge)  # type: ignore[arg-type]
            if min(size) < min_side:
                if level < len(ladder) - 1:
                    continue  # too small a level: skip it
                raise ImageTooSmallError(f"content image becomes {size[1]}x{size[0]} at edge {edge}; the {encoder.spec.name} encoder needs at least {min_side} px on each side", params="edge")
            if level < start_level:
                continue
            c = _resize(content_in, size).to(device)
            cmask = _resize_mask(content_mask, size).to(device) if content_mask is not None else None
            stats = []
            for s_index, (s, img) in enumerate(zip(styles, style_images)):
                s_edge = max(min_side, round(edge * s.scale * config.style_scale))
                s_size = _fit(tuple(img.shape[-2:]), s_edge)  # type: ignore[arg-type]
                if min(s_size) < min_side:
                    raise ImageTooSmallError(f"{s.name}: style image becomes {s_size[1]}x{s_size[0]}; the {encoder.spec.name} encoder needs at least {min_side} px on each side (raise style_scale)", params="style_scale")
                key = (style_prints[s_index], s_size, loss.style_key, encoder.fingerprint, cmask is not None)
                smask = _resize_mask(s.mask, s_size).to(device) if s.mask is not None else None
                stats.append(cache.get(key, lambda img=img, s_size=s_size, smask=smask: _style_stats(loss, _resize(img, s_size).to(device), smask)))
            loss.set_style([], blend=[s.weight for s in styles], stats=stats, content_masks=cmask)

            loop_state, start_step = None, 0
            if current is None:
                if resume is not None and resume.loop is not None:
                    loop_state = resume.loop
                    current = loop_state.image.to(device)
                    if tuple(current.shape[-2:]) != tuple(size):
                        raise UsageError(f"the saved state is {current.shape[-1]}x{current.shape[-2]} but level {level + 1} is {size[1]}x{size[0]}: it belongs to another run")
                elif resume is not None and resume.image is not None:
                    current, start_step = _resize(resume.image.to(device), size), resume.step
                else:
                    current = make_init(config, c, _resize(style_images[0], size).to(device), init_image)
                    if config.preserve_colors == "luminance" and config.init != "content":
                        current = color.luminance_only(current)
            else:
                current = _resize(current, size)
            done = loop_state.step if loop_state is not None else start_step
            emit(callback, StageEvent(stage=level, stages=len(ladder), description=f"scale {level + 1}/{len(ladder)}: {size[1]}x{size[0]}", steps=iters[level], done=min(done, iters[level])))
            extra = extra_loss if level == len(ladder) - 1 else None
            result = _optimise_level(config, loss, c, current, loop_options(config, iters[level], level, len(ladder)), relay, cmask, loop_state, start_step, extra)
            current = result.image
            if result.stopped == "interrupted":
                stopped = "interrupted"
                point = ResumePoint(level, result.iterations, result.state, None, list(history), list(levels))
            history.extend({"level": level, **h} for h in result.history)
            levels.append({"edge": edge, "size": [size[0], size[1]], "iterations": result.iterations, "stopped": result.stopped, "tiled": result.tiled})
            if result.stopped in ("interrupted", "non-finite"):
                stopped = result.stopped
                break
    except KeyboardInterrupt:
        # between levels (targets, resizing): the finished levels stand; the next starts afresh
        if current is None:
            raise
        stopped = "interrupted"
        point = ResumePoint(level, 0, None, current.detach().cpu(), list(history), list(levels))
        emit(callback, MessageEvent(f"interrupted before scale {level + 1} began: keeping the image of the scale before", "warning"))
    assert current is not None
    out = _resize(current, full_size)
    if config.preserve_colors == "luminance":
        out = color.transfer_luminance(out, _resize(content, full_size).to(out.device))
    enc_w = encoder.weights
    return GatysOutput(
        image=out.clamp(0, 1).cpu(),
        history=history,
        levels=levels,
        stopped=stopped,
        encoder_info={
            "name": encoder.spec.name,
            "weights": getattr(enc_w, "name", None),
            "weights_kind": getattr(enc_w, "kind", None),
            "weights_sha256": getattr(enc_w, "sha256", None),
            "pooling": encoder.pooling,
            "precision": precision_name(getattr(encoder, "compute_dtype", None)),
            "content_layers": loss.content_layers,
            "style_layers": loss.style_layers,
        },
        elapsed_s=time.perf_counter() - t0,
        resume=point,
    )


@dataclass
class _LevelResult:
    image: torch.Tensor
    history: list[dict[str, float]]
    iterations: int
    stopped: str
    tiled: bool = False
    state: LoopState | None = None


def _optimise_level(
    config: GatysConfig,
    loss: PerceptualLoss,
    content: torch.Tensor,
    init: torch.Tensor,
    loop: LoopOptions,
    callback: Callable[[Event], None] | None,
    cmask: torch.Tensor | None,
    resume: LoopState | None = None,
    start_step: int = 0,
    extra_loss: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> _LevelResult:
    from ..optim import tiled as tiled_mod

    size = (int(init.shape[-2]), int(init.shape[-1]))
    tiling = tiling_options(config)
    plan = tiled_mod.plan_for(tiling, loss, size, init.device, optimizer=loop.optimizer)
    if plan is None:
        estimate = tiled_mod.estimate_peak_bytes(loss.encoder, loss.layers, size, loop.optimizer)
        budget = tiling.max_memory
        limit = f"budget {tiled_mod.format_bytes(budget)}" if budget else f"{tiled_mod.format_bytes(tiled_mod.available_memory(init.device))} free"
        emit(callback, MessageEvent(f"{size[1]}x{size[0]}: estimated peak memory {tiled_mod.format_bytes(estimate)} ({limit}), untiled"))
    if plan is not None and extra_loss is not None:
        raise UsageError(f"{size[1]}x{size[0]} would be optimised in tiles, which this run's extra loss term does not support: lower edge or raise max_memory", params="edge")
    if plan is not None:
        emit(callback, MessageEvent(plan.describe()))
        r = tiled_mod.optimise_tiled(init, loss, plan, loop, callback=callback, masks=cmask, content=content, resume=resume, start_step=start_step)
        return _LevelResult(r.image, r.history, r.iterations, r.stopped, tiled=True, state=r.state)
    loss.set_content(content)

    def objective(x: torch.Tensor) -> Any:
        total, parts = loss(x)
        if extra_loss is None:
            return total, parts
        extra = extra_loss(x)
        return total + extra, {**parts, "extra": extra.detach()}

    r: PixelLoopResult = optimise_pixels(init, objective, loop, callback=callback, resume=resume, start_step=start_step)  # type: ignore[no-redef]
    return _LevelResult(r.image, r.history, r.iterations, r.stopped, state=r.state)


#: style images larger than this (px, longest side) get their statistics summed tile by tile
STATS_TILE_EDGE = 1024


def _style_stats(loss: PerceptualLoss, image: torch.Tensor, masks: torch.Tensor | None) -> Any:
    if max(image.shape[-2:]) <= STATS_TILE_EDGE or not getattr(loss.statistic, "mergeable", True):
        return loss.style_stats(image, masks)
    from ..optim.tiled import style_sums_tiled

    return loss.style_stats_from_sums(style_sums_tiled(loss, image, masks, tile=STATS_TILE_EDGE, overlap=64))


def _resize_mask(mask: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor:
    import torch.nn.functional as F

    assert mask is not None
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    m = F.interpolate(mask, size=size, mode="bilinear", align_corners=False, antialias=True)
    return m / m.sum(0, keepdim=True).clamp_min(1e-6)


def _match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Shift/scale the style's luminance to the content's mean/std (Gatys et al. 2017, eq. 1)."""
    from ..image import color

    ys, yc = color.luminance(style), color.luminance(content)
    y = (ys - ys.mean()) * (yc.std() / ys.std().clamp_min(1e-6)) + yc.mean()
    return style + (y - ys)  # move all channels with the luminance; chroma is discarded later


def config_replace(config: GatysConfig, **changes: Any) -> GatysConfig:
    """A copy of ``config`` with ``changes`` (validated)."""
    return dataclasses.replace(config, **changes)
