"""Tiling: plans cover the image, weights feather, blending reconstructs, run_tiled == whole."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from impasto.errors import UsageError
from impasto.image.tiles import Tile, blend_tiles, feather_weight, plan_tiles, run_tiled

CASES = [((h, w), t, o) for (h, w), (t, o) in itertools.product([(1, 1), (7, 300), (64, 64), (100, 37), (129, 250)], [(16, 0), (32, 8), (50, 45), (64, 16), (300, 10)]) if o < t]


def _axis_tiles(tiles: list[Tile], axis: str) -> list[tuple[int, int]]:
    return sorted({(t.y0, t.y1) if axis == "y" else (t.x0, t.x1) for t in tiles})


@pytest.mark.parametrize("size,tile,overlap", CASES)
def test_plan_covers_with_bounded_tiles_and_enough_overlap(size, tile, overlap):
    h, w = size
    tiles = plan_tiles(size, tile, overlap)
    cover = torch.zeros(h, w, dtype=torch.int32)
    for t in tiles:
        assert 0 <= t.y0 < t.y1 <= h and 0 <= t.x0 < t.x1 <= w
        assert t.y1 - t.y0 <= tile and t.x1 - t.x0 <= tile
        cover[t.y0 : t.y1, t.x0 : t.x1] += 1
    assert bool((cover > 0).all())
    for axis, length in (("y", h), ("x", w)):
        spans = _axis_tiles(tiles, axis)
        assert spans[0][0] == 0 and spans[-1][1] == length  # first at the border, last flush with it
        for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
            assert a1 - b0 >= overlap  # neighbours overlap by at least `overlap`
            assert b0 > a0  # and each one moves forward
    if h <= tile and w <= tile:
        assert tiles == [Tile(0, 0, h, w)]


def test_plan_examples():
    assert plan_tiles((100, 100), 128, 16) == [Tile(0, 0, 100, 100)]
    tiles = plan_tiles((10, 100), 40, 10)
    assert [(t.x0, t.x1) for t in tiles] == [(0, 40), (30, 70), (60, 100)]
    assert len(plan_tiles((200, 300), 100, 20)) == 3 * 4


@pytest.mark.parametrize("args", [((10, 10), 0, 0), ((10, 10), 8, 8), ((10, 10), 8, -1), ((0, 10), 8, 2), ((10, 10), 8.0, 2)])
def test_plan_rejects_bad_arguments(args):
    with pytest.raises(UsageError):
        plan_tiles(*args)


def test_feather_weight_shape_ramps_and_positivity():
    size, overlap = (100, 100), 10
    tiles = plan_tiles(size, 40, overlap)
    for t in tiles:
        wgt = feather_weight(t, size, overlap)
        assert wgt.shape == (1, 1, t.y1 - t.y0, t.x1 - t.x0)
        assert float(wgt.min()) > 0 and float(wgt.max()) <= 1
    corner = feather_weight(tiles[0], size, overlap)[0, 0]  # neighbours to the right and below only
    assert torch.all(corner[0, :-overlap] == 1) and torch.all(corner[:-overlap, 0] == 1)
    assert float(corner[0, -1]) < 0.15 and bool((corner[0, -overlap:].diff() < 0).all())
    middle = next(t for t in tiles if t.y0 > 0 and t.x0 > 0 and t.y1 < 100 and t.x1 < 100)
    mid = feather_weight(middle, size, overlap)[0, 0]
    assert float(mid[0, 20]) < 0.15 and float(mid[20, 0]) < 0.15 and float(mid[20, 20]) == 1.0
    whole = Tile(0, 0, 100, 100)
    assert torch.equal(feather_weight(whole, size, overlap), torch.ones(1, 1, 100, 100))


def test_feather_weight_without_overlap_is_flat():
    assert torch.equal(feather_weight(Tile(0, 10, 10, 20), (10, 30), 0), torch.ones(1, 1, 10, 10))


@pytest.mark.parametrize("size,tile,overlap", CASES)
def test_blending_identical_content_reconstructs_exactly(size, tile, overlap, noise_image):
    img = noise_image(*size, seed=1)
    tiles = plan_tiles(size, tile, overlap)
    out = blend_tiles(((t, t.crop(img)) for t in tiles), size, overlap)
    assert out.shape == img.shape
    depth = max(sum(1 for t in tiles if t.y0 <= y < t.y1 and t.x0 <= x < t.x1) for y in (0, size[0] // 2) for x in (0, size[1] // 2))
    # exact up to float32 rounding, which grows with the number of tiles summed at a pixel
    # (up to 50x50 in the stride-1 case 50/49)
    assert float((out - img).abs().max()) < 1e-6 * depth


def test_blend_detects_gaps_and_wrong_shapes():
    with pytest.raises(UsageError, match="do not cover"):
        blend_tiles([(Tile(0, 0, 5, 5), torch.rand(1, 3, 5, 5))], (10, 10), 2)
    with pytest.raises(UsageError, match="expected"):
        blend_tiles([(Tile(0, 0, 5, 5), torch.rand(1, 3, 4, 5))], (5, 5), 2)
    with pytest.raises(UsageError, match="no tiles"):
        blend_tiles([], (5, 5), 2)


def test_run_tiled_identity_and_pointwise_functions_match_whole_image(noise_image):
    img = noise_image(70, 90, seed=2)
    calls = []

    def identity(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape[-2:]))
        return x

    assert float((run_tiled(identity, img, tile=32, overlap=8) - img).abs().max()) < 1e-6
    assert len(calls) > 4 and all(h <= 32 and w <= 32 for h, w in calls)

    def pointwise(x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(3 * x - 1) * x.mean(dim=1, keepdim=True)

    assert float((run_tiled(pointwise, img, tile=32, overlap=8) - pointwise(img)).abs().max()) < 1e-6


def test_run_tiled_with_a_resolution_change_and_other_channel_counts(noise_image):
    img = noise_image(30, 41, seed=3)

    def up2_grey(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x.mean(dim=1, keepdim=True), scale_factor=2, mode="nearest")

    out = run_tiled(up2_grey, img, tile=16, overlap=4, scale=2)
    assert out.shape == (1, 1, 60, 82)
    assert float((out - up2_grey(img)).abs().max()) < 1e-6


def test_run_tiled_single_tile_calls_fn_once_with_the_whole_image(noise_image):
    img = noise_image(20, 20)
    seen = []
    out = run_tiled(lambda x: seen.append(x) or x * 2, img, tile=64, overlap=8)
    assert len(seen) == 1 and seen[0].shape == img.shape and torch.equal(out, img * 2)


def test_run_tiled_local_filter_has_small_seams(noise_image):
    img = noise_image(64, 64, seed=4)
    blur = torch.full((3, 1, 3, 3), 1 / 9)

    def smooth(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), blur, groups=3)

    whole = smooth(img)
    feathered = run_tiled(smooth, img, tile=24, overlap=8)
    hard = run_tiled(smooth, img, tile=24, overlap=0)
    err_f = float((feathered - whole).abs().max())
    err_h = float((hard - whole).abs().max())
    assert err_f < err_h / 3  # feathering hides most of the tile borders
    assert err_f < 0.05


def test_run_tiled_passes_gradients(noise_image):
    img = noise_image(40, 40).requires_grad_(True)
    out = run_tiled(lambda x: x * 3, img, tile=16, overlap=4)
    out.sum().backward()
    assert img.grad is not None and torch.allclose(img.grad, torch.full_like(img, 3.0), atol=1e-5)


def test_run_tiled_checks_fn_results(noise_image):
    img = noise_image(40, 40)
    with pytest.raises(UsageError, match="run_tiled: fn returned"):
        run_tiled(lambda x: x[..., :-1, :], img, tile=16, overlap=4)
    with pytest.raises(UsageError, match="scale"):
        run_tiled(lambda x: x, img, tile=16, overlap=4, scale=0)
