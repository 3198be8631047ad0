"""Tiling with overlap and feathered blending, for images too big to process in one piece.

``plan_tiles`` covers an image with tiles of at most ``tile`` pixels a side that overlap their
neighbours by at least ``overlap``; ``feather_weight`` ramps a tile's weight down linearly across
the overlap on the sides that have a neighbour; ``blend_tiles`` takes the weighted average, which
reconstructs an image exactly when every tile carries the same underlying pixels.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch

from ..errors import UsageError
from .convert import validate_image
from .resize import _check_size

__all__ = ["Tile", "plan_tiles", "feather_weight", "blend_tiles", "run_tiled"]


@dataclass(frozen=True)
class Tile:
    """The slice ``[y0:y1, x0:x1]`` of the full image."""

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def size(self) -> tuple[int, int]:
        """(h, w) of the tile."""
        return self.y1 - self.y0, self.x1 - self.x0

    def scaled(self, factor: int) -> Tile:
        """The same tile in an image ``factor`` times larger."""
        return Tile(self.y0 * factor, self.x0 * factor, self.y1 * factor, self.x1 * factor)

    def crop(self, image: torch.Tensor) -> torch.Tensor:
        """This tile's pixels of a ...xHxW tensor (a view)."""
        return image[..., self.y0 : self.y1, self.x0 : self.x1]


def _check_tiling(tile: int, overlap: int) -> None:
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
        raise UsageError(f"tile size must be a positive whole number of pixels, got {tile!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
        raise UsageError(f"tile overlap must be a whole number of pixels >= 0, got {overlap!r}")
    if overlap >= tile:
        raise UsageError(f"tile overlap ({overlap}) must be smaller than the tile size ({tile})")


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spread tile starts: first at 0, last flush with the end, steps <= tile - overlap."""
    if length <= tile:
        return [0]
    step = tile - overlap
    n = -(-(length - tile) // step) + 1  # ceil((length - tile) / step) + 1 tiles
    span = length - tile
    return [(2 * i * span + (n - 1)) // (2 * (n - 1)) for i in range(n)]  # round(i * span / (n - 1))


def plan_tiles(size: Sequence[int], tile: int, overlap: int) -> list[Tile]:
    """Tiles (row by row) covering an image of ``size`` = (h, w).

    Each tile is at most ``tile`` pixels a side, neighbours overlap by at least ``overlap``, the
    last tile in a row/column is flush with the border, and an image that fits is one tile.
    """
    h, w = _check_size(size)
    _check_tiling(tile, overlap)
    ys, xs = _starts(h, tile, overlap), _starts(w, tile, overlap)
    th, tw = min(tile, h), min(tile, w)
    return [Tile(y, x, y + th, x + tw) for y in ys for x in xs]


def _ramp(n: int, before: bool, after: bool, overlap: int) -> torch.Tensor:
    w = torch.ones(n, dtype=torch.float32)
    if overlap <= 0:
        return w
    ramp = torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)  # strictly inside (0, 1)
    m = min(overlap, n)
    if before:
        w[:m] = torch.minimum(w[:m], ramp[:m])
    if after:
        w[n - m :] = torch.minimum(w[n - m :], ramp[:m].flip(0))
    return w


def feather_weight(tile: Tile, size: Sequence[int], overlap: int) -> torch.Tensor:
    """1x1xhxw blending weight of ``tile`` in an image of ``size``: linear ramps (strictly > 0)
    over ``overlap`` pixels on each side that has a neighbour, 1 elsewhere."""
    h, w = _check_size(size)
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
        raise UsageError(f"tile overlap must be a whole number of pixels >= 0, got {overlap!r}")
    if not (0 <= tile.y0 < tile.y1 <= h and 0 <= tile.x0 < tile.x1 <= w):
        raise UsageError(f"tile {tile} does not lie inside an image of size {(h, w)}")
    wy = _ramp(tile.y1 - tile.y0, tile.y0 > 0, tile.y1 < h, overlap)
    wx = _ramp(tile.x1 - tile.x0, tile.x0 > 0, tile.x1 < w, overlap)
    return (wy[:, None] * wx[None, :])[None, None]


def blend_tiles(outputs: Iterable[tuple[Tile, torch.Tensor]], size: Sequence[int], overlap: int, channels: int = 3) -> torch.Tensor:
    """Feathered weighted average of per-tile results (each BxCxhxw) into a BxCxHxW image."""
    h, w = _check_size(size)
    acc: torch.Tensor | None = None
    total: torch.Tensor | None = None
    for tile, out in outputs:
        validate_image(out, f"tile {tile}", channels=channels)
        if tuple(out.shape[-2:]) != tile.size:
            raise UsageError(f"tile {tile}: result is {tuple(out.shape[-2:])}, expected {tile.size}")
        if acc is None or total is None:
            acc = out.new_zeros((out.shape[0], channels, h, w))
            total = out.new_zeros((1, 1, h, w))
        elif out.shape[0] != acc.shape[0]:
            raise UsageError(f"tile {tile}: batch {out.shape[0]} differs from the first tile's {acc.shape[0]}")
        weight = feather_weight(tile, (h, w), overlap).to(device=out.device, dtype=out.dtype)
        tile.crop(acc).add_(out * weight)
        tile.crop(total).add_(weight)
    if acc is None or total is None:
        raise UsageError("blend_tiles: no tiles given")
    if bool((total <= 0).any()):
        raise UsageError(f"blend_tiles: the tiles do not cover the whole {h}x{w} image")
    return acc / total


def run_tiled(fn: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, tile: int, overlap: int, scale: int = 1) -> torch.Tensor:
    """Apply ``fn`` tile by tile and blend the results with feathered overlaps.

    ``fn`` maps a BxCxhxw crop to a BxC'x(h*scale)x(w*scale) result (``scale`` is a positive
    integer). An image that fits in one tile is passed to ``fn`` whole.
    """
    validate_image(image, "run_tiled", channels=None)
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise UsageError(f"run_tiled: scale must be a positive whole number, got {scale!r}")
    h, w = int(image.shape[-2]), int(image.shape[-1])
    tiles = plan_tiles((h, w), tile, overlap)
    out_size = (h * scale, w * scale)

    def results() -> Iterable[tuple[Tile, torch.Tensor]]:
        for t in tiles:
            y = fn(t.crop(image))
            if not isinstance(y, torch.Tensor) or y.dim() != 4 or tuple(y.shape[-2:]) != tuple(s * scale for s in t.size):
                got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
                raise UsageError(f"run_tiled: fn returned {got} for a {t.size[0]}x{t.size[1]} tile; expected BxCx{t.size[0] * scale}x{t.size[1] * scale}")
            yield t.scaled(scale), y

    items = iter(results())
    t0, y0 = next(items)
    if len(tiles) == 1:
        return y0
    return blend_tiles(itertools.chain([(t0, y0)], items), out_size, overlap * scale, channels=int(y0.shape[1]))
