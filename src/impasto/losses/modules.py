"""Loss modules that hold their targets: the perceptual loss used by every method, a composition
of loss terms (:mod:`impasto.losses.terms`)."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import nn

from ..errors import UsageError
from .statistics import Stats, StyleStatistic, get_statistic
from .terms import ContentTerm, LossTerm, StyleTerm, TermInputs, TVTerm, content_energy, weighted_total

__all__ = ["PerceptualLoss", "normalise_layer_weights", "content_energy"]


def normalise_layer_weights(layers: Mapping[str, float] | Sequence[str]) -> dict[str, float]:
    """Layer weights scaled to sum to 1 (a plain list gets equal weights)."""
    if not isinstance(layers, Mapping):
        layers = {name: 1.0 for name in layers}
    for name, w in layers.items():
        if w < 0:
            raise UsageError(f"layer weight for {name} must be >= 0, got {w}")
    total = float(sum(layers.values()))
    if total <= 0:
        return {name: 0.0 for name in layers}
    return {name: float(w) / total for name, w in layers.items()}


class PerceptualLoss(nn.Module):
    """content_weight·content + style_weight·style + tv_weight·TV, on a frozen encoder.

    A composition of loss terms (``terms``: :class:`ContentTerm`, :class:`StyleTerm`,
    :class:`TVTerm`; ``add_term`` appends more): one encoder pass reads every active term's
    layers, each term computes its value, and :meth:`weighted_total` weighs them.

    Layer weights inside the content and style groups are normalised to sum to 1 and each
    layer's distance is normalised by its target's magnitude, so the weights mean the same
    for every layer set, image size and encoder.

    Style: ``set_style`` computes the targets once (no grad). Several style images are blended
    with weights; with region masks, each region k of the output is compared with region k of
    the style image(s). ``style_loss`` names a registered style statistic
    (:mod:`impasto.losses.statistics`).
    Content: ``set_content(image)`` fixes a target; ``forward(image, content=batch)`` computes the
    content target from ``batch`` on the fly instead (feed-forward training).
    """

    def __init__(
        self,
        encoder: nn.Module,
        *,
        content_layers: Mapping[str, float] | Sequence[str],
        style_layers: Mapping[str, float] | Sequence[str],
        content_weight: float = 1.0,
        style_weight: float = 1.0,
        tv_weight: float = 0.0,
        style_loss: str | StyleStatistic = "gram",
        seed: int = 0,
    ) -> None:
        super().__init__()
        statistic = get_statistic(style_loss)
        for name, value in (("content_weight", content_weight), ("style_weight", style_weight), ("tv_weight", tv_weight)):
            if value < 0:
                raise UsageError(f"{name} must be >= 0, got {value}", params=name)
        self.encoder = encoder
        self.content_term = ContentTerm(normalise_layer_weights(content_layers), content_weight)
        self.style_term = StyleTerm(normalise_layer_weights(style_layers), style_weight, statistic, seed)
        self.tv_term = TVTerm(tv_weight)
        #: the terms in the order their weighted values are summed
        self.terms: list[LossTerm] = [self.content_term, self.style_term, self.tv_term]

    # -- the terms ---------------------------------------------------------------------------
    def add_term(self, term: LossTerm) -> LossTerm:
        """Append a term (its name must be new); its weighted value joins the total last."""
        if any(t.name == term.name for t in self.terms):
            raise UsageError(f"the loss already has a {term.name!r} term")
        self.terms.append(term)
        return term

    def term(self, name: str) -> LossTerm:
        """The term called ``name``."""
        for t in self.terms:
            if t.name == name:
                return t
        raise KeyError(name)

    def weighted_total(self, values: Mapping[str, Any], names: Iterable[str] | None = None) -> Any:
        """The weighted sum of ``values`` (term name -> value; tensors or floats) over the terms,
        in order (only ``names`` when given): the one place the total is computed."""
        return weighted_total(self.terms, values, names)

    @property
    def content_layers(self) -> dict[str, float]:
        """Content layers and their normalised weights."""
        return self.content_term.layer_weights

    @property
    def style_layers(self) -> dict[str, float]:
        """Style layers and their normalised weights."""
        return self.style_term.layer_weights

    @property
    def content_weight(self) -> float:
        return self.content_term.weight

    @content_weight.setter
    def content_weight(self, value: float) -> None:
        self.content_term.weight = float(value)

    @property
    def style_weight(self) -> float:
        return self.style_term.weight

    @style_weight.setter
    def style_weight(self, value: float) -> None:
        self.style_term.weight = float(value)

    @property
    def tv_weight(self) -> float:
        return self.tv_term.weight

    @tv_weight.setter
    def tv_weight(self, value: float) -> None:
        self.tv_term.weight = float(value)

    @property
    def statistic(self) -> StyleStatistic:
        """The style statistic."""
        return self.style_term.statistic

    @property
    def kind(self) -> str:
        """The style statistic's name."""
        return self.style_term.statistic.name

    @property
    def seed(self) -> int:
        """Seed of the statistic's fixed per-layer parameters (sliced Wasserstein projections)."""
        return self.style_term.seed

    @property
    def has_style(self) -> bool:
        """Whether style targets are set."""
        return self.style_term.targets is not None

    @property
    def style_key(self) -> tuple[Any, ...]:
        """Everything about this loss that style statistics depend on (for caches): the
        statistic, the style layers and the seed of per-layer parameters."""
        return (self.kind, tuple(self.style_layers), self.seed)

    @property
    def layers(self) -> list[str]:
        """Every layer the loss reads (content first)."""
        return list(dict.fromkeys(layer for t in self.terms for layer in t.layers))

    # -- style sums and statistics -----------------------------------------------------------
    def style_sums(self, image: torch.Tensor, masks: torch.Tensor | None = None) -> dict[str, list[Stats]]:
        """Additive style sums of ``image`` per layer and region (masks: Kx1xHxW or None)."""
        feats = self.encoder(image, layers=list(self.style_layers))
        return self.style_term.sums_from_features(feats, masks)

    def style_sums_from_features(self, feats: Mapping[str, torch.Tensor], masks: torch.Tensor | None = None) -> dict[str, list[Stats]]:
        """Style sums from features already computed (e.g. a tile's), per layer and region."""
        return self.style_term.sums_from_features(feats, masks)

    def style_stats_from_sums(self, sums: Mapping[str, list[Stats]]) -> dict[str, list[Stats]]:
        """Finalised statistics from style sums (per layer and region)."""
        stat = self.statistic
        return {layer: [stat.finalize(s) for s in regions] for layer, regions in sums.items()}

    # -- targets -----------------------------------------------------------------------------
    def set_content(self, image: torch.Tensor | None) -> None:
        """Fix the content target (None: no content term, e.g. texture synthesis)."""
        self.content_term.set_target(self.encoder, image)

    @torch.no_grad()
    def style_stats(self, image: torch.Tensor, masks: torch.Tensor | None = None) -> dict[str, list[Stats]]:
        """Finalised style statistics of one image per layer and region (for caching/blending)."""
        return self.style_stats_from_sums(self.style_sums(image, masks))

    @torch.no_grad()
    def set_style(
        self,
        images: Sequence[torch.Tensor] | torch.Tensor,
        blend: Sequence[float] | None = None,
        *,
        style_masks: Sequence[torch.Tensor | None] | None = None,
        content_masks: torch.Tensor | None = None,
        stats: Sequence[dict[str, list[Stats]]] | None = None,
    ) -> None:
        """Compute (or take precomputed ``stats``) and blend the style targets.

        ``style_masks[i]`` (Kx1xHxW) splits style image i into K regions matching the K regions
        of ``content_masks`` (Kx1xHxW, for the output).
        """
        if isinstance(images, torch.Tensor):
            images = [images]
        n = len(stats) if stats is not None else len(images)
        blend = list(blend) if blend is not None else [1.0] * n
        if len(blend) != n:
            raise UsageError(f"{len(blend)} blend weights for {n} style images")
        if any(w < 0 for w in blend):
            raise UsageError("style blend weights must be >= 0")
        if stats is None:
            masks = list(style_masks) if style_masks is not None else [None] * n
            stats = [self.style_stats(img, m) for img, m in zip(images, masks)]
        regions = len(next(iter(stats[0].values())))
        if content_masks is not None and content_masks.shape[0] != regions:
            raise UsageError(f"content mask has {content_masks.shape[0]} regions but the style mask has {regions}")
        stat = self.statistic
        self.style_term.content_masks = content_masks
        self.style_term.targets = {
            layer: [stat.prepare(stat.blend([s[layer][k] for s in stats], blend)) for k in range(regions)]
            for layer in self.style_layers
        }

    # -- the loss ----------------------------------------------------------------------------
    def forward(  # type: ignore[override]
        self,
        image: torch.Tensor,
        content: torch.Tensor | None = None,
        *,
        style_offset: Mapping[str, list[Stats]] | None = None,
        content_target: Mapping[str, torch.Tensor] | None = None,
        masks: torch.Tensor | None = None,
        content_mask: torch.Tensor | None = None,
        sums_out: dict[str, list[Stats]] | None = None,
        content_norm: Mapping[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and each term's unweighted value (``{"content", "style", "tv"}``, then any
        added term's).

        ``style_offset``: additive sums from the rest of the image (tiled optimisation: the
        statistics are those of the whole image, not of the tile). ``content_target`` overrides
        the stored content features (a crop of them, for a tile). ``masks`` overrides the stored
        content-region masks (a crop of them, for a tile). ``content_mask`` (B1HW) weights the
        content error by position (a tile's core). ``sums_out`` receives this image's own style
        sums (detached), before ``style_offset`` is added. ``content_norm``: per-layer
        normaliser of the content error (the whole image's target energy, for a tile), so
        the tiles' content terms add up to the whole image's.
        """
        inputs = TermInputs(
            image=image, encoder=self.encoder, content=content, content_target=content_target, content_mask=content_mask,
            content_norm=content_norm, masks=masks, style_offset=style_offset, sums_out=sums_out,
        )
        active = [t for t in self.terms if t.active(inputs)]
        layers = list(dict.fromkeys(layer for t in active for layer in t.layers))
        inputs.features = self.encoder(image, layers=layers) if layers else {}
        zero = image.new_zeros(())
        values: dict[str, torch.Tensor] = {t.name: zero for t in self.terms}
        for t in active:
            values[t.name] = t.value(inputs)
        return self.weighted_total(values), values
