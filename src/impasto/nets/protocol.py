"""What every feed-forward generator provides, so training, applying, tiling and export never
branch on an architecture's name.

A generator is an ``nn.Module`` that says:

- ``takes``: what it takes, a tuple drawn from :data:`INPUT_KINDS` (``"content"``: a photo;
  ``"noise"``: positional noise it draws itself from a seed; ``"style"``: a style: a weight vector
  over the styles a multi-style network holds, or a painting for an arbitrary-style network);
- ``multiple``: the sides of the size its ``core`` works at are multiples of this (total stride);
  tiles are aligned to it, and exported ONNX files carry it in their metadata;
- ``config``: the JSON-friendly constructor keyword arguments (a model file's ``net_config``);
- ``padded_size(size)``: the working size for an output of ``size`` (h, w);
- ``generate(content, *, size, seed, origin, batch, style)``: the one call every caller uses
  (training, previews, applying, tiles), whatever the network takes; it ignores what it does
  not need. ``style`` is what :meth:`prepare_style` made of the user's style choice (networks that
  take ``"style"`` only);
- ``core_inputs(content, size, *, seed, origin, batch, style)``: the named tensors its export module
  takes for an output of ``size`` (the content padded to the working size, noise, ...): what the
  ONNX runner feeds and what the receptive-field probe perturbs;
- ``example_inputs()``: named example tensors for tracing (names become ONNX input names; the
  content image is called ``"image"`` and shares the output's height and width);
- ``export_module()``: a module whose ``forward(*example_inputs().values())`` is the network at
  its working size (what ONNX and TorchScript export trace). Inputs whose names start with
  ``"style"`` are global (not positional): tiles share them and the receptive-field probe leaves them alone.

:class:`ImageGenerator` implements all of it for networks that map a photo to an image and only
need a ``core(image)``; :func:`pad_to` is the padding rule every network shares.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Generator", "ImageGenerator", "INPUT_KINDS", "REQUIRED", "pad_to", "check_generator"]

#: what a generator can take
INPUT_KINDS = ("content", "noise", "style")

#: the attributes and methods a generator must have
REQUIRED = ("takes", "multiple", "config", "padded_size", "generate", "core_inputs", "example_inputs", "export_module")


@runtime_checkable
class Generator(Protocol):
    """The protocol of a registered generator (see the module docstring)."""

    takes: tuple[str, ...]
    multiple: int
    config: dict[str, Any]

    def padded_size(self, size: tuple[int, int]) -> tuple[int, int]: ...

    def generate(
        self,
        content: torch.Tensor | None,
        *,
        size: tuple[int, int] | None = None,
        seed: int | Sequence[int] = 0,
        origin: tuple[int, int] = (0, 0),
        batch: int = 1,
        style: Any = None,
    ) -> torch.Tensor: ...

    def core_inputs(
        self, content: torch.Tensor | None, size: tuple[int, int], *, seed: int | Sequence[int] = 0, origin: tuple[int, int] = (0, 0), batch: int = 1, style: Any = None
    ) -> dict[str, torch.Tensor]: ...

    def example_inputs(self) -> dict[str, torch.Tensor]: ...

    def export_module(self) -> nn.Module: ...


def check_generator(net: Any, arch: str) -> None:
    """Raise TypeError naming what ``net`` (built for ``arch``) lacks of the protocol."""
    missing = [name for name in REQUIRED if not hasattr(net, name)]
    if missing:
        raise TypeError(f"network {arch!r} ({type(net).__name__}) lacks {', '.join(missing)} (see impasto.nets.protocol)")
    unknown = [t for t in net.takes if t not in INPUT_KINDS]
    if unknown or not net.takes:
        raise TypeError(f"network {arch!r}: takes must be drawn from {', '.join(INPUT_KINDS)}, got {tuple(net.takes)!r}")


def pad_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Pad ``x`` below and to the right up to ``size`` (reflection, or replication where the
    padding is as large as the image); ``x`` itself when it already has that size."""
    h, w = x.shape[-2:]
    ph, pw = size
    if (ph, pw) == (h, w):
        return x
    return F.pad(x, (0, pw - w, 0, ph - h), mode="reflect" if (ph - h < h and pw - w < w) else "replicate")


class _CoreExport(nn.Module):
    """Export wrapper: ``forward(image)`` is ``net.core(image)``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net.core(image)  # type: ignore[operator]


class ImageGenerator(nn.Module):
    """Base of generators that map a photo to an image of the same size.

    A subclass sets ``multiple`` (its total stride), stores its constructor arguments in
    ``self.config`` and implements ``core(image)`` for inputs whose sides are multiples of
    ``multiple`` (and at least ``min_side``); everything else of the protocol is here: any input
    size is padded (:func:`pad_to`) and the output cropped back.
    """

    takes: tuple[str, ...] = ("content",)
    multiple: int = 1
    min_side: int = 16
    #: whether inference on a CPU runs channels-last unless told otherwise (ApplyConfig.channels_last
    #: auto): faster for the convolution stacks here (oneDNN's native layout, in bf16 above all)
    channels_last_cpu: bool = True

    def core(self, image: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """The network at its working size (sides multiples of ``multiple``, >= ``min_side``)."""
        raise NotImplementedError

    def padded_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """Each side rounded up to a multiple of ``multiple``, at least ``min_side``."""
        m = self.multiple
        h, w = (int(s) for s in size)
        return max(self.min_side, h + (-h) % m), max(self.min_side, w + (-w) % m)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Stylise ``image`` (BCHW in [0, 1], any size) -> same size."""
        h, w = image.shape[-2:]
        padded = self.padded_size((h, w))
        y = self.core(pad_to(image, padded))
        return y[..., :h, :w] if padded != (h, w) else y

    def generate(
        self,
        content: torch.Tensor | None,
        *,
        size: tuple[int, int] | None = None,
        seed: int | Sequence[int] = 0,
        origin: tuple[int, int] = (0, 0),
        batch: int = 1,
        style: Any = None,
    ) -> torch.Tensor:
        """``self(content)``; ``size``, ``seed``, ``origin``, ``batch`` and ``style`` are not needed."""
        if content is None:
            raise ValueError(f"{type(self).__name__} stylises a content image: pass content")
        return self(content)

    def core_inputs(
        self, content: torch.Tensor | None, size: tuple[int, int], *, seed: int | Sequence[int] = 0, origin: tuple[int, int] = (0, 0), batch: int = 1, style: Any = None
    ) -> dict[str, torch.Tensor]:
        """``{"image": content padded to the working size}``."""
        if content is None:
            raise ValueError(f"{type(self).__name__} stylises a content image: pass content")
        return {"image": pad_to(content, self.padded_size(size)).float().contiguous()}

    def example_inputs(self) -> dict[str, torch.Tensor]:
        """One random photo of (about) 64x48 px, at the working size."""
        return {"image": torch.rand(1, 3, *self.padded_size((64, 48)))}

    def export_module(self) -> nn.Module:
        """A module whose ``forward(image)`` is ``core``."""
        return _CoreExport(self)
