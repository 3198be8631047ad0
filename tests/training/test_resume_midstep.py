"""A training run interrupted *inside* a step (after the batch and the noise were drawn, during the
generator's forward pass, the loss or the backward pass, or by a real SIGINT during the optimiser
update) and resumed gives exactly the parameters of the uninterrupted run (torch.equal)."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from impasto.errors import Interrupted
from impasto.losses.modules import PerceptualLoss
from impasto.methods.feedforward import TrainConfig, train
from impasto.nets import TextureNet, TransformerNet

STEPS = 3
STOP_IN_CALL = 2  # interrupt inside the 2nd step: one step is complete, the second has drawn its batch and noise

CASES = {
    "johnson": dict(arch="johnson-small"),
    "texture-stylisation": dict(arch="texture"),
    "texture-synthesis": dict(arch="texture", texture=True),
}


def _state(path):
    return torch.load(path, weights_only=True)["state_dict"]


def _interrupt_on_call(monkeypatch, owner, name, k, action=None):
    """Make ``owner.name`` raise KeyboardInterrupt on its k-th call (or run ``action`` first)."""
    original = getattr(owner, name)
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == k:
            if action is None:
                raise KeyboardInterrupt
            action()
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


TINY = dict(encoder="tiny_vgg", weights="random", train_size=32, batch_size=2, workers=0, preview_every=0)


def _png(path, h, w, seed):
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    Image.fromarray((torch.rand(h, w, 3, generator=g) * 255).to(torch.uint8).numpy()).save(path)
    return path


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """One uninterrupted run per case (shared by the interruption points)."""
    torch.set_num_threads(2)  # as the autouse fixture sets for each test: results depend on the thread count
    root = tmp_path_factory.mktemp("whole")
    photos = root / "photos"
    photos.mkdir()
    for i in range(5):
        _png(photos / f"p{i}.png", 36 + 4 * i, 44, seed=i)
    style = _png(root / "style.png", 40, 40, seed=99)
    results = {}
    for name, extra in CASES.items():
        config = TrainConfig(**{**TINY, **extra, "steps": STEPS, "checkpoint_every": 0, "log_every": 1})
        data = None if extra.get("texture") else photos
        results[name] = (config, style, data, _state(train(config, style, data, root / name)))
    return results


@pytest.mark.parametrize(
    "case,where",
    [("texture-stylisation", "loss"), ("texture-synthesis", "backward"), ("texture-synthesis", "generator"), ("johnson", "generator")],
)
def test_interrupt_inside_a_step_then_resume_equals_uninterrupted(tmp_path, monkeypatch, uninterrupted, case, where):
    config, style, data, expected = uninterrupted[case]
    owner, name = {
        "generator": (TextureNet if config.arch == "texture" else TransformerNet, "forward"),
        "loss": (PerceptualLoss, "forward"),
        "backward": (torch.Tensor, "backward"),
    }[where]
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        calls = _interrupt_on_call(patch, owner, name, STOP_IN_CALL)
        with pytest.raises(Interrupted, match=f"step {STOP_IN_CALL - 1}"):
            train(config, style, data, run)
        assert calls["n"] == STOP_IN_CALL
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == STOP_IN_CALL - 1
    resumed = _state(train(config, style, data, run, resume=True))
    assert resumed.keys() == expected.keys()
    assert all(torch.equal(resumed[k], expected[k]) for k in expected), f"{case}: resumed model differs after an interruption in the {where}"


@pytest.mark.parametrize("case", ["texture-stylisation"])
def test_sigint_during_the_optimiser_update_is_held_until_the_step_is_complete(tmp_path, monkeypatch, uninterrupted, case):
    """A real Ctrl-C (SIGINT) arriving inside Adam's update: the update and the step's bookkeeping
    finish first, then the run stops with a checkpoint of that step."""
    config, style, data, expected = uninterrupted[case]
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    run = tmp_path / "run"
    try:
        with monkeypatch.context() as patch:
            _interrupt_on_call(patch, torch.optim.Adam, "step", STOP_IN_CALL, action=lambda: os.kill(os.getpid(), signal.SIGINT))
            with pytest.raises(Interrupted, match=f"step {STOP_IN_CALL}"):
                train(config, style, data, run)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == STOP_IN_CALL
    resumed = _state(train(config, style, data, run, resume=True))
    assert all(torch.equal(resumed[k], expected[k]) for k in expected)
