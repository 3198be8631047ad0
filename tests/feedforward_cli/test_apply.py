"""Applying trained models: tiling, colours and strength, batches with bad files, ONNX and TorchScript."""

from __future__ import annotations

import pytest
import torch

from impasto.errors import ImageError, ModelFileError, UsageError
from impasto.image.io import load_image, read_metadata
from impasto.methods.feedforward import ApplyConfig, TorchRunner, apply_model, auto_tile, export_model, load_model, stylise_tensor
from impasto.image.tiles import plan_tiles
from tests.conftest import require_module


def _smooth(h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, h // 16, w // 16, generator=g)
    return (torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False) + 0.05 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)


def _exact_region(size, tiles, margin):
    """Pixels at least ``margin`` px from every internal edge of every tile that covers them."""
    h, w = size
    ok = torch.ones(h, w, dtype=torch.bool)
    for t in tiles:
        inside = torch.zeros(h, w, dtype=torch.bool)
        inside[t.y0 : t.y1, t.x0 : t.x1] = True
        far = torch.zeros(h, w, dtype=torch.bool)
        y0 = t.y0 + (margin if t.y0 > 0 else 0)
        y1 = t.y1 - (margin if t.y1 < h else 0)
        x0 = t.x0 + (margin if t.x0 > 0 else 0)
        x1 = t.x1 - (margin if t.x1 < w else 0)
        far[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = True
        ok &= ~inside | far
    return ok


def test_tiled_equals_whole_image_away_from_tile_borders(models):
    model = load_model(models["johnson-small"])
    runner = TorchRunner(model, ApplyConfig(channels_last=False))
    image = _smooth(160, 160)
    whole = runner(image, (160, 160))
    tiled = stylise_tensor(runner, image, (160, 160), tile=96, overlap=32, stats_edge=1024, cell=4)
    assert tiled.shape == whole.shape
    tiles = [t.scaled(4) for t in plan_tiles((40, 40), 24, 8)]
    assert len(tiles) == 4
    exact = _exact_region((160, 160), tiles, margin=40)  # the receptive-field radius is 36 px
    assert exact.sum() > 0.3 * exact.numel()
    diff = (tiled - whole).abs().amax(dim=(0, 1))
    assert float(diff[exact].max()) < 1e-4


def test_tiles_leave_no_seam(models):
    model = load_model(models["johnson-small"])
    runner = TorchRunner(model, ApplyConfig(channels_last=False))
    image = _smooth(128, 128, seed=1)
    tiled = stylise_tensor(runner, image, (128, 128), tile=48, overlap=16, stats_edge=1024, cell=4)
    dx = (tiled[..., :, 1:] - tiled[..., :, :-1]).abs().mean(dim=(0, 1, 2))  # per column boundary
    tiles = plan_tiles((32, 32), 12, 4)
    edges = sorted({t.x0 * 4 for t in tiles if t.x0} | {t.x1 * 4 for t in tiles if t.x1 < 32})
    across = torch.stack([dx[e - 1] for e in edges]).mean()
    assert float(across) <= 1.5 * float(dx.mean()), (float(across), float(dx.mean()))


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


def test_texture_tiles_agree_with_the_whole_texture(models):
    """Positional noise + frozen statistics: tiles of a big texture match the whole away from borders."""
    model = load_model(models["texture-synth"])
    runner = TorchRunner(model, ApplyConfig(channels_last=False))
    whole = runner(None, (128, 160))
    tiled = stylise_tensor(runner, None, (128, 160), tile=96, overlap=32, stats_edge=1024, cell=16)
    assert tiled.shape == whole.shape
    # the coarsest scale sees a wide context, so compare where a single tile covers the pixel, far from its edge
    assert float((tiled - whole).abs()[..., :32, :32].max()) < 1e-4


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
