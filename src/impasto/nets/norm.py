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

__all__ = ["InstanceNorm", "instance_norm", "moments", "frozen_statistics"]

MODES = ("dynamic", "record", "frozen", "probe")


def _exporting() -> bool:
    return bool(torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export())


def moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and (biased) variance of a BCHW tensor, each Bx Cx1x1.

    Computed from one sum and one vectorised norm over the contiguous pixels (several times
    faster than ``torch.var_mean`` on a CPU); where that formula could lose precision (variance
    tiny next to the squared mean) the two-pass ``var_mean`` is used instead.
    """
    b, c = x.shape[:2]
    if not x.is_contiguous() or x.dtype not in (torch.float32, torch.float64) or x.numel() == 0:
        var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
        return mean, var
    flat = x.reshape(b * c, -1)
    n = flat.shape[1]
    mean = flat.sum(1) / n
    mean_sq = torch.linalg.vector_norm(flat, dim=1).square() / n
    var = (mean_sq - mean.square()).clamp_min(0)
    if bool((var < 1e-4 * mean.square()).any()):  # cancellation risk: take the exact route
        var, mean2 = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
        return mean2, var
    return mean.view(b, c, 1, 1), var.view(b, c, 1, 1)


def instance_norm(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float, *, relu: bool = False, stats: tuple[torch.Tensor, torch.Tensor] | None = None, inplace: bool = False, channels: int | None = None) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
    """Instance normalisation (+ affine, + ReLU) in two passes over ``x``; returns (y, (mean, var)).

    ``weight`` and ``bias`` are per channel (C) or per sample and channel (BxC: conditional
    instance norm, AdaIN). Same result as ``nn.InstanceNorm2d(affine=True)``: the statistics are reduced once (or taken
    from ``stats``) and normalisation, scale, shift and ReLU are one fused multiply-add. While
    exporting (ONNX, TorchScript) the standard operator is used so runtimes see InstanceNormalization.
    ``inplace``: overwrite ``x`` when no gradient is needed (saves a full-size buffer).
    ``channels``: the channel count as a Python int (export of per-sample scale/shift needs it
    where the traced shape is unknown).
    """
    c = x.shape[1]
    if stats is None and _exporting():
        if (weight is None or weight.dim() == 1) and (bias is None or bias.dim() == 1):
            y = F.instance_norm(x, weight=weight, bias=bias, eps=eps)
        else:  # per-sample affine (conditional norms, AdaIN): plain norm, then scale and shift
            n = int(channels if channels is not None else c)  # a constant, so the graph's norm has constant scale/bias
            y = F.instance_norm(x, weight=torch.ones(n, dtype=x.dtype, device=x.device), bias=torch.zeros(n, dtype=x.dtype, device=x.device), eps=eps)
            y = y * weight.reshape(-1, c, 1, 1) if weight is not None else y
            y = y + bias.reshape(-1, c, 1, 1) if bias is not None else y
        return (F.relu(y) if relu else y), None
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias))
    if stats is None and not needs_grad and x.device.type == "cpu" and _channels_last(x):
        return _instance_norm_channels_last(x, weight, bias, eps, relu)
    mean, var = moments(x) if stats is None else stats
    scale = torch.rsqrt(var + eps)
    if weight is not None:
        scale = weight.reshape(-1, c, 1, 1) * scale
    shift = -mean * scale
    if bias is not None:
        shift = bias.reshape(-1, c, 1, 1) + shift
    grad = torch.is_grad_enabled() and (x.requires_grad or scale.requires_grad)
    if not grad and x.dtype != scale.dtype:  # bf16 activations: a same-type multiply-add (mixed types are ~20x slower on a CPU)
        scale, shift = scale.to(x.dtype), shift.to(x.dtype)
    y = torch.addcmul(shift, x, scale, out=x) if inplace and not grad else torch.addcmul(shift, x, scale)
    if relu:
        y = torch.relu_(y) if not (torch.is_grad_enabled() and y.requires_grad) else F.relu(y)
    return y, (mean, var)


def _channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def _instance_norm_channels_last(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float, relu: bool) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Inference on a channels-last CPU tensor: ATen's batch norm, one sample at a time (one
    sample's instance norm is a batch norm). Its channels-last kernel reduces and normalises
    in two vectorised passes, accumulating bfloat16 input in float32; the reductions above would
    stride across channels (10x slower at 128 channels). Returns (y, (mean, var)) like
    :func:`instance_norm`; y has ``x``'s dtype."""
    c = x.shape[1]
    outs, means, variances = [], [], []
    for b in range(x.shape[0]):
        w = None if weight is None else (weight if weight.dim() == 1 else weight.reshape(-1, c)[b]).float()
        s = None if bias is None else (bias if bias.dim() == 1 else bias.reshape(-1, c)[b]).float()
        y, mean, invstd = torch.native_batch_norm(x[b : b + 1], w, s, None, None, True, 0.0, eps)
        outs.append(y.relu_() if relu else y)
        means.append(mean)
        variances.append((invstd.double().pow(-2) - eps).clamp_min(0).float())
    y = outs[0] if len(outs) == 1 else torch.cat(outs).contiguous(memory_format=torch.channels_last)
    return y, (torch.stack(means).view(-1, c, 1, 1), torch.stack(variances).view(-1, c, 1, 1))


class InstanceNorm(nn.InstanceNorm2d):
    """``nn.InstanceNorm2d(affine=True)`` (same parameters and state-dict keys) with an optional
    fused ReLU and record/frozen statistics modes (see the module docstring).

    ``inplace=True`` overwrites its input at inference (the generators use it on convolution
    outputs nobody else holds); with gradients it always allocates.

    ``mode="probe"`` hands the input to ``self.probe(self, x)`` and returns what it returns
    (the streaming statistics of :mod:`impasto.nets.streaming` use it).

    Subclasses whose scale and shift are not fixed parameters (conditional instance norm, AdaIN)
    pass ``affine=False`` and override :meth:`scale_shift` (per-sample BxC tensors are allowed); the
    record/frozen/probe modes, streaming statistics and tiling then work for them unchanged.
    """

    def __init__(self, channels: int, *, relu: bool = False, eps: float = 1e-5, inplace: bool = False, affine: bool = True) -> None:
        super().__init__(channels, eps=eps, affine=affine)
        self.relu = relu
        self.inplace = inplace
        self.mode = "dynamic"
        self.stats: tuple[torch.Tensor, torch.Tensor] | None = None
        self.probe: Callable[[InstanceNorm, torch.Tensor], torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if self.mode == "probe" and self.probe is not None:
            return self.probe(self, x)
        frozen = self.stats if self.mode == "frozen" else None
        if self.mode == "frozen" and frozen is None:
            raise RuntimeError("InstanceNorm: frozen mode without recorded statistics")
        if frozen is not None and frozen[0].shape[0] != x.shape[0]:
            frozen = (frozen[0].expand(x.shape[0], -1, -1, -1), frozen[1].expand(x.shape[0], -1, -1, -1))
        weight, bias = self.scale_shift(x)
        y, stats = instance_norm(x, weight, bias, self.eps, relu=self.relu, stats=frozen, inplace=self.inplace, channels=self.num_features)
        if self.mode == "record" and stats is not None:
            self.stats = (stats[0].detach(), stats[1].detach())
        return y

    def scale_shift(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Scale and shift applied after normalising ``x``: (C,) or (B, C) tensors, or None."""
        return self.weight, self.bias


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
