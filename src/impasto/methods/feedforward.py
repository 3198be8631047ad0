"""Feed-forward stylisation: train a network per style, apply it fast at any size, export it.

This module is the stable façade over the parts, each in its own module:

- :mod:`.ff_train`: ``TrainConfig`` and ``train``, the recipe (loss network, perceptual loss,
  generator, photos) over the generic loop :func:`impasto.optim.train_loop.train_loop`;
- :mod:`.ff_model`: the self-describing model file (``MODEL_FORMAT``, ``load_model``, ...);
- :mod:`.ff_apply`: ``ApplyConfig``, ``apply_model`` (files and folders) and the registered
  ``apply`` method (one image in memory);
- :mod:`.ff_tiling`: running a model whole or tile by tile, exactly, with PyTorch or ONNX Runtime;
- :mod:`.ff_onnx`: which of the two ``runtime="auto"`` runs, and the verified cache of ONNX exports;
- :mod:`.ff_export`: ONNX (dynamic height and width, opset 17) and TorchScript export.

The generators themselves (``johnson``, ``johnson-small``, ``texture``, ...) live in
:mod:`impasto.nets`, one file per architecture behind one protocol.
"""

from __future__ import annotations

from .ff_apply import COLOR_MODES, OUTPUT_FORMATS, RUNTIMES, ApplyConfig, ApplyMethod, ApplyResult, ModelSession, apply_model, parse_size, stylise_photo
from .ff_export import EXPORT_FORMATS, export_model, read_onnx_meta
from .ff_model import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    DEFAULT_NOTICE,
    LOG_NAME,
    MODEL_FORMAT,
    MODEL_NAME,
    MODEL_VERSION,
    PREVIEW_DIR,
    LoadedModel,
    _model_payload,
    load_model,
    model_payload,
    save_model,
)
from .ff_tiling import OnnxRunner, TorchRunner, auto_tile, cells, stylise_tensor
from .ff_train import RESUMABLE_CHANGES, PerceptualObjective, TrainConfig, parse_layers, train

__all__ = [
    "TrainConfig",
    "ApplyConfig",
    "ApplyResult",
    "ApplyMethod",
    "LoadedModel",
    "ModelSession",
    "MODEL_FORMAT",
    "MODEL_VERSION",
    "CHECKPOINT_NAME",
    "CONFIG_NAME",
    "MODEL_NAME",
    "LOG_NAME",
    "PREVIEW_DIR",
    "DEFAULT_NOTICE",
    "RESUMABLE_CHANGES",
    "COLOR_MODES",
    "RUNTIMES",
    "OUTPUT_FORMATS",
    "EXPORT_FORMATS",
    "PerceptualObjective",
    "train",
    "apply_model",
    "stylise_photo",
    "export_model",
    "read_onnx_meta",
    "load_model",
    "save_model",
    "model_payload",
    "_model_payload",
    "parse_size",
    "stylise_tensor",
    "TorchRunner",
    "OnnxRunner",
    "auto_tile",
    "cells",
    "parse_layers",
]
