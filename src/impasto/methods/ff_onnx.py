"""ONNX Runtime for ``impasto apply``: when ``runtime="auto"`` chooses it (:func:`choose_runtime`)
and the verified cache of ONNX exports of ``.pt`` models (:func:`onnx_for`).

``auto`` runs a model with ONNX Runtime when that gives the same result, faster: an exported
``.onnx`` file always; a ``.pt`` model when onnxruntime is installed (the ``onnx`` extra), the
device is the CPU, the precision resolves to fp32 (where bf16 is chosen, for the whole network or,
under ``auto`` on a CPU with native bf16, for johnson's residual blocks, PyTorch is the faster
one), no option only PyTorch supports is set, and the architecture is one whose exported graph
was measured faster than PyTorch (:data:`AUTO_ONNX`), unless the process runs the tuned allocator
(``impasto apply`` and ``impasto train`` tune it: PyTorch reuses its freed blocks then and is the
faster one; the Python API, the service and video run glibc's allocator, where ONNX Runtime takes
about 0.87x the time of PyTorch in fp32, channels-last). Otherwise it runs PyTorch.

A ``.pt`` model is exported once into ``impasto_home()/cache/onnx`` (``$IMPASTO_HOME/cache/onnx``,
else ``~/.impasto/cache/onnx``), named by the model file's SHA-256 (its content, not its path or
time) and a stamp of the exporter (impasto, :data:`~.ff_export.ONNX_EXPORT_VERSION`, the opset,
torch and onnx versions), so a changed model or a changed exporter never gets a stale file. Each
export has a record (``<name>.json``) holding the exported file's size and SHA-256 and its
description: a file is reused only while it matches, so a truncated or damaged file is exported
again (and a run from the cache needs no ``import onnx``, about a second). The file and then its record
are each written atomically (temporary file + rename): an interrupted export leaves no file, and
two processes exporting at once each leave a complete one (if their records cross, the next run
exports once more). The cache is kept within a size budget: after each export the least recently
used entries go (``IMPASTO_ONNX_CACHE_MAX``, default 2G; an entry in use stays), see
:mod:`.onnx_cache`; ``impasto cache list|clear`` shows and empties it.

A ``model.onnx`` next to ``model.pt`` (what ``impasto export model.pt`` writes) is used instead
while it records the SHA-256 of the ``.pt`` file it was exported from and that matches the
model file now: its content decides, not its time stamp (copies, ``touch`` and checkouts change
those). A sibling that does not match, or that records no source (exported by an older impasto),
is ignored, with a message.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from .._version import __version__
from ..errors import ImpastoError, ModelFileError
from ..progress import Event, MessageEvent, emit
from ..provenance import sha256_file, write_json
from . import onnx_cache
from .ff_export import ONNX_EXPORT_VERSION, ONNX_OPSET, export_model, read_onnx_export, read_onnx_meta

if TYPE_CHECKING:
    from .ff_apply import ApplyConfig

__all__ = ["AUTO_ONNX", "onnx_available", "choose_runtime", "onnx_cache_dir", "exporter_stamp", "onnx_for"]

#: the architectures ``runtime="auto"`` runs with ONNX Runtime (CPU, fp32), with the measurement
#: that put them here (time against PyTorch eager, channels-last, on the same CPU). Not here, so
#: PyTorch: superres (PyTorch channels-last is faster: 1.19 s against ONNX Runtime's 1.38 s in
#: fp32, 256 -> 1024 px), multistyle (it exports exactly, but ONNX Runtime gained nothing: 0.59x
#: of the plain reference at 512 px both ways in fp32, benchmarks/bench_perf.py) and texture
#: networks (not timed); AdaIN and stylepredict (the exported graph encodes the painting on every
#: call, i.e. every video frame and every tiling pass, where PyTorch encodes it once per session;
#: several paintings or masks need PyTorch); swap-inverse (it does not export); architectures
#: added by plugins.
AUTO_ONNX: dict[str, str] = {
    "johnson": "0.87x the time of PyTorch in fp32 at 1024x1024 (1.49 s against 1.72 s, benchmarks/bench_perf.py)",
    "johnson-small": "6.3 s against 14.5 s at 1536x1536 whole, 30 s against 44 s tiled (benchmarks/bench_feedforward.py)",
}


def onnx_available() -> bool:
    """Whether ONNX export and ONNX Runtime are installed (the ``onnx`` extra), without importing them."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def choose_runtime(model_file: str | os.PathLike[str], arch: str | None, config: ApplyConfig) -> tuple[str, str]:
    """The runtime (``"torch"`` or ``"onnx"``) that ``config.runtime`` means for ``model_file`` (of
    architecture ``arch``; None when unknown), and why. Only ``auto`` is a choice: see the module
    docstring for the rule."""
    from ..allocator import allocator_mode
    from ..features import resolve_device
    from ..precision import residual_precision, resolve_precision

    if config.runtime != "auto":
        return config.runtime, f"runtime {config.runtime} was asked for"
    if Path(model_file).suffix.lower() == ".onnx":
        return "onnx", "an exported ONNX file"
    if not onnx_available():
        return "torch", "onnxruntime is not installed (pip install 'impasto[onnx]')"
    if arch not in AUTO_ONNX:
        return "torch", f"ONNX Runtime is not known to be faster for {arch or 'this'} models"
    if allocator_mode() == "tuned":
        return "torch", "the allocator is tuned (impasto apply does it): PyTorch is faster then (1024x1024 johnson in fp32: 1.15 s against 1.48 s)"
    try:
        device = resolve_device(config.device)
    except ImpastoError:  # the torch runtime reports an unavailable device
        return "torch", f"device {config.device}"
    if device.type != "cpu":
        return "torch", f"device {device} (ONNX Runtime runs on the CPU here)"
    if resolve_precision(config.precision, device, arch) is not None:
        return "torch", "precision bf16 (PyTorch in bfloat16 is the faster choice)"
    if residual_precision(config.precision, device, arch) is not None:
        return "torch", "precision auto runs the residual blocks in bfloat16 on this CPU (PyTorch is the faster choice: 0.8x ONNX Runtime's time at 1024x1024)"
    torch_only = [name for name, value in (("stats_edge", config.stats_edge), ("channels_last", config.channels_last), ("encoder_weights", config.encoder_weights)) if value]
    if torch_only:
        return "torch", f"{', '.join(torch_only)} needs runtime torch"
    return "onnx", f"ONNX Runtime on the CPU: {AUTO_ONNX[arch]}"


def onnx_cache_dir() -> Path:
    """Where exports of ``.pt`` models are cached: ``impasto_home()/cache/onnx``."""
    return onnx_cache.cache_dir()


def exporter_stamp() -> dict[str, Any]:
    """What makes an export: a cached file made under another stamp is never reused. (The onnx
    package's version comes from its metadata: importing onnx takes about a second, which a run
    from the cache does not need.)"""
    from importlib.metadata import PackageNotFoundError, version

    try:
        onnx_version = version("onnx")
    except PackageNotFoundError:
        onnx_version = None
    return {"impasto": __version__, "export": ONNX_EXPORT_VERSION, "opset": ONNX_OPSET, "torch": torch.__version__, "onnx": onnx_version}


def _cache_name(model_sha256: str, stamp: dict[str, Any]) -> str:
    exporter = hashlib.sha256(json.dumps(stamp, sort_keys=True).encode("utf-8")).hexdigest()[:12]
    return f"{model_sha256[:32]}-{exporter}"


def _cached(target: Path, record: Path, model_sha256: str, stamp: dict[str, Any]) -> dict[str, Any] | None:
    """The description of ``target`` (kept in its record) if ``target`` is a complete export of
    this model by this exporter (the record matches the file's size and SHA-256), else None."""
    try:
        entry = json.loads(record.read_text(encoding="utf-8"))
        if not isinstance(entry, dict) or entry.get("model_sha256") != model_sha256 or entry.get("exporter") != stamp or not isinstance(entry.get("meta"), dict):
            return None
        if target.stat().st_size != entry.get("onnx_size") or sha256_file(target) != entry.get("onnx_sha256"):
            return None
        return dict(entry["meta"])
    except (OSError, ValueError):
        return None


def _sibling(model_path: Path, model_sha256: str, callback: Callable[[Event], None] | None) -> tuple[Path, dict[str, Any]] | None:
    """``model.onnx`` next to ``model_path`` and its description when it was exported from this
    very model file (it records the SHA-256 ``model_sha256``); else None, with a message saying why."""
    sibling = model_path.with_suffix(".onnx")
    if not sibling.is_file():
        return None
    try:
        meta, source = read_onnx_export(sibling)
    except ModelFileError as exc:
        emit(callback, MessageEvent(f"ignoring {sibling}: {exc}", level="warning"))
        return None
    if source == model_sha256:
        return sibling, meta
    if source is None:
        emit(callback, MessageEvent(f"ignoring {sibling}: it does not record which model file it was exported from (an older impasto's export; `impasto export {model_path}` writes one that is used)"))
    else:
        emit(callback, MessageEvent(f"ignoring {sibling}: it was exported from another model file than {model_path} is now (sha256 {source[:12]}, not {model_sha256[:12]}); `impasto export {model_path}` renews it", level="warning"))
    return None


def onnx_for(model_path: Path, *, callback: Callable[[Event], None] | None = None) -> tuple[Path, dict[str, Any], Any]:
    """An ONNX file for ``model_path``, its description, and what to release when done (an object
    with ``cleanup()``: a temporary folder, or the hold that keeps a cached export from being
    pruned while it is used; or None): the file itself (``.onnx``), a sibling ``.onnx`` exported
    from this model file (what ``impasto export MODEL`` writes), else the cached export (made now
    if missing or damaged, then the cache is pruned to its budget; in a temporary folder when the
    cache cannot be written). ConfigError when ``IMPASTO_ONNX_CACHE_MAX`` is not a size."""
    if model_path.suffix.lower() == ".onnx":
        return model_path, read_onnx_meta(model_path), None
    model_sha256 = sha256_file(model_path)
    found = _sibling(model_path, model_sha256, callback)
    if found is not None:
        return found[0], found[1], None
    budget = onnx_cache.cache_budget()  # a bad IMPASTO_ONNX_CACHE_MAX fails before any work
    stamp = exporter_stamp()
    folder = onnx_cache_dir()
    name = _cache_name(model_sha256, stamp)
    target, record = folder / f"{name}.onnx", folder / f"{name}.json"
    held = onnx_cache.hold(target)  # held before it is checked: a pruner elsewhere cannot remove it now
    if held is not None:
        meta = _cached(target, record, model_sha256, stamp)
        if meta is not None:
            onnx_cache.mark_used(record)
            return target, meta, held
        held.cleanup()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        writable = os.access(folder, os.W_OK)
    except OSError:
        writable = False
    if not writable:
        tmpdir = tempfile.TemporaryDirectory(prefix="impasto-onnx-")
        emit(callback, MessageEvent(f"exporting {model_path} to ONNX for this run ({folder} is not writable; save time next run: impasto export {model_path})"))
        path = export_model(model_path, Path(tmpdir.name) / "model.onnx", format="onnx")
        return path, read_onnx_meta(path), tmpdir
    emit(callback, MessageEvent(f"exporting {model_path} to ONNX once: cached in {folder} and reused while the model file is unchanged"))
    record.unlink(missing_ok=True)  # the file is about to change: no record may vouch for it meanwhile
    held = _export_held(model_path, target)
    try:
        meta = read_onnx_meta(target)
        write_json(record, {"model_sha256": model_sha256, "exporter": stamp, "onnx_sha256": sha256_file(target), "onnx_size": target.stat().st_size, "model": str(model_path.resolve()), "meta": meta})
        removed = onnx_cache.prune(budget, keep={name}, folder=folder)
    except BaseException:
        if held is not None:
            held.cleanup()
        raise
    if removed:
        freed = onnx_cache.format_size(sum(e.size for e in removed))
        emit(callback, MessageEvent(f"removed {len(removed)} least recently used ONNX export(s) ({freed}) from {folder}: the cache's budget is {onnx_cache.format_size(budget)} ({onnx_cache.CACHE_MAX_ENV})"))
    return target, meta, held


def _export_held(model_path: Path, target: Path) -> onnx_cache.EntryHold | None:
    """Export ``model_path`` to ``target`` (via a hidden temporary file beside it), held from
    before it appears under its name (on Windows, once it has: an open file cannot be renamed)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".export.onnx", dir=target.parent)
    os.close(fd)
    partial, held = Path(tmp), None
    try:
        export_model(model_path, partial, format="onnx")
        if os.name != "nt":
            held = onnx_cache.hold(partial)
        os.replace(partial, target)
    except BaseException:
        if held is not None:
            held.cleanup()
        raise
    finally:
        partial.unlink(missing_ok=True)
    return held if held is not None else onnx_cache.hold(target)
