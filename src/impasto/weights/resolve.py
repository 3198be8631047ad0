"""Turn a ``weights=`` argument into tensors: ``auto``, ``random``, ``arch.source`` or a file path."""

from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..errors import ChecksumError, DownloadError, UsageError, WeightsError, WeightsUnavailableError
from . import store
from .registry import IMAGENET, REGISTRY, Preprocessing, WeightSpec, default_spec

__all__ = ["ResolvedWeights", "resolve_weights", "adapt_state_dict"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedWeights:
    """What an encoder should be loaded with, and where it came from (for manifests)."""

    kind: str  # "pretrained" | "random" | "file"
    name: str  # "vgg19.torchvision" | "random" | the file path
    state_dict: dict[str, torch.Tensor] | None  # None for random
    sha256: str | None
    preprocessing: Preprocessing  # IMAGENET for random/unknown files
    warning: str | None = None  # set when "auto" fell back to random weights


def _random(warning: str | None = None) -> ResolvedWeights:
    return ResolvedWeights("random", "random", None, None, IMAGENET, warning)


def adapt_state_dict(state_dict: dict[str, torch.Tensor], layer_map: str = "torchvision") -> dict[str, torch.Tensor]:
    """Map a checkpoint's keys onto impasto's architectures.

    ``torchvision``: keys are already torchvision's. Checkpoints saved before PyTorch 0.4.1
    (torchvision's ResNet-50 V1 and Inception v3 files among them) have no
    ``*.num_batches_tracked`` entries; PyTorch's BatchNorm fills them with 0 when loading such
    files, and so does this, so a strict load into a current model succeeds.
    """
    if layer_map != "torchvision":
        raise WeightsError(f"unknown layer map {layer_map!r} (known: torchvision)")
    out = dict(state_dict)
    for key in state_dict:
        if key.endswith(".running_var"):
            tracked = key[: -len("running_var")] + "num_batches_tracked"
            out.setdefault(tracked, torch.tensor(0, dtype=torch.long))
    return out


def _fallback_warning(spec: WeightSpec, reason: str) -> str:
    return (
        f"no pretrained {spec.arch} weights in {store.cache_dir()} and they could not be downloaded "
        f"({reason}); using deterministic random weights: results will be weaker. Fetch the real "
        f"weights with `impasto weights download {spec.name}` (or `impasto weights import {spec.filename}`)"
    )


def _load_spec(spec: WeightSpec, path: Path) -> ResolvedWeights:
    state = store.load_state_dict(path, spec=spec)
    return ResolvedWeights("pretrained", spec.name, adapt_state_dict(state, spec.layer_map), spec.sha256, spec.preprocessing)


def _demand(spec: WeightSpec, *, download: bool, progress: Callable[[int, int | None], None] | None) -> ResolvedWeights:
    path = store.cached_path(spec)  # ChecksumError propagates
    if path is None:
        commands = f"`impasto weights download {spec.name}` (or `impasto weights import {spec.filename}`)"
        if not download:
            raise WeightsUnavailableError(
                f"weights {spec.name} are not in {store.cache_dir()} and downloads are disabled; fetch them with {commands}"
            )
        try:
            path = store.download(spec, progress=progress)
        except DownloadError as exc:
            raise WeightsUnavailableError(f"weights {spec.name} are not cached and {exc}") from exc
    return _load_spec(spec, path)


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.endswith((".pth", ".pt", ".bin", ".ckpt")) or text.startswith("~")


def resolve_weights(
    weights: str | os.PathLike[str],
    arch: str,
    *,
    download: bool = True,
    progress: Callable[[int, int | None], None] | None = None,
) -> ResolvedWeights:
    """Resolve ``weights`` for the architecture ``arch``.

    - ``"auto"``: the default checkpoint for ``arch`` if cached or downloadable; when it cannot be
      downloaded (offline, server unreachable, downloads disabled) deterministic random weights with
      a loud ``warning``. Architectures without a checkpoint (``tiny_vgg``) get random weights
      silently. A cached file failing its checksum raises ChecksumError (never silently replaced).
    - ``"random"``: deterministic random weights (the caller initialises from its seed).
    - ``"arch.source"``: that checkpoint, which must be cached or downloadable
      (WeightsUnavailableError otherwise) and must be for ``arch`` (UsageError otherwise).
    - an existing file: loaded with ``weights_only=True``; its SHA-256 is recorded and, if it is a
      registered checkpoint, that record's preprocessing is used.
    """
    text = os.fspath(weights)
    if text == "random":
        return _random()
    if text == "auto":
        spec = default_spec(arch)
        if spec is None:
            return _random()
        path = store.cached_path(spec)  # a corrupt cached file raises ChecksumError
        if path is None:
            if not download:
                return _random(_fallback_warning(spec, "downloads are disabled"))
            try:
                path = store.download(spec, progress=progress)
            except ChecksumError:
                raise  # the server sent the wrong file: not a reason to quietly go random
            except DownloadError as exc:
                log.debug("auto weights for %s fell back to random: %s", arch, exc)
                return _random(_fallback_warning(spec, _reason(exc)))
        return _load_spec(spec, path)
    if text in REGISTRY:
        spec = REGISTRY[text]
        if spec.arch != arch:
            raise UsageError(f"weights {spec.name} are for {spec.arch}, not {arch}")
        return _demand(spec, download=download, progress=progress)
    path = Path(text).expanduser()
    if path.is_file():
        return _resolve_file(path, arch)
    if path.exists():
        raise WeightsError(f"{path}: is a folder, expected a checkpoint file")
    if _looks_like_path(text):
        raise WeightsError(f"{path}: no such file")
    choices = ["auto", "random", *sorted(REGISTRY)]
    close = difflib.get_close_matches(text, choices, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise WeightsError(f"unknown weights {text!r}{hint}; use auto, random, a checkpoint file or one of: {', '.join(sorted(REGISTRY))}")


def _reason(exc: DownloadError) -> str:
    """The short cause of a DownloadError, e.g. "https://...: connection refused"."""
    return str(getattr(exc, "reason", None) or exc)


def _resolve_file(path: Path, arch: str) -> ResolvedWeights:
    digest = store.sha256_file(path)
    spec = next((s for s in REGISTRY.values() if s.sha256 == digest), None)
    if spec is not None and spec.arch != arch:
        raise UsageError(f"{path} holds the weights {spec.name}, which are for {spec.arch}, not {arch}")
    state = store.load_state_dict(path)
    layer_map = spec.layer_map if spec is not None else "torchvision"
    preprocessing = spec.preprocessing if spec is not None else IMAGENET
    return ResolvedWeights("file", str(path), adapt_state_dict(state, layer_map), digest, preprocessing)
