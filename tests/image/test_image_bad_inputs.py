"""One test per file in shared/bad-inputs (see its README): clear errors or correct results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile, ImageOps

from impasto.errors import ImageError, ImageTooLargeError, UnsupportedFormatError
from impasto.image.io import load_image, save_image
from impasto.image.resize import fit_edge, resize_to_edge

COVERED = {
    "empty.jpg",
    "text-pretending.jpg",
    "truncated.jpg",
    "a-directory.jpg",
    "vector.svg",
    "bomb-100000x100000.png",
    "one-pixel.png",
    "sliver-4000x6.png",
    "cmyk.jpg",
    "gray.png",
    "gray16.png",
    "half-transparent.png",
    "animated.gif",
    "exif-rotated-90.jpg",
    "webp.webp",
    "bmp.bmp",
    "tiff.tiff",
}


def _pil_rgb(path: Path) -> torch.Tensor:
    """Pillow's own decode of a file, as the reference: 1x3xHxW float32."""
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    return torch.from_numpy(arr.astype(np.float32) / 255).permute(2, 0, 1)[None]


def test_every_bad_input_has_a_test_here(bad: Path):
    present = {p.name for p in bad.iterdir() if p.name != "README.md"}
    assert present == COVERED, f"untested: {present - COVERED}; gone: {COVERED - present}"


def test_empty_file(bad: Path):
    path = bad / "empty.jpg"
    with pytest.raises(ImageError) as e:
        load_image(path)
    assert str(e.value) == f"{path}: empty file (0 bytes)"


def test_text_pretending_to_be_a_jpeg(bad: Path):
    path = bad / "text-pretending.jpg"
    with pytest.raises(ImageError) as e:
        load_image(path)
    assert str(e.value) == f"{path}: not an image (cannot identify the format)"
    assert not isinstance(e.value, UnsupportedFormatError)


def test_truncated_jpeg_is_refused_not_half_read(bad: Path):
    path = bad / "truncated.jpg"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(ImageError) as e:
        load_image(path)
    assert str(e.value).startswith(f"{path}: truncated or corrupt image (")
    assert "\n" not in str(e.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # we did not switch it on behind anyone's back


def test_directory(bad: Path):
    path = bad / "a-directory.jpg"
    with pytest.raises(ImageError) as e:
        load_image(path)
    assert str(e.value) == f"{path}: is a directory, not an image"


def test_svg_is_unsupported_and_names_the_supported_formats(bad: Path):
    path = bad / "vector.svg"
    with pytest.raises(UnsupportedFormatError) as e:
        load_image(path)
    assert str(e.value) == f"{path}: SVG (vector) images are not supported; use one of JPEG, PNG, WebP, TIFF, BMP, GIF"


def test_svg_is_recognised_by_content_not_extension(bad: Path, tmp_path: Path):
    disguised = tmp_path / "drawing.png"
    disguised.write_bytes(b'<?xml version="1.0"?>\n' + (bad / "vector.svg").read_bytes())
    with pytest.raises(UnsupportedFormatError, match=r"drawing\.png: SVG \(vector\) images are not supported"):
        load_image(disguised)


def test_bomb_is_refused_from_the_header_before_decoding(bad: Path, monkeypatch: pytest.MonkeyPatch):
    path = bad / "bomb-100000x100000.png"

    def no_decoding(self, *a, **k):  # pragma: no cover - reached only on failure
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageTooLargeError) as e:
        load_image(path)
    assert str(e.value) == (
        f"{path}: image is 100000x100000 (10,000,000,000 pixels), more than the limit of 100,000,000; "
        "raise the limit with max_pixels"
    )
    with pytest.raises(ImageTooLargeError, match=r"more than the limit of 1,000,000;"):
        load_image(path, max_pixels=1_000_000)


def test_one_pixel_loads_the_encoder_layer_says_it_is_too_small(bad: Path):
    # Loading succeeds; the "too small for the encoder, minimum N" error belongs to the layer
    # that knows the encoder's minimum side (impasto.api), not to image I/O.
    li = load_image(bad / "one-pixel.png")
    assert li.image.shape == (1, 3, 1, 1)
    assert torch.equal(li.image, _pil_rgb(bad / "one-pixel.png"))


def test_sliver_loads_and_resizes_to_a_usable_size(bad: Path):
    li = load_image(bad / "sliver-4000x6.png")
    assert li.image.shape == (1, 3, 6, 4000)
    assert li.info["size"] == (4000, 6)
    assert fit_edge((6, 4000), 512) == (1, 512)
    out = resize_to_edge(li.image, 512)
    assert out.shape == (1, 3, 1, 512)
    assert 0 <= float(out.min()) and float(out.max()) <= 1


def test_cmyk_is_converted_to_rgb(bad: Path):
    path = bad / "cmyk.jpg"
    li = load_image(path)
    assert li.info["mode"] == "CMYK" and li.info["format"] == "JPEG"
    assert "converted CMYK to RGB" in li.info["notes"]
    assert li.image.shape == (1, 3, 80, 120)
    assert torch.allclose(li.image, _pil_rgb(path), atol=1 / 255 + 1e-6)
    assert float(li.image.std()) > 0.05  # a picture, not a flat or blank field


def test_gray_png_becomes_rgb_with_equal_channels(bad: Path):
    path = bad / "gray.png"
    li = load_image(path)
    with Image.open(path) as im:
        ref = torch.from_numpy(np.asarray(im).astype(np.float32) / 255)
    assert li.info["mode"] == "L"
    assert torch.equal(li.image[0, 0], ref) and torch.equal(li.image[0, 1], ref) and torch.equal(li.image[0, 2], ref)
    assert "converted greyscale to RGB" in li.info["notes"]


def test_gray16_keeps_16_bit_precision(bad: Path):
    path = bad / "gray16.png"
    with Image.open(path) as im:
        raw = np.asarray(im).astype(np.int64)
    li = load_image(path)
    assert li.info["bit_depth"] == 16
    assert "converted 16-bit greyscale to RGB (16-bit precision kept)" in li.info["notes"]
    back = torch.round(li.image[0, 0].double() * 65535).long().numpy()
    assert np.array_equal(back, raw)
    assert torch.equal(li.image[0, 0], li.image[0, 2])
    # more than 8 bits of information survived: most values are not multiples of 1/255
    assert float((raw % 257 != 0).mean()) > 0.5


def test_half_transparent_alpha_is_kept_and_reattached(bad: Path, tmp_path: Path):
    path = bad / "half-transparent.png"
    with Image.open(path) as im:
        ref_a8 = np.asarray(im.getchannel("A"))
        ref_alpha = ref_a8.astype(np.float32) / 255
        ref_rgb = np.asarray(im.convert("RGB"))
    li = load_image(path)
    assert li.alpha is not None and li.alpha.shape == (1, 1, 80, 120)
    assert np.array_equal(li.alpha[0, 0].numpy(), ref_alpha)
    assert 0 < float(li.alpha.mean()) < 1  # really half transparent
    out = save_image(tmp_path / "out.png", li.image, alpha=li.alpha)
    with Image.open(out) as im:
        assert im.mode == "RGBA"
        assert np.array_equal(np.asarray(im.getchannel("A")), ref_a8)
        assert np.array_equal(np.asarray(im.convert("RGB")), ref_rgb)


def test_animated_gif_uses_the_first_frame_and_says_so(bad: Path):
    path = bad / "animated.gif"
    li = load_image(path)
    assert "used the first of 2 frames of an animated GIF" in li.info["notes"]
    assert li.info["frames"] == 2
    with Image.open(path) as im:
        im.seek(0)
        first = torch.from_numpy(np.asarray(im.convert("RGB")).astype(np.float32) / 255).permute(2, 0, 1)[None]
        im.seek(1)
        second = torch.from_numpy(np.asarray(im.convert("RGB")).astype(np.float32) / 255).permute(2, 0, 1)[None]
    assert torch.equal(li.image, first)
    assert not torch.equal(first, second)  # the frames differ, so the test can tell them apart


def test_exif_rotated_comes_out_upright(bad: Path):
    path = bad / "exif-rotated-90.jpg"
    with Image.open(path) as im:
        assert im.size == (120, 80) and im.getexif().get(0x0112) == 6
        upright = ImageOps.exif_transpose(im.convert("RGB"))
        ref = torch.from_numpy(np.asarray(upright).astype(np.float32) / 255).permute(2, 0, 1)[None]
    li = load_image(path)
    assert li.image.shape == (1, 3, 120, 80)  # width and height swapped
    assert li.info["size"] == (120, 80)  # as stored in the file
    assert torch.equal(li.image, ref)
    assert any(n.startswith("applied EXIF orientation") for n in li.info["notes"])


@pytest.mark.parametrize("name,fmt", [("webp.webp", "WEBP"), ("bmp.bmp", "BMP"), ("tiff.tiff", "TIFF")])
def test_other_formats_load(bad: Path, name: str, fmt: str):
    # one test function, three files: each still gets its own test id and its own check
    path = bad / name
    li = load_image(path)
    assert li.info["format"] == fmt
    assert li.image.shape == (1, 3, 80, 120) and li.image.dtype == torch.float32
    assert li.alpha is None
    assert torch.equal(li.image, _pil_rgb(path))
    assert li.path == path
