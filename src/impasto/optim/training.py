"""Building blocks of network training: optimiser and schedule, exact checkpoints, the loss log.

A checkpoint holds everything a run needs to continue bit for bit: model, optimiser, schedule,
gradient scaler, step, and every random-number state (torch CPU and CUDA, NumPy, Python, and any
named ``torch.Generator`` the caller owns). The data position is the step (the sampler is a pure
function of seed and position, see :mod:`impasto.data.folder`). Files are written atomically and
read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from ..atomic import atomic_path
from ..errors import ConfigError, ModelFileError

__all__ = [
    "SCHEDULES",
    "make_optimizer",
    "make_scheduler",
    "lr_factor",
    "capture_rng",
    "restore_rng",
    "deferred_interrupt",
    "save_checkpoint",
    "load_checkpoint",
    "LossLog",
    "TensorBoardLog",
]

SCHEDULES = ("constant", "cosine", "step")
CHECKPOINT_FORMAT = "impasto.checkpoint"


def make_optimizer(params: Any, lr: float) -> torch.optim.Optimizer:
    """Adam (Kingma & Ba), as in Johnson et al."""
    return torch.optim.Adam(params, lr=lr)


def lr_factor(schedule: str, step: int, total: int, *, final: float = 0.01) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total``.

    ``constant``: 1. ``cosine``: from 1 down to ``final`` along half a cosine. ``step``: x0.1 after
    2/3 of the steps (x0.01 after 8/9).
    """
    if schedule == "constant" or total <= 1:
        return 1.0
    t = min(max(step / (total - 1), 0.0), 1.0)
    if schedule == "cosine":
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * t))
    if schedule == "step":
        return 1.0 if t < 2 / 3 else (0.1 if t < 8 / 9 else 0.01)
    raise ConfigError(f"unknown learning-rate schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: str, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR following :func:`lr_factor` (its state is just the step count)."""
    lr_factor(schedule, 0, total)  # validate the name
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(schedule, s, total))


def capture_rng(generators: Mapping[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Every random-number state, as tensors and plain values (loadable with weights_only=True)."""
    py = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np.asarray(np_state[1]).astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any], generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Undo :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    for key, g in (generators or {}).items():
        if key in state.get("generators", {}):
            g.set_state(state["generators"][key])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold back Ctrl-C (SIGINT) for the body and raise the KeyboardInterrupt after it.

    Wraps the few statements that change the model, optimiser and step counter together, so a
    Ctrl-C never leaves them half updated. Only acts in the main thread while Python's default
    SIGINT handler is installed; elsewhere the body runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def save_checkpoint(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> Path:
    """Write a checkpoint atomically (``payload`` must hold only tensors and plain values)."""
    data = {"format": CHECKPOINT_FORMAT, "version": 1, **payload}
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; a bad file raises ModelFileError."""
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"{p}: no checkpoint to resume from")
    try:
        data = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to unpickle means a bad file
        raise ModelFileError(f"{p}: not a readable checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{p}: not an impasto training checkpoint")
    return data


class LossLog:
    """The JSON-lines loss log (``log.jsonl``): one object per logged step, appended and flushed.

    ``truncate(step)`` drops lines logged after ``step`` (a resumed run repeats those steps).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def append(self, record: Mapping[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(dict(record), allow_nan=False, default=float) + "\n")
            f.flush()

    def read(self) -> list[dict[str, Any]]:
        return read_log(self.path)

    def truncate(self, step: int) -> None:
        if not self.path.exists():
            return
        keep = [r for r in self.read() if int(r.get("step", 0)) <= step]
        with atomic_path(self.path) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                for r in keep:
                    f.write(json.dumps(r) + "\n")


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Parse a log.jsonl, skipping a partly written last line (or any unparsable line)."""
    p = Path(path)
    if not p.exists():
        return []
    out: list[dict[str, Any]] = []
    with open(p, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
    return out


class TensorBoardLog:
    """Scalars to TensorBoard when ``torch.utils.tensorboard`` and ``tensorboard`` are installed;
    otherwise does nothing (``enabled`` is False)."""

    def __init__(self, log_dir: str | os.PathLike[str]) -> None:
        self.writer: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package
        except Exception:  # noqa: BLE001 - optional dependency
            return
        self.writer = SummaryWriter(log_dir=str(log_dir))

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        if self.writer is None:
            return
        for k, v in values.items():
            self.writer.add_scalar(f"loss/{k}" if k in ("total", "content", "style", "tv") else k, v, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
