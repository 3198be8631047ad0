"""Tiled optimisation with whole-image statistics: close to untiled, no seams, planned by memory."""

from __future__ import annotations

import pytest
import torch

from impasto.errors import ConfigError, UsageError
from impasto.losses import PerceptualLoss
from impasto.optim import tiled
from impasto.optim.options import TilingOptions
from impasto.optim.pixel import optimise_pixels


@pytest.fixture
def problem(tiny_encoder, image_factory):
    content = image_factory(96, 128, seed=3)
    style = image_factory(64, 64, seed=4, smooth=False)
    loss = PerceptualLoss(tiny_encoder, content_layers=["relu4_2"], style_layers=["relu1_1", "relu2_1", "relu3_1", "relu4_1"], style_weight=20.0)
    loss.set_style([style])
    return loss, content


def _whole_loss(loss, image, content):
    loss.set_content(content)
    with torch.no_grad():
        return {k: float(v) for k, v in loss(image)[1].items()}


def _plan(loss, size, tile=64, overlap=16):
    return tiled.plan_for(TilingOptions(tile=tile, overlap=overlap), loss, size, torch.device("cpu"), optimizer="adam")


def test_tiled_matches_untiled_closely(problem):
    loss, content = problem
    plan = _plan(loss, (96, 128))
    assert plan is not None and len(plan.tiles) > 1
    t = tiled.optimise_tiled(content, loss, plan, iterations=40, optimizer="adam", lr=0.02, content=content)
    loss.set_content(content)
    u = optimise_pixels(content, lambda x: loss(x), iterations=40, optimizer="adam", lr=0.02)
    start, lt, lu = (_whole_loss(loss, img, content) for img in (content, t.image, u.image))
    # both reduce the whole-image style loss by > 95 %, to a similar level (the residual gap
    # comes from crop borders: these 64 px tiles see only 8x8 relu4_1 features each)
    assert lt["style"] < 0.05 * start["style"] and lu["style"] < 0.05 * start["style"]
    assert lt["style"] < 2.0 * lu["style"]
    assert abs(lt["content"] - lu["content"]) < 0.25 * lu["content"]
    # and they change the image in the same direction
    du, dt = (u.image - content).flatten(), (t.image - content).flatten()
    assert torch.nn.functional.cosine_similarity(du, dt, dim=0) > 0.6


def test_tiles_do_not_drift_apart_no_seams(problem):
    loss, content = problem
    plan = _plan(loss, (96, 128))
    t = tiled.optimise_tiled(content, loss, plan, iterations=30, optimizer="adam", lr=0.02, content=content)
    img = t.image
    cores = tiled._core_bounds(plan.tiles, plan.size)
    xb = sorted({c[2] for c in cores if c[2] > 0})
    yb = sorted({c[0] for c in cores if c[0] > 0})
    gx = (img[..., :, 1:] - img[..., :, :-1]).abs().mean(dim=(0, 1, 2))  # per column boundary
    gy = (img[..., 1:, :] - img[..., :-1, :]).abs().mean(dim=(0, 1, 3))
    assert xb and yb
    # gradient across each core border (and across the tiles' own edges) is not above the image's typical gradient
    edges_x = set(xb) | {t_.x0 for t_ in plan.tiles if t_.x0 > 0} | {t_.x1 for t_ in plan.tiles if t_.x1 < 128}
    edges_y = set(yb) | {t_.y0 for t_ in plan.tiles if t_.y0 > 0} | {t_.y1 for t_ in plan.tiles if t_.y1 < 96}
    for b in edges_x:
        assert gx[b - 1] <= 1.5 * gx.median(), (b, float(gx[b - 1]), float(gx.median()))
    for b in edges_y:
        assert gy[b - 1] <= 1.5 * gy.median(), (b, float(gy[b - 1]), float(gy.median()))


def test_cores_partition_the_image():
    from impasto.image.tiles import plan_tiles

    tiles = plan_tiles((96, 128), 48, 12)
    cover = torch.zeros(96, 128)
    for y0, y1, x0, x1 in tiled._core_bounds(tiles, (96, 128)):
        cover[y0:y1, x0:x1] += 1
    assert torch.equal(cover, torch.ones(96, 128))


def test_whole_image_statistics_from_tiles(problem, image_factory):
    loss, _ = problem
    img = image_factory(96, 128, seed=8)
    sums = tiled.style_sums_tiled(loss, img, None, tile=64, overlap=16)
    whole = loss.style_sums(img)
    for layer in ("relu1_1", "relu2_1"):  # shallow layers: context of 16 px covers the receptive field
        assert torch.allclose(sums[layer][0]["n"], whole[layer][0]["n"])
        assert torch.allclose(sums[layer][0]["s2"], whole[layer][0]["s2"], rtol=1e-3)


def test_memory_estimate_grows_with_size_and_plans_tiles(tiny_encoder):
    loss = PerceptualLoss(tiny_encoder, content_layers=["relu4_2"], style_layers=["relu1_1", "relu5_1"])
    small = tiled.estimate_peak_bytes(tiny_encoder, loss.layers, (256, 256), "lbfgs")
    big = tiled.estimate_peak_bytes(tiny_encoder, loss.layers, (1024, 1024), "lbfgs")
    assert big > small * 3
    cfg = TilingOptions(max_memory=tiled.parse_memory("800M"))
    assert tiled.plan_for(cfg, loss, (128, 128), torch.device("cpu")) is None
    plan = tiled.plan_for(cfg, loss, (1024, 1024), torch.device("cpu"))
    assert plan is not None and len(plan.tiles) > 1 and "tiles" in plan.describe()
    # the whole plan (tile + whole-image buffers + minimal L-BFGS history) fits the budget
    image_bytes = 1024 * 1024 * 12
    assert plan.tile_estimate + plan.overhead + 10 * image_bytes <= 800 * 2**20
    assert 3 <= tiled.lbfgs_history_for(plan, "lbfgs", image_bytes) <= 100
    with pytest.raises(UsageError, match="even in 128px tiles, more than the memory budget") as info:
        tiled.plan_for(TilingOptions(max_memory=tiled.parse_memory("600M")), loss, (2048, 2048), torch.device("cpu"))
    assert "raise max_memory or lower edge" in str(info.value) and "raise --max-memory or lower --edge" in info.value.with_flags()


def test_parse_memory():
    assert tiled.parse_memory("8G") == 8 * 2**30
    assert tiled.parse_memory("1.5GB") == int(1.5 * 2**30)
    assert tiled.parse_memory("auto") is None
    with pytest.raises(ConfigError, match="^max_memory 'lots': expected a size like 8G") as info:
        tiled.parse_memory("lots")
    assert info.value.with_flags().startswith("--max-memory 'lots'")


def test_sliced_wasserstein_refuses_tiling(tiny_encoder):
    loss = PerceptualLoss(tiny_encoder, content_layers=["relu4_2"], style_layers=["relu1_1"], style_loss="sliced_wasserstein")
    with pytest.raises(UsageError, match="sliced_wasserstein cannot be tiled") as info:
        tiled.plan_for(TilingOptions(tile=64), loss, (128, 128), torch.device("cpu"))
    assert info.value.with_flags() == (
        "--style-loss sliced_wasserstein cannot be tiled (its statistics are not additive over tiles); "
        "use gram, mean_std or wasserstein for images above the memory budget, or raise --max-memory"
    )


def test_gatys_tiled_end_to_end_with_masks_and_colours(image_factory):
    from impasto import api

    content, style = image_factory(64, 96, seed=1), image_factory(64, 64, seed=2, smooth=False)
    events = []
    r = api.stylize(content, style, encoder="tiny_vgg", weights="random", edge=96, scales="96", iterations=10, tile=64, tile_overlap=16, preserve_colors="luminance", callback=events.append)
    assert r.manifest["levels"][-1]["tiled"] is True
    assert r.image.shape[-2:] == (64, 96)
    assert any("tiles" in getattr(e, "text", "") for e in events)


def _tiled_evaluation(loss, image, plan, content):
    """The loss and gradient one tiled evaluation returns at ``image``."""
    captured = {}
    real = tiled.optimise_pixels

    def grab(init, evaluate, options=None, **kwargs):
        x = image.clone().requires_grad_(True)
        value, terms = evaluate(x)
        captured.update(value=float(value), grad=x.grad.clone(), terms={k: float(v) for k, v in terms.items()})
        return real(init, evaluate, options, **{**kwargs, "iterations": 0})

    tiled.optimise_pixels = grab
    try:
        tiled.optimise_tiled(content, loss, plan, iterations=0, content=content)
    finally:
        tiled.optimise_pixels = real
    return captured


@pytest.mark.parametrize("style_loss", ["gram", "mean_std", "wasserstein"])
def test_tiled_loss_and_gradient_equal_the_whole_image_ones(tiny_encoder, image_factory, style_loss):
    """With the overlap covering the receptive field (relu3_1: 24 px), every evaluation returns
    the whole-image loss and gradient at the current image, not stale statistics."""
    content = image_factory(96, 128, seed=3)
    loss = PerceptualLoss(tiny_encoder, content_layers=["relu3_1"], style_layers=["relu1_1", "relu2_1", "relu3_1"],
                          style_weight=20.0, tv_weight=0.5, style_loss=style_loss)
    loss.set_style([image_factory(64, 64, seed=4, smooth=False)])
    plan = tiled.plan_for(TilingOptions(tile=64, overlap=48), loss, (96, 128), torch.device("cpu"))
    assert len(plan.tiles) == 6 and all(t.y0 % plan.stride == 0 and t.x0 % plan.stride == 0 for t in plan.tiles)
    for seed in (5, 6):  # two different images: the statistics follow the image
        image = (content + 0.2 * image_factory(96, 128, seed=seed, smooth=False) - 0.1).clamp(0, 1)
        got = _tiled_evaluation(loss, image, plan, content)
        loss.set_content(content)
        x = image.clone().requires_grad_(True)
        value, terms = loss(x)
        value.backward()
        assert abs(got["value"] - float(value.detach())) < 1e-4 * float(value.detach())
        for k in ("content", "style", "tv"):
            assert got["terms"][k] == pytest.approx(float(terms[k].detach()), rel=1e-4)
        assert float((got["grad"] - x.grad).norm() / x.grad.norm()) < 1e-4


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_tiled_optimisation_ends_within_10_percent_of_untiled(problem, optimizer):
    """The default optimiser (L-BFGS) used to diverge tiled (stale statistics broke its
    curvature pairs): now both optimisers end within 15 % of the untiled loss. (Projected
    L-BFGS lowered both: tiled 0.79 -> 0.56, untiled 0.81 -> 0.51, so tiled now trails by 10 %.)"""
    loss, content = problem
    plan = _plan(loss, (96, 128), tile=64, overlap=32)
    assert len(plan.tiles) > 1
    t = tiled.optimise_tiled(content, loss, plan, iterations=30, optimizer=optimizer, content=content)
    loss.set_content(content)
    u = optimise_pixels(content, lambda x: loss(x), iterations=30, optimizer=optimizer)
    lt, lu, start = (_whole_loss(loss, img, content) for img in (t.image, u.image, content))
    total = lambda d: loss.content_weight * d["content"] + loss.style_weight * d["style"]  # noqa: E731
    assert total(lt) < 0.2 * total(start)
    assert total(lt) <= 1.15 * total(lu), (total(lt), total(lu))
    assert t.history[-1]["total"] < t.history[0]["total"] and t.stopped == "completed"
