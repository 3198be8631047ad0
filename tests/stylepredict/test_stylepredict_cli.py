"""`impasto train --arch stylepredict` (its own options), resume, and `impasto apply` with alpha,
which mixes the painting's embedding with the photo's own."""

from __future__ import annotations

import json

import torch

import impasto
from impasto.image.io import load_image
from impasto.image.resize import resize_to_edge
from impasto.methods.ff_model import load_model


def test_cli_trains_resumes_and_applies_a_stylepredict_model(tmp_path, folders, capsys):
    from impasto.cli.main import main

    photos, paintings = folders
    run = tmp_path / "run"
    common = ["--encoder", "tiny_vgg", "--weights", "random", "--train-size", "32", "--batch-size", "2", "--workers", "0", "--preview-every", "0", "-q"]
    own = ["--predictor-encoder", "tiny_vgg", "--predictor-layer", "relu4_3"]
    assert main(["train", "--arch", "stylepredict", "--data", str(photos), "--style-data", str(paintings), "-o", str(run), "--steps", "2", "--checkpoint-every", "1", *own, *common]) == 0
    assert main(["train", "--resume", "-o", str(run), "--steps", "3", "-q"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["step"] == 3 and saved["config"]["predictor_layer"] == "relu4_3"
    meta = load_model(run / "model.pt").meta
    assert meta["arch"] == "stylepredict" and meta["net_config"]["encoder"] == "tiny_vgg" and meta["net_config"]["weights_id"] == "random:0"
    photo, painting = next(photos.rglob("*.png")), next(paintings.rglob("*.jpg"))
    assert main(["apply", str(run), str(photo), "-o", str(tmp_path / "out"), "--style", str(painting), "--alpha", "0.6", "-q"]) == 0
    capsys.readouterr()
    assert main(["train", "--arch", "johnson", "--style", str(painting), "--data", str(photos), "-o", str(tmp_path / "x"), "--predictor-layer", "relu4_3", *common]) == 2
    assert "predictor_layer" in capsys.readouterr().err


def test_apply_alpha_mixes_with_the_photos_own_embedding(tmp_path, folders):
    photos, paintings = folders
    model = impasto.train(None, None, photos, tmp_path / "run", style_data=paintings, arch="stylepredict", encoder="tiny_vgg", predictor_encoder="",
                          predictor_layer="relu4_3", weights="random", train_size=32, batch_size=2, workers=0, preview_every=0, steps=1)
    photo = next(photos.rglob("*.png"))
    a, b = sorted(paintings.rglob("*.jpg"))[:2]
    zero_a = impasto.run("apply", model=model, image=photo, style=a, alpha=0.0).image
    zero_b = impasto.run("apply", model=model, image=photo, style=b, alpha=0.0).image
    assert torch.allclose(zero_a, zero_b, atol=1e-6), "alpha 0: the photo's own style, whatever the painting"
    half = impasto.run("apply", model=model, image=photo, style=a, alpha=0.5).image
    net = load_model(model).net
    loaded = load_image(photo).image
    painting = resize_to_edge(load_image(a).image, 512)  # apply's style_edge
    expected = net.generate(loaded, style=net.prepare_style([painting], alpha=0.5, content=loaded))
    assert float((half - expected).abs().max()) <= 1e-4
