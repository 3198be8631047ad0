"""Arbitrary style transfer with a style-prediction network (Ghiasi et al. 2017, "Exploring the
structure of a real-time, arbitrary neural artistic stylization network").

Any painting -> a style embedding -> the γ/β of every instance norm of a Johnson-type transformer:
the multi-style network of Dumoulin et al. (:mod:`.multistyle`) whose per-style γ/β table is
replaced by a network that *predicts* them, so one model paints in the style of any painting and
styles live in one continuous space that can be interpolated.

- **Style predictor**: a frozen encoder (:func:`impasto.features.build_encoder`) up to one layer,
  the per-channel mean over space, then a trained linear bottleneck to an ``embedding``-d (100 in
  the paper) style embedding, then one linear head per norm for γ and one for β (no activation,
  as in the authors' code; γ's bias starts at 1, so an untrained network is a plain Johnson
  network with instance norm).
- **Encoder**: Inception-v3 up to ``Mixed_6e`` (768 channels at 1/16 resolution), as in the
  paper. Measured on two CPU cores with random weights, per painting: 0.10 s at 256 px and
  0.34 s at 512 px, against 0.24 s and 1.2 s for VGG16 up to relu4_3 (the deepest style layer
  of the loss network), and its weights file is a fifth of VGG16's; applying a model needs only
  this encoder. Random weights work (batch norms become identities; finite, non-degenerate
  features) but take 2 s to build (the whole network is initialised). Any registered encoder
  and layer can be chosen (``encoder="vgg16", layer="relu4_3"``: training then shares the loss
  network, see :mod:`impasto.methods.stylepredict_train`); paintings must be at least the
  encoder's minimum side (75 px for Inception-v3).
- **Strength** (``alpha``, the paper's interpolation with the photo's own style): embedding = alpha * painting's + (1 - alpha) *
  the photo's own embedding. :meth:`StylePredictNet.prepare_style` takes the whole photo as
  ``content=`` for that (downscaled to :data:`CONTENT_EDGE` px first), so tiles of one photo
  share one embedding and tiled output stays exact. alpha < 1 without ``content`` is refused.
- **State**: the encoder is not part of the state dict (it comes from the weights manager, like
  :class:`~impasto.nets.adain.AdaINNet`'s); ``weights_id`` records the encoder weights the model
  was trained against and other weights are refused.

Registers the architecture ``stylepredict``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, ModelFileError, UsageError
from ..features import build_encoder
from .johnson import JOHNSON_PRESETS, TransformerNet
from .norm import InstanceNorm
from .protocol import pad_to
from .registry import register_arch

__all__ = ["StylePredictNet", "StyleEmbedding", "PredictedInstanceNorm", "CONTENT_EDGE", "EMBEDDING"]

#: the photo is embedded (for alpha < 1) at most this many px on its longest side
CONTENT_EDGE = 512
#: the paper's embedding size
EMBEDDING = 100


@dataclass(frozen=True)
class StyleEmbedding:
    """A style for :meth:`StylePredictNet.generate`: ``embedding`` is (1, E) for one style (every
    sample of a batch takes it) or (B, E) for one style per sample (training).

    Construct it from any embedding to move around in the style space, e.g.
    ``StyleEmbedding(0.3 * net.embed(a) + 0.7 * net.embed(b))``. What :meth:`~StylePredictNet.prepare_style`
    makes also keeps what an exported graph needs: ``image``, the one painting (1x3xHxW; None for
    several or for a raw embedding), ``alpha`` and ``content``, the (downscaled) photo it was
    mixed with (None when alpha is 1).
    """

    embedding: torch.Tensor
    image: torch.Tensor | None = None
    alpha: float = 1.0
    content: torch.Tensor | None = None

    @property
    def count(self) -> int:
        """How many embeddings it holds (1, or one per sample)."""
        return int(self.embedding.shape[0])


class PredictedInstanceNorm(InstanceNorm):
    """Instance norm whose γ and β come from the style embedding: ``self.params`` holds them,
    (B, C) or (1, C) each, set by :class:`StylePredictNet` around each pass."""

    def __init__(self, channels: int, *, relu: bool = False, eps: float = 1e-5, inplace: bool = False) -> None:
        super().__init__(channels, relu=relu, eps=eps, inplace=inplace, affine=False)
        self.params: tuple[torch.Tensor, torch.Tensor] | None = None

    def scale_shift(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The predicted γ and β."""
        if self.params is None:
            raise RuntimeError("PredictedInstanceNorm: no style set (call the network through generate with a style)")
        return self.params


class _StylePredictExport(nn.Module):
    """Export wrapper: ``forward(image, style, style_alpha, style_content)``; the embeddings of the
    painting and of the photo are computed inside the graph and mixed by ``style_alpha``."""

    def __init__(self, net: StylePredictNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, style: torch.Tensor, style_alpha: torch.Tensor, style_content: torch.Tensor) -> torch.Tensor:
        a = style_alpha.reshape(-1, 1)
        e = a * self.net.embed(style) + (1 - a) * self.net.embed(style_content)
        self.net.set_embedding(e)
        try:
            return self.net.core(image)
        finally:
            self.net.set_embedding(None)


class StylePredictNet(TransformerNet):
    """The style-prediction network (see the module docstring).

    ``encoder``, ``layer``, ``weights``, ``pooling``, ``preprocessing`` and ``seed`` (random
    weights only) build the predictor's frozen encoder; ``weights_id``: the encoder weights the
    model was trained against (None for a fresh network; others raise ModelFileError);
    ``embedding``: the embedding size; ``channels``, ``n_res``, ``upsample``, ``separable``,
    ``outer_kernel`` and ``output`` are :class:`~impasto.nets.johnson.TransformerNet`'s.
    ``encoder_module``: an already built encoder of the same name that provides ``layer`` (the
    training recipe shares its loss network this way); not part of ``config``.
    """

    takes = ("content", "style")
    #: ``prepare_style(..., alpha < 1)`` needs the whole photo as ``content`` (apply passes it)
    alpha_needs_photo = True

    def __init__(
        self,
        encoder: str = "inception_v3",
        layer: str = "Mixed_6e",
        weights: str = "auto",
        weights_id: str | None = None,
        pooling: str = "max",
        preprocessing: str = "auto",
        seed: int = 0,
        embedding: int = EMBEDDING,
        channels: Sequence[int] = (32, 64, 128),
        n_res: int = 5,
        upsample: str = "nearest",
        *,
        separable: bool = False,
        outer_kernel: int = 9,
        output: str = "sigmoid",
        encoder_module: nn.Module | None = None,
    ) -> None:
        if isinstance(embedding, bool) or not isinstance(embedding, int) or embedding < 1:
            raise ConfigError(f"embedding must be a whole number >= 1, got {embedding!r}", params="embedding")
        super().__init__(tuple(channels), n_res, "instance", upsample, separable=separable, outer_kernel=outer_kernel, output=output)  # type: ignore[arg-type]
        for module in list(self.modules()):
            norm = getattr(module, "norm", None)
            if isinstance(norm, InstanceNorm) and not isinstance(norm, PredictedInstanceNorm):
                module.norm = PredictedInstanceNorm(norm.num_features, relu=norm.relu, eps=norm.eps, inplace=norm.inplace)
        if encoder_module is None:
            self.encoder = build_encoder(encoder, weights=weights, layers=[layer], pooling=pooling, seed=int(seed), preprocessing=preprocessing)
        else:
            if getattr(getattr(encoder_module, "spec", None), "name", None) != encoder or layer not in getattr(encoder_module, "layers", ()):
                raise ValueError(f"encoder_module must be a {encoder} encoder providing {layer}")
            self.encoder = encoder_module
        built = self.encoder.weights_id
        if weights_id is not None and weights_id != built:
            raise ModelFileError(
                f"the model was trained against encoder weights {weights_id}, but the given ones ({weights}) are {built}; give the matching weights with encoder_weights",
                params="encoder_weights",
            )
        self.layer = layer
        with torch.no_grad():
            probe_side = max(64, self.encoder.min_side)
            features = self.encoder(torch.zeros(1, 3, probe_side, probe_side, device=self.encoder.mean.device), layers=[layer])[layer]
        self.bottleneck = nn.Linear(int(features.shape[1]), int(embedding))
        norms = self.norms
        self.gamma_heads = nn.ModuleList([nn.Linear(int(embedding), m.num_features) for m in norms])
        self.beta_heads = nn.ModuleList([nn.Linear(int(embedding), m.num_features) for m in norms])
        with torch.no_grad():
            for g, b in zip(self.gamma_heads, self.beta_heads):
                g.bias.fill_(1.0)  # start as plain instance norm
                b.bias.zero_()
        transformer = {k: v for k, v in self.config.items() if k != "norm"}
        self.config = {
            "encoder": encoder, "layer": layer, "weights": weights, "weights_id": weights_id, "pooling": pooling,
            "preprocessing": preprocessing, "seed": int(seed), "embedding": int(embedding), **transformer,
        }

    # ---- state: everything but the encoder ------------------------------------------------
    def state_dict(self, *, destination: Any = None, prefix: str = "", keep_vars: bool = False) -> Any:  # type: ignore[override]
        """Transformer, bottleneck and heads; the encoder comes from the weights manager."""
        full = super().state_dict(prefix=prefix, keep_vars=keep_vars)
        skip = prefix + "encoder."
        for key in [k for k in full if k.startswith(skip)]:
            del full[key]
        if destination is None:
            return full
        destination.update(full)
        return destination

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:  # type: ignore[override]
        """Load every tensor but the encoder's; with ``strict`` an encoder key is an error too."""
        other = sorted(k for k in state_dict if k.startswith("encoder."))
        if strict and other:
            raise RuntimeError(f"unexpected keys for a stylepredict network (its encoder is not stored): {', '.join(other[:4])}")
        own = {k: v for k, v in state_dict.items() if not k.startswith("encoder.")}
        result = super().load_state_dict(own, strict=False, assign=assign)
        missing = [k for k in result.missing_keys if not k.startswith("encoder.")]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(f"Error loading a stylepredict network: Missing key(s): {', '.join(missing[:4]) or '-'}; unexpected key(s): {', '.join(result.unexpected_keys[:4]) or '-'}")
        return type(result)(missing, list(result.unexpected_keys) + other)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Transformer, bottleneck and heads (the encoder is frozen)."""
        frozen = {id(p) for p in self.encoder.parameters()}
        return [p for p in self.parameters() if id(p) not in frozen]

    # ---- the style predictor --------------------------------------------------------------
    @property
    def norms(self) -> list[PredictedInstanceNorm]:
        """The norms whose γ/β are predicted, in module order (the heads' order)."""
        return [m for m in self.modules() if isinstance(m, PredictedInstanceNorm)]

    @property
    def embedding_size(self) -> int:
        """E, the size of a style embedding."""
        return int(self.config["embedding"])

    def embed_features(self, features: torch.Tensor) -> torch.Tensor:
        """Embeddings (B, E) from the encoder's features at ``layer`` (B, C, h, w)."""
        return self.bottleneck(features.mean(dim=(2, 3)))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Style embeddings (B, E) of a batch of images (Bx3xHxW in [0, 1]); gradients reach the
        bottleneck only."""
        with torch.no_grad():
            features = self.encoder(images, layers=[self.layer])[self.layer]
        return self.embed_features(features.float())

    def norm_params(self, embedding: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(γ, β) of every norm, each (N, C), for embeddings (N, E)."""
        return [(g(embedding), b(embedding)) for g, b in zip(self.gamma_heads, self.beta_heads)]

    def set_embedding(self, embedding: torch.Tensor | None) -> None:
        """Set every norm's γ/β from ``embedding`` (N, E); None clears them."""
        params = [None] * len(self.gamma_heads) if embedding is None else self.norm_params(embedding)
        for m, p in zip(self.norms, params):
            m.params = p

    def _device(self) -> torch.device:
        return self.bottleneck.weight.device

    # ---- styles -------------------------------------------------------------------------
    def prepare_style(
        self,
        images: Sequence[torch.Tensor],
        weights: Sequence[float] | None = None,
        *,
        alpha: float = 1.0,
        masks: torch.Tensor | None = None,
        content: torch.Tensor | None = None,
    ) -> StyleEmbedding:
        """The style of one or more paintings (each 1x3xHxW in [0, 1]) for :meth:`generate`.

        ``weights`` interpolate their embeddings (>= 0, not all 0; normalised to sum 1; default
        equal). ``alpha`` in [0, 1]: embedding = alpha * the paintings' + (1 - alpha) * the
        photo's own; alpha < 1 needs ``content``, the whole photo (1x3xHxW; embedded at most
        :data:`CONTENT_EDGE` px on its longest side). ``masks``: refused (spatial control needs
        an AdaIN model).
        """
        if masks is not None:
            raise UsageError("spatial style masks need an AdaIN model; a stylepredict model applies one style to the whole image", params="style_mask")
        images = list(images)
        if not images:
            raise UsageError("give at least one style image", params="style")
        side = self.encoder.min_side
        for i, im in enumerate(images):
            if not isinstance(im, torch.Tensor) or im.dim() != 4 or im.shape[:2] != (1, 3):
                raise UsageError(f"style image {i} must be a 1x3xHxW tensor, got {tuple(getattr(im, 'shape', ()))}", params="style")
            if min(im.shape[-2:]) < side:
                raise UsageError(f"style image {i} is {im.shape[-2]}x{im.shape[-1]} px; each side must be at least {side} px", params="style")
        k = len(images)
        w = [1.0] * k if weights is None else [float(x) for x in weights]
        if len(w) != k:
            raise ConfigError(f"style_weights has {len(w)} entries for {k} style image(s)", params="style_weights")
        if any(not math.isfinite(x) or x < 0 for x in w):
            raise ConfigError(f"style_weights must be >= 0, got {', '.join(f'{x:g}' for x in w)}", params="style_weights")
        if sum(w) <= 0:
            raise ConfigError("style_weights must not all be 0", params="style_weights")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {alpha}", params="alpha")
        alpha = float(alpha)
        photo = None
        if alpha < 1.0:
            if content is None:
                raise UsageError("alpha < 1 mixes the painting's style with the photo's own: pass the whole photo as content", params="alpha")
            photo = self._content_image(content)
        device = self._device()
        with torch.no_grad():
            embeddings = torch.cat([self.embed(im.to(device=device, dtype=torch.float32)) for im in images]).float()
            wt = torch.tensor(w, dtype=torch.float32, device=device)
            e = ((wt / wt.sum())[:, None] * embeddings).sum(0, keepdim=True)
            if photo is not None:
                e = alpha * e + (1 - alpha) * self.embed(photo.to(device)).float()
        return StyleEmbedding(embedding=e, image=images[0].detach().float().cpu() if k == 1 else None, alpha=alpha, content=photo)

    def _content_image(self, content: Any) -> torch.Tensor:
        """The photo as the predictor sees it: at most CONTENT_EDGE px, at least the encoder's minimum."""
        from ..image.resize import resize_to_edge

        if not isinstance(content, torch.Tensor) or content.dim() != 4 or content.shape[:2] != (1, 3):
            raise UsageError(f"content must be the photo as a 1x3xHxW tensor, got {tuple(getattr(content, 'shape', ()))}", params="content")
        photo = content.detach().float().cpu()
        if max(photo.shape[-2:]) > CONTENT_EDGE:
            photo = resize_to_edge(photo.clamp(0, 1), CONTENT_EDGE)
        side = self.encoder.min_side
        h, w = photo.shape[-2:]
        if min(h, w) < side:
            scale = side / min(h, w)
            photo = F.interpolate(photo, size=(max(side, math.ceil(h * scale)), max(side, math.ceil(w * scale))), mode="bilinear", align_corners=False)
        return photo.contiguous()

    def style_code(self, style_batch: torch.Tensor) -> StyleEmbedding:
        """Per-sample embeddings of a batch of paintings (Bx3xHxW): sample b of the content batch
        takes painting b (training; gradients reach the bottleneck)."""
        if not isinstance(style_batch, torch.Tensor) or style_batch.dim() != 4 or style_batch.shape[1] != 3:
            raise UsageError(f"style_batch must be Bx3xHxW, got {tuple(getattr(style_batch, 'shape', ()))}", params="style")
        return StyleEmbedding(embedding=self.embed(style_batch.to(self._device())))

    def _embedding_for(self, style: Any, batch: int) -> torch.Tensor:
        if style is None:
            raise UsageError("a stylepredict model needs a style: pass style (net.prepare_style([painting]))", params="style")
        if not isinstance(style, StyleEmbedding):
            raise UsageError(f"style must be a StyleEmbedding (what prepare_style returns), got {type(style).__name__}", params="style")
        e = style.embedding
        if e.dim() != 2 or e.shape[1] != self.embedding_size:
            raise UsageError(f"style embedding must be N x {self.embedding_size}, got {tuple(e.shape)}", params="style")
        if e.shape[0] not in (1, batch):
            raise UsageError(f"the style holds {e.shape[0]} embeddings for a batch of {batch}", params="style")
        return e.to(device=self._device())

    # ---- the generator protocol -----------------------------------------------------------
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
        """Stylise ``content`` with ``style`` (a :class:`StyleEmbedding`); ``size``, ``seed``,
        ``origin`` and ``batch`` are not needed."""
        if content is None:
            raise UsageError("a stylepredict model stylises a content image: pass content", params="content")
        self.set_embedding(self._embedding_for(style, int(content.shape[0])))
        try:
            return self(content)
        finally:
            self.set_embedding(None)

    def core_inputs(
        self, content: torch.Tensor | None, size: tuple[int, int], *, seed: int | Sequence[int] = 0, origin: tuple[int, int] = (0, 0), batch: int = 1, style: Any = None
    ) -> dict[str, torch.Tensor]:
        """``image`` (the content padded to the working size), ``style`` (the painting),
        ``style_alpha`` ((1,)) and ``style_content`` (the photo it is mixed with; a blank
        minimal image when alpha is 1): one painting from prepare_style only. Without a style
        (the receptive-field probe, which needs only the shapes) the content stands in for it."""
        if content is None:
            raise UsageError("a stylepredict model stylises a content image: pass content", params="content")
        image = pad_to(content, self.padded_size(size)).float().contiguous()
        if style is None:
            return {"image": image, "style": image[:1].clone(), "style_alpha": torch.ones(1), "style_content": image[:1].clone()}
        if not isinstance(style, StyleEmbedding):
            raise UsageError(f"style must be a StyleEmbedding (what prepare_style returns), got {type(style).__name__}", params="style")
        if style.image is None:
            raise UsageError("several styles or a style given as an embedding need the torch runtime (an exported stylepredict model takes one painting)", params="runtime")
        side = self.encoder.min_side
        blank = torch.zeros(1, 3, side, side)
        photo = style.content if style.content is not None and style.alpha < 1.0 else blank
        return {"image": image, "style": style.image.float().contiguous(), "style_alpha": torch.tensor([float(style.alpha)]), "style_content": photo.float().contiguous()}

    def example_inputs(self) -> dict[str, torch.Tensor]:
        """A random photo of (about) 64x48 px at the working size, a painting, alpha 1 and a photo
        for the alpha mix."""
        side = max(64, self.encoder.min_side)
        return {
            "image": torch.rand(1, 3, *self.padded_size((64, 48))),
            "style": torch.rand(1, 3, side, side),
            "style_alpha": torch.ones(1),
            "style_content": torch.rand(1, 3, side, side),
        }

    def export_module(self) -> nn.Module:
        """``forward(image, style, style_alpha, style_content)``: the network at its working size
        with the embedding computed in the graph."""
        return _StylePredictExport(self).train(self.training)


_DEFAULTS: dict[str, Any] = {
    "encoder": "inception_v3", "layer": "Mixed_6e", "weights": "auto", "weights_id": None, "pooling": "max", "preprocessing": "auto", "seed": 0,
    "embedding": EMBEDDING, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in JOHNSON_PRESETS["johnson"].items()},
}
_DESCRIPTION = "style-prediction network (Ghiasi et al. 2017): any painting -> embedding -> the γ/β of a Johnson network's norms; interpolate styles"
register_arch(
    "stylepredict", _DESCRIPTION, StylePredictNet, defaults=_DEFAULTS, twin={"weights": "random", "weights_id": None},
    recipe="impasto.methods.stylepredict_train:StylePredictTrainConfig:train_stylepredict",
)
