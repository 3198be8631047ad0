"""Pure loss functions on feature maps (BCHW) and images.

The style statistics themselves are registered objects (:mod:`impasto.losses.statistics`); the
functions here that take a ``kind`` are thin wrappers over ``get_statistic(kind)``: ``accumulate``
sums over pixels (merge tiles with ``merge_sums``), ``finalize`` turns sums into statistics and
``style_distance`` compares statistics. Distances are normalised by the target's own magnitude,
so a weight means the same thing for every layer, image size and encoder.
"""

from __future__ import annotations

import torch

from .statistics import EPS as _EPS
from .statistics import STYLE_LOSSES, Stats, as_bcn, get_statistic, gram_product, projections
from .statistics import mask_like as _mask_like

__all__ = [
    "STYLE_LOSSES",
    "gram_matrix",
    "content_loss",
    "tv_loss",
    "accumulate",
    "merge_sums",
    "finalize",
    "blend_stats",
    "style_distance",
    "style_loss",
    "projections",
    "prepare_target",
]


def gram_matrix(features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Gram matrix ``F·Fᵀ / n`` per sample: BxCxC, n = number of (mask-weighted) pixels."""
    b = features.shape[0]
    f = as_bcn(features)
    if mask is None:
        return gram_product(f) / f.shape[-1]
    m = _mask_like(mask, features).reshape(b, 1, -1)
    return torch.bmm(f * m, f.transpose(1, 2)) / m.sum(-1, keepdim=True).clamp_min(_EPS)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error normalised by the target's energy (0 for identical inputs), per batch mean.

    Reduced with per-sample norms over every non-batch dimension, so channels-last features are
    read in place (no flattening copy) and the backward pass is one multiply over the features.
    """
    dims = tuple(range(1, features.dim()))
    n = features[0].numel()
    diff = torch.linalg.vector_norm(features - target, dim=dims).square() / n
    norm = (torch.linalg.vector_norm(target, dim=dims).square() / n).clamp_min(_EPS)
    return (diff / norm).mean()


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation: mean squared difference of neighbouring pixels (0 for a constant image)."""
    dy = (image[..., 1:, :] - image[..., :-1, :]).pow(2).mean()
    dx = (image[..., :, 1:] - image[..., :, :-1]).pow(2).mean()
    return dx + dy


def accumulate(kind: str, features: torch.Tensor, mask: torch.Tensor | None = None, proj: torch.Tensor | None = None) -> Stats:
    """Additive per-sample sums over pixels for statistic ``kind`` (merge tiles with merge_sums)."""
    return get_statistic(kind).accumulate(features, mask, proj)


def merge_sums(a: Stats, b: Stats) -> Stats:
    """Combine the sums of two disjoint pixel sets (e.g. two tiles) of any built-in statistic."""
    out: Stats = {}
    for k in a:
        out[k] = torch.cat([a[k], b[k]], dim=-1) if k == "values" else a[k] + b[k]
    return out


def finalize(kind: str, sums: Stats, quantiles: int = 256) -> Stats:
    """Statistics from sums: gram {G}; mean_std {mean, std}; wasserstein {mean, cov}; sliced {sorted}."""
    return get_statistic(kind).finalize(sums)


def blend_stats(kind: str, stats: list[Stats], weights: list[float]) -> Stats:
    """Weighted combination of several styles' statistics (weights are normalised to sum 1).

    For sliced Wasserstein this is the exact 1-D Wasserstein barycentre (average of quantile
    functions); for the others, the average of the moments.
    """
    return get_statistic(kind).blend(stats, weights)


def style_distance(kind: str, stats: Stats, target: Stats) -> torch.Tensor:
    """Normalised distance between statistics (0 when equal); averaged over the batch."""
    return get_statistic(kind).distance(stats, target)


def prepare_target(kind: str, target: Stats) -> Stats:
    """Precompute what a target needs once (the matrix square root for Wasserstein)."""
    return get_statistic(kind).prepare(target)


def style_loss(
    kind: str,
    features: torch.Tensor,
    target_features: torch.Tensor,
    proj: torch.Tensor | None = None,
) -> torch.Tensor:
    """Convenience: style distance between two feature maps (0 for identical inputs)."""
    stat = get_statistic(kind)
    if proj is None:
        proj = stat.layer_params(features.shape[1], 0, features.device)
    a = stat.finalize(stat.accumulate(features, None, proj))
    b = stat.finalize(stat.accumulate(target_features, None, proj))
    return stat.distance(a, stat.prepare(b))
