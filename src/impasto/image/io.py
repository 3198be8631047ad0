"""Reading image files (writing: ``image.save``, re-exported here).

``load_image`` turns any supported file into an image tensor (1x3xHxW float32 in [0, 1]) plus its
alpha channel, with every conversion it made listed in plain words in ``info["notes"]``.
Hostile input (missing, empty, not an image, SVG, truncated, decompression bombs) raises a typed
error whose one-line message names the file and the problem.

``save_image`` picks the format from the extension, writes atomically (nothing half-written),
re-attaches the alpha channel where the format has one, embeds metadata as JSON, and writes
16 bits per channel to PNG and TIFF (with small encoders of its own: Pillow has no 48-bit RGB mode).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import struct
import sys
import warnings
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from ..errors import ImageError, ImageTooLargeError, UnsupportedFormatError, UsageError
from ._common import _EXIF_IMAGE_DESCRIPTION, _EXIF_PREFIX, _METADATA_KEY, DEFAULT_MAX_PIXELS, SUPPORTED_WRITE_EXTENSIONS, PathLike, _reason
from .convert import numpy_to_tensor
from .save import save_image

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_READ",
    "SUPPORTED_WRITE_EXTENSIONS",
    "LoadedImage",
    "load_image",
    "save_image",
    "read_metadata",
    "image_from_array",
]

SUPPORTED_READ: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF")

# Pillow formats that are one of the above under another name.
_FORMAT_ALIASES = {"MPO": "JPEG", "DIB": "BMP"}
_READ_NAMES = "JPEG, PNG, WebP, TIFF, BMP, GIF"
_EXIF_ORIENTATION = 0x0112
# Errors Pillow raises on broken files (zlib.error for corrupt PNG data, struct.error for short headers).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError, struct.error, zlib.error)



@dataclasses.dataclass
class LoadedImage:
    """An image read from a file: the RGB tensor, its alpha (if any) and what was done to it."""

    image: torch.Tensor  # 1x3xHxW float32 in [0, 1]; 16-bit sources keep 16-bit precision
    alpha: torch.Tensor | None  # 1x1xHxW float32 in [0, 1], or None
    path: Path | None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        """(h, w) of the image tensor (after EXIF orientation)."""
        return int(self.image.shape[-2]), int(self.image.shape[-1])

    @property
    def notes(self) -> list[str]:
        """The conversions made while loading, in plain words."""
        return list(self.info.get("notes", []))


# --------------------------------------------------------------------------------------------
# reading


def _is_svg(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf").lstrip().lower()
    if text.startswith(b"<svg"):
        return True
    if text.startswith(b"<?xml") or text.startswith(b"<!doctype svg") or text.startswith(b"<!--"):
        return b"<svg" in text
    return False


def _svg_error(name: str) -> UnsupportedFormatError:
    return UnsupportedFormatError(f"{name}: SVG (vector) images are not supported; use one of {_READ_NAMES}")


def _read_source(source: Any, name: str | None) -> tuple[str, Path | None, IO[bytes]]:
    """Check the file exists, is a file and is not empty; return (display name, path, open file)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        disp = name or "<bytes>"
        if len(source) == 0:
            raise ImageError(f"{disp}: empty file (0 bytes)")
        return disp, None, io.BytesIO(bytes(source))
    if hasattr(source, "read"):
        disp = name or str(getattr(source, "name", "<stream>"))
        data = source.read()
        if not isinstance(data, bytes):
            raise UsageError(f"{disp}: open the file in binary mode ('rb')")
        if not data:
            raise ImageError(f"{disp}: empty file (0 bytes)")
        return disp, None, io.BytesIO(data)
    if not isinstance(source, (str, os.PathLike)):
        raise UsageError(f"load_image: expected a file path, bytes or a binary file, got {type(source).__name__}")
    path = Path(source)
    disp = name or str(source)
    if str(source) == "":
        raise ImageError("(empty path): no such file")
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageError(f"{disp}: no such file") from None
    except NotADirectoryError:
        raise ImageError(f"{disp}: no such file (a parent is not a folder)") from None
    except PermissionError:
        raise ImageError(f"{disp}: cannot read (permission denied)") from None
    except OSError as e:
        raise ImageError(f"{disp}: cannot read ({e.strerror or e})") from None
    if path.is_dir():
        raise ImageError(f"{disp}: is a directory, not an image")
    if not path.is_file():
        raise ImageError(f"{disp}: not a regular file")
    if st.st_size == 0:
        raise ImageError(f"{disp}: empty file (0 bytes)")
    try:
        fp = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except PermissionError:
        raise ImageError(f"{disp}: cannot read (permission denied)") from None
    except OSError as e:
        raise ImageError(f"{disp}: cannot read ({e.strerror or e})") from None
    return disp, path, fp


def _open_unchecked(fp: IO[bytes], filename: str) -> Any:
    """Identify the file like ``Image.open`` does, without Pillow's own pixel-count check.

    Only used when Pillow refused a file as a decompression bomb but the caller's limit allows
    it; our own limit has been checked by then. Returns None if no plugin accepts the file.
    """
    from PIL import Image

    Image.init()
    fp.seek(0)
    prefix = fp.read(16)
    for fmt in list(Image.ID):
        factory, accept = Image.OPEN[fmt]
        ok = accept(prefix) if accept else True
        if not ok or isinstance(ok, str):
            continue
        fp.seek(0)
        try:
            return factory(fp, filename)
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue
    return None


def _probe(fp: IO[bytes], disp: str) -> Any:
    """Open (header only) with Pillow; never lets Pillow's DecompressionBomb error/warning escape."""
    from PIL import Image, UnidentifiedImageError

    fp.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(fp)
    except UnidentifiedImageError:
        raise ImageError(f"{disp}: not an image (cannot identify the format)") from None
    except Image.DecompressionBombError:
        # Bigger than twice Pillow's default limit; read the header ourselves to say how big.
        try:
            im = _open_unchecked(fp, disp)
        except _DECODE_ERRORS as e:
            raise ImageError(f"{disp}: truncated or corrupt image ({_reason(e)})") from None
        if im is None:
            raise ImageTooLargeError(f"{disp}: image has more pixels than Pillow will open") from None
        return im
    except _DECODE_ERRORS as e:
        raise ImageError(f"{disp}: truncated or corrupt image ({_reason(e)})") from None


def _tile_rawmode(im: Any) -> str | None:
    tiles = getattr(im, "tile", None) or []
    if not tiles:
        return None
    args = tiles[0][3] if len(tiles[0]) > 3 else None
    if isinstance(args, tuple):
        args = args[0] if args else None
    return args if isinstance(args, str) else None


_SWAP_ENDIAN = {"B": "L", "L": "B", "N": "B" if sys.byteorder == "little" else "L"}


def _replace_rawmode(im: Any, rawmode: str) -> None:
    new = []
    for t in im.tile:
        args = t[3]
        if isinstance(args, tuple):
            args = (rawmode,) + tuple(args[1:])
        else:
            args = rawmode
        new.append(t._replace(args=args) if hasattr(t, "_replace") else (t[0], t[1], t[2], args))
    im.tile = new


def _wide_rawmode(rawmode: str | None, mode: str) -> tuple[str, str] | None:
    """For 16-bit-per-channel colour sources Pillow decodes to 8 bits. Return (kind, second rawmode).

    kind "pair": decoding again with the other byte order yields the low bytes (the first decode
    gave the high bytes). kind "bytes": a rawmode of the same width that exposes every byte.
    """
    if rawmode is None:
        return None
    if mode == "RGB" and rawmode in ("RGB;16B", "RGB;16L", "RGB;16N"):
        return "pair", rawmode[:-1] + _SWAP_ENDIAN[rawmode[-1]]
    if mode == "RGBA" and rawmode in ("RGBA;16B", "RGBA;16L", "RGBA;16N"):
        return "pair", rawmode[:-1] + _SWAP_ENDIAN[rawmode[-1]]
    if mode == "RGBA" and rawmode == "LA;16B":
        return "bytes", "RGBA"
    return None


def _load_pixels(im: Any, disp: str) -> list[str]:
    """Decode the current frame; return Pillow's warnings as notes. Half a picture is an error."""
    from PIL import Image

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            im.load()
        except Image.DecompressionBombError as e:
            raise ImageTooLargeError(f"{disp}: image is {im.size[0]}x{im.size[1]}; Pillow refuses to decode it ({_reason(e)})") from None
        except MemoryError:
            raise ImageTooLargeError(f"{disp}: not enough memory to decode a {im.size[0]}x{im.size[1]} image") from None
        except _DECODE_ERRORS as e:
            raise ImageError(f"{disp}: truncated or corrupt image ({_reason(e)})") from None
    return [f"Pillow warned: {_reason(w.message)}" for w in caught if not issubclass(w.category, Image.DecompressionBombWarning)]  # type: ignore[arg-type]


def _read_wide(fp: IO[bytes], disp: str, hi: np.ndarray, kind: str, rawmode: str) -> np.ndarray | None:
    """Second decode of a 16-bit colour source; returns uint16 HxWxC or None if Pillow cannot."""
    try:
        im2 = _probe(fp, disp)
        _replace_rawmode(im2, rawmode)
        _load_pixels(im2, disp)
        second = np.asarray(im2)
    except (ImageError, *_DECODE_ERRORS):
        return None
    if kind == "pair":
        if second.shape != hi.shape:
            return None
        return (hi.astype(np.uint16) << 8) | second.astype(np.uint16)
    # "bytes": LA 16-bit read as RGBA bytes = L_hi, L_lo, A_hi, A_lo
    if second.ndim != 3 or second.shape[2] != 4:
        return None
    b = second.astype(np.uint16)
    lum = (b[..., 0] << 8) | b[..., 1]
    alpha = (b[..., 2] << 8) | b[..., 3]
    return np.stack([lum, lum, lum, alpha], axis=2)


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (2..8) to an HxW[xC] array, as ImageOps.exif_transpose does."""
    swap = (1, 0) + tuple(range(2, arr.ndim))
    if orientation == 2:
        out = arr[:, ::-1]
    elif orientation == 3:
        out = arr[::-1, ::-1]
    elif orientation == 4:
        out = arr[::-1]
    elif orientation == 5:
        out = arr.transpose(swap)
    elif orientation == 6:
        out = np.rot90(arr, k=-1)
    elif orientation == 7:
        out = arr.transpose(swap)[::-1, ::-1]
    elif orientation == 8:
        out = np.rot90(arr, k=1)
    else:
        out = arr
    return np.ascontiguousarray(out)


_ORIENTATION_WORDS = {
    2: "mirrored left-right",
    3: "rotated 180°",
    4: "mirrored top-bottom",
    5: "transposed",
    6: "rotated 90° clockwise",
    7: "transversed",
    8: "rotated 90° counter-clockwise",
}


def _icc_probe(mode: str) -> Any:
    """A small image of ``mode`` covering its range: an RGB cube or a grey ramp."""
    from PIL import Image

    if mode == "L":
        return Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16), "L")
    levels = np.linspace(0, 255, 6).round().astype(np.uint8)
    cube = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(12, 18, 3)
    return Image.fromarray(np.ascontiguousarray(cube), "RGB")


def _icc_to_srgb(im: Any, icc: bytes, notes: list[str]) -> Any:
    """Convert a PIL image (RGB, CMYK or L) with an embedded ICC profile to sRGB RGB.

    An RGB or grey profile that maps every probe colour to within one level of itself is
    already (practically) sRGB and is left alone, so sRGB-tagged files are not re-rounded.
    """
    try:
        from PIL import ImageCms
    except ImportError:  # Pillow built without littlecms
        notes.append("ignored the embedded ICC profile (Pillow has no colour management here); colours may be off")
        return im
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        desc = (ImageCms.getProfileDescription(src) or "").strip() or "unnamed"
        dst = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
        transform = ImageCms.buildTransform(src, dst, im.mode, "RGB")
        if im.mode in ("RGB", "L"):
            probe = _icc_probe(im.mode)
            moved = np.asarray(ImageCms.applyTransform(probe, transform)).astype(np.int16)
            if np.abs(moved - np.asarray(probe.convert("RGB")).astype(np.int16)).max() <= 1:
                return im
        out = ImageCms.applyTransform(im, transform)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as e:
        notes.append(f"could not apply the embedded ICC profile ({_reason(e)}); colours may be off")
        return im
    notes.append(f"converted embedded ICC profile '{desc}' to sRGB")
    return out


def _bit_depth(mode: str, rawmode: str | None) -> int:
    if mode == "1":
        return 1
    if mode.startswith("I;16") or (rawmode or "").endswith((";16B", ";16L", ";16N")):
        return 16
    if mode in ("I", "F"):
        return 32
    return 8


def _to_arrays(im: Any, notes: list[str], wide: np.ndarray | None, icc: bytes | None, disp: str) -> tuple[np.ndarray, np.ndarray | None]:
    """PIL image (loaded) -> (HxWx3 float32 in [0, 1], HxW float32 alpha or None)."""
    mode = im.mode
    if wide is not None:  # 16-bit colour, decoded in two passes
        x = wide.astype(np.float32) / 65535.0
        if icc is not None:
            notes.append("kept 16-bit precision; the embedded ICC profile was not applied (Pillow converts colour profiles at 8 bits only)")
        if x.shape[2] == 4:
            return x[..., :3], x[..., 3]
        return x, None
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        g = np.asarray(im).astype(np.float32) / 65535.0
        notes.append("converted 16-bit greyscale to RGB (16-bit precision kept)")
        if icc is not None:
            notes.append("the embedded ICC profile was not applied to 16-bit greyscale")
        return np.repeat(g[:, :, None], 3, axis=2), None
    if mode == "I":
        a = np.asarray(im).astype(np.float64)
        lo, hi = float(a.min()), float(a.max())
        if lo >= 0 and hi <= 65535:
            g = a / 65535.0
            notes.append("converted 16-bit greyscale to RGB (16-bit precision kept)")
        else:
            g = np.clip(a, 0, None) / (2**31 - 1)
            notes.append("converted 32-bit integer greyscale to RGB (scaled by 2^31-1)")
        return np.repeat(g.astype(np.float32)[:, :, None], 3, axis=2), None
    if mode == "F":
        a = np.asarray(im).astype(np.float32)
        finite = a[np.isfinite(a)]
        hi = float(finite.max()) if finite.size else 1.0
        scale = 1.0 if hi <= 1.0 else 255.0 if hi <= 255.0 else 65535.0 if hi <= 65535.0 else hi
        g = np.clip(np.nan_to_num(a / scale, nan=0.0, posinf=1.0, neginf=0.0), 0, 1)
        notes.append(f"converted floating-point greyscale to RGB (divided by {scale:g}, clamped to [0, 1])")
        return np.repeat(g[:, :, None], 3, axis=2), None

    alpha: np.ndarray | None = None
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info or (im.palette is not None and im.palette.mode == "RGBA")
        im = im.convert("RGBA" if has_alpha else "RGB")
        notes.append("converted palette image to RGB")
    elif mode == "1":
        im = im.convert("RGB")
        notes.append("converted black-and-white (1-bit) image to RGB")
    elif mode == "L" and "transparency" in im.info:
        im = im.convert("LA")
    elif mode == "RGB" and "transparency" in im.info:
        im = im.convert("RGBA")
    elif mode == "RGBa":
        im = im.convert("RGBA")
    elif mode == "La":
        im = im.convert("LA")

    if im.mode in ("RGBA", "LA"):
        a = np.asarray(im.getchannel("A"))
        alpha = a.astype(np.float32) / 255.0
        im = im.convert("RGB") if im.mode == "RGBA" else im.getchannel("L")
        notes.append("kept the alpha channel aside (re-attached when saving to PNG, WebP or TIFF)")

    if im.mode == "CMYK":
        if icc is not None:
            im = _icc_to_srgb(im, icc, notes)
            icc = None  # used (or found unusable) for the CMYK conversion
        if im.mode == "CMYK":
            im = im.convert("RGB")
        notes.append("converted CMYK to RGB")
    elif im.mode == "L":
        if icc is not None:
            im = _icc_to_srgb(im, icc, notes)
            icc = None
        if im.mode == "L":
            notes.append("converted greyscale to RGB")
            im = im.convert("RGB")
    elif im.mode != "RGB":
        try:
            im = im.convert("RGB")
        except ValueError as e:
            raise UnsupportedFormatError(f"{disp}: colour mode {mode} is not supported ({_reason(e)})") from None
        notes.append(f"converted {mode} to RGB")
    if icc is not None and im.mode == "RGB":
        im = _icc_to_srgb(im, icc, notes)
    rgb = np.asarray(im.convert("RGB") if im.mode != "RGB" else im).astype(np.float32)
    rgb /= 255.0
    return rgb, alpha


def load_image(
    path: PathLike | bytes | IO[bytes],
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    name: str | None = None,
) -> LoadedImage:
    """Read an image file into a 1x3xHxW float32 tensor in [0, 1] (alpha kept aside).

    ``path`` may also be bytes or a binary file object (then ``LoadedImage.path`` is None and
    ``name`` is used in messages). ``max_pixels`` (None: no limit) is checked from the header
    before decoding. Raises ImageError (and subclasses) with one-line messages naming the file.
    """
    if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1):
        raise UsageError(f"max_pixels must be a positive whole number or None, got {max_pixels!r}")
    disp, fpath, fp = _read_source(path, name)
    with fp:
        head = fp.read(512)
        fp.seek(0)
        if _is_svg(head) or (fpath is not None and fpath.suffix.lower() in (".svg", ".svgz") and not _looks_raster(head)):
            raise _svg_error(disp)
        im = _probe(fp, disp)
        try:
            return _decode(im, fp, disp, fpath, max_pixels)
        finally:
            im.close()


def _looks_raster(head: bytes) -> bool:
    return head.startswith((b"\x89PNG", b"\xff\xd8", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _decode(im: Any, fp: IO[bytes], disp: str, fpath: Path | None, max_pixels: int | None) -> LoadedImage:
    fmt = _FORMAT_ALIASES.get(im.format or "", im.format or "")
    if fmt not in SUPPORTED_READ:
        raise UnsupportedFormatError(f"{disp}: {im.format or 'this'} images are not supported; use one of {_READ_NAMES}")
    w, h = im.size
    if w < 1 or h < 1:
        raise ImageError(f"{disp}: truncated or corrupt image (it says it is {w}x{h})")
    if max_pixels is not None and w * h > max_pixels:
        raise ImageTooLargeError(
            f"{disp}: image is {w}x{h} ({w * h:,} pixels), more than the limit of {max_pixels:,}; raise the limit with max_pixels",
            params="max_pixels",
        )
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            n_frames = int(getattr(im, "n_frames", 1))
            if n_frames > 1:
                im.seek(0)
        except _DECODE_ERRORS as e:
            raise ImageError(f"{disp}: truncated or corrupt image ({_reason(e)})") from None
    notes += [f"Pillow warned: {_reason(w.message)}" for w in caught]  # type: ignore[arg-type]
    if n_frames > 1:
        what = {"GIF": "an animated GIF", "WEBP": "an animated WebP", "PNG": "an animated PNG", "TIFF": "a multi-page TIFF"}
        notes.append(f"used the first of {n_frames} frames of {what.get(im.format, 'a multi-image ' + str(im.format))}")
    # Before anything that may decode (PNG's getexif does): how the pixels are stored.
    mode = im.mode
    rawmode = _tile_rawmode(im)
    depth = _bit_depth(mode, rawmode)
    wide_plan = _wide_rawmode(rawmode, mode)
    icc = im.info.get("icc_profile") or None
    notes += _load_pixels(im, disp)  # decode first: a failed decode must never be retried
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
        except _DECODE_ERRORS:
            orientation = 1
            notes.append("ignored unreadable EXIF data")
    notes += [f"Pillow warned: {_reason(w.message)}" for w in caught]  # type: ignore[arg-type]

    wide = None
    if wide_plan is not None:
        wide = _read_wide(fp, disp, np.asarray(im), *wide_plan)
        if wide is None:
            notes.append("read only the high 8 bits of this 16-bit image (Pillow could not decode the rest)")
        elif wide_plan[0] == "bytes":
            notes.append("converted 16-bit greyscale to RGB (16-bit precision kept)")
    try:
        rgb, alpha = _to_arrays(im, notes, wide, icc, disp)
    except _DECODE_ERRORS as e:
        raise ImageError(f"{disp}: truncated or corrupt image ({_reason(e)})") from None
    if wide is not None and alpha is not None:
        notes.append("kept the alpha channel aside (re-attached when saving to PNG, WebP or TIFF)")
    if orientation in _ORIENTATION_WORDS:
        rgb = _orient(rgb, orientation)
        alpha = _orient(alpha, orientation) if alpha is not None else None
        notes.append(f"applied EXIF orientation ({_ORIENTATION_WORDS[orientation]})")

    image = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0).contiguous()
    alpha_t = torch.from_numpy(np.ascontiguousarray(alpha, dtype=np.float32))[None, None] if alpha is not None else None
    info: dict[str, Any] = {
        "format": fmt,
        "mode": mode,
        "size": (w, h),
        "bit_depth": depth,
        "frames": n_frames,
        "notes": notes,
    }
    return LoadedImage(image=image, alpha=alpha_t, path=fpath, info=info)


def image_from_array(arr: np.ndarray) -> torch.Tensor:
    """An HxWx3 / HxW uint8, uint16 or float array -> 1x3xHxW image (see ``convert.numpy_to_tensor``)."""
    return numpy_to_tensor(arr)


# --------------------------------------------------------------------------------------------
# metadata


def _parse_metadata(text: str, disp: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as e:
        raise ImageError(f"{disp}: the impasto metadata is not valid JSON ({_reason(e)})") from None
    if not isinstance(value, dict):
        raise ImageError(f"{disp}: the impasto metadata is not a JSON object")
    return value


def read_metadata(path: PathLike) -> dict[str, Any] | None:
    """The metadata ``save_image`` stored in ``path`` (PNG tEXt "impasto", else EXIF ImageDescription), or None."""
    disp, _, fp = _read_source(path, None)
    with fp:
        head = fp.read(512)
        fp.seek(0)
        if _is_svg(head):
            raise _svg_error(disp)
        im = _probe(fp, disp)
        try:
            if im.format == "PNG":
                text = im.info.get(_METADATA_KEY)
                if text is None:
                    try:
                        text = im.text.get(_METADATA_KEY)  # chunks after the image data
                    except _DECODE_ERRORS:
                        text = None
                return _parse_metadata(text, disp) if isinstance(text, str) else None
            try:
                desc = im.getexif().get(_EXIF_IMAGE_DESCRIPTION)
            except _DECODE_ERRORS:
                return None
            if isinstance(desc, bytes):
                desc = desc.decode("latin-1")
            if isinstance(desc, str):
                desc = desc.rstrip("\0")
                if desc.startswith(_EXIF_PREFIX):
                    return _parse_metadata(desc[len(_EXIF_PREFIX) :], disp)
            return None
        finally:
            im.close()
