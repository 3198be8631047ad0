"""Optimise an image's pixels against a loss (Gatys et al.).

The loop is resumable exactly: ``LoopState`` holds the float iterate, the optimiser's state
(L-BFGS history included), the running average and the loss history, so a run interrupted at
any moment and continued from its state takes the same steps as one that was never stopped.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch

from ..errors import UsageError
from ..progress import MessageEvent, SnapshotEvent, StepEvent, emit
from .options import OPTIMIZERS, LoopOptions, default_lr

__all__ = ["PixelLoopResult", "LoopState", "LoopOptions", "optimise_pixels", "loop_options", "OPTIMIZERS", "default_lr", "interrupt_guard"]

LossFn = Callable[[torch.Tensor], "tuple[torch.Tensor, dict[str, torch.Tensor]]"]


@dataclass
class LoopState:
    """Everything needed to continue a pixel loop exactly after ``step`` completed steps.

    The tensors are the loop's own (not copies): save them before the loop goes on.
    """

    step: int
    image: torch.Tensor  # the final image, in [0, 1]
    optimizer: dict[str, Any]  # torch optimiser state_dict (L-BFGS history, Adam moments)
    ema: torch.Tensor | None = None
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class PixelLoopResult:
    """The optimised image and how the run went."""

    image: torch.Tensor
    history: list[dict[str, float]] = field(default_factory=list)
    iterations: int = 0  # completed steps, counted from the start of the run (resumes included)
    stopped: str = "completed"  # completed | converged | interrupted | non-finite
    state: LoopState | None = None  # where it stopped (for --resume)

    @property
    def final_losses(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}


def _make_optimizer(name: str, param: torch.Tensor, lr: float, history: int = 100) -> torch.optim.Optimizer:
    if name == "lbfgs":
        # One L-BFGS iteration per .step() call, so each call is one progress step; the history
        # lives in the optimiser state between calls. Negative tolerances: never stop early on
        # PyTorch's defaults (a peer's L-BFGS stops after 8 iterations because of them).
        return torch.optim.LBFGS(
            [param], lr=lr, max_iter=1, max_eval=None, tolerance_grad=-1.0, tolerance_change=-1.0, history_size=history
        )
    if name == "adam":
        return torch.optim.Adam([param], lr=lr)
    raise UsageError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")


def loop_options(options: LoopOptions | None, settings: dict[str, Any]) -> LoopOptions:
    """``options`` with keyword ``settings`` (LoopOptions fields) applied on top; without
    ``options``, the settings alone (``iterations`` is then required)."""
    if options is None:
        if "iterations" not in settings:
            raise TypeError("optimise_pixels() needs LoopOptions or iterations=")
        return LoopOptions(**settings)
    return dataclasses.replace(options, **settings) if settings else options


class _Guard:
    """Ctrl-C policy of the loop: inside a loss evaluation it stops at once (the optimiser has
    not touched its state or the iterate yet); anywhere else (the optimiser's update, callbacks,
    snapshot writing) it is deferred to the end of the step, so the state kept is consistent."""

    def __init__(self) -> None:
        self.evaluating = False
        self.pending = False

    def handler(self, signum: int, frame: Any) -> None:
        if self.evaluating:
            raise KeyboardInterrupt
        self.pending = True

    def check(self) -> None:
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


class interrupt_guard:
    """Context manager installing ``_Guard`` as the SIGINT handler (main thread, default handler
    only: a host that installed its own keeps it, and Ctrl-C then arrives as usual)."""

    def __init__(self) -> None:
        self.guard = _Guard()
        self._previous: Any = None

    def __enter__(self) -> _Guard:
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self.guard.handler)
        return self.guard

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def optimise_pixels(
    init: torch.Tensor,
    loss_fn: LossFn,
    options: LoopOptions | None = None,
    *,
    callback: Callable[..., None] | None = None,
    computes_grad: bool = False,
    resume: LoopState | None = None,
    start_step: int = 0,
    **settings: Any,
) -> PixelLoopResult:
    """Run optimiser steps on a copy of ``init`` (BCHW in [0, 1]) until ``iterations`` steps are done.

    The loop settings are a :class:`LoopOptions` (``options``), or its fields as keywords
    (``optimise_pixels(x, f, iterations=20, optimizer="adam")``), which also override ``options``.
    ``early_stop=(rel_tol, window)`` stops when the loss fell by less than ``rel_tol`` (relative)
    over the last ``window`` steps. ``average`` > 0 keeps an exponential moving average of the
    iterates with that decay and returns it (smoother results). Ctrl-C ends the loop with
    ``stopped="interrupted"`` and the last completed step's image and ``state``; a non-finite
    loss ends it with ``stopped="non-finite"`` and the last iterate whose loss was finite.
    ``resume``: a ``LoopState`` from an interrupted run (``init`` is then ignored); steps are
    numbered from the start of the run, so snapshots and ``iterations`` are absolute.
    ``start_step``: without ``resume``, the steps already done (an inexact resume from an image).
    ``computes_grad``: ``loss_fn`` fills ``x.grad`` itself (tiled optimisation) and returns a
    detached loss. ``history_size``: L-BFGS memory (each entry costs two image-sized vectors).
    """
    opts = loop_options(options, settings)
    iterations, optimizer, average, clamp = opts.iterations, opts.optimizer, opts.average, opts.clamp
    save_every, stage, stages, early_stop = opts.save_every, opts.stage, opts.stages, opts.early_stop
    lr, history_size = opts.learning_rate, opts.history_size
    source = resume.image if resume is not None else init
    x = source.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    opt = _make_optimizer(optimizer, x, lr, history_size)
    result = PixelLoopResult(image=x.detach().clamp(0, 1))
    ema = x.detach().clone() if average > 0 else None
    result.iterations = start_step
    first = start_step + 1
    if resume is not None:
        opt.load_state_dict(resume.optimizer)
        if ema is not None and resume.ema is not None:
            ema = resume.ema.detach().clone()
        result.history = [dict(h) for h in resume.history]
        result.iterations = first = resume.step
        first += 1
    good = x.detach().clone()  # the last iterate whose loss was finite (or the start)
    last_terms: dict[str, float] = {}

    def state(step: int) -> LoopState:
        return LoopState(step=step, image=x.detach(), optimizer=opt.state_dict(), ema=ema, history=result.history)

    with interrupt_guard() as guard:

        def closure() -> torch.Tensor:
            guard.evaluating = True
            guard.check()  # a Ctrl-C deferred during the previous step's bookkeeping
            try:
                opt.zero_grad(set_to_none=True)
                loss, terms = loss_fn(x)
                if not computes_grad:
                    loss.backward()
            finally:
                guard.evaluating = False
            last_terms.clear()
            last_terms.update({"total": float(loss.detach())}, **{k: float(v.detach()) for k, v in terms.items()})
            return loss

        step = result.iterations
        try:
            for step in range(first, iterations + 1):
                before = x.detach().clone()
                opt.step(closure)
                if clamp:  # projected steps: optimise the image as it is delivered (clamped)
                    with torch.no_grad():
                        if bool(torch.isfinite(x).all()):  # a diverged step stays visible to the checks below
                            x.clamp_(0, 1)
                if not all(math.isfinite(v) for v in last_terms.values()):
                    # the loss at the iterate this step started from is not finite: keep the
                    # last one whose loss was
                    result.stopped = "non-finite"
                    emit(callback, MessageEvent(
                        f"stopped at step {step}: the loss became non-finite; keeping the image after step "
                        f"{max(0, step - 2)}, the last whose loss was finite (try a lower learning rate)", "warning"))
                    break
                good = before
                if ema is not None:
                    with torch.no_grad():
                        ema.mul_(average).add_(x.detach(), alpha=1 - average)
                result.history.append(dict(last_terms))
                result.iterations = step
                emit(callback, StepEvent(step=step, total=iterations, losses=dict(last_terms), stage=stage, stages=stages))
                if save_every and step % save_every == 0 and step != iterations:
                    current = ema if ema is not None else x.detach()
                    emit(callback, SnapshotEvent(step=step, image=current.clamp(0, 1).cpu().clone(), stage=stage, state=state(step)))
                if early_stop is not None and _converged(result.history, *early_stop):
                    tol, window = early_stop
                    result.stopped = "converged"
                    emit(callback, MessageEvent(f"stopped: loss changed < {tol * 100:g}% over {window} steps (step {step} of {iterations})"))
                    break
                guard.check()
        except KeyboardInterrupt:
            result.stopped = "interrupted"
            emit(callback, MessageEvent(f"interrupted after step {result.iterations}: keeping its image", "warning"))
    if result.stopped == "non-finite":
        final = good
    else:
        final = ema if ema is not None else x.detach()
        if not bool(torch.isfinite(final).all()):  # the last step produced non-finite pixels
            result.stopped = "non-finite"
            emit(callback, MessageEvent(f"the last step produced non-finite pixels; keeping step {max(0, result.iterations - 1)}", "warning"))
            final = good
    result.image = final.clamp(0, 1).detach()
    if result.stopped == "interrupted":
        result.state = state(result.iterations)
    return result


def _converged(history: list[dict[str, float]], tol: float, window: int) -> bool:
    if window <= 0 or len(history) <= window:
        return False
    before, now = history[-window - 1]["total"], history[-1]["total"]
    return abs(before - now) <= tol * abs(before)

