"""Memory-planned optimisation: estimate the peak memory of a run and, when the image does not
fit the budget, optimise it tile by tile while the style statistics stay those of the WHOLE
image (tiles cannot drift apart, so no seams).

How: the style statistics are additive sums over pixels (a statistic's ``accumulate``; tiling
needs its ``additive`` flag). The tiles' *cores* partition the image; each pass first sums every tile's core statistics (no
gradient), then optimises each tile (with its overlap as context) against the whole-image
statistics = its own core sums (with gradient) + the sums of all other tiles (constants).
Each evaluation adds every tile's gradient into one full-image gradient and the optimiser steps the whole image.

Each loss term says how it is tiled (``LossTerm.tiling``): ``"sum"`` terms add their tiles'
shares, ``"global"`` terms report the whole image's value from every tile, ``"image"`` terms are
computed once on the whole image, and a term with ``None`` makes tiling refuse the loss. The
weighted total is the loss's own ``weighted_total``. Settings come in as ``TilingOptions`` and
``LoopOptions`` (never a method's Config).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..errors import ConfigError, UsageError
from ..losses.statistics import Stats
from ..losses.terms import TermInputs, content_energy
from ..progress import StageEvent, emit
from .options import LoopOptions, TilingOptions
from .pixel import loop_options, optimise_pixels

__all__ = [
    "TilePlan",
    "TilingOptions",
    "LoopOptions",
    "parse_memory",
    "available_memory",
    "activation_elements_per_pixel",
    "estimate_peak_bytes",
    "plan_for",
    "optimise_tiled",
    "aligned_tiles",
    "encoder_stride",
    "format_bytes",
]

# Calibrated on this code base (CPU, float32; see benchmarks/bench_gatys.py): peak RSS ≈
# weights + pixels * (ACT_FACTOR * activation_floats_per_pixel * 4 + per-pixel optimiser state)
ACT_FACTOR = 2.2
_BASE_BYTES = 350 * 2**20  # interpreter, torch, libraries


def parse_memory(text: str) -> int | None:
    """``"8G"``, ``"6000M"``, ``"1.5GB"`` -> bytes; ``"auto"``/"" -> None."""
    t = text.strip().lower()
    if t in ("", "auto"):
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?", t)
    if not m:
        raise ConfigError(f"max_memory {text!r}: expected a size like 8G, 6000M or 1.5GB", params="max_memory")
    value = float(m.group(1)) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}[m.group(2)]
    if value < 64 * 2**20:
        raise ConfigError(f"max_memory {text!r}: at least 64M is needed", params="max_memory")
    return int(value)


def available_memory(device: torch.device) -> int:
    """Free memory on ``device`` in bytes (CUDA: free device memory; CPU: MemAvailable)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def format_bytes(n: float) -> str:
    """Human-readable size (GiB/MiB)."""
    return f"{n / 2**30:.2f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


# per-encoder probes, dropped with the encoder
_ACT_CACHE: "weakref.WeakKeyDictionary[Any, dict[Any, float]]" = weakref.WeakKeyDictionary()
_CONTENT_CACHE: "weakref.WeakKeyDictionary[Any, dict[Any, float]]" = weakref.WeakKeyDictionary()
_STRIDE_CACHE: "weakref.WeakKeyDictionary[Any, dict[Any, int]]" = weakref.WeakKeyDictionary()


@torch.no_grad()
def activation_elements_per_pixel(encoder: Any, layers: list[str]) -> float:
    """Floats of activation kept per input pixel when running ``encoder`` up to ``layers``."""
    key = tuple(layers)
    cache = _ACT_CACHE.setdefault(encoder, {})
    if key not in cache:
        probe = torch.zeros(1, 3, 64, 64, device=next((b.device for b in encoder.buffers()), torch.device("cpu")))
        total = sum(x.numel() for _, x in encoder.iter_stages(probe, layers))
        cache[key] = total / (64 * 64)
    return cache[key]


def estimate_peak_bytes(encoder: Any, layers: list[str], size: tuple[int, int], optimizer: str, *, history: int = 100) -> int:
    """Estimated peak memory (bytes) of optimising an image of ``size`` with ``encoder``."""
    pixels = size[0] * size[1]
    act = activation_elements_per_pixel(encoder, layers) * 4 * ACT_FACTOR
    weights = sum(p.numel() * p.element_size() for p in encoder.parameters())
    state_vectors = 2 * history + 4 if optimizer == "lbfgs" else 6
    state = 3 * 4 * state_vectors
    return int(_BASE_BYTES + weights + pixels * (act + state))


TILE_MARGIN = 1.2  # headroom for the error of the per-tile estimate


@dataclass
class TilePlan:
    """How one pyramid level is tiled."""

    size: tuple[int, int]
    tile: int
    overlap: int
    tiles: list[Any]
    estimate: int  # bytes, untiled
    tile_estimate: int
    budget: int | None
    notes: list[str] = field(default_factory=list)
    overhead: int = 0  # whole-image buffers (bytes)
    limit: int = 0  # the budget in force (bytes)
    stride: int = 1  # tiles start on multiples of the encoder's downsampling factor

    def describe(self) -> str:
        b = f" (budget {format_bytes(self.budget)})" if self.budget else ""
        return (
            f"{self.size[1]}x{self.size[0]} needs ~{format_bytes(self.estimate)} untiled{b}: optimising "
            f"{len(self.tiles)} tiles of <= {self.tile}px with {self.overlap}px overlap "
            f"(~{format_bytes(self.tile_estimate)} per tile + {format_bytes(self.overhead)} whole-image buffers), "
            "style statistics over the whole image"
        )


@torch.no_grad()
def content_floats_per_pixel(encoder: Any, layers: list[str]) -> float:
    """Floats per input pixel of the content targets kept for a whole image (tiled runs)."""
    key = tuple(layers)
    cache = _CONTENT_CACHE.setdefault(encoder, {})
    if key not in cache:
        probe = torch.zeros(1, 3, 64, 64, device=next((b.device for b in encoder.buffers()), torch.device("cpu")))
        feats = encoder(probe, layers=layers) if layers else {}
        cache[key] = sum(f.numel() for f in feats.values()) / (64 * 64)
    return cache[key]


def image_overhead_bytes(loss: Any, size: tuple[int, int]) -> int:
    """Whole-image buffers of a tiled run: the image, its gradient, the content image and the
    current/initial copies (~10 image-sized tensors) plus every tile's content targets."""
    pixels = size[0] * size[1]
    image_bytes = pixels * 3 * 4
    content = content_floats_per_pixel(loss.encoder, list(loss.content_layers)) * pixels * 4 if loss.content_weight > 0 else 0
    return int(10 * image_bytes + content)


def plan_for(options: TilingOptions, loss: Any, size: tuple[int, int], device: torch.device, *, optimizer: str = "lbfgs") -> TilePlan | None:
    """A tiling plan when ``options.tile`` forces one or the image exceeds the memory budget.

    The budget is split into the whole-image buffers (``image_overhead_bytes``), a minimal
    L-BFGS history (5 pairs of image-sized vectors) and one tile's work; the tile is the largest
    (multiple of 64 px) that fits. ``lbfgs_history_for`` then gives L-BFGS whatever is left.
    A loss with a term that cannot be tiled (a statistic that is not additive) is refused.
    """
    layers = loss.layers
    estimate = estimate_peak_bytes(loss.encoder, layers, size, optimizer)
    budget = options.max_memory
    limit = budget if budget is not None else int(available_memory(device) * 0.85)
    image_bytes = size[0] * size[1] * 3 * 4
    overhead = image_overhead_bytes(loss, size) + (10 * image_bytes if optimizer == "lbfgs" else 2 * image_bytes)

    def tile_cost(edge: int) -> int:
        return estimate_peak_bytes(loss.encoder, layers, (min(edge, size[0]), min(edge, size[1])), optimizer, history=0)

    tile = int(options.tile)
    if tile == 0:
        if estimate <= limit:
            return None
        tile = max(size)
        while tile > 128 and tile_cost(tile) * TILE_MARGIN + overhead > limit:
            tile = int(tile * 0.8) // 64 * 64
        if tile_cost(tile) + overhead > limit:
            raise UsageError(
                f"a {size[1]}x{size[0]} image needs at least ~{format_bytes(tile_cost(tile) + overhead)} even in {tile}px tiles, "
                f"more than the memory budget {format_bytes(limit)}; raise max_memory or lower edge",
                params=("max_memory", "edge"),
            )
    check_tileable(loss)
    overlap = min(int(options.overlap), max(0, tile // 4))
    stride = encoder_stride(loss.encoder, layers)
    tiles = aligned_tiles(size, tile, overlap, stride)
    plan = TilePlan(size=size, tile=tile, overlap=overlap, tiles=tiles, estimate=estimate, tile_estimate=tile_cost(tile), budget=budget, stride=stride)
    plan.overhead = image_overhead_bytes(loss, size)
    plan.limit = limit
    return plan


def check_tileable(loss: Any) -> None:
    """Raise UsageError when a term of ``loss`` cannot be tiled (its ``tiling`` is None)."""
    for term in loss.terms:
        if term.tiling is None:
            raise UsageError(f"{term.untileable_reason()}, or raise max_memory", params=(*term.params, "max_memory"))


def encoder_stride(encoder: Any, layers: list[str]) -> int:
    """Downsampling factor of ``encoder`` at the deepest of ``layers`` (a power of two): tiles
    start on multiples of it so their pooling grids line up with the whole image's."""
    key = (tuple(layers), "stride")
    cache = _STRIDE_CACHE.setdefault(encoder, {})
    if key not in cache:
        with torch.no_grad():
            probe = torch.zeros(1, 3, 256, 256, device=next((b.device for b in encoder.buffers()), torch.device("cpu")))
            feats = encoder(probe, layers=layers)
        smallest = min(int(f.shape[-1]) for f in feats.values())
        cache[key] = int(2 ** max(0, min(5, round(math.log2(256 / max(1, smallest))))))
    return cache[key]


def aligned_tiles(size: tuple[int, int], tile: int, overlap: int, stride: int = 1) -> list[Any]:
    """Tiles of about ``tile`` px (at most ``tile + stride - 1``) overlapping by >= ``overlap``,
    each starting on a multiple of ``stride`` (so features computed on a tile sit on the same
    grid as the whole image's); the last tile of a row/column ends at the border."""
    from ..image.tiles import Tile, plan_tiles

    tiles = plan_tiles(size, tile, overlap)
    ys = sorted({t.y0 for t in tiles})
    xs = sorted({t.x0 for t in tiles})

    def spans(starts: list[int], length: int) -> list[tuple[int, int]]:
        return [((s // stride) * stride, min(length, s + tile)) for s in starts]

    return [Tile(y0, x0, y1, x1) for y0, y1 in spans(ys, size[0]) for x0, x1 in spans(xs, size[1])]


def _core_bounds(tiles: list[Any], size: tuple[int, int], stride: int = 1) -> list[tuple[int, int, int, int]]:
    """Disjoint 'core' rectangles (one per tile) that partition the image: each boundary sits
    in the middle of the overlap between neighbours, on a multiple of ``stride``."""
    ys = sorted({t.y0 for t in tiles})
    xs = sorted({t.x0 for t in tiles})
    y_end = {t.y0: t.y1 for t in tiles}
    x_end = {t.x0: t.x1 for t in tiles}

    def cuts(starts: list[int], ends: dict[int, int], total: int) -> dict[int, tuple[int, int]]:
        bounds = [0]
        for a, b in zip(starts, starts[1:]):
            mid = (b + ends[a]) / 2
            bounds.append(min(max(int(round(mid / stride)) * stride, b), ends[a]))
        bounds.append(total)
        return {s: (bounds[i], bounds[i + 1]) for i, s in enumerate(starts)}

    cy, cx = cuts(ys, y_end, size[0]), cuts(xs, x_end, size[1])
    return [(cy[t.y0][0], cy[t.y0][1], cx[t.x0][0], cx[t.x0][1]) for t in tiles]


def _core_mask(tile: Any, core: tuple[int, int, int, int], device: torch.device) -> torch.Tensor:
    h, w = tile.y1 - tile.y0, tile.x1 - tile.x0
    m = torch.zeros(1, 1, h, w, device=device)
    m[..., core[0] - tile.y0 : core[1] - tile.y0, core[2] - tile.x0 : core[3] - tile.x0] = 1.0
    return m


def _region_masks(core: torch.Tensor, masks: torch.Tensor | None, tile: Any) -> torch.Tensor:
    if masks is None:
        return core
    crop = masks[..., tile.y0 : tile.y1, tile.x0 : tile.x1]
    return crop * core


@dataclass
class TiledResult:
    image: torch.Tensor
    history: list[dict[str, float]]
    iterations: int
    stopped: str
    state: Any = None  # optim.pixel.LoopState when interrupted


def lbfgs_history_for(plan: TilePlan, optimizer: str, image_bytes: int) -> int:
    """L-BFGS memory that fits the budget next to one tile's work (3..100)."""
    if optimizer != "lbfgs":
        return 100
    limit = plan.limit or (plan.budget if plan.budget is not None else max(plan.tile_estimate * 4, 2**31))
    # the tile estimate is allowed TILE_MARGIN of error (measured: 1024 px in 320 px tiles peaked
    # ~17 % above it); L-BFGS also keeps ~4 image-sized vectors of its own
    spare = limit - TILE_MARGIN * plan.tile_estimate - plan.overhead - 4 * image_bytes
    return int(max(3, min(100, spare // max(1, 2 * image_bytes))))


def optimise_tiled(
    init: torch.Tensor,
    loss: Any,
    plan: TilePlan,
    options: LoopOptions | None = None,
    *,
    callback: Callable[..., None] | None = None,
    masks: torch.Tensor | None = None,
    content: torch.Tensor | None = None,
    resume: Any = None,
    start_step: int = 0,
    **settings: Any,
) -> TiledResult:
    """Optimise the whole image with its loss and gradient computed tile by tile.

    Every evaluation is the whole-image objective at the current image: a no-gradient pass
    sums every tile's style statistics (the statistics are additive over the tiles' disjoint
    cores), then a gradient pass runs each tile (its overlap as context) against the whole
    image's statistics (this tile's own sums live, the others' as constants) and adds the
    tile's gradient into one full-image gradient. Content errors are normalised by the whole
    image's target energy and TV is taken over the whole image, so the tiles' terms add up to
    the untiled loss; tiles start on the encoder's stride, so features equal the untiled ones
    wherever the overlap covers the receptive field. L-BFGS or Adam then steps the whole image:
    tiles cannot drift apart and need no blending. Memory: one tile's activations plus a few
    image-sized buffers (L-BFGS history sized to the budget). Loop settings: ``options`` and/or
    LoopOptions fields as keywords, as for ``optimise_pixels``. ``content``: the full-size
    content image (default ``init``). ``resume``: a LoopState to continue from.
    """
    check_tileable(loss)
    opts = loop_options(options, settings)
    device = init.device
    content_full = content if content is not None else init
    tiles = plan.tiles
    cores = _core_bounds(tiles, plan.size, plan.stride)
    core_masks = [_core_mask(t, c, device) for t, c in zip(tiles, cores)]
    region = [_region_masks(cm, masks, t) for cm, t in zip(core_masks, tiles)]
    style_layers = list(loss.style_layers)
    use_content = loss.content_weight > 0
    use_style = loss.has_style and loss.style_weight > 0
    per_tile = [t for t in loss.terms if t.tiling != "image"]  # evaluated on every tile
    whole_image = [t for t in loss.terms if t.tiling == "image"]  # once, on the whole image
    per_tile_names = [t.name for t in per_tile]
    content_targets: list[dict[str, torch.Tensor] | None] = []
    norm: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for t, cm in zip(tiles, core_masks):
            if not use_content:
                content_targets.append(None)
                continue
            feats = loss.encoder(content_full[..., t.y0 : t.y1, t.x0 : t.x1], layers=list(loss.content_layers))
            content_targets.append({k: v.detach() for k, v in feats.items()})
            for k, v in feats.items():
                norm[k] = norm.get(k, 0) + content_energy(v, cm)

    def statistics(x: torch.Tensor) -> list[dict[str, list[Stats]]]:
        with torch.no_grad():
            return [
                loss.style_sums_from_features(loss.encoder(x[..., t.y0 : t.y1, t.x0 : t.x1], layers=style_layers), rm)
                for t, rm in zip(tiles, region)
            ]

    def evaluate(x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        # pass 1: the whole image's style statistics at x (skipped when one tile is all)
        sums = statistics(x.detach()) if use_style and len(tiles) > 1 else None
        totals = _sum_all(loss, sums) if sums is not None else None
        grad = torch.zeros_like(x)
        values = {t.name: 0.0 for t in loss.terms}
        for i, t in enumerate(tiles):
            crop = x.detach()[..., t.y0 : t.y1, t.x0 : t.x1].clone().requires_grad_(True)
            offset = _subtract(totals, sums[i]) if totals is not None and sums is not None else None
            _, terms = loss(
                crop, style_offset=offset, content_target=content_targets[i], masks=region[i],
                content_mask=core_masks[i], content_norm=norm if use_content else None,
            )
            # "sum" terms (content): this tile's share of the whole image's value; "global" terms
            # (style): the whole image's value, whose gradient through this tile's own sums is
            # this tile's part of the whole-image gradient (its value is the same from every tile)
            part = loss.weighted_total(terms, per_tile_names)
            if part.requires_grad:
                part.backward()
                grad[..., t.y0 : t.y1, t.x0 : t.x1] += crop.grad
            for term in per_tile:
                if term.tiling == "sum":
                    values[term.name] += float(terms[term.name].detach())
                else:
                    values[term.name] = float(terms[term.name].detach())
        for term in whole_image:
            if not term.active(TermInputs(image=x, encoder=loss.encoder)):
                continue
            xt = x.detach().clone().requires_grad_(True)
            value = term.value(TermInputs(image=xt, encoder=loss.encoder))
            loss.weighted_total({term.name: value}, [term.name]).backward()
            grad += xt.grad
            values[term.name] = float(value.detach())
        x.grad = grad
        total = loss.weighted_total(values)
        return torch.tensor(total), {name: torch.tensor(v) for name, v in values.items()}

    emit(callback, StageEvent(stage=opts.stage, stages=opts.stages, description=f"scale {opts.stage + 1}/{opts.stages}: {plan.size[1]}x{plan.size[0]} in {len(tiles)} tiles", steps=opts.iterations, done=min(opts.iterations, resume.step if resume is not None else start_step)))
    image_bytes = init.numel() * init.element_size()
    r = optimise_pixels(
        init, evaluate, dataclasses.replace(opts, history_size=lbfgs_history_for(plan, opts.optimizer, image_bytes)),
        callback=callback, computes_grad=True, resume=resume, start_step=start_step,
    )
    return TiledResult(image=r.image, history=r.history, iterations=r.iterations, stopped=r.stopped, state=r.state)


@torch.no_grad()
def style_sums_tiled(loss: Any, image: torch.Tensor, masks: torch.Tensor | None, *, tile: int, overlap: int) -> dict[str, list[Stats]]:
    """Additive style sums of a large ``image`` computed tile by tile (constant memory); each
    pixel is counted once (tile cores partition the image), overlaps give context."""
    size = (int(image.shape[-2]), int(image.shape[-1]))
    stride = encoder_stride(loss.encoder, list(loss.style_layers))
    tiles = aligned_tiles(size, tile, overlap, stride)
    cores = _core_bounds(tiles, size, stride)
    per_tile = []
    for t, c in zip(tiles, cores):
        cm = _core_mask(t, c, image.device)
        feats = loss.encoder(image[..., t.y0 : t.y1, t.x0 : t.x1], layers=list(loss.style_layers))
        per_tile.append(loss.style_sums_from_features(feats, _region_masks(cm, masks, t)))
    return _sum_all(loss, per_tile)


def _sum_all(loss: Any, per_tile: list[dict[str, list[Stats]]]) -> dict[str, list[Stats]]:
    merge = loss.statistic.merge
    total = per_tile[0]
    for other in per_tile[1:]:
        total = {layer: [merge(a, b) for a, b in zip(total[layer], other[layer])] for layer in total}
    return total


def _subtract(total: dict[str, list[Stats]], part: dict[str, list[Stats]]) -> dict[str, list[Stats]]:
    """The sums of the rest of the image (additive statistics: key-wise difference)."""
    return {layer: [{k: a[k] - b[k] for k in a} for a, b in zip(total[layer], part[layer])] for layer in total}
