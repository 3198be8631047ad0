"""The perceptual loss as a composition of terms; the weighted total computed in one place."""

from __future__ import annotations

import pytest
import torch

from impasto.losses import LossTerm, PerceptualLoss, TermInputs, weighted_total
from impasto.optim import tiled
from impasto.optim.options import TilingOptions


class Brightness(LossTerm):
    """Toy pixel-space term: squared distance of the mean brightness to 0.5 (whole image)."""

    name = "brightness"
    tiling = "image"

    def value(self, inputs: TermInputs) -> torch.Tensor:
        return (inputs.image.mean() - 0.5).pow(2)


@pytest.fixture
def loss(tiny_encoder, image_factory):
    loss = PerceptualLoss(tiny_encoder, content_layers=["relu3_1"], style_layers=["relu1_1", "relu2_1", "relu3_1"], style_weight=20.0, tv_weight=0.5)
    loss.set_style([image_factory(64, 64, seed=4, smooth=False)])
    return loss


def test_terms_and_their_layers(loss):
    assert [t.name for t in loss.terms] == ["content", "style", "tv"]
    assert loss.content_term.layers == ("relu3_1",) and loss.style_term.layers == ("relu1_1", "relu2_1", "relu3_1") and loss.tv_term.layers == ()
    assert loss.layers == ["relu3_1", "relu1_1", "relu2_1"]
    assert [t.tiling for t in loss.terms] == ["sum", "global", "image"]
    loss.style_weight = 7.0  # the module's weights are the terms' weights
    assert loss.style_term.weight == 7.0 and loss.kind == "gram" and loss.has_style


def test_total_is_the_left_to_right_weighted_sum_bit_for_bit(loss, image_factory):
    content = image_factory(48, 64, seed=1)
    loss.set_content(content)
    total, values = loss((content + 0.1).clamp(0, 1))
    assert list(values) == ["content", "style", "tv"]
    expected = loss.content_weight * values["content"] + loss.style_weight * values["style"] + loss.tv_weight * values["tv"]
    assert torch.equal(total, expected)
    floats = {k: float(v) for k, v in values.items()}  # tiling sums Python floats the same way
    assert weighted_total(loss.terms, floats) == 1.0 * floats["content"] + 20.0 * floats["style"] + 0.5 * floats["tv"]
    assert torch.equal(loss.weighted_total(values, ["style", "content"]), loss.content_weight * values["content"] + loss.style_weight * values["style"])


def test_an_added_term_joins_the_total_untiled_and_tiled(loss, image_factory):
    content = image_factory(96, 128, seed=3)
    loss.add_term(Brightness(3.0))
    with pytest.raises(Exception, match="already has a 'brightness' term"):
        loss.add_term(Brightness(1.0))
    image = (content + 0.2 * image_factory(96, 128, seed=5, smooth=False) - 0.1).clamp(0, 1)
    loss.set_content(content)
    x = image.clone().requires_grad_(True)
    total, values = loss(x)
    assert "brightness" in values and torch.equal(total, loss.weighted_total(values))
    total.backward()
    # tiled: the "image" term is evaluated once on the whole image, the rest tile by tile
    plan = tiled.plan_for(TilingOptions(tile=64, overlap=48), loss, (96, 128), torch.device("cpu"))
    captured = {}
    real = tiled.optimise_pixels

    def grab(init, evaluate, options=None, **kwargs):
        y = image.clone().requires_grad_(True)
        value, terms = evaluate(y)
        captured.update(value=float(value), grad=y.grad.clone(), terms={k: float(v) for k, v in terms.items()})
        return real(init, evaluate, options, **{**kwargs, "iterations": 0})

    tiled.optimise_pixels = grab
    try:
        tiled.optimise_tiled(content, loss, plan, iterations=0, content=content)
    finally:
        tiled.optimise_pixels = real
    assert captured["terms"]["brightness"] == pytest.approx(float(values["brightness"].detach()), rel=1e-5)
    assert captured["value"] == pytest.approx(float(total.detach()), rel=1e-4)
    assert float((captured["grad"] - x.grad).norm() / x.grad.norm()) < 1e-4
