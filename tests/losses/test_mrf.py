"""The patch-based (MRF) style loss: exact self-match, chunk-independent matching, normalised
cross-correlation, regions, guides, blends, and ``impasto gatys --style-loss mrf`` end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import impasto
from impasto.config import config_schema
from impasto.errors import ConfigError, UsageError
from impasto.features import get_encoder_spec
from impasto.losses import STYLE_LOSSES, MRF, PatchTarget, get_statistic
from impasto.losses.mrf import auto_chunk, build_target, extract_patches, match, mrf_loss
from impasto.methods import gatys
from tests.conftest import make_image

FAST = dict(encoder="tiny_vgg", weights="random", edge=48, iterations=15, device="cpu", style_loss="mrf")


def _position_features(h: int = 12, w: int = 16, channels: int = 6, seed: int = 0) -> torch.Tensor:
    """Random positive features whose channel 0 is the column (0..1): a patch tells where it was cut."""
    g = torch.Generator().manual_seed(seed)
    f = torch.rand(1, channels, h, w, generator=g)
    f[:, 0] = torch.linspace(0, 1, w)[None, :].expand(h, w)
    return f


def _centre_column(rows: torch.Tensor, size: int = 3) -> torch.Tensor:
    """Channel 0 at the centre of each patch row (the column it was cut at, 0..1)."""
    return rows[:, (size * size) // 2]


@pytest.fixture(scope="module")
def style_features(tiny_encoder):
    return tiny_encoder(make_image(48, 48, seed=2, smooth=False))


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("layer", ["relu1_1", "relu2_1", "relu3_1"])
def test_the_style_against_itself_is_zero(style_features, layer, stride):
    f = style_features[layer]
    target = build_target(f, stride=stride)
    assert len(target) == ((f.shape[-2] - 3) // stride + 1) * ((f.shape[-1] - 3) // stride + 1)
    assert mrf_loss(f, target).item() == 0.0
    stat = MRF(stride=stride)
    assert stat.distance(stat.finalize(stat.accumulate(f)), stat.prepare(stat.finalize(stat.accumulate(f)))).item() == 0.0
    assert mrf_loss(f * 1.3 + 0.05, target).item() > 1e-3


def test_patches_are_row_major_and_channel_major():
    f = torch.arange(2 * 4 * 5, dtype=torch.float32).reshape(1, 2, 4, 5)
    p = extract_patches(f, size=3, stride=1)
    assert p.shape == (2 * 3, 2 * 9)
    assert torch.equal(p[1], torch.cat([f[0, 0, 0:3, 1:4].reshape(-1), f[0, 1, 0:3, 1:4].reshape(-1)]))
    assert extract_patches(f, size=3, stride=2).shape == (2, 18)
    with pytest.raises(ValueError, match="smaller than the patch size 5"):
        extract_patches(f, size=5)


@pytest.mark.parametrize("variety", [0.0, 0.5])
def test_chunked_matching_equals_unchunked_exactly(tiny_encoder, style_features, variety):
    gen = extract_patches(tiny_encoder(make_image(40, 48, seed=7))["relu2_1"])
    target = build_target(style_features["relu2_1"])
    whole = match(gen, target, chunk=len(target), variety=variety)
    for chunk in (1, 7, 64, None):  # 7 does not divide the patch count
        assert torch.equal(match(gen, target, chunk=chunk, variety=variety), whole), chunk
    if variety:
        plain = match(gen, target, chunk=len(target))
        assert torch.unique(whole).numel() >= torch.unique(plain).numel()  # spreads over more patches
    assert 1 <= auto_chunk(len(gen), len(target)) <= len(target) and auto_chunk(10**6, 5000, budget_bytes=1) == 1


def test_ties_go_to_the_lowest_index_whatever_the_chunk():
    tile = torch.rand(1, 4, 3, 3, generator=torch.Generator().manual_seed(3))
    style = tile.repeat(1, 1, 5, 5)  # periodic: every patch has many exact duplicates
    style[..., :6, :6] = 0.3  # and a flat block of identical patches
    target = build_target(style)
    gen = torch.cat([extract_patches(style), torch.zeros(2, 36)])
    first = {}
    for i, row in enumerate(target.raw):
        first.setdefault(tuple(row.tolist()), i)
    want = torch.tensor([first[tuple(r.tolist())] for r in extract_patches(style)] + [0, 0])
    for chunk in (1, 5, 13, None):
        assert torch.equal(match(gen, target, chunk=chunk), want), chunk
        assert torch.equal(match(gen, target, chunk=chunk, variety=0.3), match(gen, target, variety=0.3)), chunk


def test_match_is_normalised_cross_correlation():
    target = build_target(_position_features())
    picks = torch.tensor([0, 5, 17, 60, len(target) - 1])
    scaled = target.raw[picks] * torch.tensor([[0.1], [3.0], [7.5], [0.5], [20.0]])
    assert torch.equal(match(scaled, target), picks)


def test_region_restricted_matching_takes_patches_from_inside_the_region():
    style = _position_features()
    mask = torch.zeros(1, 1, 24, 32)  # any size: resized to the features
    mask[..., :16] = 1  # the left half
    target = build_target(style, mask=mask)
    assert len(target) < len(build_target(style)) and bool((_centre_column(target.raw) < 0.5).all())
    gen = _position_features(seed=5)  # patches from everywhere, right half too
    idx = match(extract_patches(gen), target)
    assert bool((_centre_column(target.raw[idx]) < 0.5).all())
    # the generated side: only the patches centred in the mask count
    left = torch.zeros(1, 1, 12, 16)
    left[..., :8] = 1
    patches = extract_patches(gen)
    inside = patches[_centre_column(patches) < 0.5]
    per = (inside - target.raw[match(inside, target)]).pow(2).sum(1)
    want = per.mean() / target.raw.pow(2).sum(1).mean()
    assert torch.allclose(mrf_loss(gen, target, mask=left), want)


def test_guide_channels_steer_the_matching():
    style = _position_features()
    guide = torch.zeros(1, 2, 12, 16)
    guide[:, 0, :, :8], guide[:, 1, :, 8:] = 1, 1  # left region / right region
    target = build_target(style, guide=guide, guide_weight=100.0)
    assert target.channels == 8 and target.guide_channels == 2 and target.feature_dim == 6 * 9
    gen = _position_features(seed=9)
    for region, left in ((0, True), (1, False)):
        g = torch.zeros(1, 2, 12, 16)
        g[:, region] = 1  # the whole output belongs to one region
        x = torch.cat([gen, g * 100.0], 1)
        cols = _centre_column(target.raw[match(extract_patches(x), target)])
        assert bool((cols < 0.5).all()) if left else bool((cols > 0.5).all())
        # the loss compares the feature part only (the guide channels are constants)
        feats = extract_patches(gen)
        raw = target.raw[:, : target.feature_dim]
        want = (feats - raw[match(extract_patches(x), target)]).pow(2).sum(1).mean() / raw.pow(2).sum(1).mean()
        assert torch.allclose(mrf_loss(gen, target, guide=g, guide_weight=100.0), want)
    with pytest.raises(ValueError, match="guide channels"):
        mrf_loss(gen, target)


def test_rotations_scales_and_blend_weights():
    f = _position_features(12, 12)
    n = len(build_target(f))
    assert len(build_target(f, rotations=3)) == 4 * n
    assert len(build_target(f, scales=(0.5,))) == n + 16  # + the 6x6 map's 4x4 patches
    stat = MRF()
    a, b = stat.finalize(stat.accumulate(f)), stat.finalize(stat.accumulate(_position_features(12, 20, seed=1)))
    pooled = PatchTarget.from_stats(stat.blend([a, b], [3.0, 1.0]))
    na = n
    assert len(pooled) == na + 10 * 18
    assert pooled.weights[:na].sum().item() == pytest.approx(0.75 * len(pooled), rel=1e-5)
    assert pooled.weights.mean().item() == pytest.approx(1.0, rel=1e-5)
    assert len(PatchTarget.from_stats(stat.blend([a, b], [1.0, 0.0]))) == na  # weight 0: left out


def test_mrf_is_registered_and_configurable(tiny_encoder):
    stat = get_statistic("mrf")
    assert isinstance(stat, MRF) and stat.additive is False and "mrf" in STYLE_LOSSES
    assert "mrf" in config_schema(gatys.GatysConfig)["properties"]["style_loss"]["enum"]
    cfg = gatys.GatysConfig(style_loss="mrf", patch_size=5, patch_stride=2, patch_rotations=1, patch_scales="0.8,1.25", variety=0.1)
    loss = gatys.build_loss(cfg, tiny_encoder)
    assert isinstance(loss.statistic, MRF) and loss.kind == "mrf"
    assert (loss.statistic.size, loss.statistic.stride, loss.statistic.rotations, loss.statistic.scales, loss.statistic.variety) == (5, 2, 1, (0.8, 1.25), 0.1)
    assert list(gatys.loss_layers(cfg, get_encoder_spec("tiny_vgg"))[1]) == ["relu3_1", "relu4_1"]
    assert list(gatys.loss_layers(gatys.GatysConfig(style_loss="mrf", style_layers="relu2_1"), get_encoder_spec("tiny_vgg"))[1]) == ["relu2_1"]
    assert list(gatys.loss_layers(cfg, get_encoder_spec("resnet50"))[1]) == ["layer1.2", "layer2.3"]  # 1/4 and 1/8 resolution, as relu3_1 and relu4_1


@pytest.mark.parametrize(
    "option, message",
    [
        (dict(patch_size=0), "patch_size must be >= 1, got 0"),
        (dict(patch_stride=-1), "patch_stride must be >= 0 (0 = auto), got -1"),
        (dict(patch_rotations=5), "patch_rotations must be in 0..3, got 5"),
        (dict(patch_scales="x"), "patch_scales 'x': expected factors like 0.8,1.25"),
        (dict(patch_scales="0.5,-1"), "patch_scales '0.5,-1': factors must be > 0 and <= 4"),
        (dict(variety=-1.0), "variety must be >= 0, got -1.0"),
    ],
)
def test_bad_options_are_one_line_errors(option, message):
    with pytest.raises(ConfigError) as info:
        gatys.GatysConfig(style_loss="mrf", **option)
    assert str(info.value) == message and info.value.params == (next(iter(option)),)


def _falls(result) -> bool:
    hist = result.manifest["loss_history"]
    return hist[-1]["total"] < hist[0]["total"] and hist[-1]["style"] < hist[0]["style"]


def test_the_loss_falls_under_optimisation_also_coarse_to_fine():
    content, style = make_image(40, 48, seed=1), make_image(48, 48, seed=2, smooth=False)
    r = impasto.run("gatys", content=content, style=style, scales="48", **FAST)
    assert _falls(r) and r.manifest["encoder"]["style_layers"] == {"relu3_1": 0.5, "relu4_1": 0.5}
    r = impasto.run("gatys", content=content, style=style, scales="32,48", scale_iterations="10,15", patch_stride=2, variety=0.2, **FAST)
    assert [lv["edge"] for lv in r.manifest["levels"]] == [32, 48] and _falls(r)


def _write(path, arr):
    Image.fromarray((np.asarray(arr) * 255).round().astype(np.uint8)).save(path)
    return str(path)


def test_masks_and_blended_styles(tmp_path):
    content, style = make_image(40, 48, seed=1), make_image(48, 48, seed=2, smooth=False)
    cmap, smap = np.zeros((40, 48, 3)), np.zeros((48, 48, 3))
    cmap[:, :24], cmap[:, 24:] = [1, 0, 0], [0, 0, 1]
    smap[:24], smap[24:] = [1, 0, 0], [0, 0, 1]
    r = impasto.run("gatys", content=content, style=style, scales="48", content_mask=_write(tmp_path / "c.png", cmap),
                    style_mask=_write(tmp_path / "s.png", smap), **FAST)
    assert _falls(r)
    r = impasto.run("gatys", content=content, style=[style, make_image(48, 40, seed=3)], scales="48", **FAST)
    assert _falls(r) and len(r.manifest["styles"]) == 2


def test_tiling_refuses_mrf(tiny_encoder):
    cfg = gatys.GatysConfig(encoder="tiny_vgg", weights="random", edge=96, scales="96", iterations=2, tile=64, style_loss="mrf")
    with pytest.raises(UsageError) as info:
        gatys.run(cfg, make_image(64, 96), [gatys.StyleInput(make_image(48, 48))], encoder=tiny_encoder)
    assert str(info.value) == (
        "style_loss mrf cannot be tiled (its statistics are not additive over tiles); "
        "use gram, mean_std or wasserstein for images above the memory budget, or raise max_memory"
    )
    assert info.value.with_flags().startswith("--style-loss mrf cannot be tiled")


def test_auto_stride_bounds_the_painting_patches():
    from impasto.losses.mrf import AUTO_PATCHES, auto_stride

    assert auto_stride((32, 25)) == 1  # a 128 px painting at relu3_1: every patch
    assert auto_stride((128, 101)) == 2  # 512 px at relu3_1: 12726 patches -> 3150
    assert auto_stride((256, 202)) == 3
    for hw in ((40, 40), (90, 91), (128, 101), (300, 17), (700, 500)):
        s = auto_stride(hw)
        n = lambda st: ((hw[0] - 3) // st + 1) * ((hw[1] - 3) // st + 1)  # noqa: E731
        assert n(s) <= AUTO_PATCHES and (s == 1 or n(s - 1) > AUTO_PATCHES)
    f = torch.randn(1, 4, 100, 100)
    assert build_target(f, stride=0).stride == 2 and len(build_target(f, stride=0)) == 49 * 49


def test_auto_stride_is_shared_by_blended_styles():
    big, small = torch.randn(1, 4, 100, 100), torch.randn(1, 4, 20, 20)
    stat = MRF(stride=0)
    t = stat.blend([stat.accumulate(big), stat.accumulate(small)], [0.5, 0.5])
    from impasto.losses.mrf import PatchTarget

    pt = PatchTarget.from_stats(t)
    assert pt.stride == 2 and len(pt) == 49 * 49 + 9 * 9
