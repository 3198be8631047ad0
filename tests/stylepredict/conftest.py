"""Fixtures for the style-prediction tests: a small network (tiny_vgg with random weights, narrow
transformer), a registered small architecture for training, and the AdaIN tests' pictures and
folders of photos and paintings (nested, mixed formats, one corrupt file)."""

from __future__ import annotations

from typing import Iterator

import pytest
import torch

from impasto.features import random_init
from impasto.nets import register_arch, unregister_arch
from impasto.nets.stylepredict import _DEFAULTS, StylePredictNet
from tests.adain.conftest import folders, picture, save_picture  # noqa: F401 (the shared folders fixture)

#: a narrow transformer: the tests' networks and the small architecture they train
SMALL = {"channels": [8, 16, 16], "n_res": 1}
TINY_ARCH = "stylepredict-tiny"


def small_net(init: int = 0, **config: object) -> StylePredictNet:
    """A StylePredictNet on tiny_vgg (random weights) with a narrow transformer, in eval mode;
    ``init`` seeds its trained parts."""
    torch.manual_seed(init)
    return StylePredictNet(**{"encoder": "tiny_vgg", "layer": "relu4_3", "weights": "random", **SMALL, **config}).eval()  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def net() -> StylePredictNet:
    """A small network with lively weights: He-initialised convolutions and heads whose γ/β vary
    clearly with the painting (an untrained network's output is nearly constant, which would
    make the equalities below trivially true)."""
    net = small_net()
    random_init(net.down, seed=1)
    random_init(net.res, seed=2)
    random_init(net.up, seed=3)
    random_init(net.out, seed=4)
    with torch.no_grad():
        for heads in (net.gamma_heads, net.beta_heads):
            for head in heads:
                head.weight.normal_(0.0, 1.0 / head.in_features**0.5)
    return net


@pytest.fixture
def tiny_arch() -> Iterator[str]:
    """``stylepredict-tiny``: the stylepredict architecture with a narrow transformer, trained by
    the stylepredict recipe; unregistered afterwards."""
    register_arch(
        TINY_ARCH, "narrow stylepredict network for tests", StylePredictNet, defaults={**_DEFAULTS, **SMALL},
        twin={"weights": "random", "weights_id": None}, recipe="impasto.methods.stylepredict_train:StylePredictTrainConfig:train_stylepredict",
    )
    try:
        yield TINY_ARCH
    finally:
        unregister_arch(TINY_ARCH)
