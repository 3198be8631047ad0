"""Instance normalisation whose statistics can be recorded once and then frozen (for tiling).

Instance norm makes every output pixel depend on statistics of the whole image, so applying a
network tile by tile would normalise each tile differently (visible seams, colour shifts). With
:func:`frozen_statistics` the statistics are measured once on the whole image (or a downscaled
copy of it when it is too big), after which the network is a purely local function and tiles
reproduce the whole-image result away from their borders.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["InstanceNorm", "instance_norm", "frozen_statistics"]

MODES = ("dynamic", "record", "frozen")


def instance_norm(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float, *, relu: bool = False, stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Instance normalisation (+ affine, + ReLU) in two passes over ``x``; returns (y, (mean, var)).

    Same result as ``nn.InstanceNorm2d(affine=True)``: the statistics are reduced once (or taken
    from ``stats``) and normalisation, scale, shift and ReLU are one fused multiply-add.
    """
    if stats is None:
        var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
    else:
        mean, var = stats
    scale = torch.rsqrt(var + eps)
    if weight is not None:
        scale = weight.view(1, -1, 1, 1) * scale
    shift = -mean * scale
    if bias is not None:
        shift = bias.view(1, -1, 1, 1) + shift
    y = torch.addcmul(shift, x, scale)
    if relu:
        y = torch.relu_(y) if not (torch.is_grad_enabled() and y.requires_grad) else F.relu(y)
    return y, (mean, var)


class InstanceNorm(nn.InstanceNorm2d):
    """``nn.InstanceNorm2d(affine=True)`` (same parameters and state-dict keys) with an optional
    fused ReLU and record/frozen statistics modes (see the module docstring)."""

    def __init__(self, channels: int, *, relu: bool = False, eps: float = 1e-5) -> None:
        super().__init__(channels, eps=eps, affine=True)
        self.relu = relu
        self.mode = "dynamic"
        self.stats: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        frozen = self.stats if self.mode == "frozen" else None
        if self.mode == "frozen" and frozen is None:
            raise RuntimeError("InstanceNorm: frozen mode without recorded statistics")
        if frozen is not None and frozen[0].shape[0] != x.shape[0]:
            frozen = (frozen[0].expand(x.shape[0], -1, -1, -1), frozen[1].expand(x.shape[0], -1, -1, -1))
        y, stats = instance_norm(x, self.weight, self.bias, self.eps, relu=self.relu, stats=frozen)
        if self.mode == "record":
            self.stats = (stats[0].detach(), stats[1].detach())
        return y


@contextlib.contextmanager
def frozen_statistics(net: nn.Module, record: Callable[[], object]) -> Iterator[None]:
    """Run ``record()`` (a forward pass of ``net`` on the reference image) recording every
    InstanceNorm's statistics, then freeze them for the body of the ``with`` block."""
    norms = [m for m in net.modules() if isinstance(m, InstanceNorm)]
    try:
        for m in norms:
            m.mode, m.stats = "record", None
        with torch.no_grad():
            record()
        for m in norms:
            m.mode = "frozen"
        yield
    finally:
        for m in norms:
            m.mode, m.stats = "dynamic", None
