"""The inverse network of style swap (Chen & Schmidt 2016, "Fast Patch-based Style Transfer of Arbitrary Style").

Style swap replaces every ``size x size`` patch of the photo's features at one layer
(``relu3_1``) by the painting's patch it correlates with best (normalised cross-correlation, the
exact matching of :func:`impasto.losses.mrf.match`), and folds the chosen patches back, averaging
where they overlap (:func:`style_swap`). What turns the swapped features into pixels is either a
short optimisation (``impasto swap``) or this network's decoder, trained to invert the encoder
on photos, paintings and swapped features (:mod:`impasto.methods.swapinverse_train`): one pass.

- The encoder is frozen and comes from the weights manager (:func:`impasto.features.build_encoder`),
  as in AdaIN (:mod:`.adain`): model files hold the decoder only, and the encoder's
  ``weights_id`` recorded at training time is checked when a model is rebuilt.
- The decoder mirrors the encoder up to the swap layer (reflection padding, nearest
  upsampling, no normalisation): AdaIN's :class:`~impasto.nets.adain.AdaINDecoder` built from
  the same plan (:func:`~impasto.nets.adain._decoder_plan`) at another depth.
- As a generator (``takes = ("content", "style")``) it swaps a photo's features for a
  painting's patches and decodes them; ``alpha`` blends the swapped and the photo's own features.

Registers the architecture ``swap-inverse``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, LayerError, ModelFileError, UsageError
from ..features import build_encoder, get_encoder_spec
from ..features.extractor import unknown_layer_message
from ..losses.mrf import PatchTarget, build_target, extract_patches, match
from .adain import AdaINDecoder, AdaINNet, _decoder_plan
from .protocol import ImageGenerator, pad_to
from .registry import register_arch

__all__ = ["SwapInverseNet", "SwapStyle", "EncoderWeightsMismatch", "style_swap", "swap_features"]


class EncoderWeightsMismatch(ModelFileError):
    """The decoder was trained against other encoder weights than the ones given (``trained``:
    the recorded ``weights_id``; ``given``: the weights asked for; ``built``: their id)."""

    def __init__(self, message: str, *, trained: str, given: str, built: str, params: Sequence[str] | str = ()) -> None:
        super().__init__(message, params=params)
        self.trained, self.given, self.built = trained, given, built


def swap_features(content: torch.Tensor, target: PatchTarget, *, chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Swap every patch of ``content`` (BxCxHxW features) for its best-correlated patch of
    ``target`` (the style's patches, :func:`impasto.losses.mrf.build_target`); returns (swapped
    features of ``content``'s shape, chosen indices: B*H*W, sample by sample, row-major)."""
    size = target.size
    pad = size // 2
    padded = F.pad(content, (pad, pad, pad, pad), mode="reflect") if pad and min(content.shape[-2:]) > pad else F.pad(content, (pad, pad, pad, pad), mode="replicate")
    patches = extract_patches(padded, size, 1)  # one per position of content
    idx = match(patches, target, chunk=chunk)
    chosen = target.raw[idx]  # (B*N) x (C*size*size)
    b, (h, w) = content.shape[0], content.shape[-2:]
    cols = chosen.view(b, h * w, -1).transpose(1, 2)  # B x D x N
    folded = F.fold(cols, output_size=(h + 2 * pad, w + 2 * pad), kernel_size=size)
    counts = F.fold(torch.ones_like(cols[:1]), output_size=(h + 2 * pad, w + 2 * pad), kernel_size=size)  # patches covering each pixel
    swapped = (folded / counts.clamp_min(1e-8))[..., pad : pad + h, pad : pad + w]
    return swapped, idx


def style_swap(content: torch.Tensor, style: torch.Tensor, *, size: int = 3, stride: int = 1, chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Swap every ``size``x``size`` patch of ``content`` (1xCxHxW features) for its best-correlated
    patch of ``style`` (1xCxH'xW'); returns (swapped features of ``content``'s shape, chosen indices)."""
    return swap_features(content, build_target(style, size=size, stride=stride), chunk=chunk)


@dataclass(frozen=True)
class SwapStyle:
    """A prepared style (what :meth:`SwapInverseNet.prepare_style` makes): the paintings' patches
    at the swap layer (pooled), the blend ``alpha`` with the photo's own features (1: fully
    swapped) and the painting (1x3xHxW; None for several)."""

    target: PatchTarget
    alpha: float = 1.0
    image: torch.Tensor | None = None


class _SwapExport(nn.Module):
    """``forward(image, style)``: encode both, swap, decode: what the receptive-field probe
    sends NaN through. It does not export (tracing refuses with a one-line error): the exact
    matching's control flow depends on the data.

    The swapped feature at a position depends on the photo's patches covering it (through the
    matching), but the values are the painting's, so ``0 * (mean over those patches)`` is added
    to make that dependency visible to the probe (NaN in, NaN out; nothing otherwise)."""

    def __init__(self, net: SwapInverseNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export() or torch.jit.is_tracing():
            raise UsageError("a swap-inverse model does not export to ONNX or TorchScript (its exact patch matching is data-dependent); apply it with runtime torch", params="runtime")
        f = self.net.encode(image)
        size = int(self.net.config["patch_size"])
        target = build_target(self.net.encode(style).nan_to_num(0.0), size=size, stride=int(self.net.config["patch_stride"]))
        swapped, _ = swap_features(f.nan_to_num(0.0), target)
        # swapped[q] comes from the patches covering q, each of which reads size // 2 further
        reach = F.avg_pool2d(F.pad(f, (size - 1,) * 4, mode="replicate"), 2 * size - 1, stride=1)
        return self.net.decode(swapped + 0.0 * reach)


class SwapInverseNet(ImageGenerator):
    """Frozen encoder up to the swap layer + the trained decoder inverting it.

    ``encoder``, ``weights``, ``pooling``, ``preprocessing`` and ``seed`` (random weights only)
    build the encoder through :func:`impasto.features.build_encoder`; ``layer`` is where patches
    are swapped and what the decoder inverts. ``weights_id``: the encoder weights the decoder was
    trained against (None for a fresh network); other weights raise :class:`EncoderWeightsMismatch`
    (a :class:`ModelFileError` naming ``encoder_weights``). ``patch_size``/``patch_stride``: the
    swap of :meth:`generate` (the patch side in feature px; the stride between the painting's
    patches). Output: a plain last convolution, clamped to [0, 1] in eval mode only (as AdaIN's).
    """

    takes = ("content", "style")
    multiple = 4

    def __init__(
        self,
        encoder: str = "vgg19",
        layer: str = "relu3_1",
        weights: str = "auto",
        weights_id: str | None = None,
        pooling: str = "max",
        preprocessing: str = "auto",
        seed: int = 0,
        patch_size: int = 3,
        patch_stride: int = 1,
    ) -> None:
        super().__init__()
        if int(patch_size) < 1 or int(patch_size) % 2 == 0:
            raise ConfigError(f"patch_size must be an odd number >= 1, got {patch_size}", params="patch_size")
        if int(patch_stride) < 1:
            raise ConfigError(f"patch_stride must be >= 1, got {patch_stride}", params="patch_stride")
        spec = get_encoder_spec(encoder)
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            skeleton = spec.build()
        stages = spec.stages(skeleton)
        names = [n for n, _ in stages]
        if layer not in names:
            raise LayerError(unknown_layer_message(layer, spec.name, names))
        plan, pools = _decoder_plan(stages[: names.index(layer) + 1], encoder)
        self.encoder = build_encoder(encoder, weights=weights, layers=[layer], pooling=pooling, seed=int(seed), preprocessing=preprocessing)
        built = self.encoder.weights_id
        if weights_id is not None and weights_id != built:
            raise EncoderWeightsMismatch(
                f"the decoder was trained against encoder weights {weights_id}, but the given ones ({weights}) are {built}; give the matching weights with encoder_weights",
                trained=str(weights_id), given=str(weights), built=str(built), params="encoder_weights",
            )
        self.layer = layer
        self.multiple = 2**pools
        self.decoder = AdaINDecoder(plan)
        self.config: dict[str, Any] = {
            "encoder": encoder,
            "layer": layer,
            "weights": weights,
            "weights_id": weights_id,
            "pooling": pooling,
            "preprocessing": preprocessing,
            "seed": int(seed),
            "patch_size": int(patch_size),
            "patch_stride": int(patch_stride),
        }

    # ---- state: the decoder only (as AdaIN's) ------------------------------------------------
    state_dict = AdaINNet.state_dict
    trainable_parameters = AdaINNet.trainable_parameters

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:  # type: ignore[override]
        """Load the decoder from ``decoder.*`` keys; with ``strict`` any other key is an error."""
        other = sorted(k for k in state_dict if not k.startswith("decoder."))
        if strict and other:
            raise RuntimeError(f"unexpected keys for a swap-inverse network (it holds the decoder only): {', '.join(other[:4])}")
        return AdaINNet.load_state_dict(self, {k: v for k, v in state_dict.items() if k.startswith("decoder.")}, strict=strict, assign=assign)  # type: ignore[arg-type]

    # ---- the pieces ---------------------------------------------------------------------
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """Features of ``image`` (BCHW in [0, 1]) at the swap layer."""
        return self.encoder(image, layers=[self.layer])[self.layer]

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """The decoder (features at the swap layer -> image); clamped to [0, 1] in eval mode."""
        y = self.decoder(features)
        return y if self.training else y.clamp(0.0, 1.0)

    def swap(self, content_features: torch.Tensor, style: SwapStyle) -> torch.Tensor:
        """``alpha * swapped + (1 - alpha) * content_features``."""
        swapped, _ = swap_features(content_features, style.target)
        a = float(style.alpha)
        return swapped if a == 1.0 else a * swapped + (1 - a) * content_features

    # ---- styles -------------------------------------------------------------------------
    def prepare_style(self, images: Sequence[torch.Tensor], weights: Sequence[float] | None = None, *, alpha: float = 1.0, masks: torch.Tensor | None = None) -> SwapStyle:
        """The patches of one or more paintings (each 1x3xHxW in [0, 1]), pooled: each photo patch
        takes the best of all of them. ``alpha`` in [0, 1]: 0 keeps the photo's features, 1
        swaps them fully. Weights other than equal and masks are AdaIN's, not style swap's."""
        images = list(images)
        if not images:
            raise UsageError("give at least one style image", params="style")
        if weights is not None and len(set(float(w) for w in weights)) > 1:
            raise ConfigError("style_weights: a swap-inverse model pools the paintings' patches; it cannot weight them", params="style_weights")
        if masks is not None:
            raise UsageError("style_mask: spatial control is for AdaIN models, not swap-inverse ones", params="style_mask")
        if not 0.0 <= float(alpha) <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {alpha}", params="alpha")
        size, stride = int(self.config["patch_size"]), int(self.config["patch_stride"])
        side = max(self.min_side, size * self.multiple)
        device = next(self.encoder.buffers()).device
        targets = []
        for i, im in enumerate(images):
            if not isinstance(im, torch.Tensor) or im.dim() != 4 or im.shape[:2] != (1, 3):
                raise UsageError(f"style image {i} must be a 1x3xHxW tensor, got {tuple(getattr(im, 'shape', ()))}", params="style")
            if min(im.shape[-2:]) < side:
                raise UsageError(f"style image {i} is {im.shape[-2]}x{im.shape[-1]} px; each side must be at least {side} px", params="style")
            with torch.no_grad():
                f = self.encode(pad_to(im.to(device), self.padded_size(tuple(im.shape[-2:])))).float()
            targets.append(build_target(f, size=size, stride=stride))
        return SwapStyle(PatchTarget.pool(targets) if len(targets) > 1 else targets[0], float(alpha), images[0] if len(images) == 1 else None)

    # ---- the generator protocol ---------------------------------------------------------
    def forward(self, image: torch.Tensor, style: SwapStyle | None = None) -> torch.Tensor:  # type: ignore[override]
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
        """Swap ``content``'s features for the patches of ``style`` (a :class:`SwapStyle`) and
        decode them. ``seed``, ``origin`` and ``batch`` are not needed."""
        if content is None:
            raise UsageError("a swap-inverse model stylises a content image: pass content", params="content")
        if not isinstance(style, SwapStyle):
            raise UsageError("a swap-inverse model needs a style image: pass style (net.prepare_style([painting]))", params="style")
        h, w = content.shape[-2:]
        padded = self.padded_size((h, w))
        f = self.encode(pad_to(content, padded))
        y = self.decode(self.swap(f.float(), style).to(f.dtype))
        return y[..., :h, :w] if padded != (h, w) else y

    def core_inputs(
        self, content: torch.Tensor | None, size: tuple[int, int], *, seed: int | Sequence[int] = 0, origin: tuple[int, int] = (0, 0), batch: int = 1, style: Any = None
    ) -> dict[str, torch.Tensor]:
        """``image`` (the content padded to the working size) and ``style`` (the painting); without
        a style (the receptive-field probe, which needs only the shapes) a 32 px grey square."""
        if content is None:
            raise UsageError("a swap-inverse model stylises a content image: pass content", params="content")
        image = pad_to(content, self.padded_size(size)).float().contiguous()
        if style is None:
            return {"image": image, "style": torch.full((1, 3, 32, 32), 0.5)}
        if not isinstance(style, SwapStyle) or style.image is None or style.alpha != 1.0:
            raise UsageError("several styles or alpha need the torch runtime (an exported swap-inverse model takes one style image)", params="runtime")
        return {"image": image, "style": style.image.float().contiguous()}

    def example_inputs(self) -> dict[str, torch.Tensor]:
        """A random photo of (about) 64x48 px at the working size and a 32x32 painting."""
        return {"image": torch.rand(1, 3, *self.padded_size((64, 48))), "style": torch.rand(1, 3, 32, 32)}

    def export_module(self) -> nn.Module:
        """A module whose ``forward(image, style)`` is the network at its working size."""
        return _SwapExport(self).train(self.training)


_DEFAULTS = {"encoder": "vgg19", "layer": "relu3_1", "weights": "auto", "weights_id": None, "pooling": "max", "preprocessing": "auto", "seed": 0, "patch_size": 3, "patch_stride": 1}
_DESCRIPTION = "style-swap inverse network (Chen & Schmidt 2016): frozen VGG19 to relu3_1, patch swap, mirrored decoder; any painting"
# throw-away twins (sizes, receptive field) need no pretrained encoder
register_arch(
    "swap-inverse", _DESCRIPTION, SwapInverseNet, defaults=_DEFAULTS, twin={"weights": "random", "weights_id": None},
    recipe="impasto.methods.swapinverse_train:SwapInverseTrainConfig:train_swapinverse",
)
