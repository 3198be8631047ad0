"""Semantic maps for neural doodles (Champandard 2016, "Semantic Style Transfer and Turning
Two-Bit Doodles into Fine Artworks").

A semantic map is an image painted in a few flat colours ("sky", "water", "trees") over a
painting (``painting_sem.png``) or over the picture one wants (``target_sem.png``); each region
of the target takes its patches from the same-coloured region of the painting.

Map authoring is fragile, so reading a map is forgiving where it can be and exact where it
cannot:

* any mode Pillow reads: RGB, RGBA (the alpha channel is dropped: every pixel counts with its
  RGB colour), greyscale (L, LA, 16-bit, 1-bit) and palette (P) images;
* anti-aliased or blurred edges and JPEG noise are snapped to the map's palette: the palette is
  the set of dominant flat colours (each covering at least 0.5% of the map); every other pixel
  takes the nearest palette colour (RGB distance). Black is an ordinary region;
* a map of another size than its image is resized to it (nearest neighbour on the labels,
  colours are never interpolated); one of another aspect ratio is refused;
* a photo (or any map that is not a few flat colours) is refused, with a one-line message.

Two maps are matched by colour (:func:`check_colours`, :func:`shared_palette`), within a
tolerance, so two exports of "the same green" still pair.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import ImageError, UsageError
from ._common import DEFAULT_MAX_PIXELS
from .masks import _ASPECT_TOLERANCE, _QUANT, _SAME_COLOUR, MAIN_COLOUR_SHARE, _near_blend, _nearest
from .resize import _check_size

__all__ = [
    "SemanticMap",
    "load_map",
    "pair_map",
    "check_colours",
    "shared_palette",
    "MAP_EXTENSIONS",
    "COLOUR_TOLERANCE",
]

Colour = tuple[int, int, int]

#: extensions :func:`pair_map` looks for, in this order of preference
MAP_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
#: two colours whose channels all differ by at most this many levels (0..255) are the same colour
COLOUR_TOLERANCE = 24
_FLAT_STEPS = (3, 8, 16)  # neighbours within this many levels (every channel): the pixel is inside a flat
# area; the first step under which most of the map is flat (a clean map: 3; a noisy scan: more)
_FLAT_MAJORITY = 0.5
_SOLID_SHARE = MAIN_COLOUR_SHARE / 2  # flat pixels a colour needs (share of the map) to be a solid region
_UNEXPLAINED_SHARE = 0.10  # more pixels than this neither a palette colour nor an edge mix: not a map
_BLEND_DISTANCE = _SAME_COLOUR / 2  # RGB distance (0..1 units) from a mix of two colours: an edge pixel (as masks.py)
_FRAGMENTED = 0.2  # label changes per pixel (both axes) above which regions look like a photo's
_CLOSE, _CLOSE_SHARE = 8, 0.75  # ... unless this share of the pixels is within this many levels of its colour
_CHECK_PIXELS = 1 << 18  # the flatness check looks at (at most) this many pixels, evenly spread


# --------------------------------------------------------------------------------------------
# the map


@dataclass(frozen=True, eq=False)
class SemanticMap:
    """A semantic map: every pixel's region (``labels``, HxW int32 indices into ``palette``).

    ``palette`` holds the map's colours (RGB, 0..255) sorted by colour; ``path`` is the file it
    was read from (None for an in-memory image), for messages. Maps compare by identity.
    """

    labels: np.ndarray
    palette: tuple[Colour, ...]
    path: str | None = None

    def __post_init__(self) -> None:
        palette = _check_palette(self.palette, "palette")
        labels = self.labels
        if not isinstance(labels, np.ndarray) or labels.ndim != 2 or labels.dtype.kind not in "iu" or 0 in labels.shape:
            shape = getattr(labels, "shape", None)
            raise UsageError(f"labels must be a non-empty HxW integer array, got {type(labels).__name__} of shape {shape}")
        if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= len(palette)):
            raise UsageError(f"labels must index the palette (0..{len(palette) - 1}), got values {int(labels.min())}..{int(labels.max())}")
        object.__setattr__(self, "palette", palette)

    @property
    def size(self) -> tuple[int, int]:
        """(h, w) of the labels."""
        return int(self.labels.shape[0]), int(self.labels.shape[1])

    def __len__(self) -> int:
        return len(self.palette)

    def channels(
        self,
        palette: Sequence[Sequence[int]] | None = None,
        size: Sequence[int] | None = None,
        *,
        tolerance: int = COLOUR_TOLERANCE,
    ) -> torch.Tensor:
        """The map as a 1xKxHxW float32 one-hot tensor (exactly one channel is 1 at each pixel).

        ``palette`` (default: the map's own) gives the channels and their order; each of the
        map's colours goes to the palette colour within ``tolerance`` (max per-channel difference)
        of it, so a target map and its style map give aligned channels with
        ``channels(shared_palette(target, style))``. A colour of the map with no such palette
        colour raises UsageError. ``size`` = (h, w) resizes the labels first (nearest
        neighbour: the channels stay one-hot, no blur).
        """
        where = self.path or "map"
        if palette is None:
            pal = self.palette
            lut = np.arange(len(pal), dtype=np.int64)
        else:
            pal = _check_palette(palette, "palette")
            tol = _check_tolerance(tolerance)
            lut = np.empty(len(self.palette), dtype=np.int64)
            for i, colour in enumerate(self.palette):
                j = _closest(colour, pal, tol)
                if j is None:
                    raise UsageError(f"{where}: colour {_hex(colour)} is not in the given palette ({', '.join(_hex(c) for c in pal)})")
                lut[i] = j
        labels = self.labels if size is None else _resize_labels(self.labels, _check_size(size, "size"))
        index = torch.from_numpy(lut[labels.astype(np.int64)])
        out = torch.nn.functional.one_hot(index, num_classes=len(pal))
        return out.permute(2, 0, 1).unsqueeze(0).to(torch.float32).contiguous()


# --------------------------------------------------------------------------------------------
# reading


def load_map(
    path_or_image: Any,
    *,
    size: Sequence[int] | None = None,
    max_colours: int = 16,
    what: str = "map",
) -> SemanticMap:
    """Read a semantic map: a file path (or bytes), a PIL image, an HxW[xC] array or a
    [1x]CxHxW tensor in [0, 1].

    The palette is the map's dominant flat colours (each covers at least 0.5% of the map; an
    anti-aliased edge, a mix of two of them, is not one); every pixel takes the nearest palette
    colour. A map with one colour is fine (one region). ``size`` = (h, w) of the image the map
    belongs to: the labels are resized to it (nearest neighbour). ``what`` names the map in
    messages where there is no file name.

    Errors, each one line naming the file: every error of :func:`impasto.image.io.load_image`
    (missing, empty, corrupt, not an image, ...); ImageError when the map has more than
    ``max_colours`` colours or is not made of flat colours (a photo), or when its aspect ratio
    differs from ``size``'s by more than 2%; UsageError for bad arguments.
    """
    if isinstance(max_colours, bool) or not isinstance(max_colours, int) or max_colours < 1:
        raise UsageError(f"max_colours must be a positive whole number, got {max_colours!r}", params="max_colours")
    if not isinstance(what, str) or not what:
        raise UsageError(f"what must be a non-empty string, got {what!r}")
    target_hw = None if size is None else _check_size(size, "size")
    path, disp, px, hw = _read(path_or_image, what)
    if target_hw is not None:
        _check_aspect(disp, what, hw, target_hw)
    q = np.clip(np.rint(px * 255), 0, 255).astype(np.int16)  # (H*W)x3 levels
    colours, flat = _palette(q, hw)
    if len(colours) > max_colours:
        raise ImageError(f"{disp}: {len(colours)} colours; a semantic map has at most {max_colours} flat colours (is it a photo?)")
    palette = tuple(sorted(_refine(q, flat, colours)))
    labels = _nearest(px, np.asarray(palette, dtype=np.float32) / 255).astype(np.int32).reshape(hw)
    if _looks_like_a_photo(q, labels, palette):
        seen = np.zeros(1 << 24, dtype=bool)  # distinct colours, counted without sorting
        seen[(q[:, 0].astype(np.int32) << 16) | (q[:, 1].astype(np.int32) << 8) | q[:, 2].astype(np.int32)] = True
        n = int(np.count_nonzero(seen))
        raise ImageError(f"{disp}: {n} colours; a semantic map has at most {max_colours} flat colours (is it a photo?)")
    if target_hw is not None and target_hw != hw:
        labels = _resize_labels(labels, target_hw)
    labels.setflags(write=False)
    return SemanticMap(labels=labels, palette=palette, path=path)


def _read(source: Any, what: str) -> tuple[str | None, str, np.ndarray, tuple[int, int]]:
    """-> (path or None, name for messages, (H*W)x3 float32 RGB in [0, 1], (h, w))."""
    if isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)) or hasattr(source, "read"):
        from .io import load_image

        if isinstance(source, (str, os.PathLike)):
            path: str | None = str(source)
            disp = path
        else:  # bytes or a binary file: named by the file's name, else by ``what``
            name = getattr(source, "name", None)
            path, disp = None, name if isinstance(name, str) and name else what
        image = load_image(source, max_pixels=DEFAULT_MAX_PIXELS, name=disp).image
    else:
        path, disp = None, what
        image = _in_memory(source, what)
    hw = (int(image.shape[-2]), int(image.shape[-1]))
    px = image[0].detach().to("cpu", torch.float32).permute(1, 2, 0).reshape(-1, 3).numpy()
    return path, disp, px, hw


def _in_memory(source: Any, what: str) -> torch.Tensor:
    """A PIL image, numpy array or tensor -> 1x3xHxW float32 (alpha dropped, grey repeated)."""
    from .convert import numpy_to_tensor, pil_to_tensor

    if isinstance(source, np.ndarray):
        arr = source
        if arr.ndim == 3 and arr.shape[2] in (2, 4):
            arr = arr[:, :, :-1]  # drop the alpha channel
        if arr.dtype == np.bool_:
            arr = arr.astype(np.uint8) * 255
        return numpy_to_tensor(np.ascontiguousarray(arr))
    if isinstance(source, torch.Tensor):
        x = source.unsqueeze(0) if source.dim() == 3 else source
        if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] not in (1, 2, 3, 4) or x.shape[-1] < 1 or x.shape[-2] < 1:
            raise UsageError(f"{what}: expected a 1xCxHxW map tensor (C = 1, 3 or with alpha), got shape {tuple(source.shape)}")
        if not x.is_floating_point():
            raise UsageError(f"{what}: expected a floating-point tensor with values in [0, 1], got {x.dtype}")
        if x.shape[1] in (2, 4):
            x = x[:, :-1]
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return x.detach().to("cpu", torch.float32).clamp(0, 1)
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        Image = None  # type: ignore[assignment]
    if Image is not None and isinstance(source, Image.Image):
        if source.mode in ("I", "F"):  # through a TIFF, so they are scaled as the file reader does
            from .io import load_image

            buf = io.BytesIO()
            source.save(buf, format="TIFF")
            return load_image(buf.getvalue(), name=what).image
        return pil_to_tensor(source)
    raise UsageError(f"load_map: expected a file path, bytes, a PIL image, a numpy array or a tensor, got {type(source).__name__}")


def _check_aspect(disp: str, what: str, map_hw: tuple[int, int], image_hw: tuple[int, int]) -> None:
    (mh, mw), (ih, iw) = map_hw, image_hw
    if abs((mw / mh) / (iw / ih) - 1) > _ASPECT_TOLERANCE:
        raise ImageError(f"{disp}: {what} is {mw}x{mh} but its image is {iw}x{ih}; a map must have its image's aspect ratio")


def _flat_pixels(q: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Per pixel: are all 4 neighbours within a few levels (every channel)? False on edges and
    along blurred (anti-aliased) transitions. "A few": the first of _FLAT_STEPS under which most
    of the map is flat, so JPEG noise or a scanned map's grain does not make everything an edge."""
    img = q.reshape(*hw, 3)
    jumps = [np.abs(np.diff(img, axis=axis)).max(axis=2) if hw[axis] > 1 else None for axis in (0, 1)]
    for step in _FLAT_STEPS:
        flat = _flat_under(jumps, hw, step)
        if flat.mean() >= _FLAT_MAJORITY:
            break
    return flat.reshape(-1)


def _flat_under(jumps: list[np.ndarray | None], hw: tuple[int, int], step: int) -> np.ndarray:
    flat = np.ones(hw, dtype=bool)
    for axis in (0, 1):
        jump = jumps[axis]
        if jump is None:
            continue
        same = jump <= step
        lo: list[slice] = [slice(None), slice(None)]
        hi: list[slice] = [slice(None), slice(None)]
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        flat[tuple(lo)] &= same
        flat[tuple(hi)] &= same
    return flat


def _palette(q: np.ndarray, hw: tuple[int, int]) -> tuple[list[Colour], np.ndarray]:
    """The map's dominant colours (unsorted), and which pixels are flat.

    Colours are counted in _QUANT-level bins (so JPEG noise does not scatter them). A bin that
    covers at least MAIN_COLOUR_SHARE of the map is a candidate, named by its most common exact
    colour (among its flat pixels when it has some); candidates within COLOUR_TOLERANCE of a
    kept colour are that colour. A candidate with enough flat pixels is a solid region; one
    without (it lives on edges) is dropped when it is a mix of two other colours: an
    anti-aliased or blurred edge.
    """
    n = q.shape[0]
    flat = _flat_pixels(q, hw)
    levels = 256 // _QUANT
    bins = ((q[:, 0] // _QUANT) * levels + q[:, 1] // _QUANT) * levels + q[:, 2] // _QUANT
    bins = bins.astype(np.uint16)  # < 4096
    exact = (q[:, 0].astype(np.int32) << 16) | (q[:, 1].astype(np.int32) << 8) | q[:, 2].astype(np.int32)
    counts = np.bincount(bins, minlength=levels**3)
    flat_counts = np.bincount(bins[flat], minlength=levels**3)
    candidates = [int(i) for i in np.flatnonzero(counts >= MAIN_COLOUR_SHARE * n)]
    if not candidates:  # no colour covers 0.5% (a tiny or noisy map): the most common bin
        candidates = [int(np.argmax(counts))]
    # solid (many flat pixels) first, most flat pixels first; then the rest by size
    candidates.sort(key=lambda i: (flat_counts[i] < _SOLID_SHARE * n, -int(flat_counts[i]), -int(counts[i]), i))

    order = np.argsort(bins, kind="stable")  # pixels grouped by bin (a radix sort)
    starts = np.concatenate(([0], np.cumsum(counts)))
    kept: list[tuple[Colour, bool, int]] = []  # (colour, solid, pixels)
    for i in candidates:
        members = order[starts[i] : starts[i + 1]]
        pick = members[flat[members]] if flat_counts[i] > 0 else members
        vals, cnt = np.unique(exact[pick], return_counts=True)
        c = int(vals[cnt.argmax()])
        colour: Colour = ((c >> 16) & 255, (c >> 8) & 255, c & 255)
        if _closest(colour, [k[0] for k in kept], COLOUR_TOLERANCE) is None:
            kept.append((colour, bool(flat_counts[i] >= _SOLID_SHARE * n), int(counts[i])))
    # Drop edge colours: not solid and a mix of two other kept colours. Smallest first, one at
    # a time, so an edge colour never vouches for another one that is then dropped.
    changed = True
    while changed:
        changed = False
        for k in sorted(range(len(kept)), key=lambda k: kept[k][2]):
            colour, is_solid, _ = kept[k]
            others = [np.asarray(o[0], dtype=np.float32) / 255 for j, o in enumerate(kept) if j != k]
            if not is_solid and _near_blend(np.asarray(colour, dtype=np.float32) / 255, others):
                del kept[k]
                changed = True
                break
    return [k[0] for k in kept], flat


def _refine(q: np.ndarray, flat: np.ndarray, colours: list[Colour]) -> list[Colour]:
    """Each colour as the median of the flat pixels within COLOUR_TOLERANCE of it (so a noisy
    scan's or a JPEG's region is named by its middle, not by its most common noisy value)."""
    step = max(1, q.shape[0] // _CHECK_PIXELS)
    sample = q[::step][flat[::step]].astype(np.int32)
    out: list[Colour] = []
    for colour in colours:
        near = sample[np.abs(sample - np.asarray(colour, dtype=np.int32)).max(axis=1) <= COLOUR_TOLERANCE]
        if near.shape[0]:
            r, g, b = (int(v) for v in np.rint(np.median(near, axis=0)))
            colour = (r, g, b)
        out.append(colour)
    return out


def _looks_like_a_photo(q: np.ndarray, labels: np.ndarray, palette: Sequence[Colour]) -> bool:
    """Is this not a map of flat colours? True when many pixels are neither a palette colour
    nor a mix of two, or when the regions are fragmented (a label change between more than
    _FRAGMENTED of the neighbouring pixel pairs) and few pixels are close to their colour."""
    if not _explained(q, palette):
        return True
    changes = int(np.count_nonzero(np.diff(labels, axis=0))) + int(np.count_nonzero(np.diff(labels, axis=1)))
    if changes <= _FRAGMENTED * labels.size:
        return False
    pal = np.asarray(palette, dtype=np.int16)
    close = np.abs(q - pal[labels.reshape(-1)]).max(axis=1) <= _CLOSE
    return float(close.mean()) < _CLOSE_SHARE


def _explained(q: np.ndarray, colours: Sequence[Colour]) -> bool:
    """Are (nearly) all pixels a palette colour or a mix of two (an edge)?"""
    step = max(1, q.shape[0] // _CHECK_PIXELS)
    sample = q[::step].astype(np.int32)
    pal = np.asarray(colours, dtype=np.int32)
    dist = np.full(sample.shape[0], 255, dtype=np.int32)
    for colour in pal:  # max per-channel difference to the nearest palette colour
        np.minimum(dist, np.abs(sample - colour).max(axis=1), out=dist)
    rest = sample[dist > COLOUR_TOLERANCE].astype(np.float32) / 255
    if rest.shape[0] and len(colours) > 1:
        # distance of each remaining pixel to the nearest segment between two palette colours
        p = pal.astype(np.float32) / 255
        best = np.full(rest.shape[0], np.inf, dtype=np.float32)
        for a in range(len(p)):
            for b in range(a + 1, len(p)):
                ab = p[a] - p[b]
                t = np.clip((rest - p[b]) @ ab / max(float(ab @ ab), 1e-12), 0, 1)
                d = np.linalg.norm(rest - (p[b] + t[:, None] * ab), axis=1)
                np.minimum(best, d, out=best)
        unexplained = int((best > _BLEND_DISTANCE).sum())
    else:
        unexplained = int(rest.shape[0])
    return unexplained <= _UNEXPLAINED_SHARE * sample.shape[0]


def _resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an HxW label array (pixel centres aligned)."""
    h, w = labels.shape
    if (h, w) == tuple(size):
        return labels
    rows = np.minimum(((np.arange(size[0]) + 0.5) * h / size[0]).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(size[1]) + 0.5) * w / size[1]).astype(np.int64), w - 1)
    return np.ascontiguousarray(labels[rows[:, None], cols[None, :]])


# --------------------------------------------------------------------------------------------
# pairing maps with images, and maps with each other


def pair_map(image_path: str | os.PathLike[str], *, suffix: str = "_sem") -> Path | None:
    """The semantic map next to an image, by neural-doodle's convention: ``photo.jpg`` pairs
    with ``photo_sem.png`` (or .jpg, .jpeg, .webp, .bmp, .tif, .tiff, .gif; the first found, in
    that order, the extension's case ignored). None when there is no such file."""
    if not isinstance(image_path, (str, os.PathLike)):
        raise UsageError(f"pair_map: expected an image path, got {type(image_path).__name__}")
    if not isinstance(suffix, str) or not suffix or any(sep in suffix for sep in ("/", "\\")):
        raise UsageError(f"suffix must be a non-empty file-name suffix such as '_sem', got {suffix!r}", params="suffix")
    image = Path(image_path)
    if not str(image_path) or not image.name:
        return None
    stem = image.stem + suffix
    folder = image.parent
    for ext in MAP_EXTENSIONS:
        candidate = folder / (stem + ext)
        if candidate.is_file() and candidate.name != image.name:
            return candidate
    try:  # the same names with the extension in another case (photo_sem.PNG)
        names = {p.name.lower(): p for p in folder.iterdir() if p.name.lower().startswith(stem.lower())}
    except OSError:
        return None
    for ext in MAP_EXTENSIONS:
        found = names.get((stem + ext).lower())
        if found is not None and found.name.startswith(stem) and found.is_file() and found.name != image.name:
            return found
    return None


def check_colours(target: SemanticMap, style: SemanticMap, *, tolerance: int = COLOUR_TOLERANCE) -> dict[int, int]:
    """Each target palette index -> the style palette index of the same colour (the closest
    within ``tolerance``: max per-channel difference, 0..255). A target colour the style map
    lacks raises UsageError naming the target map and the colour."""
    for m, name in ((target, "target"), (style, "style")):
        if not isinstance(m, SemanticMap):
            raise UsageError(f"check_colours: {name} must be a SemanticMap (see load_map), got {type(m).__name__}")
    tol = _check_tolerance(tolerance)
    pairs: dict[int, int] = {}
    for i, colour in enumerate(target.palette):
        j = _closest(colour, style.palette, tol)
        if j is None:
            raise UsageError(
                f"{target.path or 'target map'}: colour {_hex(colour)} has no region in {style.path or 'the style map'} "
                "(paint it in the style map too, or change it)"
            )
        pairs[i] = j
    return pairs


def shared_palette(target: SemanticMap, style: SemanticMap, *, tolerance: int = COLOUR_TOLERANCE) -> tuple[Colour, ...]:
    """The palette both maps' channels use: the style map's colours, in its order.

    ``target.channels(p)`` and ``style.channels(p)`` (``p`` this palette) then line up, the
    target's colours going to their style colours as :func:`check_colours` pairs them (whose
    errors this raises); a style region the target lacks is an all-zero target channel."""
    check_colours(target, style, tolerance=tolerance)
    return style.palette


# --------------------------------------------------------------------------------------------
# small helpers


def _hex(colour: Sequence[int]) -> str:
    r, g, b = (int(v) for v in colour)
    return f"#{r:02x}{g:02x}{b:02x}"


def _closest(colour: Sequence[int], palette: Sequence[Sequence[int]], tolerance: int) -> int | None:
    """Index of the palette colour nearest ``colour`` (max per-channel difference, first on
    ties) if within ``tolerance``, else None."""
    best, best_d = None, tolerance + 1
    for j, other in enumerate(palette):
        d = max(abs(int(a) - int(b)) for a, b in zip(colour, other))
        if d < best_d:
            best, best_d = j, d
    return best


def _check_tolerance(tolerance: Any) -> int:
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, np.integer)) or not 0 <= tolerance <= 255:
        raise UsageError(f"tolerance must be a whole number of levels from 0 to 255, got {tolerance!r}", params="tolerance")
    return int(tolerance)


def _check_palette(palette: Any, what: str) -> tuple[Colour, ...]:
    try:
        out = tuple((int(c[0]), int(c[1]), int(c[2])) for c in palette)
        ok = all(len(c) == 3 and all(float(v) == int(v) and 0 <= int(v) <= 255 for v in c) for c in palette)
    except (TypeError, ValueError, IndexError):
        ok, out = False, ()
    if not ok or not out:
        raise UsageError(f"{what} must be a non-empty list of (r, g, b) colours with levels 0..255, got {palette!r}")
    return out
