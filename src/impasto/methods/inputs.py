"""Turning what a caller gives a method (a path, a loaded image, a tensor) into image tensors."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import UsageError
from ..provenance import sha256_file

__all__ = ["load_input"]


def load_input(path_or_image: Any, what: str, max_pixels: int) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, Any]]:
    """``(image 1x3xHxW in [0, 1], alpha 1x1xHxW or None, info)`` for a path, a LoadedImage or a
    tensor; ``info`` (path, sha256, size, notes) goes into the run manifest; ``what`` names the
    input in errors."""
    from ..image.io import LoadedImage, load_image

    if isinstance(path_or_image, torch.Tensor):
        img = path_or_image if path_or_image.dim() == 4 else path_or_image.unsqueeze(0)
        if img.dim() != 4 or img.shape[1] != 3:
            raise UsageError(f"{what}: expected an image tensor 1x3xHxW, got {tuple(path_or_image.shape)}")
        return img.float(), None, {"path": None, "size": [img.shape[-1], img.shape[-2]]}
    if isinstance(path_or_image, LoadedImage):
        loaded = path_or_image
    else:
        loaded = load_image(path_or_image, max_pixels=max_pixels)
    info = {
        "path": str(loaded.path) if loaded.path else None,
        "sha256": sha256_file(loaded.path) if loaded.path else None,
        "size": list(loaded.info.get("size", [loaded.image.shape[-1], loaded.image.shape[-2]])),
        "notes": list(loaded.info.get("notes", [])),
    }
    return loaded.image, loaded.alpha, info
