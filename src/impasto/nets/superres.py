"""Single-image super-resolution network of Johnson, Alahi & Fei-Fei (2016), sec. 4.2.

A 9x9 convolution in, residual blocks at the low resolution (four, as in the paper), then
``log2(scale)`` x2 upsampling stages and a 9x9 convolution to RGB at the high resolution. The
forward pass maps a low-resolution image (BCHW RGB in [0, 1], any size) to one of exactly
``scale`` times its height and width, in [0, 1].

Choices (and where they differ from the paper):

- upsampling: nearest-neighbour x2 + 3x3 convolution (Odena et al. 2016) rather than the paper's
  fractionally strided convolutions or a pixel shuffle with free kernels: no checkerboard
  artefacts at initialisation, and it is computed in sub-pixel form
  (:func:`impasto.nets.johnson.subpixel_upconv`: four 2x2 convolutions at the low resolution,
  interleaved, i.e. a pixel shuffle whose kernels are tied so that nearest+conv is exact), which
  costs no more than a pixel shuffle;
- no normalisation layers (the paper used batch norm): an SR network is local, statistics over
  the batch or the image only couple distant pixels, and without them the output of a pixel
  depends on a bounded neighbourhood (:attr:`SuperResNet.radius`), so tiled upscaling with that
  much overlap is exact (EDSR, Lim et al. 2017, also drops batch norm for SR);
- ``residual=True`` (default): the network predicts the detail that bicubic interpolation misses,
  added to the bicubic upscale and clamped to [0, 1] (global skip, as in VDSR/EDSR). Training
  starts exactly at the bicubic upscale (the last convolution is zero-initialised) instead of a
  grey image. ``residual=False`` is the paper's network
  (scaled tanh output);
- the output end (``last_relu``, ``tail_scale``; what the training recipe uses, see below): the
  last upsampling stage is linear (no ReLU directly before the output convolution, as EDSR's
  upsampler) and the output convolution is multiplied by ``tail_scale`` = 1/sqrt(fan-in)
  (:func:`equalized_tail_scale`: 1/sqrt(channels x 9 x 9), an "equalised learning rate",
  Karras et al. 2018, for that one layer).

Why the output end. Adam moves every weight by about ``lr`` per step whatever its fan-in. The
zero-initialised output convolution has a fan-in of channels x 81 (1296 at width 16, 5184 at 64),
so its first, sign-like steps move the detail by ``lr`` x fan-in x |feature|: the first step at
lr 1e-3 made a x4 net 1.3 dB *worse* than bicubic, the following steps drove the ReLUs of the
last upsampling stage negative to undo it (2 of 16 channels alive after 200 steps at x2, 1 of 16
at x4), and with them dead the detail branch stays near zero. The scale makes the step
``lr`` x sqrt(fan-in) x |feature| (for Adam it is exactly a learning rate of ``lr`` x
``tail_scale`` for that layer, and it follows the width), and a linear last stage cannot die.

Measured with the training recipe (48 synthetic 32 px images of flat rectangles, width 16, one
residual block, pixel loss, 200 Adam steps, lr 1e-3 cosine, batch 4, 1 CPU thread, about 5 s;
held-out PSNR minus bicubic's for seeds 0, 1, 2; the recipe's antialiased degradation): x2
0.00 / 0.67 / 0.27 dB before, 0.80 / 0.85 / 0.73 dB after; x4 0.09 / 0.03 / 0.10 dB before,
0.21 / 0.24 / 0.20 dB after. The same loop outside the recipe: at width 64 with four blocks
(150 steps, seed 0) the original end learns nothing at all (x2 and x4: 0.00 dB), the new one
1.27 dB (x2) and 0.15 dB (x4); the scale alone (ReLU kept, width 16) gives x2 0.47 to 0.57 dB,
so the linear stage is worth another 0.25 dB at x2.
(With the earlier, aliased degradation x4 stays at 0.00 dB either way on such tiny data: see
:func:`impasto.methods.superres_train.degrade`.)

``last_relu=True, tail_scale=1.0`` (the constructor's and the registry's defaults) is the
original network, so model files written before these options load and behave as before
(``benchmarks/reference.py`` also pins the registry default to it); the training recipe
(:mod:`impasto.methods.superres_train`) builds the linear, scaled output end unless told
``--sr-legacy-tail``, and both options are recorded in the model file.

Registers the architecture ``superres`` (``scale`` 4 or 8 is part of its configuration and so
recorded in the model file).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .johnson import subpixel_upconv
from .protocol import ImageGenerator, pad_to
from .registry import register_arch

__all__ = ["SuperResNet", "SCALES", "bicubic_upscale", "equalized_tail_scale"]

#: the upscaling factors the network supports (x2 stages)
SCALES = (2, 4, 8)


def bicubic_upscale(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic x``scale`` upscale (PyTorch's a = -0.75, half-pixel centres, borders clamped)."""
    return F.interpolate(x, scale_factor=float(scale), mode="bicubic", align_corners=False)


def equalized_tail_scale(channels: int, kernel: int = 9) -> float:
    """1/sqrt(fan-in) of the output convolution: what ``tail_scale`` is set to for training."""
    return 1.0 / math.sqrt(int(channels) * int(kernel) ** 2)


class _Conv(nn.Module):
    """Reflection padding + convolution (+ ReLU)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, *, relu: bool) -> None:
        super().__init__()
        self.pad = kernel // 2
        self.conv = nn.Conv2d(c_in, c_out, kernel)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(F.pad(x, (self.pad,) * 4, mode="reflect") if self.pad else x)
        return F.relu(y) if self.relu else y


class _Residual(nn.Module):
    """Two 3x3 convolutions with a skip connection (no normalisation)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_Conv(channels, channels, 3, relu=True), _Conv(channels, channels, 3, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _Up(nn.Module):
    """x2 nearest upsampling + 3x3 convolution (+ ReLU), computed in sub-pixel form."""

    def __init__(self, c_in: int, c_out: int, *, relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = subpixel_upconv(x, self.conv.weight, self.conv.bias)
        return F.relu(y) if self.relu else y

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The textbook formulation (upsample, reflect-pad, convolve); for tests."""
        y = self.conv(F.pad(F.interpolate(x, scale_factor=2.0, mode="nearest"), (1, 1, 1, 1), mode="reflect"))
        return F.relu(y) if self.relu else y


class SuperResNet(ImageGenerator):
    """Johnson et al.'s super-resolution network (see the module docstring).

    ``scale``: 2, 4 or 8; ``channels``: width (64 in the paper); ``n_res``: residual blocks (4);
    ``outer_kernel``: first and last convolution (9); ``residual``: add the bicubic upscale
    (global skip) and clamp, instead of the paper's scaled tanh; ``last_relu``: a ReLU after the
    last upsampling stage (False: a linear last stage); ``tail_scale``: multiplier of the output
    convolution (:func:`equalized_tail_scale` for training; 1 in the original network).
    """

    multiple = 1  # no strides at the input resolution: any size works
    min_side = 8  # reflection padding of the 9x9 convolution needs sides > 4

    def __init__(
        self, scale: int = 4, channels: int = 64, n_res: int = 4, *, outer_kernel: int = 9, residual: bool = True, last_relu: bool = True, tail_scale: float = 1.0
    ) -> None:
        super().__init__()
        if int(scale) not in SCALES:
            raise ValueError(f"scale must be one of {', '.join(map(str, SCALES))}, got {scale!r}")
        if int(channels) < 1 or int(n_res) < 0 or int(outer_kernel) < 1 or int(outer_kernel) % 2 == 0:
            raise ValueError(f"channels >= 1, n_res >= 0 and an odd outer_kernel are needed, got {channels}, {n_res}, {outer_kernel}")
        if not (math.isfinite(float(tail_scale)) and float(tail_scale) > 0):
            raise ValueError(f"tail_scale must be > 0, got {tail_scale!r}")
        self.scale = int(scale)
        self.residual = bool(residual)
        self.tail_scale = float(tail_scale)
        c, k, n_up = int(channels), int(outer_kernel), int(math.log2(self.scale))
        self.config: dict[str, Any] = {
            "scale": self.scale, "channels": c, "n_res": int(n_res), "outer_kernel": k, "residual": self.residual, "last_relu": bool(last_relu), "tail_scale": self.tail_scale,
        }
        self.head = _Conv(3, c, k, relu=True)
        self.res = nn.Sequential(*[_Residual(c) for _ in range(int(n_res))])
        self.up = nn.Sequential(*[_Up(c, c, relu=bool(last_relu) or i < n_up - 1) for i in range(n_up)])
        self.tail = _Conv(c, 3, k, relu=False)
        if self.residual:  # start at the bicubic upscale: the detail branch starts at zero
            nn.init.zeros_(self.tail.conv.weight)
            nn.init.zeros_(self.tail.conv.bias)

    @property
    def radius(self) -> int:
        """How far (in input px) an output pixel sees: tiles need this much overlap to be exact."""
        k = self.config["outer_kernel"] // 2
        reach = k + 2 * self.config["n_res"]  # head + residual blocks, at the input resolution
        reach += sum(1.0 / 2**i for i in range(len(self.up)))  # a 3x3 conv at each level (in that level's input px)
        reach += k / self.scale  # the tail, at the output resolution
        return int(math.ceil(max(reach, 2.0 if self.residual else 0.0)))  # bicubic sees 2 px

    def core(self, image: torch.Tensor) -> torch.Tensor:
        """Low resolution (sides >= ``min_side``) -> ``scale`` times larger, in [0, 1]."""
        y = self._scaled(self.tail(self.up(self.res(self.head(image)))))
        if self.residual:
            return (bicubic_upscale(image, self.scale) + y).clamp(0.0, 1.0)
        return (torch.tanh(y) + 1.0) * 0.5

    def _scaled(self, y: torch.Tensor) -> torch.Tensor:
        """The output convolution's result times ``tail_scale`` (no op in the original network)."""
        return y if self.tail_scale == 1.0 else y * self.tail_scale

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Upscale ``image`` (BCHW in [0, 1], any size) by ``scale``."""
        h, w = image.shape[-2:]
        padded = self.padded_size((h, w))
        y = self.core(pad_to(image, padded))
        s = self.scale
        return y[..., : h * s, : w * s] if padded != (h, w) else y

    def generate(self, content: torch.Tensor | None, *, size: Sequence[int] | None = None, seed: Any = 0, origin: Any = (0, 0), batch: int = 1, style: Any = None) -> torch.Tensor:
        """``self(content)`` (the low-resolution photo); the other arguments are not needed."""
        if content is None:
            raise ValueError("SuperResNet upscales a low-resolution image: pass content")
        return self(content)

    def reference(self, image: torch.Tensor) -> torch.Tensor:
        """The textbook computation (upsample then convolve); for tests."""
        h, w = image.shape[-2:]
        x = pad_to(image, self.padded_size((h, w)))
        f = self.res(self.head(x))
        for up in self.up:
            f = up.reference(f)
        y = self._scaled(self.tail(f))
        y = (bicubic_upscale(x, self.scale) + y).clamp(0.0, 1.0) if self.residual else (torch.tanh(y) + 1.0) * 0.5
        return y[..., : h * self.scale, : w * self.scale]


register_arch(
    "superres",
    "Johnson et al. super-resolution network (x4/x8 upscaling: 9x9 conv, 4 residual blocks, x2 nearest+conv stages, 9x9 conv; no norm, bicubic skip)",
    SuperResNet,
    defaults={"scale": 4, "channels": 64, "n_res": 4, "outer_kernel": 9, "residual": True, "last_relu": True, "tail_scale": 1.0},
    recipe="impasto.methods.superres_train:SuperResTrainConfig:train_superres",
    paintings=False,
)
