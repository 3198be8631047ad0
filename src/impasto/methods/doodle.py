"""Semantic style transfer: paint a map, get a painting (Champandard 2016, neural-doodle).

The painting comes with a map of flat colours over it (``painting_sem.png``: sky, water, trees),
and the picture to make has a map in the same colours. At relu3_1 and relu4_1 the map's channels,
weighted by ``semantic_weight``, are concatenated to the features before patches are matched
(:mod:`impasto.losses.mrf`), so each region of the target takes its patches from the same-coloured
region of the painting. Without a photo it paints from the map alone; with one, a content loss
keeps the photo's structure. Coarse to fine, like the optimisation method.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F

from ..config import check_rules, config_to_dict
from ..errors import UsageError
from ..features import DEFAULT_DEVICE
from ..image.io import DEFAULT_MAX_PIXELS
from ..optim.options import LoopOptions
from ..optim.pixel import optimise_pixels
from ..progress import Event, MessageEvent, StageEvent, emit
from ..provenance import versions
from .inputs import load_input
from .registry import Input
from .result import Result

__all__ = ["DoodleConfig", "DoodleMethod", "guide_scale"]


def _h(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass(frozen=True)
class DoodleConfig:
    """Options of ``impasto doodle``."""

    semantic_weight: float = field(default=2.0, metadata=_h("weight of the map channels in patch matching, relative to the features (0 = ignore the maps; higher = regions are kept more strictly)"))
    style_weight: float = field(default=1.0, metadata=_h("weight of the patch (MRF) style loss"))
    content_weight: float = field(default=0.3, metadata=_h("with a photo: weight of its content (relu4_2)"))
    tv_weight: float = field(default=1e-3, metadata=_h("weight of the total-variation smoothness loss"))
    style_layers: str = field(default="relu3_1,relu4_1", metadata=_h("layers whose patches are matched", metavar="LAYERS"))
    content_layer: str = field(default="relu4_2", metadata=_h("layer of the content loss (with a photo)"))
    patch_size: int = field(default=3, metadata=_h("patch side in feature pixels"))
    patch_stride: int = field(default=0, metadata=_h("step between patches in feature pixels (2 = a quarter of them: faster, coarser; 0 = auto: the smallest step leaving at most 8192 of the painting's patches per layer, i.e. 1 at the coarse scales and 2 at 512 px)"))
    variety: float = field(default=0.0, metadata=_h("prefer patches not used yet (0 = off; 0.1-1 spreads the painting's patches more evenly)"))
    edge: int = field(default=512, metadata=_h("longest side of the output in px (the target map's aspect ratio)"))
    scales: str = field(default="auto", metadata=_h("coarse-to-fine edges, e.g. 128,256,512; 'auto' = halve --edge down to 128", metavar="EDGES"))
    iterations: int = field(default=80, metadata=_h("iterations at each scale", short="-n"))
    style_scale: float = field(default=1.0, metadata=_h("size of the painting relative to the output (smaller = bigger strokes)"))
    encoder: str = field(default="vgg19", metadata=_h("feature network"))
    weights: str = field(default="auto", metadata=_h("encoder weights: auto, random, a name or a file", metavar="auto|random|NAME|FILE"))
    preprocessing: str = field(default="auto", metadata=_h("input convention of a --weights file: auto, caffe or torchvision", choices=("auto", "caffe", "torchvision")))
    pooling: str = field(default="avg", metadata=_h("VGG pooling (avg, as neural-doodle)", choices=("max", "avg")))
    seed: int = field(default=0, metadata=_h("random seed of the starting noise (no photo)"))
    save_every: int = field(default=0, metadata=_h("write a snapshot every N iterations (0 = never)"))
    device: str = field(default=DEFAULT_DEVICE, metadata=_h("compute device: auto, cpu, cuda, cuda:N, mps"))
    max_pixels: int = field(default=DEFAULT_MAX_PIXELS, metadata=_h("refuse input images with more pixels than this (decompression-bomb guard)"))

    def __post_init__(self) -> None:
        from .gatys import parse_layers, parse_scales

        check_rules([
            (self.semantic_weight >= 0, "semantic_weight", f"semantic_weight must be >= 0, got {self.semantic_weight}"),
            (self.style_weight >= 0, "style_weight", f"style_weight must be >= 0, got {self.style_weight}"),
            (self.content_weight >= 0, "content_weight", f"content_weight must be >= 0, got {self.content_weight}"),
            (self.tv_weight >= 0, "tv_weight", f"tv_weight must be >= 0, got {self.tv_weight}"),
            (self.patch_size >= 1 and self.patch_size % 2 == 1, "patch_size", f"patch_size must be an odd number >= 1, got {self.patch_size}"),
            (self.patch_stride >= 0, "patch_stride", f"patch_stride must be >= 0 (0 = auto), got {self.patch_stride}"),
            (self.variety >= 0, "variety", f"variety must be >= 0, got {self.variety}"),
            (self.edge >= 16, "edge", f"edge must be >= 16 px, got {self.edge}"),
            (self.iterations >= 0, "iterations", f"iterations must be >= 0, got {self.iterations}"),
            (self.style_scale > 0, "style_scale", f"style_scale must be > 0, got {self.style_scale}"),
            (self.save_every >= 0, "save_every", f"save_every must be >= 0, got {self.save_every}"),
        ])
        if not parse_layers(self.style_layers):
            raise UsageError("style_layers: give at least one layer", params="style_layers")
        parse_scales(self.scales)

    def ladder(self) -> tuple[int, ...]:
        """Coarse-to-fine edges (the last is ``edge``)."""
        from .gatys import parse_scales, scale_ladder

        explicit = parse_scales(self.scales)
        if not explicit:
            return scale_ladder(self.edge, smallest=128)
        return tuple(e for e in explicit if e < self.edge) + (self.edge,)


def guide_scale(features: torch.Tensor, size: int) -> float:
    """How much a one-hot map channel is multiplied by so that ``semantic_weight`` 1 gives a map
    patch the norm of an average feature patch of ``features`` (1xCxHxW)."""
    from ..losses.mrf import extract_patches

    norms = extract_patches(features, size, 1).norm(dim=1)
    return float(norms.mean()) / size  # a one-hot patch inside one region has norm sqrt(size^2) = size


def _fit(size: tuple[int, int], edge: int) -> tuple[int, int]:
    from ..image.resize import fit_edge

    return fit_edge(size, edge)


class DoodleMethod:
    """Paint from a semantic map (and optionally a photo) with the patches of a painting."""

    name = "doodle"
    summary = "semantic style transfer: paint a colour map, get a painting (neural-doodle)"
    Config = DoodleConfig
    inputs = (
        Input("content", "image", "the photo to keep the structure of (optional: without it the map alone is painted)", required=False),
        Input("style", "image", "the painting"),
        Input("style_map", "image", "the painting's semantic map (default: STYLE_sem.png beside it)", required=False),
        Input("map", "image", "the map of the picture to make (default: CONTENT_sem.png beside the photo)", required=False),
    )
    context = ("download_progress",)
    main_options = ("semantic_weight", "edge", "iterations", "variety", "seed")

    def run(self, config: DoodleConfig, inputs: Mapping[str, Any], *, callback: Callable[[Event], None] | None = None,
            download_progress: Callable[[int, int | None], None] | None = None) -> Result:
        """Load the painting, the photo and both maps (pairing ``*_sem.png`` files), then optimise."""
        from ..features import build_encoder
        from ..image.semantic import check_colours, load_map, pair_map, shared_palette
        from .gatys import parse_layers

        t0 = time.perf_counter()
        style, _, s_info = load_input(inputs["style"], "style", config.max_pixels)
        content = inputs.get("content")
        c_img, c_alpha, c_info = (None, None, None)
        if content is not None:
            c_img, c_alpha, c_info = load_input(content, "content", config.max_pixels)
        style_map_src = inputs.get("style_map") or _paired(inputs["style"], "style", pair_map)
        map_src = inputs.get("map") or (_paired(content, "content", pair_map) if content is not None else None)
        if map_src is None:
            raise UsageError("map: required unless the photo has a PHOTO_sem.png beside it (the colours of the picture to make)", params="map")
        s_map = load_map(style_map_src, size=tuple(style.shape[-2:]), what="style map")
        t_map = load_map(map_src, size=tuple(c_img.shape[-2:]) if c_img is not None else None, what="map")
        pairs = check_colours(t_map, s_map)
        palette = shared_palette(t_map, s_map)
        emit(callback, MessageEvent(f"{len(pairs)} map colour(s) paired between {Path(str(map_src)).name} and {Path(str(style_map_src)).name}"))

        style_layers = parse_layers(config.style_layers)
        layers = list(style_layers) + ([config.content_layer] if c_img is not None and config.content_weight > 0 else [])
        torch.manual_seed(config.seed)
        encoder = build_encoder(config.encoder, weights=config.weights, layers=layers, pooling=config.pooling, device=config.device,
                                preprocessing=config.preprocessing, progress=download_progress, seed=config.seed)
        device = next(encoder.buffers()).device
        target_hw = tuple(c_img.shape[-2:]) if c_img is not None else tuple(t_map.labels.shape)
        ladder = config.ladder()
        iters = [config.iterations] * len(ladder)  # per scale, as neural-doodle's phases
        current: torch.Tensor | None = None
        history: list[dict[str, float]] = []
        for level, edge in enumerate(ladder):
            size = _fit(target_hw, edge)  # type: ignore[arg-type]
            s_size = _fit(tuple(style.shape[-2:]), max(encoder.min_side, round(edge * config.style_scale)))  # type: ignore[arg-type]
            if min(size) < encoder.min_side or min(s_size) < encoder.min_side:
                if level < len(ladder) - 1:
                    continue
                raise UsageError(f"the output becomes {size[1]}x{size[0]} at edge {edge}; the {config.encoder} encoder needs at least {encoder.min_side} px per side", params="edge")
            try:
                loss_fn, stats = self._level_loss(config, encoder, device, style, s_size, s_map, t_map, palette, c_img, size, style_layers)
            except _TooSmall as small:
                if level < len(ladder) - 1:
                    continue  # a coarse level too small for the patches: start at the next
                raise UsageError(f"the output becomes {size[1]}x{size[0]} at edge {edge}: {small} (raise edge)", params="edge") from None
            if current is None:
                if c_img is not None:
                    current = F.interpolate(c_img, size=size, mode="bilinear", align_corners=False, antialias=True).to(device)
                else:
                    gen = torch.Generator().manual_seed(config.seed)
                    mean = style.mean((2, 3), keepdim=True)
                    current = (mean + 0.15 * torch.randn((1, 3, *size), generator=gen)).clamp(0, 1).to(device)
            else:
                current = F.interpolate(current, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
            emit(callback, StageEvent(stage=level, stages=len(ladder), description=f"scale {level + 1}/{len(ladder)}: {size[1]}x{size[0]}", steps=iters[level]))
            r = optimise_pixels(current, loss_fn, LoopOptions(iterations=iters[level], save_every=config.save_every, stage=level, stages=len(ladder)), callback=callback)
            current = r.image
            history.extend({"level": level, **h} for h in r.history)
            if r.stopped == "interrupted":
                break
        assert current is not None
        alpha = None
        if c_alpha is not None:
            alpha = F.interpolate(c_alpha, size=current.shape[-2:], mode="bilinear", align_corners=False)
        manifest = {
            "method": "doodle", "config": config_to_dict(config), "style": s_info, "content": c_info,
            "style_map": str(style_map_src), "map": str(map_src), "palette": [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in palette],
            "final_losses": history[-1] if history else {}, "versions": versions(), "time_s": round(time.perf_counter() - t0, 3),
        }
        return Result(image=current.clamp(0, 1).cpu(), alpha=alpha, manifest=manifest)

    @staticmethod
    def _level_loss(config: DoodleConfig, encoder: Any, device: torch.device, style: torch.Tensor, s_size: tuple[int, int], s_map: Any, t_map: Any,
                    palette: Any, c_img: torch.Tensor | None, size: tuple[int, int], style_layers: dict[str, float]) -> tuple[Any, dict[str, Any]]:
        """The loss of one scale: MRF with map guides at each style layer (+ content, + TV)."""
        from ..losses.functional import tv_loss
        from ..losses.mrf import build_target, mrf_loss

        s_img = F.interpolate(style, size=s_size, mode="bilinear", align_corners=False, antialias=True).to(device)
        s_guide = s_map.channels(palette, size=s_size).to(device)
        t_guide = t_map.channels(palette, size=size).to(device)
        with torch.no_grad():
            s_feats = encoder(s_img, list(style_layers))
            probe = encoder(torch.zeros(1, 3, *size, device=device), list(style_layers))
            for layer in style_layers:
                for what, f in (("the output", probe[layer]), ("the painting", s_feats[layer])):
                    if min(f.shape[-2:]) < config.patch_size:
                        raise _TooSmall(f"{what} is {f.shape[-1]}x{f.shape[-2]} at {layer}, smaller than a {config.patch_size}x{config.patch_size} patch")
            content_target = None
            if c_img is not None and config.content_weight > 0:
                c = F.interpolate(c_img, size=size, mode="bilinear", align_corners=False, antialias=True).to(device)
                content_target = encoder(c, [config.content_layer])[config.content_layer]
        targets, guides, scales = {}, {}, {}
        for layer in style_layers:
            f = s_feats[layer]
            scales[layer] = config.semantic_weight * guide_scale(f, config.patch_size)
            g = F.interpolate(s_guide, size=f.shape[-2:], mode="area")
            targets[layer] = build_target(f, size=config.patch_size, stride=config.patch_stride, guide=g, guide_weight=scales[layer])
        wanted = list(style_layers) + ([config.content_layer] if content_target is not None else [])
        weights = {k: v / sum(style_layers.values()) for k, v in style_layers.items()}
        c_norm = content_target.pow(2).mean().clamp_min(1e-8) if content_target is not None else None

        def loss(x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            feats = encoder(x, wanted)
            style_value = x.new_zeros(())
            for layer, w in weights.items():
                f = feats[layer]
                if layer not in guides:
                    guides[layer] = F.interpolate(t_guide, size=f.shape[-2:], mode="area")
                style_value = style_value + w * mrf_loss(f, targets[layer], guide=guides[layer], guide_weight=scales[layer], variety=config.variety)
            parts = {"style": style_value.detach()}
            total = config.style_weight * style_value
            if content_target is not None:
                content_value = (feats[config.content_layer] - content_target).pow(2).mean() / c_norm
                total = total + config.content_weight * content_value
                parts["content"] = content_value.detach()
            if config.tv_weight:
                tv = tv_loss(x)
                total = total + config.tv_weight * tv
                parts["tv"] = tv.detach()
            return total, parts

        return loss, {"targets": {k: int(t.raw.shape[0]) for k, t in targets.items()}}


class _TooSmall(Exception):
    """A scale whose feature maps are smaller than one patch."""


def _paired(image: Any, what: str, pair_map: Callable[..., Any]) -> Any:
    """``PHOTO_sem.png`` beside ``image``, or a one-line error naming the missing option."""
    flag = "style_map" if what == "style" else "map"
    if isinstance(image, (str, Path)) or hasattr(image, "__fspath__"):
        found = pair_map(image)
        if found is not None:
            return found
        raise UsageError(f"{flag}: no map given and no {Path(image).stem}_sem.png beside {image}", params=flag)
    raise UsageError(f"{flag}: give the {what}'s semantic map", params=flag)
