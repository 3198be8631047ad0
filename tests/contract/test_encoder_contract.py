"""Contract over every registered encoder: builds with random weights, names its layers, accepts
its minimum size, presets are valid, gradients reach the image, deterministic."""

from __future__ import annotations

import pytest
import torch

from impasto.features import build_encoder, encoder_names, get_encoder_spec


@pytest.fixture(scope="module", params=encoder_names())
def encoder(request):
    spec = get_encoder_spec(request.param)
    layers = list(dict.fromkeys([*spec.default_content_layers, *spec.default_style_layers]))
    return build_encoder(request.param, weights="random", layers=layers)


def test_presets_produce_features_at_the_minimum_size(encoder):
    side = encoder.min_side
    x = torch.rand(1, 3, side, side + 3, requires_grad=True)
    feats = encoder(x)
    assert set(feats) == set(encoder.layers)
    for name, f in feats.items():
        assert f.dim() == 4 and f.shape[0] == 1 and torch.isfinite(f).all(), name
        assert min(f.shape[-2:]) >= 1
    sum(f.mean() for f in feats.values()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_deterministic(encoder):
    x = torch.rand(1, 3, encoder.min_side, encoder.min_side)
    a, b = encoder(x), encoder(x)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_layer_names_are_unique_strings(encoder):
    names = encoder.layer_names
    assert len(names) == len(set(names)) and all(isinstance(n, str) and n for n in names)


def test_weights_are_frozen(encoder):
    assert not any(p.requires_grad for p in encoder.parameters())
    assert encoder.weights.kind == "random"
