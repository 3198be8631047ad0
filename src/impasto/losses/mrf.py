"""The patch-based (MRF) style loss of CNNMRF (Li & Wand 2016): nearest style patches.

Every ``size x size`` patch of the generated feature map is matched to the style patch with the
highest normalised cross-correlation (the dot product with the unit-norm style patches), and the
loss pulls it toward that patch's raw features. A functional core (``extract_patches``,
``build_target``, ``match``, ``mrf_loss``; used by the gatys and doodle methods) and the registered
statistic :class:`MRF` (``style_loss="mrf"``).

Matching is exact and independent of ``chunk``: the patches are rounded to integers (about 19
bits, so every dot product of them is exact in float64), a float32 pass keeps a few candidates
per generated patch, and the winner among them is decided on exact scores (lowest index on ties).
A patch whose candidates are too close to tell apart within float32's error bound is rescored
exactly against every style patch. So the same inputs give the same indices for every chunk size
and memory budget.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import UsageError
from .statistics import EPS, Stats, StyleStatistic, normalised_blend, register_statistic, statistic_names

__all__ = ["PatchTarget", "extract_patches", "build_target", "match", "mrf_loss", "auto_chunk", "auto_stride", "MRF", "DEFAULT_BUDGET", "AUTO_PATCHES"]

#: working memory of the score matrix (bytes) when ``chunk`` is not given, on the CPU
DEFAULT_BUDGET = 256 * 2**20
#: float32 candidates kept per generated patch before the exact decision
CANDIDATES = 4
#: stride 0 (auto): the smallest stride that leaves at most this many of a style layer's patches
AUTO_PATCHES = 8192


def auto_stride(hw: Sequence[int], size: int = 3, limit: int = AUTO_PATCHES) -> int:
    """The patch stride ``stride=0`` stands for: the smallest that leaves at most ``limit``
    ``size x size`` patches of an ``hw`` feature map. Matching costs generated x style patches,
    so this bounds the cost per layer; 1 for the small maps of coarse scales."""
    h, w = int(hw[0]), int(hw[1])
    stride = 1
    while ((h - size) // stride + 1) * ((w - size) // stride + 1) > limit and stride < max(h, w):
        stride += 1
    return stride


def extract_patches(features: Tensor, size: int = 3, stride: int = 1) -> Tensor:
    """All ``size x size`` patches of ``features`` (1xCxHxW) as rows: N x (C*size*size), positions
    row-major (``F.unfold``'s order; a row is channel-major). A batch gives its samples in turn."""
    if features.dim() != 4:
        raise ValueError(f"extract_patches: expected BxCxHxW features, got shape {tuple(features.shape)}")
    if size < 1 or stride < 1:
        raise ValueError(f"extract_patches: size and stride must be >= 1, got {size} and {stride}")
    h, w = features.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"extract_patches: a {w}x{h} feature map is smaller than the patch size {size}")
    cols = F.unfold(features, size, stride=stride)  # B x D x L
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


@dataclass
class PatchTarget:
    """The style patches of one layer (and region): ``raw`` rows (N x D, D = channels*size*size),
    the same rows at unit L2 norm (``normed``, what matching sees) and per-patch ``weights``
    (style blends). The last ``guide_channels`` of the ``channels`` are a semantic guide: they
    steer matching but are not part of the loss."""

    raw: Tensor
    normed: Tensor
    weights: Tensor
    size: int
    stride: int
    channels: int
    guide_channels: int = 0

    def __len__(self) -> int:
        return int(self.raw.shape[0])

    @property
    def feature_dim(self) -> int:
        """Length of the feature part of a row (the guide part follows it)."""
        return (self.channels - self.guide_channels) * self.size * self.size

    def to_stats(self) -> Stats:
        """As a tensor dict (how style targets are stored)."""
        meta = torch.tensor([self.size, self.stride, self.channels, self.guide_channels])
        return {"raw": self.raw, "normed": self.normed, "weights": self.weights, "meta": meta}

    @classmethod
    def from_stats(cls, stats: Stats) -> "PatchTarget":
        """Inverse of ``to_stats``."""
        size, stride, channels, guide = (int(v) for v in stats["meta"].tolist())
        return cls(stats["raw"], stats["normed"], stats["weights"], size, stride, channels, guide)

    @classmethod
    def pool(cls, targets: Sequence["PatchTarget"]) -> "PatchTarget":
        """One target holding every patch of ``targets`` (same size, stride and channels)."""
        first = targets[0]
        for t in targets[1:]:
            if (t.size, t.stride, t.channels, t.guide_channels) != (first.size, first.stride, first.channels, first.guide_channels):
                raise ValueError("PatchTarget.pool: targets differ in patch size, stride or channels")
        cat = lambda name: torch.cat([getattr(t, name) for t in targets])  # noqa: E731
        return cls(cat("raw"), cat("normed"), cat("weights"), first.size, first.stride, first.channels, first.guide_channels)


def _resize_to(t: Tensor, hw: Sequence[int]) -> Tensor:
    """``t`` (BxKxhxw) resized to ``hw`` (antialiased bilinear; unchanged when already there)."""
    if tuple(t.shape[-2:]) == tuple(hw):
        return t
    return F.interpolate(t, size=tuple(hw), mode="bilinear", align_corners=False, antialias=True)


def _with_guide(features: Tensor, guide: Tensor | None, guide_weight: float) -> Tensor:
    if guide is None:
        return features
    g = _resize_to(guide.detach().to(device=features.device, dtype=features.dtype), features.shape[-2:])
    return torch.cat([features, g.expand(features.shape[0], -1, -1, -1) * float(guide_weight)], 1)


def _centres_inside(mask: Tensor, hw: Sequence[int], size: int, stride: int) -> Tensor:
    """Which patches (row-major, as ``extract_patches``) have their centre where ``mask`` >= 0.5."""
    m = _resize_to(mask.detach().float(), hw)[0, 0]
    c = size // 2
    rows, cols = (int(hw[0]) - size) // stride + 1, (int(hw[1]) - size) // stride + 1
    centres = m[c : c + (rows - 1) * stride + 1 : stride, c : c + (cols - 1) * stride + 1 : stride]
    return (centres >= 0.5).reshape(-1)


def build_target(
    features: Tensor,
    *,
    size: int = 3,
    stride: int = 1,
    mask: Tensor | None = None,
    guide: Tensor | None = None,
    guide_weight: float = 0.0,
    rotations: int = 0,
    scales: Sequence[float] = (),
    weight: float = 1.0,
) -> PatchTarget:
    """The patches of a style image's features (1xCxHxW, one layer).

    ``mask`` (1x1xHxW, any size): keep only patches whose centre has mask >= 0.5. ``guide``
    (1xSxHxW semantic channels, any size) is concatenated to the features times ``guide_weight``
    before extraction, so matching sees it. ``rotations`` (0..3) adds the map rotated by 90, 180
    and 270 degrees; ``scales`` adds the map resized by each factor (bilinear); the patches of
    all of them are pooled. Every patch gets the weight ``weight``. ``stride`` 0: ``auto_stride``
    of the feature map (the generated patches use the target's stride too).
    """
    if features.dim() != 4 or features.shape[0] != 1:
        raise ValueError(f"build_target: expected 1xCxHxW features, got shape {tuple(features.shape)}")
    if stride < 0:
        raise ValueError(f"build_target: stride must be >= 0 (0 = auto), got {stride}")
    stride = int(stride) or auto_stride(features.shape[-2:], size)
    if not 0 <= int(rotations) <= 3:
        raise ValueError(f"build_target: rotations must be in 0..3, got {rotations}")
    if any(not (s > 0 and math.isfinite(s)) for s in scales):
        raise ValueError(f"build_target: scales must be positive factors, got {tuple(scales)}")
    x = _with_guide(features.detach(), guide, guide_weight)
    m = None if mask is None else _resize_to(mask.detach().to(device=x.device, dtype=x.dtype)[:1, :1], x.shape[-2:])
    variants = [(x, m)]
    for k in range(1, int(rotations) + 1):
        variants.append((torch.rot90(x, k, (2, 3)), None if m is None else torch.rot90(m, k, (2, 3))))
    for factor in scales:
        hw = (max(1, round(x.shape[-2] * factor)), max(1, round(x.shape[-1] * factor)))
        if min(hw) >= size:
            variants.append((_resize_to(x, hw), None if m is None else _resize_to(m, hw)))
    parts = []
    for v, vm in variants:
        p = extract_patches(v, size, stride)
        parts.append(p if vm is None else p[_centres_inside(vm, v.shape[-2:], size, stride)])
    raw = torch.cat(parts).contiguous()
    normed = raw / raw.norm(dim=1, keepdim=True).clamp_min(EPS)
    weights = torch.full((raw.shape[0],), float(weight), dtype=raw.dtype, device=raw.device)
    return PatchTarget(raw, normed, weights, int(size), int(stride), int(x.shape[1]), 0 if guide is None else int(guide.shape[1]))


# -- matching ------------------------------------------------------------------------------------


def auto_chunk(n_gen: int, n_style: int, budget_bytes: int | None = None) -> int:
    """Style patches per chunk so the score matrices (about 12 bytes per generated x style patch)
    fit ``budget_bytes`` (default ``DEFAULT_BUDGET``)."""
    budget = DEFAULT_BUDGET if budget_bytes is None else int(budget_bytes)
    return max(1, min(max(1, n_style), budget // (12 * max(1, n_gen))))


def _device_budget(device: torch.device) -> int:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return max(16 * 2**20, free // 4)
    return DEFAULT_BUDGET


def _unit_roundoff() -> float:
    """The relative error of one float32 matmul operation under the current precision setting."""
    u = {"highest": 2.0**-24, "high": 2.0**-11}.get(torch.get_float32_matmul_precision(), 2.0**-8)
    if torch.backends.cuda.matmul.allow_tf32:
        u = max(u, 2.0**-11)
    return u


def _bits(d: int) -> int:
    """Integer bits per quantised value so that a D-long dot product is exact in float64."""
    return max(8, min(24, (52 - math.ceil(math.log2(max(d, 2)))) // 2))


def match(gen_patches: Tensor, target: PatchTarget, *, chunk: int | None = None, variety: float = 0.0) -> Tensor:
    """Index (LongTensor, N_gen) of the style patch with the highest normalised cross-correlation
    for every generated patch (rows of ``gen_patches``, D as the target's), lowest index on ties.

    Computed over chunks of ``chunk`` style patches (None: from a memory budget, ``auto_chunk``);
    the result does not depend on the chunk. ``variety`` > 0: after a first pass, the scores
    (cosines) are lowered by ``variety * uses / mean uses`` of each style patch and matched again,
    so rarely used patches are preferred.
    """
    if gen_patches.dim() != 2 or gen_patches.shape[1] != target.normed.shape[1]:
        raise ValueError(f"match: generated patches {tuple(gen_patches.shape)} do not fit the target's rows of {target.normed.shape[1]}")
    if variety < 0:
        raise ValueError(f"match: variety must be >= 0, got {variety}")
    n_gen, n_style = int(gen_patches.shape[0]), len(target)
    device = gen_patches.device
    if n_style == 0:
        raise ValueError("match: the target has no patches")
    if n_gen == 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    chunk = auto_chunk(n_gen, n_style, _device_budget(device)) if chunk is None else int(chunk)
    if chunk < 1:
        raise ValueError(f"match: chunk must be >= 1, got {chunk}")
    bits = _bits(int(gen_patches.shape[1]))
    with torch.no_grad():
        g = gen_patches.detach().float()
        peak = g.abs().amax(1, keepdim=True)
        a = torch.round(g * torch.where(peak > 0, 2.0**bits / peak, torch.zeros_like(peak)))  # exact integers
        b = torch.round(target.normed.detach().to(device=device, dtype=torch.float32) * 2.0**bits)
        norms = a.norm(dim=1).double()  # one value per row, whatever the chunk: deterministic
        idx = _argmax(a, b, norms, bits, min(chunk, n_style), None)
        if variety > 0:
            uses = torch.bincount(idx, minlength=n_style).double()
            idx = _argmax(a, b, norms, bits, min(chunk, n_style), variety * uses / uses.mean())
    return idx


def _argmax(a: Tensor, b: Tensor, norms: Tensor, bits: int, chunk: int, penalty: Tensor | None) -> Tensor:
    """Exact argmax over the style rows ``b`` of ``a·b`` (or of ``a·b / scale - penalty``)."""
    n_gen, d = a.shape
    n_style = b.shape[0]
    u = _unit_roundoff()
    gamma = d * u / (1 - d * u) if d * u < 0.5 else math.inf
    scale = norms.clamp_min(1.0) * 2.0**bits  # turns a·b into a cosine
    if penalty is None:
        tol = 2 * gamma * 1.01 * norms * 2.0**bits  # twice the float32 error bound of a·b
        inv32 = pen32 = None
    else:
        tol = torch.full_like(norms, 2 * (1.01 * gamma + 4.04 * u + 4 * u * float(penalty.max())))
        inv32, pen32 = (1.0 / scale).float(), penalty.float()
    k = min(CANDIDATES, n_style)
    top_v: Tensor | None = None
    top_i: Tensor | None = None
    for c0 in range(0, n_style, chunk):
        s = a @ b[c0 : c0 + chunk].T
        if inv32 is not None and pen32 is not None:
            s = s * inv32[:, None] - pen32[None, c0 : c0 + chunk]
        v, i = s.topk(min(k, s.shape[1]), dim=1)
        i = i + c0
        if top_v is not None and top_i is not None:
            v, j = torch.cat([top_v, v], 1).topk(min(k, top_v.shape[1] + v.shape[1]), dim=1)
            i = torch.cat([top_i, i], 1).gather(1, j)
        top_v, top_i = v, i
    assert top_v is not None and top_i is not None
    out = torch.zeros(n_gen, dtype=torch.long, device=a.device)
    zero = norms == 0
    if penalty is not None:  # a zero patch scores 0 everywhere: the least used patch wins
        out[zero] = int(torch.nonzero(penalty == penalty.min())[0, 0])
    # float32 values are within tol/2 of the exact ones: a first candidate ahead of the second by
    # more than tol is the exact winner; one ahead of the k-th has the winner among the candidates
    best = top_v[:, 0].double() - tol
    clear = (~zero) & (top_v[:, 1].double() < best) if k > 1 else ~zero
    out[clear] = top_i[clear, 0]
    sure = (~zero) & (~clear) & (top_v[:, k - 1].double() < best if n_style > k else torch.ones_like(zero))
    rows = torch.nonzero(sure).squeeze(1)
    if rows.numel():
        out[rows] = _rescore(a[rows], b, top_i[rows], scale[rows], penalty)
    rows = torch.nonzero((~sure) & (~clear) & (~zero)).squeeze(1)
    if rows.numel():
        out[rows] = _exact_all(a[rows], b, scale[rows], penalty, chunk)
    return out


def _values(s: Tensor, scale: Tensor, penalty: Tensor | None, idx: Tensor) -> Tensor:
    """Exact scores (float64) from exact dot products ``s`` of style rows ``idx``."""
    return s if penalty is None else s / scale[:, None] - penalty[idx]


def _first_best(v: Tensor, idx: Tensor, sentinel: int) -> tuple[Tensor, Tensor]:
    """Per row: the highest value and the lowest index that has it."""
    best = v.amax(1)
    return best, torch.where(v == best[:, None], idx, sentinel).amin(1)


def _rescore(a: Tensor, b: Tensor, cand: Tensor, scale: Tensor, penalty: Tensor | None) -> Tensor:
    """The exact winner among each row's candidate style rows ``cand`` (n x k)."""
    n, k = cand.shape
    step = max(1, DEFAULT_BUDGET // (16 * k * a.shape[1]))
    out = []
    for r0 in range(0, n, step):
        c = cand[r0 : r0 + step]
        s = torch.bmm(b[c].double(), a[r0 : r0 + step].double()[:, :, None])[..., 0]  # exact
        out.append(_first_best(_values(s, scale[r0 : r0 + step], penalty, c), c, b.shape[0])[1])
    return torch.cat(out)


def _exact_all(a: Tensor, b: Tensor, scale: Tensor, penalty: Tensor | None, chunk: int) -> Tensor:
    """The exact winner among all style rows (float64 on integers: exact in any summation order)."""
    a64 = a.double()
    best_v = torch.full((a.shape[0],), -math.inf, dtype=torch.float64, device=a.device)
    best_i = torch.zeros(a.shape[0], dtype=torch.long, device=a.device)
    for c0 in range(0, b.shape[0], chunk):
        idx = torch.arange(c0, min(c0 + chunk, b.shape[0]), device=a.device)
        v, i = _first_best(_values(a64 @ b[idx].double().T, scale, penalty, idx[None, :]), idx[None, :], b.shape[0])
        better = v > best_v  # strict: an earlier chunk keeps a tie
        best_v, best_i = torch.where(better, v, best_v), torch.where(better, i, best_i)
    return best_i


# -- the loss ------------------------------------------------------------------------------------


def mrf_loss(
    gen_features: Tensor,
    target: PatchTarget,
    *,
    guide: Tensor | None = None,
    guide_weight: float = 0.0,
    mask: Tensor | None = None,
    chunk: int | None = None,
    variety: float = 0.0,
) -> Tensor:
    """Mean over the generated patches (only those centred where ``mask`` >= 0.5, if given) of
    ``weight[i] * ||patch - raw[i]||²`` on the feature part, ``i`` the matched style patch,
    divided by the target's mean squared patch norm. ``guide`` (1xSxHxW, the generated image's
    semantic channels) is concatenated times ``guide_weight`` as in ``build_target``. No gradient
    flows through the matching. 0 when the features are the style's own."""
    if gen_features.dim() != 4 or gen_features.shape[0] != 1:
        raise ValueError(f"mrf_loss: expected 1xCxHxW features, got shape {tuple(gen_features.shape)}")
    if (guide is None) != (target.guide_channels == 0) or (guide is not None and guide.shape[1] != target.guide_channels):
        raise ValueError(f"mrf_loss: the target has {target.guide_channels} guide channels, the guide {0 if guide is None else guide.shape[1]}")
    x = _with_guide(gen_features, guide, guide_weight)
    if x.shape[1] != target.channels:
        raise ValueError(f"mrf_loss: {x.shape[1]} channels, the target has {target.channels}")
    patches = extract_patches(x, target.size, target.stride)
    if mask is not None:
        patches = patches[_centres_inside(mask[:1, :1], x.shape[-2:], target.size, target.stride).to(patches.device)]
    if len(patches) == 0 or len(target) == 0:
        return gen_features.sum() * 0.0
    idx = match(patches.detach(), target, chunk=chunk, variety=variety)
    fd = target.feature_dim
    feats = patches if fd == patches.shape[1] else patches[:, :fd]
    raw = target.raw.to(feats.device) if fd == target.raw.shape[1] else target.raw[:, :fd].to(feats.device)
    weights = target.weights.to(feats.device)
    per = (feats - raw[idx]).pow(2).sum(1) * weights[idx]
    energy = (weights * raw.pow(2).sum(1)).sum() / weights.sum().clamp_min(EPS)
    return per.mean() / energy.clamp_min(EPS)


# -- the registered statistic --------------------------------------------------------------------


class MRF(StyleStatistic):
    """Nearest style patches (CNNMRF). Its "sums" are the feature map and region mask themselves
    (not additive: tiling refuses it); ``blend`` (or ``prepare``) turns a style's into a
    :class:`PatchTarget` (stored as a tensor dict, ``PatchTarget.to_stats``), pooling the patches
    of several styles with per-patch weights."""

    name = "mrf"
    additive = False
    description = "nearest style patches (CNNMRF)"
    #: tiles' statistics cannot be merged (a large style image is encoded whole)
    mergeable: ClassVar[bool] = False

    def __init__(self, size: int = 3, stride: int = 1, rotations: int = 0, scales: Sequence[float] = (), chunk: int | None = None, variety: float = 0.0) -> None:
        if size < 1 or stride < 0:
            raise ValueError(f"mrf: size must be >= 1 and stride >= 0 (0 = auto), got {size} and {stride}")
        if not 0 <= rotations <= 3:
            raise ValueError(f"mrf: rotations must be in 0..3, got {rotations}")
        if chunk is not None and chunk < 1:
            raise ValueError(f"mrf: chunk must be >= 1 or None, got {chunk}")
        if variety < 0:
            raise ValueError(f"mrf: variety must be >= 0, got {variety}")
        self.size, self.stride, self.rotations = int(size), int(stride), int(rotations)
        self.scales = tuple(float(s) for s in scales)
        self.chunk, self.variety = chunk, float(variety)

    def accumulate(self, features: Tensor, mask: Tensor | None = None, params: Tensor | None = None) -> Stats:
        return {"features": features, "mask": features.new_zeros(0) if mask is None else mask}

    def merge(self, a: Stats, b: Stats) -> Stats:
        raise UsageError("style_loss mrf cannot merge the statistics of tiles (patches cross tile borders)", params="style_loss")

    def finalize(self, sums: Stats) -> Stats:
        return dict(sums)  # the patches are cut by blend/prepare: cached statistics stay independent of them

    def _check(self, features: Tensor) -> None:
        h, w = features.shape[-2:]
        if min(h, w) < self.size:
            raise UsageError(
                f"style_loss mrf: a style layer's feature map is {w}x{h}, smaller than patch_size {self.size}: raise edge, lower patch_size or use shallower style_layers",
                params=("patch_size", "edge"),
            )

    def target(self, stats: Stats, weight: float = 1.0, stride: int | None = None) -> PatchTarget:
        """The patch target of one style's statistics (every sample of its batch pooled); ``stride``
        overrides the statistic's (as ``blend`` does to give every style one stride)."""
        f, m = stats["features"], stats["mask"]
        self._check(f)
        stride = self.stride if stride is None else stride
        stride = stride or auto_stride(f.shape[-2:], self.size)
        parts = [
            build_target(f[i : i + 1], size=self.size, stride=stride, mask=m[i : i + 1] if m.numel() else None,
                         rotations=self.rotations, scales=self.scales, weight=weight)
            for i in range(f.shape[0])
        ]
        return PatchTarget.pool(parts)

    def blend(self, stats: list[Stats], weights: Sequence[float]) -> Stats:
        """The pooled patches of every style with weight > 0; a patch of style i weighs
        ``w_i * N / N_i`` (N_i its style's patches, N all), so each style's share is ``w_i``
        whatever its patch count, and the mean weight is 1."""
        ws = normalised_blend(weights)
        used = [(s, w) for s, w in zip(stats, ws) if w > 0]
        stride = self.stride or max(auto_stride(s["features"].shape[-2:], self.size) for s, _ in used)  # pooled patches share one stride
        parts = [(self.target(s, stride=stride), w) for s, w in used]
        nonempty = [(t, w) for t, w in parts if len(t)]
        if not nonempty:
            return parts[0][0].to_stats()
        total = sum(len(t) for t, _ in nonempty)
        for t, w in nonempty:
            t.weights = t.weights * (w * total / len(t))
        return PatchTarget.pool([t for t, _ in nonempty]).to_stats()

    def prepare(self, target: Stats) -> Stats:
        return target if "normed" in target else self.blend([target], [1.0])

    def distance(self, stats: Stats, target: Stats) -> Tensor:
        pt = PatchTarget.from_stats(self.prepare(target))
        f, m = stats["features"], stats["mask"]
        self._check(f)
        values = [
            mrf_loss(f[i : i + 1], pt, mask=m[i : i + 1] if m.numel() else None, chunk=self.chunk, variety=self.variety)
            for i in range(f.shape[0])
        ]
        return torch.stack(values).mean()

    def __repr__(self) -> str:
        return (f"MRF(size={self.size}, stride={self.stride}, rotations={self.rotations}, scales={self.scales}, "
                f"chunk={self.chunk}, variety={self.variety})")


if "mrf" not in statistic_names():
    register_statistic(MRF)
