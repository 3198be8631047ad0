"""AdaIN through `impasto apply` and the API: paintings, weights, masks, alpha, colour modes,
tiles, ONNX, contact sheets, the encoder-weight check, and one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import impasto
from impasto.api import load_input_image
from impasto.errors import ConfigError, ModelFileError, UsageError
from impasto.methods.adain_train import AdaINTrainConfig
from impasto.methods.ff_model import model_payload, save_model

from .conftest import save_picture


@pytest.fixture(scope="module")
def world(tmp_path_factory, net):
    root = tmp_path_factory.mktemp("adain-apply")
    config = dict(net.config, weights_id=net.encoder.weights_id, preprocessing="torchvision")  # as the recipe records it
    model = save_model(root / "adain.pt", model_payload(net, "adain", config, AdaINTrainConfig(encoder="tiny_vgg", weights="random", content_layers="relu3_1", style_layers="relu1_1,relu2_1,relu3_1"), {"name": "arbitrary", "sha256": None}, 1, {}))
    photo = save_picture(root / "photo.png", 56, 72, seed=3)
    a, b = save_picture(root / "a.png", 48, 48, seed=11), save_picture(root / "b.png", 40, 56, seed=12)
    top = np.zeros((56, 72), np.uint8)
    top[:28] = 255
    Image.fromarray(top).save(root / "top.png")
    Image.fromarray(255 - top).save(root / "bottom.png")
    Image.fromarray(np.full((56, 72), 255, np.uint8)).save(root / "white.png")
    Image.fromarray(np.zeros((56, 72), np.uint8)).save(root / "black.png")
    return {"root": root, "model": model, "photo": photo, "a": a, "b": b}


def run(world, **options):
    return impasto.run("apply", model=world["model"], image=world["photo"], **options)


def test_paintings_weights_and_alpha(world):
    alone = run(world, style=world["a"]).image
    assert alone.shape == (1, 3, 56, 72)
    assert torch.equal(run(world, style=[world["a"], world["b"]], style_weights="1,0").image, alone)
    mixed = run(world, style=[world["a"], world["b"]], style_weights="0.5,0.5")
    assert (mixed.image - alone).abs().max() > 1e-3
    assert mixed.manifest["paintings"] == ["a.png", "b.png"] and mixed.manifest["style_weights"] == [0.5, 0.5]
    # alpha 0: the photo's own features decoded, whatever the painting
    assert torch.allclose(run(world, style=world["a"], alpha=0.0).image, run(world, style=world["b"], alpha=0.0).image, atol=1e-6)


def test_masks_place_each_painting(world):
    a_only = run(world, style=world["a"]).image
    b_only = run(world, style=world["b"]).image
    full = run(world, style=[world["a"], world["b"]], style_mask=[world["root"] / "white.png", world["root"] / "black.png"]).image
    assert torch.allclose(full, a_only, atol=1e-5)
    split = run(world, style=[world["a"], world["b"]], style_mask=[world["root"] / "top.png", world["root"] / "bottom.png"]).image
    # far from the border between regions each half looks like its painting alone
    assert (split[..., :8, :] - a_only[..., :8, :]).abs().mean() < (split[..., :8, :] - b_only[..., :8, :]).abs().mean()
    assert (split[..., -8:, :] - b_only[..., -8:, :]).abs().mean() < (split[..., -8:, :] - a_only[..., -8:, :]).abs().mean()
    # tiles equal the whole image, masks included
    tiled = run(world, style=[world["a"], world["b"]], style_mask=[world["root"] / "top.png", world["root"] / "bottom.png"], tile=48, overlap=8).image
    torch.testing.assert_close(tiled, split, atol=1e-4, rtol=0)


def test_colour_modes(world):
    from impasto.image.color import rgb_to_yiq

    photo = load_input_image(world["photo"])[0]
    lum = run(world, style=world["a"], preserve_colors="luminance").image
    plain = run(world, style=world["a"]).image
    chroma = lambda x: rgb_to_yiq(x)[:, 1:]  # noqa: E731
    kept, lost = (chroma(lum) - chroma(photo)).abs().mean(), (chroma(plain) - chroma(photo)).abs().mean()
    assert kept < 0.02 and kept < 0.3 * lost, (kept, lost)  # (clamping to the RGB cube moves a few pixels)
    hist = run(world, style=world["a"], preserve_colors="histogram").image
    assert (hist - run(world, style=world["a"]).image).abs().max() > 1e-3, "the painting was not recoloured"


def test_onnx_matches_torch_and_refuses_mixes(world, tmp_path):
    pytest.importorskip("onnxruntime")
    onnx = impasto.export(world["model"], tmp_path / "adain.onnx")
    import onnx as onnx_lib

    assert [i.name for i in onnx_lib.load(str(onnx)).graph.input] == ["image", "style", "style_alpha"]
    want = run(world, style=world["a"], alpha=0.7).image
    got = impasto.run("apply", model=str(onnx), image=world["photo"], style=world["a"], alpha=0.7).image
    assert (got - want).abs().max() < 1e-3
    tiled = impasto.run("apply", model=str(onnx), image=world["photo"], style=world["a"], alpha=0.7, tile=48, overlap=8).image
    assert (tiled - want).abs().max() < 1e-3
    with pytest.raises(UsageError, match="runtime"):
        impasto.run("apply", model=str(onnx), image=world["photo"], style=[world["a"], world["b"]])


def test_contact_sheet_of_the_paintings(world, tmp_path):
    (sheet,) = impasto.apply(world["model"], [world["photo"]], tmp_path, styles=[world["a"], world["b"]], sheet=True).written
    meta = json.loads(Image.open(sheet).info["impasto"])
    assert meta["sheet"] == ["photo", "a.png", "b.png"]


def test_encoder_weights_must_be_the_trained_ones(world, tmp_path):
    from impasto.features import random_init
    from impasto.features.registry import get_encoder_spec

    other = get_encoder_spec("tiny_vgg").build()
    random_init(other, seed=5)
    path = tmp_path / "other.pth"
    torch.save(other.state_dict(), path)
    with pytest.raises((ModelFileError, ConfigError)) as err:
        run(world, style=world["a"], encoder_weights=str(path))
    assert "encoder_weights" in str(err.value) and "\n" not in str(err.value)


def test_cli_errors_are_one_line(world, tmp_path, capsys):
    from impasto.cli.main import main

    base = ["apply", str(world["model"]), str(world["photo"]), "-o", str(tmp_path), "-q"]
    cases = [
        ([], "an AdaIN model needs a painting to copy (--style)"),
        (["--style", str(world["a"]), "--style", str(world["b"]), "--style-weights", "1"], "--style-weights: 1 weights for 2 style paintings"),
        (["--style", str(world["a"]), "--style-mask", str(world["root"] / "top.png"), "--style-mask", str(world["root"] / "bottom.png")], "--style-mask: 2 masks for 1 style paintings (give one per painting)"),
        (["--style", str(world["a"]), "--alpha", "1.5"], "--alpha must be in [0, 1], got 1.5"),
        (["--style", str(world["a"]), "--style-index", "1"], "this adain model holds one style"),
        (["--style", str(tmp_path / "missing.jpg")], "missing.jpg"),
    ]
    for flags, message in cases:
        assert main([*base, *flags]) == 2, flags
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err, err



def test_where_no_mask_covers_the_photo_keeps_its_own_features(world):
    kept = run(world, style=world["a"], alpha=0.0).image
    half = run(world, style=world["a"], style_mask=world["root"] / "top.png").image
    a_only = run(world, style=world["a"]).image
    assert (half[..., -8:, :] - kept[..., -8:, :]).abs().mean() < (half[..., -8:, :] - a_only[..., -8:, :]).abs().mean()
    assert (half[..., :8, :] - a_only[..., :8, :]).abs().mean() < (half[..., :8, :] - kept[..., :8, :]).abs().mean()
