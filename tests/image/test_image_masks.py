"""Region maps for spatial control: colour-coded and grey maps, matching, and their errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from impasto.errors import ImageError
from impasto.image.masks import RegionMasks, downsample_mask, load_region_masks, region_masks_from_maps

RED, BLUE, GREEN, WHITE, BLACK = (255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 255, 255), (0, 0, 0)


def _map(path: Path, h: int, w: int, bands: list[tuple[tuple[int, int, int], float]], blur_edges: bool = True) -> Path:
    """Vertical bands of colour (fractions of the width), with anti-aliased (blended) columns between."""
    arr = np.zeros((h, w, 3), np.float32)
    x0 = 0
    edges = []
    for i, (colour, frac) in enumerate(bands):
        x1 = w if i == len(bands) - 1 else x0 + round(frac * w)
        arr[:, x0:x1] = colour
        edges.append(x1)
        x0 = x1
    if blur_edges:
        for x in edges[:-1]:
            arr[:, x] = (arr[:, x - 1] + arr[:, x + 1]) / 2  # a half-and-half anti-aliased column
    Image.fromarray(np.rint(arr).astype(np.uint8)).save(path)
    return path


def test_colour_coded_maps_give_matched_soft_masks(tmp_path: Path):
    cpath = _map(tmp_path / "c.png", 40, 50, [(RED, 0.6), (BLUE, 0.4)])
    spath = _map(tmp_path / "s.png", 30, 30, [(BLUE, 0.5), (RED, 0.5)])
    r = load_region_masks(cpath, spath, content_size=(20, 25), style_size=(15, 15))
    assert isinstance(r, RegionMasks) and r.kind == "colour"
    assert r.labels == ["#ff0000", "#0000ff"]  # by coverage of the content map
    assert r.content.shape == (2, 1, 20, 25) and r.style.shape == (2, 1, 15, 15)
    assert torch.allclose(r.content.sum(0), torch.ones(1, 20, 25), atol=1e-5)
    assert torch.allclose(r.style.sum(0), torch.ones(1, 15, 15), atol=1e-5)
    # red is on the left of the content and on the right of the style
    assert float(r.content[0, 0, :, 0].min()) > 0.99 and float(r.content[1, 0, :, -1].min()) > 0.99
    assert float(r.style[0, 0, :, -1].min()) > 0.99 and float(r.style[1, 0, :, 0].min()) > 0.99
    assert float(r.content.min()) >= 0 and float(r.content.max()) <= 1


def test_antialiased_edges_join_the_nearest_region_instead_of_making_new_ones(tmp_path: Path):
    # 60 px wide: each blended edge column is 1.7% of the map, above the 0.5% "main colour" share
    c = _map(tmp_path / "c.png", 20, 60, [(RED, 0.3), (GREEN, 0.3), (BLUE, 0.4)])
    with Image.open(c) as im:
        assert len(np.unique(np.asarray(im).reshape(-1, 3), axis=0)) == 5  # 3 colours + 2 mixes
    r = load_region_masks(c, c, content_size=(20, 60), style_size=(20, 60))
    assert len(r) == 3 and sorted(r.labels) == ["#0000ff", "#00ff00", "#ff0000"]
    assert set(torch.unique(r.content).tolist()) <= {0.0, 1.0}  # same size: hard assignment


def test_a_solid_region_of_a_mixed_colour_is_still_a_region(tmp_path: Path):
    purple = (128, 0, 128)  # a mix of red and blue, but a solid band of its own
    c = _map(tmp_path / "c.png", 20, 60, [(RED, 0.3), (purple, 0.3), (BLUE, 0.4)], blur_edges=False)
    r = load_region_masks(c, c, content_size=(20, 60), style_size=(20, 60))
    assert sorted(r.labels) == ["#0000ff", "#800080", "#ff0000"]


def test_jpeg_noise_does_not_scatter_regions(tmp_path: Path):
    png = _map(tmp_path / "c.png", 48, 64, [(RED, 0.5), (BLUE, 0.5)], blur_edges=False)
    jpg = tmp_path / "c.jpg"
    Image.open(png).save(jpg, quality=70)
    with Image.open(jpg) as im:
        assert len(np.unique(np.asarray(im).reshape(-1, 3), axis=0)) > 2  # really noisy
    r = load_region_masks(jpg, png, content_size=(48, 64), style_size=(48, 64))
    assert len(r) == 2


def test_style_colours_without_a_content_region_belong_to_no_region(tmp_path: Path):
    c = _map(tmp_path / "c.png", 20, 20, [(RED, 0.5), (BLUE, 0.5)])
    s = _map(tmp_path / "s.png", 20, 30, [(RED, 0.3), (GREEN, 0.4), (BLUE, 0.3)], blur_edges=False)
    r = load_region_masks(c, s, content_size=(20, 20), style_size=(20, 30))
    assert r.labels == ["#ff0000", "#0000ff"] or r.labels == ["#0000ff", "#ff0000"]
    green = r.style[:, 0, :, 9:21]
    assert float(green.abs().max()) == 0.0
    assert torch.allclose(r.style[:, 0, :, :9].sum(0), torch.ones(20, 9))


def test_grey_maps_give_two_soft_regions(tmp_path: Path):
    ramp = np.tile(np.linspace(0, 255, 32).round().astype(np.uint8), (16, 1))
    c = tmp_path / "c.png"
    Image.fromarray(ramp).save(c)
    s = tmp_path / "s.png"
    Image.fromarray(ramp[:, ::-1].copy()).save(s)
    r = load_region_masks(c, s, content_size=(16, 32), style_size=(16, 32))
    assert r.kind == "grey" and r.labels == ["#000000", "#ffffff"]
    v = torch.from_numpy(ramp.astype(np.float32) / 255)
    assert torch.allclose(r.content[1, 0], v, atol=1e-6) and torch.allclose(r.content[0, 0], 1 - v, atol=1e-6)
    assert torch.allclose(r.content.sum(0), torch.ones(1, 16, 32))


def test_aspect_ratio_mismatch_names_the_file_and_both_sizes(tmp_path: Path):
    c = _map(tmp_path / "c.png", 80, 100, [(RED, 0.5), (BLUE, 0.5)])
    s = _map(tmp_path / "s.png", 64, 64, [(RED, 0.5), (BLUE, 0.5)])
    with pytest.raises(ImageError) as e:
        load_region_masks(c, s, content_size=(64, 64), style_size=(64, 64))
    assert str(e.value) == f"{c}: mask is 100x80 but the content image is 64x64; masks must have the image's aspect ratio"
    with pytest.raises(ImageError, match=rf"^{s}: mask is 64x64 but the style image is 100x50"):
        load_region_masks(s, s, content_size=(64, 64), style_size=(50, 100))
    # within 2% is fine (and the mask is resized to the image)
    r = load_region_masks(c, c, content_size=(80, 101), style_size=(80, 100))  # 1% off
    assert r.content.shape[-2:] == (80, 101)


def test_content_colour_missing_from_the_style_map(tmp_path: Path):
    c = _map(tmp_path / "c.png", 50, 100, [(RED, 0.48), (BLUE, 0.4), (GREEN, 0.12)], blur_edges=False)
    s = _map(tmp_path / "s.png", 50, 100, [(RED, 0.5), (BLUE, 0.5)])
    with pytest.raises(ImageError) as e:
        load_region_masks(c, s, content_size=(50, 100), style_size=(50, 100))
    assert str(e.value) == f"{c}: colour #00ff00 (12% of the mask) has no region in the style mask {s}"


def test_grey_and_colour_coded_maps_do_not_mix(tmp_path: Path):
    ramp = np.tile(np.linspace(0, 255, 40).round().astype(np.uint8), (20, 1))
    g = tmp_path / "grey.png"
    Image.fromarray(ramp).save(g)
    col = _map(tmp_path / "col.png", 20, 40, [(RED, 0.5), (BLUE, 0.5)])
    with pytest.raises(ImageError) as e:
        load_region_masks(g, col, content_size=(20, 40), style_size=(20, 40))
    assert str(e.value) == f"{g}: is a grey map but {col} is colour-coded; use the same kind for both"
    with pytest.raises(ImageError, match=rf"^{g}: is a grey map but {col} is colour-coded"):
        load_region_masks(col, g, content_size=(20, 40), style_size=(20, 40))


def test_black_and_white_map_pairs_with_a_colour_map(tmp_path: Path):
    bw = _map(tmp_path / "bw.png", 20, 40, [(BLACK, 0.5), (WHITE, 0.5)], blur_edges=False)
    col = _map(tmp_path / "col.png", 20, 40, [(WHITE, 0.4), (RED, 0.3), (BLACK, 0.3)], blur_edges=False)
    r = load_region_masks(bw, col, content_size=(20, 40), style_size=(20, 40))
    assert r.kind == "colour" and sorted(r.labels) == ["#000000", "#ffffff"]


def test_load_errors_pass_through(tmp_path: Path):
    ok = _map(tmp_path / "ok.png", 10, 10, [(RED, 1.0)])
    with pytest.raises(ImageError, match="no such file"):
        load_region_masks(tmp_path / "missing.png", ok, content_size=(10, 10), style_size=(10, 10))


def test_region_masks_from_maps_and_downsample_mask():
    cmap = torch.zeros(1, 3, 8, 8)
    cmap[:, 0, :, :4] = 1
    cmap[:, 2, :, 4:] = 1
    r = region_masks_from_maps(cmap, cmap, content_size=(8, 8), style_size=(4, 4))
    assert r.style.shape == (2, 1, 4, 4)
    small = downsample_mask(r.content, (3, 5))
    assert small.shape == (2, 1, 3, 5)
    assert torch.allclose(small.sum(0), torch.ones(1, 3, 5), atol=1e-5)
