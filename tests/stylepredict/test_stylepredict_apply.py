"""A stylepredict model through `apply` as it is wired today (the AdaIN path: paintings, weights):
whole, tiled and ONNX Runtime results agree, and what only the torch runtime or an AdaIN model
can do is refused with one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import impasto
from impasto.errors import UsageError
from impasto.features import random_init
from impasto.methods.ff_model import model_payload, save_model
from impasto.methods.stylepredict_train import StylePredictTrainConfig
from tests.conftest import require_module

from .conftest import save_picture, small_net


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("stylepredict-apply")
    net = small_net()
    for part, seed in ((net.down, 1), (net.res, 2), (net.up, 3), (net.out, 4)):
        random_init(part, seed=seed)
    config = dict(net.config, weights_id=net.encoder.weights_id, preprocessing="torchvision")  # as the recipe records it
    train_config = StylePredictTrainConfig(encoder="tiny_vgg", weights="random")
    model = save_model(root / "stylepredict.pt", model_payload(net, "stylepredict", config, train_config, {"name": "arbitrary", "sha256": None}, 1, {}))
    photo = save_picture(root / "photo.png", 72, 140, seed=3)
    a, b = save_picture(root / "a.png", 48, 48, seed=11), save_picture(root / "b.png", 40, 56, seed=12)
    Image.fromarray(np.full((72, 140), 255, np.uint8)).save(root / "white.png")
    return {"root": root, "model": model, "photo": photo, "a": a, "b": b}


def run(world, **options):
    return impasto.run("apply", model=world["model"], image=world["photo"], **options)


def test_whole_tiled_and_onnx_agree(world):
    whole = run(world, style=world["a"])
    assert whole.image.shape == (1, 3, 72, 140) and float(whole.image.std()) > 0.05
    assert whole.manifest["arch"] == "stylepredict" and whole.manifest["paintings"] == ["a.png"]
    assert float((run(world, style=world["a"], tile=96, overlap=8).image - whole.image).abs().max()) <= 1e-5
    assert float((run(world, style=[world["a"], world["b"]], style_weights="1,0").image - whole.image).abs().max()) == 0.0
    assert float((run(world, style=[world["a"], world["b"]]).image - whole.image).abs().max()) > 1e-3
    require_module("onnx")
    require_module("onnxruntime")
    impasto.export(world["model"])  # beside the model: apply's ONNX runs find it
    got = run(world, style=world["a"], runtime="onnx", tile=96, overlap=8).image  # the graph rewritten for exact tiles
    assert float((got - whole.image).abs().max()) <= 1e-3


def test_what_the_model_cannot_do_is_refused(world):
    for options, param, text in (
        ({"style": [world["a"], world["b"]], "runtime": "onnx"}, "runtime", "need the torch runtime"),
        ({"style": world["a"], "style_mask": [world["root"] / "white.png"]}, "style_mask", "need an AdaIN model"),
        ({}, "style", "needs a painting"),
    ):
        if param == "runtime":
            require_module("onnxruntime")
        with pytest.raises(UsageError, match=text) as info:
            run(world, **options)
        assert param in info.value.params and "\n" not in str(info.value)
