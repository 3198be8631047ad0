"""Typed progress events. The core never prints: it calls a callback with these events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Union

import torch

__all__ = ["StepEvent", "SnapshotEvent", "StageEvent", "MessageEvent", "Event", "ProgressCallback", "emit"]


@dataclass(frozen=True)
class StepEvent:
    """One optimisation or training step finished."""

    step: int  # 1-based, counted over the current stage
    total: int
    losses: dict[str, float]  # "total" plus each term, e.g. "content", "style", "tv"
    stage: int = 0  # pyramid level / tile pass, 0-based
    stages: int = 1


@dataclass(frozen=True)
class SnapshotEvent:
    """An intermediate image (float32 1x3xHxW in [0, 1], on CPU) is available."""

    step: int
    image: torch.Tensor = field(repr=False)
    stage: int = 0
    state: Any = field(default=None, repr=False)  # optim.pixel.LoopState: resumable, valid during the callback


@dataclass(frozen=True)
class StageEvent:
    """A new stage (pyramid scale, epoch) begins."""

    stage: int
    stages: int
    description: str
    steps: int  # steps of the whole stage
    done: int = 0  # of which already done (a resumed stage)


@dataclass(frozen=True)
class MessageEvent:
    """Something the user should know (e.g. why a run stopped early). level: 'info'|'warning'."""

    text: str
    level: str = "info"


Event = Union[StepEvent, SnapshotEvent, StageEvent, MessageEvent]


class ProgressCallback(Protocol):
    def __call__(self, event: Event) -> None: ...


def emit(callback: Callable[[Event], None] | None, event: Event) -> None:
    """Send ``event`` to ``callback`` if there is one."""
    if callback is not None:
        callback(event)
