"""Fast arbitrary patch-based style transfer: style swap (Chen & Schmidt 2016).

At one layer (relu3_1 by default) every 3x3 patch of the photo's features is replaced by the
style patch it correlates with best (normalised cross-correlation: a convolution with the unit-norm
style patches, argmax over them), and the swapped patches are folded back, averaging where they
overlap (:func:`impasto.nets.swapinverse.style_swap`). The swapped features then become pixels
either by a short optimisation from the photo (features matched in the mean-square sense, plus
total variation) or, given a trained swap-inverse network (``model``, see
:mod:`impasto.methods.swapinverse_train`), by its decoder in one pass; the manifest's
``inversion`` says which (``"optimisation"`` or ``"network"``). Matching is chunked over style
patches, so memory stays bounded whatever the sizes (:func:`impasto.losses.mrf.match`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F

from ..config import check_rules, config_to_dict
from ..errors import ConfigError, UsageError
from ..features import DEFAULT_DEVICE
from ..image.io import DEFAULT_MAX_PIXELS
from ..nets.swapinverse import EncoderWeightsMismatch, style_swap
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

    layer: str = field(default="relu3_1", metadata={"help": "the layer where patches are swapped (Chen & Schmidt: relu3_1; with a model: the model's)"})
    patch_size: int = field(default=3, metadata={"help": "patch side in feature pixels"})
    patch_stride: int = field(default=1, metadata={"help": "stride between the style's patches (2 = a quarter of them: faster, coarser)"})
    edge: int = field(default=512, metadata={"help": "longest side of the output in px"})
    style_scale: float = field(default=1.0, metadata={"help": "size of the style image relative to the output (smaller = bigger strokes)"})
    iterations: int = field(default=60, metadata={"help": "optimisation steps turning the swapped features into pixels (without a model)", "short": "-n"})
    optimizer: str = field(default="lbfgs", metadata={"help": "optimiser of the inversion (without a model)", "choices": OPTIMIZERS})
    tv_weight: float = field(default=1e-3, metadata={"help": "total-variation weight of the inversion (smoothness; without a model)"})
    encoder: str = field(default="vgg19", metadata={"help": "feature network: vgg19, vgg16, ... (with a model: the model's)"})
    weights: str = field(default="auto", metadata={"help": "encoder weights: auto, random, NAME or FILE (with a model, auto: the model's)", "metavar": "auto|random|NAME|FILE"})
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


class SwapMethod:
    """Fast arbitrary style transfer by swapping feature patches (Chen & Schmidt 2016)."""

    name = "swap"
    summary = "fast patch-based transfer of any painting: style swap at relu3_1 (Chen & Schmidt)"
    Config = SwapConfig
    inputs = (
        Input("content", "image", "the photo"),
        Input("style", "image", "the painting"),
        Input("model", "model", "optional trained swap-inverse network (model.pt or training folder, from impasto train --arch swap-inverse): decodes the swapped features in one pass instead of optimising", required=False),
    )
    context = ("download_progress",)
    main_options = ("edge", "style_scale", "iterations", "patch_size", "seed")

    def run(self, config: SwapConfig, inputs: Mapping[str, Any], *, callback: Callable[[Event], None] | None = None,
            download_progress: Callable[[int, int | None], None] | None = None) -> Result:
        """Load, swap, invert (by the optimisation, or by the decoder of ``inputs["model"]``); the
        manifest records the options, how the features were inverted and the share of distinct
        patches used."""
        from ..features import build_encoder
        from ..image.resize import resize_to_edge
        from ..losses.functional import tv_loss
        from ..nets.protocol import pad_to

        t0 = time.perf_counter()
        content, alpha, c_info = load_input(inputs["content"], "content", config.max_pixels)
        style, _, s_info = load_input(inputs["style"], "style", config.max_pixels)
        torch.manual_seed(config.seed)
        net, model_info = (None, None) if inputs.get("model") is None else _load_inverse(inputs["model"], config)
        if net is None:
            encoder = build_encoder(config.encoder, weights=config.weights, layers=[config.layer], pooling=config.pooling,
                                    device=config.device, preprocessing=config.preprocessing, progress=download_progress, seed=config.seed)
            layer = config.layer
        else:
            encoder, layer = net.encoder, net.layer
        device = next(encoder.buffers()).device
        c = resize_to_edge(content, config.edge).to(device)
        s = resize_to_edge(style, max(encoder.min_side, round(config.edge * config.style_scale))).to(device)
        size = tuple(c.shape[-2:])
        if net is not None:  # the decoder works at multiples of its stride: pad, crop at the end
            c = pad_to(c, net.padded_size(size))
        with torch.no_grad():
            cf = encoder(c, [layer])[layer]
            sf = encoder(s, [layer])[layer]
            swapped, idx = style_swap(cf, sf, size=config.patch_size, stride=config.patch_stride)
        emit(callback, MessageEvent(f"swapped {idx.numel()} patches at {layer} ({idx.unique().numel()} distinct style patches)"))
        norm = swapped.pow(2).mean().clamp_min(1e-8)

        def loss(x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            f = encoder(x, [layer])[layer]
            feat = (f - swapped).pow(2).mean() / norm
            tv = tv_loss(x)
            return feat + config.tv_weight * tv, {"features": feat.detach(), "tv": tv.detach()}

        with torch.no_grad():
            start = float(loss(c)[1]["features"])
        if net is None:
            r = optimise_pixels(c, loss, iterations=config.iterations, optimizer=config.optimizer, callback=callback)
            image, final = r.image, (r.history[-1] if r.history else {})
        else:
            with torch.no_grad():
                image = net.decode(swapped)
                final = {k: float(v) for k, v in loss(image)[1].items()}
        with torch.no_grad():
            end = float(loss(image)[1]["features"])
        image = image[..., : size[0], : size[1]].clamp(0, 1).cpu()
        if alpha is not None:
            alpha = F.interpolate(alpha, size=image.shape[-2:], mode="bilinear", align_corners=False)
        manifest = {
            "method": "swap", "config": config_to_dict(config), "content": c_info, "style": s_info,
            "inversion": "optimisation" if net is None else "network", **({"model": model_info} if model_info else {}),
            "patches": int(idx.numel()), "distinct_style_patches": int(idx.unique().numel()), "feature_distance": [round(start, 6), round(end, 6)],
            "final_losses": final, "versions": versions(), "time_s": round(time.perf_counter() - t0, 3),
        }
        return Result(image=image, alpha=alpha, manifest=manifest)


#: options whose value, when not the default, must agree with the model's own (its net_config)
_MODEL_OWNED = ("encoder", "layer", "pooling", "preprocessing")


def _load_inverse(model: Any, config: SwapConfig) -> tuple[Any, dict[str, Any]]:
    """The swap-inverse network of ``model`` (a model file or training folder) on ``config.device``
    and its description for the manifest. Its encoder (and weights) is the one the swap uses:
    ``encoder``, ``layer``, ``pooling``, ``weights`` and ``preprocessing`` left at their defaults
    mean the model's own; other values must agree with it (one-line errors naming the option)."""
    from .ff_model import load_model, resolve_model_path

    path = resolve_model_path(model)
    peek: dict[str, Any] = {}
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        peek = {"arch": data.get("arch"), **dict(data.get("net_config", {}))} if isinstance(data, dict) else {}
    except Exception:  # noqa: BLE001 - unreadable: load_model below says why
        pass
    if peek.get("arch") not in (None, "swap-inverse"):
        raise UsageError(f"model: {path} holds an arch {peek['arch']} network; swap needs a swap-inverse network (impasto train --arch swap-inverse)", params="model")
    defaults = SwapConfig()
    for name in _MODEL_OWNED:
        given, own = getattr(config, name), peek.get(name)
        if own is not None and given != getattr(defaults, name) and given != own:
            raise ConfigError(f"{name}: {path} was trained with {own}, not {given}; leave it out (the model's own is used)", params=name)
    try:
        loaded = load_model(path, device=config.device, net_overrides={"weights": config.weights} if config.weights != "auto" else None)
    except EncoderWeightsMismatch as exc:
        raise ConfigError(f"weights: {exc.given} are not what {path} was trained with ({exc.built}, not {exc.trained}); leave it at auto (the model's own)", params="weights") from None
    if loaded.arch != "swap-inverse":
        raise UsageError(f"model: {path} holds an arch {loaded.arch} network; swap needs a swap-inverse network (impasto train --arch swap-inverse)", params="model")
    net_config = loaded.meta.get("net_config", {})
    info = {"path": str(path), "arch": loaded.arch, "steps": loaded.meta.get("steps"), "encoder": net_config.get("encoder"),
            "layer": net_config.get("layer"), "weights_id": net_config.get("weights_id")}
    return loaded.net, info
