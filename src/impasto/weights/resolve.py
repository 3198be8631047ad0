"""Turn a ``weights=`` argument into tensors: ``auto``, ``random``, ``arch.source`` or a file path."""

from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection

import torch

from ..errors import ChecksumError, DownloadError, UsageError, WeightsError, WeightsUnavailableError
from . import store
from .registry import CAFFE, IMAGENET, PREPROCESSING_NAMES, REGISTRY, Preprocessing, WeightSpec, default_spec, preprocessing_named

__all__ = ["ResolvedWeights", "resolve_weights", "adapt_state_dict"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedWeights:
    """What an encoder should be loaded with, and where it came from (for manifests)."""

    kind: str  # "pretrained" | "random" | "file"
    name: str  # "vgg19.torchvision" | "random" | the file path
    state_dict: dict[str, torch.Tensor] | None  # None for random (and once an encoder is built)
    sha256: str | None
    preprocessing: Preprocessing  # the record's; for random weights IMAGENET unless given explicitly
    warning: str | None = None  # set when "auto" fell back to random weights
    spec_name: str | None = None  # the registry record a file was recognised as


def _random(warning: str | None = None, preprocessing: Preprocessing = IMAGENET) -> ResolvedWeights:
    return ResolvedWeights("random", "random", None, None, preprocessing, warning)


def _explicit(preprocessing: str | None, arch: str) -> Preprocessing | None:
    """The Preprocessing named by ``preprocessing`` (None/"auto": none given)."""
    if preprocessing in (None, "", "auto"):
        return None
    try:
        return preprocessing_named(str(preprocessing), arch)
    except ValueError:
        raise UsageError(
            f"preprocessing {preprocessing!r}: choose auto, {' or '.join(PREPROCESSING_NAMES)}", params="preprocessing"
        ) from None


def _agree(spec: WeightSpec, explicit: Preprocessing | None, preprocessing: str | None, what: str) -> None:
    """A known checkpoint's preprocessing is a fact: an explicit choice contradicting it is an error."""
    if explicit is not None and explicit != spec.preprocessing:
        own = "caffe" if spec.preprocessing == CAFFE else "torchvision"
        raise UsageError(
            f"{what}: {spec.name} expects {own} input, not preprocessing {preprocessing}; "
            f"drop preprocessing (or pass auto)", params=("preprocessing", "weights")
        )


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


def _cached(spec: WeightSpec) -> tuple[Path, str] | None:
    """The cached file for ``spec`` and its verified SHA-256, or None; a corrupt file raises ChecksumError."""
    path = store.cache_path(spec)
    if not path.is_file():
        return None
    return path, store.verify(path, spec)


def _load_spec(spec: WeightSpec, path: Path, digest: str | None, keys: Collection[str] | None) -> ResolvedWeights:
    """Load ``path``, already verified against ``spec`` (not hashed again); ``digest`` None: just
    downloaded (the full digest is the record's, or for a prefix-only record hashed now)."""
    state = store.load_state_dict(path, keys=keys)
    if digest is None:
        digest = spec.sha256 if spec.check == "sha256" else store.file_sha256(path)
    return ResolvedWeights("pretrained", spec.name, _adapt(state, spec.layer_map, keys), digest, spec.preprocessing, spec_name=spec.name)


def _adapt(state: dict[str, torch.Tensor], layer_map: str, keys: Collection[str] | None) -> dict[str, torch.Tensor]:
    out = adapt_state_dict(state, layer_map)
    if keys is not None:
        wanted = set(keys)
        out = {k: v for k, v in out.items() if k in wanted}
    return out


def _demand(
    spec: WeightSpec, *, download: bool, progress: Callable[[int, int | None], None] | None, keys: Collection[str] | None
) -> ResolvedWeights:
    found = _cached(spec)  # ChecksumError propagates
    if found is not None:
        return _load_spec(spec, *found, keys)
    commands = f"`impasto weights download {spec.name}` (or `impasto weights import {spec.filename}`)"
    if not download:
        raise WeightsUnavailableError(
            f"weights {spec.name} are not in {store.cache_dir()} and downloads are disabled; fetch them with {commands}"
        )
    try:
        path = store.download(spec, progress=progress)
    except DownloadError as exc:
        raise WeightsUnavailableError(f"weights {spec.name} are not cached and {exc}") from exc
    return _load_spec(spec, path, None, keys)


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.endswith((".pth", ".pt", ".bin", ".ckpt")) or text.startswith("~")


def resolve_weights(
    weights: str | os.PathLike[str],
    arch: str,
    *,
    download: bool = True,
    progress: Callable[[int, int | None], None] | None = None,
    preprocessing: str | None = None,
    keys: Collection[str] | None = None,
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
      registered checkpoint, that record's preprocessing is used. A file that matches no record
      needs ``preprocessing`` ("caffe" or "torchvision"): its keys cannot tell (Caffe-converted
      VGG files have torchvision's keys), and the wrong choice silently spoils every result.

    ``preprocessing``: None/"auto" (from the record), "caffe" or "torchvision"; contradicting a
    recognised checkpoint's record is a UsageError. ``keys``: load only these state-dict entries
    (the rest of the file, e.g. a classifier, is never read when the file is memory-mappable).
    """
    text = os.fspath(weights)
    explicit = _explicit(preprocessing, arch)
    if text == "random":
        return _random(preprocessing=explicit or IMAGENET)
    if text == "auto":
        spec = default_spec(arch)
        if spec is None:
            return _random(preprocessing=explicit or IMAGENET)
        _agree(spec, explicit, preprocessing, "weights auto")
        found = _cached(spec)  # a corrupt cached file raises ChecksumError
        if found is not None:
            return _load_spec(spec, *found, keys)
        if not download:
            return _random(_fallback_warning(spec, "downloads are disabled"))
        try:
            path = store.download(spec, progress=progress)
        except ChecksumError:
            raise  # the server sent the wrong file: not a reason to quietly go random
        except DownloadError as exc:
            log.debug("auto weights for %s fell back to random: %s", arch, exc)
            return _random(_fallback_warning(spec, _reason(exc)))
        return _load_spec(spec, path, None, keys)
    if text in REGISTRY:
        spec = REGISTRY[text]
        if spec.arch != arch:
            raise UsageError(f"weights {spec.name} are for {spec.arch}, not {arch}")
        _agree(spec, explicit, preprocessing, f"weights {spec.name}")
        return _demand(spec, download=download, progress=progress, keys=keys)
    path = Path(text).expanduser()
    if path.is_file():
        return _resolve_file(path, arch, explicit, preprocessing, keys)
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


def _resolve_file(
    path: Path, arch: str, explicit: Preprocessing | None, preprocessing: str | None, keys: Collection[str] | None
) -> ResolvedWeights:
    """A checkpoint file: hashed once (or not at all while the verified-files record vouches for it)."""
    size = path.stat().st_size
    digest = store.file_sha256(path)
    spec = next((s for s in REGISTRY.values() if s.accepts(size, digest)), None)
    if spec is not None and spec.arch != arch:
        raise UsageError(f"{path} holds the weights {spec.name}, which are for {spec.arch}, not {arch}")
    if spec is not None:
        _agree(spec, explicit, preprocessing, str(path))
    state = store.load_state_dict(path, keys=keys)  # a corrupt file says so before anything else
    if spec is None and explicit is None:
        raise WeightsError(
            f"{path}: not a known checkpoint, so its input convention is unknown; pass preprocessing "
            f"caffe (BGR 0-255 minus the mean: neural-style's Caffe VGG files) or preprocessing torchvision "
            f"(RGB ImageNet mean/std: torchvision's files)", params="preprocessing"
        )
    layer_map = spec.layer_map if spec is not None else "torchvision"
    pre = spec.preprocessing if spec is not None else explicit
    assert pre is not None
    return ResolvedWeights("file", str(path), _adapt(state, layer_map, keys), digest, pre, spec_name=spec.name if spec else None)
