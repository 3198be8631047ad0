"""Colour and spatial control, every style loss, reconstruct, sweep and batch."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from impasto import api
from impasto.cli.main import main
from impasto.image import color
from impasto.losses import STYLE_LOSSES, gram_matrix

FAST = dict(encoder="tiny_vgg", weights="random", edge=48, scales="48", iterations=15, device="cpu")


def test_luminance_mode_keeps_the_content_chroma(image_factory):
    content, style = image_factory(40, 48, seed=1), image_factory(48, 48, seed=2, smooth=False)
    r = api.stylize(content, style, preserve_colors="luminance", **FAST)
    yiq_out, yiq_c = color.rgb_to_yiq(r.image), color.rgb_to_yiq(content)
    inside = ((r.image > 0.01) & (r.image < 0.99)).all(1)  # clamping to [0, 1] may bend chroma
    assert inside.float().mean() > 0.8
    diff = (yiq_out[:, 1:] - yiq_c[:, 1:]).abs().permute(1, 0, 2, 3)[:, inside]
    assert diff.max() < 1e-3
    assert (yiq_out[:, :1] - yiq_c[:, :1]).abs().mean() > 1e-3  # but luminance was stylised


def test_histogram_mode_gives_the_output_the_content_palette(image_factory):
    content = image_factory(40, 48, seed=1) * torch.tensor([1.0, 0.3, 0.3]).view(1, 3, 1, 1)  # reddish
    style = image_factory(48, 48, seed=2, smooth=False) * torch.tensor([0.2, 0.3, 1.0]).view(1, 3, 1, 1)  # bluish
    plain = api.stylize(content, style, **FAST)
    kept = api.stylize(content, style, preserve_colors="histogram", **FAST)
    mean = lambda x: x.mean(dim=(0, 2, 3))  # noqa: E731
    assert (mean(kept.image) - mean(content)).abs().sum() < (mean(plain.image) - mean(content)).abs().sum()
    matched = color.match_color(style, content)
    assert torch.allclose(mean(matched), mean(content), atol=0.02)


@pytest.mark.parametrize("kind", STYLE_LOSSES)
def test_every_style_loss_decreases_under_optimisation(image_factory, kind):
    content, style = image_factory(40, 48, seed=1), image_factory(48, 48, seed=2, smooth=False)
    r = api.stylize(content, style, style_loss=kind, **FAST)
    hist = r.manifest["loss_history"]
    assert hist[-1]["style"] < 0.5 * hist[0]["style"]


def _write(path, arr):
    Image.fromarray((arr * 255).round().astype(np.uint8)).save(path)
    return path


def test_masks_give_each_region_its_own_style(tmp_path, tiny_encoder):
    h, w = 48, 64
    rng = np.random.default_rng(0)
    style = np.zeros((h, w, 3))
    style[:, : w // 2] = rng.random((h, w // 2, 3))  # left: busy noise
    style[:, w // 2 :] = np.linspace(0.2, 0.8, w // 2)[None, :, None] * np.array([0.2, 0.4, 0.9])  # right: smooth ramp
    content = np.full((h, w, 3), 0.5) + 0.05 * rng.random((h, w, 3))
    cmap = np.zeros((h, w, 3))
    cmap[:, : w // 2] = [1, 0, 0]
    cmap[:, w // 2 :] = [0, 0, 1]
    paths = {n: _write(tmp_path / f"{n}.png", a) for n, a in [("style", style), ("content", content), ("map", cmap)]}
    r = api.stylize(str(paths["content"]), str(paths["style"]), content_mask=str(paths["map"]), style_mask=str(paths["map"]),
                    encoder="tiny_vgg", weights="random", edge=64, scales="64", iterations=25)
    s = torch.from_numpy(style).permute(2, 0, 1)[None].float()
    feats_out, feats_style = tiny_encoder(r.image)["relu2_1"], tiny_encoder(s)["relu2_1"]
    half = feats_out.shape[-1] // 2
    g = lambda f: gram_matrix(f.contiguous())  # noqa: E731
    left_out, right_out = g(feats_out[..., :half]), g(feats_out[..., half:])
    left_st, right_st = g(feats_style[..., :half]), g(feats_style[..., half:])
    assert (left_out - left_st).norm() < (left_out - right_st).norm()
    assert (right_out - right_st).norm() < (right_out - left_st).norm()


def test_bad_mask_is_a_clear_cli_error(tmp_path, write_image, capsys):
    content, style = write_image("c.png", 48, 64), write_image("s.png", 48, 48)
    wrong = _write(tmp_path / "m.png", np.zeros((10, 40, 3)))
    code = main(["gatys", str(content), str(style), "--content-mask", str(wrong), "--style-mask", str(wrong), "-o", str(tmp_path / "o.png"), "--encoder", "tiny_vgg", "--weights", "random", "--edge", "48", "-n", "2", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "m.png" in err and "aspect" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("what", ["content", "style"])
def test_reconstruct_lowers_the_representation_distance(tmp_path, write_image, capsys, what):
    img = write_image("i.png", 48, 48, seed=5)
    out = tmp_path / "r.png"
    assert main(["reconstruct", str(img), "--layer", "relu2_1", "--what", what, "-n", "15", "--edge", "48", "--encoder", "tiny_vgg", "--weights", "random", "-o", str(out), "-q"]) == 0
    from impasto.image.io import read_metadata

    meta = read_metadata(out)
    assert meta["distance_end"] < 0.5 * meta["distance_start"]


def test_sweep_writes_the_grid(tmp_path, write_image):
    content, style = write_image("c.png", 48, 64), write_image("s.png", 48, 48, seed=3)
    out = tmp_path / "sweep"
    code = main(["sweep", str(content), str(style), "--param", "init=content,noise", "--param", "style_weight=10,1000", "-o", str(out),
                 "--encoder", "tiny_vgg", "--weights", "random", "--edge", "48", "-n", "3", "-q"])
    assert code == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [(r["init"], r["style_weight"]) for r in rows] == [("content", "10"), ("content", "1000"), ("noise", "10"), ("noise", "1000")]
    assert all((out / r["file"]).exists() and float(r["loss_total"]) > 0 for r in rows)
    sheet = Image.open(out / "sheet.png")
    assert sheet.size == (2 * (256 + 6) + 6, 2 * (256 + 2 * 12 + 6 + 6) + 6)  # 2 columns x 2 rows, labels: one line per parameter


def test_sweep_reuses_style_targets(tmp_path, write_image):
    from impasto.methods.sweep import parse_axis

    content, style = write_image("c.png", 48, 64), write_image("s.png", 48, 48, seed=3)
    info = api.sweep(str(content), str(style), [parse_axis("style_weight=1,10,100")], tmp_path / "o",
                     config=api.config_from_mapping(api_gatys_config(), dict(FAST, iterations=2)))
    assert len(info["runs"]) == 3 and info["style_targets_computed"] == 1


def api_gatys_config():
    from impasto.methods.gatys import GatysConfig

    return GatysConfig


def test_sweep_rejects_unknown_parameter(tmp_path, write_image, capsys):
    content, style = write_image("c.png"), write_image("s.png")
    code = main(["sweep", str(content), str(style), "--param", "style_wieght=1,2", "-o", str(tmp_path / "o")])
    assert code == 2 and "did you mean 'style_weight'" in capsys.readouterr().err


def test_batch_contents_times_styles(tmp_path, write_image):
    c1, c2 = write_image("a.png", 48, 64, seed=1), write_image("b.png", 48, 64, seed=2)
    s1, s2 = write_image("x.png", 48, 48, seed=3), write_image("y.png", 48, 48, seed=4)
    out = tmp_path / "styled"
    assert main(["batch", str(c1), str(c2), "--style", str(s1), "--style", str(s2), "-o", str(out), "--encoder", "tiny_vgg", "--weights", "random", "--edge", "48", "-n", "2", "-q"]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["a__x.png", "a__y.png", "b__x.png", "b__y.png"]
    assert json.loads((out / "a__y.png.json").read_text())["styles"][0]["path"] == str(s2)
