"""Sizes and resampling: ``edge`` is the longest side (int), ``size`` is (h, w).

The package re-exports the function :func:`resize` under this module's own name, so
``impasto.image.resize`` is this module made callable: ``impasto.image.resize(image, size)`` and
``from impasto.image import resize; resize(image, size)`` call the function whichever of the two
Python hands out, and ``impasto.image.resize.fit_edge`` still works.
"""

from __future__ import annotations

import math
import sys
import types
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..errors import UsageError
from .convert import validate_image

__all__ = ["fit_edge", "resize", "resize_to_edge", "resize_mask"]


def _check_size(size: Any, what: str = "size") -> tuple[int, int]:
    try:
        h, w = (int(s) for s in size)
        ok = all(float(s) == int(s) for s in size)
    except (TypeError, ValueError):
        raise UsageError(f"{what} must be (height, width) in pixels, got {size!r}") from None
    if not ok or h < 1 or w < 1:
        raise UsageError(f"{what} must be (height, width) with positive whole numbers, got {tuple(size)!r}")
    return h, w


def _round(x: float) -> int:
    return int(math.floor(x + 0.5))


def fit_edge(size: Sequence[int], edge: int) -> tuple[int, int]:
    """The (h, w) whose longest side is ``edge``, keeping ``size``'s aspect ratio (rounded, >= 1)."""
    h, w = _check_size(size)
    if isinstance(edge, bool) or not isinstance(edge, int) or edge < 1:
        raise UsageError(f"edge must be a positive whole number of pixels, got {edge!r}")
    if h >= w:
        return edge, max(1, _round(w * edge / h))
    return max(1, _round(h * edge / w)), edge


def _interpolate(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    h, w = x.shape[-2:]
    down = size[0] < h or size[1] < w
    dtype = x.dtype
    if dtype not in (torch.float32, torch.float64):
        x = x.float()  # half precision is not supported by every interpolation kernel
    out = F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=down)
    return out.clamp_(0, 1).to(dtype)


def resize(image: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resample a BxCxHxW tensor to ``size`` = (h, w), clamped to [0, 1].

    Antialiased bicubic when either side shrinks, plain bicubic when enlarging. Returns the
    input itself when it already has that size.
    """
    validate_image(image, "resize", channels=None)
    hw = _check_size(size)
    if tuple(image.shape[-2:]) == hw:
        return image
    return _interpolate(image, hw, "bicubic")


def resize_to_edge(image: torch.Tensor, edge: int) -> torch.Tensor:
    """Resize so the longest side is ``edge``, keeping the aspect ratio."""
    validate_image(image, "resize_to_edge", channels=None)
    return resize(image, fit_edge(tuple(image.shape[-2:]), edge))


def resize_mask(mask: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resample a Bx1xHxW (or BxKxHxW) mask to ``size`` with bilinear filtering (antialiased when shrinking).

    Bilinear weights are non-negative and sum to one, so soft masks that sum to one over
    regions still do after resizing. Returns the input itself when it already has that size.
    """
    validate_image(mask, "resize_mask", channels=None)
    hw = _check_size(size)
    if tuple(mask.shape[-2:]) == hw:
        return mask
    return _interpolate(mask, hw, "bilinear")


class _CallableModule(types.ModuleType):
    """This module, callable as its own :func:`resize` function (see the module docstring)."""

    def __call__(self, image: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        return resize(image, size)


sys.modules[__name__].__class__ = _CallableModule
