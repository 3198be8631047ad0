"""Pure loss functions on feature maps (BCHW) and images.

Every style statistic is built from *additive* sums over pixels (``accumulate``), so statistics
of a whole image can be assembled from tiles; ``finalize`` turns sums into statistics and
``style_distance`` compares statistics. Distances are normalised by the target's own magnitude,
so a weight means the same thing for every layer, image size and encoder.
"""

from __future__ import annotations



import torch
import torch.nn.functional as F

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

STYLE_LOSSES = ("gram", "mean_std", "wasserstein", "sliced_wasserstein")
_EPS = 1e-8

Stats = dict[str, torch.Tensor]


def gram_matrix(features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Gram matrix ``F·Fᵀ / n`` per sample: BxCxC, n = number of (mask-weighted) pixels."""
    b, c = features.shape[:2]
    f = features.reshape(b, c, -1)
    if mask is None:
        return torch.bmm(f, f.transpose(1, 2)) / f.shape[-1]
    m = _mask_like(mask, features).reshape(b, 1, -1)
    return torch.bmm(f * m, f.transpose(1, 2)) / m.sum(-1, keepdim=True).clamp_min(_EPS)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error normalised by the target's energy (0 for identical inputs), per batch mean."""
    diff = (features - target).pow(2).flatten(1).mean(1)
    norm = target.pow(2).flatten(1).mean(1).clamp_min(_EPS)
    return (diff / norm).mean()


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation: mean squared difference of neighbouring pixels (0 for a constant image)."""
    dy = (image[..., 1:, :] - image[..., :-1, :]).pow(2).mean()
    dx = (image[..., :, 1:] - image[..., :, :-1]).pow(2).mean()
    return dx + dy


def _mask_like(mask: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    if mask.shape[-2:] != features.shape[-2:]:
        mask = F.interpolate(mask, size=features.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
    return mask.to(features.dtype)


def projections(channels: int, count: int | None = None, seed: int = 0, device: torch.device | None = None) -> torch.Tensor:
    """Random unit directions (count x channels) for the sliced Wasserstein loss, from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    count = count or channels
    p = torch.randn(count, channels, generator=gen)
    return (p / p.norm(dim=1, keepdim=True)).to(device or "cpu")


def accumulate(kind: str, features: torch.Tensor, mask: torch.Tensor | None = None, proj: torch.Tensor | None = None) -> Stats:
    """Additive per-sample sums over pixels for statistic ``kind`` (merge tiles with merge_sums)."""
    b, c = features.shape[:2]
    f = features.reshape(b, c, -1)
    w = None if mask is None else _mask_like(mask, features).reshape(b, 1, -1)
    n = torch.full((b,), float(f.shape[-1]), device=f.device) if w is None else w.sum((1, 2))
    fw = f if w is None else f * w
    sums: Stats = {"n": n, "s1": fw.sum(-1)}
    if kind in ("gram", "wasserstein"):
        sums["s2"] = torch.bmm(fw, f.transpose(1, 2))
    elif kind == "mean_std":
        sums["sq"] = (fw * f).sum(-1)
    elif kind == "sliced_wasserstein":
        if proj is None:
            raise ValueError("sliced_wasserstein needs projections")
        values = torch.einsum("pc,bcn->bpn", proj.to(f.dtype), f)
        if w is not None:  # keep only pixels inside the (hard) region
            keep = w[0, 0] > 0.5
            values = values[..., keep]
        sums["values"] = values
    else:
        raise ValueError(f"unknown style loss {kind!r}; choose from {', '.join(STYLE_LOSSES)}")
    return sums


def merge_sums(a: Stats, b: Stats) -> Stats:
    """Combine the sums of two disjoint pixel sets (e.g. two tiles)."""
    out: Stats = {}
    for k in a:
        out[k] = torch.cat([a[k], b[k]], dim=-1) if k == "values" else a[k] + b[k]
    return out


def finalize(kind: str, sums: Stats, quantiles: int = 256) -> Stats:
    """Statistics from sums: gram {G}; mean_std {mean, std}; wasserstein {mean, cov}; sliced {q}."""
    n = sums["n"].clamp_min(_EPS)
    if kind == "gram":
        return {"gram": sums["s2"] / n[:, None, None]}
    mean = sums["s1"] / n[:, None]
    if kind == "mean_std":
        var = (sums["sq"] / n[:, None] - mean.pow(2)).clamp_min(0)
        return {"mean": mean, "std": (var + 1e-5).sqrt()}
    if kind == "wasserstein":
        cov = sums["s2"] / n[:, None, None] - mean[:, :, None] * mean[:, None, :]
        return {"mean": mean, "cov": cov}
    if kind == "sliced_wasserstein":
        values = sums["values"].sort(dim=-1).values
        return {"sorted": values}
    raise ValueError(f"unknown style loss {kind!r}")


def _resample_sorted(values: torch.Tensor, count: int) -> torch.Tensor:
    """Quantile function resampled to ``count`` points (linear interpolation)."""
    if values.shape[-1] == count:
        return values
    b, p, n = values.shape
    return F.interpolate(values.reshape(b * p, 1, n), size=count, mode="linear", align_corners=True).reshape(b, p, count)


def blend_stats(kind: str, stats: list[Stats], weights: list[float]) -> Stats:
    """Weighted combination of several styles' statistics (weights are normalised to sum 1).

    For sliced Wasserstein this is the exact 1-D Wasserstein barycentre (average of quantile
    functions); for the others, the average of the moments.
    """
    total = float(sum(weights))
    if total <= 0:
        raise ValueError("style blend weights must sum to a positive number")
    ws = [w / total for w in weights]
    if kind == "sliced_wasserstein":
        count = max(s["sorted"].shape[-1] for s in stats)
        return {"sorted": sum(w * _resample_sorted(s["sorted"], count) for s, w in zip(stats, ws))}  # type: ignore[dict-item]
    return {k: sum(w * s[k] for s, w in zip(stats, ws)) for k in stats[0]}  # type: ignore[misc]


def _sqrtm_trace(a: torch.Tensor) -> torch.Tensor:
    """trace(sqrt(A)) for symmetric PSD A (batched), differentiable through eigenvalues."""
    a = 0.5 * (a + a.transpose(-1, -2))
    ev = torch.linalg.eigvalsh(a.double()).clamp_min(0).to(a.dtype)
    return (ev + 1e-10).sqrt().sum(-1)


def _sqrtm(a: torch.Tensor) -> torch.Tensor:
    a = 0.5 * (a + a.transpose(-1, -2))
    ev, vec = torch.linalg.eigh(a.double())
    return ((vec * ev.clamp_min(0).sqrt().unsqueeze(-2)) @ vec.transpose(-1, -2)).to(a.dtype)


def style_distance(kind: str, stats: Stats, target: Stats) -> torch.Tensor:
    """Normalised distance between statistics (0 when equal); averaged over the batch."""
    if kind == "gram":
        g, t = stats["gram"], target["gram"]
        return ((g - t).pow(2).sum((1, 2)) / t.pow(2).sum((1, 2)).clamp_min(_EPS)).mean()
    if kind == "mean_std":
        d = (stats["mean"] - target["mean"]).pow(2).sum(1) + (stats["std"] - target["std"]).pow(2).sum(1)
        norm = target["mean"].pow(2).sum(1) + target["std"].pow(2).sum(1)
        return (d / norm.clamp_min(_EPS)).mean()
    if kind == "wasserstein":
        mu, cov = stats["mean"], stats["cov"]
        mu_t, cov_t = target["mean"], target["cov"]
        root_t = target["root"] if "root" in target else _sqrtm(cov_t)
        cross = root_t @ cov @ root_t
        w2 = (mu - mu_t).pow(2).sum(1) + _diag_sum(cov) + _diag_sum(cov_t) - 2 * _sqrtm_trace(cross)
        norm = mu_t.pow(2).sum(1) + _diag_sum(cov_t)
        return (w2.clamp_min(0) / norm.clamp_min(_EPS)).mean()
    if kind == "sliced_wasserstein":
        s, t = stats["sorted"], target["sorted"]
        t = _resample_sorted(t, s.shape[-1])
        return ((s - t).pow(2).mean((1, 2)) / t.pow(2).mean((1, 2)).clamp_min(_EPS)).mean()
    raise ValueError(f"unknown style loss {kind!r}")


def _diag_sum(m: torch.Tensor) -> torch.Tensor:
    return m.diagonal(dim1=-2, dim2=-1).sum(-1)


def prepare_target(kind: str, target: Stats) -> Stats:
    """Precompute what a target needs once (the matrix square root for Wasserstein)."""
    if kind == "wasserstein" and "root" not in target:
        return {**target, "root": _sqrtm(target["cov"])}
    return target


def style_loss(
    kind: str,
    features: torch.Tensor,
    target_features: torch.Tensor,
    proj: torch.Tensor | None = None,
) -> torch.Tensor:
    """Convenience: style distance between two feature maps (0 for identical inputs)."""
    if kind == "sliced_wasserstein" and proj is None:
        proj = projections(features.shape[1], device=features.device)
    a = finalize(kind, accumulate(kind, features, proj=proj))
    b = finalize(kind, accumulate(kind, target_features, proj=proj))
    return style_distance(kind, a, prepare_target(kind, b))
