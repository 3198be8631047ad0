"""The Johnson et al. (2016) image transformation network, with the known fixes.

Three downsampling convolutions, residual blocks, two upsampling stages and a 9x9 output
convolution; instance normalisation (Ulyanov et al. 2016) instead of batch norm, reflection
padding, and nearest-neighbour upsampling followed by a convolution instead of transposed
convolutions (no checkerboard artefacts, Odena et al. 2016). Input and output follow the
``image`` convention: float BCHW RGB in [0, 1]. Any input size works: the image is padded (by
reflection) to a multiple of 4 inside and cropped back.

Registers the architectures ``johnson`` (the paper's network) and ``johnson-small``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .norm import InstanceNorm
from .protocol import ImageGenerator
from .registry import register_arch

__all__ = ["TransformerNet", "JOHNSON_PRESETS", "NORMS", "UPSAMPLES", "OUTPUTS"]

NORMS = ("instance", "none")
UPSAMPLES = ("nearest", "bilinear")
OUTPUTS = ("sigmoid", "tanh")

#: named configurations (constructor keyword arguments)
JOHNSON_PRESETS: dict[str, dict[str, Any]] = {
    # the paper's network (channels 32/64/128, five residual blocks)
    "johnson": {"channels": (32, 64, 128), "n_res": 5, "separable": False},
    # a slimmer network for CPUs and phones: half the channels, three residual blocks built from
    # depthwise-separable convolutions, 5x5 outer convolutions instead of 9x9
    "johnson-small": {"channels": (16, 32, 64), "n_res": 3, "separable": True, "outer_kernel": 5},
}


class ConvLayer(nn.Module):
    """Reflection padding + convolution (+ instance normalisation) (+ ReLU)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, *, norm: str = "instance", relu: bool = True, groups: int = 1) -> None:
        super().__init__()
        self.pad = kernel // 2
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, groups=groups)
        self.norm = InstanceNorm(c_out, relu=relu, inplace=True) if norm == "instance" else None
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.finish(self.convolve(x))

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        """Padding and convolution (no norm, no activation)."""
        if self.pad:
            x = F.pad(x, (self.pad,) * 4, mode="reflect")
        return self.conv(x)

    def finish(self, y: torch.Tensor) -> torch.Tensor:
        """Normalisation and activation of a convolution output ``y``."""
        if self.norm is not None:
            return self.norm(y)
        return F.relu(y) if self.relu else y


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with a skip connection (He et al. 2016, as used by Johnson et al.).

    ``separable``: each 3x3 convolution becomes a depthwise 3x3 + pointwise 1x1 (MobileNet).
    """

    def __init__(self, channels: int, *, norm: str = "instance", separable: bool = False) -> None:
        super().__init__()
        if separable:
            self.body = nn.Sequential(
                ConvLayer(channels, channels, 3, norm="none", relu=False, groups=channels),
                ConvLayer(channels, channels, 1, norm=norm, relu=True),
                ConvLayer(channels, channels, 3, norm="none", relu=False, groups=channels),
                ConvLayer(channels, channels, 1, norm=norm, relu=False),
            )
        else:
            self.body = nn.Sequential(
                ConvLayer(channels, channels, 3, norm=norm, relu=True),
                ConvLayer(channels, channels, 3, norm=norm, relu=False),
            )

    #: bfloat16: the body's convolutions run under autocast, its last norm and the skip connection
    #: in float32 (``--precision auto``'s mixed mode: see :data:`impasto.precision.AUTO_RESIDUAL_BF16`)
    compute_dtype: torch.dtype | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.compute_dtype is None or torch.is_autocast_enabled(x.device.type):
            return x + self.body(x)
        *head, last = self.body
        with torch.autocast(x.device.type, dtype=self.compute_dtype):
            h = x
            for layer in head:
                h = layer(h)
            h = last.convolve(h)
        return x + last.finish(h.to(x.dtype))


class Upsample(nn.Module):
    """x2 upsampling (nearest or bilinear) followed by a 3x3 convolution (+ norm + ReLU).

    Nearest mode is computed in sub-pixel form: a 3x3 convolution of a nearest-upsampled,
    reflection-padded image only ever sees 2x2 distinct input pixels per output pixel, so it
    equals four 2x2 convolutions of the small image (one per output phase) interleaved. Same
    result, 2.25x fewer multiply-adds and no upsampled copy in memory.
    """

    def __init__(self, c_in: int, c_out: int, *, mode: str = "nearest", norm: str = "instance") -> None:
        super().__init__()
        self.mode = mode
        self.conv = ConvLayer(c_in, c_out, 3, norm=norm, relu=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "nearest":
            return self.conv.finish(subpixel_upconv(x, self.conv.conv.weight, self.conv.conv.bias))
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.conv(x)

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The textbook formulation (upsample, pad, convolve); for tests."""
        x = F.interpolate(x, scale_factor=2.0, mode=self.mode, **({} if self.mode == "nearest" else {"align_corners": False}))
        return self.conv(x)


# phase a (0: even, 1: odd output row) x tap p of the 2-tap kernel x tap k of the 3-tap kernel
_SUBPIXEL = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])


def subpixel_upconv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``conv3x3(reflect_pad1(nearest_upsample2(x)))`` computed at the resolution of ``x``.

    Reflection padding of a nearest-upsampled image equals replicate padding of the small one,
    so the borders are exact too.
    """
    b, _, h, w = x.shape
    c_out = weight.shape[0]
    m = _SUBPIXEL.to(dtype=weight.dtype, device=weight.device)
    # (a, b, out, in, p, q): the 2x2 kernel of output phase (a, b)
    k2 = torch.einsum("apk,bql,oikl->aboipq", m, m, weight).reshape(4 * c_out, weight.shape[1], 2, 2)
    y = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k2, None if bias is None else bias.repeat(4))
    # phase (a, b) is the slice starting at row a, column b
    phases = [y[:, (2 * a + c) * c_out : (2 * a + c + 1) * c_out, a : a + h, c : c + w] for a in (0, 1) for c in (0, 1)]
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export() or (torch.is_grad_enabled() and y.requires_grad):
        rows = [torch.stack(phases[2 * a : 2 * a + 2], dim=-1) for a in (0, 1)]  # (B, C, H, W, 2) per row phase
        return torch.stack(rows, dim=3).reshape(b, c_out, 2 * h, 2 * w)
    # inference: interleave the phases straight into the output (no intermediate full-size copy)
    layout = torch.channels_last if not y.is_contiguous() and y.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    out = torch.empty((b, c_out, 2 * h, 2 * w), dtype=y.dtype, device=y.device, memory_format=layout)  # keep the layout (a switch costs copies downstream)
    for a in (0, 1):
        for c in (0, 1):
            out[:, :, a::2, c::2] = phases[2 * a + c]
    return out


def _space_to_depth_kernel(weight: torch.Tensor, s: int) -> torch.Tensor:
    """The kernel that applies ``weight`` (KxK, stride 1) to a pixel-unshuffled (factor s) input
    and produces the s*s output phases as channels (to be pixel-shuffled)."""
    c_out, c_in, k, _ = weight.shape
    q = (s - 1 + k - 1) // s + 1
    sel = torch.zeros(s, s, q, k, dtype=weight.dtype, device=weight.device)  # [phase a, sub-position r, block q, tap]
    for a in range(s):
        for r in range(s):
            for j in range(q):
                tap = s * j + r - a
                if 0 <= tap < k:
                    sel[a, r, j, tap] = 1.0
    kernel = torch.einsum("arjk,bsml,oikl->oabirsjm", sel, sel, weight)
    return kernel.reshape(c_out * s * s, c_in * s * s, q, q)


def _bf16_on_cpu(x: torch.Tensor) -> bool:
    """Whether convolutions of ``x`` run in bfloat16 on a CPU (a bf16 tensor, or under bf16 autocast)."""
    if x.device.type != "cpu":
        return False
    return x.dtype == torch.bfloat16 or (torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)


class OutputConv(nn.Module):
    """The last KxK convolution to RGB (no norm, no ReLU), computed on a space-to-depth input.

    A KxK convolution with only three output channels runs far below the processor's peak; on
    the 4x4 pixel-unshuffled input it becomes a small dense 3x3 convolution with 48 outputs, then
    pixel shuffle puts the phases back. Same result, about 3x faster on a CPU.
    """

    FACTOR = 4

    def __init__(self, c_in: int, kernel: int) -> None:
        super().__init__()
        self.pad = kernel // 2
        self.conv = nn.Conv2d(c_in, 3, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.FACTOR
        h, w = x.shape[-2:]
        if h % s or w % s or _bf16_on_cpu(x):  # bf16 convolutions of few outputs are fast: the rearranging would cost more
            return self.reference(x)
        xp = F.pad(x, (self.pad,) * 4, mode="reflect") if self.pad else x
        extra = (-(h + 2 * self.pad)) % s  # zeros below/right so the unshuffle fits; cropped away
        if extra:
            xp = F.pad(xp, (0, extra, 0, extra))
        y = F.conv2d(F.pixel_unshuffle(xp, s), _space_to_depth_kernel(self.conv.weight, s), self.conv.bias.repeat_interleave(s * s))
        return F.pixel_shuffle(y[..., : h // s, : w // s], s)

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The textbook formulation; for tests and odd sizes."""
        xp = F.pad(x, (self.pad,) * 4, mode="reflect") if self.pad else x
        return self.conv(xp)


class TransformerNet(ImageGenerator):
    """Image transformation network (Johnson, Alahi & Fei-Fei 2016) with instance norm.

    ``channels``: widths of the three resolution levels; ``n_res``: residual blocks at the
    lowest level; ``separable``: depthwise-separable residual blocks (cheaper); ``outer_kernel``:
    size of the first and last convolution (9 in the paper); ``output``: ``sigmoid`` or ``tanh``
    (scaled to [0, 1]). The generator protocol (``generate``, ``core_inputs``, export) comes from
    :class:`~impasto.nets.protocol.ImageGenerator`.
    """

    multiple = 4  # two stride-2 convolutions

    def __init__(
        self,
        channels: tuple[int, int, int] | list[int] = (32, 64, 128),
        n_res: int = 5,
        norm: str = "instance",
        upsample: str = "nearest",
        *,
        separable: bool = False,
        outer_kernel: int = 9,
        output: str = "sigmoid",
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if upsample not in UPSAMPLES:
            raise ValueError(f"upsample must be one of {UPSAMPLES}, got {upsample!r}")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        c1, c2, c3 = (int(c) for c in channels)
        self.config: dict[str, Any] = {
            "channels": [c1, c2, c3],
            "n_res": int(n_res),
            "norm": norm,
            "upsample": upsample,
            "separable": bool(separable),
            "outer_kernel": int(outer_kernel),
            "output": output,
        }
        self.output = output
        self.down = nn.Sequential(
            ConvLayer(3, c1, outer_kernel, norm=norm),
            ConvLayer(c1, c2, 3, stride=2, norm=norm),
            ConvLayer(c2, c3, 3, stride=2, norm=norm),
        )
        self.res = nn.Sequential(*[ResidualBlock(c3, norm=norm, separable=separable) for _ in range(n_res)])
        self.up = nn.Sequential(
            Upsample(c3, c2, mode=upsample, norm=norm),
            Upsample(c2, c1, mode=upsample, norm=norm),
        )
        self.out = OutputConv(c1, outer_kernel)

    def padding(self, size: tuple[int, int]) -> tuple[int, int]:
        """Rows and columns to add below/right so ``core`` accepts the size (multiple of 4, >= 16)."""
        ph, pw = self.padded_size(size)
        return ph - size[0], pw - size[1]

    def core(self, x: torch.Tensor) -> torch.Tensor:
        """The network on an input whose sides are multiples of 4 (>= 16); what ONNX export traces."""
        y = self.out(self.up(self.res(self.down(x))))
        if self.output == "sigmoid":
            return torch.sigmoid(y)
        return (torch.tanh(y) + 1.0) * 0.5

    def reference(self, image: torch.Tensor) -> torch.Tensor:
        """The textbook computation (upsample then convolve, plain output convolution); for tests."""
        h, w = image.shape[-2:]
        ph, pw = self.padding((h, w))
        x = F.pad(image, (0, pw, 0, ph), mode="reflect" if (ph < h and pw < w) else "replicate") if (ph or pw) else image
        x = self.res(self.down(x))
        for up in self.up:
            x = up.reference(x)
        y = self.out.reference(x)
        y = torch.sigmoid(y) if self.output == "sigmoid" else (torch.tanh(y) + 1.0) * 0.5
        return y[..., :h, :w]


def _preset(name: str) -> dict[str, Any]:
    """A preset as a model file's ``net_config`` (JSON-friendly: channels as a list)."""
    config = dict(JOHNSON_PRESETS[name])
    config["channels"] = list(config["channels"])
    return config


register_arch("johnson", "Johnson et al. transformation network (32/64/128 channels, 5 residual blocks, instance norm)", TransformerNet, defaults=_preset("johnson"))
register_arch(
    "johnson-small",
    "slimmer Johnson network for CPUs/phones (16/32/64 channels, 3 depthwise-separable residual blocks, 5x5 outer convs)",
    TransformerNet,
    defaults=_preset("johnson-small"),
)
