"""Applying trained models: tiling, colours and strength, batches with bad files, ONNX and TorchScript."""

from __future__ import annotations

import pytest
import torch

from impasto.errors import ConfigError, ImageError, ModelFileError, UsageError
from impasto.image.io import load_image, read_metadata
from impasto.methods.feedforward import ApplyConfig, TorchRunner, apply_model, auto_tile, export_model, load_model, stylise_tensor
from impasto.image.tiles import plan_tiles
from tests.conftest import require_module


def _smooth(h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, h // 16, w // 16, generator=g)
    return (torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False) + 0.05 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)


TOL = 1e-4  # tiled vs whole, max abs difference on [0, 1] float output (float32 rounding only)


def _onnx_runner(tmp_path, model_file):
    from impasto.methods.feedforward import OnnxRunner, read_onnx_meta

    path = export_model(model_file, tmp_path / (model_file.stem + ".onnx"))
    return OnnxRunner(path, read_onnx_meta(path), ApplyConfig())


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
@pytest.mark.parametrize("arch", ["johnson-small", "texture-synth"])
def test_tiled_equals_whole_everywhere(tmp_path, models, arch, runtime):
    """Exact whole-image statistics (streamed) + cores far from tile edges: every pixel matches."""
    if runtime == "onnx":
        pytest.importorskip("onnxruntime")
        runner = _onnx_runner(tmp_path, models[arch])
    else:
        runner = TorchRunner(load_model(models[arch]), ApplyConfig())
    if arch == "texture-synth":  # receptive radius ~77 px: tiles of 256 own 96 px cores
        image, size, tile, cell = None, (176, 272), 256, 16
    else:  # radius ~39 px: tiles of 128 own 48 px cores; odd size (padding to the cell)
        image, size, tile, cell = _smooth(128, 144)[..., :118, :141].contiguous(), (118, 141), 128, 4
    whole = runner(image, size)
    tiled = stylise_tensor(runner, image, size, tile=tile, overlap=ApplyConfig().overlap, cell=cell)
    assert tiled.shape == whole.shape == (1, 3, *size)
    diff = (tiled - whole).abs()
    assert float(diff.max()) < TOL, (float(diff.max()), float(diff.mean()))


def test_tile_plan_partitions_the_canvas_into_aligned_cores():
    from impasto.methods.ff_tiling import plan_cores

    canvas, tile, halo, cell = (200, 328), 120, 40, 4
    plan = plan_cores(canvas, tile, halo, cell)
    owner = torch.zeros(canvas, dtype=torch.int64)
    for (ey0, ey1, ex0, ex1), (cy0, cy1, cx0, cx1) in plan:
        owner[cy0:cy1, cx0:cx1] += 1
        assert all(v % cell == 0 for v in (ey0, ey1, ex0, ex1, cy0, cy1, cx0, cx1))
        assert ey0 <= cy0 < cy1 <= ey1 and ex0 <= cx0 < cx1 <= ex1
        assert ey1 - ey0 <= tile and ex1 - ex0 <= tile
        assert (cy0 - ey0 == halo or ey0 == 0) and (ey1 - cy1 == halo or ey1 == canvas[0])
    assert bool((owner == 1).all())


def test_apply_with_forced_tiles_equals_whole_for_both_runtimes(tmp_path, models, photo):
    """`impasto apply --tile` with every other setting at its default: same image as whole."""
    pytest.importorskip("onnxruntime")
    src = photo("p.png", 116, 150, seed=3)
    outs = {}
    for runtime in ("torch", "onnx"):
        for tile in (0, 128):
            res = apply_model(models["johnson-small"], [src], tmp_path / f"{runtime}{tile}", runtime=runtime, tile=tile, bit_depth=16)
            outs[runtime, tile] = load_image(res.written[0]).image
            assert read_metadata(res.written[0])["tile"] == tile
    for runtime in ("torch", "onnx"):
        assert float((outs[runtime, 128] - outs[runtime, 0]).abs().max()) < 1e-3
    assert float((outs["onnx", 128] - outs["torch", 128]).abs().max()) < 1e-3


def test_approximate_statistics_mode(tmp_path, models):
    """--stats-edge N keeps the older one-pass mode (torch only): close to whole, not exact."""
    runner = TorchRunner(load_model(models["johnson-small"]), ApplyConfig(channels_last=False))
    image = _smooth(128, 128, seed=1)
    whole = runner(image, (128, 128))
    approx = stylise_tensor(runner, image, (128, 128), tile=96, overlap=32, stats_edge=64, cell=4)
    assert approx.shape == whole.shape and float((approx - whole).abs().mean()) < 0.1
    with pytest.raises(ConfigError, match="stats_edge must be") as info:
        ApplyConfig(stats_edge=8)
    assert info.value.with_flags().startswith("--stats-edge must be")
    pytest.importorskip("onnxruntime")
    with pytest.raises(UsageError, match="stats_edge"):
        stylise_tensor(_onnx_runner(tmp_path, models["johnson-small"]), image, (128, 128), tile=96, overlap=32, stats_edge=64, cell=4)


def test_apply_files_folders_alpha_metadata_and_bad_inputs(tmp_path, models, photo):
    good = photo("in/a.png", 40, 56)
    photo("in/nested/b.png", 32, 32, seed=1)
    rgba = photo("c.png", 24, 36, seed=2, alpha=True)
    (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    events = []
    result = apply_model(models["johnson-small"], [tmp_path / "in", rgba], tmp_path / "out", callback=events.append, suffix="_s")
    names = sorted(p.relative_to(tmp_path / "out").as_posix() for p in result.written)
    assert names == ["a_s.png", "c_s.png", "nested/b_s.png"]
    assert len(result.failed) == 1 and "broken.jpg" in result.failed[0][1]
    out = load_image(tmp_path / "out" / "c_s.png")
    assert out.size == (24, 36) and out.alpha is not None
    assert abs(float(out.alpha[..., :12, :].mean()) - 128 / 255) < 0.01
    meta = read_metadata(tmp_path / "out" / "a_s.png")
    assert meta["arch"] == "johnson-small" and meta["style"] == "style.png" and meta["source"] == "a.png"
    # one bad file on its own is an error for that file
    with pytest.raises(ImageError, match="broken.jpg"):
        apply_model(models["johnson-small"], [tmp_path / "in" / "broken.jpg"], tmp_path / "out2")
    with pytest.raises(ImageError, match="missing.png"):
        apply_model(models["johnson-small"], [tmp_path / "missing.png"], tmp_path / "out2")
    assert good.exists()


def test_strength_edge_and_colour_preservation(tmp_path, models, photo):
    src = photo("p.png", 40, 56)
    original = load_image(src).image
    zero = apply_model(models["johnson-small"], [src], tmp_path / "zero", strength=0.0)
    assert torch.allclose(load_image(zero.written[0]).image, original, atol=1 / 255)
    small = apply_model(models["johnson-small"], [src], tmp_path / "edge", edge=28)
    assert load_image(small.written[0]).size == (20, 28)
    from impasto.image.color import rgb_to_yiq

    lum = apply_model(models["johnson-small"], [src], tmp_path / "lum", preserve_colors="luminance")
    styled_iq = rgb_to_yiq(load_image(lum.written[0]).image)[:, 1:]
    photo_iq = rgb_to_yiq(original)[:, 1:]
    assert float((styled_iq - photo_iq).abs().mean()) < 0.02
    hist = apply_model(models["johnson-small"], [src], tmp_path / "hist", preserve_colors="histogram")
    mean_out = load_image(hist.written[0]).image.mean(dim=(2, 3))
    assert torch.allclose(mean_out, original.mean(dim=(2, 3)), atol=0.03)


def test_texture_models(tmp_path, models, photo):
    synth = apply_model(models["texture-synth"], [], tmp_path / "tex", size="40x72", seed=3)
    assert load_image(synth.written[0]).size == (40, 72)
    other = apply_model(models["texture-synth"], [], tmp_path / "tex", size="40x72", seed=4)
    assert synth.written[0] != other.written[0]
    assert float((load_image(synth.written[0]).image - load_image(other.written[0]).image).abs().mean()) > 0.002
    with pytest.raises(UsageError, match="no input images"):
        apply_model(models["texture-synth"], [photo()], tmp_path / "tex")
    styl = apply_model(models["texture"], [photo("q.png", 30, 50)], tmp_path / "sty")
    assert load_image(styl.written[0]).size == (30, 50)


def test_auto_tile():
    assert auto_tile((1024, 1024), 768, 64, 4, whole_pixels=1024 * 1024) == 0
    assert auto_tile((2048, 2048), 768, 64, 4, whole_pixels=1024 * 1024) == 728
    assert auto_tile((1000, 1040), 768, 64, 4, whole_pixels=1024 * 1024) == 0
    assert auto_tile((1100, 1100), 768, 64, 4, whole_pixels=1024 * 1024) == 584
    assert auto_tile((800, 600), 1024, 64, 4) == 0
    side = auto_tile((2048, 2048), 1088, 64, 4)
    assert side <= 1088 and side % 4 == 0
    assert len(plan_tiles((2048, 2048), side, 64)) == 4
    side = auto_tile((2048, 1000), 1024, 64, 4)
    assert side <= 1024 and len({t.y0 for t in plan_tiles((2048, 1000), side, 64)}) == 3


@pytest.mark.parametrize("arch", ["johnson", "johnson-small", "texture"])
def test_onnx_matches_pytorch(tmp_path, models, arch):
    require_module("onnxruntime")
    from impasto.methods.feedforward import OnnxRunner, read_onnx_meta

    onnx_path = export_model(models[arch], tmp_path / f"{arch}.onnx")
    meta = read_onnx_meta(onnx_path)
    assert meta["arch"] == arch and meta["style_name"] == "style.png"
    ort = OnnxRunner(onnx_path, meta, ApplyConfig())
    ref = TorchRunner(load_model(models[arch]), ApplyConfig())
    for size in [(40, 56), (37, 61)]:  # dynamic height/width, padding for odd sizes
        image = _smooth(48, 64)[..., : size[0], : size[1]].contiguous()
        a, b = ort(image, size), ref(image, size)
        assert a.shape == b.shape == (1, 3, *size)
        assert float((a - b).abs().max()) < 1e-3


def test_apply_with_onnx_runtime_end_to_end(tmp_path, models, photo):
    require_module("onnxruntime")
    src = photo("p.png", 40, 56)
    onnx_path = export_model(models["johnson-small"], tmp_path / "m.onnx")
    via_onnx = apply_model(onnx_path, [src], tmp_path / "onnx")
    via_torch = apply_model(models["johnson-small"], [src], tmp_path / "torch")
    a, b = load_image(via_onnx.written[0]).image, load_image(via_torch.written[0]).image
    assert float((a - b).abs().max()) <= 1 / 255 + 1e-6
    assert read_metadata(via_onnx.written[0])["runtime"] == "onnx"
    # runtime onnx with a .pt exports on the fly
    again = apply_model(models["johnson-small"], [src], tmp_path / "onnx2", runtime="onnx")
    assert float((load_image(again.written[0]).image - b).abs().max()) <= 1 / 255 + 1e-6


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_export_runs_at_other_sizes(tmp_path, models):
    path = export_model(models["johnson-small"], tmp_path / "m.torchscript.pt", format="torchscript")
    scripted = torch.jit.load(str(path))
    ref = load_model(models["johnson-small"]).net
    x = _smooth(48, 64)[..., :44, :60].contiguous()
    with torch.no_grad():
        assert float((scripted(x) - ref(x)).abs().max()) < 1e-4


def test_bad_model_and_onnx_files(tmp_path, photo):
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match="bad.pt"):
        apply_model(tmp_path / "bad.pt", [photo()], tmp_path / "o")
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match="bad.onnx"):
        apply_model(tmp_path / "bad.onnx", [photo()], tmp_path / "o")


def test_onnx_tiles_with_deduplicated_weights(tmp_path):
    """A freshly initialised network has identical norm weights, which the exporter shares via
    Identity nodes; the rewritten graph must still find every norm's scale and bias."""
    pytest.importorskip("onnxruntime")
    from impasto.methods.feedforward import TrainConfig, _model_payload, save_model
    from impasto.nets import build_net

    torch.manual_seed(0)
    net, net_config = build_net("johnson-small")
    path = save_model(tmp_path / "m.pt", _model_payload(net.eval(), "johnson-small", net_config, TrainConfig(arch="johnson-small", steps=1), {"name": "s", "sha256": "0" * 64}, 1, {}))
    runner = _onnx_runner(tmp_path, path)
    image = _smooth(128, 160)
    tiled = stylise_tensor(runner, image, (128, 160), tile=128, overlap=64, cell=4)
    assert float((tiled - runner(image, (128, 160))).abs().max()) < TOL


def test_apply_method_equals_apply_model(tmp_path, models, photo):
    """The registered ``apply`` method (one image in memory) and ``apply_model`` (files) share one
    code path: same pixels (up to 8-bit rounding), same metadata plus config and time."""
    from impasto.image.io import LoadedImage
    from impasto.methods.ff_apply import ApplyMethod
    from impasto.methods.registry import get_method

    method = get_method("apply")
    assert isinstance(method, ApplyMethod) and [i.name for i in method.inputs] == ["model", "image", "style", "style_mask"]
    src = photo("p.png", 40, 56, alpha=True)
    config = ApplyConfig(edge=48, strength=0.8, preserve_colors="luminance")
    written = apply_model(models["johnson-small"], [src], tmp_path / "files", config=config).written[0]
    on_disk = load_image(written)
    result = method.run(config, {"model": models["johnson-small"], "image": src})
    assert float((result.image - on_disk.image).abs().max()) <= 0.5 / 255 + 1e-6
    saved = load_image(result.save(tmp_path / "mem.png"))
    assert torch.equal(saved.image, on_disk.image) and torch.equal(saved.alpha, on_disk.alpha)
    file_meta = read_metadata(written)
    assert file_meta["method"] == "feedforward" and result.manifest["method"] == "apply"
    assert {k: v for k, v in result.manifest.items() if k not in ("method", "config", "time_s")} == {k: v for k, v in file_meta.items() if k != "method"}
    assert result.manifest["config"]["strength"] == 0.8 and result.manifest["time_s"] >= 0
    # a LoadedImage or a tensor gives the same pixels
    loaded = load_image(src)
    assert torch.equal(method.run(config, {"model": models["johnson-small"], "image": loaded}).image, result.image)
    assert torch.equal(method.run(config, {"model": models["johnson-small"], "image": loaded.image}).image, result.image)
    # texture synthesis: no image
    tex = method.run(ApplyConfig(size="40x72", seed=3), {"model": models["texture-synth"]})
    tex_file = apply_model(models["texture-synth"], [], tmp_path / "tex", size="40x72", seed=3).written[0]
    assert float((tex.image - load_image(tex_file).image).abs().max()) <= 0.5 / 255 + 1e-6
    assert tex.manifest["seed"] == 3 and tex.manifest["size"] == [40, 72]
    with pytest.raises(UsageError, match="no input images"):
        method.run(ApplyConfig(), {"model": models["texture-synth"], "image": src})
    with pytest.raises(UsageError, match="give an image"):
        method.run(ApplyConfig(), {"model": models["johnson-small"]})


def test_torch_runner_runs_channels_last_on_a_cpu_unless_told_otherwise(models):
    """ApplyConfig.channels_last auto: channels-last on a CPU (oneDNN's own layout: faster, in
    bf16 above all) for networks that want it; --no-channels-last and --channels-last decide."""
    from impasto.nets.adain import AdaINNet

    model = load_model(models["johnson-small"])
    image = _smooth(64, 48, seed=2)
    outs = {}
    for flag, layout in ((None, torch.channels_last), (False, torch.contiguous_format), (True, torch.channels_last)):
        runner = TorchRunner(model, ApplyConfig(channels_last=flag))
        assert runner.memory_format == layout
        outs[flag] = runner(image, (64, 48))
        assert outs[flag].is_contiguous()  # handed back planar whatever ran inside
    torch.testing.assert_close(outs[None], outs[False], atol=5e-5, rtol=0)
    assert AdaINNet.channels_last_cpu is False  # its encoder picks its own layout
