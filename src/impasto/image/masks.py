"""Region maps for spatial control (Gatys et al. 2017, section 4; Champandard 2016 "doodles").

A map is an image the size (aspect ratio) of its content or style image:

* colour-coded: each distinct colour is one region. Anti-aliased or JPEG-blurred edges are
  assigned to the nearest main colour (a colour covering more than 0.5% of the map; a colour
  that only occurs along edges between two main colours, as a mix of them, is not one).
* grey: two soft regions; the map's value is the weight of region 1 ("#ffffff"), one minus it
  the weight of region 0 ("#000000").

Regions are matched between the content and the style map by colour. Masks are Kx1xHxW floats in
[0, 1]; the content's sum to one over regions at every pixel (so do the style's, except where a
style colour has no content region: those pixels belong to no region).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..errors import ImageError
from ._common import DEFAULT_MAX_PIXELS
from .convert import validate_image
from .resize import _check_size, resize_mask

__all__ = ["RegionMasks", "load_region_masks", "region_masks_from_maps", "downsample_mask", "MAIN_COLOUR_SHARE"]

MAIN_COLOUR_SHARE = 0.005  # a colour is a region when it covers more than this share of the map
_ASPECT_TOLERANCE = 0.02
_GREY_SPREAD = 12 / 255  # max - min over RGB below which a pixel counts as grey
_GREY_SHARE = 0.995  # share of grey pixels for the map to count as grey
_SAME_COLOUR = 0.2  # RGB distance (0..sqrt(3)) within which two colours are the same region
_QUANT = 16  # colours are counted in 16-level bins per channel so JPEG noise does not scatter them
_EDGE_STEP = 0.1  # a jump larger than this between neighbours (any channel) is a colour edge


@dataclass(frozen=True)
class RegionMasks:
    """Matched region masks: ``content`` Kx1xHxW, ``style`` Kx1xH'xW', one label per region."""

    content: torch.Tensor
    style: torch.Tensor
    labels: list[str]
    kind: str = "colour"  # "colour" or "grey"

    def __len__(self) -> int:
        return len(self.labels)


def _hex(rgb: np.ndarray) -> str:
    r, g, b = (int(round(float(v) * 255)) for v in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def _pixels(map_image: torch.Tensor) -> np.ndarray:
    """1x3xHxW -> (H*W)x3 float32."""
    return map_image[0].detach().to("cpu", torch.float32).permute(1, 2, 0).reshape(-1, 3).numpy()


def _is_grey(px: np.ndarray) -> bool:
    spread = px.max(axis=1) - px.min(axis=1)
    return float((spread <= _GREY_SPREAD).mean()) >= _GREY_SHARE


def _interior(px: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Per pixel: do all 4 neighbours have (nearly) the same colour? False on region edges."""
    img = px.reshape(*hw, 3)
    inside = np.ones(hw, dtype=bool)
    for axis in (0, 1):
        if hw[axis] < 2:
            continue
        d = np.abs(np.diff(img, axis=axis)).max(axis=2) < _EDGE_STEP
        lo = [slice(None), slice(None)]
        hi = [slice(None), slice(None)]
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        inside[tuple(lo)] &= d
        inside[tuple(hi)] &= d
    return inside.reshape(-1)


def _near_blend(c: np.ndarray, solid: list[np.ndarray]) -> bool:
    """Is ``c`` close to a mix of two of the ``solid`` colours (what anti-aliasing produces)?"""
    for i in range(len(solid)):
        for j in range(i + 1, len(solid)):
            a, b = solid[i], solid[j]
            ab = a - b
            t = float(np.clip(np.dot(c - b, ab) / max(float(np.dot(ab, ab)), 1e-12), 0, 1))
            if np.linalg.norm(c - (b + t * ab)) <= _SAME_COLOUR / 2:
                return True
    return False


def _main_colours(px: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The map's main colours (Kx3, most common first) and their shares of the pixels.

    A colour is a main colour when it covers more than MAIN_COLOUR_SHARE of the map, is not
    within _SAME_COLOUR of a more common one, and is not an anti-aliased edge: a colour whose
    pixels mostly lie on colour edges and that is a mix of two solid main colours.
    """
    q = np.clip(np.rint(px * 255), 0, 255).astype(np.int64)
    bins = (q[:, 0] // _QUANT) * 65536 + (q[:, 1] // _QUANT) * 256 + (q[:, 2] // _QUANT)
    exact = q[:, 0] * 65536 + q[:, 1] * 256 + q[:, 2]
    _, inverse, counts = np.unique(bins, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    inside = _interior(px, hw)
    n = px.shape[0]
    colours: list[np.ndarray] = []
    solid: list[bool] = []
    for i in np.argsort(-counts, kind="stable"):
        if counts[i] / n <= MAIN_COLOUR_SHARE:
            break
        members = inverse == i
        vals, cnt = np.unique(exact[members], return_counts=True)
        c = int(vals[cnt.argmax()])  # the most common exact colour in the bin names the region
        rgb = np.array([(c >> 16) & 255, (c >> 8) & 255, c & 255], dtype=np.float32) / 255
        if all(np.linalg.norm(rgb - o) > _SAME_COLOUR for o in colours):
            colours.append(rgb)
            solid.append(float(inside[members].mean()) >= 0.5)
    if not colours:  # no colour covers 0.5%: the most common one is the only region
        c = int(exact[np.argmax(np.bincount(inverse))]) if n else 0
        colours.append(np.array([(c >> 16) & 255, (c >> 8) & 255, c & 255], dtype=np.float32) / 255)
        solid.append(True)
    solid_colours = [c for c, s in zip(colours, solid) if s]
    kept = [c for c, s in zip(colours, solid) if s or not _near_blend(c, solid_colours)]
    main = np.stack(kept)
    labels = _nearest(px, main)
    shares = np.bincount(labels, minlength=len(main)) / max(1, n)
    return main, shares


def _nearest(px: np.ndarray, colours: np.ndarray) -> np.ndarray:
    out = np.empty(px.shape[0], dtype=np.int64)
    step = 1 << 20
    for i in range(0, px.shape[0], step):
        d = ((px[i : i + step, None, :] - colours[None, :, :]) ** 2).sum(axis=2)
        out[i : i + step] = d.argmin(axis=1)
    return out


def _one_hot(px: np.ndarray, colours: np.ndarray, hw: tuple[int, int], regions: np.ndarray) -> torch.Tensor:
    """Assign each pixel to its nearest colour; colour j feeds region ``regions[j]`` (-1: none)."""
    nearest = _nearest(px, colours)
    region = regions[nearest]
    k = int(regions.max()) + 1 if regions.size else 0
    out = np.zeros((k, px.shape[0]), dtype=np.float32)
    valid = region >= 0
    out[region[valid], np.nonzero(valid)[0]] = 1.0
    return torch.from_numpy(out).reshape(k, 1, *hw)


def _check_aspect(name: str, map_hw: tuple[int, int], image_hw: tuple[int, int], what: str) -> None:
    mh, mw = map_hw
    ih, iw = image_hw
    if abs((mw / mh) / (iw / ih) - 1) > _ASPECT_TOLERANCE:
        raise ImageError(f"{name}: mask is {mw}x{mh} but the {what} image is {iw}x{ih}; masks must have the image's aspect ratio")


def _fit(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize region masks and renormalise so covered pixels still sum to one over regions."""
    total_before = masks.sum(dim=0, keepdim=True)
    out = resize_mask(masks, size) if tuple(masks.shape[-2:]) != tuple(size) else masks.clone()
    if bool((total_before > 0.999).all()):
        out = out / out.sum(dim=0, keepdim=True).clamp_min(1e-8)
    return out.clamp_(0, 1)


def region_masks_from_maps(
    content_map: torch.Tensor,
    style_map: torch.Tensor,
    *,
    content_size: Sequence[int],
    style_size: Sequence[int],
    content_name: str = "content mask",
    style_name: str = "style mask",
) -> RegionMasks:
    """Region masks from two map images (1x3xHxW in [0, 1]); see :func:`load_region_masks`."""
    validate_image(content_map, content_name)
    validate_image(style_map, style_name)
    c_hw, s_hw = _check_size(content_size, "content_size"), _check_size(style_size, "style_size")
    _check_aspect(content_name, tuple(content_map.shape[-2:]), c_hw, "content")  # type: ignore[arg-type]
    _check_aspect(style_name, tuple(style_map.shape[-2:]), s_hw, "style")  # type: ignore[arg-type]
    cpx, spx = _pixels(content_map), _pixels(style_map)
    c_grey, s_grey = _is_grey(cpx), _is_grey(spx)
    c_main, c_share = _main_colours(cpx, tuple(content_map.shape[-2:]))  # type: ignore[arg-type]
    s_main, _ = _main_colours(spx, tuple(style_map.shape[-2:]))  # type: ignore[arg-type]

    def two_tone(main: np.ndarray) -> bool:
        return all(float(c.max() - c.min()) <= _GREY_SPREAD and (c.max() < 0.1 or c.min() > 0.9) for c in main)

    if c_grey and s_grey:
        return _grey_regions(cpx, spx, content_map, style_map, c_hw, s_hw)
    if c_grey != s_grey and not two_tone(c_main if c_grey else s_main):
        # (a black-and-white map next to a colour-coded one is read as colour-coded too)
        grey_name, colour_name = (content_name, style_name) if c_grey else (style_name, content_name)
        raise ImageError(f"{grey_name}: is a grey map but {colour_name} is colour-coded; use the same kind for both")

    # colour-coded: the content's colours define the regions; each style colour joins the
    # nearest content colour within _SAME_COLOUR (or no region)
    regions_for_style = np.full(len(s_main), -1, dtype=np.int64)
    for j, colour in enumerate(s_main):
        d = np.linalg.norm(c_main - colour[None, :], axis=1)
        k = int(d.argmin())
        if d[k] <= _SAME_COLOUR:
            regions_for_style[j] = k
    for k, colour in enumerate(c_main):
        if not (regions_for_style == k).any():
            raise ImageError(
                f"{content_name}: colour {_hex(colour)} ({c_share[k]:.0%} of the mask) has no region in the style mask {style_name}"
            )
    content = _one_hot(cpx, c_main, tuple(content_map.shape[-2:]), np.arange(len(c_main)))  # type: ignore[arg-type]
    style = _one_hot(spx, s_main, tuple(style_map.shape[-2:]), regions_for_style)  # type: ignore[arg-type]
    return RegionMasks(content=_fit(content, c_hw), style=_fit(style, s_hw), labels=[_hex(c) for c in c_main], kind="colour")


def _grey_regions(
    cpx: np.ndarray, spx: np.ndarray, cmap: torch.Tensor, smap: torch.Tensor, c_hw: tuple[int, int], s_hw: tuple[int, int]
) -> RegionMasks:
    def soft(px: np.ndarray, hw: tuple[int, int]) -> torch.Tensor:
        v = torch.from_numpy(px.mean(axis=1).astype(np.float32)).clamp(0, 1).reshape(1, 1, *hw)
        return torch.cat([1 - v, v], dim=0)

    content = soft(cpx, tuple(cmap.shape[-2:]))  # type: ignore[arg-type]
    style = soft(spx, tuple(smap.shape[-2:]))  # type: ignore[arg-type]
    return RegionMasks(content=_fit(content, c_hw), style=_fit(style, s_hw), labels=["#000000", "#ffffff"], kind="grey")


def load_region_masks(
    content_mask_path: str | os.PathLike[str],
    style_mask_path: str | os.PathLike[str],
    *,
    content_size: Sequence[int],
    style_size: Sequence[int],
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> RegionMasks:
    """Read a content and a style region map and return matched masks at the given (h, w) sizes.

    Errors (ImageError naming the file): a map whose aspect ratio differs from its image's by
    more than 2%, a content colour without a region in the style map, one grey map and one
    colour-coded map, and every load error of :func:`impasto.image.io.load_image` (``max_pixels``
    is passed on to it; None: no limit).
    """
    from .io import load_image

    cm = load_image(content_mask_path, max_pixels=max_pixels)
    sm = load_image(style_mask_path, max_pixels=max_pixels)
    return region_masks_from_maps(
        cm.image,
        sm.image,
        content_size=content_size,
        style_size=style_size,
        content_name=str(content_mask_path),
        style_name=str(style_mask_path),
    )


def downsample_mask(mask: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resize Kx1xHxW region masks to ``size`` (bilinear, antialiased); covered pixels still sum to one."""
    validate_image(mask, "downsample_mask", channels=1)
    hw = _check_size(size)
    return _fit(mask, hw)

