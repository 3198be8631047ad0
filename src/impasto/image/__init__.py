"""Images in and out: files <-> tensors, resizing, colour preservation, region masks, tiling.

The convention everywhere: an ``image`` is a float32 Bx3xHxW RGB tensor in [0, 1], a ``mask`` is
Bx1xHxW in [0, 1], ``edge`` is the longest side and ``size`` is (h, w).

Names are imported lazily so ``import impasto.image`` stays cheap (no torch, no Pillow).
``resize`` is both a submodule and a function; ``impasto.image.resize`` is the submodule made
callable as the function, so either use works.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

_EXPORTS = {
    # io
    "DEFAULT_MAX_PIXELS": "io",
    "SUPPORTED_READ": "io",
    "SUPPORTED_WRITE_EXTENSIONS": "io",
    "LoadedImage": "io",
    "load_image": "io",
    "save_image": "io",
    "read_metadata": "io",
    "image_from_array": "io",
    # convert
    "pil_to_tensor": "convert",
    "tensor_to_pil": "convert",
    "tensor_to_numpy": "convert",
    "numpy_to_tensor": "convert",
    "validate_image": "convert",
    # resize
    "fit_edge": "resize",
    "resize": "resize",
    "resize_to_edge": "resize",
    "resize_mask": "resize",
    # color
    "rgb_to_yiq": "color",
    "yiq_to_rgb": "color",
    "luminance": "color",
    "luminance_only": "color",
    "transfer_luminance": "color",
    "match_color": "color",
    # masks
    "RegionMasks": "masks",
    "load_region_masks": "masks",
    "region_masks_from_maps": "masks",
    "downsample_mask": "masks",
    # tiles
    "Tile": "tiles",
    "plan_tiles": "tiles",
    "feather_weight": "tiles",
    "blend_tiles": "tiles",
    "run_tiled": "tiles",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'impasto.image' has no attribute {name!r}")
    import importlib

    mod = importlib.import_module(f"{__name__}.{module}")
    if name == module:  # "resize": the submodule is callable as the function, and importing
        return mod  # it binds the package attribute to the module anyway; always hand out that
    return getattr(mod, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # pragma: no cover
    from .color import luminance, luminance_only, match_color, rgb_to_yiq, transfer_luminance, yiq_to_rgb
    from .convert import numpy_to_tensor, pil_to_tensor, tensor_to_numpy, tensor_to_pil, validate_image
    from .io import (
        DEFAULT_MAX_PIXELS,
        SUPPORTED_READ,
        SUPPORTED_WRITE_EXTENSIONS,
        LoadedImage,
        image_from_array,
        load_image,
        read_metadata,
        save_image,
    )
    from .masks import RegionMasks, downsample_mask, load_region_masks, region_masks_from_maps
    from .resize import fit_edge, resize, resize_mask, resize_to_edge
    from .tiles import Tile, blend_tiles, feather_weight, plan_tiles, run_tiled
