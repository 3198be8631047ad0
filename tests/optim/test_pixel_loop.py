"""The pixel optimisation loop: every optimiser and init lowers the loss; L-BFGS runs all steps."""

from __future__ import annotations

import pytest
import torch

from impasto.errors import UsageError
from impasto.losses import PerceptualLoss, gram_matrix
from impasto.optim.pixel import optimise_pixels
from impasto.progress import MessageEvent, SnapshotEvent, StepEvent


@pytest.fixture
def setup(tiny_encoder, image_factory):
    content, style = image_factory(40, 48, seed=1), image_factory(40, 40, seed=2, smooth=False)
    loss = PerceptualLoss(tiny_encoder, content_layers=["relu4_2"], style_layers=["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"], style_weight=10.0)
    loss.set_content(content)
    loss.set_style([style])
    return loss, content, style


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_loss_decreases(setup, optimizer):
    loss, content, _ = setup
    r = optimise_pixels(content, lambda x: loss(x), iterations=20, optimizer=optimizer)
    assert r.history[-1]["total"] < 0.5 * r.history[0]["total"]
    assert r.image.min() >= 0 and r.image.max() <= 1


def test_lbfgs_runs_exactly_the_requested_iterations(setup):
    loss, content, _ = setup
    events = []
    r = optimise_pixels(content, lambda x: loss(x), iterations=25, optimizer="lbfgs", callback=events.append)
    assert r.iterations == 25 and len(r.history) == 25 and r.stopped == "completed"
    assert [e.step for e in events if isinstance(e, StepEvent)] == list(range(1, 26))


def test_output_gram_approaches_the_style_gram(setup, tiny_encoder):
    loss, content, style = setup
    r = optimise_pixels(content, lambda x: loss(x), iterations=30)
    target = gram_matrix(tiny_encoder(style)["relu3_1"])

    def dist(img):
        return (gram_matrix(tiny_encoder(img)["relu3_1"]) - target).norm().item()

    assert dist(r.image) < 0.6 * dist(content)


def test_snapshots_and_early_stop(setup):
    loss, content, _ = setup
    events = []
    r = optimise_pixels(content, lambda x: loss(x), iterations=400, optimizer="adam", lr=1e-5, save_every=5, early_stop=(0.05, 5), callback=events.append)
    assert r.stopped == "converged" and r.iterations < 400
    snaps = [e for e in events if isinstance(e, SnapshotEvent)]
    assert snaps and snaps[0].step == 5 and snaps[0].image.shape == content.shape
    msgs = [e.text for e in events if isinstance(e, MessageEvent)]
    assert any(m.startswith("stopped: loss changed < 5% over 5 steps") for m in msgs)


def test_averaging_returns_the_mean_of_iterates(setup):
    loss, content, _ = setup
    plain = optimise_pixels(content, lambda x: loss(x), iterations=10, optimizer="adam")
    avg = optimise_pixels(content, lambda x: loss(x), iterations=10, optimizer="adam", average=0.9)
    assert not torch.allclose(plain.image, avg.image)
    # the average lags behind: it is closer to the start than the last iterate
    assert (avg.image - content).abs().mean() < (plain.image - content).abs().mean()


def test_ctrl_c_keeps_the_current_image(setup):
    loss, content, _ = setup
    calls = {"n": 0}

    def interrupting(x):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return loss(x)

    r = optimise_pixels(content, interrupting, iterations=50, optimizer="adam")
    assert r.stopped == "interrupted" and r.iterations == 3 and r.image.shape == content.shape


def test_deterministic(setup):
    loss, content, _ = setup
    a = optimise_pixels(content, lambda x: loss(x), iterations=5)
    b = optimise_pixels(content, lambda x: loss(x), iterations=5)
    assert torch.equal(a.image, b.image)


def test_bad_parameters(setup):
    loss, content, _ = setup
    with pytest.raises(UsageError, match="--iterations must be >= 0"):
        optimise_pixels(content, lambda x: loss(x), iterations=-1)
    with pytest.raises(UsageError, match="unknown optimizer 'sgd'"):
        optimise_pixels(content, lambda x: loss(x), iterations=1, optimizer="sgd")
    with pytest.raises(UsageError, match="--lr must be > 0"):
        optimise_pixels(content, lambda x: loss(x), iterations=1, lr=-1.0)
