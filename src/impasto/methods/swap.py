"""Fast arbitrary patch-based style transfer: style swap (Chen & Schmidt 2016).

At one layer (relu3_1 by default) every 3x3 patch of the photo's features is replaced by the
style patch it correlates with best (normalised cross-correlation: a convolution with the unit-norm
style patches, argmax over them), and the swapped patches are folded back, averaging where they
overlap. The swapped features then become pixels by a short optimisation from the photo (features
matched in the mean-square sense, plus total variation). Matching is chunked over style patches,
so memory stays bounded whatever the sizes (:func:`impasto.losses.mrf.match`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F

from ..config import check_rules, config_to_dict
from ..features import DEFAULT_DEVICE
from ..image.io import DEFAULT_MAX_PIXELS
from ..optim.pixel import OPTIMIZERS, optimise_pixels
from ..progress import Event, MessageEvent, emit
from ..provenance import versions
from .inputs import load_input
from .registry import Input
from .result import Result

__all__ = ["SwapConfig", "SwapMethod", "style_swap"]


@dataclass(frozen=True)
class SwapConfig:
    """Options of ``impasto swap``."""

    layer: str = field(default="relu3_1", metadata={"help": "the layer where patches are swapped (Chen & Schmidt: relu3_1)"})
    patch_size: int = field(default=3, metadata={"help": "patch side in feature pixels"})
    patch_stride: int = field(default=1, metadata={"help": "stride between the style's patches (2 = a quarter of them: faster, coarser)"})
    edge: int = field(default=512, metadata={"help": "longest side of the output in px"})
    style_scale: float = field(default=1.0, metadata={"help": "size of the style image relative to the output (smaller = bigger strokes)"})
    iterations: int = field(default=60, metadata={"help": "optimisation steps turning the swapped features into pixels", "short": "-n"})
    optimizer: str = field(default="lbfgs", metadata={"help": "optimiser of the inversion", "choices": OPTIMIZERS})
    tv_weight: float = field(default=1e-3, metadata={"help": "total-variation weight of the inversion (smoothness)"})
    encoder: str = field(default="vgg19", metadata={"help": "feature network: vgg19, vgg16, ..."})
    weights: str = field(default="auto", metadata={"help": "encoder weights: auto, random, NAME or FILE", "metavar": "auto|random|NAME|FILE"})
    preprocessing: str = field(default="auto", metadata={"help": "input convention of a --weights file: auto, caffe or torchvision", "choices": ("auto", "caffe", "torchvision")})
    pooling: str = field(default="max", metadata={"help": "VGG pooling", "choices": ("max", "avg")})
    seed: int = field(default=0, metadata={"help": "random seed (random-weight encoders)"})
    device: str = field(default=DEFAULT_DEVICE, metadata={"help": "compute device: auto, cpu, cuda, cuda:N, mps"})
    max_pixels: int = field(default=DEFAULT_MAX_PIXELS, metadata={"help": "refuse input images with more pixels than this (decompression-bomb guard)"})

    def __post_init__(self) -> None:
        check_rules([
            (self.patch_size >= 1 and self.patch_size % 2 == 1, "patch_size", f"patch_size must be an odd number >= 1, got {self.patch_size}"),
            (self.patch_stride >= 1, "patch_stride", f"patch_stride must be >= 1, got {self.patch_stride}"),
            (self.edge >= 16, "edge", f"edge must be >= 16 px, got {self.edge}"),
            (self.style_scale > 0, "style_scale", f"style_scale must be > 0, got {self.style_scale}"),
            (self.iterations >= 0, "iterations", f"iterations must be >= 0, got {self.iterations}"),
            (self.tv_weight >= 0, "tv_weight", f"tv_weight must be >= 0, got {self.tv_weight}"),
        ])


def style_swap(content: torch.Tensor, style: torch.Tensor, *, size: int = 3, stride: int = 1, chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Swap every ``size``x``size`` patch of ``content`` (1xCxHxW features) for its best-correlated
    patch of ``style`` (1xCxH'xW'); returns (swapped features of ``content``'s shape, chosen indices)."""
    from ..losses.mrf import build_target, extract_patches, match

    target = build_target(style, size=size, stride=stride)
    pad = size // 2
    padded = F.pad(content, (pad, pad, pad, pad), mode="reflect") if pad and min(content.shape[-2:]) > pad else F.pad(content, (pad, pad, pad, pad), mode="replicate")
    patches = extract_patches(padded, size, 1)  # one per position of content
    idx = match(patches, target, chunk=chunk)
    chosen = target.raw[idx]  # N x (C*size*size)
    h, w = content.shape[-2:]
    cols = chosen.t().unsqueeze(0)  # 1 x D x N
    folded = F.fold(cols, output_size=(h + 2 * pad, w + 2 * pad), kernel_size=size)
    counts = F.fold(torch.ones_like(cols), output_size=(h + 2 * pad, w + 2 * pad), kernel_size=size)  # patches covering each pixel
    swapped = (folded / counts.clamp_min(1e-8))[..., pad : pad + h, pad : pad + w]
    return swapped, idx


class SwapMethod:
    """Fast arbitrary style transfer by swapping feature patches (Chen & Schmidt 2016)."""

    name = "swap"
    summary = "fast patch-based transfer of any painting: style swap at relu3_1 (Chen & Schmidt)"
    Config = SwapConfig
    inputs = (
        Input("content", "image", "the photo"),
        Input("style", "image", "the painting"),
    )
    context = ("download_progress",)
    main_options = ("edge", "style_scale", "iterations", "patch_size", "seed")

    def run(self, config: SwapConfig, inputs: Mapping[str, Any], *, callback: Callable[[Event], None] | None = None,
            download_progress: Callable[[int, int | None], None] | None = None) -> Result:
        """Load, swap, invert; the manifest records the options and the share of distinct patches used."""
        from ..features import build_encoder
        from ..image.resize import resize_to_edge
        from ..losses.functional import tv_loss

        t0 = time.perf_counter()
        content, alpha, c_info = load_input(inputs["content"], "content", config.max_pixels)
        style, _, s_info = load_input(inputs["style"], "style", config.max_pixels)
        torch.manual_seed(config.seed)
        encoder = build_encoder(config.encoder, weights=config.weights, layers=[config.layer], pooling=config.pooling,
                                device=config.device, preprocessing=config.preprocessing, progress=download_progress, seed=config.seed)
        device = next(encoder.buffers()).device
        c = resize_to_edge(content, config.edge).to(device)
        s = resize_to_edge(style, max(encoder.min_side, round(config.edge * config.style_scale))).to(device)
        with torch.no_grad():
            cf = encoder(c, [config.layer])[config.layer]
            sf = encoder(s, [config.layer])[config.layer]
            swapped, idx = style_swap(cf, sf, size=config.patch_size, stride=config.patch_stride)
        emit(callback, MessageEvent(f"swapped {idx.numel()} patches at {config.layer} ({idx.unique().numel()} distinct style patches)"))
        norm = swapped.pow(2).mean().clamp_min(1e-8)

        def loss(x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            f = encoder(x, [config.layer])[config.layer]
            feat = (f - swapped).pow(2).mean() / norm
            tv = tv_loss(x)
            return feat + config.tv_weight * tv, {"features": feat.detach(), "tv": tv.detach()}

        with torch.no_grad():
            start = float(loss(c)[1]["features"])
        r = optimise_pixels(c, loss, iterations=config.iterations, optimizer=config.optimizer, callback=callback)
        with torch.no_grad():
            end = float(loss(r.image)[1]["features"])
        image = r.image.clamp(0, 1).cpu()
        if alpha is not None:
            alpha = F.interpolate(alpha, size=image.shape[-2:], mode="bilinear", align_corners=False)
        manifest = {
            "method": "swap", "config": config_to_dict(config), "content": c_info, "style": s_info,
            "patches": int(idx.numel()), "distinct_style_patches": int(idx.unique().numel()), "feature_distance": [round(start, 6), round(end, 6)],
            "final_losses": r.history[-1] if r.history else {}, "versions": versions(), "time_s": round(time.perf_counter() - t0, 3),
        }
        return Result(image=image, alpha=alpha, manifest=manifest)
