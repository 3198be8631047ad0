"""Loss modules that hold their targets: the perceptual loss used by every method."""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from ..errors import UsageError
from . import functional as LF

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

    Layer weights inside the content and style groups are normalised to sum to 1 and each
    layer's distance is normalised by its target's magnitude, so the weights mean the same
    for every layer set, image size and encoder.

    Style: ``set_style`` computes the targets once (no grad). Several style images are blended
    with weights; with region masks, each region k of the output is compared with region k of
    the style image(s).
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
        style_loss: str = "gram",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if style_loss not in LF.STYLE_LOSSES:
            raise UsageError(f"unknown style loss {style_loss!r}; choose from {', '.join(LF.STYLE_LOSSES)}")
        for name, value in (("content_weight", content_weight), ("style_weight", style_weight), ("tv_weight", tv_weight)):
            if value < 0:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
        self.encoder = encoder
        self.content_layers = normalise_layer_weights(content_layers)
        self.style_layers = normalise_layer_weights(style_layers)
        self.content_weight = float(content_weight)
        self.style_weight = float(style_weight)
        self.tv_weight = float(tv_weight)
        self.kind = style_loss
        self.seed = seed
        self._content: dict[str, torch.Tensor] | None = None
        self._style: dict[str, list[LF.Stats]] | None = None  # layer -> one Stats per region
        self._content_masks: torch.Tensor | None = None  # Kx1xHxW for the output
        self._proj: dict[str, torch.Tensor] = {}

    # -- helpers -----------------------------------------------------------------------------
    @property
    def layers(self) -> list[str]:
        """Every layer the loss reads (content first)."""
        return list(dict.fromkeys([*self.content_layers, *self.style_layers]))

    def _projection(self, layer: str, channels: int, device: torch.device) -> torch.Tensor | None:
        if self.kind != "sliced_wasserstein":
            return None
        if layer not in self._proj:
            offset = sum(ord(ch) for ch in layer)
            self._proj[layer] = LF.projections(channels, seed=self.seed * 1000 + offset, device=device)
        return self._proj[layer]

    def style_sums(self, image: torch.Tensor, masks: torch.Tensor | None = None) -> dict[str, list[LF.Stats]]:
        """Additive style sums of ``image`` per layer and region (masks: Kx1xHxW or None)."""
        feats = self.encoder(image, layers=list(self.style_layers))
        return self._sums_from_features(feats, masks)

    def _sums_from_features(self, feats: Mapping[str, torch.Tensor], masks: torch.Tensor | None) -> dict[str, list[LF.Stats]]:
        out: dict[str, list[LF.Stats]] = {}
        for layer in self.style_layers:
            f = feats[layer]
            proj = self._projection(layer, f.shape[1], f.device)
            if masks is None:
                out[layer] = [LF.accumulate(self.kind, f, proj=proj)]
            else:
                out[layer] = [LF.accumulate(self.kind, f, mask=masks[k : k + 1].expand(f.shape[0], -1, -1, -1), proj=proj) for k in range(masks.shape[0])]
        return out

    # -- targets -----------------------------------------------------------------------------
    @torch.no_grad()
    def set_content(self, image: torch.Tensor | None) -> None:
        """Fix the content target (None: no content term, e.g. texture synthesis)."""
        if image is None:
            self._content = None
            return
        feats = self.encoder(image, layers=list(self.content_layers))
        self._content = {k: v.detach() for k, v in feats.items()}

    @torch.no_grad()
    def style_stats(self, image: torch.Tensor, masks: torch.Tensor | None = None) -> dict[str, list[LF.Stats]]:
        """Finalised style statistics of one image per layer and region (for caching/blending)."""
        sums = self.style_sums(image, masks)
        return {layer: [LF.finalize(self.kind, s) for s in regions] for layer, regions in sums.items()}

    @torch.no_grad()
    def set_style(
        self,
        images: Sequence[torch.Tensor] | torch.Tensor,
        blend: Sequence[float] | None = None,
        *,
        style_masks: Sequence[torch.Tensor | None] | None = None,
        content_masks: torch.Tensor | None = None,
        stats: Sequence[dict[str, list[LF.Stats]]] | None = None,
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
        self._content_masks = content_masks
        self._style = {
            layer: [
                LF.prepare_target(self.kind, LF.blend_stats(self.kind, [s[layer][k] for s in stats], blend))
                for k in range(regions)
            ]
            for layer in self.style_layers
        }

    # -- the loss ----------------------------------------------------------------------------
    def forward(  # type: ignore[override]
        self,
        image: torch.Tensor,
        content: torch.Tensor | None = None,
        *,
        style_offset: Mapping[str, list[LF.Stats]] | None = None,
        content_target: Mapping[str, torch.Tensor] | None = None,
        masks: torch.Tensor | None = None,
        content_mask: torch.Tensor | None = None,
        sums_out: dict[str, list[LF.Stats]] | None = None,
        content_norm: Mapping[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its terms ``{"content", "style", "tv"}`` (unweighted).

        ``style_offset``: additive sums from the rest of the image (tiled optimisation: the
        statistics are those of the whole image, not of the tile). ``content_target`` overrides
        the stored content features (a crop of them, for a tile). ``masks`` overrides the stored
        content-region masks (a crop of them, for a tile). ``content_mask`` (B1HW) weights the
        content error by position (a tile's core). ``sums_out`` receives this image's own style
        sums (detached), before ``style_offset`` is added. ``content_norm``: per-layer
        normaliser of the content error (the whole image's target energy, for a tile), so
        the tiles' content terms add up to the whole image's.
        """
        need_content = (content is not None or content_target is not None or self._content is not None) and self.content_weight > 0
        need_style = self._style is not None and self.style_weight > 0
        layers = list(dict.fromkeys([*(self.content_layers if need_content else []), *(self.style_layers if need_style else [])]))
        feats = self.encoder(image, layers=layers) if layers else {}
        zero = image.new_zeros(())
        terms: dict[str, torch.Tensor] = {"content": zero, "style": zero, "tv": zero}
        if need_content:
            if content is not None:
                with torch.no_grad():
                    target = {k: v.detach() for k, v in self.encoder(content, layers=list(self.content_layers)).items()}
            else:
                target = dict(content_target) if content_target is not None else self._content  # type: ignore[assignment]
            terms["content"] = sum(
                (w * _content(feats[l], target[l], content_mask, None if content_norm is None else content_norm[l]) for l, w in self.content_layers.items() if w > 0), zero
            )
        if need_style:
            assert self._style is not None
            region_masks = masks if masks is not None else self._content_masks
            sums = self._sums_from_features(feats, region_masks)
            if sums_out is not None:
                sums_out.update({layer: [{k: v.detach() for k, v in s.items()} for s in regions] for layer, regions in sums.items()})
            total = zero
            for layer, w in self.style_layers.items():
                if w == 0:
                    continue
                for k, s in enumerate(sums[layer]):
                    if style_offset is not None:
                        s = LF.merge_sums(s, _expand_offset(style_offset[layer][k], s))
                    stats = LF.finalize(self.kind, s)
                    total = total + w * LF.style_distance(self.kind, stats, self._style[layer][k])
            terms["style"] = total / len(next(iter(sums.values())))
        if self.tv_weight > 0:
            terms["tv"] = LF.tv_loss(image)
        loss = self.content_weight * terms["content"] + self.style_weight * terms["style"] + self.tv_weight * terms["tv"]
        return loss, terms


def _content(features: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None, norm: torch.Tensor | None = None) -> torch.Tensor:
    if mask is None and norm is None:
        return LF.content_loss(features, target)
    m = LF._mask_like(mask, features) if mask is not None else torch.ones_like(features[:, :1])
    diff = ((features - target).pow(2) * m).flatten(1).sum(1)
    if norm is None:
        norm = (target.pow(2) * m).flatten(1).sum(1)
    return (diff / norm.clamp_min(1e-8)).mean()


def content_energy(target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample sum of the squared target features (weighted by ``mask``): the content
    normaliser, additive over disjoint tiles."""
    m = LF._mask_like(mask, target) if mask is not None else torch.ones_like(target[:, :1])
    return (target.pow(2) * m).flatten(1).sum(1)


def _expand_offset(offset: LF.Stats, like: LF.Stats) -> LF.Stats:
    b = like["n"].shape[0]
    return {k: (v.expand(b, *v.shape[1:]) if v.shape[0] != b else v) for k, v in offset.items()}
