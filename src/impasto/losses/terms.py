"""Loss terms: the named, weighted parts of a perceptual loss (content, style, TV; later patch,
temporal and semantic terms).

A term has a ``name`` (the key of its value in ``forward``'s result), a ``weight``, the encoder
``layers`` it reads and a ``value(inputs)`` computed from the image, its features and its own
targets. ``tiling`` says how tiled optimisation evaluates it:

- ``"sum"``: a sum over pixels; each tile computes its core's share and the shares add up
  (content);
- ``"global"``: a function of whole-image statistics that tiles assemble from additive sums;
  every tile reports the whole image's value (style with an additive statistic);
- ``"image"``: cheap and in pixel space, computed once on the whole image (TV);
- ``None``: cannot be tiled (``untileable_reason`` says why).

The weighted total is :func:`weighted_total`, the only place where weights meet values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Mapping, Sequence, TypeVar

import torch

from . import functional as LF
from .statistics import Stats, StyleStatistic, get_statistic, mask_like, statistic_names

__all__ = ["TermInputs", "LossTerm", "ContentTerm", "StyleTerm", "TVTerm", "weighted_total", "content_energy", "TILING_MODES"]

TILING_MODES = ("sum", "global", "image")

T = TypeVar("T")


@dataclass
class TermInputs:
    """What one evaluation hands every term. ``features`` holds the activations of every active
    term's layers. The optional fields are per-call overrides (tiling, feed-forward training)."""

    image: torch.Tensor
    encoder: Any
    features: Mapping[str, torch.Tensor] = field(default_factory=dict)
    content: torch.Tensor | None = None  # a batch to take content targets from, on the fly
    content_target: Mapping[str, torch.Tensor] | None = None  # replaces the stored content features
    content_mask: torch.Tensor | None = None  # B1HW weights of the content error (a tile's core)
    content_norm: Mapping[str, torch.Tensor] | None = None  # per-layer content normaliser
    masks: torch.Tensor | None = None  # Kx1xHxW region masks of the output (replaces the stored ones)
    style_offset: Mapping[str, list[Stats]] | None = None  # style sums of the rest of the image
    sums_out: dict[str, list[Stats]] | None = None  # receives this image's own style sums


class LossTerm:
    """Base of the loss terms. Subclasses set ``name`` and implement ``value``."""

    name: ClassVar[str] = ""
    #: how tiled optimisation evaluates the term (one of TILING_MODES, or None: not tileable)
    tiling: str | None = "sum"
    #: the parameters this term's messages name (for the CLI's flags)
    params: tuple[str, ...] = ()

    def __init__(self, weight: float) -> None:
        self.weight = float(weight)

    @property
    def layers(self) -> tuple[str, ...]:
        """The encoder layers the term reads (none for pixel-space terms)."""
        return ()

    def active(self, inputs: TermInputs) -> bool:
        """Whether the term contributes to this evaluation (weight > 0 and targets known)."""
        return self.weight > 0

    def value(self, inputs: TermInputs) -> torch.Tensor:
        """The unweighted value of the term (a 0-dim tensor)."""
        raise NotImplementedError

    def untileable_reason(self) -> str | None:
        """Why the term cannot be tiled (None when it can)."""
        return None if self.tiling is not None else f"the {self.name} term cannot be tiled"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(weight={self.weight}, layers={list(self.layers)})"


def weighted_total(terms: Sequence[LossTerm], values: Mapping[str, T], names: Iterable[str] | None = None) -> T:
    """``w1·v1 + w2·v2 + ...`` over ``terms`` in order (only those in ``names`` when given),
    evaluated left to right from the first term: the one place weights meet values. Works on
    tensors and on Python floats."""
    wanted = None if names is None else set(names)
    total: Any = None
    for term in terms:
        if wanted is not None and term.name not in wanted:
            continue
        part = term.weight * values[term.name]  # type: ignore[operator]
        total = part if total is None else total + part
    if total is None:
        raise ValueError("weighted_total: no terms selected")
    return total  # type: ignore[no-any-return]


def content_energy(target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample sum of the squared target features (weighted by ``mask``): the content
    normaliser, additive over disjoint tiles."""
    m = mask_like(mask, target) if mask is not None else torch.ones_like(target[:, :1])
    return (target.pow(2) * m).sum(tuple(range(1, target.dim())))


def _content(features: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None, norm: torch.Tensor | None = None) -> torch.Tensor:
    if mask is None and norm is None:
        return LF.content_loss(features, target)
    m = mask_like(mask, features) if mask is not None else torch.ones_like(features[:, :1])
    dims = tuple(range(1, features.dim()))  # no flatten: channels-last features stay in place
    diff = ((features - target).pow(2) * m).sum(dims)
    if norm is None:
        norm = (target.pow(2) * m).sum(dims)
    return (diff / norm.clamp_min(1e-8)).mean()


class ContentTerm(LossTerm):
    """Feature reconstruction: normalised squared error to the content image's features."""

    name = "content"
    tiling = "sum"
    params = ("content_weight", "content_layers")

    def __init__(self, layers: Mapping[str, float], weight: float) -> None:
        super().__init__(weight)
        self.layer_weights: dict[str, float] = dict(layers)
        self.target: dict[str, torch.Tensor] | None = None

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.layer_weights)

    @torch.no_grad()
    def set_target(self, encoder: Any, image: torch.Tensor | None) -> None:
        """Fix the target features from ``image`` (None: no content term)."""
        if image is None:
            self.target = None
            return
        feats = encoder(image, layers=list(self.layer_weights))
        self.target = {k: v.detach() for k, v in feats.items()}

    def active(self, inputs: TermInputs) -> bool:
        has_target = inputs.content is not None or inputs.content_target is not None or self.target is not None
        return has_target and self.weight > 0

    def value(self, inputs: TermInputs) -> torch.Tensor:
        zero = inputs.image.new_zeros(())
        if inputs.content is not None:
            with torch.no_grad():
                target = {k: v.detach() for k, v in inputs.encoder(inputs.content, layers=list(self.layer_weights)).items()}
        else:
            target = dict(inputs.content_target) if inputs.content_target is not None else self.target  # type: ignore[assignment]
        norm = inputs.content_norm
        feats = inputs.features
        return sum(
            (w * _content(feats[l], target[l], inputs.content_mask, None if norm is None else norm[l]) for l, w in self.layer_weights.items() if w > 0),
            zero,
        )


class StyleTerm(LossTerm):
    """Distance between the image's style statistics and the (blended) style targets, per layer
    and region. The statistic is any registered :class:`~impasto.losses.statistics.StyleStatistic`."""

    name = "style"
    params = ("style_loss",)

    def __init__(self, layers: Mapping[str, float], weight: float, statistic: str | StyleStatistic = "gram", seed: int = 0) -> None:
        super().__init__(weight)
        self.layer_weights: dict[str, float] = dict(layers)
        self.statistic = get_statistic(statistic)
        self.seed = seed
        self.targets: dict[str, list[Stats]] | None = None  # layer -> one target per region
        self.content_masks: torch.Tensor | None = None  # Kx1xHxW regions of the output
        self._params: dict[str, torch.Tensor | None] = {}

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.layer_weights)

    @property  # type: ignore[override]
    def tiling(self) -> str | None:
        return "global" if self.statistic.additive else None

    def untileable_reason(self) -> str | None:
        if self.statistic.additive:
            return None
        others = [n for n in statistic_names() if get_statistic(n).additive]
        return (
            f"style_loss {self.statistic.name} cannot be tiled (its statistics are not additive over tiles); "
            f"use {_or_list(others)} for images above the memory budget"
        )

    def layer_params(self, layer: str, channels: int, device: torch.device) -> torch.Tensor | None:
        """The statistic's fixed parameters for ``layer`` (seeded by the loss seed and the name)."""
        if layer not in self._params:
            offset = sum(ord(ch) for ch in layer)
            self._params[layer] = self.statistic.layer_params(channels, self.seed * 1000 + offset, device)
        return self._params[layer]

    def sums_from_features(self, feats: Mapping[str, torch.Tensor], masks: torch.Tensor | None) -> dict[str, list[Stats]]:
        """Additive sums of every style layer of ``feats``, per region of ``masks`` (Kx1xHxW)."""
        stat = self.statistic
        out: dict[str, list[Stats]] = {}
        for layer in self.layer_weights:
            f = feats[layer]
            params = self.layer_params(layer, f.shape[1], f.device)
            if masks is None:
                out[layer] = [stat.accumulate(f, None, params)]
            else:
                out[layer] = [stat.accumulate(f, masks[k : k + 1].expand(f.shape[0], -1, -1, -1), params) for k in range(masks.shape[0])]
        return out

    def active(self, inputs: TermInputs) -> bool:
        return self.targets is not None and self.weight > 0

    def value(self, inputs: TermInputs) -> torch.Tensor:
        assert self.targets is not None
        stat = self.statistic
        zero = inputs.image.new_zeros(())
        region_masks = inputs.masks if inputs.masks is not None else self.content_masks
        sums = self.sums_from_features(inputs.features, region_masks)
        if inputs.sums_out is not None:
            inputs.sums_out.update({layer: [{k: v.detach() for k, v in s.items()} for s in regions] for layer, regions in sums.items()})
        offset = inputs.style_offset
        total = zero
        for layer, w in self.layer_weights.items():
            if w == 0:
                continue
            for k, s in enumerate(sums[layer]):
                if offset is not None:
                    s = stat.merge(s, _expand_offset(offset[layer][k], s))
                total = total + w * stat.distance(stat.finalize(s), self.targets[layer][k])
        return total / len(next(iter(sums.values())))


class TVTerm(LossTerm):
    """Total variation of the image (smoothness); needs no features."""

    name = "tv"
    tiling = "image"
    params = ("tv_weight",)

    def value(self, inputs: TermInputs) -> torch.Tensor:
        return LF.tv_loss(inputs.image)


def _expand_offset(offset: Stats, like: Stats) -> Stats:
    b = like["n"].shape[0]
    return {k: (v.expand(b, *v.shape[1:]) if v.shape[0] != b else v) for k, v in offset.items()}


def _or_list(names: Sequence[str]) -> str:
    names = list(names)
    if len(names) <= 1:
        return "".join(names) or "another style_loss"
    return f"{', '.join(names[:-1])} or {names[-1]}"
