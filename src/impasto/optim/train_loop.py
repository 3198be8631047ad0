"""The one training loop of every trained network: generic over the network, the objective and the data.

A method's *recipe* builds the network, the objective and the data, then calls :func:`train_loop`;
the loop owns everything that does not depend on what is being trained:

- Adam and the learning-rate schedule (:mod:`.training`), mixed precision and gradient scaling
  (:class:`Precision`), channels-last memory;
- exact checkpoints (``RUN_DIR/checkpoint.pt``: model, optimiser, schedule, scaler, step and every
  random state, plus the recipe's own entries) every ``checkpoint_every`` steps, at a Ctrl-C
  (held back while the model is being updated, see :func:`.training.deferred_interrupt`) and at
  the end; ``resume=True`` continues bit for bit (same data position, same random states);
- the loss log (``RUN_DIR/log.jsonl``: the mean of every term over the last ``log_every`` steps,
  plus the learning rate, images per second and elapsed time), TensorBoard scalars if installed,
  progress events (:class:`~impasto.progress.StageEvent`, :class:`~impasto.progress.StepEvent`),
  and a clear error when the loss stops being finite.

What is trained comes in as objects:

- ``net``: any ``nn.Module`` (its parameters are optimised unless ``params`` says otherwise);
- ``objective(net, batch) -> (total, terms)``: the loss of one step (``terms``: named scalar
  tensors, each logged). It runs under autocast; it may draw random numbers (noise seeds, style
  indices, crops) from ``torch.Generator`` objects it owns: pass them as ``generators`` and the
  checkpoints capture and restore them;
- ``data(start_step)``: an iterator of batches from that step on (``None``: the objective needs
  no data, e.g. texture synthesis). It is called once, after the resume point is known, and
  should be a pure function of the step (see :mod:`impasto.data.folder`) for exact resuming;
- :class:`LoopHooks`: what the recipe adds (its config in each checkpoint, checks before a
  resume, previews, a config file written beside each checkpoint, extra log fields).

The loop never sees a method's Config: it takes :class:`TrainLoopOptions`. Recipes to come reuse it
unchanged: a multi-style (conditional instance norm) network draws a style index per batch in
its objective (from a generator it passes in ``generators``); an AdaIN decoder trains on batches
of (content, style) pairs with ``params`` limited to the decoder; a super-resolution network
trains on (low, high) pairs with a perceptual objective against ``high``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol

import torch
from torch import nn

from ..errors import ConfigError, Interrupted, RuntimeFailure
from ..progress import Event, MessageEvent, StageEvent, StepEvent, emit
from .training import LossLog, TensorBoardLog, capture_rng, deferred_interrupt, load_checkpoint, make_optimizer, make_scheduler, restore_rng, save_checkpoint

__all__ = ["CHECKPOINT_NAME", "LOG_NAME", "TENSORBOARD_DIR", "TrainLoopOptions", "LoopHooks", "LoopResult", "Objective", "Precision", "LossWindow", "resolve_precision", "train_loop"]

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "log.jsonl"
TENSORBOARD_DIR = "tensorboard"


class Objective(Protocol):
    """The loss of one training step: ``(net, batch) -> (total, {term: value})``."""

    def __call__(self, net: nn.Module, batch: Any) -> tuple[torch.Tensor, Mapping[str, torch.Tensor]]: ...


@dataclass(frozen=True)
class TrainLoopOptions:
    """The settings of the loop itself (a recipe builds them from its Config)."""

    steps: int
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    batch_size: int = 1  # samples per step (for images_per_s in the log)
    checkpoint_every: int = 0  # 0: only at the end (and at a Ctrl-C)
    log_every: int = 50
    preview_every: int = 0  # 0: never call hooks.preview


@dataclass(frozen=True)
class Precision:
    """Where and how the step runs: device, autocast dtype of the whole step (None: float32), the
    frozen loss network's compute dtype, memory format."""

    device: torch.device
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    amp_ignored: bool = False  # amp was asked for on a device without it
    channels_last_ignored: bool = False
    encoder_dtype: torch.dtype | None = None

    def prepare_encoder(self, encoder: torch.nn.Module) -> None:
        """Set a frozen loss network (a FeatureExtractor) to ``encoder_dtype``: its stages run
        under autocast and its features come back float32, so the losses and the generator stay
        float32. A VGG on a CPU then runs channels-last (a johnson step, VGG16 with zero padding,
        batch 4, 256 px, timed alone: 2.7 s without, 2.0 s with)."""
        if self.encoder_dtype is None or not hasattr(encoder, "compute_dtype"):
            return
        encoder.compute_dtype = self.encoder_dtype
        if self.device.type == "cpu" and "vgg" in str(getattr(getattr(encoder, "spec", None), "name", "")):
            encoder.channels_last = True

    @property
    def loss_network(self) -> str:
        """The loss network's precision: ``bf16``, ``fp16`` or ``fp32`` (under ``amp``: the step's)."""
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.encoder_dtype or self.amp_dtype, "fp32")  # type: ignore[arg-type]

    @property
    def memory_format(self) -> torch.memory_format:
        """``torch.channels_last`` or ``torch.contiguous_format``."""
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self) -> Any:
        """The autocast context of a step (a no-op in float32)."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    @property
    def amp_name(self) -> str | None:
        """``"bfloat16"``, ``"float16"`` or None."""
        return str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else None


def resolve_precision(device: torch.device, *, amp: bool = False, channels_last: bool = False, precision: str = "fp32", method: str | None = None) -> Precision:
    """How a training step computes. ``precision`` (auto|fp32|bf16, resolved by
    :func:`impasto.precision.resolve_precision` with ``method`` as the key of ``auto``) sets the
    frozen loss network's dtype (see :meth:`Precision.prepare_encoder`). ``amp`` runs the whole
    step under autocast: bfloat16 on a CPU and on CUDA where supported, else float16 with loss
    scaling. Channels-last memory is a CUDA feature. What a device cannot honour is switched off
    and marked ``*_ignored``."""
    from ..precision import resolve_precision as resolve_dtype

    amp_dtype: torch.dtype | None = None
    if amp and device.type == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    elif amp and device.type == "cpu":
        amp_dtype = torch.bfloat16
    encoder_dtype = resolve_dtype(precision, device, method) if amp_dtype is None else None
    use_cl = channels_last and device.type == "cuda"
    return Precision(device, amp_dtype, use_cl, amp_ignored=amp and amp_dtype is None, channels_last_ignored=channels_last and not use_cl, encoder_dtype=encoder_dtype)


@dataclass
class LoopHooks:
    """What a recipe adds to the loop; every hook is optional.

    ``check_resume(checkpoint)``: raise if a checkpoint does not belong to this run (other
    settings, another style). ``checkpoint_extra()``: entries added to every checkpoint.
    ``restore_extra(checkpoint)``: read them back on resume. ``saved(step)``: after every
    checkpoint, and at step 0 of a fresh run (e.g. write the resolved config). ``preview(step)``:
    every ``preview_every`` steps and at the end (the net is in training mode; switch it to eval
    and back). ``log_extra()``: fields appended to each log line.
    """

    check_resume: Callable[[Mapping[str, Any]], None] | None = None
    checkpoint_extra: Callable[[], Mapping[str, Any]] | None = None
    restore_extra: Callable[[Mapping[str, Any]], None] | None = None
    saved: Callable[[int], None] | None = None
    preview: Callable[[int], None] | None = None
    log_extra: Callable[[], Mapping[str, Any]] | None = None


@dataclass
class LoopResult:
    """Where a finished loop stopped."""

    steps: int
    elapsed_s: float
    checkpoint: Path


class LossWindow:
    """Sums of the loss terms since the last log line (saved in checkpoints)."""

    def __init__(self, state: Mapping[str, Any] | None = None) -> None:
        self.sums: dict[str, float] = dict(state["sums"]) if state else {}
        self.count: int = int(state["count"]) if state else 0

    def add(self, losses: Mapping[str, float]) -> None:
        """Add one step's loss terms."""
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.count += 1

    def mean(self) -> dict[str, float]:
        """The mean of each term over the window."""
        return {k: v / max(1, self.count) for k, v in self.sums.items()}

    def reset(self) -> None:
        """Start a new window."""
        self.sums, self.count = {}, 0

    def state(self) -> dict[str, Any]:
        """Plain values for a checkpoint (``LossWindow(state)`` restores it)."""
        return {"sums": dict(self.sums), "count": self.count}


def train_loop(
    net: nn.Module,
    objective: Objective,
    options: TrainLoopOptions,
    *,
    precision: Precision,
    run_dir: str | Path,
    data: Callable[[int], Iterator[Any]] | None = None,
    generators: Mapping[str, torch.Generator] | None = None,
    params: Iterable[torch.nn.Parameter] | None = None,
    resume: bool = False,
    hooks: LoopHooks | None = None,
    callback: Callable[[Event], None] | None = None,
    description: str = "training",
    resume_how: str = "resume=True",
) -> LoopResult:
    """Train ``net`` for ``options.steps`` steps on ``objective`` (see the module docstring).

    ``run_dir`` receives ``checkpoint.pt``, ``log.jsonl`` and ``tensorboard/``; ``resume=True``
    continues from its checkpoint. ``description`` names the stage in progress events;
    ``resume_how`` completes "continue with ..." in the message of a Ctrl-C (:class:`Interrupted`).
    Returns after the final checkpoint; the net is left in training mode.
    """
    hooks = hooks or LoopHooks()
    generators = dict(generators or {})
    out = Path(run_dir)
    ckpt_path = out / CHECKPOINT_NAME
    device = precision.device
    net.to(device=device, memory_format=precision.memory_format).train()
    optimizer = make_optimizer(net.parameters() if params is None else params, options.lr)
    scheduler = make_scheduler(optimizer, options.lr_schedule, options.steps)
    scaler = torch.amp.GradScaler("cuda") if precision.amp_dtype == torch.float16 else None

    # ---- state ---------------------------------------------------------------------------
    log = LossLog(out / LOG_NAME)
    start = 0
    elapsed_before = 0.0
    window = LossWindow()
    if resume:
        ckpt = load_checkpoint(ckpt_path, map_location=device)
        if hooks.check_resume is not None:
            hooks.check_resume(ckpt)
        start = int(ckpt["step"])
        if start > options.steps:
            raise ConfigError(f"{out}: the checkpoint is at step {start}, beyond steps {options.steps}", params="steps")
        net.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("steps") != options.steps:  # more (or fewer) steps than planned: follow the new schedule from here
            for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
                group["lr"] = base * scheduler.lr_lambdas[0](start)
            scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]  # type: ignore[attr-defined]
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        restore_rng(ckpt["rng"], generators)
        window = LossWindow(ckpt.get("log_window"))
        elapsed_before = float(ckpt.get("elapsed_s", 0.0))
        if hooks.restore_extra is not None:
            hooks.restore_extra(ckpt)
        log.truncate(start)
        emit(callback, MessageEvent(f"resuming {out} at step {start} of {options.steps}"))
    else:
        log.path.unlink(missing_ok=True)

    def checkpoint(step: int, rng: dict[str, Any] | None = None) -> None:
        """Save the state after ``step`` steps; ``rng``: the random states at that point (default: now)."""
        save_checkpoint(
            ckpt_path,
            {
                "step": step,
                "steps": options.steps,
                "model": {k: v.detach().clone() for k, v in net.state_dict().items()},
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "rng": rng if rng is not None else capture_rng(generators),
                **(hooks.checkpoint_extra() if hooks.checkpoint_extra is not None else {}),
                "log_window": window.state(),
                "elapsed_s": elapsed_before + (time.perf_counter() - t_start),
            },
        )
        if hooks.saved is not None:
            hooks.saved(step)

    # ---- the loop ------------------------------------------------------------------------
    batches = data(start) if data is not None else None
    tb = TensorBoardLog(out / TENSORBOARD_DIR)
    emit(callback, StageEvent(0, 1, description, options.steps - start))
    t_start = time.perf_counter()
    t_window = time.perf_counter()
    completed = start
    updating = False
    step_rng: dict[str, Any] | None = None  # random states at the start of an unfinished step
    if start == 0 and hooks.saved is not None:
        hooks.saved(0)
    try:
        for step in range(start, options.steps):
            step_rng = capture_rng(generators)  # a Ctrl-C inside this step resumes from here
            batch = None
            if batches is not None:
                try:
                    batch = next(batches)
                except StopIteration:
                    raise RuntimeFailure(f"the training data ran out at step {step}") from None
            with precision.autocast():
                loss, terms = objective(net, batch)
            optimizer.zero_grad(set_to_none=True)
            (scaler.scale(loss) if scaler is not None else loss).backward()
            with deferred_interrupt():  # Ctrl-C waits until model, optimiser, step and log agree
                updating = True
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                scheduler.step()
                updating = False
                completed, step_rng = step + 1, None
                losses = {"total": float(loss.detach())}
                losses.update({k: float(v.detach()) for k, v in terms.items()})
                if not all(math.isfinite(v) for v in losses.values()):
                    raise RuntimeFailure(f"training diverged at step {completed} (loss {losses['total']}); lower lr or the loss weights, or resume from the last checkpoint", params="lr")
                window.add(losses)
                if completed % options.log_every == 0 or completed == options.steps:
                    now_t = time.perf_counter()
                    record = {
                        "step": completed,
                        **window.mean(),
                        "lr": scheduler.get_last_lr()[0],
                        "images_per_s": window.count * options.batch_size / max(1e-9, now_t - t_window),
                        "elapsed_s": round(elapsed_before + now_t - t_start, 3),
                        **(hooks.log_extra() if hooks.log_extra is not None else {}),
                    }
                    log.append(record)
                    tb.scalars(completed, {k: v for k, v in record.items() if k not in ("step",)})
                    window.reset()
                    t_window = now_t
            if options.checkpoint_every and completed % options.checkpoint_every == 0 and completed != options.steps:
                checkpoint(completed)
            if options.preview_every and hooks.preview is not None and (completed % options.preview_every == 0 or completed == options.steps):
                hooks.preview(completed)
            emit(callback, StepEvent(step=completed - start, total=options.steps - start, losses=losses))
    except KeyboardInterrupt:
        tb.close()
        if (completed > start or step_rng is not None) and not updating:  # the state after `completed` steps, RNGs as then
            checkpoint(completed, step_rng)
            raise Interrupted(f"training interrupted at step {completed}; saved {ckpt_path} (continue with {resume_how})") from None
        last = f"continue from the last checkpoint with {resume_how}" if ckpt_path.exists() else "no checkpoint was saved"
        raise Interrupted(f"training interrupted; {last}") from None
    finally:
        tb.close()
        del batches

    checkpoint(options.steps)
    return LoopResult(options.steps, elapsed_before + (time.perf_counter() - t_start), ckpt_path)
