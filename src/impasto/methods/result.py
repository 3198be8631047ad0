"""What every method returns: the image, its alpha, its run manifest, and how to save them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..provenance import write_json

__all__ = ["Result", "resume_state_path", "write_resume_state"]

PathLike = str | os.PathLike[str]


@dataclass
class Result:
    """A made image with its alpha (if the input had one) and its run manifest."""

    image: torch.Tensor
    alpha: torch.Tensor | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    resume_point: Any = None  # an interrupted run's exact state (to_dict(), level, step)

    @property
    def losses(self) -> dict[str, float]:
        """The final loss terms (``total``, ``content``, ``style``, ...), if the method has any."""
        return dict(self.manifest.get("final_losses", {}))

    def save(self, path: PathLike, *, bit_depth: int = 8, sidecar: bool = True) -> Path:
        """Write the image (atomically) with the manifest embedded, plus ``PATH.json`` beside it.

        An interrupted run also writes ``PATH.resume.pt`` (the exact optimiser state, named in
        the manifest under ``resume``); a finished one removes a stale one.
        """
        from ..image.save import save_image

        manifest = dict(self.manifest, output=str(path))
        manifest.pop("resume", None)
        state = resume_state_path(path)
        if self.resume_point is not None:
            write_resume_state(state, self.resume_point)
            manifest["resume"] = {"state": str(state), "level": self.resume_point.level, "step": self.resume_point.step}
        out = save_image(path, self.image, alpha=self.alpha, metadata=manifest, bit_depth=bit_depth)
        if sidecar:
            write_json(Path(str(path) + ".json"), manifest)
        if self.resume_point is None and state.exists():
            state.unlink()
        return out


def resume_state_path(output: PathLike) -> Path:
    """``out.png`` -> ``out.png.resume.pt``: where a run's exact resume state lives."""
    return Path(str(output) + ".resume.pt")


def write_resume_state(path: Path, point: Any) -> None:
    """Save a resume point atomically (plain tensors and lists: loads with weights_only=True)."""
    from ..atomic import atomic_path

    with atomic_path(path) as tmp:
        torch.save(point.to_dict(), tmp)
