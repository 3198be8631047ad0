"""Texture networks (Ulyanov, Lebedev, Vedaldi & Lempitsky, ICML 2016): a multi-scale generator.

K noise tensors at resolutions halving from the output size (plus, for stylisation, the content
image downsampled to each scale) each go through a conv block (3x3, 3x3, 1x1 convolutions with
instance norm and LeakyReLU). Starting from the coarsest scale, the running result is upsampled
x2, normalised and concatenated with the next finer scale's block output (the join), then
refined by another conv block; a final 1x1 convolution gives RGB.

Noise is *positional*: the value at (scale k, channel c, row y, column x) is a hash of
(seed, k, c, y, x) turned into a standard normal. Any crop of an image can therefore regenerate
exactly its own part of the noise from its position (``origin``), which is what makes tiled
generation of arbitrarily large images consistent, and a seed fully determines a texture.

Registers the architecture ``texture`` (stylisation, or synthesis from noise alone with
``content=False``).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .norm import InstanceNorm
from .protocol import pad_to
from .registry import register_arch

__all__ = ["TextureNet", "positional_noise"]

_M32 = 0xFFFFFFFF


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mixer (lowbias32 style) on int64 tensors holding values < 2**32."""
    x = x & _M32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _M32
    x = x ^ (x >> 15)
    x = (x * 0x45D9F3B) & _M32  # multipliers < 2**31: products of 32-bit values fit in int64
    x = x ^ (x >> 16)
    return x


def positional_noise(seeds: Sequence[int], channels: int, size: tuple[int, int], *, scale: int = 0, origin: tuple[int, int] = (0, 0), device: str | torch.device = "cpu") -> torch.Tensor:
    """Standard-normal noise (B, channels, h, w) for a crop at ``origin`` of scale ``scale``.

    Sample b uses ``seeds[b]``; the same (seed, scale, channel, global position) always gives the
    same value, whatever crop it is generated in.
    """
    h, w = size
    ys = (torch.arange(h, dtype=torch.int64, device=device) + int(origin[0])).view(1, 1, h, 1)
    xs = (torch.arange(w, dtype=torch.int64, device=device) + int(origin[1])).view(1, 1, 1, w)
    cs = torch.arange(channels, dtype=torch.int64, device=device).view(1, channels, 1, 1)
    sd = torch.tensor([int(s) & _M32 for s in seeds], dtype=torch.int64, device=device).view(-1, 1, 1, 1)
    key = _hash32(((sd * 0x1E3779B1) & _M32) + (((scale + 1) * 0x05EBCA77) & _M32) + ((cs * 0x42B2AE3D) & _M32))
    key = _hash32(key ^ _hash32(((ys & _M32) * 0x27D4EB2F) & _M32))
    key = _hash32(key ^ _hash32(((xs & _M32) * 0x61C88647) & _M32))
    u1 = (_hash32(key ^ 0x68E31DA4).to(torch.float64) + 0.5) / 2.0**32
    u2 = (_hash32(key ^ 0x1B56C4E9).to(torch.float64) + 0.5) / 2.0**32
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)  # Box-Muller
    return z.to(torch.float32)


class _Block(nn.Module):
    """3x3, 3x3, 1x1 convolutions, each followed by instance norm and LeakyReLU(0.2)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(c_in, c_out, 3), nn.Conv2d(c_out, c_out, 3), nn.Conv2d(c_out, c_out, 1)])
        self.norms = nn.ModuleList([InstanceNorm(c_out, inplace=True) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms):
            if conv.kernel_size[0] > 1:
                x = F.pad(x, (1, 1, 1, 1), mode="reflect")
            x = F.leaky_relu(norm(conv(x)), 0.2)
        return x


class TextureNet(nn.Module):
    """Ulyanov et al.'s multi-scale generator.

    ``content=True``: stylisation (each scale also sees the downsampled content image);
    ``content=False``: texture synthesis from noise alone (``--texture``).
    ``scales``: K; ``channels``: width of each scale's block (the join grows by that much per
    scale, as in the paper); ``noise_channels``: noise channels per scale.
    """

    def __init__(self, *, content: bool = True, scales: int = 5, channels: int = 8, noise_channels: int = 3) -> None:
        super().__init__()
        if scales < 1 or channels < 1 or noise_channels < 1:
            raise ValueError("scales, channels and noise_channels must be >= 1")
        self.config: dict[str, Any] = {"content": bool(content), "scales": int(scales), "channels": int(channels), "noise_channels": int(noise_channels)}
        self.uses_content = bool(content)
        self.takes: tuple[str, ...] = ("content", "noise") if content else ("noise",)
        self.scales = int(scales)
        self.noise_channels = int(noise_channels)
        c_in = noise_channels + (3 if content else 0)
        self.blocks = nn.ModuleList([_Block(c_in, channels) for _ in range(scales)])  # index 0 = finest
        self.join_norm_coarse = nn.ModuleList()
        self.join_norm_fine = nn.ModuleList()
        self.join_blocks = nn.ModuleList()
        width = channels
        for _ in range(scales - 1):  # coarse to fine
            self.join_norm_coarse.append(InstanceNorm(width, inplace=True))
            self.join_norm_fine.append(InstanceNorm(channels, inplace=True))
            self.join_blocks.append(_Block(width + channels, width + channels))
            width += channels
        self.to_rgb = nn.Conv2d(width, 3, 1)

    @property
    def multiple(self) -> int:
        """Sides of the working size are multiples of this (2**(K-1))."""
        return 2 ** (self.scales - 1)

    def padded_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The size ``core`` works at: each side rounded up to a multiple of 2**(K-1), at least 2**K."""
        m = self.multiple
        least = max(2 * m, 4)
        return tuple(max(least, int(s) + (-int(s)) % m) for s in size)  # type: ignore[return-value]

    def noise(self, seeds: Sequence[int], size: tuple[int, int], origin: tuple[int, int] = (0, 0), device: str | torch.device = "cpu") -> list[torch.Tensor]:
        """The K noise tensors (finest first) for a crop of padded ``size`` at ``origin``.

        ``origin`` must be a multiple of 2**(K-1) for crops to line up with the whole image.
        """
        out = []
        for k in range(self.scales):
            f = 2**k
            out.append(positional_noise(seeds, self.noise_channels, (size[0] // f, size[1] // f), scale=k, origin=(origin[0] // f, origin[1] // f), device=device))
        return out

    def forward(
        self,
        content: torch.Tensor | None = None,
        size: tuple[int, int] | None = None,
        *,
        seed: int | Sequence[int] = 0,
        origin: tuple[int, int] = (0, 0),
        batch: int = 1,
    ) -> torch.Tensor:
        """Generate an image (B, 3, H, W) in [0, 1].

        Stylisation: ``content`` (B3HW, [0, 1]) sets batch and size. Texture mode: ``size``
        (h, w) and ``batch``. ``seed``: one int (sample b uses seed + b) or one per sample;
        different seeds give different textures. ``origin``: position of this crop in a larger
        image (for tiling; multiples of 2**(K-1)).
        """
        if self.uses_content:
            if content is None:
                raise ValueError("this texture network stylises a content image: pass content=")
            b, (h, w) = content.shape[0], tuple(content.shape[-2:])
        else:
            if size is None:
                if content is None:
                    raise ValueError("texture synthesis needs an output size=(h, w)")
                size = tuple(content.shape[-2:])  # type: ignore[assignment]
            b, (h, w) = batch, size  # type: ignore[misc]
            content = None
        seeds = [int(seed) + i for i in range(b)] if isinstance(seed, int) else [int(s) for s in seed]
        if len(seeds) != b:
            raise ValueError(f"{len(seeds)} seeds for a batch of {b}")
        ph, pw = self.padded_size((h, w))
        device = self.to_rgb.weight.device
        if content is not None and (ph, pw) != (h, w):
            mode = "reflect" if (ph - h < h and pw - w < w) else "replicate"
            content = F.pad(content, (0, pw - w, 0, ph - h), mode=mode)
        return self.core(content, *self.noise(seeds, (ph, pw), origin, device))[..., :h, :w]

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
        """The protocol's call: ``content`` is ignored by a synthesis network (``size`` and
        ``batch`` are then used)."""
        return self(content if self.uses_content else None, size, seed=seed, origin=origin, batch=batch)

    def core_inputs(
        self, content: torch.Tensor | None, size: tuple[int, int], *, seed: int | Sequence[int] = 0, origin: tuple[int, int] = (0, 0), batch: int = 1, style: Any = None
    ) -> dict[str, torch.Tensor]:
        """``image`` (stylisation: the content padded to the working size) and ``noise0..K-1``
        for an output of ``size`` at ``origin``; sample b of the noise uses ``seed + b``."""
        ph, pw = self.padded_size(size)
        inputs: dict[str, torch.Tensor] = {}
        if self.uses_content:
            if content is None:
                raise ValueError("this texture network stylises a content image: pass content")
            inputs["image"] = pad_to(content, (ph, pw)).float().contiguous()
        b = batch if content is None else int(content.shape[0])
        seeds = [int(seed) + i for i in range(b)] if isinstance(seed, int) else [int(s) for s in seed]
        for k, z in enumerate(self.noise(seeds, (ph, pw), origin)):
            inputs[f"noise{k}"] = z
        return inputs

    def example_inputs(self) -> dict[str, torch.Tensor]:
        """Noise (and a random photo) for a 32x48 output, at the working size."""
        ph, pw = self.padded_size((32, 48))
        noise = self.noise([0], (ph, pw))
        inputs = {"image": torch.rand(1, 3, ph, pw)} if self.uses_content else {}
        inputs.update({f"noise{k}": z for k, z in enumerate(noise)})
        return inputs

    def export_module(self) -> nn.Module:
        """A module whose ``forward([image,] noise0, ..., noiseK-1)`` is ``core``."""
        return _TextureExport(self)

    def core(self, content: torch.Tensor | None, *noise: torch.Tensor) -> torch.Tensor:
        """The generator at the padded size: ``content`` (B3HW or None) and K noise tensors."""
        feats = []
        x_content = content
        for k in range(self.scales):
            z = noise[k]
            if self.uses_content:
                assert x_content is not None
                if k > 0:
                    x_content = F.avg_pool2d(x_content, 2)
                z = torch.cat([x_content, z.to(x_content.dtype)], dim=1)
            feats.append(self.blocks[k](z))
        x = feats[-1]
        for j, k in enumerate(range(self.scales - 2, -1, -1)):
            up = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = torch.cat([self.join_norm_coarse[j](up), self.join_norm_fine[j](feats[k])], dim=1)
            x = self.join_blocks[j](x)
        return torch.sigmoid(self.to_rgb(x))


class _TextureExport(nn.Module):
    """Export wrapper: positional ``[image,] noise0..K-1`` -> ``core``."""

    def __init__(self, net: TextureNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.net.uses_content:
            return self.net.core(inputs[0], *inputs[1:])
        return self.net.core(None, *inputs)


register_arch(
    "texture",
    "Ulyanov et al. multi-scale texture network (noise + downsampled content at 5 scales)",
    TextureNet,
    defaults={"content": True, "scales": 5, "channels": 8, "noise_channels": 3},
    synthesis={"content": False},
)
