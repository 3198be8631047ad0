"""load_image / save_image / read_metadata beyond the shared bad inputs: round trips, 16 bits,
metadata, alpha, EXIF orientation, ICC profiles, atomic writes and argument checking."""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, ImageOps, PngImagePlugin

import impasto.image.io as imio
import impasto.image.save as imsave
from impasto.errors import ImageError, ImageTooLargeError, OutputError, UnsupportedFormatError, UsageError
from impasto.image.io import LoadedImage, load_image, read_metadata, save_image


def _levels(h: int, w: int, seed: int = 0, levels: int = 255) -> torch.Tensor:
    """An image whose values are exactly k / levels (representable at that bit depth)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, levels + 1, (1, 3, h, w), generator=g).double().div(levels).float()


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------------------------
# reading


def test_missing_file(tmp_path: Path):
    path = tmp_path / "nope.png"
    with pytest.raises(ImageError) as e:
        load_image(path)
    assert str(e.value) == f"{path}: no such file"


def test_loads_from_bytes_and_file_objects(tmp_path: Path, smooth_image):
    path = save_image(tmp_path / "a.png", smooth_image())
    data = path.read_bytes()
    from_path = load_image(path)
    from_bytes = load_image(data, name="upload.png")
    with open(path, "rb") as f:
        from_file = load_image(f)
    assert from_bytes.path is None and from_file.path is None and from_path.path == path
    assert torch.equal(from_bytes.image, from_path.image) and torch.equal(from_file.image, from_path.image)
    with pytest.raises(ImageError, match=r"^upload\.png: empty file \(0 bytes\)$"):
        load_image(b"", name="upload.png")
    with pytest.raises(ImageError, match=r"^upload\.jpg: not an image"):
        load_image(b"hello", name="upload.jpg")


def test_formats_pillow_reads_but_impasto_does_not_are_refused(tmp_path: Path):
    path = tmp_path / "picture.ppm"
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path)
    with pytest.raises(UnsupportedFormatError) as e:
        load_image(path)
    assert str(e.value) == f"{path}: PPM images are not supported; use one of JPEG, PNG, WebP, TIFF, BMP, GIF"


def test_truncated_png_is_refused(tmp_path: Path, noise_image):
    good = save_image(tmp_path / "good.png", noise_image(40, 40))
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ImageError, match=rf"^{cut}: truncated or corrupt image \("):
        load_image(cut)


def test_corrupt_png_data_is_refused(tmp_path: Path, noise_image):
    good = save_image(tmp_path / "good.png", noise_image(40, 40))
    data = bytearray(good.read_bytes())
    start = data.index(b"IDAT") + 40
    data[start : start + 20] = bytes(20)  # damage the compressed pixels (the CRC no longer matches)
    bad = tmp_path / "bad.png"
    bad.write_bytes(bytes(data))
    with pytest.raises(ImageError, match=rf"^{bad}: truncated or corrupt image \("):
        load_image(bad)


def test_pillow_bomb_limit_never_leaks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Pillow's own limit (here lowered to 1000 pixels) neither raises nor warns: ours decides."""
    path = tmp_path / "big.png"
    Image.fromarray(np.full((100, 120, 3), 77, np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 12,000 px is a "bomb" for Pillow now
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        li = load_image(path, max_pixels=None)
        assert li.image.shape == (1, 3, 100, 120) and torch.allclose(li.image, torch.tensor(77 / 255))
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 8000)  # warning range for Pillow
        assert load_image(path, max_pixels=20_000).image.shape == (1, 3, 100, 120)
        with pytest.raises(ImageTooLargeError) as e:
            load_image(path, max_pixels=5000)
    assert str(e.value) == f"{path}: image is 120x100 (12,000 pixels), more than the limit of 5,000; raise the limit with max_pixels"
    assert e.value.with_flags().endswith("raise the limit with --max-pixels")


@pytest.mark.parametrize("bad_limit", [0, -5, 1.5, True])
def test_max_pixels_must_be_positive(tmp_path: Path, bad_limit):
    with pytest.raises(UsageError, match="max_pixels"):
        load_image(tmp_path / "x.png", max_pixels=bad_limit)


def _asymmetric_rgb(h: int = 6, w: int = 10) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 25, y * 40, (x * 7 + y * 3) % 256], axis=2).astype(np.uint8)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(tmp_path: Path, orientation: int):
    path = tmp_path / f"o{orientation}.png"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(_asymmetric_rgb()).save(path, exif=exif.tobytes())
    with Image.open(path) as im:
        ref = np.asarray(ImageOps.exif_transpose(im.convert("RGB")))
    li = load_image(path)
    got = np.rint(li.image[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    assert np.array_equal(got, ref)
    assert got.shape[:2] == ((10, 6) if orientation >= 5 else (6, 10))
    assert any(n.startswith("applied EXIF orientation") for n in li.info["notes"]) == (orientation != 1)


def test_exif_orientation_also_turns_the_alpha(tmp_path: Path):
    path = tmp_path / "rot.png"
    rgba = np.concatenate([_asymmetric_rgb(), np.arange(60, dtype=np.uint8).reshape(6, 10, 1) * 4], axis=2)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgba, "RGBA").save(path, exif=exif.tobytes())
    li = load_image(path)
    assert li.image.shape == (1, 3, 10, 6) and li.alpha is not None and li.alpha.shape == (1, 1, 10, 6)
    expected = np.rot90(rgba[..., 3], k=-1).astype(np.float32) / 255
    assert np.array_equal(li.alpha[0, 0].numpy(), expected)


def _swapped_primaries_profile() -> bytes:
    """An RGB ICC profile whose red and green primaries are swapped (and that is not called sRGB)."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    (count,) = struct.unpack(">I", data[128:132])
    entries = {}
    for i in range(count):
        sig, off, size = struct.unpack(">4sII", data[132 + 12 * i : 144 + 12 * i])
        entries[sig] = (i, off, size)
    (ri, roff, rsize), (gi, goff, gsize) = entries[b"rXYZ"], entries[b"gXYZ"]
    struct.pack_into(">4sII", data, 132 + 12 * ri, b"rXYZ", goff, gsize)
    struct.pack_into(">4sII", data, 132 + 12 * gi, b"gXYZ", roff, rsize)
    out = bytes(data).replace("sRGB".encode("utf-16-be"), "Test".encode("utf-16-be"))
    return out[:84] + bytes(16) + out[100:]  # clear the profile ID (an MD5 of the old contents)


def test_embedded_icc_profile_is_converted_to_srgb(tmp_path: Path):
    path = tmp_path / "swapped.png"
    Image.new("RGB", (4, 4), (255, 0, 0)).save(path, icc_profile=_swapped_primaries_profile())
    li = load_image(path)
    r, g, b = (float(li.image[0, c].mean()) for c in range(3))
    assert g > 0.8 and r < 0.2 and b < 0.2  # "red" in this profile is sRGB green
    assert any(n.startswith("converted embedded ICC profile") and n.endswith("to sRGB") for n in li.info["notes"])


def test_embedded_srgb_profile_is_left_alone(tmp_path: Path):
    path = tmp_path / "srgb.png"
    arr = _asymmetric_rgb()
    Image.fromarray(arr).save(path, icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    li = load_image(path)
    assert np.array_equal(np.rint(li.image[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8), arr)
    assert not any("ICC" in n for n in li.info["notes"])


def test_palette_with_transparency_gives_alpha(tmp_path: Path):
    path = tmp_path / "pal.png"
    im = Image.fromarray(np.array([[0, 1], [1, 2]], np.uint8), "P")
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    im.save(path, transparency=1)
    li = load_image(path)
    assert li.alpha is not None
    assert li.alpha[0, 0].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert li.image[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0] and li.image[0, :, 1, 1].tolist() == [0.0, 0.0, 1.0]
    assert "converted palette image to RGB" in li.info["notes"]


def test_la_image_gives_grey_rgb_and_alpha(tmp_path: Path):
    path = tmp_path / "la.png"
    la = np.stack([np.full((3, 5), 100, np.uint8), np.full((3, 5), 200, np.uint8)], axis=2)
    Image.fromarray(la, "LA").save(path)
    li = load_image(path)
    assert torch.allclose(li.image, torch.tensor(100 / 255)) and li.alpha is not None
    assert torch.allclose(li.alpha, torch.tensor(200 / 255))


def test_loaded_image_is_fresh_float32_memory(tmp_path: Path, smooth_image):
    li = load_image(save_image(tmp_path / "a.png", smooth_image()))
    assert isinstance(li, LoadedImage)
    assert li.image.dtype == torch.float32 and li.image.is_contiguous() and li.size == (24, 32)
    assert 0 <= float(li.image.min()) and float(li.image.max()) <= 1


# ---------------------------------------------------------------------------------------------
# writing and round trips


def test_png_8bit_round_trip_is_exact(tmp_path: Path):
    img = _levels(17, 23)
    li = load_image(save_image(tmp_path / "a.png", img))
    assert torch.equal(li.image, img)
    assert li.info["bit_depth"] == 8


@pytest.mark.parametrize("ext", [".bmp", ".tif", ".tiff"])
def test_lossless_8bit_formats_round_trip_exactly(tmp_path: Path, ext: str):
    img = _levels(9, 14, seed=3)
    assert torch.equal(load_image(save_image(tmp_path / f"a{ext}", img)).image, img)


def test_8bit_output_rounds_instead_of_truncating(tmp_path: Path):
    img = torch.full((1, 3, 2, 2), 100.6 / 255)
    with Image.open(save_image(tmp_path / "r.png", img)) as im:
        assert np.asarray(im).max() == 101


# JPEG is written 4:4:4 at quality >= 90; lossy WebP always halves the chroma resolution.
@pytest.mark.parametrize("ext,mean_err,max_err", [(".jpg", 0.01, 0.08), (".jpeg", 0.01, 0.08), (".webp", 0.02, 0.2)])
def test_lossy_formats_round_trip_closely(tmp_path: Path, smooth_image, ext: str, mean_err: float, max_err: float):
    img = smooth_image(48, 64)
    back = load_image(save_image(tmp_path / f"a{ext}", img, quality=95)).image
    assert back.shape == img.shape
    assert float((back - img).abs().mean()) < mean_err
    assert float((back - img).abs().max()) < max_err
    worse = load_image(save_image(tmp_path / f"low{ext}", img, quality=20)).image
    assert float((worse - img).abs().mean()) > float((back - img).abs().mean())  # quality is passed on


def test_webp_quality_100_is_lossless(tmp_path: Path):
    img = _levels(12, 12, seed=5)
    assert torch.equal(load_image(save_image(tmp_path / "a.webp", img, quality=100)).image, img)


def test_png_16bit_round_trip_within_one_level(tmp_path: Path, noise_image):
    img = noise_image(19, 27, seed=1)
    path = save_image(tmp_path / "deep.png", img, bit_depth=16)
    li = load_image(path)
    assert li.info["bit_depth"] == 16 and li.info["format"] == "PNG"
    assert float((li.image.double() - img.double()).abs().max()) <= 0.5 / 65535 + 1e-7
    # and really more than 8 bits: a 16-bit level that 8 bits cannot hold survives
    fine = torch.full((1, 3, 2, 2), 12345 / 65535)
    got = load_image(save_image(tmp_path / "fine.png", fine, bit_depth=16)).image
    assert torch.equal(torch.round(got.double() * 65535), torch.full((1, 3, 2, 2), 12345.0, dtype=torch.float64))


def _reference_png_decode(data: bytes) -> tuple[dict, np.ndarray]:
    """A slow, independent PNG reader (checks CRCs, undoes all five filters) for tiny images."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks.append((kind, body))
        pos += 12 + n
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    bpp = channels * depth // 8
    raw = zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT"))
    stride = w * bpp
    prev = [0] * stride
    rows = []
    for y in range(h):
        ftype, line = raw[y * (stride + 1)], list(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            else:
                assert ftype == 0, ftype
        rows.append(line)
        prev = line
    arr = np.array(rows, dtype=np.uint8).reshape(h, w, channels * depth // 8)
    pixels = arr.view(">u2").reshape(h, w, channels) if depth == 16 else arr
    texts = {k.decode(): v.decode("latin-1") for k, v in (b.split(b"\0", 1) for kind, b in chunks if kind == b"tEXt")}
    return {"size": (w, h), "depth": depth, "color_type": ctype, "interlace": interlace, "text": texts}, pixels


@pytest.mark.parametrize("with_alpha", [False, True])
def test_png_16bit_encoder_agrees_with_an_independent_decoder(tmp_path: Path, noise_image, with_alpha: bool):
    img = noise_image(7, 9, seed=2)
    alpha = noise_image(7, 9, seed=3, channels=1) if with_alpha else None
    path = save_image(tmp_path / "deep.png", img, alpha=alpha, bit_depth=16, metadata={"k": "v"})
    header, px = _reference_png_decode(path.read_bytes())
    assert header["depth"] == 16 and header["color_type"] == (6 if with_alpha else 2) and header["size"] == (9, 7)
    expected = torch.cat([img, alpha], 1) if alpha is not None else img
    want = np.rint(expected[0].permute(1, 2, 0).double().numpy() * 65535).astype(np.uint16)
    assert np.array_equal(px.astype(np.uint16), want)
    assert header["text"] == {"impasto": '{"k": "v"}'}


def test_png_16bit_encoder_in_many_blocks_and_chunks(tmp_path: Path, noise_image, monkeypatch):
    monkeypatch.setattr(imsave, "_PNG_BLOCK_BYTES", 100)  # 2 rows of 8 px at a time
    monkeypatch.setattr(imsave, "_PNG_IDAT_BYTES", 64)
    img = noise_image(11, 8, seed=9)
    path = save_image(tmp_path / "blocks.png", img, bit_depth=16)
    assert path.read_bytes().count(b"IDAT") > 3
    _, px = _reference_png_decode(path.read_bytes())
    assert np.array_equal(px.astype(np.uint16), np.rint(img[0].permute(1, 2, 0).double().numpy() * 65535).astype(np.uint16))
    assert float((load_image(path).image - img).abs().max()) <= 0.5 / 65535 + 1e-7


def _write_la16_png(path: Path, lum: np.ndarray, alpha: np.ndarray) -> None:
    h, w = lum.shape
    px = np.stack([lum, alpha], axis=2).astype(">u2").view(np.uint8).reshape(h, w * 4)
    raw = b"".join(b"\0" + row.tobytes() for row in px)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def test_16bit_grey_alpha_png_keeps_16_bits(tmp_path: Path):
    rng = np.random.default_rng(0)
    lum = rng.integers(0, 65536, (5, 6)).astype(np.uint16)
    alpha = rng.integers(0, 65536, (5, 6)).astype(np.uint16)
    path = tmp_path / "la16.png"
    _write_la16_png(path, lum, alpha)
    li = load_image(path)
    assert li.alpha is not None and li.info["bit_depth"] == 16
    assert np.array_equal(np.rint(li.image[0, 1].double().numpy() * 65535).astype(np.uint16), lum)
    assert np.array_equal(np.rint(li.alpha[0, 0].double().numpy() * 65535).astype(np.uint16), alpha)


@pytest.mark.parametrize("with_alpha", [False, True])
def test_tiff_16bit_round_trip_within_one_level(tmp_path: Path, noise_image, with_alpha: bool):
    img = noise_image(13, 21, seed=4)
    alpha = noise_image(13, 21, seed=5, channels=1) if with_alpha else None
    path = save_image(tmp_path / "deep.tiff", img, alpha=alpha, bit_depth=16, metadata={"run": 1})
    with Image.open(path) as im:
        assert im.format == "TIFF" and im.tag_v2[258] == ((16,) * (4 if with_alpha else 3))
    li = load_image(path)
    assert li.info["bit_depth"] == 16
    assert float((li.image.double() - img.double()).abs().max()) <= 0.5 / 65535 + 1e-7
    if with_alpha:
        assert li.alpha is not None and float((li.alpha.double() - alpha.double()).abs().max()) <= 0.5 / 65535 + 1e-7
    else:
        assert li.alpha is None
    assert read_metadata(path) == {"run": 1}


def test_16bit_tiff_spanning_several_strips(tmp_path: Path, noise_image):
    img = noise_image(200, 1000, seed=6)  # 1.2 MB of samples: more than one 1 MiB strip
    path = save_image(tmp_path / "big.tif", img, bit_depth=16)
    with Image.open(path) as im:
        assert len(im.tag_v2[273]) > 1
    assert float((load_image(path).image - img).abs().max()) <= 0.5 / 65535 + 1e-6


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".tif"])
def test_metadata_round_trip(tmp_path: Path, smooth_image, ext: str):
    meta = {"method": "gatys", "seed": 7, "losses": {"style": 1.5e-3}, "layers": ["relu1_1", "relu2_1"], "note": "naïve ünïcode"}
    path = save_image(tmp_path / f"m{ext}", smooth_image(), metadata=meta)
    assert read_metadata(path) == meta


def test_metadata_with_non_json_values_is_stored_readably(tmp_path: Path, smooth_image):
    meta = {"path": Path("/x/y.png"), "size": (3, 4), "n": np.int64(5), "t": torch.tensor([1.0, 2.0])}
    got = read_metadata(save_image(tmp_path / "m.png", smooth_image(), metadata=meta))
    assert got == {"path": "/x/y.png", "size": [3, 4], "n": 5, "t": [1.0, 2.0]}


def test_read_metadata_is_none_where_there_is_none(tmp_path: Path, smooth_image):
    assert read_metadata(save_image(tmp_path / "plain.png", smooth_image())) is None
    assert read_metadata(save_image(tmp_path / "m.bmp", smooth_image(), metadata={"a": 1})) is None  # BMP has no place for it
    camera = tmp_path / "camera.jpg"
    exif = Image.Exif()
    exif[0x010E] = "OLYMPUS DIGITAL CAMERA"
    Image.new("RGB", (4, 4)).save(camera, exif=exif.tobytes())
    assert read_metadata(camera) is None
    other = tmp_path / "other.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "something else")
    Image.new("RGB", (4, 4)).save(other, pnginfo=info)
    assert read_metadata(other) is None
    with pytest.raises(ImageError, match="no such file"):
        read_metadata(tmp_path / "missing.png")


def test_read_metadata_reports_broken_json(tmp_path: Path):
    path = tmp_path / "broken.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("impasto", "{not json")
    Image.new("RGB", (4, 4)).save(path, pnginfo=info)
    with pytest.raises(ImageError, match=rf"^{path}: the impasto metadata is not valid JSON"):
        read_metadata(path)


def test_alpha_is_reattached_for_png_webp_tiff_and_dropped_for_jpeg_bmp(tmp_path: Path, smooth_image):
    img = smooth_image(16, 16)
    alpha = torch.linspace(0, 1, 16).view(1, 1, 1, 16).expand(1, 1, 16, 16).contiguous()
    for ext in (".png", ".tif", ".webp"):
        quality = 100 if ext == ".webp" else 95
        li = load_image(save_image(tmp_path / f"a{ext}", img, alpha=alpha, quality=quality))
        assert li.alpha is not None, ext
        assert float((li.alpha - alpha).abs().max()) <= 0.5 / 255 + 1e-6, ext
    for ext in (".jpg", ".bmp"):
        li = load_image(save_image(tmp_path / f"a{ext}", img, alpha=alpha))
        assert li.alpha is None, ext


def test_alpha_of_another_size_is_resized(tmp_path: Path, smooth_image):
    img = smooth_image(20, 30)
    alpha = torch.full((1, 1, 10, 15), 0.5)
    li = load_image(save_image(tmp_path / "a.png", img, alpha=alpha))
    assert li.alpha is not None and li.alpha.shape == (1, 1, 20, 30)
    assert torch.allclose(li.alpha, torch.tensor(128 / 255))


def test_accepts_3d_and_clamps(tmp_path: Path):
    img = torch.tensor([-1.0, 0.5, 2.0]).view(3, 1, 1).expand(3, 2, 2)
    with Image.open(save_image(tmp_path / "c.png", img)) as im:
        assert im.size == (2, 2) and np.asarray(im)[0, 0].tolist() == [0, 128, 255]


@pytest.mark.parametrize(
    "bad",
    [torch.rand(8, 8), torch.rand(1, 4, 8, 8), torch.rand(2, 3, 8, 8), torch.rand(1, 1, 3, 8, 8), torch.zeros(1, 3, 8, 8, dtype=torch.uint8)],
    ids=["2d", "4-channels", "batch-2", "5d", "uint8"],
)
def test_wrong_shapes_are_usage_errors(tmp_path: Path, bad: torch.Tensor):
    with pytest.raises(UsageError) as e:
        save_image(tmp_path / "x.png", bad)
    assert str(tmp_path / "x.png") in str(e.value)
    assert _files(tmp_path) == []


def test_nan_is_refused_and_nothing_written(tmp_path: Path):
    img = torch.rand(1, 3, 4, 4)
    img[0, 0, 0, 0] = float("nan")
    with pytest.raises(UsageError, match="NaN"):
        save_image(tmp_path / "x.png", img)
    assert _files(tmp_path) == []


def test_unknown_extension(tmp_path: Path, smooth_image):
    path = tmp_path / "out.xyz"
    with pytest.raises(OutputError) as e:
        save_image(path, smooth_image())
    assert str(e.value) == f"{path}: unsupported output format '.xyz'; use one of .png, .jpg, .jpeg, .webp, .tif, .tiff, .bmp"
    with pytest.raises(OutputError, match="no file extension"):
        save_image(tmp_path / "noext", smooth_image())
    assert _files(tmp_path) == []


def test_extension_is_case_insensitive(tmp_path: Path, smooth_image):
    path = save_image(tmp_path / "OUT.JPG", smooth_image())
    with Image.open(path) as im:
        assert im.format == "JPEG"
    assert path.name == "OUT.JPG"


def test_bit_depth_and_quality_are_checked(tmp_path: Path, smooth_image):
    with pytest.raises(UsageError, match="16-bit output needs .png or .tif"):
        save_image(tmp_path / "x.jpg", smooth_image(), bit_depth=16)
    with pytest.raises(UsageError, match="bit_depth must be 8 or 16"):
        save_image(tmp_path / "x.png", smooth_image(), bit_depth=12)
    with pytest.raises(UsageError, match="quality"):
        save_image(tmp_path / "x.jpg", smooth_image(), quality=0)
    assert _files(tmp_path) == []


def test_missing_folder_is_an_output_error_and_leaves_nothing(tmp_path: Path, smooth_image):
    path = tmp_path / "nowhere" / "out.png"
    with pytest.raises(OutputError, match="does not exist"):
        save_image(path, smooth_image())
    assert _files(tmp_path) == []


@pytest.mark.parametrize("bits,writer", [(8, "_write_pil"), (16, "_write_png16")])
def test_failure_mid_write_leaves_the_old_file_and_no_temp(tmp_path: Path, smooth_image, monkeypatch, bits: int, writer: str):
    path = tmp_path / "out.png"
    path.write_bytes(b"old contents")

    def broken(f, *args, **kwargs):
        f.write(b"\x89PNG half a file")
        raise OSError("disk full")

    monkeypatch.setattr(imsave, writer, broken)
    with pytest.raises(OutputError) as e:
        save_image(path, smooth_image(), bit_depth=bits)
    assert str(e.value) == f"{path}: cannot write PNG (disk full)"
    assert path.read_bytes() == b"old contents"
    assert _files(tmp_path) == ["out.png"]


def test_unexpected_exception_mid_write_also_cleans_up(tmp_path: Path, smooth_image, monkeypatch):
    def broken(f, *args, **kwargs):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(imsave, "_write_pil", broken)
    with pytest.raises(KeyboardInterrupt):
        save_image(tmp_path / "out.jpg", smooth_image())
    assert _files(tmp_path) == []


def test_saved_files_get_normal_permissions(tmp_path: Path, smooth_image):
    old = os.umask(0o022)  # tests may set the umask; the library only reads it
    try:
        new = save_image(tmp_path / "new.png", smooth_image())
        assert new.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
        kept = tmp_path / "kept.png"
        kept.write_bytes(b"x")
        kept.chmod(0o600)
        save_image(kept, smooth_image())
        assert kept.stat().st_mode & 0o777 == 0o600  # replacing a file keeps its permissions
    finally:
        os.umask(old)


def test_save_returns_the_path_and_overwrites(tmp_path: Path, smooth_image):
    path = tmp_path / "o.png"
    assert save_image(str(path), smooth_image(seed=1)) == path
    save_image(path, smooth_image(seed=2))
    assert torch.allclose(load_image(path).image, smooth_image(seed=2), atol=0.5 / 255 + 1e-6)


def test_image_from_array(tmp_path: Path):
    arr = np.array([[[0, 128, 255]]], np.uint8)
    t = imio.image_from_array(arr)
    assert t.shape == (1, 3, 1, 1) and torch.allclose(t.flatten(), torch.tensor([0.0, 128 / 255, 1.0]))


def test_unusable_icc_profiles_are_ignored_with_a_note(tmp_path: Path):
    junk = tmp_path / "junk.png"
    Image.new("RGB", (4, 4), (10, 20, 30)).save(junk, icc_profile=b"not a profile" * 20)
    grey = tmp_path / "grey.png"
    rgb_profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.new("L", (4, 4), 50).save(grey, icc_profile=rgb_profile)  # an RGB profile on a grey image
    for path, value in ((junk, 10 / 255), (grey, 50 / 255)):
        li = load_image(path)
        assert float(li.image[0, 0, 0, 0]) == pytest.approx(value)
        assert any(n.startswith("could not apply the embedded ICC profile") for n in li.info["notes"])
