"""Style statistics as registered objects: Gram, mean/std, Gaussian W2, sliced Wasserstein.

A statistic describes the style of a feature map (BCHW) in four steps: ``accumulate`` sums over
the pixels (optionally weighted by a region mask), ``merge`` combines the sums of two disjoint
pixel sets (two tiles), ``finalize`` turns sums into statistics and ``distance`` compares
statistics with a target's. ``blend`` combines several styles' statistics and ``prepare``
precomputes what a target needs once. Distances are normalised by the target's own magnitude,
so a weight means the same for every layer, image size and encoder.

``additive`` says the sums are tensors that add key by key (so ``merge`` is addition and the
sums of the rest of an image are ``total - part``): tiled optimisation needs that and refuses
statistics without it.

A new statistic is one subclass and one ``register_statistic(...)`` call; it then works in
``PerceptualLoss(style_loss=NAME)``, every method's ``style_loss`` option and tiling.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any, ClassVar, Iterator, overload

import torch
import torch.nn.functional as F

from ..errors import UsageError

__all__ = [
    "Stats",
    "StyleStatistic",
    "Gram",
    "MeanStd",
    "Wasserstein",
    "SlicedWasserstein",
    "register_statistic",
    "unregister_statistic",
    "get_statistic",
    "statistic_names",
    "STYLE_LOSSES",
    "pixel_sums",
    "mask_like",
    "projections",
    "EPS",
]

EPS = 1e-8

Stats = dict[str, torch.Tensor]


def mask_like(mask: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """``mask`` (B1HW or K1HW) resized (antialiased bilinear) to ``features``' spatial size."""
    if mask.shape[-2:] != features.shape[-2:]:
        mask = F.interpolate(mask, size=features.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
    return mask.to(features.dtype)


def projections(channels: int, count: int | None = None, seed: int = 0, device: torch.device | None = None) -> torch.Tensor:
    """Random unit directions (count x channels) for the sliced Wasserstein loss, from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    count = count or channels
    p = torch.randn(count, channels, generator=gen)
    return (p / p.norm(dim=1, keepdim=True)).to(device or "cpu")


class _SymmetricGram(torch.autograd.Function):
    """``F·Fᵀ`` (BxCxN -> BxCxC) whose backward is one batched product, ``(G + Gᵀ)·F``, written
    in ``F``'s own memory layout (autograd's ``bmm`` backward takes two products and a sum, and
    for channels-last features a layout-changing copy besides)."""

    @staticmethod
    def forward(ctx: Any, f: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(f)
        return torch.bmm(f, f.transpose(1, 2))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        (f,) = ctx.saved_tensors
        sym = grad + grad.transpose(1, 2)
        if f.stride(1) == 1 and f.stride(2) != 1:  # pixels-major (a channels-last view): BxNxC product
            return torch.bmm(f.transpose(1, 2), sym).transpose(1, 2)
        return torch.bmm(sym, f)


def gram_product(f: torch.Tensor) -> torch.Tensor:
    """``F·Fᵀ`` of BxCxN features (unnormalised Gram), with a one-product backward."""
    return _SymmetricGram.apply(f)  # type: ignore[no-any-return]


def as_bcn(features: torch.Tensor) -> torch.Tensor:
    """BxCxHxW features as BxCxN; for channels-last features a view (pixels-major), not a copy."""
    b, c = features.shape[:2]
    if features.dim() == 4 and not features.is_contiguous() and features.is_contiguous(memory_format=torch.channels_last):
        return features.permute(0, 2, 3, 1).reshape(b, -1, c).transpose(1, 2)
    return features.reshape(b, c, -1)


def pixel_sums(features: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, Stats]:
    """The common start of ``accumulate``: ``(f, w, fw, {"n", "s1"})`` with ``f`` the features as
    BxCxN, ``w`` the mask as Bx1xN (or None), ``fw = f * w``, ``n`` the (weighted) pixel count and
    ``s1`` the weighted feature sum."""
    b = features.shape[0]
    f = as_bcn(features)
    w = None if mask is None else mask_like(mask, features).reshape(b, 1, -1)
    n = torch.full((b,), float(f.shape[-1]), device=f.device) if w is None else w.sum((1, 2))
    fw = f if w is None else f * w
    return f, w, fw, {"n": n, "s1": fw.sum(-1)}


class StyleStatistic:
    """Base of the style statistics. Subclasses set ``name`` (and ``additive``) and implement
    ``accumulate``, ``finalize`` and ``distance``; the rest has working defaults."""

    #: the name users give (``style_loss="gram"``)
    name: ClassVar[str] = ""
    #: the sums add key by key over disjoint pixel sets (tiling depends on it)
    additive: ClassVar[bool] = True
    #: one line for help texts
    description: ClassVar[str] = ""

    def layer_params(self, channels: int, seed: int, device: torch.device) -> torch.Tensor | None:
        """Fixed per-layer parameters drawn once from ``seed`` (e.g. projections); None: none."""
        return None

    def accumulate(self, features: torch.Tensor, mask: torch.Tensor | None = None, params: torch.Tensor | None = None) -> Stats:
        """Per-sample sums over the pixels of ``features`` (weighted by ``mask``, B1HW)."""
        raise NotImplementedError

    def merge(self, a: Stats, b: Stats) -> Stats:
        """The sums of the union of two disjoint pixel sets (key-wise addition by default)."""
        return {k: a[k] + b[k] for k in a}

    def finalize(self, sums: Stats) -> Stats:
        """Statistics from sums."""
        raise NotImplementedError

    def distance(self, stats: Stats, target: Stats) -> torch.Tensor:
        """Normalised distance between statistics (0 when equal), averaged over the batch."""
        raise NotImplementedError

    def blend(self, stats: list[Stats], weights: Sequence[float]) -> Stats:
        """Weighted combination of several styles' statistics (weights normalised to sum 1);
        by default the weighted average of every entry."""
        ws = normalised_blend(weights)
        return {k: sum(w * s[k] for s, w in zip(stats, ws)) for k in stats[0]}  # type: ignore[misc]

    def prepare(self, target: Stats) -> Stats:
        """What a target needs computed once (default: nothing)."""
        return target

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, additive={self.additive})"


def normalised_blend(weights: Sequence[float]) -> list[float]:
    """Blend weights scaled to sum 1 (they must sum to a positive number)."""
    total = float(sum(weights))
    if total <= 0:
        raise ValueError("style blend weights must sum to a positive number")
    return [w / total for w in weights]


class Gram(StyleStatistic):
    """Gram matrix ``F·Fᵀ / n`` (Gatys et al.)."""

    name = "gram"
    description = "Gram matrix (Gatys)"

    def accumulate(self, features: torch.Tensor, mask: torch.Tensor | None = None, params: torch.Tensor | None = None) -> Stats:
        f, w, fw, sums = pixel_sums(features, mask)
        sums["s2"] = gram_product(f) if w is None else torch.bmm(fw, f.transpose(1, 2))
        return sums

    def finalize(self, sums: Stats) -> Stats:
        n = sums["n"].clamp_min(EPS)
        return {"gram": sums["s2"] / n[:, None, None]}

    def distance(self, stats: Stats, target: Stats) -> torch.Tensor:
        g, t = stats["gram"], target["gram"]
        return ((g - t).pow(2).sum((1, 2)) / t.pow(2).sum((1, 2)).clamp_min(EPS)).mean()


class MeanStd(StyleStatistic):
    """Channel means and standard deviations (AdaIN's statistics)."""

    name = "mean_std"
    description = "channel mean and std (AdaIN)"

    def accumulate(self, features: torch.Tensor, mask: torch.Tensor | None = None, params: torch.Tensor | None = None) -> Stats:
        f, _w, fw, sums = pixel_sums(features, mask)
        sums["sq"] = (fw * f).sum(-1)
        return sums

    def finalize(self, sums: Stats) -> Stats:
        n = sums["n"].clamp_min(EPS)
        mean = sums["s1"] / n[:, None]
        var = (sums["sq"] / n[:, None] - mean.pow(2)).clamp_min(0)
        return {"mean": mean, "std": (var + 1e-5).sqrt()}

    def distance(self, stats: Stats, target: Stats) -> torch.Tensor:
        d = (stats["mean"] - target["mean"]).pow(2).sum(1) + (stats["std"] - target["std"]).pow(2).sum(1)
        norm = target["mean"].pow(2).sum(1) + target["std"].pow(2).sum(1)
        return (d / norm.clamp_min(EPS)).mean()


def _diag_sum(m: torch.Tensor) -> torch.Tensor:
    return m.diagonal(dim1=-2, dim2=-1).sum(-1)


def _sqrtm_trace(a: torch.Tensor) -> torch.Tensor:
    """trace(sqrt(A)) for symmetric PSD A (batched), differentiable through eigenvalues."""
    a = 0.5 * (a + a.transpose(-1, -2))
    ev = torch.linalg.eigvalsh(a.double()).clamp_min(0).to(a.dtype)
    return (ev + 1e-10).sqrt().sum(-1)


def _sqrtm(a: torch.Tensor) -> torch.Tensor:
    a = 0.5 * (a + a.transpose(-1, -2))
    ev, vec = torch.linalg.eigh(a.double())
    return ((vec * ev.clamp_min(0).sqrt().unsqueeze(-2)) @ vec.transpose(-1, -2)).to(a.dtype)


class Wasserstein(StyleStatistic):
    """Gaussian 2-Wasserstein distance between the feature distributions (mean, covariance)."""

    name = "wasserstein"
    description = "Gaussian W2 (mean and covariance)"

    accumulate = Gram.accumulate  # the same sums: pixel count, first and second moments

    def finalize(self, sums: Stats) -> Stats:
        n = sums["n"].clamp_min(EPS)
        mean = sums["s1"] / n[:, None]
        cov = sums["s2"] / n[:, None, None] - mean[:, :, None] * mean[:, None, :]
        return {"mean": mean, "cov": cov}

    def distance(self, stats: Stats, target: Stats) -> torch.Tensor:
        mu, cov = stats["mean"], stats["cov"]
        mu_t, cov_t = target["mean"], target["cov"]
        root_t = target["root"] if "root" in target else _sqrtm(cov_t)
        cross = root_t @ cov @ root_t
        w2 = (mu - mu_t).pow(2).sum(1) + _diag_sum(cov) + _diag_sum(cov_t) - 2 * _sqrtm_trace(cross)
        norm = mu_t.pow(2).sum(1) + _diag_sum(cov_t)
        return (w2.clamp_min(0) / norm.clamp_min(EPS)).mean()

    def prepare(self, target: Stats) -> Stats:
        if "root" not in target:
            return {**target, "root": _sqrtm(target["cov"])}
        return target


def _resample_sorted(values: torch.Tensor, count: int) -> torch.Tensor:
    """Quantile function resampled to ``count`` points (linear interpolation)."""
    if values.shape[-1] == count:
        return values
    b, p, n = values.shape
    return F.interpolate(values.reshape(b * p, 1, n), size=count, mode="linear", align_corners=True).reshape(b, p, count)


class SlicedWasserstein(StyleStatistic):
    """Sliced Wasserstein distance (Heitz et al. 2021): sorted projections of the features on
    random directions. Its sums are the projected values themselves, so it is not additive."""

    name = "sliced_wasserstein"
    additive = False
    description = "sliced Wasserstein (Heitz et al. 2021)"

    def layer_params(self, channels: int, seed: int, device: torch.device) -> torch.Tensor | None:
        return projections(channels, seed=seed, device=device)

    def accumulate(self, features: torch.Tensor, mask: torch.Tensor | None = None, params: torch.Tensor | None = None) -> Stats:
        if params is None:
            raise ValueError("sliced_wasserstein needs projections")
        f, w, _fw, sums = pixel_sums(features, mask)
        values = torch.einsum("pc,bcn->bpn", params.to(f.dtype), f)
        if w is not None:  # keep only pixels inside the (hard) region
            keep = w[0, 0] > 0.5
            values = values[..., keep]
        sums["values"] = values
        return sums

    def merge(self, a: Stats, b: Stats) -> Stats:
        return {k: torch.cat([a[k], b[k]], dim=-1) if k == "values" else a[k] + b[k] for k in a}

    def finalize(self, sums: Stats) -> Stats:
        return {"sorted": sums["values"].sort(dim=-1).values}

    def distance(self, stats: Stats, target: Stats) -> torch.Tensor:
        s, t = stats["sorted"], target["sorted"]
        t = _resample_sorted(t, s.shape[-1])
        return ((s - t).pow(2).mean((1, 2)) / t.pow(2).mean((1, 2)).clamp_min(EPS)).mean()

    def blend(self, stats: list[Stats], weights: Sequence[float]) -> Stats:
        """The exact 1-D Wasserstein barycentre: the weighted average of quantile functions."""
        ws = normalised_blend(weights)
        count = max(s["sorted"].shape[-1] for s in stats)
        return {"sorted": sum(w * _resample_sorted(s["sorted"], count) for s, w in zip(stats, ws))}  # type: ignore[dict-item]


# -- the registry ----------------------------------------------------------------------------

_REGISTRY: dict[str, StyleStatistic] = {}


def register_statistic(statistic: StyleStatistic | type[StyleStatistic]) -> StyleStatistic:
    """Add a statistic (an instance or a class with a no-argument constructor) under its
    ``name``; the name must be new. Returns the registered instance."""
    stat = statistic() if isinstance(statistic, type) else statistic
    if not stat.name or not stat.name.isidentifier():
        raise ValueError(f"a style statistic needs a name that is a Python identifier, got {stat.name!r}")
    if stat.name in _REGISTRY:
        raise ValueError(f"style statistic {stat.name!r} is already registered")
    _REGISTRY[stat.name] = stat
    return stat


def unregister_statistic(name: str) -> None:
    """Remove a registered statistic (tests, plugins); unknown names are ignored."""
    _REGISTRY.pop(name, None)


def statistic_names() -> tuple[str, ...]:
    """The registered statistics' names, in registration order."""
    return tuple(_REGISTRY)


def unknown_statistic_message(name: str) -> str:
    """The one-line error for an unknown statistic, with a "did you mean"."""
    close = difflib.get_close_matches(str(name), list(_REGISTRY), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown style_loss {name!r}{hint}; choose from {', '.join(_REGISTRY)}"


def get_statistic(name: str | StyleStatistic) -> StyleStatistic:
    """The statistic registered as ``name`` (an instance is returned as is)."""
    if isinstance(name, StyleStatistic):
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UsageError(unknown_statistic_message(name), params="style_loss") from None


class _StatisticNames(Sequence[str]):
    """A live, read-only view of the registered names: ``"gram" in STYLE_LOSSES``, iteration and
    ``", ".join(STYLE_LOSSES)`` always see the registry as it is now (a statistic registered
    after import is a valid choice at once)."""

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...
    def __getitem__(self, index: Any) -> Any:
        return tuple(_REGISTRY)[index]

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in _REGISTRY

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(_REGISTRY))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, (tuple, list, _StatisticNames)) and tuple(self) == tuple(other)

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return repr(tuple(_REGISTRY))

    def __reduce__(self) -> str:
        return "STYLE_LOSSES"


#: names of the registered style statistics (a live view of the registry)
STYLE_LOSSES: Sequence[str] = _StatisticNames()

for _cls in (Gram, MeanStd, Wasserstein, SlicedWasserstein):
    register_statistic(_cls)
del _cls
