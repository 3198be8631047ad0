"""The gatys method end to end on tiny images with random encoders."""

from __future__ import annotations

import json

import pytest
import torch

from impasto import api
from impasto.errors import ConfigError, ImageError, LayerError, UsageError
from impasto.losses import gram_matrix
from impasto.methods import gatys
from impasto.methods.gatys import GatysConfig, parse_layers, scale_ladder, strength_multiplier

FAST = dict(encoder="tiny_vgg", weights="random", edge=48, scales="48", iterations=15, device="cpu")


def test_parse_layers():
    assert parse_layers("relu1_1:0.2, relu2_1") == {"relu1_1": 0.2, "relu2_1": 1.0}
    assert parse_layers("") == {}
    with pytest.raises(ConfigError, match="weight 'x' is not a number"):
        parse_layers("relu1_1:x")


def test_config_validation_messages():
    """Library errors name parameters (``params``); the CLI spells them as flags (``with_flags``)."""
    with pytest.raises(ConfigError, match="^iterations must be >= 0, got -5") as info:
        GatysConfig(iterations=-5)
    assert info.value.params == ("iterations",) and info.value.with_flags() == "--iterations must be >= 0, got -5"
    with pytest.raises(ConfigError, match="^style_weight must be >= 0"):
        GatysConfig(style_weight=-1)
    with pytest.raises(ConfigError, match="^content_mask and style_mask go together") as info:
        GatysConfig(content_mask="a.png")
    assert info.value.with_flags().startswith("--content-mask and --style-mask go together")
    with pytest.raises(ConfigError, match="^scales '512,256': edges must be increasing") as info:
        GatysConfig(scales="512,256")
    assert info.value.with_flags().startswith("--scales '512,256'")
    with pytest.raises(ConfigError, match=r"unknown style_loss 'grm' \(did you mean 'gram'\?\)"):
        GatysConfig(style_loss="grm")
    assert GatysConfig().device == "auto"


def test_ladder_and_iterations():
    assert scale_ladder(1024) == (256, 512, 1024)
    assert scale_ladder(300) == (300,)
    cfg = GatysConfig(edge=1024, iterations=100)
    assert cfg.ladder() == (256, 512, 1024)
    assert cfg.iterations_per_scale(3) == (400, 200, 100)
    assert GatysConfig(edge=512, scales="512").ladder() == (512,)
    assert GatysConfig(edge=800, scales="200,400").ladder() == (200, 400, 800)
    with pytest.raises(ConfigError, match="^scale_iterations has 2 counts for 3 scales"):
        GatysConfig(edge=1024, scale_iterations="5,5").iterations_per_scale(3)


def test_strength_curve():
    assert strength_multiplier(0) == 0 and strength_multiplier(0.5) == 1
    assert strength_multiplier(0.75) == pytest.approx(10) and strength_multiplier(1) == pytest.approx(100)


@pytest.mark.parametrize("init", ["content", "style", "noise", "uniform"])
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_every_init_and_optimizer_lowers_the_loss(image_factory, init, optimizer):
    content, style = image_factory(40, 48, seed=1), image_factory(48, 48, seed=2, smooth=False)
    r = api.stylize(content, style, init=init, optimizer=optimizer, **FAST)
    hist = r.manifest["loss_history"]
    assert hist[-1]["total"] < 0.7 * hist[0]["total"]
    assert r.image.shape == (1, 3, 40, 48) and 0 <= r.image.min() and r.image.max() <= 1


def test_style_gram_distance_falls(image_factory, tiny_encoder):
    content, style = image_factory(40, 48, seed=1), image_factory(48, 48, seed=2, smooth=False)
    r = api.stylize(content, style, **FAST)
    tgt = gram_matrix(tiny_encoder(style)["relu2_1"])
    d = lambda img: (gram_matrix(tiny_encoder(img)["relu2_1"]) - tgt).norm().item()  # noqa: E731
    assert d(r.image) < 0.7 * d(content)


def test_same_seed_same_output(image_factory):
    content, style = image_factory(40, 48, seed=1), image_factory(48, 48, seed=2)
    a = api.stylize(content, style, init="noise", seed=3, **FAST)
    b = api.stylize(content, style, init="noise", seed=3, **FAST)
    c = api.stylize(content, style, init="noise", seed=4, **FAST)
    assert torch.equal(a.image, b.image)
    assert not torch.equal(a.image, c.image)


def test_one_level_pyramid_equals_the_plain_loop(image_factory, tiny_encoder):
    from impasto.features.padding import current_padding, padding_mode
    from impasto.optim.pixel import optimise_pixels

    content, style = image_factory(40, 48, seed=1), image_factory(48, 48, seed=2)
    cfg = GatysConfig(**FAST)
    out = gatys.run(cfg, content, [gatys.StyleInput(style)], encoder=tiny_encoder)
    assert current_padding(tiny_encoder) == "zeros"  # the shared encoder is left as it was
    loss = gatys.build_loss(cfg, tiny_encoder)
    with padding_mode(tiny_encoder, cfg.padding):
        loss.set_content(content)
        loss.set_style([style])
        plain = optimise_pixels(content, lambda x: loss(x), iterations=15)
    assert torch.allclose(out.image, plain.image, atol=1e-6)


def test_coarse_to_fine_runs_every_level(image_factory):
    content, style = image_factory(48, 64, seed=1), image_factory(48, 48, seed=2)
    events = []
    r = api.stylize(content, style, encoder="tiny_vgg", weights="random", edge=64, scales="32,64", scale_iterations="6,3", callback=events.append)
    assert [lv["size"] for lv in r.manifest["levels"]] == [[24, 32], [48, 64]]
    assert [lv["iterations"] for lv in r.manifest["levels"]] == [6, 3]
    assert r.image.shape[-2:] == (48, 64)


def test_style_blend_weights_matter(image_factory):
    content = image_factory(40, 48, seed=1)
    s1, s2 = image_factory(48, 48, seed=2, smooth=False), image_factory(48, 48, seed=9) * 0.3
    a = api.stylize(content, [s1, s2], **FAST)
    only_first = api.stylize(content, [s1], **FAST)
    assert not torch.allclose(a.image, only_first.image)


def test_strength_zero_returns_the_content(image_factory):
    content, style = image_factory(40, 48, seed=1), image_factory(48, 48, seed=2)
    r = api.stylize(content, style, strength=0.0, **FAST)
    assert torch.allclose(r.image, content, atol=1e-4)


def test_manifest_has_parameters_seed_versions_losses(image_factory, tmp_path):
    content, style = image_factory(40, 48, seed=1), image_factory(48, 48, seed=2)
    r = api.stylize(content, style, **FAST)
    m = r.manifest
    assert m["method"] == "gatys" and m["config"]["iterations"] == 15 and m["seed"] == 0
    assert {"torch", "python", "impasto"} <= set(m["versions"])
    assert m["encoder"]["weights_kind"] == "random" and m["peak_memory_mb"] > 0 and m["time_s"] > 0
    assert set(m["final_losses"]) >= {"total", "content", "style", "tv"}
    out = r.save(tmp_path / "o.png")
    assert json.loads((tmp_path / "o.png.json").read_text())["config"]["edge"] == 48
    from impasto.image.io import read_metadata

    assert read_metadata(out)["config"]["style_loss"] == "gram"


def test_unknown_layer_is_a_clear_error(image_factory):
    with pytest.raises(LayerError, match="did you mean 'relu4_2'"):
        api.stylize(image_factory(), image_factory(), content_layers="relu4_22", **FAST)


def test_too_small_content_is_refused(image_factory):
    with pytest.raises(ImageError, match="needs at least 16 px on each side"):
        api.stylize(image_factory(8, 64), image_factory(), encoder="tiny_vgg", weights="random", edge=64, scales="64", iterations=1)


def test_zero_style_weights_refused(image_factory, write_image):
    style = write_image("s.png")
    with pytest.raises(UsageError, match="must not all be 0"):
        api.stylize(image_factory(), [f"{style}:0"], **FAST)


def test_style_spec_parsing():
    assert api.parse_style_spec("a.jpg") == api.StyleSpec("a.jpg", 1.0, 1.0)
    assert api.parse_style_spec("a.jpg:0.7") == api.StyleSpec("a.jpg", 0.7, 1.0)
    assert api.parse_style_spec("a.jpg:0.7:2") == api.StyleSpec("a.jpg", 0.7, 2.0)
    assert api.parse_style_spec("C:/x/a.jpg:0.5") == api.StyleSpec("C:/x/a.jpg", 0.5, 1.0)
    with pytest.raises(ConfigError, match="blend weight must be >= 0"):
        api.parse_style_spec("a.jpg:-1")


def _border_profile(image):
    """(per-side brightness of the two edge rows minus the four rows inside them, texture of the
    edge rows relative to the interior's)."""
    y = image[0].mean(0)
    sides = [(y[:2], y[2:6]), (y[-2:], y[-6:-2]), (y[:, :2], y[:, 2:6]), (y[:, -2:], y[:, -6:-2])]
    bias = [float(e.mean() - n.mean()) for e, n in sides]
    gy = (image[0, :, 1:, :] - image[0, :, :-1, :]).abs().mean(0)
    gx = (image[0, :, :, 1:] - image[0, :, :, :-1]).abs().mean(0)
    edge = torch.cat([gy[:2].flatten(), gy[-2:].flatten(), gx[:, :2].flatten(), gx[:, -2:].flatten()]).mean()
    inner = torch.cat([gy[8:-8, 8:-8].flatten(), gx[8:-8, 8:-8].flatten()]).mean()
    return bias, float(edge / inner)


def test_no_frame_along_the_borders(tiny_encoder):
    """Zero padding left a smooth, brighter band along the borders (half the texture, top rows
    ~0.03 brighter); the default reflect padding stylises up to the edge."""
    g = torch.Generator().manual_seed(1)
    style = torch.nn.functional.interpolate(torch.rand(1, 3, 16, 16, generator=g), size=(64, 64), mode="nearest")
    content = torch.full((1, 3, 64, 80), 0.5) + 0.02 * torch.randn(1, 3, 64, 80, generator=g)
    profiles = {}
    for padding in ("reflect", "zeros"):
        cfg = GatysConfig(edge=80, scales="80", iterations=30, encoder="tiny_vgg", weights="random", **({} if padding == "reflect" else {"padding": padding}))
        profiles[padding] = _border_profile(gatys.run(cfg, content, [gatys.StyleInput(style)], encoder=tiny_encoder).image)
    bias, texture = profiles["reflect"]
    assert max(abs(b) for b in bias) < 0.02, bias
    assert 0.8 < texture < 1.25, texture
    zero_bias, zero_texture = profiles["zeros"]  # the artefact this guards against is real
    assert zero_texture < 0.7 and max(abs(b) for b in zero_bias) > 0.025, profiles["zeros"]


def test_style_cache_keys_on_content_not_identity(image_factory, tiny_encoder):
    """Equal pixels in two different tensors share an entry; other weights or another style do not."""
    from impasto.features import build_encoder

    content, style = image_factory(40, 48, seed=1), image_factory(48, 48, seed=2)
    cfg = GatysConfig(**{**FAST, "iterations": 1})
    cache = gatys.StyleCache()
    calls = []
    real = gatys._style_stats

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    gatys._style_stats, saved = counting, gatys._style_stats
    try:
        gatys.run(cfg, content, [gatys.StyleInput(style)], encoder=tiny_encoder, style_cache=cache)
        gatys.run(cfg, content, [gatys.StyleInput(style.clone(), name="copy")], encoder=tiny_encoder, style_cache=cache)
        assert len(cache) == 1 and len(calls) == 1
        other = build_encoder("tiny_vgg", weights="random", layers=list(tiny_encoder.layers), seed=1)
        gatys.run(cfg, content, [gatys.StyleInput(style)], encoder=other, style_cache=cache)
        assert len(cache) == 2
        gatys.run(cfg, content, [gatys.StyleInput(style * 0.5)], encoder=tiny_encoder, style_cache=cache)
        gatys.run(dataclasses_replace(cfg, style_loss="mean_std"), content, [gatys.StyleInput(style)], encoder=tiny_encoder, style_cache=cache)
        assert len(cache) == 4 and len(calls) == 4
    finally:
        gatys._style_stats = saved
    assert gatys.StyleCache.fingerprint(style) == gatys.StyleCache.fingerprint(style.clone())
    assert gatys.StyleCache.fingerprint(style) != gatys.StyleCache.fingerprint(style, torch.ones(1, 1, 48, 48))


def dataclasses_replace(cfg, **changes):
    import dataclasses

    return dataclasses.replace(cfg, **changes)


def test_loss_layers_resolves_presets_in_one_place(tiny_encoder):
    spec = tiny_encoder.spec
    assert gatys.loss_layers(GatysConfig(), spec) == ({"relu4_2": 1.0}, {n: 1.0 for n in spec.default_style_layers})
    assert gatys.loss_layers(GatysConfig(content_layers="relu3_1", style_layers="relu1_1:0.2,relu2_1"), spec) == (
        {"relu3_1": 1.0}, {"relu1_1": 0.2, "relu2_1": 1.0})
    loss = gatys.build_loss(GatysConfig(style_layers="relu1_1:0.2,relu2_1"), tiny_encoder)
    assert list(loss.style_layers) == ["relu1_1", "relu2_1"] and list(loss.content_layers) == ["relu4_2"]


def test_options_built_from_the_config():
    cfg = GatysConfig(optimizer="adam", lr=0.05, early_stop=0.01, patience=7, average=0.5, save_every=3, tile=128, tile_overlap=32, max_memory="1G")
    loop = gatys.loop_options(cfg, 40, level=1, levels=3)
    assert (loop.iterations, loop.optimizer, loop.lr, loop.early_stop, loop.average, loop.save_every, loop.stage, loop.stages) == (40, "adam", 0.05, (0.01, 7), 0.5, 3, 1, 3)
    assert gatys.loop_options(GatysConfig(), 5).lr is None and gatys.loop_options(GatysConfig(), 5).early_stop is None
    tiling = gatys.tiling_options(cfg)
    assert (tiling.tile, tiling.overlap, tiling.max_memory) == (128, 32, 2**30)
