"""Arbitrary style transfer in real time with adaptive instance normalisation (Huang & Belongie 2017).

A frozen VGG encoder maps the photo to its features ``f_c`` at one layer (``relu4_1``); the AdaIN
layer gives them the channel-wise mean and standard deviation of the painting's features ``f_s``::

    t = (f_c - mean(f_c)) / std(f_c) * std(f_s) + mean(f_s)

and a decoder trained to invert the encoder turns ``alpha * t + (1 - alpha) * f_c`` back into an
image. Any painting works without retraining: a style is nothing but its feature statistics.

- Several styles are interpolated by weight (mean and std mixed linearly, which equals mixing
  the AdaIN outputs, paper sec. 7.2).
- Spatial control (sec. 7.3): with masks, region k takes style k's statistics; the scale and
  shift become per-position maps mixed by the masks at the feature resolution. The content's
  statistics stay those of the whole image, so tiled application remains exact.
- The normalisation is an :class:`~impasto.nets.norm.InstanceNorm` (``affine=False``), so the
  whole-image content statistics can be streamed tile by tile like every other network's.
- The encoder comes from the weights manager (:func:`impasto.features.build_encoder`) and is not
  part of the state dict: model files and checkpoints hold the decoder only, and the encoder's
  ``weights_id`` recorded at training time is checked when a model is rebuilt.

Registers the architecture ``adain``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, LayerError, ModelFileError, UsageError
from ..features import build_encoder, get_encoder_spec
from ..features.extractor import unknown_layer_message
from .johnson import subpixel_upconv
from .norm import InstanceNorm
from .protocol import ImageGenerator, pad_to
from .registry import register_arch

__all__ = ["AdaINNet", "AdaINStyle", "AdaIN", "AdaINDecoder", "feature_stats", "EPS"]

#: added to variances before the square root (the content's normalisation and the style's std)
EPS = 1e-5


def feature_stats(features: torch.Tensor, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample channel mean and standard deviation ``sqrt(var + eps)`` (biased) of BCHW
    features, each (B, C). Written with plain reductions so it traces to ONNX."""
    mean = features.mean(dim=(2, 3))
    var = (features - mean[..., None, None]).square().mean(dim=(2, 3))
    return mean, (var + eps).sqrt()


@dataclass(frozen=True)
class AdaINStyle:
    """A prepared style: what :meth:`AdaINNet.prepare_style` / :meth:`AdaINNet.style_code` make.

    ``mean``/``std``: (K, C) feature statistics of K styles. ``weights``: (K,) mixing weights that
    sum to 1, or None when each of the K entries belongs to one sample of the batch (training).
    ``masks``: (K, 1, H, W) region masks at the content's full size (or None); ``pooled``: the
    same masks padded to the working size and averaged down to the feature resolution.
    ``image``: the single style image (1x3xHxW), what an exported graph takes (None for several).
    """

    mean: torch.Tensor
    std: torch.Tensor
    weights: torch.Tensor | None = None
    alpha: float = 1.0
    masks: torch.Tensor | None = None
    pooled: torch.Tensor | None = None
    image: torch.Tensor | None = None

    @property
    def count(self) -> int:
        """How many styles (or per-sample statistics) it holds."""
        return int(self.mean.shape[0])


class _Target(NamedTuple):
    """What the AdaIN layer applies: scale/shift (B, C) or per-position (1, C, h, w), the blend
    with the content features (a float or a (1,) tensor) and the masks' coverage (1, 1, h, w)."""

    scale: torch.Tensor
    shift: torch.Tensor
    alpha: float | torch.Tensor = 1.0
    coverage: torch.Tensor | None = None


class AdaIN(InstanceNorm):
    """Adaptive instance normalisation: instance norm of the content features (no parameters),
    then the style's std and mean as scale and shift, then the blend with the content features.

    The target is set by :class:`AdaINNet` around each call (``self.target``). A per-sample
    (B, C) scale and shift go through the fused norm (and export as InstanceNormalization plus a
    multiply-add); per-position maps (masks) are applied after a plain normalisation.
    """

    def __init__(self, channels: int, *, eps: float = EPS) -> None:
        super().__init__(channels, eps=eps, affine=False)
        self.target: _Target | None = None

    def scale_shift(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The style's std and mean (B, C); None for per-position maps (applied in forward)."""
        if self.target is None:
            raise RuntimeError("AdaIN: no style set (call the network through generate with a style)")
        if self.target.scale.dim() == 2:
            return self.target.scale, self.target.shift
        return None, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        target = self.target
        if target is None:
            raise RuntimeError("AdaIN: no style set (call the network through generate with a style)")
        t = super().forward(x)
        if target.scale.dim() == 4:
            t = torch.addcmul(target.shift, t, target.scale)
        a: float | torch.Tensor = target.alpha
        if target.coverage is None and not isinstance(a, torch.Tensor):
            if a == 1.0:
                return t
            if a == 0.0:
                return x
        if isinstance(a, torch.Tensor):
            a = a.reshape(-1, 1, 1, 1).to(t.dtype)
        if target.coverage is not None:
            a = target.coverage * a
        return a * t + (1 - a) * x


class AdaINDecoder(nn.Module):
    """The mirror image of the encoder up to the AdaIN layer (the paper's decoder for relu4_1):
    each convolution reversed (3x3, reflection padding, ReLU), each pooling a x2 nearest
    upsampling, no normalisation; the last convolution maps to RGB with no activation.

    ``plan``: (in channels, out channels, upsample before) per convolution. A convolution after
    an upsampling is computed in sub-pixel form (:func:`impasto.nets.johnson.subpixel_upconv`:
    same result, 2.25x fewer multiply-adds).
    """

    def __init__(self, plan: Sequence[tuple[int, int, bool]]) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(c_in, c_out, 3) for c_in, c_out, _ in plan])
        self.upsample = [bool(up) for _, _, up in plan]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.convs) - 1
        for i, (conv, up) in enumerate(zip(self.convs, self.upsample)):
            x = subpixel_upconv(x, conv.weight, conv.bias) if up else conv(F.pad(x, (1, 1, 1, 1), mode="reflect"))
            if i < last:  # in place when no gradient is needed: one full-size buffer less
                x = F.relu(x) if torch.is_grad_enabled() and x.requires_grad else torch.relu_(x)
        return x

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The textbook formulation (upsample, pad, convolve); for tests."""
        last = len(self.convs) - 1
        for i, (conv, up) in enumerate(zip(self.convs, self.upsample)):
            if up:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = conv(F.pad(x, (1, 1, 1, 1), mode="reflect"))
            if i < last:
                x = F.relu(x)
        return x


def _decoder_plan(stages: Sequence[tuple[str, nn.Module]], encoder: str) -> tuple[list[tuple[int, int, bool]], int]:
    """The decoder's convolutions mirroring ``stages`` (the encoder up to the AdaIN layer) and
    the number of poolings among them."""
    plan: list[tuple[int, int, bool]] = []
    up, pools = False, 0
    for name, module in reversed(stages):
        if isinstance(module, nn.Conv2d):
            if module.kernel_size != (3, 3) or module.stride != (1, 1) or module.groups != 1:
                raise ConfigError(f"encoder {encoder}: adain mirrors plain 3x3 convolutions; {name} is not one", params="encoder")
            plan.append((module.out_channels, module.in_channels, up))
            up = False
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            up, pools = True, pools + 1
        elif not isinstance(module, nn.ReLU):
            raise ConfigError(f"encoder {encoder}: adain needs a VGG-type encoder (vgg19, vgg16, tiny_vgg); {name} is a {type(module).__name__}", params="encoder")
    if not plan or up:
        raise ConfigError(f"encoder {encoder}: the AdaIN layer must follow a convolution (e.g. relu4_1)", params="layer")
    return plan, pools


class _AdaINExport(nn.Module):
    """Export wrapper: ``forward(image, style, style_alpha)``; the style's statistics are computed
    from the style image inside the graph."""

    def __init__(self, net: AdaINNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, style: torch.Tensor, style_alpha: torch.Tensor) -> torch.Tensor:
        mean, std = feature_stats(self.net.encode(style))
        return self.net.decode(self.net.transfer(self.net.encode(image), _Target(std, mean, style_alpha)))


class AdaINNet(ImageGenerator):
    """The AdaIN style-transfer network: frozen encoder, AdaIN layer, trained decoder.

    ``encoder``, ``weights``, ``pooling``, ``preprocessing`` and ``seed`` (random weights only)
    build the encoder through :func:`impasto.features.build_encoder`; ``layer`` is where AdaIN
    acts and what the decoder inverts. ``weights_id``: the encoder weights the decoder was trained
    against (None for a fresh network); other weights raise :class:`ModelFileError`.

    Output: the last convolution is plain (as in the paper) and the result is clamped to [0, 1]
    in eval mode only. A sigmoid would squash the decoder's range and starve the gradients of
    dark and bright pixels while it learns to invert arbitrary AdaIN features; the losses are
    measured by the encoder, which takes any values, so training sees the raw output.
    """

    takes = ("content", "style")
    multiple = 8
    channels_last_cpu = False  # its encoder picks its own layout; channels-last decoding measured no faster

    def __init__(
        self,
        encoder: str = "vgg19",
        layer: str = "relu4_1",
        weights: str = "auto",
        weights_id: str | None = None,
        pooling: str = "max",
        preprocessing: str = "auto",
        seed: int = 0,
    ) -> None:
        super().__init__()
        spec = get_encoder_spec(encoder)
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            skeleton = spec.build()
        stages = spec.stages(skeleton)
        names = [n for n, _ in stages]
        if layer not in names:
            raise LayerError(unknown_layer_message(layer, spec.name, names))
        kept = stages[: names.index(layer) + 1]
        plan, pools = _decoder_plan(kept, encoder)
        # every layer up to the AdaIN layer, so the training recipe reads its style layers from the same encoder
        self.encoder = build_encoder(encoder, weights=weights, layers=[n for n, _ in kept], pooling=pooling, seed=int(seed), preprocessing=preprocessing)
        built = self.encoder.weights_id
        if weights_id is not None and weights_id != built:
            raise ModelFileError(
                f"the decoder was trained against encoder weights {weights_id}, but the given ones ({weights}) are {built}; give the matching weights with encoder_weights",
                params="encoder_weights",
            )
        self.layer = layer
        self.multiple = 2**pools
        self.norm = AdaIN(plan[0][0])
        self.decoder = AdaINDecoder(plan)
        self.config: dict[str, Any] = {
            "encoder": encoder,
            "layer": layer,
            "weights": weights,
            "weights_id": weights_id,
            "pooling": pooling,
            "preprocessing": preprocessing,
            "seed": int(seed),
        }

    # ---- state: the decoder only ----------------------------------------------------------
    def state_dict(self, *, destination: Any = None, prefix: str = "", keep_vars: bool = False) -> Any:  # type: ignore[override]
        """The decoder's tensors (``decoder.*``); the encoder comes from the weights manager."""
        return self.decoder.state_dict(destination=destination, prefix=prefix + "decoder.", keep_vars=keep_vars)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:  # type: ignore[override]
        """Load the decoder from ``decoder.*`` keys; with ``strict`` any other key is an error."""
        own = {k[len("decoder."):]: v for k, v in state_dict.items() if k.startswith("decoder.")}
        other = sorted(k for k in state_dict if not k.startswith("decoder."))
        if strict and other:
            raise RuntimeError(f"unexpected keys for an adain network (it holds the decoder only): {', '.join(other[:4])}")
        result = self.decoder.load_state_dict(own, strict=strict, assign=assign)
        return type(result)(["decoder." + k for k in result.missing_keys], ["decoder." + k for k in result.unexpected_keys] + other)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The decoder's parameters (the encoder is frozen)."""
        return list(self.decoder.parameters())

    # ---- the pieces ---------------------------------------------------------------------
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """Features of ``image`` (BCHW in [0, 1]) at the AdaIN layer."""
        return self.encoder(image, layers=[self.layer])[self.layer]

    def transfer(self, content_features: torch.Tensor, target: _Target) -> torch.Tensor:
        """The AdaIN layer applied to ``content_features`` with ``target``."""
        self.norm.target = target
        try:
            return self.norm(content_features)
        finally:
            self.norm.target = None

    def adain_features(self, content_features: torch.Tensor, style: AdaINStyle, *, origin: tuple[int, int] = (0, 0), size: tuple[int, int] | None = None) -> torch.Tensor:
        """``alpha * t + (1 - alpha) * f_c`` for content features at the AdaIN layer (``size``:
        the input px they come from, default ``multiple`` times their size)."""
        if size is None:
            size = (content_features.shape[-2] * self.multiple, content_features.shape[-1] * self.multiple)
        return self.transfer(content_features, self._target(style, content_features, origin, size))

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """The decoder; clamped to [0, 1] in eval mode."""
        y = self.decoder(features)
        return y if self.training else y.clamp(0.0, 1.0)

    # ---- styles -------------------------------------------------------------------------
    def _device(self) -> torch.device:
        return self.encoder.mean.device

    def prepare_style(self, images: Sequence[torch.Tensor], weights: Sequence[float] | None = None, *, alpha: float = 1.0, masks: torch.Tensor | None = None) -> AdaINStyle:
        """The style of one or more paintings (each 1x3xHxW in [0, 1]) for :meth:`generate`.

        ``weights`` mix several styles (>= 0, not all 0; normalised to sum 1; default equal).
        ``alpha`` in [0, 1]: 0 keeps the content's features, 1 takes the style's fully.
        ``masks`` (K, 1, H, W) in [0, 1] at the content image's full size, one per style: region
        k takes style k (weights scale the masks where they overlap); where no mask covers the
        image, the content's features are kept.
        """
        images = list(images)
        if not images:
            raise UsageError("give at least one style image", params="style")
        for i, im in enumerate(images):
            if not isinstance(im, torch.Tensor) or im.dim() != 4 or im.shape[:2] != (1, 3):
                raise UsageError(f"style image {i} must be a 1x3xHxW tensor, got {tuple(getattr(im, 'shape', ()))}", params="style")
            if min(im.shape[-2:]) < self.min_side:
                raise UsageError(f"style image {i} is {im.shape[-2]}x{im.shape[-1]} px; each side must be at least {self.min_side} px", params="style")
        k = len(images)
        if weights is None:
            w = [1.0] * k
        else:
            w = [float(x) for x in weights]
            if len(w) != k:
                raise ConfigError(f"style_weights has {len(w)} entries for {k} style image(s)", params="style_weights")
            if any(not math.isfinite(x) or x < 0 for x in w):
                raise ConfigError(f"style_weights must be >= 0, got {', '.join(f'{x:g}' for x in w)}", params="style_weights")
            if sum(w) <= 0:
                raise ConfigError("style_weights must not all be 0", params="style_weights")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {alpha}", params="alpha")
        pooled = None
        if masks is not None:
            masks = self._check_masks(masks, k)
            full = pad_to(masks, self.padded_size(tuple(masks.shape[-2:])))  # type: ignore[arg-type]
            pooled = F.avg_pool2d(full, self.multiple)
        device = self._device()
        means, stds = [], []
        with torch.no_grad():
            for im in images:
                mean, std = feature_stats(self.encode(im.to(device=device, dtype=torch.float32)))
                means.append(mean)
                stds.append(std)
        wt = torch.tensor(w, dtype=torch.float32)
        return AdaINStyle(
            mean=torch.cat(means).float(),
            std=torch.cat(stds).float(),
            weights=wt / wt.sum(),
            alpha=float(alpha),
            masks=masks,
            pooled=pooled,
            image=images[0].detach().float().cpu() if k == 1 else None,
        )

    def _check_masks(self, masks: Any, k: int) -> torch.Tensor:
        if not isinstance(masks, torch.Tensor) or masks.dim() != 4 or masks.shape[1] != 1:
            raise ConfigError(f"masks must be a Kx1xHxW tensor, got {tuple(getattr(masks, 'shape', ()))}", params="masks")
        if masks.shape[0] != k:
            raise ConfigError(f"masks has {masks.shape[0]} mask(s) for {k} style image(s); give one per style", params="masks")
        masks = masks.detach().float().cpu()
        if not bool(torch.isfinite(masks).all()) or float(masks.min()) < 0 or float(masks.max()) > 1:
            raise ConfigError("masks must hold values in [0, 1]", params="masks")
        return masks

    def style_code(self, style_batch: torch.Tensor) -> AdaINStyle:
        """Per-sample statistics of a batch of paintings (Bx3xHxW): sample b of the content batch
        takes painting b (training)."""
        if style_batch.dim() != 4 or style_batch.shape[1] != 3:
            raise UsageError(f"style_batch must be Bx3xHxW, got {tuple(style_batch.shape)}", params="style")
        with torch.no_grad():
            mean, std = feature_stats(self.encode(style_batch.to(self._device())))
        return AdaINStyle(mean=mean.float(), std=std.float(), image=style_batch.detach().float().cpu())

    def style_from_features(self, features: torch.Tensor, *, image: torch.Tensor | None = None) -> AdaINStyle:
        """Per-sample statistics from features already computed at the AdaIN layer (training
        reads several layers of the painting at once)."""
        mean, std = feature_stats(features)
        return AdaINStyle(mean=mean, std=std, image=image)

    def _mask_tile(self, style: AdaINStyle, origin: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
        """The masks of the part of the image at ``origin`` of ``size`` px, at the feature resolution."""
        assert style.masks is not None and style.pooled is not None
        m = self.multiple
        full_h, full_w = style.masks.shape[-2:]
        ph, pw = self.padded_size(size)
        oy, ox = (int(o) for o in origin)
        canvas_h, canvas_w = style.pooled.shape[-2] * m, style.pooled.shape[-1] * m
        # a part whose size is not a multiple of the stride ends at the image's border
        ends_ok = (size[0] % m == 0 or oy + size[0] == full_h) and (size[1] % m == 0 or ox + size[1] == full_w)
        if oy < 0 or ox < 0 or oy + ph > canvas_h or ox + pw > canvas_w or not ends_ok:
            raise UsageError(f"masks are {full_h}x{full_w} px, which does not fit a {size[0]}x{size[1]} image part at {oy},{ox}; give masks at the content image's size", params="masks")
        if oy % m == 0 and ox % m == 0:
            return style.pooled[..., oy // m : (oy + ph) // m, ox // m : (ox + pw) // m]
        full = pad_to(style.masks, (canvas_h, canvas_w))
        return F.avg_pool2d(full[..., oy : oy + ph, ox : ox + pw], m)

    def _target(self, style: AdaINStyle, like: torch.Tensor, origin: tuple[int, int], size: tuple[int, int]) -> _Target:
        """Scale, shift, alpha and coverage for content features ``like``."""
        dev, dt = like.device, like.dtype if like.dtype in (torch.float32, torch.float64) else torch.float32
        mean, std = style.mean.to(dev, dt), style.std.to(dev, dt)
        if style.weights is None:  # one set of statistics per sample
            if style.count not in (1, like.shape[0]):
                raise UsageError(f"the style holds {style.count} per-sample statistics for a batch of {like.shape[0]}", params="style")
            return _Target(std, mean, style.alpha)
        w = style.weights.to(dev, dt)
        if style.pooled is None:
            return _Target((w[:, None] * std).sum(0, keepdim=True), (w[:, None] * mean).sum(0, keepdim=True), style.alpha)
        masks = self._mask_tile(style, origin, size).to(dev, dt)
        weighted = masks * w.view(-1, 1, 1, 1)
        total = weighted.sum(0, keepdim=True)
        covered = total > 0
        mix = torch.where(covered, weighted / torch.where(covered, total, torch.ones_like(total)), torch.zeros_like(weighted))
        scale = torch.einsum("kxhw,kc->xchw", mix, std)
        shift = torch.einsum("kxhw,kc->xchw", mix, mean)
        coverage = masks.sum(0, keepdim=True).clamp(max=1.0) * covered
        return _Target(scale, shift, style.alpha, coverage)

    # ---- the generator protocol ---------------------------------------------------------
    def forward(self, image: torch.Tensor, style: AdaINStyle | None = None) -> torch.Tensor:  # type: ignore[override]
        """Stylise ``image`` (BCHW in [0, 1], any size) with ``style``."""
        return self.generate(image, style=style)

    def generate(
        self,
        content: torch.Tensor | None,
        *,
        size: tuple[int, int] | None = None,
        seed: int | Sequence[int] = 0,
        origin: tuple[int, int] = (0, 0),
        batch: int = 1,
        style: Any = None,
    ) -> torch.Tensor:
        """Stylise ``content`` with ``style`` (an :class:`AdaINStyle`); with masks, ``origin`` says
        where this part lies in the full image. ``seed`` and ``batch`` are not needed."""
        if content is None:
            raise UsageError("an AdaIN model stylises a content image: pass content", params="content")
        if style is None:
            raise UsageError("an AdaIN model needs a style image: pass style (net.prepare_style([painting]))", params="style")
        if not isinstance(style, AdaINStyle):
            raise UsageError(f"style must be what prepare_style returns, got {type(style).__name__}", params="style")
        h, w = content.shape[-2:]
        padded = self.padded_size((h, w))
        x = pad_to(content, padded)
        f = self.encode(x)
        y = self.decode(self.transfer(f, self._target(style, f, origin, (h, w))))
        return y[..., :h, :w] if padded != (h, w) else y

    def core_inputs(
        self, content: torch.Tensor | None, size: tuple[int, int], *, seed: int | Sequence[int] = 0, origin: tuple[int, int] = (0, 0), batch: int = 1, style: Any = None
    ) -> dict[str, torch.Tensor]:
        """``image`` (the content padded to the working size), ``style`` (the style image) and
        ``style_alpha`` ((1,)): a single style without masks only. Without a style (the
        receptive-field probe, which needs only the shapes) the content stands in for it."""
        if content is None:
            raise UsageError("an AdaIN model stylises a content image: pass content", params="content")
        image = pad_to(content, self.padded_size(size)).float().contiguous()
        if style is None:
            return {"image": image, "style": image[:1].clone(), "style_alpha": torch.ones(1)}
        if not isinstance(style, AdaINStyle):
            raise UsageError(f"style must be what prepare_style returns, got {type(style).__name__}", params="style")
        if style.image is None or style.image.shape[0] != 1 or style.masks is not None:
            raise UsageError("several styles or style masks need the torch runtime (an exported AdaIN model takes one style image)", params="runtime")
        return {"image": image, "style": style.image.float().contiguous(), "style_alpha": torch.tensor([float(style.alpha)])}

    def example_inputs(self) -> dict[str, torch.Tensor]:
        """A random photo of (about) 64x48 px at the working size, a 64x64 painting and alpha 1."""
        return {"image": torch.rand(1, 3, *self.padded_size((64, 48))), "style": torch.rand(1, 3, 64, 64), "style_alpha": torch.ones(1)}

    def export_module(self) -> nn.Module:
        """A module whose ``forward(image, style, style_alpha)`` is the network at its working size
        (in the network's mode: exporters restore the wrapper's mode, and with it the network's)."""
        return _AdaINExport(self).train(self.training)


_DEFAULTS = {"encoder": "vgg19", "layer": "relu4_1", "weights": "auto", "weights_id": None, "pooling": "max", "preprocessing": "auto", "seed": 0}
_DESCRIPTION = "AdaIN arbitrary style transfer (Huang & Belongie 2017): frozen VGG19 to relu4_1, adaptive instance norm, mirrored decoder; any painting"
# throw-away twins (sizes, receptive field: the ONNX runner) need no pretrained encoder
register_arch(
    "adain", _DESCRIPTION, AdaINNet, defaults=_DEFAULTS, twin={"weights": "random", "weights_id": None},
    recipe="impasto.methods.adain_train:AdaINTrainConfig:train_adain",
)
