"""How an encoder's convolutions see past the image border.

Zero padding (how VGG was trained) makes the border look different to every layer, and the
optimised image answers with a frame: a band a few pixels wide with about half the texture of
the interior and a shifted brightness (measured: the top rows ~0.03-0.04 brighter on a flat
grey photo). Reflect padding (neural-style's ``-padding reflect``) continues the image past the
border, so features and their gradients near the border look like those inside: the band gets
~0.9x the interior's texture and the brightness shift drops below 0.015. Replicate is the
other choice (slightly more texture than inside along the border).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn

__all__ = ["PADDINGS", "set_padding", "padding_mode", "current_padding"]

#: the choices of ``padding`` (``zeros`` is the encoder as trained)
PADDINGS = ("reflect", "replicate", "zeros")


def set_padding(encoder: nn.Module, mode: str) -> None:
    """Make every padded convolution of ``encoder`` pad with ``mode`` (one of ``PADDINGS``).

    In place and reversible (``"zeros"`` restores the trained behaviour). Reflect needs feature
    maps larger than the padding; maps that small (1-2 px at the deepest VGG layers of a tiny
    image) fall back to replicate.
    """
    if mode not in PADDINGS:
        raise ValueError(f"padding must be one of {', '.join(PADDINGS)}, got {mode!r}")
    for module in encoder.modules():
        if isinstance(module, nn.Conv2d) and not isinstance(module.padding, str) and any(p > 0 for p in module.padding):
            module.padding_mode = mode
            if mode == "reflect" and not isinstance(module, _SafeReflectConv):
                module.__class__ = _SafeReflectConv
            elif mode != "reflect" and isinstance(module, _SafeReflectConv):
                module.__class__ = nn.Conv2d


class _SafeReflectConv(nn.Conv2d):
    """Conv2d with reflect padding that replicates where a map is too small to reflect."""

    def _conv_forward(self, input, weight, bias):  # type: ignore[no-untyped-def, override]
        if min(input.shape[-2:]) <= max(self.padding):
            self.padding_mode = "replicate"
            try:
                return super()._conv_forward(input, weight, bias)
            finally:
                self.padding_mode = "reflect"
        return super()._conv_forward(input, weight, bias)


def current_padding(encoder: nn.Module) -> str:
    """The padding mode of ``encoder``'s first padded convolution (``zeros`` if none)."""
    for module in encoder.modules():
        if isinstance(module, nn.Conv2d) and not isinstance(module.padding, str) and any(p > 0 for p in module.padding):
            return str(module.padding_mode)
    return "zeros"


@contextlib.contextmanager
def padding_mode(encoder: nn.Module, mode: str) -> Iterator[nn.Module]:
    """``set_padding`` for the duration of a ``with`` block (a shared encoder is left as it was)."""
    before = current_padding(encoder)
    set_padding(encoder, mode)
    try:
        yield encoder
    finally:
        set_padding(encoder, before)
