"""impasto: neural style transfer (optimisation, feed-forward networks) in one package.

Public API::

    import impasto
    result = impasto.stylize("photo.jpg", "painting.jpg", edge=512, iterations=300)
    result.save("out.png")

    impasto.list_methods()                  # every registered method (plugins too)
    impasto.method_schema("gatys")          # JSON Schema of its options
    impasto.run("gatys", content="photo.jpg", style="painting.jpg", edge=512, weights="random")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

# Lazy attribute access keeps `import impasto` cheap and free of side effects.
_EXPORTS = {
    "stylize": "impasto.api",
    "Result": "impasto.api",
    "load_image": "impasto.image.io",
    "save_image": "impasto.image.io",
    "build_encoder": "impasto.features",
    "ImpastoError": "impasto.errors",
    "train": "impasto.api",
    "train_config": "impasto.api",
    "apply": "impasto.api",
    "export": "impasto.api",
    "reconstruct": "impasto.api",
    "list_methods": "impasto.api",
    "method_schema": "impasto.api",
    "run": "impasto.api",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'impasto' has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from .api import Result, apply, export, list_methods, method_schema, reconstruct, run, stylize, train, train_config
    from .errors import ImpastoError
    from .features import build_encoder
    from .image.io import load_image, save_image
