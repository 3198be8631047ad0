"""Writing image files: ``save_image`` picks the format from the extension, writes atomically
(nothing half-written), re-attaches the alpha channel where the format has one, embeds metadata
as JSON, and writes 16 bits per channel to PNG and TIFF (with small encoders of its own: Pillow
has no 48-bit RGB mode)."""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import zlib
from pathlib import Path
from typing import IO, Any, Callable, Mapping

import numpy as np
import torch

from ..atomic import atomic_path
from ..errors import OutputError, UsageError
from ._common import _EXIF_IMAGE_DESCRIPTION, _EXIF_MAX_BYTES, _EXIF_PREFIX, _METADATA_KEY, _WRITE_FORMATS, SUPPORTED_WRITE_EXTENSIONS, PathLike, _reason
from .convert import as_batch, tensor_to_numpy

__all__ = ["save_image"]


# --------------------------------------------------------------------------------------------
# writing


def _metadata_json(metadata: Mapping[str, Any], disp: str) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, os.PathLike):
            return os.fspath(o)
        if isinstance(o, (set, frozenset, tuple)):
            return list(o)
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, torch.Tensor) and o.numel() <= 64:
            return o.tolist()
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return dataclasses.asdict(o)
        return str(o)

    if not isinstance(metadata, Mapping):
        raise UsageError(f"{disp}: metadata must be a mapping (dict), got {type(metadata).__name__}")
    try:
        return json.dumps(dict(metadata), ensure_ascii=True, allow_nan=True, default=default, sort_keys=False)
    except (TypeError, ValueError) as e:
        raise UsageError(f"{disp}: metadata cannot be stored as JSON ({_reason(e)})") from None


def _prepare_alpha(alpha: Any, size: tuple[int, int], disp: str) -> np.ndarray:
    if not isinstance(alpha, torch.Tensor):
        raise UsageError(f"{disp}: alpha must be a tensor 1x1xHxW, got {type(alpha).__name__}")
    a = alpha.detach()
    while a.dim() < 4:
        a = a.unsqueeze(0)
    if a.dim() != 4 or a.shape[0] != 1 or a.shape[1] != 1:
        raise UsageError(f"{disp}: alpha must be 1x1xHxW (or HxW), got shape {tuple(alpha.shape)}")
    if not a.is_floating_point():
        raise UsageError(f"{disp}: alpha must be a float tensor in [0, 1], got {alpha.dtype}")
    a = a.to("cpu", torch.float32)
    if tuple(a.shape[-2:]) != size:
        from .resize import resize_mask

        a = resize_mask(a, size)
    a = torch.nan_to_num(a, nan=1.0).clamp(0, 1)
    return a[0, 0].numpy()


def _quantise(x: np.ndarray, bits: int) -> np.ndarray:
    if bits == 8:
        return np.rint(x * 255.0).astype(np.uint8)
    return np.rint(x.astype(np.float64) * 65535.0).astype(np.uint16)


def save_image(
    path: PathLike,
    image: torch.Tensor,
    *,
    alpha: torch.Tensor | None = None,
    metadata: Mapping[str, Any] | None = None,
    bit_depth: int = 8,
    quality: int = 95,
) -> Path:
    """Write ``image`` (1x3xHxW or 3xHxW in [0, 1], clamped) to ``path``; format from the extension.

    Written atomically: on any failure neither the file nor a temporary file is left. ``alpha``
    (resized bilinearly if needed) is re-attached for PNG, WebP and TIFF and dropped for JPEG and
    BMP. ``metadata`` is stored as JSON (PNG: tEXt chunk "impasto"; JPEG/WebP/TIFF: EXIF
    ImageDescription "impasto:{...}"; BMP: not stored). ``bit_depth`` 16 is for PNG and TIFF.
    ``quality`` (1-100) is for JPEG and WebP (WebP at 100 is lossless). Returns the path.
    """
    p = Path(path)
    disp = str(path)
    ext = p.suffix.lower()
    if ext not in _WRITE_FORMATS:
        what = f"unsupported output format '{p.suffix}'" if p.suffix else "no file extension to choose the format from"
        raise OutputError(f"{disp}: {what}; use one of {', '.join(SUPPORTED_WRITE_EXTENSIONS)}")
    fmt = _WRITE_FORMATS[ext]
    if bit_depth not in (8, 16) or isinstance(bit_depth, bool):
        raise UsageError(f"{disp}: bit_depth must be 8 or 16, got {bit_depth!r}")
    if bit_depth == 16 and fmt not in ("PNG", "TIFF"):
        raise UsageError(f"{disp}: 16-bit output needs .png or .tif/.tiff; {fmt} stores 8 bits per channel")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise UsageError(f"{disp}: quality must be a whole number from 1 to 100, got {quality!r}")
    if isinstance(image, torch.Tensor) and image.dim() == 3:
        image = image.unsqueeze(0)
    if isinstance(image, torch.Tensor) and image.dim() == 4 and image.shape[0] != 1:
        raise UsageError(f"{disp}: can save one image at a time, got a batch of {image.shape[0]} (shape {tuple(image.shape)})")
    image = as_batch(image, f"{disp}: image")
    if not bool(torch.isfinite(image).all()):
        raise UsageError(f"{disp}: the image contains NaN or infinite values; not writing it")
    h, w = int(image.shape[-2]), int(image.shape[-1])
    rgb = tensor_to_numpy(image, np.float32)  # clamped HxWx3
    a = _prepare_alpha(alpha, (h, w), disp) if alpha is not None else None
    if fmt in ("JPEG", "BMP"):
        a = None  # these formats have no alpha channel
    text = _metadata_json(metadata, disp) if metadata is not None else None

    writer: Callable[[IO[bytes]], None]
    if bit_depth == 16:
        px = _quantise(rgb if a is None else np.concatenate([rgb, a[:, :, None]], axis=2), 16)
        if fmt == "PNG":
            writer = lambda f: _write_png16(f, px, text)  # noqa: E731
        else:
            writer = lambda f: _write_tiff16(f, px, text)  # noqa: E731
    else:
        writer = lambda f: _write_pil(f, fmt, _quantise(rgb, 8), None if a is None else _quantise(a, 8), text, quality)  # noqa: E731

    existing_mode = _existing_mode(p)
    try:
        with atomic_path(p) as tmp:
            with open(tmp, "wb") as f:
                writer(f)
                f.flush()
                os.fsync(f.fileno())
            _set_permissions(tmp, existing_mode)
    except OutputError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise OutputError(f"{disp}: cannot write {fmt} ({_reason(e)})") from None
    return p


def _existing_mode(p: Path) -> int | None:
    try:
        return p.stat().st_mode & 0o777
    except OSError:
        return None


def _umask() -> int:
    """The process umask, read without changing it (Linux); 0o022 where it cannot be read."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _set_permissions(tmp: Path, existing: int | None) -> None:
    # mkstemp creates 0600 files; give the output the permissions a normal write would.
    try:
        os.chmod(tmp, existing if existing is not None else 0o666 & ~_umask())
    except OSError:
        pass


def _exif_with_description(text: str | None) -> bytes | None:
    if text is None:
        return None
    desc = _EXIF_PREFIX + text
    if len(desc) > _EXIF_MAX_BYTES:
        return None  # too big for an EXIF block; the caller's JSON sidecar has it
    from PIL import Image

    exif = Image.Exif()
    exif[_EXIF_IMAGE_DESCRIPTION] = desc
    return exif.tobytes()


def _write_pil(f: IO[bytes], fmt: str, rgb: np.ndarray, alpha: np.ndarray | None, text: str | None, quality: int) -> None:
    from PIL import Image, PngImagePlugin, features

    if alpha is not None:
        im = Image.fromarray(np.concatenate([rgb, alpha[:, :, None]], axis=2), "RGBA")
    else:
        im = Image.fromarray(rgb, "RGB")
    kwargs: dict[str, Any] = {}
    if fmt == "PNG":
        if text is not None:
            info = PngImagePlugin.PngInfo()
            info.add_text(_METADATA_KEY, text)
            kwargs["pnginfo"] = info
    elif fmt == "JPEG":
        kwargs.update(quality=quality, subsampling=0 if quality >= 90 else 2, optimize=True)
        exif = _exif_with_description(text)
        if exif is not None:
            kwargs["exif"] = exif
    elif fmt == "WEBP":
        kwargs.update(quality=quality, lossless=quality >= 100, method=4)
        exif = _exif_with_description(text)
        if exif is not None:
            kwargs["exif"] = exif
    elif fmt == "TIFF":
        if features.check("libtiff"):
            kwargs["compression"] = "tiff_adobe_deflate"
        if text is not None:
            kwargs["tiffinfo"] = {_EXIF_IMAGE_DESCRIPTION: _EXIF_PREFIX + text}
    im.save(f, format=fmt, **kwargs)


# -- 16-bit PNG ------------------------------------------------------------------------------


_PNG_BLOCK_BYTES = 4 << 20  # scanline bytes filtered at a time
_PNG_IDAT_BYTES = 1 << 20  # compressed bytes per IDAT chunk


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_filter_rows(raw: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    """Filter scanlines ``raw`` (rows x bytes; ``prev`` is the row above the first) with the PNG
    filter (types 0-4) that gives each row the smallest sum of |bytes| read as signed: the
    usual heuristic. Returns rows prefixed with their filter type byte."""
    h = raw.shape[0]
    r = raw.astype(np.int16)
    up = np.empty_like(r)
    up[0] = prev
    up[1:] = r[:-1]
    left = np.zeros_like(r)
    left[:, bpp:] = r[:, :-bpp]
    upleft = np.zeros_like(r)
    upleft[:, bpp:] = up[:, :-bpp]
    p = left + up - upleft
    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - upleft)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
    candidates = np.stack([r, r - left, r - up, r - ((left + up) >> 1), r - paeth]).astype(np.uint8)  # mod 256
    cost = np.abs(candidates.view(np.int8).astype(np.int32)).sum(axis=2)  # 5 x rows
    best = cost.argmin(axis=0)
    rows = candidates[best, np.arange(h)]
    return np.concatenate([best.astype(np.uint8)[:, None], rows], axis=1)


def _write_png16(f: IO[bytes], px: np.ndarray, text: str | None) -> None:
    """Write an HxWx3 (RGB) or HxWx4 (RGBA) uint16 array as a 16-bit PNG (non-interlaced)."""
    h, w, c = px.shape
    color_type = {3: 2, 4: 6}[c]
    stride = w * c * 2
    f.write(b"\x89PNG\r\n\x1a\n")
    f.write(_png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)))
    if text is not None:
        f.write(_png_chunk(b"tEXt", _METADATA_KEY.encode("latin-1") + b"\0" + text.encode("latin-1")))
    comp = zlib.compressobj(6)
    rows_per_block = max(1, _PNG_BLOCK_BYTES // stride)  # bounded memory for big images
    idat = _PNG_IDAT_BYTES
    prev = np.zeros(stride, dtype=np.uint8)
    pending = bytearray()
    for y in range(0, h, rows_per_block):
        raw = np.ascontiguousarray(px[y : y + rows_per_block].astype(">u2")).view(np.uint8).reshape(-1, stride)
        pending += comp.compress(_png_filter_rows(raw, prev, c * 2).tobytes())
        prev = raw[-1]
        while len(pending) >= idat:
            f.write(_png_chunk(b"IDAT", bytes(pending[:idat])))
            del pending[:idat]
    pending += comp.flush()
    for i in range(0, len(pending), idat):
        f.write(_png_chunk(b"IDAT", bytes(pending[i : i + idat])))
    f.write(_png_chunk(b"IEND", b""))


# -- 16-bit TIFF -----------------------------------------------------------------------------

_T_ASCII, _T_SHORT, _T_LONG, _T_RATIONAL = 2, 3, 4, 5


def _write_tiff16(f: IO[bytes], px: np.ndarray, text: str | None) -> None:
    """Write an HxWx3 / HxWx4 uint16 array as a baseline little-endian TIFF, Adobe-Deflate compressed."""
    h, w, c = px.shape
    rows_per_strip = max(1, min(h, (1 << 20) // max(1, w * c * 2)))
    strips = [zlib.compress(np.ascontiguousarray(px[y : y + rows_per_strip].astype("<u2")).tobytes(), 6) for y in range(0, h, rows_per_strip)]
    tags: list[tuple[int, int, int, bytes]] = []

    def add(tag: int, typ: int, values: Any) -> None:
        if typ == _T_ASCII:
            payload = values.encode("ascii") + b"\0"
            count = len(payload)
        elif typ == _T_RATIONAL:
            payload = b"".join(struct.pack("<II", n, d) for n, d in values)
            count = len(values)
        else:
            fmt = "H" if typ == _T_SHORT else "I"
            payload = struct.pack("<" + fmt * len(values), *values)
            count = len(values)
        tags.append((tag, typ, count, payload))

    add(256, _T_LONG, [w])  # ImageWidth
    add(257, _T_LONG, [h])  # ImageLength
    add(258, _T_SHORT, [16] * c)  # BitsPerSample
    add(259, _T_SHORT, [8])  # Compression: Adobe Deflate
    add(262, _T_SHORT, [2])  # PhotometricInterpretation: RGB
    if text is not None:
        add(270, _T_ASCII, _EXIF_PREFIX + text)  # ImageDescription
    add(273, _T_LONG, [0] * len(strips))  # StripOffsets (patched below)
    add(277, _T_SHORT, [c])  # SamplesPerPixel
    add(278, _T_LONG, [rows_per_strip])  # RowsPerStrip
    add(279, _T_LONG, [len(s) for s in strips])  # StripByteCounts
    add(282, _T_RATIONAL, [(72, 1)])  # XResolution
    add(283, _T_RATIONAL, [(72, 1)])  # YResolution
    add(284, _T_SHORT, [1])  # PlanarConfiguration: chunky
    add(296, _T_SHORT, [2])  # ResolutionUnit: inch
    add(305, _T_ASCII, "impasto")  # Software
    if c == 4:
        add(338, _T_SHORT, [2])  # ExtraSamples: unassociated alpha
    add(339, _T_SHORT, [1] * c)  # SampleFormat: unsigned integer
    tags.sort(key=lambda t: t[0])

    ifd_offset = 8
    n = len(tags)
    extra_offset = ifd_offset + 2 + 12 * n + 4
    extra = bytearray()
    entries = bytearray()
    positions: dict[int, int] = {}
    for tag, typ, count, payload in tags:
        if len(payload) <= 4:
            entries += struct.pack("<HHI", tag, typ, count) + payload.ljust(4, b"\0")
            positions[tag] = -1
        else:
            if len(extra) % 2:
                extra += b"\0"
            positions[tag] = extra_offset + len(extra)
            entries += struct.pack("<HHII", tag, typ, count, positions[tag])
            extra += payload
    data_offset = extra_offset + len(extra)
    if data_offset % 2:
        extra += b"\0"
        data_offset += 1
    offsets, pos = [], data_offset
    for s in strips:
        offsets.append(pos)
        pos += len(s)
    if pos >= 2**32:
        raise OutputError("16-bit TIFF larger than 4 GiB; use .png")
    packed = struct.pack("<" + "I" * len(offsets), *offsets)
    index = [t[0] for t in tags].index(273)
    if positions[273] == -1:
        entries[index * 12 + 8 : index * 12 + 12] = packed.ljust(4, b"\0")
    else:
        start = positions[273] - extra_offset
        extra[start : start + len(packed)] = packed
    f.write(b"II*\0" + struct.pack("<I", ifd_offset) + struct.pack("<H", n) + bytes(entries) + b"\0\0\0\0" + bytes(extra))
    for s in strips:
        f.write(s)


