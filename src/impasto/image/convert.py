"""THE tensor convention, and conversions to and from PIL and numpy.

An ``image`` is a float32 torch tensor of shape Bx3xHxW (RGB) with values in [0, 1]; a ``mask``
is Bx1xHxW in [0, 1]. Conversions to 8 or 16 bits round to the nearest level (never truncate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image as PILImage

__all__ = [
    "validate_image",
    "as_batch",
    "pil_to_tensor",
    "tensor_to_pil",
    "tensor_to_numpy",
    "numpy_to_tensor",
]

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def _shape(t: Any) -> str:
    return "x".join(str(s) for s in t.shape)


def validate_image(image: Any, what: str = "image", *, channels: int | None = 3) -> torch.Tensor:
    """Check that ``image`` is a floating-point BxCxHxW tensor (C == ``channels`` unless None).

    Returns it unchanged; raises UsageError naming ``what`` otherwise.
    """
    if not isinstance(image, torch.Tensor):
        raise UsageError(f"{what}: expected a torch.Tensor, got {type(image).__name__}")
    if image.dim() != 4:
        want = f"Bx{channels}xHxW" if channels else "BxCxHxW"
        raise UsageError(f"{what}: expected a {want} tensor, got shape {_shape(image)}")
    if channels is not None and image.shape[1] != channels:
        raise UsageError(f"{what}: expected {channels} channel(s) (Bx{channels}xHxW), got shape {_shape(image)}")
    if not image.is_floating_point():
        raise UsageError(f"{what}: expected a floating-point tensor with values in [0, 1], got {image.dtype}")
    if image.shape[-1] < 1 or image.shape[-2] < 1:
        raise UsageError(f"{what}: empty image of shape {_shape(image)}")
    return image


def as_batch(image: Any, what: str = "image", *, channels: int | None = 3) -> torch.Tensor:
    """Accept CxHxW or 1xCxHxW and return 1xCxHxW (validated)."""
    if isinstance(image, torch.Tensor) and image.dim() == 3:
        image = image.unsqueeze(0)
    image = validate_image(image, what, channels=channels)
    if image.shape[0] != 1:
        raise UsageError(f"{what}: expected a single image (batch of 1), got shape {_shape(image)}")
    return image


def pil_to_tensor(img: PILImage.Image) -> torch.Tensor:
    """A PIL image -> 1x3xHxW float32 in [0, 1].

    16-bit greyscale keeps its precision (values / 65535); other modes go through
    ``convert("RGB")`` (an alpha channel is ignored: use :func:`impasto.image.io.load_image`
    to keep it).
    """
    from PIL import Image

    if not isinstance(img, Image.Image):
        raise UsageError(f"pil_to_tensor: expected a PIL image, got {type(img).__name__}")
    if img.mode in _SIXTEEN_BIT_MODES:
        return numpy_to_tensor(np.asarray(img).astype(np.uint16))
    if img.mode != "RGB":
        img = img.convert("RGB")
    return numpy_to_tensor(np.asarray(img))


def tensor_to_numpy(image: torch.Tensor, dtype: Any = np.uint8) -> np.ndarray:
    """A 1x3xHxW (or 3xHxW) image -> HxWx3 array of ``dtype``.

    uint8 and uint16 are scaled to 0..255 / 0..65535 with rounding; float32/float64 keep [0, 1].
    Values are clamped to [0, 1] first.
    """
    image = as_batch(image, "tensor_to_numpy")
    dt = np.dtype(dtype)
    x = image.detach()[0].to("cpu", torch.float32).clamp(0, 1).permute(1, 2, 0)
    if dt == np.uint8:
        return (x * 255).round_().to(torch.uint8).numpy()
    if dt == np.uint16:
        return (x.double() * 65535).round_().to(torch.int32).numpy().astype(np.uint16)
    if dt in (np.float32, np.float64):
        return x.numpy().astype(dt)
    raise UsageError(f"tensor_to_numpy: dtype must be uint8, uint16, float32 or float64, got {dt}")


def tensor_to_pil(image: torch.Tensor) -> PILImage.Image:
    """A 1x3xHxW (or 3xHxW) image -> 8-bit RGB PIL image (rounded, clamped to [0, 1])."""
    from PIL import Image

    return Image.fromarray(tensor_to_numpy(image, np.uint8), "RGB")


def numpy_to_tensor(arr: np.ndarray) -> torch.Tensor:
    """An HxWx3 (or HxW / HxWx1 greyscale) array -> 1x3xHxW float32 in [0, 1].

    uint8 is divided by 255, uint16 by 65535; float arrays are taken as [0, 1] and clamped.
    """
    if not isinstance(arr, np.ndarray):
        raise UsageError(f"numpy_to_tensor: expected a numpy array, got {type(arr).__name__}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        extra = " (split an alpha channel off first)" if arr.ndim == 3 and arr.shape[2] in (2, 4) else ""
        raise UsageError(f"numpy_to_tensor: expected an HxWx3 or HxW array, got shape {arr.shape}{extra}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise UsageError(f"numpy_to_tensor: empty array of shape {arr.shape}")
    # astype copies: the tensor owns its memory (arrays from PIL are read-only)
    if arr.dtype == np.uint8:
        x = torch.from_numpy(arr.astype(np.float32)).div_(255)
    elif arr.dtype == np.uint16:
        x = torch.from_numpy(arr.astype(np.float32)).div_(65535)
    elif arr.dtype in (np.float16, np.float32, np.float64):
        if not np.isfinite(arr).all():
            raise UsageError("numpy_to_tensor: array contains NaN or infinite values")
        x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).clamp(0, 1)  # a copy: never mutate the caller's array
    else:
        raise UsageError(f"numpy_to_tensor: dtype must be uint8, uint16 or float, got {arr.dtype}")
    return x.permute(2, 0, 1).unsqueeze(0).contiguous()
