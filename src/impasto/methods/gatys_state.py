"""State the gatys method keeps between calls: where an interrupted run stopped
(:class:`ResumePoint`) and the style statistics reused across levels, sweeps and batches
(:class:`StyleCache`). Re-exported by :mod:`impasto.methods.gatys`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..optim.pixel import LoopState

__all__ = ["ResumePoint", "StyleCache"]


@dataclass
class ResumePoint:
    """Where a run stopped: enough to continue it as if it had never stopped.

    ``loop`` is the exact optimiser state inside ``level`` (after ``step`` steps); without it
    the level starts from ``image`` (the previous level's result, or a snapshot image when no
    state was saved, which continues the count but not the optimiser's memory).
    """

    level: int
    step: int = 0
    loop: LoopState | None = None
    image: torch.Tensor | None = None
    history: list[dict[str, float]] = field(default_factory=list)  # finished levels' steps
    levels: list[dict[str, Any]] = field(default_factory=list)  # finished levels

    def to_dict(self) -> dict[str, Any]:
        """Plain tensors, numbers and lists (loadable with ``torch.load(weights_only=True)``)."""
        loop = None
        if self.loop is not None:
            loop = {"step": self.loop.step, "image": self.loop.image, "optimizer": self.loop.optimizer, "ema": self.loop.ema, "history": self.loop.history}
        return {"format": "impasto-gatys-resume/1", "level": self.level, "step": self.step, "loop": loop,
                "image": self.image, "history": self.history, "levels": self.levels}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ResumePoint":
        """Inverse of ``to_dict``."""
        loop = data.get("loop")
        state = LoopState(loop["step"], loop["image"], loop["optimizer"], loop.get("ema"), list(loop["history"])) if loop else None
        return cls(int(data["level"]), int(data["step"]), state, data.get("image"), list(data.get("history", [])), list(data.get("levels", [])))


class StyleCache:
    """Style statistics computed once and reused across levels, sweeps and batches.

    Keys are stable values, never ``id()``s: the style image's content (``fingerprint``: a hash
    of its pixels and region mask, so equal pixels in different tensors share an entry), its
    size, what the loss's statistics depend on (``PerceptualLoss.style_key``), the encoder's
    ``fingerprint`` (spec, weights, pooling, preprocessing, padding, device) and whether regions
    are used."""

    def __init__(self) -> None:
        self._store: dict[tuple[Any, ...], Any] = {}

    def get(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        if key not in self._store:
            self._store[key] = compute()
        return self._store[key]

    def __len__(self) -> int:
        return len(self._store)

    @staticmethod
    def fingerprint(image: torch.Tensor, mask: torch.Tensor | None = None) -> str:
        """A hash of the pixels (shape and dtype included) of ``image`` and of ``mask``."""
        import hashlib

        digest = hashlib.sha256()
        for t in (image, mask):
            if t is None:
                digest.update(b"none")
                continue
            t = t.detach().to("cpu").contiguous()
            digest.update(f"{tuple(t.shape)}:{t.dtype}".encode())
            digest.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
        return digest.hexdigest()[:32]
