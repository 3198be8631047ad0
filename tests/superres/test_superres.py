"""Super-resolution (Johnson et al. 2016): the network's sizes, exact tiling, the upscale command
(baselines, alpha, 16-bit, bad inputs) and a short seeded training that beats bicubic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from impasto.cli.main import main
from impasto.image.save import save_image
from impasto.methods.upscale import Upscaler, bicubic_upscale, lanczos_upscale, upscale_tensor
from impasto.methods.superres_train import SuperResTrainConfig
from impasto.nets import build_net
from impasto.nets.registry import net_from_config
from impasto.nets.superres import equalized_tail_scale

#: the output ends: the original network (registry default) and the one the training recipe builds
ENDS = {"original": {}, "trained": {"last_relu": False, "tail_scale": equalized_tail_scale(8)}}


def _net(scale: int, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    net, _ = build_net("superres", overrides={"scale": scale, "channels": 8, "n_res": 2, **overrides})
    with torch.no_grad():  # the detail branch starts at zero; give it weights so the tests see the network
        torch.nn.init.normal_(net.tail.conv.weight, std=0.05)
    return net.eval()


def _texture(g: torch.Generator, size: int) -> torch.Tensor:
    """Smooth random regions with sharp edges between them (what upscaling can sharpen)."""
    img = torch.zeros(1, 3, size, size)
    for cells, amp in ((3, 1.0), (6, 0.5), (12, 0.25)):
        img += amp * F.interpolate(torch.rand(1, 3, cells, cells, generator=g) - 0.5, size=(size, size), mode="bicubic", align_corners=False)
    return torch.sigmoid(6.0 * img)


def _photos(folder: Path, g: torch.Generator, count: int, size: int) -> Path:
    """A folder of ``count`` textures of ``size`` px (training data)."""
    folder.mkdir()
    for i in range(count):
        save_image(folder / f"{i}.png", _texture(g, size))
    return folder


@pytest.mark.parametrize("end", sorted(ENDS))
@pytest.mark.parametrize("scale", [4, 8])
@pytest.mark.parametrize("size", [(13, 21), (5, 7), (32, 17)])
def test_output_is_exactly_scale_times_the_input(scale, size, end):
    net = _net(scale, **ENDS[end])
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (1, 3, size[0] * scale, size[1] * scale)
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    if min(size) >= 8:
        assert torch.allclose(y, net.reference(x), atol=1e-5)  # sub-pixel upsampling == nearest + conv


@pytest.mark.parametrize("end", sorted(ENDS))
def test_receptive_radius_bounds_the_reach(end):
    net = _net(4, **ENDS[end])
    x = torch.rand(1, 3, 48, 48)
    with torch.no_grad():
        y0 = net(x)
        x[..., 24, 24] += 1.0
        reach = (net(x) - y0).abs().sum(dim=(0, 1)).nonzero()
    lo, hi = reach.min(0).values // 4, reach.max(0).values // 4
    assert int((24 - lo).max()) <= net.radius and int((hi - 24).max()) <= net.radius


@pytest.mark.parametrize("end", sorted(ENDS))
@pytest.mark.parametrize("scale", [4, 8])
def test_tiled_equals_untiled(scale, end):
    net = _net(scale, seed=1, **ENDS[end])
    up = Upscaler(lambda x: net(x), scale, net.radius, {}, torch.device("cpu"))
    x = torch.rand(1, 3, 45, 38)
    with torch.no_grad():
        whole = upscale_tensor(up, x, tile=0)
        tiled = upscale_tensor(up, x, tile=net.radius * 2 + 8)  # many small tiles
    assert tiled.shape == whole.shape == (1, 3, 45 * scale, 38 * scale)
    assert (tiled - whole).abs().max() < 1e-5


def test_output_end_options():
    """The recipe builds the linear, scaled output end; a model file without the options (written
    before them) rebuilds the original network."""
    assert SuperResTrainConfig(sr_channels=16).net_overrides() == {"scale": 4, "channels": 16, "n_res": 4, "residual": True, "last_relu": False, "tail_scale": 1 / 36}
    assert SuperResTrainConfig(sr_legacy_tail=True).net_overrides()["last_relu"] is True
    assert SuperResTrainConfig(sr_legacy_tail=True).net_overrides()["tail_scale"] == 1.0
    old = net_from_config("superres", {"scale": 4, "channels": 8, "n_res": 1, "outer_kernel": 9, "residual": True})
    assert [up.relu for up in old.up] == [True, True] and old.tail_scale == 1.0
    new, config = build_net("superres", overrides={"scale": 8, "channels": 8, "last_relu": False, "tail_scale": 0.5})
    assert [up.relu for up in new.up] == [True, True, False] and new.tail_scale == 0.5 and config["tail_scale"] == 0.5
    with pytest.raises(ValueError, match="tail_scale"):
        type(new)(tail_scale=0.0)


def test_baselines():
    x = torch.rand(1, 3, 9, 11)
    for op in (bicubic_upscale, lanczos_upscale):
        y = op(x, 4)
        assert y.shape == (1, 3, 36, 44)
    flat = torch.full((1, 3, 6, 5), 0.3)
    assert torch.allclose(lanczos_upscale(flat, 8), torch.full((1, 3, 48, 40), 0.3), atol=1e-6)  # partition of unity


def _png(path, h, w, *, alpha=False, seed=0):
    rng = np.random.default_rng(seed)
    arr = (rng.random((h, w, 4 if alpha else 3)) * 255).astype(np.uint8)
    Image.fromarray(arr, "RGBA" if alpha else "RGB").save(path)
    return path


@pytest.mark.parametrize("model", ["bicubic", "lanczos"])
def test_cli_baselines_alpha_and_16_bit(tmp_path, model, monkeypatch):
    src = _png(tmp_path / "a.png", 11, 7, alpha=True)
    out = tmp_path / "a_x4.png"
    assert main(["-q", "upscale", model, str(src), "-o", str(out), "--bit-depth", "16"]) == 0
    im = Image.open(out)
    assert im.size == (28, 44)
    assert "A" in im.getbands() or im.mode in ("RGBA", "LA") or im.info.get("transparency") is not None or im.mode.startswith("I")
    from impasto.image.io import load_image

    loaded = load_image(out)
    assert loaded.alpha is not None and loaded.alpha.shape[-2:] == (44, 28)
    assert loaded.info.get("bit_depth", 16) == 16
    assert "upscale" in str(im.info.get("impasto", ""))


def test_cli_several_images_go_to_a_folder(tmp_path):
    a, b = _png(tmp_path / "a.png", 8, 9), _png(tmp_path / "b.png", 10, 6, seed=1)
    out = tmp_path / "big"
    assert main(["-q", "upscale", "bicubic", str(a), str(b), "-o", str(out), "--scale", "8"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_x8.png", "b_x8.png"]
    assert Image.open(out / "b_x8.png").size == (48, 80)


@pytest.mark.parametrize("case", ["missing", "not_image", "unwritable", "bad_model"])
def test_cli_bad_inputs(tmp_path, capsys, case):
    good = _png(tmp_path / "a.png", 8, 8)
    out = tmp_path / "out.png"
    model, image = "bicubic", str(good)
    if case == "missing":
        image = str(tmp_path / "nope.png")
    elif case == "not_image":
        (tmp_path / "x.png").write_text("not an image")
        image = str(tmp_path / "x.png")
    elif case == "unwritable":
        out = tmp_path / "no" / "such" / "out.png"
    else:
        (tmp_path / "m.pt").write_bytes(b"junk")
        model = str(tmp_path / "m.pt")
    assert main(["-q", "upscale", model, image, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("impasto: error:")
    assert not out.exists()
    assert not [p for p in tmp_path.rglob("*") if ".part" in p.name]


def test_cli_trains_a_model_that_upscales(tmp_path, capsys):
    """`impasto train --arch superres` runs from photos alone and its model upscales by its scale.
    (That a few hundred CPU steps beat bicubic: test_superres_training.py.)"""
    g = torch.Generator().manual_seed(0)
    data = _photos(tmp_path / "photos", g, 4, 48)
    run = tmp_path / "run"
    args = ["-q", "train", "--arch", "superres", "--scale", "4", "--data", str(data), "-o", str(run), "--steps", "3", "--encoder", "tiny_vgg",
            "--weights", "random", "--train-size", "32", "--batch-size", "2", "--workers", "0"]
    assert main(args) == 0
    from impasto.methods.ff_model import load_model

    assert load_model(run).meta["net_config"]["last_relu"] is False  # the recipe's output end
    assert main(["-q", "train", "--arch", "superres", "--data", str(data), "-o", str(tmp_path / "x"), "--style", str(data / "0.png")]) == 2
    assert "learns from photos alone" in capsys.readouterr().err
    src = tmp_path / "small.png"
    save_image(src, _texture(g, 20))
    out = tmp_path / "big.png"
    assert main(["-q", "upscale", str(run), str(src), "-o", str(out)]) == 0
    assert Image.open(out).size == (80, 80)


def test_resume_refuses_a_checkpoint_of_the_original_output_end(tmp_path):
    """A run checkpointed before the output-end options (its net_config lacks them) does not resume
    silently with the new end: the error names --sr-legacy-tail, with which it resumes."""
    from impasto.errors import ConfigError
    from impasto.methods.superres_train import train_superres

    g = torch.Generator().manual_seed(0)
    data = _photos(tmp_path / "photos", g, 2, 32)
    run = tmp_path / "run"
    common = {"encoder": "tiny_vgg", "weights": "random", "train_size": 16, "batch_size": 1, "sr_channels": 4, "sr_blocks": 0, "workers": 0, "preview_every": 0, "scale": 2}
    train_superres(None, data, out_dir=run, steps=1, sr_legacy_tail=True, **common)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    for key in ("last_relu", "tail_scale"):  # as written before the options existed
        del ckpt["net_config"][key]
    del ckpt["train_config"]["sr_legacy_tail"]
    torch.save(ckpt, run / "checkpoint.pt")
    with pytest.raises(ConfigError, match="sr-legacy-tail"):
        train_superres(None, data, out_dir=run, steps=2, resume=True, **common)
    train_superres(None, data, out_dir=run, steps=2, resume=True, sr_legacy_tail=True, **common)
