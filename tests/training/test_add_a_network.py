"""The recipe "how to add a network", exercised end to end: a toy generator defined in this file is
registered under a new architecture name, trained for a few steps through the ordinary ``train``
entry, applied (whole, tiled, and in memory through the registered ``apply`` method), exported to
ONNX and applied with ONNX Runtime, then unregistered. Nothing outside ``impasto.nets`` knows it."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from impasto.image.io import load_image
from impasto.methods.feedforward import ApplyConfig, TrainConfig, apply_model, export_model, load_model, read_onnx_meta, train
from impasto.methods.ff_apply import ApplyMethod
from impasto.nets import ARCHS, ImageGenerator, register_arch, unregister_arch
from impasto.nets.norm import InstanceNorm


class ToyNet(ImageGenerator):
    """Two 3x3 convolutions: one at half resolution (so the size multiple is 2), one back at full."""

    multiple = 2  # the stride-2 convolution

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.config = {"channels": int(channels)}  # what a model file records to rebuild it
        self.down = nn.Conv2d(3, channels, 3, stride=2, padding=1, padding_mode="reflect")
        self.norm = InstanceNorm(channels, relu=True)  # impasto's norm: exact statistics in tiles
        self.up = nn.Conv2d(channels, 3, 3, padding=1, padding_mode="reflect")

    def core(self, image: torch.Tensor) -> torch.Tensor:
        """The network on a padded input (sides multiples of 2, at least 16)."""
        x = F.interpolate(self.norm(self.down(image)), scale_factor=2.0, mode="nearest")
        return torch.sigmoid(self.up(x))


@pytest.fixture
def toy_arch():
    register_arch("toy", "two convolutions (the recipe's test)", ToyNet, defaults={"channels": 8})
    try:
        yield "toy"
    finally:
        unregister_arch("toy")
    assert "toy" not in ARCHS


def _max_diff(a, b) -> float:
    return float((load_image(a).image - load_image(b).image).abs().max())


def test_a_registered_toy_network_trains_applies_and_exports(tmp_path, toy_arch, photo_folder, style_file, tiny):
    assert toy_arch in ARCHS
    config = TrainConfig(**{**tiny, "arch": toy_arch, "steps": 3, "log_every": 1, "checkpoint_every": 2, "preview_every": 3, "preview_count": 1})
    model_path = train(config, style_file, photo_folder, tmp_path / "run")
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and all(r["total"] > 0 for r in log)
    assert (tmp_path / "run" / "previews" / "step_000003" / "00.png").is_file()
    model = load_model(model_path)
    assert isinstance(model.net, ToyNet) and model.arch == toy_arch and model.net.config == {"channels": 8} and not model.texture

    photo = photo_folder / "p0.png"
    whole = apply_model(model_path, [photo], tmp_path / "whole", edge=64).written[0]
    tiled = apply_model(model_path, [photo], tmp_path / "tiled", edge=64, tile=32, overlap=8).written[0]
    assert load_image(whole).size == (52, 64)
    assert _max_diff(whole, tiled) <= 1 / 255 + 1e-6, "tiles reproduce the whole image"

    result = ApplyMethod().run(ApplyConfig(edge=64), {"model": model_path, "image": photo})
    assert result.manifest["arch"] == toy_arch and result.manifest["method"] == "apply"
    assert float((result.image - load_image(whole).image).abs().max()) <= 0.5 / 255 + 1e-6

    pytest.importorskip("onnxruntime")
    onnx_path = export_model(model_path, tmp_path / "toy.onnx")
    meta = read_onnx_meta(onnx_path)
    assert meta["arch"] == toy_arch and meta["multiple"] == 2 and meta["inputs"] == ["image"]
    via_onnx = apply_model(onnx_path, [photo], tmp_path / "onnx", edge=64).written[0]
    assert _max_diff(whole, via_onnx) <= 1 / 255 + 1e-6


def test_an_incomplete_network_is_refused_when_built(toy_arch):
    from impasto.nets import build_net

    register_arch("toy-bare", "lacks the protocol", lambda: nn.Conv2d(3, 3, 1))
    try:
        with pytest.raises(TypeError, match="lacks takes, multiple"):
            build_net("toy-bare")
    finally:
        unregister_arch("toy-bare")
    with pytest.raises(ValueError, match="already registered"):
        register_arch(toy_arch, "again", ToyNet)
    with pytest.raises(Exception, match="synthesis from noise needs arch texture"):
        build_net(toy_arch, texture=True)
