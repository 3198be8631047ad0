"""Render progress events as tqdm bars on stderr (the core never prints)."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

from ..progress import Event, MessageEvent, StageEvent, StepEvent

__all__ = ["ProgressRenderer", "download_bar"]


class ProgressRenderer:
    """A callback that draws one bar per stage with the loss terms as postfix."""

    def __init__(self, *, enabled: bool = True, unit: str = "it", desc: str = "") -> None:
        self.enabled = enabled
        self.unit = unit
        self.desc = desc
        self.bar: Any = None
        self.messages: list[str] = []

    def _new_bar(self, total: int, desc: str, initial: int = 0) -> None:
        self.close()
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit=self.unit, file=sys.stderr, disable=not self.enabled, dynamic_ncols=True, leave=True)

    def __call__(self, event: Event) -> None:
        if isinstance(event, StageEvent):
            self._new_bar(event.steps, event.description, event.done)
        elif isinstance(event, StepEvent):
            if self.bar is None:
                self._new_bar(event.total, self.desc)
            self.bar.update(1)
            if event.step == 1 or event.step % 5 == 0 or event.step == event.total:
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in event.losses.items()}, refresh=False)
        elif isinstance(event, MessageEvent):
            self.messages.append(event.text)
            if not self.enabled and event.level != "warning":  # --quiet keeps warnings only
                return
            prefix = "warning: " if event.level == "warning" else ""
            if self.bar is not None:
                self.bar.write(prefix + event.text, file=sys.stderr)
            else:
                print(prefix + event.text, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def download_bar(desc: str, enabled: bool = True) -> Any:
    """A (done, total) callback drawing a byte progress bar for downloads."""
    state: dict[str, Any] = {"bar": None}

    def cb(done: int, total: int | None) -> None:
        if state["bar"] is None:
            state["bar"] = tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr, disable=not enabled)
        bar = state["bar"]
        bar.update(done - bar.n)
        if total is not None and done >= total:
            bar.close()

    return cb
