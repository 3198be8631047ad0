"""Style statistics as registered objects: the registry, the functional wrappers, and the recipe
"one class + one registration" exercised end to end with toy statistics."""

from __future__ import annotations

import pytest
import torch

from impasto.config import config_schema
from impasto.errors import ConfigError, UsageError
from impasto.losses import STYLE_LOSSES, PerceptualLoss, get_statistic, register_statistic, statistic_names, unregister_statistic
from impasto.losses import functional as LF
from impasto.losses.statistics import StyleStatistic, pixel_sums
from impasto.methods import gatys
from impasto.optim import tiled
from impasto.optim.options import TilingOptions


class ChannelMean(StyleStatistic):
    """Toy statistic: the channel means only (additive: its sums are n and s1)."""

    name = "toy_mean"

    def accumulate(self, features, mask=None, params=None):
        _f, _w, _fw, sums = pixel_sums(features, mask)
        return sums

    def finalize(self, sums):
        return {"mean": sums["s1"] / sums["n"].clamp_min(1e-8)[:, None]}

    def distance(self, stats, target):
        d = (stats["mean"] - target["mean"]).pow(2).sum(1)
        return (d / target["mean"].pow(2).sum(1).clamp_min(1e-8)).mean()


class SortedMean(ChannelMean):
    """Toy statistic declared non-additive: tiling must refuse it."""

    name = "toy_sorted"
    additive = False


@pytest.fixture
def toy():
    stats = [register_statistic(ChannelMean), register_statistic(SortedMean())]
    yield stats
    for s in stats:
        unregister_statistic(s.name)


def test_builtin_registry_and_flags():
    assert statistic_names()[:4] == ("gram", "mean_std", "wasserstein", "sliced_wasserstein")
    assert tuple(STYLE_LOSSES) == statistic_names() and "gram" in STYLE_LOSSES and "nope" not in STYLE_LOSSES
    assert ", ".join(STYLE_LOSSES).startswith("gram, mean_std")
    assert [get_statistic(n).additive for n in ("gram", "mean_std", "wasserstein", "sliced_wasserstein")] == [True, True, True, False]
    with pytest.raises(UsageError, match=r"unknown style_loss 'grma' \(did you mean 'gram'\?\); choose from gram, mean_std") as info:
        get_statistic("grma")
    assert info.value.params == ("style_loss",)
    with pytest.raises(ValueError, match="already registered"):
        register_statistic(type(get_statistic("gram")))


@pytest.mark.parametrize("kind", ["gram", "mean_std", "wasserstein", "sliced_wasserstein"])
def test_functional_wrappers_equal_the_objects(kind):
    stat = get_statistic(kind)
    f, t = torch.rand(2, 5, 6, 7), torch.rand(1, 5, 6, 7)
    proj = stat.layer_params(5, 3, f.device)
    a, b = LF.accumulate(kind, f, proj=proj), stat.accumulate(f, None, proj)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    target = LF.prepare_target(kind, LF.finalize(kind, LF.accumulate(kind, t, proj=proj)))
    want = stat.distance(stat.finalize(b), stat.prepare(stat.finalize(stat.accumulate(t, None, proj))))
    assert torch.equal(LF.style_distance(kind, LF.finalize(kind, a), target), want)


def test_a_registered_statistic_is_a_valid_choice_at_once(toy):
    assert "toy_mean" in STYLE_LOSSES and "toy_mean" in config_schema(gatys.GatysConfig)["properties"]["style_loss"]["enum"]
    assert gatys.GatysConfig(style_loss="toy_mean").style_loss == "toy_mean"


def test_toy_statistic_runs_a_gatys_optimisation(toy, tiny_encoder, image_factory):
    content, style = image_factory(40, 48, seed=1), image_factory(48, 48, seed=2, smooth=False)
    cfg = gatys.GatysConfig(encoder="tiny_vgg", weights="random", edge=48, scales="48", iterations=10, style_loss="toy_mean")
    out = gatys.run(cfg, content, [gatys.StyleInput(style)], encoder=tiny_encoder)
    assert out.history[-1]["style"] < 0.5 * out.history[0]["style"]
    # the toy statistic is additive, so a forced tiling works with it too
    tiled_cfg = gatys.GatysConfig(encoder="tiny_vgg", weights="random", edge=96, scales="96", iterations=3, tile=64, tile_overlap=16, style_loss="toy_mean")
    out = gatys.run(tiled_cfg, image_factory(64, 96, seed=3), [gatys.StyleInput(style)], encoder=tiny_encoder)
    assert out.levels[-1]["tiled"] is True and out.history[-1]["total"] < out.history[0]["total"]


def test_a_non_additive_statistic_is_refused_by_tiling(toy, tiny_encoder, image_factory):
    loss = PerceptualLoss(tiny_encoder, content_layers=["relu4_2"], style_layers=["relu1_1"], style_loss="toy_sorted")
    with pytest.raises(UsageError, match="style_loss toy_sorted cannot be tiled .*not additive") as info:
        tiled.plan_for(TilingOptions(tile=64), loss, (128, 128), torch.device("cpu"))
    assert "use gram, mean_std, wasserstein or toy_mean" in str(info.value)
    assert info.value.with_flags().startswith("--style-loss toy_sorted cannot be tiled")
    cfg = gatys.GatysConfig(encoder="tiny_vgg", weights="random", edge=96, scales="96", iterations=2, tile=64, style_loss="toy_sorted")
    with pytest.raises(UsageError, match="toy_sorted cannot be tiled"):
        gatys.run(cfg, image_factory(64, 96), [gatys.StyleInput(image_factory(48, 48))], encoder=tiny_encoder)


def test_unregistered_statistic_is_refused_again(toy):
    unregister_statistic("toy_mean")
    with pytest.raises(ConfigError, match="unknown style_loss 'toy_mean'"):
        gatys.GatysConfig(style_loss="toy_mean")
