"""Upscaling an image with a trained super-resolution network (``impasto train --arch superres``) or
with a classical baseline (``bicubic``, ``lanczos``), at any size, whole or tile by tile.

The network (:class:`~impasto.nets.superres.SuperResNet`) has no normalisation layers, so an output
pixel depends only on the input pixels within :attr:`~impasto.nets.superres.SuperResNet.radius`.
Tiles are therefore planned on the low-resolution image (:func:`~.ff_tiling.plan_cores`: cores
partition the image, each tile extends ``overlap`` px beyond its core), each tile is upscaled and
only its core (``scale`` times larger) is kept: with ``overlap`` >= the radius (the default), the
tiled result equals the whole-image one up to float rounding. The feed-forward tiler
(:func:`~.ff_tiling.stylise_tensor`) is not used: it assumes an output of the input's size and
streams instance-norm statistics this network does not have.

The alpha channel, if any, is upscaled bicubically; the result's manifest records the model (or
baseline), the scale, the tiling and the input.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F

from ..config import check_rules, config_to_dict
from ..errors import ImpastoError, ModelFileError, UsageError
from ..features import DEFAULT_DEVICE
from ..image.io import DEFAULT_MAX_PIXELS
from ..progress import Event, StageEvent, StepEvent, emit
from ..provenance import sha256_file, versions
from .ff_tiling import auto_tile, plan_cores
from .inputs import load_input
from .registry import Input
from .result import Result

__all__ = [
    "UpscaleConfig", "UpscaleMethod", "BASELINES", "Upscaler", "load_upscaler", "upscale_tensor", "lanczos_upscale", "bicubic_upscale",
    "Finisher", "load_finisher",
]

#: built-in model names: classical interpolation, no network
BASELINES = ("bicubic", "lanczos")


def _h(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass(frozen=True)
class UpscaleConfig:
    """Options of ``impasto upscale``."""

    scale: int = field(default=0, metadata=_h("upscaling factor: 0 = the model's own (the bicubic/lanczos baselines: 4); a trained model only does its own"))
    tile: int = field(default=0, metadata=_h("tile side in input px (memory stays that of one tile; tiles equal the whole image); 0 = automatic: inputs up to --whole-pixels run whole, bigger ones in tiles of at most --max-tile"))
    max_tile: int = field(default=256, metadata=_h("automatic tiling: largest tile side in input px"))
    whole_pixels: int = field(default=256 * 256, metadata=_h("automatic tiling: inputs with at most this many pixels run whole"))
    overlap: int = field(default=0, metadata=_h("how far (input px) each tile extends beyond its core; 0 = the network's receptive radius (exact: tiles equal the whole image); less shows seams"))
    device: str = field(default=DEFAULT_DEVICE, metadata=_h("compute device: auto, cpu, cuda, cuda:N, mps"))
    max_pixels: int = field(default=DEFAULT_MAX_PIXELS, metadata=_h("decompression-bomb limit for the input image (pixels)"))

    def __post_init__(self) -> None:
        check_rules([
            (self.scale in (0, 2, 4, 8), "scale", f"scale must be 0 (the model's), 2, 4 or 8, got {self.scale}"),
            (self.tile == 0 or self.tile >= 8, "tile", f"tile must be 0 (automatic) or >= 8 px, got {self.tile}"),
            (self.max_tile >= 16, "max_tile", f"max_tile must be >= 16 px, got {self.max_tile}"),
            (self.whole_pixels >= 0, "whole_pixels", f"whole_pixels must be >= 0, got {self.whole_pixels}"),
            (self.overlap >= 0, "overlap", f"overlap must be >= 0, got {self.overlap}"),
            (self.max_pixels >= 1, "max_pixels", f"max_pixels must be >= 1, got {self.max_pixels}"),
        ])


# ---- baselines ------------------------------------------------------------------------------


def bicubic_upscale(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic x``scale`` (a = -0.75, half-pixel centres, borders clamped), clamped to [0, 1]."""
    return F.interpolate(x, scale_factor=float(scale), mode="bicubic", align_corners=False).clamp(0.0, 1.0)


def _lanczos_matrix(n: int, scale: int, a: int = 3) -> torch.Tensor:
    """(n*scale, n) resampling matrix of Lanczos-``a`` upscaling (half-pixel centres, borders clamped)."""
    dst = (torch.arange(n * scale, dtype=torch.float64) + 0.5) / scale - 0.5
    base = torch.floor(dst).long()
    offsets = torch.arange(-a + 1, a + 1)
    idx = base[:, None] + offsets[None, :]
    d = dst[:, None] - idx.double()
    w = torch.where(d.abs() < a, torch.sinc(d) * torch.sinc(d / a), torch.zeros_like(d))
    w = w / w.sum(dim=1, keepdim=True)
    m = torch.zeros(n * scale, n, dtype=torch.float64)
    m.scatter_add_(1, idx.clamp(0, n - 1), w)
    return m.float()


def lanczos_upscale(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Lanczos-3 x``scale`` (separable, half-pixel centres, borders clamped), clamped to [0, 1]."""
    h, w = x.shape[-2:]
    mh, mw = _lanczos_matrix(h, scale).to(x), _lanczos_matrix(w, scale).to(x)
    return torch.matmul(torch.matmul(mh, x), mw.T).clamp(0.0, 1.0)


# ---- the upscaler ---------------------------------------------------------------------------


@dataclass
class Upscaler:
    """A trained network or a baseline: ``fn(low) -> high``, its ``scale``, the ``radius`` a tile
    must extend beyond its core, and what the manifest records about it."""

    fn: Callable[[torch.Tensor], torch.Tensor]
    scale: int
    radius: int
    info: dict[str, Any]
    device: torch.device


def load_upscaler(model: Any, config: UpscaleConfig) -> Upscaler:
    """The upscaler of ``model``: ``bicubic``/``lanczos`` or a superres model file (or its training
    folder). A model that is not a super-resolution network raises ModelFileError."""
    from ..features import resolve_device
    from .ff_model import load_model

    device = resolve_device(config.device)
    if isinstance(model, str) and model.lower() in BASELINES:
        name = model.lower()
        scale = config.scale or 4
        op = bicubic_upscale if name == "bicubic" else lanczos_upscale
        return Upscaler(lambda x: op(x, scale), scale, 2 if name == "bicubic" else 3, {"name": name, "kind": "baseline"}, device)
    loaded = load_model(model, device=device)
    net = loaded.net
    scale = int(getattr(net, "scale", 0) or 0)
    if not scale or not hasattr(net, "radius"):
        raise ModelFileError(f"{loaded.path}: a {loaded.arch} model is not a super-resolution network (train one with --arch superres, or use bicubic or lanczos)")
    if config.scale and config.scale != scale:
        raise UsageError(f"{loaded.path}: the model upscales x{scale}, not x{config.scale} (leave scale at 0 or train a x{config.scale} model)", params="scale")

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return net(x.to(device)).float().cpu()

    info = {
        "name": loaded.path.name, "path": str(loaded.path.resolve()), "sha256": sha256_file(loaded.path), "kind": "model", "arch": loaded.arch,
        "net_config": dict(loaded.meta.get("net_config", {})), "steps": loaded.meta.get("steps"), "encoder": loaded.meta.get("encoder"),
    }
    return Upscaler(run, scale, int(net.radius), info, device)  # type: ignore[arg-type]


def upscale_tensor(up: Upscaler, image: torch.Tensor, *, tile: int = 0, overlap: int | None = None, callback: Callable[[Event], None] | None = None) -> torch.Tensor:
    """``image`` (1x3xHxW in [0, 1]) upscaled by ``up.scale``: whole (``tile`` 0, or a tile that
    covers the image) or tile by tile, each tile extending ``overlap`` (default: the receptive
    radius) px beyond the core it keeps."""
    h, w = image.shape[-2:]
    s = up.scale
    halo = up.radius if overlap is None else int(overlap)
    if tile <= 0 or (h <= tile and w <= tile):
        return up.fn(image)
    tiles = plan_cores((h, w), tile, halo, 1)
    out = torch.empty(image.shape[0], image.shape[1], h * s, w * s)
    emit(callback, StageEvent(0, 1, "upscaling", len(tiles)))
    for n, ((ey0, ey1, ex0, ex1), (cy0, cy1, cx0, cx1)) in enumerate(tiles, 1):
        y = up.fn(image[..., ey0:ey1, ex0:ex1])
        out[..., cy0 * s : cy1 * s, cx0 * s : cx1 * s] = y[..., (cy0 - ey0) * s : (cy1 - ey0) * s, (cx0 - ex0) * s : (cx1 - ex0) * s]
        emit(callback, StepEvent(step=n, total=len(tiles), losses={}))
    return out


def choose_tile(config: UpscaleConfig, size: tuple[int, int], radius: int) -> int:
    """The tile side for ``size``: ``config.tile``, or automatic (0 = whole image)."""
    if config.tile:
        return config.tile
    halo = config.overlap or radius
    return auto_tile(size, max(config.max_tile, 2 * halo + 8), 2 * halo, 1, whole_pixels=config.whole_pixels)


class UpscaleMethod:
    """Super-resolution: upscale an image x4 or x8 with a network trained with perceptual losses."""

    name = "upscale"
    summary = "upscale an image x4/x8 with a super-resolution network (Johnson et al.) or bicubic/lanczos"
    Config = UpscaleConfig
    inputs = (
        Input("model", "model", "a super-resolution model (model.pt or its training folder, from impasto train --arch superres), or bicubic / lanczos"),
        Input("image", "image", "the image to upscale"),
    )
    context = ("upscaler",)
    main_options = ("tile", "scale", "device")

    def run(self, config: UpscaleConfig, inputs: Mapping[str, Any], *, callback: Callable[[Event], None] | None = None, upscaler: Upscaler | None = None) -> Result:
        """Load the model (or take ``upscaler``, already loaded) and the image, upscale image and
        alpha; the manifest records model, scale, tiling and input."""
        up = upscaler or load_upscaler(inputs["model"], config)
        image, alpha, info = load_input(inputs["image"], "image", config.max_pixels)
        h, w = image.shape[-2:]
        t0 = time.perf_counter()
        tile = choose_tile(config, (h, w), up.radius)
        overlap = config.overlap or up.radius
        y = upscale_tensor(up, image, tile=tile, overlap=overlap, callback=callback)
        a = None if alpha is None else bicubic_upscale(alpha.float(), up.scale)
        manifest = {
            "method": "upscale", "config": config_to_dict(config), "model": up.info, "scale": up.scale, "input": info,
            "size": [w * up.scale, h * up.scale], "tile": tile, "overlap": overlap if tile else 0,
            "exact": bool(not tile or overlap >= up.radius), "versions": versions(), "time_s": round(time.perf_counter() - t0, 3),
        }
        return Result(image=y, alpha=a, manifest=manifest)


def output_name(source: Path, scale: int, ext: str = ".png") -> str:
    """``photo.jpg`` -> ``photo_x4.png``: the file name of an upscale in an output folder."""
    return f"{source.stem}_x{scale}{ext}"



# ---- finishing stylised results (``--upscale`` of gatys, apply and video) ---------------------


@dataclass
class Finisher:
    """The post-step that finishes a stylised result at ``scale`` times its size (the ``upscale``
    option of ``gatys``, ``apply`` and ``video``), through :attr:`upscaler`."""

    upscaler: Upscaler

    @property
    def scale(self) -> int:
        """The upscaling factor."""
        return self.upscaler.scale

    def record(self, from_size: tuple[int, int] | None = None) -> dict[str, Any]:
        """The manifest entry: the model (path and SHA-256, or the baseline's name), the scale and,
        given ``from_size`` (w, h), the sizes before and after."""
        out: dict[str, Any] = {"model": dict(self.upscaler.info), "scale": self.scale}
        if from_size is not None:
            out.update(from_size=list(from_size), size=[from_size[0] * self.scale, from_size[1] * self.scale])
        return out

    def tensor(self, image: torch.Tensor, alpha: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``image`` (1x3xHxW) and its alpha upscaled (automatic exact tiling; the alpha bicubically)."""
        up = self.upscaler
        tile = choose_tile(UpscaleConfig(), (int(image.shape[-2]), int(image.shape[-1])), up.radius)
        y = upscale_tensor(up, image.float().clamp(0.0, 1.0), tile=tile)
        return y, None if alpha is None else bicubic_upscale(alpha.float(), up.scale)

    def result(self, result: Result) -> Result:
        """``result`` with image and alpha upscaled and an ``upscale`` manifest entry."""
        h, w = result.image.shape[-2:]
        image, alpha = self.tensor(result.image, result.alpha)
        return Result(image=image, alpha=alpha, manifest=dict(result.manifest, upscale=self.record((w, h))), resume_point=result.resume_point)

    def file(self, path: str | Path, *, bit_depth: int = 8) -> Path:
        """Replace the image at ``path`` by its upscale, atomically, keeping its embedded metadata
        and adding an ``upscale`` entry."""
        from ..image.io import load_image, read_metadata
        from ..image.save import save_image

        loaded = load_image(path)
        meta = dict(read_metadata(path) or {})
        h, w = loaded.image.shape[-2:]
        image, alpha = self.tensor(loaded.image, loaded.alpha)
        return save_image(path, image, alpha=alpha, metadata={**meta, "upscale": self.record((w, h))}, bit_depth=bit_depth)

    def frame(self, frame: Any) -> Any:
        """One video frame (HxWx3 uint8 array) upscaled (HsxWsx3 uint8)."""
        import numpy as np

        x = torch.from_numpy(np.array(frame, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 255.0
        y, _ = self.tensor(x)
        return (y[0].permute(1, 2, 0) * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()


def load_finisher(model: str | Path | None, *, device: str = DEFAULT_DEVICE) -> Finisher | None:
    """The finisher named by the ``upscale`` option (None: no finishing): a superres model file or
    training folder, or ``bicubic``/``lanczos`` with an optional ``:SCALE`` (2, 4 or 8; default
    4). Anything else raises UsageError naming ``upscale``, before any stylising is done."""
    if model is None or str(model) == "":
        return None
    text = str(model)
    name, _, suffix = text.partition(":")
    scale = 0
    if name.lower() in BASELINES and suffix:
        if suffix not in ("2", "4", "8"):
            raise UsageError(f"upscale {text}: a baseline takes :2, :4 or :8, got :{suffix}", params="upscale")
        text, scale = name, int(suffix)
    try:
        return Finisher(load_upscaler(text, UpscaleConfig(scale=scale, device=device)))
    except (ImpastoError, OSError) as exc:
        raise UsageError(f"upscale {model}: {exc}", params="upscale") from None
