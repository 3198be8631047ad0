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


def test_lbfgs_optimises_the_image_it_delivers(setup):
    """Projected L-BFGS: every iterate stays in [0, 1], so the clamped image handed back has the
    loss the optimiser reached. Unprojected, pixels wander outside and clamping them at the end
    costs far more than the last steps gained."""
    loss, content, _ = setup
    seen: list[torch.Tensor] = []

    def watched(x):
        seen.append(x.detach().clone())
        return loss(x)

    projected = optimise_pixels(content, watched, iterations=30)
    assert all(float(s.min()) >= 0 and float(s.max()) <= 1 for s in seen)
    free = optimise_pixels(content, lambda x: loss(x), iterations=30, clamp=False)
    with torch.no_grad():
        delivered = {name: float(loss(r.image)[0]) for name, r in (("projected", projected), ("free", free))}
    assert delivered["projected"] < 0.9 * delivered["free"], delivered
    assert delivered["projected"] <= 1.01 * projected.history[-1]["total"]


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
    with pytest.raises(UsageError, match="iterations must be >= 0"):
        optimise_pixels(content, lambda x: loss(x), iterations=-1)
    with pytest.raises(UsageError, match="unknown optimizer 'sgd'"):
        optimise_pixels(content, lambda x: loss(x), iterations=1, optimizer="sgd")
    with pytest.raises(UsageError, match="lr must be > 0"):
        optimise_pixels(content, lambda x: loss(x), iterations=1, lr=-1.0)


def _plain(loss):
    return lambda x: loss(x)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_lbfgs_and_adam_change_the_image_at_every_step_and_end_below_the_start(setup, optimizer):
    loss, content, _ = setup
    seen = []

    def watching(x):
        seen.append(x.detach().clone())
        return loss(x)

    r = optimise_pixels(content, watching, iterations=12, optimizer=optimizer)
    assert r.iterations == 12 and len(seen) == 12
    for a, b in zip(seen, seen[1:]):  # each evaluation is at a new image
        assert not torch.equal(a, b)
    assert not torch.equal(seen[-1], r.image)
    with torch.no_grad():
        assert float(loss(r.image)[0]) < r.history[0]["total"]


def _interrupt_at(loss, when: int, how: str):
    """A loss function that is interrupted during evaluation number ``when`` (a real SIGINT or a
    raised KeyboardInterrupt)."""
    import os
    import signal

    calls = {"n": 0}

    def fn(x):
        calls["n"] += 1
        if calls["n"] == when:
            if how == "signal":
                os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of the evaluation
            else:
                raise KeyboardInterrupt
        return loss(x)

    return fn


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
@pytest.mark.parametrize("how", ["signal", "raise"])
def test_interrupted_inside_an_evaluation_resumes_exactly(setup, optimizer, how):
    loss, content, _ = setup
    whole = optimise_pixels(content, _plain(loss), iterations=10, optimizer=optimizer, average=0.5)
    first = optimise_pixels(content, _interrupt_at(loss, 4, how), iterations=10, optimizer=optimizer, average=0.5)
    assert first.stopped == "interrupted" and first.iterations == 3 and first.state.step == 3
    second = optimise_pixels(content, _interrupt_at(loss, 3, how), iterations=10, optimizer=optimizer, average=0.5, resume=first.state)
    assert second.stopped == "interrupted" and second.iterations == 5
    last = optimise_pixels(content, _plain(loss), iterations=10, optimizer=optimizer, average=0.5, resume=second.state)
    assert last.stopped == "completed" and last.iterations == 10 and len(last.history) == 10
    assert torch.equal(last.image, whole.image)
    assert last.history == whole.history


def test_sigint_between_evaluations_waits_for_the_step_to_finish(setup):
    """A Ctrl-C while the optimiser updates its state or a callback runs is deferred to the end
    of the step: the saved state is never half-updated."""
    import os
    import signal

    loss, content, _ = setup
    whole = optimise_pixels(content, _plain(loss), iterations=9)

    def callback(event):
        if isinstance(event, StepEvent) and event.step == 4:
            os.kill(os.getpid(), signal.SIGINT)  # deferred: this step completes and is kept

    cut = optimise_pixels(content, _plain(loss), iterations=9, callback=callback)
    assert cut.stopped == "interrupted" and cut.iterations == 4 and cut.state.step == 4
    events = []
    done = optimise_pixels(content, _plain(loss), iterations=9, resume=cut.state, callback=events.append, save_every=3)
    assert [e.step for e in events if isinstance(e, StepEvent)] == [5, 6, 7, 8, 9]
    assert [e.step for e in events if isinstance(e, SnapshotEvent)] == [6]  # numbered by absolute step
    assert torch.equal(done.image, whole.image)


def test_a_non_finite_loss_returns_the_last_finite_iterate(setup):
    loss, content, _ = setup
    seen = []

    def exploding(x):
        seen.append(x.detach().clone())
        value, terms = loss(x)
        if len(seen) == 6:
            value = value * float("nan")
        return value, terms

    events = []
    r = optimise_pixels(content, exploding, iterations=20, callback=events.append)
    assert r.stopped == "non-finite" and r.iterations == 5
    assert torch.isfinite(r.image).all()
    assert torch.equal(r.image, seen[4].clamp(0, 1))  # the last iterate whose loss was finite
    msgs = [e.text for e in events if isinstance(e, MessageEvent)]
    assert any("stopped at step 6: the loss became non-finite" in m for m in msgs)


def test_non_finite_pixels_from_the_last_step_are_not_returned(setup):
    loss, content, _ = setup

    def poisoning(x):
        value, terms = loss(x)
        return value, terms

    r = optimise_pixels(content, poisoning, iterations=3, lr=float("inf"))
    assert r.stopped == "non-finite" and torch.isfinite(r.image).all()


def test_loop_options_and_keywords_are_the_same_loop(setup):
    from impasto.optim.options import LoopOptions

    loss, content, _ = setup
    by_keywords = optimise_pixels(content, lambda x: loss(x), iterations=4, optimizer="adam", average=0.5)
    by_options = optimise_pixels(content, lambda x: loss(x), LoopOptions(iterations=4, optimizer="adam", average=0.5))
    overridden = optimise_pixels(content, lambda x: loss(x), LoopOptions(iterations=9, optimizer="adam", average=0.5), iterations=4)
    assert torch.equal(by_keywords.image, by_options.image) and torch.equal(by_options.image, overridden.image)
    with pytest.raises(UsageError, match="^lr must be > 0") as info:
        LoopOptions(iterations=1, lr=0.0)
    assert info.value.with_flags().startswith("--lr must be > 0")
    with pytest.raises(TypeError):
        optimise_pixels(content, lambda x: loss(x), iteratoins=3)
