"""The feed-forward model file (``model.pt``) and the files of a training folder.

A model file is a ``torch.save``d dict of plain values and tensors (read back with
``weights_only=True``): ``format`` (:data:`MODEL_FORMAT`), ``version``, ``arch`` and ``net_config``
(rebuild the network through :mod:`impasto.nets.registry`), ``train_config``, the style's name
and SHA-256 (a multi-style model: ``styles``, each ``index``, ``name`` and ``sha256``), ``steps``, ``licence``, ``notice``, the loss network, the impasto version, the
creation time and ``state_dict``. It describes itself: applying it needs no other flags.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from .._version import __version__
from ..atomic import atomic_path
from ..config import config_to_dict
from ..errors import ModelFileError
from ..nets.registry import net_from_config
from ..optim.train_loop import CHECKPOINT_NAME, LOG_NAME

__all__ = [
    "MODEL_FORMAT",
    "MODEL_VERSION",
    "CHECKPOINT_NAME",
    "CONFIG_NAME",
    "MODEL_NAME",
    "LOG_NAME",
    "PREVIEW_DIR",
    "DEFAULT_NOTICE",
    "LoadedModel",
    "model_payload",
    "save_model",
    "load_model",
    "resolve_model_path",
]

MODEL_FORMAT = "impasto.feedforward"
MODEL_VERSION = 1
CONFIG_NAME = "config.json"
MODEL_NAME = "model.pt"
PREVIEW_DIR = "previews"
DEFAULT_NOTICE = (
    "Trained with impasto. The model reproduces the style of its style image; respect that "
    "image's licence and its author's rights when you publish results."
)


@dataclass
class LoadedModel:
    """A trained generator and its description (everything in the model file but the weights)."""

    net: torch.nn.Module
    meta: dict[str, Any]
    path: Path

    @property
    def arch(self) -> str:
        """The architecture's registered name."""
        return str(self.meta["arch"])

    @property
    def texture(self) -> bool:
        """True for a texture-synthesis model (it takes no content image)."""
        return "content" not in self.net.takes  # type: ignore[operator]


def model_payload(
    net: torch.nn.Module, arch: str, net_config: Mapping[str, Any], config: Any, style: Mapping[str, Any], steps: int, encoder_info: Mapping[str, Any],
    *, styles: Sequence[Mapping[str, Any]] | None = None, extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The contents of a model file: ``config`` is the training config (a dataclass with ``licence``).

    ``styles``: a multi-style model's styles in index order (``{"index", "name", "sha256", ...}``);
    ``extra``: further plain entries (e.g. where an added style came from).
    """
    return {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "arch": arch,
        "net_config": dict(net_config),
        "train_config": config_to_dict(config),
        "style_name": style["name"],
        "style_sha256": style["sha256"],
        "steps": int(steps),
        "licence": config.licence,
        "notice": DEFAULT_NOTICE,
        "encoder": dict(encoder_info),
        "impasto_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **({"styles": [dict(x) for x in styles]} if styles is not None else {}),
        **dict(extra or {}),
        "state_dict": {k: v.detach().to("cpu", memory_format=torch.contiguous_format).clone() for k, v in net.state_dict().items()},
    }


_model_payload = model_payload  # the name tests and benchmarks know


def save_model(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> Path:
    """Write a model file atomically."""
    with atomic_path(path) as tmp:
        torch.save(dict(payload), tmp)
    return Path(path)


def resolve_model_path(path: str | os.PathLike[str]) -> Path:
    """A training folder holding ``model.pt`` -> that file; anything else unchanged."""
    p = Path(path)
    if p.is_dir() and (p / MODEL_NAME).is_file():
        return p / MODEL_NAME
    return p


def load_model(path: str | os.PathLike[str], *, device: str | torch.device = "cpu", net_overrides: Mapping[str, Any] | None = None) -> LoadedModel:
    """Load a model file written by ``train`` (``torch.load(weights_only=True)``).

    ``net_overrides`` replace entries of the recorded ``net_config`` when the network is built
    (e.g. an AdaIN model's encoder ``weights``; the network checks they fit).

    Anything wrong (missing, not a torch file, truncated, not an impasto model, unknown
    architecture, weights that do not fit) raises ModelFileError with a one-line message.
    """
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"{p}: no such model file")
    if p.is_dir():
        if (p / MODEL_NAME).is_file():
            p = p / MODEL_NAME
        else:
            raise ModelFileError(f"{p}: is a folder without a {MODEL_NAME} (give the model file or the training folder)")
    if p.suffix.lower() == ".onnx":
        raise ModelFileError(f"{p}: an ONNX model; apply it with runtime onnx", params="runtime")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad model file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{p}: not a readable impasto model file ({reason[:160]})") from None
    if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
        if isinstance(data, dict) and data.get("format") == "impasto.checkpoint":
            raise ModelFileError(f"{p}: a training checkpoint (use the model.pt written at the end, or resume to continue training)", params="resume")
        raise ModelFileError(f"{p}: not an impasto feed-forward model")
    version = data.get("version")
    if not isinstance(version, int) or version > MODEL_VERSION:
        raise ModelFileError(f"{p}: model format version {version!r} is newer than this impasto understands ({MODEL_VERSION}); upgrade impasto")
    for key in ("arch", "net_config", "state_dict"):
        if key not in data:
            raise ModelFileError(f"{p}: model file lacks {key!r}")
    net = net_from_config(str(data["arch"]), {**dict(data["net_config"]), **dict(net_overrides or {})})
    try:
        net.load_state_dict(data["state_dict"], strict=True)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{p}: weights do not fit a {data['arch']} network ({str(exc).splitlines()[0][:160]})") from None
    net.eval().requires_grad_(False)
    from ..features import resolve_device

    net.to(resolve_device(device))
    meta = {k: v for k, v in data.items() if k != "state_dict"}
    return LoadedModel(net, meta, p)
