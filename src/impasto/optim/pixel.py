"""Optimise an image's pixels against a loss (Gatys et al.)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..errors import UsageError
from ..progress import MessageEvent, SnapshotEvent, StepEvent, emit

__all__ = ["PixelLoopResult", "optimise_pixels", "OPTIMIZERS", "default_lr"]

OPTIMIZERS = ("lbfgs", "adam")
LossFn = Callable[[torch.Tensor], "tuple[torch.Tensor, dict[str, torch.Tensor]]"]


def default_lr(optimizer: str) -> float:
    """Learning rate that suits images in [0, 1]: 1 for L-BFGS (a step length), 0.02 for Adam."""
    return 1.0 if optimizer == "lbfgs" else 0.02


@dataclass
class PixelLoopResult:
    """The optimised image and how the run went."""

    image: torch.Tensor
    history: list[dict[str, float]] = field(default_factory=list)
    iterations: int = 0
    stopped: str = "completed"  # completed | converged | interrupted | non-finite

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


def optimise_pixels(
    init: torch.Tensor,
    loss_fn: LossFn,
    *,
    iterations: int,
    optimizer: str = "lbfgs",
    lr: float | None = None,
    callback: Callable[..., None] | None = None,
    save_every: int = 0,
    stage: int = 0,
    stages: int = 1,
    early_stop: tuple[float, int] | None = None,
    average: float = 0.0,
    clamp: bool = True,
    history_size: int = 100,
    computes_grad: bool = False,
) -> PixelLoopResult:
    """Run ``iterations`` optimiser steps on a copy of ``init`` (BCHW in [0, 1]).

    ``early_stop=(rel_tol, window)`` stops when the loss fell by less than ``rel_tol`` (relative)
    over the last ``window`` steps. ``average`` > 0 keeps an exponential moving average of the
    iterates with that decay and returns it (smoother results). Ctrl-C (KeyboardInterrupt)
    ends the loop and returns the current image with ``stopped="interrupted"``.
    ``computes_grad``: ``loss_fn`` fills ``x.grad`` itself (tiled optimisation) and returns a
    detached loss. ``history_size``: L-BFGS memory (each entry costs two image-sized vectors).
    """
    if iterations < 0:
        raise UsageError(f"--iterations must be >= 0, got {iterations}")
    if not 0.0 <= average < 1.0:
        raise UsageError(f"--average must be in [0, 1), got {average}")
    lr = default_lr(optimizer) if lr is None else lr
    if lr <= 0:
        raise UsageError(f"--lr must be > 0, got {lr}")
    x = init.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    opt = _make_optimizer(optimizer, x, lr, history_size)
    result = PixelLoopResult(image=init.detach().clone())
    ema = x.detach().clone() if average > 0 else None
    last_terms: dict[str, float] = {}

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss, terms = loss_fn(x)
        if not computes_grad:
            loss.backward()
        last_terms.clear()
        last_terms.update({"total": float(loss.detach())}, **{k: float(v.detach()) for k, v in terms.items()})
        return loss

    step = 0
    try:
        for step in range(1, iterations + 1):
            opt.step(closure)
            if optimizer == "adam" and clamp:
                with torch.no_grad():
                    x.clamp_(0, 1)
            if not math.isfinite(last_terms.get("total", 0.0)):
                result.stopped = "non-finite"
                emit(callback, MessageEvent("stopped: the loss became non-finite; try a lower --lr", "warning"))
                break
            if ema is not None:
                with torch.no_grad():
                    ema.mul_(average).add_(x.detach(), alpha=1 - average)
            result.history.append(dict(last_terms))
            result.iterations = step
            emit(callback, StepEvent(step=step, total=iterations, losses=dict(last_terms), stage=stage, stages=stages))
            if save_every and step % save_every == 0 and step != iterations:
                current = ema if ema is not None else x.detach()
                emit(callback, SnapshotEvent(step=step, image=current.clamp(0, 1).cpu().clone(), stage=stage))
            if early_stop is not None and _converged(result.history, *early_stop):
                tol, window = early_stop
                result.stopped = "converged"
                emit(callback, MessageEvent(f"stopped: loss changed < {tol * 100:g}% over {window} steps (step {step} of {iterations})"))
                break
    except KeyboardInterrupt:
        result.stopped = "interrupted"
        emit(callback, MessageEvent(f"interrupted at step {step}: keeping the current image", "warning"))
    final = ema if ema is not None else x.detach()
    result.image = final.clamp(0, 1).detach()
    return result


def _converged(history: list[dict[str, float]], tol: float, window: int) -> bool:
    if window <= 0 or len(history) <= window:
        return False
    before, now = history[-window - 1]["total"], history[-1]["total"]
    return abs(before - now) <= tol * abs(before)
