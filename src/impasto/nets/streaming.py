"""Exact whole-image instance-norm statistics computed tile by tile, in bounded memory.

Instance norm makes every output pixel depend on per-channel statistics of the whole image. To
run a network tile by tile and still get the whole-image result, the statistics of each norm
layer are accumulated over the tiles first, one *pass* per level of the network: pass p runs
every tile up to the norms whose inputs depend only on norms of earlier passes (frozen by then),
adds their inputs' per-channel sum and sum of squares over the tile's *core* (the part of the
tile that no other tile owns, far enough from the tile's edges that its activations are exact),
and stops there. After the last pass every norm is frozen and the network is a local function:
each tile's core equals the whole-image result.

Exactness needs (1) tiles that extend at least :func:`receptive_radius` px beyond their core
(except at the image border, where a tile pads exactly as the whole image does) and (2) tile
origins aligned to the network's total stride. Both are structural facts of the network, found
here by propagating NaN through it (NaN spreads through every connection whatever the weights).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from .norm import InstanceNorm

__all__ = ["NormStreamer", "norm_passes", "receptive_radius", "finish_moments"]

Core = tuple[int, int, int, int]  # y0, y1, x0, x1 in input pixels of the tile
Sums = tuple[torch.Tensor, torch.Tensor, int]  # per (sample, channel) sum, sum of squares (float64), count


class _Stop(Exception):
    """Raised by the last norm a pass needs: the rest of the network is not computed."""


def _norms(net: nn.Module) -> list[InstanceNorm]:
    return [m for m in net.modules() if isinstance(m, InstanceNorm)]


@contextlib.contextmanager
def _probing(norms: Sequence[InstanceNorm], probe: Callable[[InstanceNorm, torch.Tensor], torch.Tensor]) -> Iterator[None]:
    saved = [(m.mode, m.stats, m.probe) for m in norms]
    try:
        for m in norms:
            m.mode, m.probe = "probe", probe
        yield
    finally:
        for m, (mode, stats, fn) in zip(norms, saved):
            m.mode, m.stats, m.probe = mode, stats, fn


def norm_passes(net: nn.Module, run: Callable[[], object]) -> list[list[int]]:
    """Indices (in ``net.modules()`` order) of the InstanceNorms grouped into passes, each in call order.

    Pass p holds the norms whose inputs depend only on norms of passes < p. ``run()`` must run
    ``net`` once on a small input; a norm's input is clean when it has no NaN while every norm not
    yet assigned to a pass outputs NaN.
    """
    norms = _norms(net)
    index = {id(m): i for i, m in enumerate(norms)}
    done: set[int] = set()
    passes: list[list[int]] = []
    while len(done) < len(norms):
        ready: list[int] = []

        def probe(m: InstanceNorm, x: torch.Tensor) -> torch.Tensor:
            i = index[id(m)]
            if i in done:
                return x
            if bool(torch.isfinite(x).all()) and i not in ready:
                ready.append(i)
            return torch.full_like(x, float("nan"))

        with _probing(norms, probe), torch.no_grad():
            run()
        if not ready:
            raise RuntimeError("norm_passes: no instance norm has a clean input (the network's output is not finite?)")
        passes.append(ready)
        done.update(ready)
    return passes


_RADIUS_CACHE: dict[str, int] = {}


def receptive_radius(net: nn.Module) -> int:
    """How far (in input px) any output pixel or any instance-norm input can see: a tile must
    extend this far beyond its core for the core to be exact. Measured once per architecture
    and configuration by sending NaN from the centre of the input through the network."""
    key = f"{type(net).__name__}:{json.dumps(getattr(net, 'config', {}), sort_keys=True, default=str)}"
    if key not in _RADIUS_CACHE:
        _RADIUS_CACHE[key] = _measure_radius(net)
    return _RADIUS_CACHE[key]


def _reach(net: nn.Module, side: int, block: int) -> tuple[int, int, bool]:
    """(lowest, highest) input px that NaN in the ``block`` x ``block`` px square at the centre
    of a ``side`` px input reaches (norm inputs and the output, along either axis), and whether
    it touched the border. Inputs at lower resolution get the square at their scale."""
    norms = _norms(net)
    c = side // 2
    extents: list[tuple[torch.Tensor, int]] = []  # (NaN mask HxW, factor)

    def probe(m: InstanceNorm, x: torch.Tensor) -> torch.Tensor:
        extents.append((torch.isnan(x).any(dim=(0, 1)), side // x.shape[-2]))
        return x

    param = next(net.parameters())
    inputs = []  # every input of the network at its working size: zeros, NaN at the centre
    for name, z in net.core_inputs(torch.zeros(1, 3, side, side), (side, side)).items():  # type: ignore[operator]
        if name.startswith("style"):  # global inputs (a style code or painting) are not positional
            inputs.append(z.to(dtype=param.dtype, device=param.device))
            continue
        z = torch.zeros(z.shape, dtype=param.dtype, device=param.device)
        if z.dim() == 4:
            h, w = z.shape[-2:]
            z[..., c * h // side : (c + block - 1) * h // side + 1, c * w // side : (c + block - 1) * w // side + 1] = float("nan")
        inputs.append(z)
    with _probing(norms, probe), torch.no_grad():
        y = net.export_module()(*inputs)  # type: ignore[operator]
    extents.append((torch.isnan(y).any(dim=(0, 1)), 1))
    lo, hi, touches = c, c + block - 1, False
    for mask, f in extents:
        rows = torch.nonzero(mask.any(dim=1)).flatten()
        cols = torch.nonzero(mask.any(dim=0)).flatten()
        if rows.numel() == 0:
            continue
        touches |= bool(rows[0] == 0 or rows[-1] == mask.shape[0] - 1 or cols[0] == 0 or cols[-1] == mask.shape[1] - 1)
        lo = min(lo, min(int(rows[0]), int(cols[0])) * f)
        hi = max(hi, (max(int(rows[-1]), int(cols[-1])) + 1) * f - 1)
    return lo, hi, touches


def _measure_radius(net: nn.Module) -> int:
    """The largest reach, backwards from an input px at a tile-aligned position (a multiple of
    the network's ``multiple``) and forwards from the last px before one; with strided layers
    the reach depends on that phase, and a square of ``multiple`` px covers every phase. The
    reach of a single px at an aligned position, both ways, is kept as a floor (the halo that
    tiles of the built-in networks were always planned with)."""
    m = int(getattr(net, "multiple", 1))
    side = 128
    while True:
        c = side // 2
        lo1, hi1, touches1 = _reach(net, side, 1)
        lo, hi, touches = _reach(net, side, m) if m > 1 else (lo1, hi1, touches1)
        if not (touches or touches1):
            return max(c - lo1, hi1 - c, c - lo, hi - (c + m - 1))
        if side >= 4096:
            raise RuntimeError("receptive_radius: the receptive field is wider than 2048 px")
        side *= 2


def finish_moments(sums: Sums) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, biased variance), each float32 (B, C, 1, 1), from accumulated sums."""
    s, ss, n = sums
    mean = s / n
    var = (ss / n - mean.square()).clamp_min(0)
    return mean.float()[..., None, None], var.float()[..., None, None]


def core_sums(x: torch.Tensor, size: tuple[int, int], core: Core) -> Sums:
    """Per-(sample, channel) sum and sum of squares (float64) of ``x`` over ``core`` (given in
    input px of a tile of ``size``; ``x`` may be at a lower resolution)."""
    fh, fw = size[0] // x.shape[-2], size[1] // x.shape[-1]
    y0, y1, x0, x1 = core
    if fh * x.shape[-2] != size[0] or fw * x.shape[-1] != size[1] or y0 % fh or y1 % fh or x0 % fw or x1 % fw:
        raise RuntimeError(f"core {core} of a {size} tile is not aligned to an activation of {tuple(x.shape[-2:])}")
    part = x[..., y0 // fh : y1 // fh, x0 // fw : x1 // fw].to(torch.float64, memory_format=torch.contiguous_format)  # per-channel planes reduce fast
    return part.sum(dim=(2, 3)), part.square().sum(dim=(2, 3)), part.shape[-2] * part.shape[-1]


class NormStreamer:
    """Drives the statistics passes of one network (see the module docstring).

    ``passes``: number of passes; ``collect(p, run, size, core)`` runs ``run()`` (one tile through
    the network) with the norms of passes < p frozen and returns the sums of pass p's norms over
    ``core``; ``freeze(stats)`` freezes norms by index. Use as a context manager: on exit every
    norm returns to its normal (dynamic) mode.
    """

    def __init__(self, net: nn.Module, tiny_run: Callable[[], object]) -> None:
        self.norms = _norms(net)
        self.schedule = norm_passes(net, tiny_run)
        self.index = {id(m): i for i, m in enumerate(self.norms)}
        self.frozen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def passes(self) -> int:
        return len(self.schedule)

    def __enter__(self) -> NormStreamer:
        return self

    def __exit__(self, *exc: Any) -> None:
        for m in self.norms:
            m.mode, m.stats, m.probe = "dynamic", None, None

    def collect(self, p: int, run: Callable[[], object], size: tuple[int, int], core: Core) -> dict[int, Sums]:
        members = set(self.schedule[p])
        last = self.schedule[p][-1]
        found: dict[int, Sums] = {}

        def probe(m: InstanceNorm, x: torch.Tensor) -> torch.Tensor:
            i = self.index[id(m)]
            if i in members:
                found[i] = core_sums(x, size, core)
                if i == last:
                    raise _Stop
            return x  # only norms of later passes see this (unnormalised) value, and they ignore it

        for i, m in enumerate(self.norms):
            if i in self.frozen:
                m.mode, m.stats, m.probe = "frozen", self.frozen[i], None
            else:
                m.mode, m.stats, m.probe = "probe", None, probe
        try:
            run()
        except _Stop:
            pass
        if set(found) != members:
            raise RuntimeError(f"pass {p}: norms {sorted(members - set(found))} were not reached")
        return found

    def freeze(self, stats: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.frozen.update(stats)
        for i, st in stats.items():
            self.norms[i].mode, self.norms[i].stats, self.norms[i].probe = "frozen", st, None
